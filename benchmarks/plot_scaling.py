"""results/bench.csv -> results/bench_scaling.png and the fitted exponents (the scaling rows of
``bench_scaling.py``).

    python -m benchmarks.plot_scaling results/bench.csv results/bench_scaling.png

Left: time of one update against width d (log-log) per batch, with the fitted power law and the
matrix-product limit (the update's executed FLOPs / the peak measured in the same run). Right:
local-search sweeps T per update against d with the fitted exponent. Prints the exponents.
"""
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from dbm.provenance import atomic_path

STEP = "scaling_update_ucd-mh-lmi"


def exponents(df: pd.DataFrame) -> pd.DataFrame:
    """Least-squares slopes of log(time), log(T) and log(FLOPs) in log(d), per device and batch."""
    wide = df[df.step == STEP].pivot_table(index=["device", "batch", "width"], columns="metric",
                                           values="value").reset_index()
    wide["sweeps"] = (wide.pos_sweeps_mean + wide.neg_sweeps_mean) / 2
    rows = []
    for (device, batch), g in wide.groupby(["device", "batch"]):
        x = np.log(g.width.to_numpy(float))
        fit = {k: float(np.polyfit(x, np.log(g[c].to_numpy(float)), 1)[0])
               for k, c in (("time", "median_s"), ("sweeps", "sweeps"), ("flops", "flops"))}
        rows.append(dict(device=device, batch=int(batch), widths=f"{int(g.width.min())}-{int(g.width.max())}",
                         time_exponent=fit["time"], sweeps_exponent=fit["sweeps"], flops_exponent=fit["flops"]))
    return pd.DataFrame(rows), wide


def plot(df: pd.DataFrame, path, json_path=None) -> pd.DataFrame:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fits, wide = exponents(df)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    for (device, batch), g in wide.groupby(["device", "batch"]):
        f = fits[(fits.device == device) & (fits.batch == batch)].iloc[0]
        line, = ax.loglog(g.width, g.median_s, "o-", label=f"{device}, batch {int(batch)}: "
                                                          f"time ~ d^{f.time_exponent:.2f}")
        ax.loglog(g.width, g.flops / (g.peak_gflops * 1e9), "--", color=line.get_color(), alpha=0.6,
                  label=f"matrix-product limit (FLOPs ~ d^{f.flops_exponent:.2f})")
        bx.loglog(g.width, g.sweeps, "o-", color=line.get_color(),
                  label=f"{device}, batch {int(batch)}: T ~ d^{f.sweeps_exponent:.2f}")
    ax.set_xlabel("width d, DBM d-d-d (log)")
    ax.set_ylabel("seconds per training update, median (log)")
    ax.set_title("One UCD-MH-LMI update")
    ax.legend(fontsize=7)
    bx.set_xlabel("width d, DBM d-d-d (log)")
    bx.set_ylabel("search sweeps T per chain, both phases (log)")
    bx.set_title("Sweeps of the local-mode search")
    bx.legend(fontsize=7)
    machine = df.machine.dropna().iloc[0] if "machine" in df and df.machine.notna().any() else "?"
    side = Path(path).with_name("bench.json") if json_path is None else Path(json_path)   # pytest-benchmark's JSON
    commit = ""
    if side.exists():
        ci = json.loads(side.read_text()).get("commit_info", {})
        commit = f"commit {ci.get('id', '?')[:10]}" + (" WITH UNCOMMITTED CHANGES" if ci.get("dirty") else " (clean tree)")
    fig.suptitle("Speed of a UCD-MH-LMI training update against width (make bench)", fontsize=11)
    fig.text(0.01, 0.01, f"make bench | {commit} | {df.datetime.dropna().iloc[0][:10] if df.datetime.notna().any() else ''}"
                         f" | {machine}, {int(df.threads.dropna().iloc[0])} threads", fontsize=7, color="0.4")
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return fits


def main(argv=None):
    src, dst = (argv or sys.argv[1:])[:2]
    fits = plot(pd.read_csv(src), dst, Path(src).with_suffix(".json"))
    print(fits.to_string(index=False, float_format="{:.2f}".format))


if __name__ == "__main__":
    main()
