"""The cache of finished work shared by every reproduction script: one key, one format, one
meaning of ``--force``.

A *cell* is one unit of a figure's work: measure one width, evaluate one model under one mask,
train one model. Its **key** is the SHA-256 of everything its output depends on:

- the inputs the cell reads (config fields, data set, method, seed; never paths or devices),
- the hashes of the upstream models it consumes (``file_hash`` of their ``model.safetensors``),
  so retraining a model invalidates every cell computed from it,
- the code version: ``CODE_VERSION`` (bumped by hand when a change alters what finished cells
  contain) and the script's own ``version``. The git commit is recorded, not keyed: a commit
  that changes nothing a cell computes does not throw away hours of training.

Format: ``<root>/<kind>/<key>.csv`` (tidy rows), ``<key>.json`` (the inputs, versions, git
commit, wall time) and, when the cell has arrays, ``<key>.safetensors``; each is written under a
temporary name and renamed, the JSON last, so a cell exists whole or not at all. Training cells
are run folders ``<root>/<kind>/<key>/`` (``dbm.run``), resumed where they stopped.

``--force`` (``CellCache(force=True)``): recompute every cell this script owns, each at most once
per invocation (a model shared by several cells is retrained once). Cells read from another
script's cache (fig25's model zoo) are reused whenever their key matches; their own script's
``--force`` recomputes them. The shared cells that no script owns, the suite's classifiers
(``dbm.metrics.classifier``, kind "classifier") and reference feature statistics
(``dbm.metrics.extractors.feature_stats_cached``, kind "feature-stats"), are cells of this cache
too, never forced: their key changes when their inputs or the code version do. The training
commands' ``--force`` (``python -m dbm train ...``) means the same for one run folder: start it
afresh (``dbm.run.RunDir.clear``, which ``run_dir`` calls for a forced training cell).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, NamedTuple

import pandas as pd

from .errors import CheckpointError
from .provenance import atomic_path, atomic_write_text, cell_id, file_sha256, git_sha, write_csv

__all__ = ["CODE_VERSION", "Cell", "CellCache", "file_hash"]

CODE_VERSION = "2"


def file_hash(path: str | Path) -> str:
    """SHA-256 (hex, first 16 characters) of a file's bytes: the identity of a trained model."""
    return file_sha256(path)[:16]


class Cell(NamedTuple):
    """rows: tidy DataFrame; arrays: {name: tensor} (may be empty); meta: the sidecar record."""
    rows: pd.DataFrame
    arrays: dict
    meta: dict


class CellCache:
    """Finished cells under ``root`` (a script's ``--work-dir``).

    force : recompute the cells this instance is asked for (once each per instance).
    version : the script's own code version, part of every key.
    """

    def __init__(self, root: str | Path, force: bool = False, version: str = "1"):
        self.root, self.force, self.version = Path(root), bool(force), str(version)
        self._fresh: set[str] = set()          # keys computed by this instance (not recomputed)

    def key(self, kind: str, inputs: dict, version: str | None = None) -> str:
        """The cell's key; ``version`` overrides the script's (for cells shared between scripts,
        such as the model zoo's, whose keys must not depend on which script asks)."""
        v = self.version if version is None else str(version)
        return cell_id({"kind": kind, "inputs": inputs, "code": CODE_VERSION, "version": v})

    def _stale(self, key: str, owned: bool) -> bool:
        return self.force and owned and key not in self._fresh

    def cell(self, kind: str, inputs: dict, compute: Callable[[], pd.DataFrame | tuple], owned: bool = True) -> Cell:
        """The cached cell, or ``compute()`` stored and returned. ``compute`` returns a DataFrame
        or (DataFrame, {name: tensor}). ``owned=False``: another script's cell (never forced)."""
        key = self.key(kind, inputs)
        folder = self.root / kind
        csv, meta_path, arrays_path = (folder / f"{key}{s}" for s in (".csv", ".json", ".safetensors"))
        if meta_path.exists() and not self._stale(key, owned):
            return self._read(csv, meta_path, arrays_path)
        t0 = time.perf_counter()
        out = compute()
        rows, arrays = out if isinstance(out, tuple) else (out, {})
        meta = {"kind": kind, "key": key, "inputs": inputs, "code_version": CODE_VERSION,
                "script_version": self.version, "git_sha": git_sha(), "wall_time_s": time.perf_counter() - t0,
                "arrays": sorted(arrays)}
        write_csv(rows, csv)
        if arrays:
            from safetensors.torch import save_file
            with atomic_path(arrays_path) as tmp:
                save_file({k: v.detach().cpu().contiguous() for k, v in arrays.items()}, str(tmp))
        atomic_write_text(meta_path, json.dumps(meta, indent=1, default=str) + "\n")   # last: the cell is whole
        self._fresh.add(key)
        return Cell(rows, arrays, meta)

    def load(self, kind: str, key: str) -> Cell:
        """A finished cell by its key (``Cell.meta["key"]``), e.g. to redraw a plot."""
        folder = self.root / kind
        meta = folder / f"{key}.json"
        if not meta.exists():
            raise CheckpointError(f"cached cell {meta} not found: run the script without --plot-only first")
        return self._read(folder / f"{key}.csv", meta, folder / f"{key}.safetensors")

    @staticmethod
    def _read(csv: Path, meta_path: Path, arrays_path: Path) -> Cell:
        from safetensors import SafetensorError
        try:
            meta = json.loads(meta_path.read_text())
            rows = pd.read_csv(csv)
            arrays = {}
            if meta.get("arrays"):
                from safetensors.torch import load
                arrays = load(arrays_path.read_bytes())
        except (OSError, ValueError, KeyError, SafetensorError) as e:
            raise CheckpointError(f"cached cell {meta_path} is damaged ({e}); delete it or rerun with --force") from None
        return Cell(rows, arrays, meta)

    def run_path(self, kind: str, inputs: dict, version: str | None = None) -> Path:
        """Where the training cell of ``inputs`` lives (whether or not it exists yet)."""
        return self.root / kind / self.key(kind, inputs, version)

    def run_dir(self, kind: str, inputs: dict, owned: bool = True, weights: str = "model.safetensors",
                version: str | None = None) -> Path:
        """The folder of a training cell (a ``dbm.run`` run folder, resumed where it stopped);
        emptied first when forced (once per instance). ``weights``: its published file;
        ``version`` as in ``key``."""
        path = self.run_path(kind, inputs, version)
        key = path.name
        if self._stale(key, owned):
            from .run import RunDir
            run = RunDir(path, weights)
            with run.locked():
                run.clear()
            self._fresh.add(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = path.with_suffix(".json")
        if not meta.exists():
            atomic_write_text(meta, json.dumps({"kind": kind, "key": key, "inputs": inputs, "code_version": CODE_VERSION,
                                                "script_version": self.version if version is None else version},
                                               indent=1, default=str) + "\n")
        return path
