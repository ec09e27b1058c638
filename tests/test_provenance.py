"""Every committed sidecar says where its numbers came from (issue 34 item 3)."""
import json
import subprocess

import pytest

from conftest import ROOT
from dbm.provenance import write_sidecar
from reproduce import provenance

SIDECARS = provenance.sidecars()


def test_there_are_committed_sidecars():
    assert len(SIDECARS) >= 10


@pytest.mark.parametrize("path", SIDECARS, ids=lambda p: str(p.relative_to(ROOT)))
def test_committed_sidecar_has_its_provenance(path):
    rec = json.loads(path.read_text())
    assert provenance.missing(rec) == [], f"{path}: fields neither recorded nor declared in provenance_gaps"
    gaps = rec.get("provenance_gaps", {})
    assert all(isinstance(why, str) and why for why in gaps.values())
    assert not set(gaps) & set(provenance.facts(rec)), "a declared gap that is in fact recorded"


def test_committed_sidecars_name_commits_in_the_history():
    shallow = subprocess.run(["git", "rev-parse", "--is-shallow-repository"], cwd=ROOT, capture_output=True,
                             text=True).stdout.strip()
    if shallow != "false":
        pytest.skip("not a full git clone: the commits cannot be looked up")
    absent = [str(p.relative_to(ROOT)) for p in SIDECARS
              if not provenance.commit_exists(str(provenance.facts(json.loads(p.read_text())).get("git_sha", "")))]
    assert absent == []


def test_a_new_sidecar_records_every_field(tmp_path):
    rec = write_sidecar(tmp_path / "x.json", {"a": 1}, 1.5, "cpu")
    f = provenance.facts(rec)
    assert set(provenance.FIELDS) <= set(f), set(provenance.FIELDS) - set(f)
    assert f["gpu"] is None and f["cpu_model"] and f["cpu_time_s"] > 0 and f["date_utc"].endswith("+00:00")
    assert provenance.missing(rec) == []


def test_an_undeclared_gap_is_caught(tmp_path):
    rec = write_sidecar(tmp_path / "x.json", {"a": 1}, 1.0, "cpu")
    del rec["environment"]["cpu_model"], rec["cpu_time_s"]
    rec["environment"]["device_name"] = "x86_64"                 # an old sidecar that named no CPU
    assert provenance.missing(rec) == ["cpu_model", "cpu_time_s"]
    rec["provenance_gaps"] = {"cpu_model": "why", "cpu_time_s": "why"}
    assert provenance.missing(rec) == []


def test_pytest_benchmark_json_is_read():
    rec = {"commit_info": {"id": "abc", "dirty": False}, "datetime": "2026-12-07T00:00:00",
           "machine_info": {"python_version": "3.11", "cpu": {"brand_raw": "AMD EPYC"}, "gpu": None, "torch": "2"},
           "wall_time_s": 3.0, "cpu_time_s": 5.0}
    assert provenance.missing(rec) == []
    assert provenance.facts(rec)["cpu_model"] == "AMD EPYC" and provenance.facts(rec)["clean_tree"] is True


def test_atomic_writes_refuse_to_replace_what_is_not_a_regular_file(tmp_path):
    from dbm.provenance import atomic_write_text
    import pytest
    (tmp_path / "folder").mkdir()
    (tmp_path / "target").write_text("keep")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    for bad in (tmp_path / "folder", tmp_path / "link", "/dev/null"):
        with pytest.raises(ValueError, match="not a regular file"):
            atomic_write_text(bad, "x")
    assert (tmp_path / "target").read_text() == "keep"
    atomic_write_text(tmp_path / "new.txt", "ok")
    assert (tmp_path / "new.txt").read_text() == "ok"
