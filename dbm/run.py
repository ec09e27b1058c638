"""The run layer: one folder per training run, one lifecycle for the DBM, EBM and GAN trainers.

    out_dir/
      run.lock                      flock-ed by the process writing the run (holds its PID)
      checkpoints/step-000000100/   one checkpoint, written under a temporary name and renamed
                                    into place whole, so it exists complete or not at all:
          weights.safetensors         parameters; config and step as metadata
          state.pt                    step, optimizer, schedule, generator states, chains:
                                      tensors and plain containers only (``weights_only=True``)
          manifest.json               written last: step, config, size and SHA-256 of each file,
                                      and the length of metrics.csv at this step
      metrics.csv                   tidy rows (method, seed, step, metric, value), appended before each
                                    checkpoint; a resume cuts it back to the manifest's length
      model.safetensors             the newest checkpoint's weights, published for readers
                                    (``net.safetensors`` for EBMs); never read on resume

Guarantees (tested by killing real runs with SIGKILL, ``tests/test_run.py``): a kill at any
moment leaves the previous checkpoint or the new one, never a mix; a resumed run reaches the
same parameters, bit for bit on CPU, as an uninterrupted one; a checkpoint that needs code to
unpickle is refused without running it; a second process on the same folder is refused; a
resume with other settings is refused before any weights are loaded.

``DBM_FAILPOINT=<name>@<step>`` kills the process with SIGKILL at a named point of the
checkpoint write (``metrics-appended``, ``files-written``, ``renamed``, ``published``): the hook
the kill tests use to hit the inside of a write deterministically.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import math
import os
import re
import shutil
import signal
import time
import warnings
from pathlib import Path

import pandas as pd
import torch

from .errors import CheckpointError, ConfigError, DivergenceError, RunLockedError, UserError
from .provenance import file_sha256

__all__ = ["RunDir", "RunTrainer", "check_resume_config", "ResumeMismatchError", "METRIC_COLUMNS", "read_weights",
           "set_generator_state", "train_seconds", "train_seconds_of",
           "require_finite", "check_writable"]

METRIC_COLUMNS = ("step", "metric", "value")
_STEP_DIR = re.compile(r"^step-(\d{9,})$")
_LEGACY = ("state.pt",)
_FILES = ("weights.safetensors", "state.pt")      # a checkpoint's files besides manifest.json, exactly these
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_STEP = 10 ** 12                               # a step beyond this is no step of a real run
MAX_MANIFEST_BYTES = 1 << 20


class ResumeMismatchError(CheckpointError, ValueError):
    """The checkpoint was written with other settings than the run that tries to resume it."""


def check_resume_config(saved: dict, now: dict, keys, out) -> None:
    """ResumeMismatchError naming every setting in ``keys`` where a checkpoint and the current
    run differ (tuples and JSON lists compare equal)."""
    def same(a, b):
        seq = (list, tuple)
        return list(a) == list(b) if isinstance(a, seq) and isinstance(b, seq) else a == b
    diff = {k: (saved[k], now[k]) for k in keys if k in saved and k in now and not same(saved[k], now[k])}
    if diff:
        raise ResumeMismatchError(f"{out}: the checkpoint was written with other settings (saved, now): {diff}; "
                                  "use another out_dir, or --force to start afresh")


def _step_of(d: Path) -> int | None:
    """The step of a checkpoint folder ``step-NNNNNNNNN`` (the canonical name of its step: at least
    9 digits, no extra leading zero), None for any other name (a stray folder is no checkpoint)."""
    m = _STEP_DIR.match(d.name)
    return int(m.group(1)) if m and d.name == f"step-{int(m.group(1)):09d}" else None


def _failpoint(name: str, step: int) -> None:
    """Test hook: SIGKILL this process when DBM_FAILPOINT is ``name@step`` (or ``name``)."""
    want = os.environ.get("DBM_FAILPOINT")
    if want and want in (name, f"{name}@{step}"):
        os.kill(os.getpid(), signal.SIGKILL)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:                       # some file systems cannot sync a folder
        pass
    finally:
        os.close(fd)


def open_nofollow(path: Path, flags: int, mode: int = 0o644) -> int:
    """``os.open`` that never follows a symbolic link at ``path`` (a run folder's own files):
    CheckpointError naming it when it is one."""
    try:
        return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), mode)
    except OSError as e:
        if e.errno == errno.ELOOP or path.is_symlink():
            raise CheckpointError(f"{path} is a symbolic link; a run folder's own files are never opened "
                                  "through links: remove it, or choose another --out-dir") from None
        raise


def _space_error(e: BaseException) -> bool:
    """True for 'no space left' (or over quota), as an OSError or as the message of a library's error."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return "No space left on device" in str(e) or "Disk quota exceeded" in str(e)


def _mount_of(path: Path) -> Path:
    p = path.absolute()
    while not os.path.ismount(p) and p != p.parent:
        p = p.parent
    return p


def check_manifest(m, d: Path) -> dict:
    """The manifest ``m`` if it fits the schema (types, ranges, the required keys, exactly the
    checkpoint's own file names); CheckpointError naming what does not."""
    def bad(why):
        raise CheckpointError(f"{d / 'manifest.json'}: {why}")
    if not isinstance(m, dict):
        bad("not a JSON object")
    step = m.get("step")
    if type(step) is not int or not 0 <= step < MAX_STEP:
        bad(f"step must be an integer in [0, {MAX_STEP}), got {step!r}")
    if d.name != f"step-{step:09d}":
        bad(f"the manifest says step {step}")
    mb = m.get("metrics_bytes")
    if type(mb) is not int or mb < 1:
        bad(f"metrics_bytes must be an integer >= 1, got {mb!r}")
    if not isinstance(m.get("config"), dict) or not m["config"]:
        bad(f"config must be a non-empty object, got {m.get('config')!r}")
    files = m.get("files")
    if not isinstance(files, dict) or sorted(files) != sorted(_FILES):
        bad(f"files must name exactly {', '.join(_FILES)}, got {files!r}"[:300])
    for name, want in files.items():
        if (not isinstance(want, dict) or type(want.get("bytes")) is not int or want["bytes"] < 0
                or not isinstance(want.get("sha256"), str) or not _SHA256.match(want["sha256"])):
            bad(f"files[{name!r}] must be {{bytes: integer >= 0, sha256: 64 hex digits}}, got {want!r}"[:300])
    return m


def _format_value(v) -> str:
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, int):
        return str(v)
    return repr(float(v))


class RunDir:
    """One run folder (layout in the module docstring). ``weights_name`` is the published copy."""

    def __init__(self, path: str | Path, weights_name: str = "model.safetensors", keep: int = 2,
                 labels: dict | None = None):
        self.path, self.weights_name, self.keep = Path(path), weights_name, int(keep)
        self.labels = dict(labels or {})          # constant columns of every metrics row (method, seed)
        self.columns = (*self.labels, *METRIC_COLUMNS)
        self.ckpt_root = self.path / "checkpoints"
        self.metrics_path = self.path / "metrics.csv"
        self.loaded: Path | None = None           # the checkpoint folder ``load`` read last

    # ------------------------------------------------------------------ folder and lock
    def check_links(self) -> None:
        """CheckpointError when one of the run folder's own entries is a symbolic link (they are
        never followed: a link could make a run overwrite a file outside its folder)."""
        for name in ("run.lock", "metrics.csv", "checkpoints", self.weights_name):
            if (self.path / name).is_symlink():
                raise CheckpointError(f"{self.path / name} is a symbolic link; a run folder's own files are "
                                      "never opened through links: remove it, or choose another --out-dir")

    def check_layout(self) -> None:
        """CheckpointError for a folder written by an older dbm (a pickled top-level state.pt)."""
        if any((self.path / f).exists() for f in _LEGACY) and not self.ckpt_root.exists():
            raise CheckpointError(f"{self.path} holds a checkpoint of an older dbm (a top-level state.pt, "
                                  "loaded with pickle); it is not read. Train again with --force or "
                                  "choose another out_dir")

    @contextlib.contextmanager
    def locked(self, enabled: bool = True):
        """Hold ``run.lock`` (an exclusive flock, released by the kernel even on SIGKILL) for the
        block; RunLockedError if a live process holds it."""
        if not enabled:
            yield
            return
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self.check_links()
            f = os.fdopen(open_nofollow(self.path / "run.lock", os.O_RDWR | os.O_CREAT), "r+")
        except OSError as e:
            raise CheckpointError(f"cannot write the run folder {self.path}: {e.strerror or e}; "
                                  "choose a writable --out-dir") from e
        try:
            import fcntl
        except ImportError:               # no flock on this platform: no lock
            fcntl = None
        if fcntl is not None:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                owner = f.read().strip() or "?"
                f.close()
                raise RunLockedError(f"{self.path} is being written by process {owner}; wait for it to "
                                     "finish or choose another out_dir") from None
        try:
            f.seek(0)
            f.truncate()
            f.write(f"{os.getpid()}\n")
            f.flush()
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(f, fcntl.LOCK_UN)
            f.close()

    def clear(self) -> None:
        """Delete the run's checkpoints, metrics and published weights (``--force``)."""
        shutil.rmtree(self.ckpt_root, ignore_errors=True)
        for name in (self.weights_name, "metrics.csv", *_LEGACY):
            (self.path / name).unlink(missing_ok=True)

    # ------------------------------------------------------------------ writing
    def append_metrics(self, rows: list[dict]) -> int:
        """Append tidy rows to metrics.csv (header first: the labels, then step, metric, value),
        synced to disk; returns its length. A file begun by an older dbm without the label
        columns keeps its own header."""
        self.path.mkdir(parents=True, exist_ok=True)
        fd = open_nofollow(self.metrics_path, os.O_RDWR | os.O_CREAT | os.O_APPEND)
        with os.fdopen(fd, "a+", newline="") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() == 0:
                f.write(",".join(self.columns) + "\n")
                columns = self.columns
            else:
                f.seek(0)
                columns = tuple(f.readline().strip().split(","))
                f.seek(0, os.SEEK_END)
            fixed = [str(self.labels[c]) for c in columns[:-3] if c in self.labels]
            prefix = "".join(f"{v}," for v in fixed)
            f.writelines(f"{prefix}{r['step']},{r['metric']},{_format_value(r['value'])}\n" for r in rows)
            f.flush()
            os.fsync(f.fileno())
            return f.tell()

    def save(self, step: int, tensors: dict, meta: dict, state: dict, config: dict, rows: list[dict]) -> Path:
        """Write the checkpoint of ``step`` (metrics first, then the folder, renamed into place
        whole), publish its weights and keep the newest ``keep`` checkpoints. A full disk is one
        CheckpointError naming the file system and the last good checkpoint; the partial folder
        is removed (and the half-written metrics rows are cut by the next resume)."""
        try:
            return self._save(step, tensors, meta, state, config, rows)
        except Exception as e:
            if not _space_error(e):
                raise
            for d in self.ckpt_root.glob(f".tmp-step-{step:09d}-{os.getpid()}"):
                shutil.rmtree(d, ignore_errors=True)
            last = self.checkpoints()
            raise CheckpointError(f"no space left on {_mount_of(self.path)} while writing the checkpoint of step "
                                  f"{step} in {self.path}; the last good checkpoint is step "
                                  f"{_step_of(last[-1]) if last else 'none'}: free space, then --resume") from None

    def _save(self, step, tensors, meta, state, config, rows) -> Path:
        from safetensors.torch import save_file
        metrics_bytes = self.append_metrics(rows)
        _failpoint("metrics-appended", step)
        self.ckpt_root.mkdir(parents=True, exist_ok=True)
        final = self.ckpt_root / f"step-{step:09d}"
        tmp = self.ckpt_root / f".tmp-step-{step:09d}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        meta = {**{k: str(v) for k, v in meta.items()}, "step": str(step), "config": json.dumps(config)}
        save_file(tensors, str(tmp / "weights.safetensors"), metadata=meta)
        torch.save(dict(state, step=step), tmp / "state.pt")
        files = {}
        for name in ("weights.safetensors", "state.pt"):
            with open(tmp / name, "rb+") as f:
                os.fsync(f.fileno())
            files[name] = {"bytes": (tmp / name).stat().st_size, "sha256": file_sha256(tmp / name)}
        manifest = {"format": 1, "step": step, "metrics_bytes": metrics_bytes, "config": config, "files": files,
                    "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        with open(tmp / "manifest.json", "w") as f:
            json.dump(manifest, f, indent=1, default=str)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp)
        _failpoint("files-written", step)
        if final.exists():                # the same step saved again: swap, the old one last
            trash = self.ckpt_root / f".trash-{final.name}-{os.getpid()}"
            os.rename(final, trash)
            os.rename(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.rename(tmp, final)
        _fsync_dir(self.ckpt_root)
        _failpoint("renamed", step)
        self._publish(final / "weights.safetensors")
        _failpoint("published", step)
        self._prune()
        return final

    def _publish(self, src: Path) -> None:
        tmp = self.path / f".tmp-{self.weights_name}-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        try:
            os.link(src, tmp)
        except OSError:                   # no hard links here: copy
            shutil.copyfile(src, tmp)
        os.replace(tmp, self.path / self.weights_name)

    def _prune(self) -> None:
        for d in self.checkpoints()[:-self.keep]:
            shutil.rmtree(d, ignore_errors=True)
        for d in self.ckpt_root.glob(".t*-step-*"):   # leftovers of killed writes
            if not d.name.endswith(f"-{os.getpid()}"):
                shutil.rmtree(d, ignore_errors=True)

    # ------------------------------------------------------------------ reading
    def checkpoints(self) -> list[Path]:
        """The complete checkpoint folders, oldest first."""
        if not self.ckpt_root.is_dir():
            return []
        found = [(m, d) for d in self.ckpt_root.iterdir() if (m := _step_of(d)) is not None]
        return [d for _, d in sorted(found)]

    def _verify(self, d: Path) -> dict:
        """The manifest of checkpoint ``d`` once it fits its schema and every file its size and
        SHA-256; CheckpointError otherwise. Nothing is followed through a link."""
        man = d / "manifest.json"
        try:
            if d.is_symlink() or man.is_symlink() or not man.is_file():
                raise CheckpointError(f"{man}: missing, or a symbolic link")
            if man.stat().st_size > MAX_MANIFEST_BYTES:
                raise CheckpointError(f"{man}: larger than {MAX_MANIFEST_BYTES} bytes")
            manifest = json.loads(man.read_text())
        except (OSError, ValueError, RecursionError) as e:
            raise CheckpointError(f"{man}: unreadable ({type(e).__name__})") from None
        check_manifest(manifest, d)
        for name, want in manifest["files"].items():
            p = d / name
            if (p.is_symlink() or not p.is_file() or p.stat().st_size != want["bytes"]
                    or file_sha256(p) != want["sha256"]):
                raise CheckpointError(f"{p}: missing or not the file the manifest names (size or SHA-256 differ)")
        return manifest

    def _set_aside(self, d: Path) -> Path:
        """Rename a damaged checkpoint folder to ``damaged-<name>`` (never deleted; no longer a
        checkpoint)."""
        target, i = self.ckpt_root / f"damaged-{d.name}", 1
        while target.exists() or target.is_symlink():
            i += 1
            target = self.ckpt_root / f"damaged-{d.name}-{i}"
        os.rename(d, target)
        return target

    def latest(self, set_aside: bool = False) -> tuple[Path, dict] | None:
        """The newest checkpoint that verifies against its manifest (older ones are tried when the
        newest is damaged); None when there is none; CheckpointError when all are damaged. With
        ``set_aside`` (the writer, under the lock) each damaged one is moved aside
        (``damaged-step-...``), with one warning naming it, so the run continues from the newest
        valid one."""
        found = self.checkpoints()
        errors = []
        for d in reversed(found):
            try:
                return d, self._verify(d)
            except CheckpointError as e:
                where = f"; moved aside to {self._set_aside(d).name}" if set_aside else ""
                warnings.warn(f"skipping the damaged checkpoint {d.name}{where}: {e}", stacklevel=2)
                errors.append(str(e))
        if found:
            raise CheckpointError(f"{self.path}: every checkpoint is damaged: {'; '.join(errors)}")
        return None

    def check_metrics_header(self) -> None:
        """CheckpointError unless metrics.csv's header is this run's columns (or, for a file begun
        by an older dbm, the columns without the labels)."""
        if not self.metrics_path.exists():
            return
        with os.fdopen(open_nofollow(self.metrics_path, os.O_RDONLY), "r") as f:
            header = tuple(f.readline(1 << 12).strip().split(","))
        if header not in (tuple(self.columns), METRIC_COLUMNS):
            raise CheckpointError(f"{self.metrics_path}: its header {','.join(header)!r} is not "
                                  f"{','.join(self.columns)!r}; rows would land under the wrong columns")

    def load(self, device, config: dict, must_match, truncate_metrics: bool = True):
        """(tensors, state) of the newest checkpoint, or None when there is none. The settings
        are compared before anything else is read; the step of weights, state and manifest must
        agree; metrics.csv is cut back to the rows written up to that step."""
        self.check_layout()
        self.check_links()
        found = self.latest(set_aside=truncate_metrics)
        if found is None:
            return None
        d, manifest = found
        self.loaded = d
        if truncate_metrics:
            self.check_metrics_header()
        check_resume_config(manifest.get("config", {}), config, must_match, self.path)
        try:
            state = torch.load(d / "state.pt", map_location=device, weights_only=True)
        except Exception as e:            # UnpicklingError and friends: refused, nothing executed
            raise CheckpointError(f"{d / 'state.pt'} was refused: it is not plain tensors and containers "
                                  f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); a "
                                  "checkpoint that needs code to load is never unpickled") from None
        from safetensors import safe_open
        tensors = {}
        try:
            with safe_open(str(d / "weights.safetensors"), framework="pt", device=str(device)) as f:
                meta = f.metadata() or {}
                for k in f.keys():
                    tensors[k] = f.get_tensor(k)
        except Exception as e:
            raise CheckpointError(f"{d / 'weights.safetensors'}: not readable ({e})") from e
        steps = {"manifest": int(manifest["step"]), "weights": int(meta.get("step", -1)),
                 "state": int(state.get("step", -1)) if isinstance(state, dict) else -1}
        if len(set(steps.values())) != 1:
            raise CheckpointError(f"{d}: the files are of different steps {steps}; not loaded")
        if truncate_metrics:
            size = self.metrics_path.stat().st_size if self.metrics_path.exists() else 0
            if size < manifest["metrics_bytes"]:
                raise CheckpointError(f"{self.metrics_path} is shorter ({size} bytes) than at step "
                                      f"{steps['state']} ({manifest['metrics_bytes']} bytes): metrics were lost")
            if size > manifest["metrics_bytes"]:
                fd = open_nofollow(self.metrics_path, os.O_RDWR)
                try:
                    os.ftruncate(fd, manifest["metrics_bytes"])
                finally:
                    os.close(fd)
        return tensors, state

    def metrics(self) -> pd.DataFrame:
        return pd.read_csv(self.metrics_path) if self.metrics_path.exists() else pd.DataFrame(columns=self.columns)


class RunTrainer:
    """The lifecycle shared by the trainers: folder, lock, atomic checkpoints, resume with a
    config check, divergence stop, metrics.csv, one fit loop.

    A subclass calls ``_init_run(cfg)`` and provides: ``total`` (updates to reach),
    ``train_step() -> dict | None`` (one update; the metrics to log at this step or None),
    ``checkpoint_tensors()``, ``checkpoint_state()``, ``restore(tensors, state)``; optionally
    ``checkpoint_meta()``, ``postfix(rec)``, ``before_fit()``, ``after_step()``, ``after_fit()``
    and ``finished()`` (True stops the loop before ``total``: an early-stopping rule).
    """
    WEIGHTS = "model.safetensors"
    MUST_MATCH: tuple = ()
    DESC = "train"
    rank = 0

    def _init_run(self, cfg) -> None:
        self.cfg, self.out = cfg, Path(cfg.out_dir)
        self.run_dir = RunDir(self.out, self.WEIGHTS, labels=self.run_labels())
        self.step, self.rows, self._saved_step = 0, [], None
        self._wall_before = 0.0           # training seconds of the earlier processes (resume)
        self._t0 = None                   # perf_counter at the start of the current fit (None between fits)

    @property
    def total(self) -> int:
        raise NotImplementedError

    def config_dict(self) -> dict:
        return dataclasses.asdict(self.cfg)

    def run_labels(self) -> dict:
        """The constant columns of metrics.csv: which method and seed the rows belong to."""
        return {"method": self.DESC, "seed": getattr(self.cfg, "seed", 0)}

    # ------------------------------------------------------------------ hooks (defaults)
    def checkpoint_meta(self) -> dict:
        return {}

    def postfix(self, rec: dict) -> dict:
        return {}

    def before_fit(self) -> None:
        pass

    def after_step(self) -> None:
        pass

    def after_fit(self) -> None:
        pass

    def finished(self) -> bool:
        return False

    # ------------------------------------------------------------------ lifecycle
    def save(self) -> None:
        """Checkpoint the current step (rank 0 only) with the metrics logged since the last one."""
        if self.rank != 0:
            return
        self.run_dir.save(self.step, self.checkpoint_tensors(), self.checkpoint_meta(),
                          dict(self.checkpoint_state(), wall_time_s=self.wall_time()), self.config_dict(), self.rows)
        self.rows, self._saved_step = [], self.step

    def resume(self) -> bool:
        """Load the newest complete checkpoint of ``out_dir`` if there is one; True if resumed."""
        with self.run_dir.locked(enabled=self.rank == 0):
            got = self.run_dir.load(self.cfg.device, self.config_dict(), self.MUST_MATCH,
                                    truncate_metrics=self.rank == 0)
        if got is None:
            return False
        tensors, state = got
        try:
            self.restore(tensors, state)
        except UserError:                 # the trainer's own refusal (another device, settings): as it is
            raise
        except (KeyError, IndexError, RuntimeError, ValueError, TypeError, AttributeError) as e:
            raise CheckpointError(self._misfit(tensors, state, e)) from None
        self.step = self._saved_step = int(state["step"])
        self._wall_before = float(state.get("wall_time_s", 0.0))
        self.rows = []
        return True

    def _misfit(self, tensors: dict, state, error: Exception) -> str:
        """One line saying which file of the loaded checkpoint does not fit this trainer, and how:
        a tensor missing or of another shape in weights.safetensors, an entry missing from
        state.pt, or else the first line of ``error``."""
        d = self.run_dir.loaded
        want = self.checkpoint_tensors()
        for k, v in want.items():
            if k not in tensors:
                return f"{d / 'weights.safetensors'} has no tensor {k!r}; it is not a checkpoint of this run"
            if tuple(tensors[k].shape) != tuple(v.shape):
                return (f"{d / 'weights.safetensors'}: {k!r} has shape {tuple(tensors[k].shape)}, this run's is "
                        f"{tuple(v.shape)}; it is not a checkpoint of this run")
        if not isinstance(state, dict):
            return f"{d / 'state.pt'} is not a dictionary; it is not a checkpoint of this run"
        missing = [k for k in self.checkpoint_state() if k not in state]
        if missing:
            return f"{d / 'state.pt'} has no {', '.join(map(repr, missing))}; it is not a checkpoint of this run"
        first = (str(error).strip().splitlines() or [""])[0][:300]
        return f"{d}: state.pt or weights.safetensors does not fit this run ({type(error).__name__}: {first})"

    def _check_continues(self) -> None:
        """Refuse to write over a folder whose newest checkpoint is not the one this trainer holds."""
        self.run_dir.check_layout()
        ckpts = self.run_dir.checkpoints()
        newest = _step_of(ckpts[-1]) if ckpts else None
        if newest != self._saved_step:
            if self._saved_step is None:
                raise CheckpointError(f"{self.out} already holds a checkpoint (step {newest}); resume it "
                                      "(--resume) or start again with --force")
            raise CheckpointError(f"{self.out} moved on to step {newest} since this trainer loaded step "
                                  f"{self._saved_step}; resume again")
        if newest is None:                # rows of a run killed before its first checkpoint
            self.run_dir.metrics_path.unlink(missing_ok=True)

    def run(self, progress: bool = True) -> pd.DataFrame:
        """Train to ``total`` updates (or until ``finished()``), checkpointing every ``cfg.ckpt_every`` and at the end;
        returns the tidy metrics (rank 0; other ranks, which write none, get an empty frame
        instead of reading a file rank 0 may be writing). On divergence the rows logged so far are written and
        DivergenceError propagates; the last good checkpoint is kept."""
        from tqdm.auto import tqdm
        with self.run_dir.locked(enabled=self.rank == 0):
            if self.rank == 0:
                self._check_continues()
            self._t0 = time.perf_counter()
            self.before_fit()
            bar = tqdm(total=self.total, initial=self.step, disable=not progress or self.rank != 0,
                       desc=self.DESC, dynamic_ncols=True, mininterval=1.0)
            try:
                while self.step < self.total and not self.finished():
                    rec = self.train_step()
                    if rec is not None:
                        self.rows += [{"step": self.step, "metric": k, "value": v} for k, v in rec.items()]
                        bar.set_postfix(self.postfix(rec), refresh=False)
                    bar.update(1)
                    if self.step % self.cfg.ckpt_every == 0 or self.step == self.total:
                        self.save()
                    self.after_step()
            except DivergenceError:
                if self.rank == 0 and self.rows:
                    self.run_dir.append_metrics(self.rows)   # kept for the post-mortem; a resume cuts them
                    self.rows = []
                raise
            finally:
                bar.close()
            if self._saved_step != self.step:
                self.save()
            self._wall_before, self._t0 = self.wall_time(), None     # the clock stops between fits
            self.after_fit()
        if self.rank != 0:
            return pd.DataFrame(columns=self.run_dir.columns)
        return self.run_dir.metrics()

    def wall_time(self) -> float:
        """Training seconds so far, summed over the processes of a resumed run (up to its checkpoint)."""
        return self._wall_before + (0.0 if self._t0 is None else time.perf_counter() - self._t0)


def train_seconds(wall) -> float:
    """Training seconds of a run from its logged ``wall_time_s`` values in step order. The clock
    is carried over resumes now; runs logged before that restarted it in each process, so where
    the values fall the last value before the fall is added (the sum of each process's time)."""
    total, prev = 0.0, 0.0
    for v in (float(x) for x in wall):
        if v < prev:
            total += prev
        prev = v
    return total + prev


def train_seconds_of(metrics) -> float:
    """``train_seconds`` of a run's tidy metrics (step, metric, value); NaN when it logged no wall time."""
    wall = metrics[metrics.metric == "wall_time_s"].sort_values("step", kind="stable").value
    return train_seconds(wall) if len(wall) else math.nan


def set_generator_state(gen: torch.Generator, state: torch.Tensor) -> None:
    """Put a checkpoint's generator state back into ``gen``. The checkpoint reader maps every
    tensor to the run's device, but ``set_state`` takes a CPU ByteTensor for CPU and CUDA
    generators alike (on CUDA, resume failed with "RNG state must be a torch.ByteTensor")."""
    gen.set_state(state.cpu())


def read_weights(path: str | Path, what: str, device="cpu") -> tuple[dict, dict]:
    """(tensors, metadata) of a published weights file; CheckpointError when it is missing or
    unreadable (safetensors: no code runs on load)."""
    from safetensors import safe_open
    from safetensors.torch import load_file
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        return load_file(str(path), device=str(device)), meta
    except Exception as e:                # safetensors raises several kinds
        raise CheckpointError(f"{path}: not a readable {what} checkpoint ({e}); delete it or train again") from e


def require_finite(named_tensors, step: int, out) -> None:
    """DivergenceError naming the first parameter with a NaN/inf entry (one host synchronisation
    when every entry is finite)."""
    named_tensors = list(named_tensors)
    if bool(torch.stack([torch.isfinite(p).all() for _, p in named_tensors]).all()):
        return
    for name, p in named_tensors:
        if not bool(torch.isfinite(p).all()):
            raise DivergenceError(f"parameter {name} became NaN/inf at update {step}; "
                                  f"the last good checkpoint in {out} is kept")


def check_writable(path: str | Path) -> None:
    """ConfigError unless ``path`` (or, when it does not exist yet, its nearest existing parent)
    is a writable folder: checked before any work, without creating anything."""
    p = Path(path).absolute()
    probe = p
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        why = "is not a folder" if not probe.is_dir() else "is not writable"
        raise ConfigError(f"out_dir {p}: {probe} {why}; choose another --out-dir")
