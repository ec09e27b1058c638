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


def test_train_with_switches_then_sample_kinds_as_image_folders(tmp_path, capsys):
    """Boolean fields are switches (--tensorboard / --no-tensorboard, no value); ``sample`` writes
    each kind as a grid and as a folder of single images (what pytorch_fid reads)."""
    import numpy as np
    import torch
    from PIL import Image
    from conftest import synthetic_mnist
    data = synthetic_mnist(tmp_path / "data")
    run = tmp_path / "dbm"
    args = ["train", "--data-dir", str(data), "--hidden", "9,4", "--batch-size", "10", "--updates", "2",
            "--ckpt-every", "2", "--log-every", "1", "--eval-every", "0", "--no-tensorboard", "--out-dir", str(run)]
    assert cli.main(args) == 0
    assert cli.main(["sample", str(run), "--n", "5", "--sweeps", "3", "--out", str(tmp_path / "s")]) == 0
    kinds = ("mode", "mode+1", "gibbs-3-noise", "gibbs-3-mode")
    for kind in kinds:
        files = sorted((tmp_path / "s" / kind).glob("*.png"))
        assert len(files) == 5 and (tmp_path / "s" / f"{kind}.png").exists()
        img = np.asarray(Image.open(files[0]))
        assert img.shape[:2] == (28, 28) and set(np.unique(img)) <= {0, 255}
    assert "not MCMC samples" in capsys.readouterr().out
    assert cli.main(["sample", str(tmp_path / "nowhere")]) == 2


def test_export_images_writes_the_binarised_reference_folder(tmp_path, capsys):
    """``export-images``: the FID reference that ``sample``'s hint names, binarised as the DBMs
    see the data (pixel / 255 > 0.5), one PNG per image."""
    import numpy as np
    from PIL import Image
    from conftest import synthetic_mnist
    from dbm.data import load_images
    data = synthetic_mnist(tmp_path / "data")
    out = tmp_path / "ref"
    assert cli.main(["export-images", "--data-dir", str(data), "--n", "7", "--out", str(out)]) == 0
    files = sorted(out.glob("*.png"))
    assert len(files) == 7
    want = load_images("mnist", "test", data)[3].numpy() > 127.5
    img = np.asarray(Image.open(files[3]))
    assert (img.reshape(28, 28, -1)[..., 0] == np.where(want, 255, 0)).all()
    assert cli.main(["export-images", "--out", str(out), "--data-dir", str(tmp_path / "none")]) == 2


def test_help_and_the_command_list_load_no_torch():
    """``--help`` is instant: the command list and ``import dbm`` load no torch (PEP 562 names)."""
    import subprocess
    import sys
    code = ("import sys, contextlib, io, dbm\n"
            "from dbm import cli\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "    cli.main(['--help'])\n"
            "print('torch' in sys.modules, dbm.IS_THIS_PROJECT)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.split() == ["False", "True"]


def test_sample_help_shows_defaults(capsys):
    import pytest
    with pytest.raises(SystemExit):
        cli.main(["sample", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: 64)" in out and "(default: 1000)" in out
