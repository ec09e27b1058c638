"""Splice a partial fig25 run into a profile's committed table.

A profile's full table comes from one ``make zoo`` + ``make reproduce-fig25`` run. When some of its
methods change (the faithful-order issue changed pi0 of every UCD-MH-LMI preset) and the cell cache
of the others is gone, those methods are re-run alone into a folder of their own:

    python -m reproduce.fig25_end_to_end --profile converged --methods ucd-mh-lmi,ucd-mh-lmi-marg \\
        --out-dir results/converged/faithful

and spliced into the table:

    python -m reproduce.fig25_splice --profile converged --part results/converged/faithful

The part's (data set, method) cells replace the table's rows of the same cells (final and trace
rows); the training-image floor of the classifier-FD ("data" rows) stays the table's. The sidecar
keeps its provenance and gains a ``spliced`` record per part (its folder, cells, commit, CPU, wall
time and config, from the part's own sidecar); its summary and verdicts are recomputed from the
spliced rows, and the figure is redrawn. Splicing the same part again replaces the same cells.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from dbm.results import atomic_write_text, write_csv
from reproduce import fig25_end_to_end as fig25

NAME = fig25.NAME


def _read(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    csv = folder / f"{NAME}.csv"
    if not csv.exists():
        raise SystemExit(f"{csv} not found: run fig25 into {folder} first")
    trace = folder / f"{NAME}_trace.csv"
    side = csv.with_suffix(".json")
    return (pd.read_csv(csv), pd.read_csv(trace) if trace.exists() else pd.DataFrame(),
            json.loads(side.read_text()) if side.exists() else {})


def _without(df: pd.DataFrame, cells: set) -> pd.DataFrame:
    if df.empty:
        return df
    keep = [(d, m) not in cells for d, m in zip(df.dataset, df.method)]
    return df[keep]


def splice(table: Path, part: Path) -> dict:
    """Replace ``table``'s rows of the cells in ``part``; returns the ``spliced`` record."""
    base, base_trace, meta = _read(table)
    new, new_trace, part_meta = _read(part)
    cells = {(d, m) for d, m in zip(new.dataset, new.method) if m != "data"}
    new = new[new.method != "data"]
    final = pd.concat([_without(base, cells), new], ignore_index=True)
    trace = pd.concat([_without(base_trace, cells), new_trace], ignore_index=True)
    env = part_meta.get("environment", {})
    record = {"part": str(part), "cells": sorted(f"{d}/{m}" for d, m in cells), "git_sha": env.get("git_sha"),
              "device_name": env.get("device_name"), "wall_time_s": part_meta.get("wall_time_s"),
              "config": part_meta.get("config")}
    write_csv(final, table / f"{NAME}.csv")
    if not trace.empty:
        write_csv(trace, table / f"{NAME}_trace.csv")
    both = pd.concat([final, trace], ignore_index=True)
    meta["spliced"] = [r for r in meta.get("spliced", []) if r.get("part") != str(part)] + [record]
    meta["summary"] = fig25.summarise(both).to_dict("records")
    meta["verdicts"] = fig25.verdicts(both).to_dict("records")
    meta["seeds"] = {ds: {m: sorted(int(s) for s in g.seed.unique()) for m, g in d.groupby("method", sort=False)}
                     for ds, d in final[final.method != "data"].groupby("dataset")}
    atomic_write_text(table / f"{NAME}.json", json.dumps(meta, indent=2, default=str) + "\n")
    fig25.plot(both, table / f"{NAME}.png")
    return record


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="converged", help="the table: results/<profile>/ (budget: results/)")
    p.add_argument("--table", default=None, help="the table's folder (default from --profile)")
    p.add_argument("--part", required=True, help="the folder of the partial fig25 run")
    args = p.parse_args(argv)
    table = Path(args.table or ("results" if args.profile == "budget" else f"results/{args.profile}"))
    rec = splice(table, Path(args.part))
    print(f"spliced {len(rec['cells'])} cells from {args.part} into {table}: {', '.join(rec['cells'])}")
    both = pd.concat([pd.read_csv(table / f"{NAME}.csv")] + ([pd.read_csv(table / f"{NAME}_trace.csv")]
                                                             if (table / f"{NAME}_trace.csv").exists() else []))
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(fig25.verdicts(both).to_string(index=False))
    return 0


if __name__ == "__main__":
    from dbm.cli import run_main
    sys.exit(run_main(main))
