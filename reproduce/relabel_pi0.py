"""Relabel the committed results computed before pi0's block order was drawn per chain (the
faithful-order issue, commit c4595a5).

Before that commit every UCD-MH-LMI-based preset searched and swept with the even block first
(``dbm.samplers.ORDERS``), and the 'mode' / 'mode+1' sample kinds and the inpainting search did
too. Those runs are exactly what the ``-even-first`` ablation presets train now (checked bit for
bit in tests/test_pi0_order.py), so their rows are renamed rather than retrained:

    ucd-mh-lmi -> ucd-mh-lmi-even-first          (also "dbm-ucd-mh-lmi" in fig26's model column)
    ucd-mh-lmi-marg -> ucd-mh-lmi-marg-even-first
    ucd-mh-lmi-mixed -> ucd-mh-lmi-mixed-even-first
    official-single-chain -> official-single-chain-even-first

and every row gets ``sample_order`` = "even-first" (its sample kinds' and inpainting search's
order). The sidecar JSON gets the same renames in its config and summaries, and a ``relabelled``
record (this script, its commit, the mapping). A file already relabelled is left alone, so the
script can run again.

    python -m reproduce.relabel_pi0 [FILES.csv ...]     (default: RELABELLED below)
    python -m reproduce.relabel_pi0 --stamp-figures      (the sample grids drawn before it: STAMPED)

A sample grid holds images, not rows, so it cannot be relabelled; ``--stamp-figures`` draws a
banner across the top of each grid drawn before c4595a5 that says which of its row names are the
even-first ablations now, and where the released-pi0 grids are (the image below is unchanged; a
stamped file is left alone).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from dbm.presets import EVEN_FIRST
from dbm.provenance import atomic_write_text, git_sha, write_csv

MAPPING = EVEN_FIRST
NAMES = {**MAPPING, **{f"dbm-{k}": f"dbm-{v}" for k, v in MAPPING.items()}}
COLUMNS = ("method", "model", "estimator")
# the committed tables computed before c4595a5 that are not recomputed with the faithful pi0
RELABELLED = ("results/fig25_end_to_end.csv", "results/fig26_fid.csv", "results/fig27_inpainting.csv",
              "results/converged/fig25_end_to_end.csv", "results/converged/fig25_end_to_end_trace.csv",
              "results/converged/fig26_fid.csv", "results/converged-2x/fig25_end_to_end.csv",
              "results/converged-2x/fig25_end_to_end_trace.csv")
SKIP_KEYS = ("argv", "environment", "relabelled")


def rename(obj, key=None):
    """``obj`` (parsed JSON) with every string equal to a mapped name renamed, dict keys included."""
    if key in SKIP_KEYS:
        return obj
    if isinstance(obj, str):
        return NAMES.get(obj, obj)
    if isinstance(obj, list):
        return [rename(x) for x in obj]
    if isinstance(obj, dict):
        return {NAMES.get(k, k): rename(v, k) for k, v in obj.items()}
    return obj


def relabel_table(df: pd.DataFrame) -> pd.DataFrame:
    """The table with its method / model / estimator names renamed and ``sample_order`` added."""
    df = df.copy()
    for c in COLUMNS:
        if c in df:
            df[c] = df[c].map(lambda x: NAMES.get(x, x) if isinstance(x, str) else x)
    df["sample_order"] = "even-first"
    return df


def relabel(csv: Path, commit: str) -> bool:
    """Relabel one CSV and its sidecar; False when it was relabelled already."""
    side = csv.with_suffix(".json")
    meta = json.loads(side.read_text()) if side.exists() else {}
    if "relabelled" in meta:
        return False
    write_csv(relabel_table(pd.read_csv(csv)), csv)
    meta = rename(meta)
    meta["relabelled"] = {"by": "reproduce/relabel_pi0.py", "commit": commit, "mapping": MAPPING,
                          "why": "computed before pi0's block order was drawn per chain (c4595a5): these rows "
                                 "are the even-first ablations; sample_order 'even-first' is the order of "
                                 "their mode / mode+1 sample kinds and inpainting search"}
    atomic_write_text(side, json.dumps(meta, indent=2, default=str) + "\n")
    return True


# the committed sample grids drawn before c4595a5 (their row names are the pre-issue-30 method names)
STAMPED = ("results/converged/fig25_samples_mnist.png", "results/converged/fig25_samples_fashion-mnist.png",
           "results/converged/fig26_samples_mnist.png", "results/converged/fig26_samples_fashion-mnist.png",
           "results/converged-2x/fig25_samples_mnist.png", "results/fig26_samples_fashion-mnist.png")
STAMP = ("DRAWN BEFORE ISSUE 30: the rows named ucd-mh-lmi, ucd-mh-lmi-marg and ucd-mh-lmi-mixed here are the "
         "even-first ablations (now ucd-mh-lmi-even-first, ...-marg-even-first, ...-mixed-even-first); the released-pi0 "
         "grids: results/converged/faithful*/")


def stamp(path: Path, commit: str) -> bool:
    """Draw the banner above the grid in ``path`` (atomically); False if it is already stamped."""
    import matplotlib
    matplotlib.use("Agg")
    import textwrap

    import matplotlib.pyplot as plt
    from PIL import Image, PngImagePlugin

    from dbm.provenance import atomic_path
    if Image.open(path).text.get("dbm-stamp"):
        return False
    img = plt.imread(path)
    h, w = img.shape[:2]
    dpi, band = 100, 60
    fig = plt.figure(figsize=(w / dpi, (h + band) / dpi), dpi=dpi)
    fig.figimage(img, 0, 0)
    fig.text(0.5, 1 - band / 2 / (h + band), textwrap.fill(STAMP + f" (stamped at {commit[:10]})", 170),
             ha="center", va="center", fontsize=8, color="white", weight="bold",
             bbox=dict(facecolor="#B00020", edgecolor="none", pad=4))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", metadata={"dbm-stamp": STAMP})
    plt.close(fig)
    return True


def main(argv=None) -> int:
    argv = list(argv if argv is not None else sys.argv[1:])
    if argv == ["--stamp-figures"]:
        commit = git_sha()
        for f in STAMPED:
            print(f"{f}: {'stamped' if stamp(Path(f), commit) else 'already stamped, left alone'}")
        return 0
    files = [Path(f) for f in argv or RELABELLED]
    commit = git_sha()
    for f in files:
        print(f"{f}: {'relabelled' if relabel(f, commit) else 'already relabelled, left alone'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
