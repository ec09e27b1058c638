"""Robustness: unsafe checkpoints refused, bad input as one line (exit 2), checkpoints as one
unit, bounded memory on any model, fuzzed data readers. Kill -9 tests are in test_run.py."""
import errno
import gzip
import hashlib
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

import dbm
from conftest import ROOT, synthetic_mnist, write_cifar, write_idx
from dbm import cli, data
from dbm.errors import CheckpointError, ConfigError, DataError, RunLockedError
from dbm.estimators import Accumulator
from dbm.run import RunDir
from dbm.train import TrainConfig, Trainer
from stat_helpers import random_dbm


def toy_data(n=60, d=12, seed=0):
    return (torch.rand(n, d, generator=torch.Generator().manual_seed(seed)) < 0.4).float()


def dbm_trainer(out, **kw):
    cfg = dict(hidden=(6, 4), batch_size=10, updates=6, log_every=1, ckpt_every=3, eval_every=0, out_dir=str(out))
    cfg.update(kw)
    return Trainer(TrainConfig(**cfg), data=toy_data())


def ebm_trainer(out, **kw):
    from dbm.ebm.train import EBMConfig, EBMTrainer
    cfg = dict(dataset="gmm", net="toy", n_f=8, steps=3, batch_size=20, updates=6, ckpt_every=3, init="gaussian",
               lr=1e-3, out_dir=str(out))
    cfg.update(kw)
    return EBMTrainer(EBMConfig(**cfg))


def gan_trainer(out, **kw):
    from dbm.baselines.train_gan import GANConfig, GANTrainer
    cfg = dict(width=4, batch_size=8, steps=4, n_critic=1, log_every=1, ckpt_every=2, out_dir=str(out))
    cfg.update(kw)
    x = (torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    return GANTrainer(GANConfig(**cfg), x)


TRAINERS = {"dbm": dbm_trainer, "ebm": ebm_trainer, "gan": gan_trainer}


def rewrite_manifest(ckpt):
    """Make the manifest agree with the files as they are now (an attacker or a bad copy can)."""
    man = json.loads((ckpt / "manifest.json").read_text())
    for name in man["files"]:
        raw = (ckpt / name).read_bytes()
        man["files"][name] = {"bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
    (ckpt / "manifest.json").write_text(json.dumps(man))


class Payload:
    """Unpickling this runs a shell command (the attack weights_only=True stops)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# ---------------------------------------------------------------------------- 1. no code from checkpoints
@pytest.mark.parametrize("kind", sorted(TRAINERS))
def test_checkpoint_with_pickle_payload_is_refused_and_nothing_runs(tmp_path, kind):
    make = TRAINERS[kind]
    make(tmp_path / "run").run(progress=False)
    ckpt = RunDir(tmp_path / "run").checkpoints()[-1]
    marker = tmp_path / "pwned"
    state = torch.load(ckpt / "state.pt", weights_only=True)
    state["evil"] = Payload(marker)
    torch.save(state, ckpt / "state.pt")
    rewrite_manifest(ckpt)
    with pytest.raises(CheckpointError, match="refused"):
        make(tmp_path / "run", **({"steps": 8} if kind == "gan" else {"updates": 8})).resume()
    assert not marker.exists()


def test_cifar_batch_with_pickle_payload_is_refused(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder)
    marker = tmp_path / "pwned"
    (folder / "test_batch").write_bytes(pickle.dumps({"data": Payload(marker), "labels": [0]}))
    with pytest.raises(DataError, match="test_batch: refuses to unpickle 'posix'.'system'"):
        data.load_cifar10("test", tmp_path)
    assert not marker.exists()
    x, y = data.load_cifar10("train", tmp_path)                    # the honest batches still load
    assert x.shape == (20, 3, 32, 32) and y.shape == (20,)


# ---------------------------------------------------------------------------- 2 and 6. bad input: one line
def cli_error(capsys, *argv):
    code = cli.main(list(argv))
    err = capsys.readouterr().err.strip()
    return code, err


BAD_TRAIN = [
    (["--batch-size", "0"], "--batch-size must be an integer >= 1"),
    (["--batch-size", "-5"], "--batch-size must be an integer >= 1"),
    (["--updates", "0"], "--updates must be an integer >= 1"),
    (["--updates", "-1"], "--updates must be an integer >= 1"),
    (["--lr", "nan"], "--lr must be finite and > 0"),
    (["--gamma", "-1"], "--gamma must be finite and >= 0"),
    (["--ckpt-every", "0"], "--ckpt-every must be an integer >= 1"),
    (["--log-every", "0"], "--log-every must be an integer >= 1"),
    (["--hidden", "0,5"], "--hidden must be one or more positive layer widths"),
    (["--estimator-options", '{"max_steps": 0}'], "max_steps must be an integer >= 1"),
    (["--estimator-options", "[1]"], "must be a JSON object"),
    (["--seed", "x"], "--seed: expected int"),
]


@pytest.mark.parametrize("extra,message", BAD_TRAIN)
def test_bad_train_settings_are_one_line_naming_the_flag(tmp_path, capsys, extra, message):
    code, err = cli_error(capsys, "train", "--out-dir", str(tmp_path / "r"), *extra)
    assert code == 2 and err.startswith("error: ") and message in err and "\n" not in err
    assert not (tmp_path / "r").exists()                          # refused before any work


def test_bad_choices_are_refused_not_replaced(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:                            # argparse's own one-line usage error
        cli.main(["train", "--optimizer", "adamw", "--out-dir", str(tmp_path)])
    assert e.value.code == 2 and "invalid choice: 'adamw'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="--optimizer must be one of sgd, adam"):
        TrainConfig(optimizer="adamw")


@pytest.mark.parametrize("argv,message", [
    (["train-gan", "--n-critic", "0"], "--n-critic must be an integer >= 1"),
    (["train-gan", "--clip", "0"], "--clip must be finite and > 0"),
    (["train-ebm", "--eps", "inf"], "--eps must be finite and > 0"),
    (["train-ebm", "--dataset", "gmm", "--net", "vanilla"], "does not fit --dataset gmm"),
    (["train-ebm", "--init", "persistent", "--bank-size", "5"], "--bank-size 5 < --batch-size 100"),
])
def test_bad_gan_and_ebm_settings(tmp_path, capsys, argv, message):
    code, err = cli_error(capsys, *argv, "--out-dir", str(tmp_path / "r"))
    assert code == 2 and message in err and "\n" not in err


@pytest.mark.parametrize("shape,message", [((5, 28, 20), r"\(N, 28, 28\)"), ((5, 20, 20), r"\(N, 28, 28\)")])
def test_images_of_the_wrong_shape_are_refused_before_training(tmp_path, capsys, shape, message):
    write_idx(tmp_path / "mnist" / "train-images-idx3-ubyte.gz", np.zeros(shape))
    with pytest.raises(DataError, match=message):
        data.load_images("mnist", "train", tmp_path)
    code, err = cli_error(capsys, "train", "--data-dir", str(tmp_path), "--out-dir", str(tmp_path / "r"))
    assert code == 2 and "28, 28" in err and "Traceback" not in err


def test_label_count_must_match_image_count(tmp_path):
    write_idx(tmp_path / "mnist" / "train-images-idx3-ubyte.gz", np.zeros((5, 28, 28)))
    write_idx(tmp_path / "mnist" / "train-labels-idx1-ubyte.gz", np.zeros(4))
    with pytest.raises(DataError, match="4 labels for the 5 images"):
        data.load_labels("mnist", "train", tmp_path)


def test_resume_errors_are_clear(tmp_path, capsys):
    synthetic_mnist(tmp_path, n_train=60, n_test=20)
    common = ["train", "--data-dir", str(tmp_path), "--out-dir", str(tmp_path / "r"), "--hidden", "6,4",
              "--batch-size", "10", "--updates", "2", "--eval-every", "0", "--log-every", "1"]
    code, err = cli_error(capsys, *common, "--resume")
    assert code == 2 and "holds no checkpoint to resume" in err
    assert cli.main(common) == 0
    capsys.readouterr()
    code, err = cli_error(capsys, *common)                           # neither --resume nor --force
    assert code == 2 and "already holds a checkpoint" in err
    code, err = cli_error(capsys, *common[:-6], "--hidden", "7,4", "--batch-size", "10", "--updates", "4",
                          "--eval-every", "0", "--resume")
    assert code == 2 and "other settings" in err and "hidden" in err and "size mismatch" not in err


def test_unwritable_out_dir_fails_before_training(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    code, err = cli_error(capsys, "train-ebm", "--dataset", "gmm", "--net", "toy", "--out-dir",
                          str(tmp_path / "file" / "run"))
    assert code == 2 and "not a folder" in err


def test_ebm_divergence_exits_with_the_divergence_status(tmp_path, capsys):
    code, err = cli_error(capsys, "train-ebm", "--dataset", "gmm", "--net", "toy", "--n-f", "8", "--eps", "1e20",
                          "--steps", "5", "--batch-size", "10", "--updates", "3", "--init", "gaussian",
                          "--out-dir", str(tmp_path / "r"))
    assert code == 3 and err.splitlines()[-1].startswith("training diverged:")     # above it: the progress bar


def test_debug_shows_the_traceback_and_the_real_process_prints_one_line(tmp_path):
    with pytest.raises(ConfigError):
        cli.main(["train", "--batch-size", "0", "--debug"])
    r = subprocess.run([sys.executable, "-m", "dbm", "train", "--batch-size", "0"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr


# ---------------------------------------------------------------------------- 3. a checkpoint is one unit
def test_checkpoint_files_of_different_steps_are_refused(tmp_path):
    dbm_trainer(tmp_path).run(progress=False)
    old, new = RunDir(tmp_path).checkpoints()
    (new / "weights.safetensors").write_bytes((old / "weights.safetensors").read_bytes())
    rewrite_manifest(new)
    with pytest.raises(CheckpointError, match="different steps"):
        dbm_trainer(tmp_path, updates=9).resume()


def test_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path):
    dbm_trainer(tmp_path).run(progress=False)
    old, new = RunDir(tmp_path).checkpoints()
    (new / "state.pt").write_bytes(b"garbage")                       # the manifest's hash no longer holds
    t = dbm_trainer(tmp_path, updates=9)
    with pytest.warns(UserWarning, match="damaged"):
        assert t.resume() and t.step == 3


def test_metrics_past_the_checkpoint_and_half_lines_are_cut_on_resume(tmp_path):
    full = dbm_trainer(tmp_path / "full", updates=9)
    full.run(progress=False)
    dbm_trainer(tmp_path / "part", updates=6).run(progress=False)
    with open(tmp_path / "part" / "metrics.csv", "a") as f:          # a run killed mid-append
        f.write("7,loss,0.123\n8,lo")
    t = dbm_trainer(tmp_path / "part", updates=9)
    assert t.resume() and t.step == 6
    t.run(progress=False)
    a, b = (RunDir(tmp_path / n).metrics() for n in ("full", "part"))
    keep = lambda df: df[df.metric != "wall_time_s"].reset_index(drop=True)
    assert keep(a).equals(keep(b))


def test_rows_logged_before_a_divergence_are_kept(tmp_path):
    t = dbm_trainer(tmp_path, updates=20, ckpt_every=10)
    t.run(progress=False)
    t2 = dbm_trainer(tmp_path, updates=40, ckpt_every=10)
    t2.resume()
    steps = []
    original = t2.update

    def update_then_explode():
        out = original()
        steps.append(t2.step)
        if t2.step == 25:
            t2.opt.param_groups[0]["lr"] = float("inf")
        return out
    t2.update = update_then_explode
    with pytest.raises(dbm.train.DivergenceError):
        t2.run(progress=False)
    logged = RunDir(tmp_path).metrics()
    assert logged.step.max() == 25 and RunDir(tmp_path).checkpoints()[-1].name == "step-000000020"


def test_a_second_writer_is_refused(tmp_path):
    rd = RunDir(tmp_path / "r")
    with rd.locked():
        with pytest.raises(RunLockedError, match=f"process {os.getpid()}"):
            dbm_trainer(tmp_path / "r").run(progress=False)
    dbm_trainer(tmp_path / "r").run(progress=False)                # free again once released


def test_legacy_pickled_run_folder_is_not_read(tmp_path):
    (tmp_path / "state.pt").write_bytes(b"old")
    with pytest.raises(CheckpointError, match="older dbm"):
        dbm_trainer(tmp_path).resume()


# ---------------------------------------------------------------------------- 5. bounded work and memory
@pytest.mark.parametrize("name,opts", [
    ("ucd-mh-lmi", {"max_steps": 50}), ("ucd-mh-lmi", {"max_steps": 50, "y0": "independent"}),
    ("ucd-mh-lmi", {"max_steps": 50, "marginalize": True}), ("ucd-gibbs", {"max_steps": 50, "max_tries": 20}),
    ("official-single-chain", {"max_steps": 50}), ("cd", {"k": 3}), ("pcd", {})])
@pytest.mark.parametrize("scale", [10.0, 100.0])
def test_estimators_stay_within_caps_and_memory_on_sharp_models(gen, name, opts, scale):
    m = random_dbm([30, 20, 16], seed=3, w_scale=scale)
    v = (torch.rand(40, 30, generator=gen) < 0.5).float()
    est = dbm.estimator(name, max_sweeps=20, **opts) if name.startswith(("ucd", "off")) else dbm.estimator(name, **opts)
    loss, _, info = est.loss(m, v, None, gen)
    assert torch.isfinite(loss)
    for ph in (info.pos, info.neg):
        assert int(ph.tau.max()) <= opts.get("max_steps", 1) and int(ph.capped.sum()) <= 40
        assert int(ph.sweeps.max()) <= 20 or name in ("cd", "pcd")
    (pos, neg), _, _ = est._run(m, v, None, gen, "stats")          # the memory bound, deterministic
    for sink in (pos, neg):
        assert sink.peak_rows <= sink.flush_rows + 40


def test_maximal_coupling_residual_caps_reach_the_logs(gen):
    """max_tries = 1 leaves most rows that miss the first stage capped: they are counted per chain
    in PhaseInfo.residual_capped and reach the logged summary, never dropped."""
    m = random_dbm([8, 6, 4], seed=4, w_scale=0.3)
    v = (torch.rand(2000, 8, generator=gen) < 0.5).float()
    _, _, info = dbm.estimator("ucd-gibbs", max_tries=1, max_steps=50).loss(m, v, None, gen)
    s = info.summary()
    assert info.neg.residual_capped.shape == (2000,) and int(info.neg.residual_capped.sum()) > 0
    assert s["neg_residual_capped"] == float(info.neg.residual_capped.sum())
    assert "neg_residual_capped" not in dbm.estimator("ucd-mh-lmi").loss(m, v[:10], None, gen)[2].summary()


def test_accumulator_reduces_exactly_like_one_batched_evaluation(gen):
    m = random_dbm([6, 5, 4], seed=5, w_scale=3.0)
    xs = [m.random_state(7, gen) for _ in range(9)]
    signs = [1, -1, 1, 1, -1, -1, 1, -1, 1]
    chains = [torch.randint(0, 7, (7,), generator=gen) for _ in xs]
    small, whole = (Accumulator("stats", m, False, 7, flush_rows=f) for f in (8, 10 ** 6))
    for x, s, c in zip(xs, signs, chains):
        small.add(x, s, c)
        whole.add(x, s, c)
    assert small.peak_rows <= 8 + 7
    for a, b in zip(small.result(), whole.result()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_local_mode_and_ais_are_capped_on_sharp_models(gen):
    from dbm.metrics.ais import ais_log_partition
    from dbm.samplers import local_mode
    m = random_dbm([30, 20, 16], seed=4, w_scale=100.0)
    mode, info = local_mode(m, m.random_state(64, gen), max_sweeps=5)
    assert int(info.sweeps.max()) <= 5 and info.capped.dtype == torch.bool
    res = ais_log_partition(m, gen, runs=8, betas=50)
    assert np.isfinite(res.log_z)


def test_coupled_driver_memory_does_not_grow_with_meeting_times(tmp_path):
    """784-500-500 at weight scale 50, batch 100, y0 independent: every chain runs to the cap of
    1000 steps. Storing every correction state took 6.3 GB peak here; the bound is 1.5 GB of
    growth (the model, one flush buffer and the chains still running)."""
    code = (
        "import resource, torch, dbm\n"
        "g = torch.Generator().manual_seed(0)\n"
        "m = dbm.DBM([784, 500, 500], generator=g)\n"
        "with torch.no_grad():\n"
        "    [w.mul_(50.0) for w in m.weights]\n"
        "v = (torch.rand(100, 784, generator=g) < 0.2).float()\n"
        "r0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "loss, _, info = dbm.estimator('ucd-mh-lmi', y0='independent', max_steps=1000).loss(m, v, None, g)\n"
        "grow = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - r0) / 1024\n"
        "print(int(info.neg.capped.sum()), bool(torch.isfinite(loss)), grow)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    capped, finite, grow_mb = r.stdout.split()
    assert r.returncode == 0 and capped == "100" and finite == "True"
    assert float(grow_mb) < 1536, f"peak memory grew by {grow_mb} MB"


# ---------------------------------------------------------------------------- 7. fuzzed readers
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _valid_idx_bytes(n=3):
    x = np.arange(n * 28 * 28, dtype=np.uint8).reshape(n, 28, 28)
    return bytes([0, 0, 0x08, 3]) + b"".join(int(s).to_bytes(4, "big") for s in x.shape) + x.tobytes(), x


def _load_or_dataerror(tmp_path, name, raw):
    path = tmp_path / "mnist" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    for p in path.parent.iterdir():
        p.unlink()
    path.write_bytes(raw)
    try:
        return data.load_images("mnist", "train", tmp_path)
    except DataError as e:
        assert str(path) in str(e)
        return None


@FUZZ
@given(raw=st.binary(max_size=300), gz=st.booleans())
def test_idx_reader_random_bytes_give_dataerror_naming_the_file(tmp_path, raw, gz):
    name = "train-images-idx3-ubyte" + (".gz" if gz else "")
    assert _load_or_dataerror(tmp_path, name, raw) is None


@FUZZ
@given(cut=st.integers(0, 3 * 28 * 28 + 15), gz=st.booleans())
def test_idx_reader_truncations_give_dataerror(tmp_path, cut, gz):
    raw, _ = _valid_idx_bytes()
    raw = raw[:cut]
    name = "train-images-idx3-ubyte"
    if gz:
        raw, name = gzip.compress(raw), name + ".gz"
    assert _load_or_dataerror(tmp_path, name, raw) is None


@FUZZ
@given(pos=st.integers(0, 15), byte=st.integers(0, 255), gz_cut=st.one_of(st.none(), st.integers(0, 40)))
def test_idx_reader_header_edits_give_dataerror_or_the_exact_images(tmp_path, pos, byte, gz_cut):
    raw, x = _valid_idx_bytes()
    edited = bytearray(raw)
    edited[pos] = byte
    name = "train-images-idx3-ubyte"
    blob = bytes(edited)
    if gz_cut is not None:                                          # a gzip stream cut short
        blob, name = gzip.compress(blob)[:gz_cut], name + ".gz"
    got = _load_or_dataerror(tmp_path, name, blob)
    if got is not None:                                              # only an edit that changed nothing
        assert bytes(edited) == raw and gz_cut is None and np.array_equal(got.numpy(), x)


def _cifar_bytes():
    batch = {"data": np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072) % 251, "labels": [3, 7]}
    return pickle.dumps(batch, protocol=2)


def _cifar_or_dataerror(tmp_path, raw):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir(exist_ok=True)
    (folder / "test_batch").write_bytes(raw)
    try:
        return data.load_cifar10("test", tmp_path)
    except DataError as e:
        assert "test_batch" in str(e)
        return None


@FUZZ
@given(raw=st.binary(max_size=300))
def test_cifar_reader_random_bytes_give_dataerror(tmp_path, raw):
    assert _cifar_or_dataerror(tmp_path, raw) is None


@FUZZ
@given(cut=st.integers(0, len(_cifar_bytes()) - 1))
def test_cifar_reader_truncations_give_dataerror(tmp_path, cut):
    assert _cifar_or_dataerror(tmp_path, _cifar_bytes()[:cut]) is None


@FUZZ
@given(pos=st.integers(0, 120), byte=st.integers(0, 255))
def test_cifar_reader_edits_give_dataerror_or_well_formed_arrays(tmp_path, pos, byte):
    raw = bytearray(_cifar_bytes())
    raw[pos] = byte
    got = _cifar_or_dataerror(tmp_path, bytes(raw))
    if got is not None:                                              # an edit of a value, not of the format
        x, y = got
        assert x.dtype == torch.uint8 and x.shape[1:] == (3, 32, 32) and y.shape == (x.shape[0],)


# ============================================================================ round 3 (issue 32)
# A damaged newest checkpoint falls back, symlinks in a run folder are never followed, a manifest
# is checked against a schema, crafted checkpoints and a full disk are one line, every numeric
# option has an upper bound, the other subcommands' bad input is one line, and --resume on nothing
# creates nothing. Each of these tests failed on 5d63874.
A = ["--hidden", "6,4", "--batch-size", "10", "--updates", "6", "--ckpt-every", "3", "--log-every", "1",
     "--eval-every", "0", "--train-limit", "60"]


@pytest.fixture
def base(tmp_path, capsys):
    """A finished CLI run of 6 updates, checkpoints at 3 and 6, on synthetic MNIST."""
    data = synthetic_mnist(tmp_path / "data", n_train=60, n_test=20)
    out = tmp_path / "base"
    argv = ["train", "--data-dir", str(data), "--out-dir", str(out), *A]
    assert cli.main(argv) == 0
    capsys.readouterr()
    return out, argv


def resume_to(argv, updates):
    return [a if a != "6" or argv[i - 1] != "--updates" else str(updates) for i, a in enumerate(argv)] + ["--resume"]


# ---------------------------------------------------------------------------- 1. damaged newest: fall back
@pytest.mark.parametrize("damage", ["truncate", "stray-high", "stray-ten-digits"])
def test_damaged_newest_checkpoint_is_moved_aside_and_the_run_resumes(base, capsys, damage):
    out, argv = base
    ckpts = out / "checkpoints"
    if damage == "truncate":
        os.truncate(ckpts / "step-000000006" / "state.pt", 100)
        bad = "step-000000006"
    elif damage == "stray-high":
        (ckpts / "step-999999999").mkdir()
        bad = "step-999999999"
    else:
        import shutil
        shutil.copytree(ckpts / "step-000000006", ckpts / "step-0000000006")
        bad = "step-0000000006"
    rows_before = (out / "metrics.csv").read_text()
    if damage == "stray-ten-digits":                               # not a checkpoint's name: never read
        assert cli.main(resume_to(argv, 9)) == 0, capsys.readouterr().err
        assert (ckpts / bad).is_dir()
    else:
        with pytest.warns(UserWarning, match=f"damaged checkpoint {bad}; moved aside to damaged-{bad}"):
            code = cli.main(resume_to(argv, 9))
        assert code == 0, capsys.readouterr().err
        assert (ckpts / f"damaged-{bad}").is_dir()                 # moved aside, never deleted
    assert RunDir(out).checkpoints()[-1].name == "step-000000009"
    rows = (out / "metrics.csv").read_text()
    valid = rows_before if damage != "truncate" else None          # truncate: step 6's rows are redone
    if valid is not None:                                          # rows of valid steps are not lost
        assert rows.startswith(rows_before)
    else:
        three = [r for r in rows_before.splitlines() if r.split(",")[2] in ("1", "2", "3")]
        assert all(r in rows.splitlines() for r in three)
    assert cli.main(resume_to(argv, 9)) == 0                        # and a second resume is calm


# ---------------------------------------------------------------------------- 2. symlinks are never followed
@pytest.mark.parametrize("name", ["run.lock", "metrics.csv"])
def test_symlinks_in_a_run_folder_are_refused_and_their_targets_untouched(base, capsys, tmp_path, name):
    out, argv = base
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (out / name).unlink()
    (out / name).symlink_to(victim)
    code, err = cli_error(capsys, *resume_to(argv, 9))
    assert code == 2 and "symbolic link" in err and name in err and "\n" not in err
    assert victim.read_text() == "precious\n"


# ---------------------------------------------------------------------------- 3. the manifest's schema
MANIFEST_EDITS = {
    "step-huge": lambda m: m.update(step=1e400),
    "files-list": lambda m: m.update(files=[1, 2]),
    "files-entry-not-dict": lambda m: m["files"].update({"state.pt": 5}),
    "metrics-negative": lambda m: m.update(metrics_bytes=-1),
    "metrics-string": lambda m: m.update(metrics_bytes="100"),
    "metrics-float": lambda m: m.update(metrics_bytes=5.5),
    "metrics-missing": lambda m: m.pop("metrics_bytes"),
    "metrics-zero": lambda m: m.update(metrics_bytes=0),
    "config-string": lambda m: m.update(config="x"),
    "config-null": lambda m: m.update(config=None),
    "config-empty-list": lambda m: m.update(config=[]),
    "files-empty": lambda m: m.update(files={}),
    "outside-the-folder": lambda m: m["files"].update({"../../etc/hostname": {"bytes": 1, "sha256": "0" * 64}}),
}


@pytest.mark.parametrize("edit", sorted(MANIFEST_EDITS) + ["deep-nesting"])
def test_a_manifest_outside_its_schema_is_damaged(base, capsys, edit):
    out, argv = base
    man_path = out / "checkpoints" / "step-000000006" / "manifest.json"
    if edit == "deep-nesting":
        man_path.write_text("[" * 200_000 + "]" * 200_000)
    else:
        man = json.loads(man_path.read_text())
        MANIFEST_EDITS[edit](man)
        man_path.write_text(json.dumps(man))
    rows_before = (out / "metrics.csv").read_text()
    with pytest.warns(UserWarning, match="step-000000006"):
        code = cli.main(resume_to(argv, 9))
    err = capsys.readouterr().err
    assert code == 0, err
    assert (out / "checkpoints" / "damaged-step-000000006").is_dir()
    assert (out / "metrics.csv").read_text().startswith(rows_before[:200])


# ---------------------------------------------------------------------------- 4. crafted, hash-consistent
@pytest.mark.parametrize("kind", sorted(TRAINERS))
@pytest.mark.parametrize("craft", ["state-without-opt", "state-without-gen", "weights-wrong-shape",
                                   "weights-missing"])
def test_crafted_checkpoints_are_one_line_naming_the_file(tmp_path, kind, craft):
    from safetensors.torch import load_file, save_file
    make = TRAINERS[kind]
    make(tmp_path / "run").run(progress=False)
    ckpt = RunDir(tmp_path / "run").checkpoints()[-1]
    if craft.startswith("state"):
        state = torch.load(ckpt / "state.pt", weights_only=True)
        key = next((k for k in state if ("opt" if craft.endswith("opt") else "gen") in k), None)
        if key is None:
            pytest.skip(f"{kind}'s state has no such entry")
        del state[key]
        torch.save(state, ckpt / "state.pt")
        want = "state.pt"
    else:
        from safetensors import safe_open
        with safe_open(str(ckpt / "weights.safetensors"), "pt") as f:
            meta = f.metadata()
        w = load_file(ckpt / "weights.safetensors")
        k = sorted(w)[0]
        if craft == "weights-missing":
            del w[k]
        else:
            w[k] = torch.zeros(w[k].shape[0] + 1, *w[k].shape[1:], dtype=w[k].dtype)
        save_file(w, str(ckpt / "weights.safetensors"), metadata=meta)
        want = "weights.safetensors"
    rewrite_manifest(ckpt)
    with pytest.raises(CheckpointError) as e:
        make(tmp_path / "run", **({"steps": 8} if kind == "gan" else {"updates": 8})).resume()
    assert want in str(e.value) and "\n" not in str(e.value)


# ---------------------------------------------------------------------------- 5. disk full
def test_disk_full_during_a_checkpoint_is_one_line_and_leaves_no_partial_folder(tmp_path, monkeypatch):
    import dbm.run as run
    t = dbm_trainer(tmp_path / "r", updates=9)
    original = torch.save
    calls = []

    def full(obj, path, *a, **k):
        calls.append(path)
        if len(calls) >= 2:                                        # the second checkpoint's state.pt
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(obj, path, *a, **k)
    monkeypatch.setattr(run.torch, "save", full)
    with pytest.raises(CheckpointError, match=r"no space left on .* the last good checkpoint is step 3") as e:
        t.run(progress=False)
    assert "\n" not in str(e.value)
    assert not list((tmp_path / "r" / "checkpoints").glob(".tmp-step-*"))
    monkeypatch.setattr(run.torch, "save", original)
    t2 = dbm_trainer(tmp_path / "r", updates=9)
    assert t2.resume() and t2.step == 3


# ---------------------------------------------------------------------------- 6. huge numbers
HUGE = str(10 ** 30)
BIG_OPTIONS = [
    ("train", ["--batch-size", HUGE]), ("train", ["--eval-ais-runs", HUGE]), ("train", ["--eval-samples", HUGE]),
    ("train", ["--correction-window", HUGE]), ("train", ["--hidden", f"{HUGE},4"]), ("train", ["--updates", HUGE]),
    ("train", ["--estimator-options", '{"max_steps": 1e400}']),
    ("train", ["--estimator-options", '{"max_sweeps": 1000000000000}']),
    ("train-ebm", ["--toy-groups", HUGE]), ("train-ebm", ["--n-f", HUGE]), ("train-ebm", ["--batch-size", HUGE]),
    ("train-gan", ["--width", HUGE]), ("train-gan", ["--batch-size", HUGE]),
]


@pytest.mark.parametrize("cmd,extra", BIG_OPTIONS)
def test_numeric_options_have_upper_bounds_checked_before_anything_is_created(tmp_path, capsys, cmd, extra):
    out = tmp_path / "r"
    code, err = cli_error(capsys, cmd, "--out-dir", str(out), *extra)
    assert code == 2 and err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    assert "at most" in err or "must be" in err
    assert not out.exists()                                        # no folder, no run.lock


# ---------------------------------------------------------------------------- 7. the other subcommands
@pytest.mark.parametrize("argv,message", [
    (["check", "--sizes", "0"], "--sizes"), (["check", "--sizes", "abc"], "--sizes"),
    (["check", "--sizes", "3"], "--sizes"), (["check", "--sizes", "40,40,40"], "--sizes"),
])
def test_check_sizes_are_one_line(capsys, argv, message):
    code, err = cli_error(capsys, *argv)
    assert code == 2 and message in err and "\n" not in err


def test_sample_and_sample_ebm_bad_numbers_are_bad_input(tmp_path, capsys):
    for argv in (["sample", str(tmp_path), "--sweeps", "-1"], ["sample-ebm", str(tmp_path), "--eps", "-1"],
                 ["sample-ebm", str(tmp_path), "--eps", "nan"], ["sample-ebm", str(tmp_path), "--eps", "inf"]):
        with pytest.raises(SystemExit) as e:                        # argparse: usage line, exit 2
            cli.main(argv)
        assert e.value.code == 2
        assert "Traceback" not in capsys.readouterr().err


# ---------------------------------------------------------------------------- 8. leftovers
def test_resume_of_a_missing_folder_creates_nothing(tmp_path, capsys):
    out = tmp_path / "nothing" / "here"
    code, err = cli_error(capsys, "train", "--out-dir", str(out), *A, "--resume")
    assert code == 2 and "no checkpoint" in err and not out.exists() and not out.parent.exists()


def test_a_reordered_metrics_header_is_refused_on_resume(base, capsys):
    out, argv = base
    lines = (out / "metrics.csv").read_text().splitlines(keepends=True)
    cols = lines[0].strip().split(",")
    lines[0] = ",".join(cols[::-1]) + "\n"
    (out / "metrics.csv").write_text("".join(lines))
    code, err = cli_error(capsys, *resume_to(argv, 9))
    assert code == 2 and "metrics.csv" in err and "header" in err


@pytest.mark.parametrize("argv", [["check", "--chains", HUGE], ["check", "--seed", HUGE],
                                  ["sample-ebm", "x", "--steps", HUGE], ["sample", "x", "--n", HUGE],
                                  ["sample", "x", "--sweeps", HUGE]])
def test_subcommand_counts_and_seeds_have_upper_bounds(capsys, argv):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2 and "expected an integer in" in capsys.readouterr().err
