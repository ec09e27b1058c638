"""Splice a partial run of fig25 or fig26 into a profile's committed table.

A profile's full table comes from one run of the figure's script. When some of its methods change
(the faithful-order issue changed pi0 of every UCD-MH-LMI preset) and the cell cache of the others
is gone, those methods are re-run alone into a folder of their own:

    python -m reproduce.fig25_end_to_end --profile converged --methods ucd-mh-lmi \\
        --out-dir results/converged/faithful
    python -m reproduce.fig26_fid --profile converged --dbm-only ucd-mh-lmi --gans '' \\
        --out-dir results/converged/faithful-fig26

and spliced into the table:

    python -m reproduce.splice --figure fig25 --profile converged --part results/converged/faithful

The part's cells (fig25: data set and method; fig26: data set and model) replace the table's rows
of the same cells, trace rows included; the training-image floor ("data" rows) stays the table's
unless ``--floor`` takes the part's. Re-running the cells of a table made from a dirty tree, part by
part from clean trees, leaves fewer of its rows dirty: the provenance table names those left.
The sidecar keeps its provenance and gains a ``spliced`` record per part (its folder, cells,
commit, CPU, wall time and config, from the part's own sidecar); its summary (and fig25's
verdicts) are recomputed from the spliced rows, and the figure is redrawn. Splicing the same part
again replaces the same cells.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from dbm.provenance import atomic_write_text, write_csv


CELL_KEYS = {"fig25": ("dataset", "method"), "fig26": ("dataset", "model")}   # a table's cell: its key columns


def _figure(name: str):
    """(module, its table's name, the cell's key columns, the column whose "data" rows are the floor)."""
    if name == "fig25":
        from reproduce import fig25_end_to_end as m
        return m, m.NAME, CELL_KEYS[name], "method"
    if name == "fig26":
        from reproduce import fig26_fid as m
        return m, m.NAME, CELL_KEYS[name], "family"
    raise SystemExit(f"--figure must be fig25 or fig26, got {name!r}")


def _read(folder: Path, name: str) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    csv = folder / f"{name}.csv"
    if not csv.exists():
        raise SystemExit(f"{csv} not found: run the figure into {folder} first")
    trace = folder / f"{name}_trace.csv"
    side = csv.with_suffix(".json")
    return (pd.read_csv(csv), pd.read_csv(trace) if trace.exists() else pd.DataFrame(),
            json.loads(side.read_text()) if side.exists() else {})


def _cells(df: pd.DataFrame, key) -> list[tuple]:
    return list(zip(*(df[k] for k in key))) if not df.empty else []


def cell_names(cells) -> list[str]:
    """The cells as a ``spliced`` record names them ("mnist/cd"), sorted."""
    return sorted({"/".join(map(str, c)) for c in cells})


def splice(table: Path, part: Path, figure: str = "fig25", datasets: tuple = (), floor_too: bool = False) -> dict:
    """Replace ``table``'s rows of the cells in ``part`` (those of ``datasets`` alone when given:
    e.g. where the part's feature extractor is the table's); with ``floor_too`` the part's floor
    ("data" rows) replaces the table's on its data sets as well. Returns the ``spliced`` record."""
    mod, name, key, floor = _figure(figure)
    base, base_trace, meta = _read(table, name)
    new, new_trace, part_meta = _read(part, name)
    if datasets:
        new = new[new.dataset.isin(datasets)]
    whole = _whole_datasets(base, new, key, floor)
    if not floor_too:
        new = new[(new[floor] != "data") | new.dataset.isin(whole)]
    new = new[new[key[1]].notna()] if key[1] in new else new
    cells = set(_cells(new, key))

    def without(df):
        if df.empty:
            return df
        return df[[c not in cells and ds not in whole for c, ds in zip(_cells(df, key), df.dataset)]]
    final = pd.concat([without(base), new], ignore_index=True)
    trace = pd.concat([without(base_trace), new_trace[[c in cells for c in _cells(new_trace, key)]]
                       if not new_trace.empty else new_trace], ignore_index=True)
    env = part_meta.get("environment", {})
    record = {"part": str(part), "cells": cell_names(cells), "git_sha": env.get("git_sha"),
              "whole_datasets": sorted(whole), "clean_tree": env.get("clean_tree"),
              "device_name": env.get("device_name"), "wall_time_s": part_meta.get("wall_time_s"),
              "config": part_meta.get("config")}
    write_csv(final, table / f"{name}.csv")
    if not trace.empty:
        write_csv(trace, table / f"{name}_trace.csv")
    both = pd.concat([final, trace], ignore_index=True)
    meta["spliced"] = [r for r in meta.get("spliced", []) if r.get("part") != str(part)] + [record]
    meta["summary"] = mod.summarise(both).to_dict("records")
    if figure == "fig25":
        meta["verdicts"] = mod.verdicts(both).to_dict("records")
        meta["seeds"] = {ds: {m: sorted(int(s) for s in g.seed.unique()) for m, g in d.groupby("method", sort=False)}
                         for ds, d in final[final.method != "data"].groupby("dataset")}
    atomic_write_text(table / f"{name}.json", json.dumps(meta, indent=2, default=str) + "\n")
    import types
    profile = "budget" if table == Path("results") else table.name
    mod.plot(both, table / f"{name}.png", types.SimpleNamespace(profile=profile, sidecar=meta, cfg=None))
    return record


def _whole_datasets(base: pd.DataFrame, new: pd.DataFrame, key, floor) -> set:
    """The data sets whose part was scored by another feature extractor than the table's (the
    classifier's ``weights_hash``: fig26's rows, and fig25's classifier-FD rows since 2026-12-08).
    Classifier-FD values from two extractors cannot share a table, so such a data set is taken whole
    from the part, its floor included, and the part must hold every model (fig25: method) the table
    has there; otherwise this stops. A table whose rows name no extractor (fig25 before the column)
    cannot be checked: its cells are replaced one by one."""
    whole = set()
    if "weights_hash" not in base or "weights_hash" not in new:
        return whole
    for ds, part_rows in new.groupby("dataset"):
        mine = set(part_rows.weights_hash.dropna())
        theirs = set(base[base.dataset == ds].weights_hash.dropna())
        if not theirs or mine <= theirs:
            continue
        missing = set(base[(base.dataset == ds) & (base[floor] != "data")][key[1]]) - set(part_rows[key[1]])
        if missing:
            raise SystemExit(f"{ds}: the part was scored by another feature extractor than the table, and lacks "
                             f"{sorted(missing)}: keep it in its own folder, or re-run every model of {ds}")
        whole.add(ds)
    return whole


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--figure", default="fig25", choices=("fig25", "fig26"))
    p.add_argument("--profile", default="converged", help="the table: results/<profile>/ (budget: results/)")
    p.add_argument("--table", default=None, help="the table's folder (default from --profile)")
    p.add_argument("--part", required=True, help="the folder of the partial run")
    p.add_argument("--datasets", default="", help="splice these data sets' cells alone (comma-separated)")
    p.add_argument("--floor", action="store_true", help="take the part's floor (the training images' rows) too")
    args = p.parse_args(argv)
    table = Path(args.table or ("results" if args.profile == "budget" else f"results/{args.profile}"))
    rec = splice(table, Path(args.part), args.figure, tuple(filter(None, args.datasets.split(","))), args.floor)
    print(f"spliced {len(rec['cells'])} cells from {args.part} into {table}: {', '.join(rec['cells'])}")
    if args.figure == "fig25":
        from reproduce import fig25_end_to_end as fig25
        name = fig25.NAME
        both = pd.concat([pd.read_csv(table / f"{name}.csv")] + ([pd.read_csv(table / f"{name}_trace.csv")]
                                                                 if (table / f"{name}_trace.csv").exists() else []))
        with pd.option_context("display.width", 200, "display.max_columns", 30):
            print(fig25.verdicts(both).to_string(index=False))
    return 0


if __name__ == "__main__":
    from dbm.cli import run_main
    sys.exit(run_main(main))
