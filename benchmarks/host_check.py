"""Say which machine a committed pytest-benchmark JSON was measured on, and warn when it is not the
machine of a new run: ``make bench-compare`` compares timings, which only means something on the
same CPU.

    python -m benchmarks.host_check results/bench.json results/quick/bench.json
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def host(path: str | Path) -> dict:
    """{cpu, cores, node, date, commit} of a pytest-benchmark JSON's machine_info/commit_info."""
    d = json.loads(Path(path).read_text())
    m, c = d.get("machine_info", {}), d.get("commit_info", {})
    cpu = m.get("cpu", {})
    return {"cpu": cpu.get("brand_raw") or m.get("processor") or "unknown",
            "cores": cpu.get("count"), "node": m.get("node"), "date": d.get("datetime", "")[:19],
            "commit": (c.get("id") or "")[:8] + ("+dirty" if c.get("dirty") else "")}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m benchmarks.host_check COMMITTED.json NEW.json", file=sys.stderr)
        return 2
    old, new = host(argv[0]), host(argv[1])
    print(f"committed timings: {old['cpu']} ({old['cores']} cores), {old['date']}, commit {old['commit']}")
    print(f"this run:          {new['cpu']} ({new['cores']} cores), {new['date']}, commit {new['commit']}")
    if (old["cpu"], old["cores"]) != (new["cpu"], new["cores"]):
        print("WARNING: another CPU than the committed timings': the comparison below is between machines, "
              "not versions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
