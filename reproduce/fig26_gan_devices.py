"""Does a GAN cell trained on a GPU stand in for the same cell trained on the CPU? (issue 13)

fig26's converged GAN cells may be trained on a lent GPU (``make gans PROFILE=converged
DEVICE=cuda``) and evaluated on the CPU. The two devices draw different random streams, so the
runs differ sample by sample; what must agree is the classifier-FD trace. For every cell key
present in both work folders this script pairs the two traces at the steps both logged and
reports, over the later half of the shared steps, the mean and standard deviation of
log(FD_a / FD_b) (0: the same trace; the plateau rule's noise is a few per cent).

    python -m reproduce.fig26_gan_devices runs/fig26-gan-cpu runs/fig26-gan [--out results/converged]

Writes ``fig26_gan_devices.csv`` (tidy: dataset, model, method, seed, step, trained_on, classifier_fd)
and a sidecar with the per-cell summary.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from dbm.provenance import write_csv, write_sidecar

NAME = "fig26_gan_devices"


def cell_trace(folder: Path) -> tuple[dict, pd.DataFrame, str]:
    """(key inputs, classifier-FD trace, device it trained on) of one GAN cell folder."""
    inputs = json.loads(folder.with_suffix(".json").read_text())["inputs"]
    m = pd.read_csv(folder / "metrics.csv")
    fd = m[m.metric == "classifier_fd"][["step", "value"]].rename(columns={"value": "classifier_fd"})
    newest = sorted((folder / "checkpoints").glob("step-*"))[-1]
    state = torch.load(newest / "state.pt", map_location="cpu", weights_only=True)
    on = state.get("trained_on") or ("cpu" if state["gen"].numel() == torch.Generator().get_state().numel()
                                     else "cuda")
    return inputs, fd, str(on)


def compare(a_dir: Path, b_dir: Path) -> tuple[pd.DataFrame, list[dict]]:
    rows, summary = [], []
    for a in sorted(p for p in a_dir.iterdir() if p.is_dir()):
        b = b_dir / a.name
        if not (b / "metrics.csv").exists() or not (a / "metrics.csv").exists():
            continue
        (ia, fa, on_a), (_, fb, on_b) = cell_trace(a), cell_trace(b)
        ident = dict(dataset=ia["dataset"], model=ia["kind"], method=ia["kind"], seed=ia["seed"], key=a.name)
        rows += [dict(ident, step=int(s), trained_on=on, classifier_fd=float(v))
                 for fd, on in ((fa, on_a), (fb, on_b)) for s, v in zip(fd.step, fd.classifier_fd)]
        j = fa.merge(fb, on="step", suffixes=("_a", "_b"))
        late = j[j.step >= j.step.max() / 2]
        r = (late.classifier_fd_a / late.classifier_fd_b).map(math.log)
        summary.append(dict(ident, a=on_a, b=on_b, shared_steps=len(j), last_shared_step=int(j.step.max()),
                            late_points=len(r), mean_log_ratio=float(r.mean()), sd_log_ratio=float(r.std()),
                            a_last_step=int(fa.step.max()), b_last_step=int(fb.step.max())))
    return pd.DataFrame(rows), summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", type=Path, help="one work folder of GAN cells (e.g. runs/fig26-gan-cpu)")
    p.add_argument("b", type=Path, help="the other (e.g. runs/fig26-gan)")
    p.add_argument("--out", type=Path, default=Path("results/converged"))
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    for d in (args.a, args.b):
        if not d.is_dir():
            sys.exit(f"{d}: no such folder of GAN cells")
    df, summary = compare(args.a, args.b)
    if df.empty:
        sys.exit(f"no GAN cell key is in both {args.a} and {args.b}")
    args.out.mkdir(parents=True, exist_ok=True)
    csv = args.out / f"{NAME}.csv"
    write_csv(df, csv)
    write_sidecar(csv.with_suffix(".json"), {"a": str(args.a), "b": str(args.b)}, time.perf_counter() - t0, "cpu",
                  summary=summary)
    print(pd.DataFrame(summary).drop(columns="key").to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"wrote: {csv} {csv.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
