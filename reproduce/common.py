"""Shared command-line plumbing of the reproduction scripts (config overrides, progress, summary)."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from dbm.config import add_config_args, config_from_args

__all__ = ["base_parser", "output_paths", "progress", "finish", "sample_grid"]


def base_parser(doc: str, config_cls) -> argparse.ArgumentParser:
    """--quick/--device/--plot-only/--force/--out-dir/--work-dir plus one --<field> per config
    field (tuples comma-separated). ``args.config(quick_overrides)`` resolves the config:
    defaults, then the --quick profile, then explicit flags."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small profile for a smoke test (~1 minute on CPU)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--plot-only", action="store_true", help="redraw the plot from the CSV")
    p.add_argument("--force", action="store_true", help="recompute cached cells")
    p.add_argument("--out-dir", default="results", help="where the CSV, JSON and PNG go")
    p.add_argument("--work-dir", default="runs", help="cache of finished cells")
    add_config_args(p, config_cls, skip=("device",))

    def parse_args(argv=None):
        args = argparse.ArgumentParser.parse_args(p, argv)

        def config(overrides: dict, apply: bool | None = None):
            """Defaults, then ``overrides`` (when ``apply``, by default with --quick), then flags."""
            use = args.quick if apply is None else apply
            base = dataclasses.replace(config_cls(), **(overrides if use else {}))
            return config_from_args(args, config_cls, base, device=args.device)

        args.config = config
        return args

    p.parse_args = parse_args
    return p


def output_paths(args, name: str) -> tuple[Path, Path, Path]:
    """results/<name>.csv, .json and .png under --out-dir."""
    out = Path(args.out_dir)
    return out / f"{name}.csv", out / f"{name}.json", out / f"{name}.png"


def progress(items, desc: str):
    return tqdm(items, desc=desc, dynamic_ncols=True, mininterval=1.0)


def finish(*tables_and_paths) -> None:
    """Print summary tables and the written files."""
    with pd.option_context("display.max_rows", 500, "display.width", 160,
                           "display.float_format", "{:.3g}".format):
        for item in tables_and_paths:
            if isinstance(item, pd.DataFrame):
                print(item.to_string(index=False))
                print()
            else:
                print("wrote:", *map(str, item))


def sample_grid(samples: dict, path: Path, per_row: int = 16) -> None:
    """One labelled row per entry: ``samples[name]`` is (n, C, H, W) in [0, 1]; the first ``per_row``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torchvision.utils import make_grid
    fig, axes = plt.subplots(len(samples), 1, figsize=(12, 1.1 * len(samples)), squeeze=False)
    for ax, (name, x) in zip(axes[:, 0], samples.items()):
        ax.imshow(make_grid(x[:per_row].float().cpu(), nrow=per_row, padding=1, pad_value=0.5).permute(1, 2, 0))
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
