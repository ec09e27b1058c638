"""pytest-benchmark JSON -> tidy CSV with achieved GFLOP/s and the fraction of the matmul peak.

    python -m benchmarks.to_csv results/bench.json results/bench.csv
    python -m benchmarks.to_csv --markdown results/bench.csv      # the README table
"""
import json
import sys

import pandas as pd

from dbm.provenance import write_csv


def tidy(record: dict) -> pd.DataFrame:
    rows = []
    for b in record["benchmarks"]:
        info, st = b["extra_info"], b["stats"]
        base = {"name": b["name"], "step": info.get("step"), "flops_kind": info.get("flops_kind", "executed"),
                "device": info.get("device"),
                "shape": info.get("shape"), "batch": info.get("batch"), "width": info.get("width"),
                "threads": info.get("threads"), "machine": record["machine_info"].get("cpu", {}).get("brand_raw"),
                "datetime": record.get("datetime")}
        gflops = info["flops"] / st["median"] / 1e9 if info.get("flops") else float("nan")
        metrics = {"median_s": st["median"], "min_s": st["min"], "max_s": st["max"],
                   "iqr_s": st["iqr"], "rounds": st["rounds"], "flops": info.get("flops"),
                   "gflops": gflops, "peak_gflops": info.get("peak_gflops"),
                   "fraction_of_peak": gflops / info["peak_gflops"] if info.get("peak_gflops") else float("nan")}
        for k in ("mean_sweeps", "max_sweeps", "pos_sweeps_mean", "neg_sweeps_mean", "neg_p_tau1", "host_syncs",
                  "host_syncs_max"):
            if k in info:
                metrics[k] = info[k]
        rows += [{**base, "metric": k, "value": v} for k, v in metrics.items()]
    return pd.DataFrame(rows)


def markdown(df: pd.DataFrame) -> str:
    """The README's performance table: step, batch, median [min-max], achieved GFLOP/s, peak fraction."""
    wide = df.pivot_table(index=["step", "device", "shape", "batch", "flops_kind"], columns="metric",
                          values="value").reset_index()
    lines = ["| step | device | shape | batch | median s [min, max] | GFLOP/s | fraction of peak | FLOPs counted |",
             "|---|---|---|---|---|---|---|---|"]
    for _, r in wide.iterrows():
        lines.append(f"| {r.step} | {r.device} | {r['shape']} | {int(r.batch)} | {r.median_s:.3g} "
                     f"[{r.min_s:.3g}, {r.max_s:.3g}] | {r.gflops:.0f} | {r.fraction_of_peak:.2f} | {r.flops_kind} |")
    peak = wide.peak_gflops.max()
    return "\n".join(lines) + f"\n\nmeasured fp32 matrix-product peak in this run: {peak:.0f} GFLOP/s"


def main(argv=None):
    args = argv or sys.argv[1:]
    if args and args[0] == "--markdown":
        print(markdown(pd.read_csv(args[1])))
        return
    src, dst = args[:2]
    with open(src) as f:
        df = tidy(json.load(f))
    write_csv(df, dst)
    wide = df.pivot_table(index=["step", "device", "shape", "batch"], columns="metric", values="value")
    cols = [c for c in ("median_s", "gflops", "fraction_of_peak", "mean_sweeps", "neg_sweeps_mean", "host_syncs")
            if c in wide]
    print(wide[cols].to_string(float_format="{:.3g}".format))


if __name__ == "__main__":
    main()
