"""``python -m dbm`` commands."""
from dbm import cli


def test_estimators_listed(capsys):
    assert cli.main(["estimators"]) == 0
    out = capsys.readouterr().out
    for name in ("cd", "pcd", "ucd-gibbs", "ucd-mh-lmi", "official-single-chain"):
        assert name in out


def test_check_reports_z(capsys):
    assert cli.main(["check", "--chains", "2000", "--options", '{"marginalize": true}']) == 0
    assert "max |z|" in capsys.readouterr().out


def test_train_ebm_then_long_run_sampling(tmp_path, capsys):
    run = tmp_path / "ebm"
    args = ["train-ebm", "--dataset", "gmm", "--net", "toy", "--n-f", "4", "--steps", "5", "--init", "persistent",
            "--bank-size", "100", "--batch-size", "20", "--updates", "4", "--ckpt-every", "2", "--out-dir", str(run)]
    assert cli.main(args) == 0
    assert cli.main(args) == 2                                   # refuses to overwrite without --resume
    assert cli.main(args + ["--resume", "--updates", "6"]) == 0
    assert "resumed" in capsys.readouterr().out
    assert cli.main(["sample-ebm", str(run), "--n", "30", "--steps", "40", "--mala", "--out", str(tmp_path / "s")]) == 0
    import pandas as pd
    import torch
    trace = pd.read_csv(tmp_path / "s.csv")
    assert list(trace.columns) == ["step", "energy", "grad_norm", "accept"] and len(trace) == 40
    assert torch.load(tmp_path / "s.pt").shape == (30, 2)
    assert "acceptance" in capsys.readouterr().out
