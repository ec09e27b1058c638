"""Robustness round 3 (issue 32): a damaged newest checkpoint falls back, symlinks in a run folder
are never followed, a manifest is checked against a schema, crafted checkpoints and a full disk are
one line, every numeric option has an upper bound, the other subcommands' bad input is one line,
and --resume on nothing creates nothing. Each test failed on 5d63874."""
import errno
import json
import os

import pytest
import torch

from conftest import synthetic_mnist
from dbm import cli
from dbm.errors import CheckpointError
from dbm.run import RunDir
from test_robustness import TRAINERS, cli_error, dbm_trainer, rewrite_manifest

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
