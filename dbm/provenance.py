"""What a result is and where it came from: derived seeds, the one key function (``cell_id``)
and file hasher (``file_sha256``), atomic writes, the git SHA, sidecar JSON with the full protocol."""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from dbm.host import cpu_model

__all__ = ["seed_hash", "cell_id", "file_sha256", "atomic_path", "atomic_write_text", "write_csv", "git_sha", "environment",
           "write_sidecar", "device_name", "cpu_model", "gpu_name", "cpu_time_s", "state_hash",
           "PROVENANCE_FIELDS"]


def seed_hash(*names) -> int:
    """A 63-bit seed derived from names, e.g. seed_hash("fig24", method, width, replicate)."""
    digest = hashlib.sha256("/".join(str(n) for n in names).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def cell_id(args: dict) -> str:
    """A short stable hash of a job's arguments (the name of its output file): the one key
    function, through which ``dbm.result_cache.CellCache.key`` keys every cached cell."""
    return hashlib.sha256(json.dumps(args, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_sha256(path) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB blocks: the one file hasher (checkpoint
    integrity, model identity in cell keys, Inception weights)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def state_hash(module) -> str:
    """sha256 (hex) over a module's state dict, sorted by name (each name, then the tensor's
    bytes): the identity of trained weights in cell keys and extractor records."""
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """The one temp-file-and-rename writer: yields a temporary path in the same folder; the
    caller writes it (any writer: text, safetensors, savefig, npz) and on success it is renamed
    onto ``path``, so ``path`` is the old file or the whole new one, never a half-written file.
    On error the temporary file is removed. A ``path`` that exists and is not a regular file (a
    device such as /dev/null, a folder, a symbolic link) is refused: renaming over it would replace it."""
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise ValueError(f"{path} is not a regular file: refusing to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.stem}-", suffix=path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (``atomic_path``)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_csv(df, path: str | Path) -> None:
    atomic_write_text(path, df.to_csv(index=False))


def git_sha(root: str | Path | None = None) -> str:
    """The commit of the code, "<sha>" for a clean tree; with uncommitted changes to tracked files
    outside ``results/`` (the outputs themselves do not count)
    "<sha>-dirty-<12 hex of the SHA-256 of ``git diff HEAD``>", so a result never passes for the
    commit's and two dirty runs of the same edit share the tag. "unknown" outside git."""
    root = Path(root or Path(__file__).resolve().parents[1])
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        diff = subprocess.run(["git", "diff", "HEAD", "--", ".", ":(exclude)results"], cwd=root,
                              capture_output=True, timeout=30).stdout      # the code, not the outputs
        if not diff:
            return sha or "unknown"
        return f"{sha or 'unknown'}-dirty-{hashlib.sha256(diff).hexdigest()[:12]}"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _version(dist: str) -> str | None:
    from importlib import metadata
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def device_name(device: str | torch.device) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()} ({os.cpu_count()} cpus, {torch.get_num_threads()} torch threads)"


def gpu_name(device: str | torch.device = "cpu") -> str | None:
    """The name of the CUDA device a run used, None for a CPU run."""
    device = torch.device(device)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else None


def cpu_time_s() -> float:
    """CPU seconds (user + system) of this process and its finished children so far: beside the
    wall time it shows how much of the machine a run had (2 cores busy: about twice the wall)."""
    import resource
    return sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for f in ("ru_utime", "ru_stime"))


PROVENANCE_FIELDS = ("git_sha", "clean_tree", "cpu_model", "gpu", "python", "torch", "date_utc")
"""What every sidecar's ``environment`` holds (beside ``wall_time_s`` and ``cpu_time_s`` at its top
level); reproduce/provenance.py checks the committed ones."""


def environment(device: str | torch.device = "cpu") -> dict:
    """Versions, device and host facts for a sidecar: the commit and whether the tree was clean,
    the CPU's model name, the GPU's name (None for a CPU run), versions, and the date (UTC)."""
    import datetime

    import numpy
    import pandas
    sha = git_sha()
    return {"python": sys.version.split()[0], "torch": torch.__version__,
            "numpy": numpy.__version__, "pandas": pandas.__version__,
            **{k: _version(k) for k in ("torchvision", "pytorch-fid", "scipy")},
            "platform": platform.platform(), "device": str(device),
            "device_name": device_name(device), "cpu_model": cpu_model(), "gpu": gpu_name(device),
            "git_sha": sha, "clean_tree": "-dirty" not in sha,
            "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def write_sidecar(path: str | Path, config, wall_time_s: float, device: str, **extra) -> dict:
    """The sidecar JSON: resolved config, environment, wall time, the process's CPU time so far
    (``cpu_time_s``; with several processes, theirs once they have finished), and anything extra."""
    cfg = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    record = {"config": cfg, "environment": environment(device), "wall_time_s": wall_time_s,
              "cpu_time_s": cpu_time_s(), "argv": sys.argv, **extra}
    atomic_write_text(path, json.dumps(record, indent=2, default=str) + "\n")
    return record
