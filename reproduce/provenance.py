"""Provenance of every committed result: which commit, whether its tree was clean, on what CPU and
GPU, with which versions, when, and for how long (wall and CPU seconds).

Three kinds of sidecar JSON live under results/: a reproduction script's (``config`` and
``environment``, written by dbm.provenance.write_sidecar), the side-by-side benchmark's
(``environment``), and pytest-benchmark's (``machine_info`` and ``commit_info``). ``facts`` reads
each into the same fields. A sidecar written before a field existed declares it in
``provenance_gaps`` ({field: why it is missing}) instead of guessing it; ``--mark-gaps`` adds those
declarations to old sidecars and changes nothing else. ``make provenance`` prints the table;
tests/test_provenance.py fails when a committed sidecar lacks a field without saying why, or
names a commit that is not in the history.

    python -m reproduce.provenance [--mark-gaps] [--dirty]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIELDS = ("git_sha", "clean_tree", "cpu_model", "gpu", "python", "torch", "date_utc", "wall_time_s", "cpu_time_s")
LEGACY = "not recorded: the sidecar predates the field (issue 34)"


def sidecars(root: Path = ROOT) -> list[Path]:
    """Every committed-style sidecar under results/ (results/quick/ is git-ignored: skipped)."""
    return sorted(p for p in (root / "results").rglob("*.json") if "quick" not in p.relative_to(root).parts)


def _cpu_from_device_name(env: dict) -> str | None:
    """Older sidecars wrote the CPU model only inside ``device_name`` ("AMD EPYC (2 cpus, ...)"),
    or only the machine type ("x86_64"), which names no CPU."""
    name = env.get("device_name") or ""
    if env.get("device", "cpu") != "cpu" or not name or name.startswith(("x86_64", "aarch64", "arm64")):
        return None
    return name.split(" (")[0]


def facts(record: dict) -> dict:
    """The provenance fields of one sidecar; a field that is not there is absent from the dict."""
    out: dict = {}
    if "commit_info" in record:                                   # pytest-benchmark
        ci, mi = record["commit_info"], record.get("machine_info", {})
        out.update(git_sha=ci.get("id"), clean_tree=not ci.get("dirty", True), python=mi.get("python_version"),
                   date_utc=record.get("datetime"))
        cpu = mi.get("cpu_model") or mi.get("cpu", {}).get("brand_raw")
        if cpu:
            out["cpu_model"] = cpu
        for k in ("gpu", "torch"):
            if k in mi:
                out[k] = mi[k]
    elif "environment" not in record and str(record.get("new", "")).startswith("tree "):   # an early side-by-side
        out["git_sha"] = record["new"].split()[1]
        if "torch" in record.get("machine", {}):
            out["torch"] = record["machine"]["torch"]
        if record.get("date"):
            out["date_utc"] = record["date"]
    else:
        env = record.get("environment", {})
        for k in ("git_sha", "python", "torch", "cpu_model", "gpu"):
            if k in env:
                out[k] = env[k]
        if "git_sha" in env:
            out["clean_tree"] = env.get("clean_tree", "-dirty" not in env["git_sha"])
        if "cpu_model" not in out and _cpu_from_device_name(env):
            out["cpu_model"] = _cpu_from_device_name(env)
        if "gpu" not in out and env.get("device") is not None:    # the device the run used
            out["gpu"] = env["device_name"] if str(env["device"]).startswith("cuda") else None
        date = env.get("date_utc") or record.get("date")
        if date:
            out["date_utc"] = date
    for k in ("wall_time_s", "cpu_time_s"):
        if k in record:
            out[k] = record[k]
    return out


def missing(record: dict) -> list[str]:
    """The fields neither recorded nor declared in ``provenance_gaps``."""
    have, gaps = facts(record), record.get("provenance_gaps", {})
    return [f for f in FIELDS if f not in have and f not in gaps]


def commit_of(sha: str) -> str:
    return sha.split("-dirty")[0]


def commit_exists(sha: str, root: Path = ROOT) -> bool:
    return subprocess.run(["git", "cat-file", "-e", f"{commit_of(sha)}^{{commit}}"], cwd=root,
                          capture_output=True).returncode == 0


def table(root: Path = ROOT):
    import pandas as pd
    rows = []
    for p in sidecars(root):
        rec = json.loads(p.read_text())
        f = facts(rec)
        rows.append({"file": str(p.relative_to(root)), "commit": commit_of(str(f.get("git_sha", "?")))[:7],
                     "clean": f.get("clean_tree"), "cpu": f.get("cpu_model"), "gpu": f.get("gpu"),
                     "date": str(f.get("date_utc", ""))[:10], "wall_s": f.get("wall_time_s"),
                     "cpu_s": f.get("cpu_time_s"), "gaps": ",".join(sorted(rec.get("provenance_gaps", {}))),
                     "spliced": "spliced" in rec, "relabelled": "relabelled" in rec})
    return pd.DataFrame(rows)


def mark_gaps(root: Path = ROOT) -> list[Path]:
    """Declare the missing fields of old sidecars (nothing else in them changes)."""
    from dbm.provenance import atomic_write_text
    changed = []
    for p in sidecars(root):
        text = p.read_text()
        rec = json.loads(text)
        gone = missing(rec)
        if gone:
            rec.setdefault("provenance_gaps", {}).update({f: LEGACY for f in gone})
            second = text.splitlines()[1] if "\n" in text else ""
            indent = len(second) - len(second.lstrip(" ")) or 2          # keep the file's own layout
            atomic_write_text(p, json.dumps(rec, indent=indent, default=str) + "\n")
            changed.append(p)
    return changed


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mark-gaps", action="store_true", help="declare the missing fields of old sidecars")
    p.add_argument("--dirty", action="store_true", help="list only results from uncommitted trees")
    args = p.parse_args(argv)
    if args.mark_gaps:
        for path in mark_gaps():
            print("declared gaps in", path.relative_to(ROOT))
    import pandas as pd
    df = table()
    if args.dirty:
        df = df[df.clean != True]                                 # noqa: E712 (None counts as not clean)
    with pd.option_context("display.width", 200, "display.max_rows", 200, "display.max_colwidth", 48):
        print(df.to_string(index=False))
    bad = {str(q.relative_to(ROOT)): missing(json.loads(q.read_text())) for q in sidecars()}
    bad = {k: v for k, v in bad.items() if v}
    for k, v in bad.items():
        print(f"{k}: missing {', '.join(v)} (run with --mark-gaps to declare them)", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
