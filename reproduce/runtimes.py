"""Measured runtimes of the make targets: the one source for `make help`, the README and the docs.

Every long make target runs its recipe through ``record``, which times it (wall seconds and the CPU
seconds of its processes) and prints the result. With ``DBM_RECORD_RUNTIME=1`` (``make ... RECORD=1``)
it also appends a row to results/runtimes.csv on success: the times, whether the machine was
already busy when it started (the 1-minute load average; on a shared machine wall time overstates
the work, so CPU time stands beside it), the commit, clean tree or not, the CPU and the date.
``from-sidecar`` adds the row of a run made outside make from its sidecar JSON (its wall and CPU
time, commit, CPU and date), saying so in ``source``. ``help`` prints the Makefile's targets with their latest measured runtime
(or "not measured yet"); reproduce/tables.py writes the README's runtime column from the same file.
Standard library only, so `make help` works before the virtual environment exists.

    python -m reproduce.runtimes record TARGET PROFILE {full,quick} -- COMMAND...
    python -m reproduce.runtimes from-sidecar TARGET PROFILE {full,quick} SIDECAR.json [NOTE]
    python -m reproduce.runtimes sidecar                  (rewrite results/runtimes.json from the CSV)
    python -m reproduce.runtimes help [Makefile]
"""
from __future__ import annotations

import csv
import datetime
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dbm.host import cpu_model          # standard library only, like this module

ROOT = Path(__file__).resolve().parents[1]
CSV = ROOT / "results" / "runtimes.csv"
FIELDS = ("target", "profile", "mode", "wall_s", "cpu_s", "load_before", "shared", "cpu_model", "cpus", "commit",
          "clean_tree", "date_utc", "source")


def _git(*args) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def read(path: Path = CSV) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def append(row: dict, path: Path = CSV) -> None:
    """Add ``row`` to the CSV, written to a temporary name and renamed (never half written)."""
    rows = read(path) + [row]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-runtimes-", suffix=".csv")
    with os.fdopen(fd, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)
    write_sidecar(path)


def write_sidecar(path: Path = CSV) -> dict:
    """``runtimes.json`` beside the CSV, the sidecar every result has: what the table holds, and the
    provenance of its newest row (the run that last wrote it: commit, clean tree, CPU, date, wall
    and CPU time) with the versions of this environment (torch read from its metadata, so the
    standard library suffices)."""
    import json
    import platform
    from importlib import metadata
    rows = read(path)
    last = rows[-1]
    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = None
    record = {"config": {"csv": path.name, "rows": len(rows), "fields": list(FIELDS),
                         "record": "make <target> RECORD=1 (reproduce/runtimes.py)"},
              "environment": {"git_sha": last["commit"], "clean_tree": last["clean_tree"] == "True",
                              "cpu_model": last["cpu_model"], "gpu": None, "python": platform.python_version(),
                              "torch": torch_version, "platform": platform.platform(), "device": "cpu",
                              "date_utc": last["date_utc"]},
              "wall_time_s": float(last["wall_s"]), "cpu_time_s": float(last["cpu_s"]),
              "note": "environment, wall and CPU time: the newest row's run (each row has its own)"}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-runtimes-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path.with_suffix(".json"))
    return record


def record(target: str, profile: str, mode: str, command: list[str], path: Path = CSV) -> int:
    """Run ``command``; on success append its measured runtime. Returns its exit status."""
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    rc = subprocess.call(command if len(command) > 1 else command[0], shell=len(command) == 1)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"{target}: {_minutes(wall)} wall, {_minutes(cpu)} CPU" + (" (the machine was busy at the start)"
                                                                     if load >= 0.5 else ""), file=sys.stderr)
    if rc == 0 and os.environ.get("DBM_RECORD_RUNTIME") == "1":
        dirty = bool(_git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results"))
        append(dict(target=target, profile=profile, mode=mode, wall_s=f"{wall:.1f}", cpu_s=f"{cpu:.1f}",
                    load_before=f"{load:.2f}", shared=str(load >= 0.5), cpu_model=cpu_model(),
                    cpus=str(os.cpu_count()), commit=_git("rev-parse", "HEAD")[:10], clean_tree=str(not dirty),
                    date_utc=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                    source="make"), path)
    return rc


def from_sidecar(target: str, profile: str, mode: str, sidecar: Path, note: str = "", path: Path = CSV) -> dict:
    """The runtime row of a run made outside make, from its sidecar (it must hold the CPU time)."""
    import json
    rec = json.loads(Path(sidecar).read_text())
    env = rec["environment"]
    if "cpu_time_s" not in rec:
        raise SystemExit(f"{sidecar} has no cpu_time_s (written before issue 34): time the target with make instead")
    row = dict(target=target, profile=profile, mode=mode, wall_s=f"{rec['wall_time_s']:.1f}",
               cpu_s=f"{rec['cpu_time_s']:.1f}", load_before="", shared="unknown", cpu_model=env["cpu_model"],
               cpus=re.search(r"\((\d+) cpus", env.get("device_name", "")).group(1) if "cpus" in env.get("device_name", "") else "",
               commit=env["git_sha"][:10], clean_tree=str(env["clean_tree"]), date_utc=env["date_utc"],
               source=f"sidecar {os.path.relpath(Path(sidecar).resolve(), ROOT)}"
                      + (f"; {note}" if note else ""))
    append(row, path)
    return row


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def latest(target: str, profile: str | None = None, mode: str = "full", rows: list[dict] | None = None) -> dict | None:
    """The newest measurement of ``target`` (in ``profile`` when given) and ``mode``."""
    rows = read() if rows is None else rows
    hits = [r for r in rows if r["target"] == target and r["mode"] == mode and (profile is None or r["profile"] == profile)]
    return hits[-1] if hits else None


def describe(row: dict | None, short: bool = False) -> str:
    """'8 min (CPU 15 min)' with 'machine busy' when it was shared; 'not measured yet' without a row."""
    if row is None:
        return "not measured yet"
    wall, cpu = float(row["wall_s"]), float(row["cpu_s"])
    text = f"{_minutes(wall)} (CPU {_minutes(cpu)}" + (", machine busy" if row["shared"] == "True" else "") + ")"
    return text if short else f"{text} on {row['cpus']} x {row['cpu_model']}, {row['date_utc'][:10]}"


def help_text(makefile: Path = ROOT / "Makefile", path: Path = CSV) -> str:
    rows = read(path)
    lines = []
    for line in makefile.read_text().splitlines():
        m = re.match(r"^([a-z0-9-]+):.*?## (.*)$", line)
        if not m:
            continue
        target, doc = m.groups()
        full, quick = latest(target, rows=rows), latest(target, mode="quick", rows=rows)
        times = ""
        if full or quick:
            times = " [measured: " + "; ".join(
                ([f"{full['profile']}: {describe(full, short=True)}"] if full else [])
                + ([f"QUICK=1: {describe(quick, short=True)}"] if quick else [])) + "]"
        lines.append(f"{target:<22}{doc}{times}")
    return "\n".join(lines) + f"\n\nruntimes: the newest row of each target in {CSV.relative_to(ROOT)} (`make <target> RECORD=1` adds one)"


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["record"] and "--" in argv:
        i = argv.index("--")
        target, profile, mode = argv[1:i]
        return record(target, profile, mode, argv[i + 1:])
    if argv[:1] == ["from-sidecar"]:
        print(from_sidecar(*argv[1:4], Path(argv[4]), *argv[5:6]))
        return 0
    if argv[:1] == ["sidecar"]:
        print(write_sidecar())
        return 0
    if argv[:1] == ["help"]:
        print(help_text(Path(argv[1]) if len(argv) > 1 else ROOT / "Makefile"))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
