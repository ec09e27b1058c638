"""The update of two versions of this library timed side by side: issue 14's protocol.

One UCD-MH-LMI training update of a DBM 784-784-784 on binary MNIST (fresh orthogonal
initialisation, SGD lr 1e-2, fresh uniform start, exact local mode, one sweep, coupled MH),
median over the timed updates after ``--warmup`` untimed ones. Each timed update starts from the
same freshly initialised model (so every update does the work of an early one), except with
``--warm-start``, where the model and the estimator state are carried from update to update.

The versions are a git ref (checked out into a temporary worktree) and the working tree. The
two alternate process by process (``--procs`` processes each, ``--updates`` timed updates per
process, the same seeds), so a drift of the machine's speed falls on both alike; only the ratio
measured in one run is worth reporting (docs/performance.md).

    python -m benchmarks.side_by_side --ref 1016ea7 --batch 100 1000
    make bench-side-by-side REF=1016ea7

Writes a tidy CSV (one row per timed update: version, batch, warm_start, process, update, seconds,
sweeps: the local search's sweeps per chain in that update, positive plus negative phase, so a
version whose pi0 searches longer shows why it is slower)
and a sidecar JSON with the medians, interquartile ranges, ratios and the machine; prints the table.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from dbm.provenance import atomic_write_text, cpu_time_s, environment, write_csv

ROOT = Path(__file__).resolve().parents[1]

# Run inside a child process whose sys.path starts at the version's tree. Uses only API that
# both old and new versions have (DBM(sizes, generator=...), estimator(...).loss(model, v, state, g)).
CHILD = r"""
import json, sys, time, torch
torch.set_num_threads({threads})
import dbm
from dbm.data import load_images
if {synthetic}:
    v = (torch.rand({batch}, {sizes}[0], generator=torch.Generator().manual_seed(0)) < 0.13).float()
else:
    v = dbm.encode_binary(load_images("mnist", "train", {data_dir!r})[:{batch}])
est = dbm.estimator("ucd-mh-lmi", warm_start={warm})
gen = torch.Generator().manual_seed({seed})
def fresh():
    return dbm.DBM({sizes}, generator=torch.Generator().manual_seed(1))
model, state, times, sweeps = fresh(), None, [], []
for i in range({warmup} + {updates}):
    if not {warm}:
        model, state = fresh(), None
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    t = time.perf_counter()
    loss, state, info = est.loss(model, v, state, gen)
    opt.zero_grad()
    loss.backward()
    opt.step()
    times.append(time.perf_counter() - t)
    sweeps.append(float(info.pos.sweeps.float().mean() + info.neg.sweeps.float().mean()))
assert dbm.__file__.startswith({tree!r}), dbm.__file__
print(json.dumps({{"seconds": times[{warmup}:], "sweeps": sweeps[{warmup}:]}}))
"""


def worktree(ref: str, into: Path) -> Path:
    """Check ``ref`` out into a detached worktree under ``into``; -> its path."""
    path = into / f"ref-{ref}"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(path), ref],
                   check=True, capture_output=True, text=True)
    return path


def time_updates(tree: Path, batch: int, warm: bool, args, seed: int) -> dict[str, list[float]]:
    """{"seconds": of each timed update, "sweeps": its local-search sweeps per chain (mean over the
    chains, positive plus negative phase)} in one fresh process importing ``dbm`` from ``tree``."""
    code = CHILD.format(threads=args.threads, synthetic=args.data_dir is None, batch=batch,
                        data_dir=str(args.data_dir), warm=warm, seed=seed, sizes=list(args.sizes),
                        warmup=args.warmup, updates=args.updates, tree=str(tree))
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS=str(args.threads))
    out = subprocess.run([sys.executable, "-c", code], cwd=str(tree), env=env, capture_output=True,
                         text=True)
    if out.returncode:
        raise RuntimeError(f"timing in {tree} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def summarise(df: pd.DataFrame, ref_name: str, new_name: str) -> pd.DataFrame:
    """Median and interquartile range per version and setting; ratio = ref median / new median;
    the mean local-search sweeps of each version."""
    rows = []
    for (batch, warm), g in df.groupby(["batch", "warm_start"]):
        q = g.groupby("version")["seconds"].quantile([0.25, 0.5, 0.75]).unstack()
        row = {"batch": batch, "warm_start": warm}
        for name, key in ((ref_name, "ref"), (new_name, "new")):
            row.update({f"{key}_median_s": q.loc[name, 0.5], f"{key}_q25_s": q.loc[name, 0.25],
                        f"{key}_q75_s": q.loc[name, 0.75]})
        row["speedup"] = row["ref_median_s"] / row["new_median_s"]
        sw = g.groupby("version")["sweeps"].mean()         # the work: a new pi0 may search longer
        row.update({"ref_mean_sweeps": sw.loc[ref_name], "new_mean_sweeps": sw.loc[new_name]})
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ref", required=True, help="git ref of the version to compare against (e.g. 1016ea7)")
    p.add_argument("--batch", type=int, nargs="+", default=[100, 1000])
    p.add_argument("--warm-start", action="store_true", help="also time warm_start=True at each batch")
    p.add_argument("--procs", type=int, default=3, help="processes per version and setting")
    p.add_argument("--updates", type=int, default=10, help="timed updates per process")
    p.add_argument("--warmup", type=int, default=2, help="untimed updates first in each process")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--sizes", type=int, nargs="+", default=[784, 784, 784])
    p.add_argument("--data-dir", default=os.environ.get("DBM_DATA_DIR"),
                   help="folder with MNIST (default $DBM_DATA_DIR); without one: random bits at MNIST's ink")
    p.add_argument("--random-data", action="store_true", help="random bits at MNIST's ink even if MNIST is there")
    p.add_argument("--out", default=str(ROOT / "results" / "bench_side_by_side.csv"))
    args = p.parse_args(argv)
    t_start = time.perf_counter()
    if args.procs < 1 or args.updates < 1 or args.warmup < 0:
        p.error("--procs and --updates must be >= 1 and --warmup >= 0")
    if args.random_data:
        args.data_dir = None
    if args.data_dir is not None and not Path(args.data_dir).is_dir():
        p.error(f"--data-dir {args.data_dir} is not a folder")
    if args.data_dir is not None and args.sizes[0] != 784:
        p.error(f"MNIST has 784 pixels; --sizes starts with {args.sizes[0]} (add --random-data)")
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.ref], check=True,
                         capture_output=True, text=True).stdout.strip()
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "dbm"],
                                capture_output=True, text=True).stdout.strip())
    ref_name, new_name = f"ref {rev}", f"tree {head}" + ("+dirty" if dirty else "")
    settings = [(b, False) for b in args.batch] + ([(b, True) for b in args.batch] if args.warm_start else [])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ref_tree = worktree(rev, Path(tmp))
        try:
            for batch, warm in settings:
                for proc in range(args.procs):
                    for name, tree in ((ref_name, ref_tree), (new_name, ROOT)):
                        t = time_updates(tree, batch, warm, args, seed=proc)
                        for i, (s, w) in enumerate(zip(t["seconds"], t["sweeps"])):
                            rows.append({"version": name, "batch": batch, "warm_start": warm,
                                         "process": proc, "update": i, "seconds": s, "sweeps": w})
                        print(f"batch {batch} warm={warm} process {proc} {name}: done", file=sys.stderr)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(ref_tree)],
                           capture_output=True)
    df = pd.DataFrame(rows)
    summary = summarise(df, ref_name, new_name)
    out = Path(args.out)
    write_csv(df, out)
    side = {"ref": ref_name, "new": new_name, "sizes": args.sizes, "procs": args.procs,
            "updates": args.updates, "warmup": args.warmup, "threads": args.threads,
            "data": "mnist" if args.data_dir else "random bits (p = 0.13)",
            "environment": environment("cpu"), "date": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
            "wall_time_s": time.perf_counter() - t_start, "cpu_time_s": cpu_time_s(),
            "summary": summary.to_dict(orient="records")}
    atomic_write_text(out.with_suffix(".json"), json.dumps(side, indent=2, default=float) + "\n")
    print(summary.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
