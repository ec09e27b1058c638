"""Kill -9 tests of the run layer: real ``python -m dbm`` processes are killed with SIGKILL inside
the checkpoint write (``DBM_FAILPOINT``) and at random moments, resumed, and compared bit for bit
with an uninterrupted run; a second writer is refused while the first runs."""
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from conftest import ROOT, synthetic_mnist
from dbm.run import RunDir

POINTS = ("metrics-appended", "files-written", "renamed", "published")


def commands(data_dir):
    """name -> (CLI args of a small run, weights file): each checkpoints at 2, 4, 6 (and 8)."""
    d = ["--data-dir", str(data_dir), "--train-limit", "200"]
    return {
        "train": (["train", *d, "--hidden", "8,6", "--batch-size", "20", "--updates", "8", "--ckpt-every", "2",
                   "--log-every", "1", "--eval-every", "4"], "model.safetensors"),
        "train-ebm": (["train-ebm", "--dataset", "gmm", "--net", "toy", "--n-f", "8", "--steps", "5",
                       "--batch-size", "20", "--updates", "8", "--ckpt-every", "2", "--init", "persistent",
                       "--bank-size", "40"], "net.safetensors"),
        "train-gan": (["train-gan", *d, "--width", "4", "--batch-size", "8", "--steps", "6", "--n-critic", "2",
                       "--log-every", "1", "--ckpt-every", "2"], "model.safetensors"),
    }


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return synthetic_mnist(tmp_path_factory.mktemp("data"), n_train=200, n_test=40)


def launch(args, out, failpoint=None, resume=False):
    env = dict(os.environ, DBM_FAILPOINT=failpoint or "")
    argv = [sys.executable, "-m", "dbm", *args, "--out-dir", str(out)] + (["--resume"] if resume else [])
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(p, timeout=300):
    out, err = p.communicate(timeout=timeout)
    return p.returncode, err


def has_checkpoint(out) -> bool:
    return bool(RunDir(out).checkpoints())


def run_to_end(args, out, first_failpoint=None):
    """Start (with a failpoint), then resume until the run exits 0; returns the number of kills."""
    kills, failpoint = 0, first_failpoint
    for _ in range(10):
        code, err = finish(launch(args, out, failpoint, resume=has_checkpoint(out)))
        failpoint = None
        if code == 0:
            return kills
        assert code == -signal.SIGKILL, err
        kills += 1
    raise AssertionError("the run never finished")


def same_weights(a, b, name):
    ta, tb = load_file(str(a / name)), load_file(str(b / name))
    return ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


def same_metrics(a, b):
    ma, mb = RunDir(a).metrics(), RunDir(b).metrics()
    keep = lambda df: df[df.metric != "wall_time_s"].reset_index(drop=True)
    return keep(ma).equals(keep(mb))


@pytest.fixture(scope="module")
def references(data_dir, tmp_path_factory):
    """The uninterrupted run of every command."""
    root = tmp_path_factory.mktemp("ref")
    procs = {name: launch(args, root / name) for name, (args, _) in commands(data_dir).items()}
    for name, p in procs.items():
        code, err = finish(p)
        assert code == 0, err
    return root


FAST = [("train", "files-written@4"), ("train", "renamed@4"), ("train-ebm", "metrics-appended@4"),
        ("train-gan", "published@4"), ("train", "files-written@2")]


@pytest.mark.parametrize("name,failpoint", FAST)
def test_kill_inside_a_checkpoint_write_then_resume_is_bit_exact(data_dir, references, tmp_path, name, failpoint):
    args, weights = commands(data_dir)[name]
    assert run_to_end(args, tmp_path / "run", failpoint) == 1
    assert same_weights(references / name, tmp_path / "run", weights)
    assert same_metrics(references / name, tmp_path / "run")
    assert not list((tmp_path / "run" / "checkpoints").glob(".t*"))          # leftovers cleaned


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("name", ["train", "train-ebm", "train-gan"])
def test_kill_at_every_point_of_every_trainer(data_dir, references, tmp_path, name, point):
    args, weights = commands(data_dir)[name]
    step = {"metrics-appended": 2, "files-written": 4, "renamed": 2, "published": 4}[point]
    out = tmp_path / "run"
    assert run_to_end(args, out, f"{point}@{step}") == 1
    assert same_weights(references / name, out, weights) and same_metrics(references / name, out)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["train", "train-ebm", "train-gan"])
def test_kill_at_random_moments_then_resume_is_bit_exact(data_dir, references, tmp_path, name):
    args, weights = commands(data_dir)[name]
    out, rng, kills = tmp_path / "run", random.Random(f"kill-{name}"), 0
    for _ in range(4):                                   # kill at random times after the start-up
        p = launch(args, out, resume=has_checkpoint(out))
        time.sleep(rng.uniform(1.5, 5.0))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            kills += 1
        finish(p)
    kills += run_to_end(args, out)
    assert kills >= 1
    assert same_weights(references / name, out, weights) and same_metrics(references / name, out)


def test_a_second_process_on_the_same_folder_is_refused(data_dir, tmp_path):
    args, _ = commands(data_dir)["train-ebm"]
    slow = [*args[:-8], "--updates", "100000", "--ckpt-every", "1000", *args[-4:]]
    first = launch(slow, tmp_path / "run")
    try:
        deadline = time.time() + 120
        while time.time() < deadline:                      # wait until the first holds the lock
            lock = tmp_path / "run" / "run.lock"
            if lock.exists() and lock.read_text().strip() == str(first.pid):
                break
            time.sleep(0.2)
        code, err = finish(launch(args, tmp_path / "run", resume=False))
        assert code == 2 and f"being written by process {first.pid}" in err
    finally:
        first.kill()
        first.wait()


def test_train_seconds_sums_the_processes_of_an_old_resumed_run():
    from dbm.run import train_seconds
    assert train_seconds([1.0, 2.0, 3.0]) == 3.0                       # one process, or a carried-over clock
    assert train_seconds([1.0, 2.0, 0.5, 1.5, 0.2]) == 2.0 + 1.5 + 0.2   # the clock restarted twice
    assert train_seconds([]) == 0.0


def test_train_seconds_of_reads_the_wall_time_rows_in_step_order():
    import math
    import pandas as pd
    from dbm.run import train_seconds_of
    m = pd.DataFrame({"step": [4, 2, 2, 6, 4], "metric": ["wall_time_s", "wall_time_s", "loss", "wall_time_s", "loss"],
                      "value": [0.5, 2.0, 9.0, 1.5, 9.0]})
    assert train_seconds_of(m) == 2.0 + 1.5                  # 2.0 (step 2), restart: 0.5 (step 4), 1.5 (step 6)
    assert math.isnan(train_seconds_of(m[m.metric == "loss"]))
