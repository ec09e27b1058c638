"""Shared command-line plumbing of the reproduction scripts (config overrides, progress, summary)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Callable, NamedTuple

import pandas as pd
from tqdm.auto import tqdm

from dbm.result_cache import CellCache
from dbm.config import add_config_args, config_from_args
from dbm.provenance import write_csv, write_sidecar

__all__ = ["METHOD_COLORS", "METHOD_MARKERS", "method_palette", "method_style", "save_figure", "base_parser", "output_paths", "progress", "finish", "sample_grid", "Run", "Computed", "script_main",
           "summary_pivot"]


# One colour and one marker per method in every figure (Okabe-Ito colour-blind palette). A variant
# of a method (a suffix below) takes a shade of its method's colour, its marker, and a hatch for
# bars / a line style for lines that says which variant it is.
METHOD_COLORS = {
    "ucd-mh-lmi": "#0072B2", "ucd-mh-lmi-marg": "#56B4E9", "ucd-mh-lmi-avg": "#117A8B",
    "ucd-mh-lmi-mixed": "#6A8FC0", "ucd-mh-lmi-mixed-marg": "#A3BEDF",
    "official-single-chain": "#332288",
    # pi0's fixed-order ablations (the faithful-order issue): darker shades of the method's colour
    "ucd-mh-lmi-even-first": "#003A5C", "ucd-mh-lmi-odd-first": "#2A4D6E", "ucd-mh-lmi-marg-even-first": "#2B6F8F",
    "ucd-mh-lmi-mixed-even-first": "#3C5A80", "official-single-chain-even-first": "#1A1144",
    "ucd-gibbs": "#E69F00", "ucd-gibbs-uniform": "#E69F00", "ucd-gibbs-lmi": "#995500", "ucd-gibbs-avg": "#FFB84D",
    "ucd-gibbs-cap1000": "#B8860B",
    "cd": "#009E73", "cd-1": "#009E73", "cd-10": "#117733", "pcd": "#D55E00", "pcd-1": "#D55E00",
    "pcd-pretrained": "#CC79A7", "mh-independent-y0": "#999999",
    "wgan": "#882255", "wgan-gp": "#AA4499", "data": "#000000",
}
METHOD_MARKERS = {"ucd-mh-lmi": "o", "official-single-chain": "h", "ucd-gibbs": "s", "cd": "^", "pcd": "v",
                  "pcd-pretrained": "D", "mh-independent-y0": "p", "wgan": "P", "wgan-gp": "X", "data": "*"}
VARIANTS = (("-even-first", "//", "--"), ("-odd-first", "\\\\", "-."), ("-marg", "..", ":"),
            ("-mixed", "xx", (0, (5, 1, 1, 1))), ("-avg", "--", (0, (1, 1))), ("-cap1000", "||", (0, (3, 1))))


def method_palette(names) -> dict:
    """{name: colour} for seaborn's ``palette=``: the fixed colour of each known method, grey
    shades for others."""
    extra = iter(["#5A5A5A", "#8C8C8C", "#B4B4B4", "#3C3C3C"] * 8)
    return {n: METHOD_COLORS.get(str(n).lower(), None) or next(extra) for n in dict.fromkeys(names)}


def method_style(name: str) -> dict:
    """How ``name`` is drawn everywhere: ``color``, ``marker`` (its method's), ``hatch`` (bars) and
    ``ls`` (lines); a variant's suffixes (-even-first, -marg, -mixed, ...) set the hatch and style."""
    n = str(name).lower()
    base = n[4:] if n.startswith("dbm-") else n
    marker = next((mk for m, mk in sorted(METHOD_MARKERS.items(), key=lambda kv: -len(kv[0]))
                   if base == m or base.startswith(m + "-")), "o")
    hatch, ls = "", "-"
    for suffix, h, style in VARIANTS:
        if suffix in base:
            hatch, ls = hatch + h, (style if ls == "-" else ls)
    return dict(color=method_palette([base])[base], marker=marker, hatch=hatch, ls=ls)


def save_figure(fig, path: Path, run: "Run | None" = None, dpi: int = 110, **facts) -> None:
    """Write ``fig`` atomically with a provenance footer (profile, ``facts`` such as updates and
    seeds, the data's commit, clean or not, its date and machine, from the run's sidecar; the
    drawing commit where it differs, as after ``--plot-only``) and, for the quick profile, a
    "QUICK (smoke-test settings)" stamp across it; then close it."""
    import matplotlib.pyplot as plt
    from dbm.provenance import atomic_path, git_sha
    from reproduce.provenance import commit_of, facts as provenance
    profile = run.profile if run is not None else facts.pop("profile", None)
    parts = ([f"profile {profile}"] if profile else []) + [f"{k.replace('_', ' ')} {v}" for k, v in facts.items()]
    sha = git_sha()
    if run is not None and run.sidecar:
        data = provenance(run.sidecar)
    else:                                               # drawn while computing (sample grids): now, here
        from dbm.provenance import environment
        data = provenance({"environment": environment(getattr(run.cfg, "device", "cpu") if run else "cpu")})
    machine = data.get("gpu") or data.get("cpu_model") or "machine not recorded"
    parts.append(f"commit {commit_of(data.get('git_sha', sha))[:10]}"
                 + (" (clean tree)" if data.get("clean_tree") else " WITH UNCOMMITTED CHANGES")
                 + f", {str(data['date_utc'])[:10] if data.get('date_utc') else 'date not recorded'}, {machine}")
    if run is not None and run.sidecar and run.sidecar.get("spliced"):
        parts.append("rows spliced in from " + ", ".join(f"{p['part']} (commit {str(p.get('git_sha'))[:10]})"
                                                         for p in run.sidecar["spliced"]))
    if commit_of(sha) != commit_of(data.get("git_sha", sha)) or ("-dirty" in sha) != (not data.get("clean_tree")):
        parts.append(f"drawn at commit {commit_of(sha)[:10]}" + (" with uncommitted changes" if "-dirty" in sha else ""))
    import textwrap
    width = max(40, int(fig.get_figwidth() * 17))                 # characters per line at fontsize 6.5
    footer = "\n".join(textwrap.wrap(" | ".join(parts), width))
    fig.text(0.005, 0.003, footer, fontsize=6.5, color="0.35", ha="left", va="bottom")
    if profile == "quick":
        fig.text(0.5, 0.5, "QUICK (smoke-test settings)", fontsize=min(28, 3.5 * fig.get_figwidth()), color="red", alpha=0.25,
                 ha="center", va="center", rotation=20)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)


def base_parser(doc: str, config_cls) -> argparse.ArgumentParser:
    """--quick/--device/--plot-only/--force/--out-dir/--work-dir plus one --<field> per config
    field (tuples comma-separated). ``args.config(quick_overrides)`` resolves the config:
    defaults, then the --quick profile, then explicit flags."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small profile for a smoke test (~1 minute on CPU)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--plot-only", action="store_true", help="redraw the plot from the CSV")
    p.add_argument("--force", action="store_true", help="recompute cached cells")
    p.add_argument("--out-dir", default=None,
                   help="where the CSV, JSON and PNG go (default results/ for the script's default profile, "
                        "results/<profile>/ for the others: results/quick/ is git-ignored, so a smoke run never "
                        "overwrites the committed results)")
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


class Run(NamedTuple):
    """What a script's ``compute`` and ``plot`` see: the resolved config, the cell cache, the
    profile name, where outputs go and the parsed arguments."""
    cfg: object
    cache: CellCache
    profile: str
    out: Path
    args: argparse.Namespace
    sidecar: dict | None = None          # the run's sidecar record (read back with --plot-only)


class Computed(NamedTuple):
    """What a script's ``compute`` returns: the tidy table, extra sidecar fields, and problems
    (missing data or weights) that make the script exit 1 after writing what it could."""
    df: pd.DataFrame
    sidecar: dict = {}
    problems: tuple = ()


def script_main(argv, *, doc: str, name: str, config_cls, profiles: dict, compute: Callable[[Run], Computed],
                plot: Callable, summary: Callable, default_profile: str = "budget", version: str = "1",
                default_dir: str = "results") -> int:
    """The life of every reproduction script: parse the flags, resolve the profile (``--quick``
    is the ``quick`` profile), compute the table through the cell cache (or read it back with
    ``--plot-only``), write CSV and sidecar JSON atomically (rows of ``kind`` "trace" go to
    ``<name>_trace.csv``, the rest to ``<name>.csv``), draw ``plot(df, png, run)``, print
    ``summary(df)`` (a table or a tuple of tables) and the files written. ``version``: the
    script's code version, part of every cell key (bump it when the cells' content changes).
    Outputs go to ``default_dir`` for the default profile, results/<profile>/ for the others."""
    p = base_parser(doc, config_cls)
    p.add_argument("--profile", choices=sorted(profiles), default=default_profile,
                   help="settings to run (--quick is the same as --profile quick)")
    args = p.parse_args(argv)
    profile = "quick" if args.quick else args.profile
    if args.out_dir is None:
        args.out_dir = default_dir if profile == default_profile else f"results/{profile}"
    run = Run(args.config(profiles[profile], apply=True), CellCache(args.work_dir, args.force, version), profile,
              Path(args.out_dir), args)
    csv, js, png = output_paths(args, name)
    trace_csv = csv.with_name(f"{name}_trace.csv")
    problems: tuple = ()
    if args.plot_only:
        df = pd.read_csv(csv)
        if trace_csv.exists():
            df = pd.concat([df, pd.read_csv(trace_csv)], ignore_index=True)
        if js.exists():
            run = run._replace(sidecar=json.loads(js.read_text()))
    else:
        t0 = time.perf_counter()
        run.out.mkdir(parents=True, exist_ok=True)
        df, extra, problems = compute(run)
        wall = time.perf_counter() - t0
        is_trace = (df["kind"] == "trace") if "kind" in df else pd.Series(False, index=df.index)
        if is_trace.any():                     # traces and summaries live in separate files, each with a sidecar
            write_csv(df[is_trace].dropna(axis=1, how="all"), trace_csv)
            write_csv(df[~is_trace].dropna(axis=1, how="all"), csv)
            write_sidecar(trace_csv.with_suffix(".json"), run.cfg, wall, run.cfg.device, profile=profile,
                          rows=f"the kind == 'trace' rows of this run; the other rows, with the run's summary: "
                               f"{csv.name} and {js.name}")
        else:
            write_csv(df, csv)
        run = run._replace(sidecar=write_sidecar(js, run.cfg, wall, run.cfg.device, profile=profile, **extra))
    plot(df, png, run)
    tables = summary(df)
    finish(*(tables if isinstance(tables, tuple) else (tables,)),
           [csv, *([trace_csv, trace_csv.with_suffix(".json")] if trace_csv.exists() else []), js, png])
    if problems:
        print("\nincomplete:\n- " + "\n- ".join(sorted(set(problems))), file=sys.stderr)
        return 1
    return 0


def summary_pivot(*index: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """``summary`` for tables with a ``kind`` column: the summary rows, one column per metric."""
    def summarise(df: pd.DataFrame) -> pd.DataFrame:
        return df[df.kind == "summary"].pivot_table(index=list(index), columns="metric", values="value").reset_index()
    return summarise


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


def sample_grid(samples: dict, path: Path, per_row: int = 16, title: str | None = None,
                run: Run | None = None) -> None:
    """One labelled row per entry: ``samples[name]`` is (n, C, H, W) in [0, 1]; the first ``per_row``.
    ``title`` says what the images are (e.g. "local modes, not MCMC samples")."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torchvision.utils import make_grid
    fig, axes = plt.subplots(len(samples), 1, figsize=(12, 1.1 * len(samples) + 0.6), squeeze=False)
    for ax, (name, x) in zip(axes[:, 0], samples.items()):
        ax.imshow(make_grid(x[:per_row].float().cpu(), nrow=per_row, padding=1, pad_value=0.5).permute(1, 2, 0))
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        import textwrap
        fig.suptitle(textwrap.fill(title, 150), fontsize=10)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    save_figure(fig, path, run)
