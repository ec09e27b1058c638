"""The scale ladder (issue 31): its rungs, how make zoo shares them out, an interrupted ladder's
exact resume, and the ladder's evaluation, table, trend and figure (the two-rung quick ladder)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from reproduce import fig25_end_to_end as fig25
from reproduce import ladder, zoo

DATA = Path(os.environ.get("DBM_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
needs_mnist = pytest.mark.skipif(not (DATA / "MNIST").exists() and not (DATA / "mnist").exists(),
                                 reason="MNIST not found (set DBM_DATA_DIR)")


def test_rungs_are_the_issues_table_and_rung_1_is_the_converged_profile():
    shapes = [(z.hidden, z.batch_size, z.updates) for z in map(lambda r: zoo.zoo_config(profile=r), zoo.LADDERS["ladder"])]
    assert shapes[:3] == [((200, 200), 100, 12_000), ((500, 500), 100, 12_000), ((784, 784), 100, 12_000)]
    assert shapes[3][:2] == ((784, 784), 1000) and shapes[3][2] >= 5000
    # rung 1's models are the converged profile's cells (the same key)
    assert zoo.zoo_config(profile="ladder-1") == zoo.zoo_config(profile="converged")
    for r in zoo.LADDERS["ladder"]:
        f = zoo.profile_config(r)
        assert f.datasets == ("mnist",) and ("ucd-mh-lmi", 0) in zoo.matrix(f, "mnist")
        ev = fig25.Config(**fig25.PROFILES[r])
        assert ev.bracket_betas and ev.gibbs_sweeps and ev.fd_n == 2000 and ev.sample_order == "random"
    assert any(("pcd-pretrained", 0) in zoo.matrix(zoo.profile_config(r), "mnist") for r in ("ladder-3", "ladder-4"))


def test_the_zoo_shares_the_ladder_out_by_cost():
    work = [(r, ds, m, s) for r in zoo.LADDERS["ladder"] for ds in ("mnist",)
            for m, s in zoo.matrix(zoo.profile_config(r), ds)]
    plan = zoo.plan_jobs(work, 2)
    assert sorted(c for p in plan for c in p) == sorted(work)          # every cell once
    cost = [sum(zoo.cell_cost(c[0], c[2]) for c in p) for p in plan]
    biggest = max(zoo.cell_cost(c[0], c[2]) for c in work)
    # greedy: the heavier process is within one cell of the lighter
    assert max(cost) - min(cost) <= biggest
    assert zoo.cell_cost("ladder-4", "ucd-mh-lmi") > zoo.cell_cost("ladder-3", "ucd-mh-lmi") > \
        zoo.cell_cost("ladder-1", "ucd-mh-lmi")


@needs_mnist
def test_an_interrupted_ladder_resumes_to_the_same_models(tmp_path, monkeypatch):
    import hashlib

    from safetensors.torch import load_file

    from dbm.train import Trainer
    args = ["--profile", "ladder-quick", "--data-dir", str(DATA)]
    assert zoo.main(args + ["--work-dir", str(tmp_path / "whole")]) == 0
    calls = {"n": 0}
    update = Trainer.update

    def interrupted(self):
        calls["n"] += 1
        if calls["n"] == 70:                          # in the second cell, past a checkpoint
            raise KeyboardInterrupt
        return update(self)
    monkeypatch.setattr(Trainer, "update", interrupted)
    with pytest.raises(KeyboardInterrupt):
        zoo.main(args + ["--work-dir", str(tmp_path / "cut")])
    monkeypatch.setattr(Trainer, "update", update)
    assert zoo.main(args + ["--work-dir", str(tmp_path / "cut")]) == 0

    def models(root):                                 # the weights (the file's metadata names its folder)
        out = {}
        for p in (root / "zoo").glob("*/model.safetensors"):
            t = load_file(p)
            out[p.parent.name] = hashlib.sha256(b"".join(t[k].numpy().tobytes() for k in sorted(t))).hexdigest()
        return out
    assert len(models(tmp_path / "whole")) == 3
    assert models(tmp_path / "cut") == models(tmp_path / "whole")


@needs_mnist
def test_quick_ladder_evaluates_every_rung_with_fig25s_cells(tmp_path):
    out, work = tmp_path / "results" / "ladder", tmp_path / "runs"
    argv = ["--quick", "--data-dir", str(DATA), "--out-dir", str(out), "--work-dir", str(work)]
    assert ladder.main(argv) == 0
    d = pd.read_csv(out / "ladder.csv")
    assert sorted(d.rung.unique()) == [1, 2] and set(d.profile) == set(zoo.LADDERS["ladder-quick"])
    assert (out / "ladder_trace.csv").exists() and (out / "ladder.png").stat().st_size > 10_000
    assert (out / "ladder-q1" / "fig25_samples_mnist.png").exists()
    side = json.loads((out / "ladder.json").read_text())
    assert [side["rungs"][r]["config"]["hidden"] for r in zoo.LADDERS["ladder-quick"]] == [[16, 16], [32, 32]]
    t = side["trend"]
    assert t["ll_trend"] in ("toward", "away", "flat") and len(t["margin"]) == 2
    s = ladder.summarise(d)
    assert set(s.method) == {"ucd-mh-lmi", "pcd-pretrained"} and s["shape"].iloc[0] == "784-16-16"
    # fig25 on a rung reads the ladder's cells: same numbers, nothing recomputed
    f_out = tmp_path / "f25"
    assert fig25.main(["--profile", "ladder-q2", "--data-dir", str(DATA), "--out-dir", str(f_out),
                       "--work-dir", str(work)]) == 0
    f = pd.read_csv(f_out / "fig25_end_to_end.csv")
    a = d[(d.rung == 2) & (d.metric == "test_ll_bound") & (d.kind == "final")].value.tolist()
    b = f[(f.metric == "test_ll_bound") & (f.kind == "final")].value.tolist()
    assert a == b
    # the README's table and verdict rows read it: a row per rung and method, the trend by its rule
    from reproduce.tables import ladder_table
    from reproduce.verdicts import ladder_trend
    table = ladder_table(tmp_path)
    assert table.count("| 1 | 784-16-16, 100, 40 |") == 2 and "| 2 | 784-32-32, 200, 40 | `ucd-mh-lmi`" in table
    assert f"the margin {t['margin'][0]:+.0f} -> {t['margin'][1]:+.0f} nats" in table
    assert "scale ladder (rungs 1-2" in ladder_trend(tmp_path, "ll") and "not run yet" in ladder_trend(tmp_path / "x", "fd")
    # a flag reaches every rung; the config records only what was given
    assert ladder.rung_config(ladder.Config(rungs=("ladder-q1",), updates=7), "ladder-q1").updates == 7
    assert ladder.rung_config(ladder.Config(rungs=("ladder-q1",)), "ladder-q2").hidden == (32, 32)


def test_trend_rules_on_made_up_rungs():
    def rows_of(spec):
        rows = []
        for rung, seed, low, fd in spec:
            base = dict(profile=f"r{rung}", dataset="mnist", method="ucd-mh-lmi", seed=seed, step=1, rung=rung,
                        n_h1=200, n_h2=200, batch_size=100, updates=1)
            rows += [dict(base, kind="final", metric=m, value=v) for m, v in
                     (("test_ll_bound", low + 0.5), ("test_ll_low", low), ("test_ll_high", low + 1.0),
                      ("bernoulli_baseline_ll", -200.0), ("train_wall_s", 60.0))]
            rows.append(dict(base, kind="fd", samples="mode", metric="classifier_fd", value=fd, n=2000))
        return pd.DataFrame(rows)
    t = ladder.trend(rows_of([(1, 0, -210.0, 300.0), (2, 0, -180.0, 200.0)]))
    assert t["ll_trend"] == "toward" and t["margin"] == [-10.0, 20.0] and t["fd_trend"] == "flat"
    assert t["tolerance"] == 2.0                                 # one seed: the brackets' widths alone
    assert ladder.trend(rows_of([(1, 0, -210.0, 300.0), (2, 0, -180.0, 100.0)]))["fd_trend"] == "toward"
    assert ladder.trend(rows_of([(1, 0, -210.0, 300.0), (2, 0, -220.0, 700.0)]))["ll_trend"] == "away"
    # three seeds at rung 1 spread by 10 nats: a 20-nat rise is within 2 sd sqrt(1/3 + 1) + widths (25.1)
    spread = [(1, s, -210.0 + d, 300.0) for s, d in enumerate((-10.0, 0.0, 10.0))]
    t = ladder.trend(rows_of(spread + [(2, 0, -190.0, 200.0)]))
    assert t["seed_sd_first"] == 10.0 and t["ll_trend"] == "flat" and t["seeds"] == [3, 1]
    assert ladder.trend(rows_of(spread + [(2, 0, -170.0, 200.0)]))["ll_trend"] == "toward"
