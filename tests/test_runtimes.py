"""Runtimes have one source: measured rows in results/runtimes.csv (issue 34 item 1)."""
import json
import sys

from conftest import ROOT
from reproduce import runtimes


def test_record_times_and_appends_only_when_asked(tmp_path, monkeypatch):
    path = tmp_path / "runtimes.csv"
    monkeypatch.delenv("DBM_RECORD_RUNTIME", raising=False)
    assert runtimes.record("t", "budget", "full", [sys.executable, "-c", "pass"], path) == 0
    assert not path.exists()
    monkeypatch.setenv("DBM_RECORD_RUNTIME", "1")
    assert runtimes.record("t", "budget", "full", [sys.executable, "-c", "sum(range(3_000_000))"], path) == 0
    assert runtimes.record("t", "budget", "quick", [sys.executable, "-c", "pass"], path) == 0
    rows = runtimes.read(path)
    assert [r["mode"] for r in rows] == ["full", "quick"]
    assert float(rows[0]["wall_s"]) > 0 and float(rows[0]["cpu_s"]) > 0 and rows[0]["cpu_model"] and rows[0]["commit"]
    assert runtimes.latest("t", rows=rows)["mode"] == "full"
    from reproduce import provenance
    side = json.loads(path.with_suffix(".json").read_text())
    assert provenance.missing(side) == [] and side["config"]["rows"] == 2 and side["wall_time_s"] == float(rows[1]["wall_s"])


def test_a_failed_command_is_not_recorded(tmp_path, monkeypatch):
    path = tmp_path / "runtimes.csv"
    monkeypatch.setenv("DBM_RECORD_RUNTIME", "1")
    assert runtimes.record("t", "budget", "full", [sys.executable, "-c", "raise SystemExit(3)"], path) == 3
    assert not path.exists()


def test_help_lists_every_documented_target_with_its_measurement(tmp_path):
    make = tmp_path / "Makefile"
    make.write_text("a: x  ## does a\n\tcmd\nb:  ## does b\n")
    rows = [dict(target="a", profile="budget", mode="full", wall_s="600", cpu_s="1100", load_before="1.2",
                 shared="True", cpu_model="CPU", cpus="2", commit="abc", clean_tree="True", date_utc="2026-12-07",
                 source="make")]
    runtimes.append(rows[0], tmp_path / "r.csv")
    text = runtimes.help_text(make, path=tmp_path / "r.csv")
    assert "does a [measured: budget: 10 min (CPU 18 min, machine busy)]" in text
    assert "b                     does b\n" in text + "\n"


def test_a_sidecar_row_needs_the_cpu_time(tmp_path):
    side = tmp_path / "x.json"
    side.write_text(json.dumps({"wall_time_s": 5.0, "cpu_time_s": 9.0, "environment": {
        "cpu_model": "CPU", "device_name": "CPU (2 cpus, 2 torch threads)", "git_sha": "abc", "clean_tree": True,
        "date_utc": "2026-12-07T00:00:00+00:00"}}))
    row = runtimes.from_sidecar("fid", "budget", "full", side, path=tmp_path / "r.csv")
    assert row["cpus"] == "2" and row["source"].startswith("sidecar")
    del_cpu = json.loads(side.read_text())
    del del_cpu["cpu_time_s"]
    side.write_text(json.dumps(del_cpu))
    import pytest
    with pytest.raises(SystemExit, match="cpu_time_s"):
        runtimes.from_sidecar("fid", "budget", "full", side, path=tmp_path / "r.csv")


def test_the_makefile_times_its_long_targets():
    text = (ROOT / "Makefile").read_text()
    for target in ("reproduce-fig24", "reproduce-fig25", "reproduce-fig27", "fid", "zoo", "reproduce-bias",
                   "reproduce-anatomy", "bench"):
        recipe = text.split(f"\n{target}:", 1)[1].split("\n\n", 1)[0]
        assert "$(TIMED)" in recipe or "$(TIMED1)" in recipe, target
        import re
        doc = recipe.split("\n", 1)[0].split("##", 1)[1]
        assert not re.search(r"\d\s*(min|h|s)\b", doc), f"{target}: a runtime written by hand"
