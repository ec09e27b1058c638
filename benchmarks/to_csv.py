"""pytest-benchmark JSON -> tidy CSV with achieved GFLOP/s and the fraction of the matmul peak.

    python -m benchmarks.to_csv results/bench.json results/bench.csv
"""
import json
import sys

import pandas as pd

from dbm.results import write_csv


def tidy(record: dict) -> pd.DataFrame:
    rows = []
    for b in record["benchmarks"]:
        info, st = b["extra_info"], b["stats"]
        base = {"name": b["name"], "step": info.get("step"), "flops_kind": info.get("flops_kind", "executed"), "device": info.get("device"),
                "shape": info.get("shape"), "batch": info.get("batch"),
                "threads": info.get("threads"), "machine": record["machine_info"].get("cpu", {}).get("brand_raw"),
                "datetime": record.get("datetime")}
        gflops = info["flops"] / st["median"] / 1e9 if info.get("flops") else float("nan")
        metrics = {"median_s": st["median"], "min_s": st["min"], "max_s": st["max"],
                   "iqr_s": st["iqr"], "rounds": st["rounds"], "flops": info.get("flops"),
                   "gflops": gflops, "peak_gflops": info.get("peak_gflops"),
                   "fraction_of_peak": gflops / info["peak_gflops"] if info.get("peak_gflops") else float("nan")}
        for k in ("mean_sweeps", "max_sweeps", "pos_sweeps_mean", "neg_sweeps_mean", "neg_p_tau1"):
            if k in info:
                metrics[k] = info[k]
        rows += [{**base, "metric": k, "value": v} for k, v in metrics.items()]
    return pd.DataFrame(rows)


def main(argv=None):
    src, dst = (argv or sys.argv[1:])[:2]
    with open(src) as f:
        df = tidy(json.load(f))
    write_csv(df, dst)
    wide = df.pivot_table(index=["step", "device", "shape", "batch"], columns="metric", values="value")
    cols = [c for c in ("median_s", "gflops", "fraction_of_peak", "mean_sweeps", "neg_sweeps_mean") if c in wide]
    print(wide[cols].to_string(float_format="{:.3g}".format))


if __name__ == "__main__":
    main()
