"""fig25's tables: likelihood verdicts by interval overlap, the impossible-bound flag, and the
reading of tables written before the sample kinds."""
import pandas as pd

from reproduce.fig25_end_to_end import _upgrade, kind_order, summarise, verdicts


def final_rows(method, seed, ll, low, high, base=-200.0):
    return [dict(dataset="mnist", method=method, seed=seed, kind="final", metric=m, value=v, step=10)
            for m, v in (("test_ll_bound", ll), ("test_ll_low", low), ("test_ll_high", high),
                         ("bernoulli_baseline_ll", base))]


def test_verdicts_compare_intervals_with_ucd_mh_lmi():
    rows = (final_rows("ucd-mh-lmi", 0, -280, -282, -279) + final_rows("ucd-mh-lmi", 1, -270, -272, -269)
            + final_rows("cd", 0, 40, -150, 40)                  # bracket 190 nats wide, above 0: impossible
            + final_rows("pcd", 0, -100, -120, -98)                # entirely above ucd-mh-lmi's interval
            + final_rows("ucd-gibbs", 0, -300, -301, -299))        # entirely below
    df = pd.DataFrame(rows)
    v = verdicts(df).set_index("method").likelihood_vs_ucd_mh_lmi
    assert v.to_dict() == {"cd": "higher", "pcd": "higher", "ucd-gibbs": "lower"}
    df = pd.DataFrame(rows + final_rows("pcd-pretrained", 0, -260, -290, -255))
    assert verdicts(df).set_index("method").likelihood_vs_ucd_mh_lmi["pcd-pretrained"] == "undecided"
    s = summarise(df).set_index("method")
    assert s.bound_impossible["cd"] and not s.bound_impossible["pcd"]
    assert s.fails["ucd-mh-lmi"] and not s.fails["pcd"] and s.seeds["ucd-mh-lmi"] == 2


def test_old_tables_are_read_and_kinds_are_ordered():
    old = pd.DataFrame([dict(dataset="mnist", method="cd", seed=0, step=5, metric="sample_ink", value=0.1),
                        dict(dataset="mnist", method="cd", seed=0, step=5, metric="recon_error", value=0.2),
                        dict(dataset="mnist", method="cd", seed=0, step=5, metric="test_ll_bound", value=-150.0)])
    new = _upgrade(old).set_index("metric")
    assert new.loc["ink", "kind"] == "samples" and new.loc["ink", "samples"] == "mode"
    assert new.loc["recon_error", "kind"] == "trace" and new.loc["test_ll_bound", "kind"] == "final"
    assert kind_order(["gibbs-10000-mode", "mode+1", "gibbs-1000-noise", "mode", "gibbs-1000-mode"]) == [
        "mode", "mode+1", "gibbs-1000-noise", "gibbs-1000-mode", "gibbs-10000-mode"]


def test_zoo_cells_take_any_preset_and_name_the_choices_otherwise():
    import pytest
    from reproduce.zoo import parse_cells
    assert parse_cells("ucd-mh-lmi-marg:0,fashion-mnist/cd:2") == [("mnist", "ucd-mh-lmi-marg", 0),
                                                                  ("fashion-mnist", "cd", 2)]
    assert parse_cells("pcd:1", "fashion-mnist") == [("fashion-mnist", "pcd", 1)]
    for bad in ("no-such-estimator:0", "cd:x", "cifar10/cd:0"):
        with pytest.raises(SystemExit, match=r"\[DATASET/\]METHOD:SEED"):
            parse_cells(bad)


def test_the_converged_matrix_has_one_seed_on_fashion_mnist():
    import dataclasses
    from reproduce.fig25_end_to_end import PROFILES, Config, matrix
    cfg = dataclasses.replace(Config(), **PROFILES["converged"])
    mnist, fashion = matrix(cfg, "mnist"), matrix(cfg, "fashion-mnist")
    assert ("ucd-mh-lmi", 2) in mnist and ("ucd-gibbs", 1) not in mnist and len(mnist) == 18
    assert ("ucd-mh-lmi-even-first", 2) in mnist      # the faithful-order issue's ablation, 3 seeds
    assert ("ucd-mh-lmi-mixed-even-first", 0) in mnist  # the mixed kernel: MNIST only (first_dataset_only)
    assert fashion == [(m, 0) for m in cfg.methods if m not in cfg.first_dataset_only]


def test_even_first_ablations_take_the_cache_keys_of_before():
    """The faithful-order issue: a zoo run cached before pi0's order was drawn is found under its
    even-first ablation's name, and the faithful preset gets a key of its own."""
    import dataclasses
    from reproduce import zoo
    z = zoo.zoo_config(profile="converged")
    before = dict(dataclasses.asdict(z), dataset="mnist", method="ucd-mh-lmi", seed=1)   # the key at 5d63874
    del before["eval_ais_betas"]                  # a late field at its default stays out of the key
    assert zoo._inputs(z, "mnist", "ucd-mh-lmi-even-first", 1) == before
    assert zoo._inputs(z, "mnist", "ucd-mh-lmi", 1) == dict(before, pi0_order="random")
    assert zoo._inputs(z, "mnist", "cd", 1) == dict(before, method="cd")                # other methods keep theirs
    assert zoo._inputs(z, "mnist", "ucd-mh-lmi-marg-even-first", 0)["method"] == "ucd-mh-lmi-marg"


def test_converged_2x_is_the_converged_profile_with_twice_the_updates():
    import dataclasses
    from reproduce import zoo
    from reproduce.fig25_end_to_end import PROFILES, Config, matrix
    a, b = zoo.zoo_config(profile="converged"), zoo.zoo_config(profile="converged-2x")
    assert b.updates == 2 * a.updates and dataclasses.replace(b, updates=a.updates) == a
    cfg = dataclasses.replace(Config(), **PROFILES["converged-2x"])
    assert cfg.datasets == ("mnist",) and matrix(cfg, "mnist") == [(m, s) for m in ("ucd-mh-lmi-even-first", "cd")
                                                                         for s in range(3)]
    conv = dataclasses.replace(Config(), **PROFILES["converged"])
    assert (cfg.bracket_betas, cfg.gibbs_sweeps, cfg.fd_n, cfg.ais_runs) == (conv.bracket_betas, conv.gibbs_sweeps,
                                                                             conv.fd_n, conv.ais_runs)


def test_fig26_converged_takes_fig25s_matrix_and_checks_sample_kinds():
    import pytest
    import torch
    from reproduce import fig25_end_to_end as fig25
    from reproduce import fig26_fid as fig26
    from dbm import DBM
    cfg = fig26.Config(**fig26.PROFILES["converged"])
    for ds in ("mnist", "fashion-mnist"):
        assert fig26.dbm_cells(ds, cfg, "converged") == fig25.matrix(fig25.Config(**fig25.PROFILES["converged"]), ds)
    assert fig26.dbm_cells("mnist", fig26.Config(), "budget") == [(m, 0) for m in fig26.Config().dbm_methods]
    m = DBM([784, 8, 4], generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    for kind in ("mode", "mode+1", "random", "gibbs-2-noise", "gibbs-2-mode"):
        x = fig26.dbm_sampler(m, "mnist", kind, g)(3)
        assert x.shape == (3, 1, 28, 28) and set(x.unique().tolist()) <= {0.0, 1.0}
    for bad in ("gibbs-x-noise", "gibbs-3-data", "samples"):
        with pytest.raises(ValueError, match="sample kind"):
            fig26.dbm_sampler(m, "mnist", bad, g)


def test_relabel_pi0_renames_rows_and_sidecar_once(tmp_path):
    """reproduce.relabel_pi0: the committed rows of before the faithful-order issue become the
    -even-first ablations (model and method columns, sidecar), and a second run changes nothing."""
    import json
    import pandas as pd
    from reproduce import relabel_pi0
    csv = tmp_path / "t.csv"
    pd.DataFrame(dict(method=["ucd-mh-lmi", "cd", "ucd-mh-lmi-marg"], model=["dbm-ucd-mh-lmi", "wgan", "x"],
                      value=[1.0, 2.0, 3.0])).to_csv(csv, index=False)
    csv.with_suffix(".json").write_text(json.dumps({"config": {"methods": ["ucd-mh-lmi", "cd"]},
                                                    "argv": ["ucd-mh-lmi"], "seeds": {"ucd-mh-lmi": [0]}}))
    assert relabel_pi0.relabel(csv, "abc")
    df, meta = pd.read_csv(csv), json.loads(csv.with_suffix(".json").read_text())
    assert df.method.tolist() == ["ucd-mh-lmi-even-first", "cd", "ucd-mh-lmi-marg-even-first"]
    assert df.model.tolist() == ["dbm-ucd-mh-lmi-even-first", "wgan", "x"] and set(df.sample_order) == {"even-first"}
    assert meta["config"]["methods"] == ["ucd-mh-lmi-even-first", "cd"] and meta["argv"] == ["ucd-mh-lmi"]
    assert meta["seeds"] == {"ucd-mh-lmi-even-first": [0]} and meta["relabelled"]["commit"] == "abc"
    before = csv.read_text()
    assert not relabel_pi0.relabel(csv, "def") and csv.read_text() == before


def test_fig26_dbm_sampler_counts_its_search_caps():
    """Issue 33: the mode kinds' local searches are counted, and a cap that fires is counted."""
    import torch
    from dbm import DBM
    from reproduce import fig26_fid as fig26
    m = DBM([784, 20, 10], init="gaussian", sigma=2.0, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    draw = fig26.dbm_sampler(m, "mnist", "mode+1", g, max_sweeps=1)
    x = draw(32)
    assert x.shape == (32, 1, 28, 28) and draw.search["searches"] == 32 and draw.search["sweeps_capped"] > 0
    noise = fig26.dbm_sampler(m, "mnist", "gibbs-2-noise", g)
    noise(8)
    assert noise.search == {"searches": 0, "sweeps_capped": 0}


def test_fig26_splice_takes_a_data_set_whole_when_its_classifier_changed(tmp_path):
    """Classifier-FD from two feature extractors cannot share a table: a part scored by another
    classifier replaces the whole data set, floor included, and must hold every model there."""
    import json

    import pandas as pd
    import pytest

    from reproduce import splice

    def table(folder, rows):
        folder.mkdir()
        pd.DataFrame(rows).to_csv(folder / "fig26_fid.csv", index=False)
        (folder / "fig26_fid.json").write_text(json.dumps({"environment": {"git_sha": "abc", "clean_tree": True}}))

    def row(ds, model, family, value, h):
        return dict(dataset=ds, model=model, family=family, seed=0, sample_kind="mode", metric="classifier_fd",
                    value=value, weights_hash=h, n_gen=10, extractor="x")
    base = [row("mnist", "data (train split)", "data", 1.0, "old"), row("mnist", "dbm-cd", "dbm", 400.0, "old"),
            row("mnist", "wgan", "gan", 280.0, "old"), row("fashion-mnist", "dbm-cd", "dbm", 200.0, "f")]
    table(tmp_path / "t", base)
    table(tmp_path / "p", [row("mnist", "data (train split)", "data", 0.9, "new"), row("mnist", "dbm-cd", "dbm", 300.0, "new"),
                           row("mnist", "wgan", "gan", 260.0, "new")])
    rec = splice.splice(tmp_path / "t", tmp_path / "p", "fig26")
    out = pd.read_csv(tmp_path / "t" / "fig26_fid.csv")
    mn = out[out.dataset == "mnist"]
    assert rec["whole_datasets"] == ["mnist"] and set(mn.weights_hash) == {"new"} and len(mn) == 3
    assert (out[out.dataset == "fashion-mnist"].value == 200.0).all()
    table(tmp_path / "p2", [row("mnist", "dbm-cd", "dbm", 300.0, "newer")])       # lacks wgan: refused
    with pytest.raises(SystemExit, match="another feature extractor"):
        splice.splice(tmp_path / "t", tmp_path / "p2", "fig26")


def test_a_splice_can_take_the_floor_and_the_provenance_names_the_rows_left(tmp_path):
    """Re-running a dirty table's cells part by part: ``floor_too`` takes the part's floor as well,
    and the provenance table's note names the cells still from the dirty run (none once all are)."""
    import json

    import pandas as pd

    from reproduce import splice
    from reproduce.verdicts import _unspliced_cells

    def table(folder, rows, clean):
        folder.mkdir()
        pd.DataFrame(rows).to_csv(folder / "fig26_fid.csv", index=False)
        (folder / "fig26_fid.json").write_text(json.dumps({"environment": {"git_sha": "abc", "clean_tree": clean}}))

    def row(ds, model, family, value):
        return dict(dataset=ds, model=model, family=family, seed=0, sample_kind="mode", metric="classifier_fd",
                    value=value, weights_hash="h", n_gen=10, extractor="x")
    table(tmp_path / "t", [row("mnist", "data (train split)", "data", 1.0), row("mnist", "dbm-cd", "dbm", 400.0),
                           row("mnist", "wgan", "gan", 280.0), row("fashion-mnist", "dbm-cd", "dbm", 200.0)], False)
    table(tmp_path / "p", [row("mnist", "data (train split)", "data", 0.9), row("mnist", "dbm-cd", "dbm", 300.0)], True)
    side = tmp_path / "t" / "fig26_fid.json"

    def value(model):
        out = pd.read_csv(tmp_path / "t" / "fig26_fid.csv")
        return float(out[(out.dataset == "mnist") & (out.model == model)].value.iloc[0])
    rec = splice.splice(tmp_path / "t", tmp_path / "p", "fig26")
    assert value("data (train split)") == 1.0 and value("dbm-cd") == 300.0 and rec["clean_tree"] is True
    assert _unspliced_cells(side, json.loads(side.read_text())) == [
        "fashion-mnist/dbm-cd", "mnist/data (train split)", "mnist/wgan"]
    splice.splice(tmp_path / "t", tmp_path / "p", "fig26", floor_too=True)
    assert value("data (train split)") == 0.9
    assert _unspliced_cells(side, json.loads(side.read_text())) == ["fashion-mnist/dbm-cd", "mnist/wgan"]
