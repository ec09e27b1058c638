"""The verdict, slides 25-26, speed and runtime tables of the README and docs, from the committed CSVs.

Each function returns a Markdown table (registered in reproduce.tables.TABLES). A verdict is a
stated rule applied to the numbers (the rule is in the row), never a word typed beside them; the
runtimes come from results/runtimes.csv (reproduce/runtimes.py), "not measured yet" where it has no
row. Sample counts are printed wherever two are in use (fig25's 1,000 samples per kind, fig26's 2,000).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from reproduce import runtimes

ROOT = Path(__file__).resolve().parents[1]


def fmt(x: float) -> str:
    """A number as the tables print it: 2 significant digits ("0.043", "9.9", "35"), whole numbers
    from 100 ("579"), and "2.8e3" from 1000 or below 0.001."""
    if pd.isna(x):
        return "-"
    if x != 0 and (abs(x) >= 1000 or abs(x) < 1e-3):
        mant, exp = f"{x:.1e}".split("e")
        return f"{mant}e{int(exp)}"
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.2g}"


def _f(x: float, nd: int = 0) -> str:
    return "-" if pd.isna(x) else f"{x:,.{nd}f}"


def short_sha(path: Path) -> str:
    """A sidecar's commit, short, with ", dirty tree" when it was not clean (provenance.facts)."""
    from reproduce.provenance import commit_of, facts
    f = facts(json.loads(Path(path).read_text()))
    return commit_of(str(f.get("git_sha", "?")))[:7] + ("" if f.get("clean_tree") else ", dirty tree")


def _runtime(target: str, profile: str | None, root: Path) -> str:
    row = runtimes.latest(target, profile, rows=runtimes.read(root / "results" / "runtimes.csv"))
    return runtimes.describe(row, short=True)


# ---------------------------------------------------------------------------------------------
# slide 25 (fig25) and slide 26 (fig26)

def fig25_numbers(path: Path) -> dict:
    """From a fig25 CSV: per (dataset, method) the seed-mean LL interval and the seeds' forward
    bounds, the independent-pixel baseline, and sample statistics / classifier-FD per kind."""
    d = pd.read_csv(path)
    fin = d[d.kind == "final"]
    iv = fin[fin.metric.isin(["test_ll_low", "test_ll_high"])].groupby(["dataset", "method", "metric"]).value.mean()
    bounds = fin[fin.metric == "test_ll_bound"].groupby(["dataset", "method"]).value.apply(list)
    base = fin[fin.metric == "bernoulli_baseline_ll"].groupby("dataset").value.first()
    fd = d[d.kind == "fd"]
    fd_stats = fd.groupby(["dataset", "method", "samples"]).agg(mean=("value", "mean"), sd=("value", "std"),
                                                                seeds=("seed", "nunique"), n=("n", "max"))
    smp = d[d.kind == "samples"].groupby(["dataset", "method", "samples", "metric"]).value.mean()
    return dict(iv=iv.unstack("metric"), bounds=bounds, base=base, fd=fd_stats, samples=smp)


def _interval(n: dict, ds: str, m: str) -> str:
    r = n["iv"].loc[(ds, m)]
    return f"[{r.test_ll_low:.1f}, {r.test_ll_high:.1f}]"


def _fd(n: dict, ds: str, m: str, kind: str) -> str:
    try:
        r = n["fd"].loc[(ds, m, kind)]
    except KeyError:
        return "-"
    se = r["sd"] / np.sqrt(r.seeds) if r.seeds > 1 else None
    return f"{r['mean']:.0f}" + ("" if se is None else f" +- {se:.1f}" if se < 10 else f" +- {se:.0f}")


def slide25_verdict(n: dict, ds: str, method: str = "ucd-mh-lmi") -> tuple[str, list]:
    """'yes' when ``method``'s seed-mean LL interval lies above those of CD, PCD and UCD-Gibbs (the
    slide's claim), 'no' when any lies above it, 'undecided' otherwise."""
    iv = n["iv"]
    ref = iv.loc[(ds, method)]
    out = []
    for other in ("cd", "pcd", "ucd-gibbs"):
        if (ds, other) not in iv.index:
            continue
        r = iv.loc[(ds, other)]
        out.append((other, "below" if r.test_ll_high < ref.test_ll_low else "above" if r.test_ll_low > ref.test_ll_high
                    else "overlaps"))
    word = ("yes" if out and all(v == "below" for _, v in out) else "no" if any(v == "above" for _, v in out)
            else "undecided")
    return word, out


def fig26_numbers(path: Path) -> pd.DataFrame:
    d = pd.read_csv(path)
    d = d[(d.get("kind", pd.Series("", index=d.index)) != "trace") & d.value.notna()]
    g = d.groupby(["dataset", "metric", "model", "sample_kind"])
    return g.agg(mean=("value", "mean"), sd=("value", "std"), seeds=("seed", "nunique"), n=("n_gen", "max"))


def _fd26(t: pd.DataFrame, ds: str, model: str, kind: str) -> str:
    try:
        r = t.loc[(ds, "classifier_fd", model, kind)]
    except KeyError:
        return "-"
    se = r["sd"] / np.sqrt(r.seeds) if r.seeds > 1 else None
    return f"{r['mean']:.1f}" + ("" if se is None else f" +- {se:.1f}" if se < 10 else f" +- {se:.0f}")


def ladder_trend(root: Path, criterion: str) -> str:
    """The scale ladder's trend for a verdict row (``reproduce.ladder.trend``): "ll" (slide 25:
    the margin over independent pixels) or "fd" (slide 26: the best classifier-FD)."""
    path = root / "results" / "ladder" / "ladder.json"
    if not path.exists():
        return "scale ladder: not run yet"
    t = json.loads(path.read_text()).get("trend", {})
    if not t or f"{criterion}_trend" not in t:
        return "scale ladder: fewer than two rungs"
    from reproduce.ladder import TREND_WORDS
    word = TREND_WORDS[t[f"{criterion}_trend"]]
    rungs = f"rungs {t['first_rung']}-{t['last_rung']}, 784-200-200 batch 100 to 784-784-784 batch 1000, seed 0"
    if criterion == "ll":
        return (f"scale ladder ({rungs}): margin over independent pixels "
                f"{' -> '.join(f'{m:+.0f}' for m in t['margin'])} nats, **{word}** (rule: beyond the brackets' widths "
                f"plus twice the seed spread, {t['tolerance']:.0f} nats"
                + (f"; rung {t['last_rung']}'s bracket is {t['bracket_widths'][1]:.0f} nats wide"
                   if t["bracket_widths"][1] > 10 else "") + ")")
    return (f"scale ladder ({rungs}): best classifier-FD {' -> '.join(f'{x:.0f}' for x in t['best_fd'])} "
            f"(2,000 samples), **{word}** (rule: a factor of 2)")


# ---------------------------------------------------------------------------------------------
# the tables

def verdict_table(root: Path = ROOT) -> str:
    res = root / "results"
    rows = ["| claim | reproduced? (rule) | the numbers | figure | command | runtime, newest measured |",
            "|---|---|---|---|---|---|"]
    # slide 24
    f24 = pd.read_csv(res / "fig24_coupling_time.csv")
    tau = f24[(f24.metric == "tau") & (f24.chain >= 0)]
    mh = tau[tau.method == "ucd-mh-lmi"].groupby("width").value.apply(lambda v: float((v == 1).mean()))
    gb = tau[tau.method == "ucd-gibbs-uniform"].groupby("width").value.mean()
    sw = f24[(f24.metric == "sweeps") & (f24.method == "ucd-mh-lmi") & (f24.depth == 2)].groupby("width").value.mean()
    slope = np.polyfit(np.log(sw.index.to_numpy(float)), np.log(sw.to_numpy()), 1)[0]
    wide = mh[mh.index >= 50]
    ok24 = bool((wide >= 0.99).all() and gb.iloc[-1] >= 100 * gb.iloc[0])
    rows.append(
        f"| slide 24: UCD-MH-LMI's chains meet at once; the Gibbs coupling's time grows fast with width "
        f"| **{'yes' if ok24 else 'no'}** (rule: P(tau = 1) >= 0.99 at every width >= 50, and UCD-Gibbs's tau 100x "
        f"from the smallest width to the largest) | L = 2 and 3 pooled, P(tau = 1): {mh.iloc[0]:.2f} at d = {mh.index[0]}, "
        f"{mh.iloc[1]:.2f} at {mh.index[1]}, >= {wide.min():.2f} from 50 to {wide.index.max()}; UCD-Gibbs mean tau "
        f"{gb.iloc[0]:.1f} at d = {gb.index[0]}, {gb.max():.0f} (its cap) from d = {gb[gb >= gb.max() * 0.99].index.min()}; "
        f"local-search sweeps T ~ d^{slope:.2f} (L = 2) | `results/fig24_coupling_time.png` | `make reproduce-fig24` "
        f"| {_runtime('reproduce-fig24', None, root)} |")
    # slide 25, converged profile
    p25 = res / "converged" / "fig25_end_to_end.csv"
    n = fig25_numbers(p25)
    for ds in ("mnist", "fashion-mnist"):
        word, cmp_ = slide25_verdict(n, ds)
        others = ", ".join(f"{m} {_interval(n, ds, m)} ({v})" for m, v in cmp_)
        rows.append(
            f"| slide 25 ({ds}): UCD-MH-LMI trains a DBM end to end where CD, PCD and UCD-Gibbs fail "
            f"| **{word}** (rule: yes iff its LL interval lies above all three) | UCD-MH-LMI (released pi0) {_interval(n, ds, 'ucd-mh-lmi')} "
            f"nats, independent pixels {n['base'][ds]:.0f}; {others}; classifier-FD, "
            f"{int(n['fd'].loc[(ds, 'ucd-mh-lmi', 'mode')].n):,} samples: its local modes "
            f"{_fd(n, ds, 'ucd-mh-lmi', 'mode')}, its 1000-sweep Gibbs samples {_fd(n, ds, 'ucd-mh-lmi', 'gibbs-1000-noise')}"
            + (f"; {ladder_trend(root, 'll')}" if ds == "mnist" else "") +
            f" | `results/converged/fig25_end_to_end.png` | `make zoo PROFILE=converged && make reproduce-fig25 "
            f"PROFILE=converged` | zoo {_runtime('zoo', 'converged', root)}; fig25 {_runtime('reproduce-fig25', 'converged', root)} |")
    # pi0's block order
    ef = "ucd-mh-lmi-even-first"
    rows.append(
        f"| (beyond the paper) what pi0's block order does (released: drawn per chain; the suite's old "
        f"pi0: even block first) | **it changes the trained DBM** (the intervals do not overlap) | MNIST LL "
        f"{_interval(n, 'mnist', 'ucd-mh-lmi')} released vs {_interval(n, 'mnist', ef)} even first; local modes' "
        f"classifier-FD {_fd(n, 'mnist', 'ucd-mh-lmi', 'mode')} vs {_fd(n, 'mnist', ef, 'mode')}; Fashion-MNIST "
        f"{_interval(n, 'fashion-mnist', 'ucd-mh-lmi')} vs {_interval(n, 'fashion-mnist', ef)} "
        f"| `results/converged/fig25_end_to_end.png` | as slide 25 | as slide 25 |")
    # slide 26
    t26 = fig26_numbers(res / "converged" / "fig26_fid.csv")
    n_fid = int((t26.index.get_level_values("metric") == "fid").sum())
    gans = {g: _fd26(t26, "mnist", g, "generator output") for g in ("wgan-gp", "wgan")}
    dbm = "dbm-ucd-mh-lmi"
    best = min(t26.loc[("mnist", "classifier_fd", dbm)]["mean"])
    worst_gan = max(t26.loc[("mnist", "classifier_fd", g, "generator output")]["mean"] for g in gans)
    n26 = int(t26.loc[("mnist", "classifier_fd", dbm, "mode")].n)
    rows.append(
        f"| slide 26: UCD-MH-LMI's samples are about as good as WGAN's (FID ~10 on MNIST) "
        f"| **FID: not computable here** ({n_fid} FID values; no Inception weights). **Classifier-FD: "
        f"{'no' if best > worst_gan else 'yes'}** (rule: yes iff its best sample kind is at or below the worse GAN) "
        f"| MNIST, {n26:,} samples, the same classifier: UCD-MH-LMI local modes {_fd26(t26, 'mnist', dbm, 'mode')}, "
        f"one sweep after them {_fd26(t26, 'mnist', dbm, 'mode+1')}, 1000-sweep Gibbs {_fd26(t26, 'mnist', dbm, 'gibbs-1000-noise')}; "
        f"WGAN-GP {gans['wgan-gp']}, WGAN {gans['wgan']} (at their plateau); even-first modes "
        f"{_fd26(t26, 'mnist', 'dbm-ucd-mh-lmi-even-first', 'mode')}; {ladder_trend(root, 'fd')} "
        f"| `results/converged/fig26_fid.png` | `make zoo "
        f"PROFILE=converged && make gans PROFILE=converged && make fid PROFILE=converged` | fid "
        f"{_runtime('fid', 'converged', root)} |")
    # slide 27
    f27 = pd.read_csv(res / "fig27_inpainting.csv")
    acc = f27[f27.metric == "accuracy"]
    parts, words = [], []
    for ds in dict.fromkeys(acc.dataset):
        a = acc[acc.dataset == ds]
        ls = a[(a.completion == "local-search") & (a.method == "ucd-mh-lmi")].value.mean()
        mk = a[a.completion == "masked"].groupby("mask").value.mean().mean()
        words.append(f"{ds} {'yes' if ls > mk else 'no'}")
        parts.append(f"{ds} {ls:.2f} vs masked inputs {mk:.2f}")
    n27 = int(f27.n_test.max())
    rows.append(
        f"| slide 27: the clamped local search inpaints plausibly | **{', '.join(words)}** (rule: yes iff the "
        f"classifier recognises the completions more often than the masked inputs) | accuracy on UCD-MH-LMI's completions, mean "
        f"over {acc[acc.completion == 'local-search']['mask'].nunique()} masks, {n27:,} test images: {'; '.join(parts)} (budget profile) "
        f"| `results/fig27_inpainting.png` | `make reproduce-fig27` | {_runtime('reproduce-fig27', 'budget', root)} |")
    # bias study
    b = pd.read_csv(res / "bias_study.csv")
    b = b[b.final] if "final" in b else b
    cells = b[b.estimator == "ucd-mh-lmi"].drop_duplicates(["shape", "w_scale", "weights"])
    kind = cells.verdict.str.split(r"[:(;]").str[0].str.strip().value_counts()
    rows.append(
        f"| (beyond the paper) UCD-MH-LMI is unbiased | **" + ", ".join(f"{v} {k}" for k, v in kind.items())
        + f"** of {len(cells)} enumerable models (the z-test and the exact cap diagnostics, per cell) | per-chain MSE "
        f"{fmt(b[(b.estimator == 'ucd-mh-lmi') & (b.metric == 'mse_per_chain')].value.median())} abs(g*)^2 against "
        f"CD-1's {fmt(b[(b.estimator == 'cd-1') & (b.metric == 'mse_per_chain')].value.median())} (medians); "
        f"[details](docs/estimators.md) | `results/bias_study.png` | `make reproduce-bias` "
        f"| {_runtime('reproduce-bias', None, root)} |")
    # EBM anatomy
    toy = pd.read_csv(res / "ebm_anatomy_toy.csv")
    s = toy[toy.kind == "summary"].pivot_table(index=["target", "outcome"], columns="metric", values="value")
    nc, cv = s.xs("non-convergent", level="outcome"), s.xs("convergent", level="outcome")
    holds = (nc.short_run_kde_tv < 0.35) & (nc.long_run_kde_tv > 0.5) & (cv.density_tv < 0.35)    # per target
    ok = bool(holds.all())
    per = "" if ok or not holds.any() else " (" + "; ".join(f"{t}: {'yes' if h else 'no'}" for t, h in holds.items()) + ")"
    rows.append(
        f"| EBM anatomy, toy (the authors' released targets and toy net since issue 37, for fidelity): short-run "
        f"learning from noise gives good short-run but bad long-run samples; convergent learning a valid density | "
        f"**{'yes' if ok else 'no'}**{per} (rule, per target: non-convergent: short-run KDE TV < 0.35, long-run > "
        f"0.5; convergent: density TV < 0.35) | non-convergent short-run / long-run TV "
        + ", ".join(f"{t} {r.short_run_kde_tv:.2f} / {r.long_run_kde_tv:.2f}" for t, r in nc.iterrows())
        + "; convergent density TV " + ", ".join(f"{t} {r.density_tv:.2f}" for t, r in cv.iterrows())
        + f" | `results/ebm_anatomy_toy.png` | `make reproduce-anatomy` | {_runtime('reproduce-anatomy', None, root)} |")
    em = pd.read_csv(res / "ebm_anatomy_mnist.csv")
    e = em[(em.kind == "summary") & (em.metric == "classifier_fd")].set_index(["model", "samples"]).value
    pv = (f"; the same with the vanilla net (the budget's net before issue 37): long-run "
          f"{e[('persistent-vanilla', 'long-run')]:.1f}, bank {e[('persistent-vanilla', 'persistent bank')]:.1f}"
          if ("persistent-vanilla", "long-run") in e.index else "")
    fd = (f"; long-run chains from training images (the released evaluation's start): short-run EBM "
          f"{e[('short-run', 'long-run from data')]:.0f}, persistent EBM {e[('persistent', 'long-run from data')]:.1f}"
          if ("persistent", "long-run from data") in e.index else "")
    rows.append(
        f"| EBM anatomy, MNIST: the same two outcomes on images (persistent model: the authors' released non-local "
        f"net since issue 37, for fidelity) | see [docs/ebm_anatomy.md](docs/ebm_anatomy.md) | "
        f"classifier-FD ({int(em.n_eval.max()):,} samples; test images {e[('data', 'held-out test images')]:.1f}): "
        f"short-run EBM's short-run samples {e[('short-run', 'short-run')]:.1f}, its long-run samples "
        f"{e[('short-run', 'long-run')]:.0f}; persistent EBM's long-run samples {e[('persistent', 'long-run')]:.1f}, "
        f"its bank {e[('persistent', 'persistent bank')]:.1f}{pv}{fd} | `results/ebm_anatomy_mnist.png` | "
        f"`make reproduce-anatomy` | as above |")
    note = (f"\nSources: `results/fig24_coupling_time.csv` ({short_sha(res / 'fig24_coupling_time.json')}), "
            f"`results/converged/fig25_end_to_end.csv` ({short_sha(res / 'converged/fig25_end_to_end.json')}; spliced, "
            f"see below), `results/converged/fig26_fid.csv` ({short_sha(res / 'converged/fig26_fid.json')}), "
            f"`results/fig27_inpainting.csv` ({short_sha(res / 'fig27_inpainting.json')}), `results/bias_study.csv` "
            f"({short_sha(res / 'bias_study.json')}), `results/ebm_anatomy_toy.csv` ({short_sha(res / 'ebm_anatomy_toy.json')}), "
            f"`results/ebm_anatomy_mnist.csv` ({short_sha(res / 'ebm_anatomy_mnist.json')}). Intervals: the AIS bracket's seed means; "
            f"+- : standard error over seeds.\n")
    return "\n".join(rows) + "\n" + note


def syncs_table(root: Path = ROOT) -> str:
    """Issue 36: host synchronisations per update on the device path (the search of before and
    the chunked search), with the device path's CPU time, from results/bench_syncs.csv."""
    path = root / "results" / "bench_syncs.csv"
    if not path.exists():
        return "Not measured yet: `make bench-syncs`.\n"
    d = pd.read_csv(path)
    w = d.pivot_table(index=["device", "shape", "batch", "step"], columns="metric", values="value").reset_index()
    rows = ["| device | shape | batch | search | host syncs per update (mean of 3; most) | sweeps per search (pos, neg) "
            "| update median on this device |", "|---|---|---|---|---|---|---|"]
    for r in w.sort_values(["device", "shape", "batch", "step"], ascending=[True, True, True, False]).itertuples():
        t = f"{r.median_s:.3g} s" if r.median_s >= 1 else f"{r.median_s * 1e3:.3g} ms"
        rows.append(f"| {r.device} | {r.shape} | {int(r.batch)} | {r.step.replace('update_syncs_', '')} "
                    f"| {r.host_syncs:.0f} ({r.host_syncs_max:.0f}) | {r.pos_sweeps_mean:.1f}, {r.neg_sweeps_mean:.1f} "
                    f"| {t} |")
    machine = d.machine.dropna().iloc[0] if d.machine.notna().any() else "?"
    return "\n".join(rows) + (f"\n\n`results/bench_syncs.csv` ({machine}, {str(d.datetime.iloc[0])[:10]}). The counts "
                               "are what a GPU would wait for (`dbm.syncs.HostSyncs`); 'incremental' is the search of before "
                               "with its device (torch) scans, as a GPU ran it; the times are each path's cost on "
                               "this CPU, not a GPU's.\n")


def _sync_range(res: Path) -> str:
    """': 28-30 host syncs per update against 216-445 before' from results/bench_syncs.csv ('' without it)."""
    path = res / "bench_syncs.csv"
    if not path.exists():
        return ""
    d = pd.read_csv(path)
    d = d[d.metric == "host_syncs"]
    new, old = (d[d.step == f"update_syncs_{k}"].value for k in ("chunked", "incremental"))
    return f": {new.min():.0f}-{new.max():.0f} per update against {old.min():.0f}-{old.max():.0f} before"


def speed_table(root: Path = ROOT) -> str:
    """One training update and one Gibbs sweep of 784-784-784 on this CPU (make bench) and on the
    lent H100 (results/bench_cuda.csv), per batch: medians, the GPU's ratio, the CPU's fraction of
    its measured matrix-product peak."""
    res = root / "results"
    cpu, gpu = pd.read_csv(res / "bench.csv"), pd.read_csv(res / "bench_cuda.csv")

    def pick(d, step, batch, metric="median_s"):
        x = d[(d.step == step) & (d.batch == batch) & (d["shape"] == "binary-784x3") & (d.metric == metric)].value
        return float(x.iloc[0]) if len(x) else float("nan")
    rows = ["| step (784-784-784, binary) | batch | CPU median | CPU share of its matmul peak | H100 median | H100 / CPU speed |",
            "|---|---|---|---|---|---|"]
    for step, label in (("train_update_ucd-mh-lmi_cold", "UCD-MH-LMI update"),
                        ("train_update_ucd-mh-lmi_warm", "UCD-MH-LMI update, warm start"),
                        ("gibbs_sweep", "one block-Gibbs sweep")):
        for batch in (100, 1000):
            c, g = pick(cpu, step, batch), pick(gpu, step, batch)
            frac = pick(cpu, step, batch, "fraction_of_peak")
            rows.append(f"| {label} | {batch} | {c * 1e3:.3g} ms | {frac:.0%} | "
                        f"{'-' if np.isnan(g) else f'{g * 1e3:.3g} ms'} | {'-' if np.isnan(g) else f'{c / g:.1f}x'} |")
    cpu_name = cpu.machine.dropna().iloc[0]
    gpu_side = json.loads((res / "bench_cuda.json").read_text())
    note = (f"\n`results/bench.csv` ({cpu_name}, 2 threads, {str(cpu.datetime.dropna().iloc[0])[:10]}) and "
            f"`results/bench_cuda.csv` (a lent NVIDIA H100, {gpu_side.get('datetime', '?')[:10]}; its sidecar does not "
            f"name the GPU: it predates the field). The H100 times are of the search of before, latency-bound there (a host "
            f"sync per local-search sweep); the device path now syncs a bounded number of times per update (issue 36: "
            f"[the counts](docs/performance.md#the-device-path-with-bounded-host-synchronisations-issue-36){_sync_range(res)}), "
            f"and its GPU speed is not measured.\n")
    return "\n".join(rows) + "\n" + note


def _unspliced_cells(sidecar: Path, rec: dict) -> list[str] | None:
    """The cells (data set/method or data set/model, as the parts' records name them) of a spliced table that no part
    replaced: what still comes from the table's own run. None where the table is not at hand."""
    csv = sidecar.with_suffix(".csv")
    if not csv.exists() or csv.name.endswith("_trace.csv"):
        return None
    from reproduce.splice import CELL_KEYS, _cells, cell_names
    df = pd.read_csv(csv)
    key = next((k for fig, k in CELL_KEYS.items() if csv.stem.startswith(fig + "_")), None)
    if key is None or not set(key) <= set(df):
        return None
    done = {c for part in rec["spliced"] for c in part.get("cells", [])}
    return [c for c in cell_names(_cells(df[df[key[1]].notna()], key)) if c not in done]


def provenance_table(root: Path = ROOT) -> str:
    """The committed results that did not come from one clean commit: dirty trees and splices."""
    from reproduce import provenance
    rows = ["| result | commit | what |", "|---|---|---|"]
    for p in provenance.sidecars(root):
        rec = json.loads(p.read_text())
        f = provenance.facts(rec)
        what = []
        if f.get("clean_tree") is False:
            what.append("computed from a tree with uncommitted changes")
        if "spliced" in rec:
            parts = [s["part"] for s in rec["spliced"]]
            what.append("rows spliced in from " + ", ".join(f"`{q}`" for q in parts))
            left = _unspliced_cells(p, rec) if f.get("clean_tree") is False else None
            if left:
                what.append("the rows of the tree with uncommitted changes left: " + ", ".join(left))
        if "relabelled" in rec:
            what.append(f"rows relabelled by `{rec['relabelled'].get('by', '?')}` (even-first ablation names)")
        if what:
            rows.append(f"| `{p.relative_to(root)}` | {provenance.commit_of(str(f.get('git_sha', '?')))[:7]} | "
                        + "; ".join(what) + " |")
    return "\n".join(rows) + "\n"


def runtime_table(root: Path = ROOT) -> str:
    rs = runtimes.read(root / "results" / "runtimes.csv")
    rows = ["| target | profile | mode | wall | CPU | machine busy at start | CPU model | commit | date | source |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rs:
        rows.append(f"| `{r['target']}` | {r['profile']} | {r['mode']} | {runtimes._minutes(float(r['wall_s']))} | "
                    f"{runtimes._minutes(float(r['cpu_s']))} | {r['shared']} | {r['cpus']} x {r['cpu_model']} | "
                    f"{r['commit'][:7]}{'' if r['clean_tree'] == 'True' else ' (dirty)'} | {r['date_utc'][:10]} | "
                    f"{r['source']} |")
    return "\n".join(rows) + "\n"


def slides25_26_table(root: Path = ROOT, ds: str = "mnist") -> str:
    """Per method of the converged profile: the likelihood interval, what its samples look like
    and their classifier-Frechet distance, with both sample counts (fig25's and fig26's)."""
    res = root / "results" / "converged"
    n = fig25_numbers(res / "fig25_end_to_end.csv")
    t26 = fig26_numbers(res / "fig26_fid.csv")
    d = pd.read_csv(res / "fig25_end_to_end.csv")
    seeds = d[d.kind == "final"].groupby(["dataset", "method"]).seed.nunique()
    k25 = n["fd"].xs(ds, level="dataset")
    n25 = int(k25.n.max()) if len(k25) else 0
    n26 = int(t26.xs((ds, "classifier_fd"), level=("dataset", "metric")).n.max())
    base = n["base"][ds]
    rows = [f"| method | seeds | LL interval (nats) | vs independent pixels ({base:.0f}) | Gibbs 10^4 sweeps from noise: ink | "
            f"local modes: diversity | classifier-FD, {n25:,} samples (fig25): modes / Gibbs 10^3 | "
            f"classifier-FD, {n26:,} samples (fig26): modes / Gibbs 10^3 |", "|---|---|---|---|---|---|---|---|"]
    for m in [m for m in n["iv"].loc[ds].index]:
        r = n["iv"].loc[(ds, m)]
        ink = n["samples"].get((ds, m, "gibbs-10000-noise", "ink"), float("nan"))
        div = n["samples"].get((ds, m, "mode", "diversity"), float("nan"))
        above = "above" if r.test_ll_low > base else "below" if r.test_ll_high < base else "overlaps"
        rows.append(f"| `{m}` | {seeds.get((ds, m), 0)} | [{r.test_ll_low:.1f}, {r.test_ll_high:.1f}] | {above} | "
                    f"{_f(ink, 3)} | {_f(div, 3)} | {_fd(n, ds, m, 'mode')} / {_fd(n, ds, m, 'gibbs-1000-noise')} | "
                    f"{_fd26(t26, ds, 'dbm-' + m, 'mode')} / {_fd26(t26, ds, 'dbm-' + m, 'gibbs-1000-noise')} |")
    floor25 = n["fd"].loc[(ds, "data", "training images")]["mean"] if (ds, "data", "training images") in n["fd"].index else float("nan")
    floor26 = t26.loc[(ds, "classifier_fd", "data (train split)", "training images")]["mean"] \
        if (ds, "classifier_fd", "data (train split)", "training images") in t26.index else float("nan")
    gans = "; ".join(f"{g} {_fd26(t26, ds, g, 'generator output')}" for g in ("wgan-gp", "wgan"))
    note = (f"\nTraining images' own distance (the floor): {floor25:.1f} at {n25:,} samples, {floor26:.1f} at {n26:,}: "
            f"compare classifier-FD within a column only. GANs at {n26:,} samples: {gans}. Sources: "
            f"`results/converged/fig25_end_to_end.csv`, `results/converged/fig26_fid.csv` (both spliced: see the "
            f"provenance table). +- : standard error over seeds; '-': not in that file"
            + (" (the released-pi0 Fashion-MNIST rows of fig26 are in `results/converged/faithful-fig26/`, "
               "scored by a retrained classifier, so not in this column)" if ds == "fashion-mnist" else "") + ".\n")
    return "\n".join(rows) + "\n" + note


def bench_steps_table(root: Path = ROOT) -> str:
    """Every step of make bench on this CPU: median [min, max], GFLOP/s, fraction of the matrix-
    product peak measured in the same run."""
    d = pd.read_csv(root / "results" / "bench.csv")
    w = d.pivot_table(index=["step", "device", "shape", "batch", "flops_kind"], columns="metric", values="value").reset_index()
    rows = ["| step | device | shape | batch | median s [min, max] | GFLOP/s | fraction of peak | FLOPs counted |",
            "|---|---|---|---|---|---|---|---|"]
    for r in w.sort_values(["step", "shape", "batch"]).itertuples():
        rows.append(f"| {r.step} | {r.device} | {r.shape} | {int(r.batch)} | {r.median_s:.3g} [{r.min_s:.3g}, {r.max_s:.3g}] | "
                    f"{r.gflops:.0f} | {r.fraction_of_peak:.2f} | {r.flops_kind} |")
    side = json.loads((root / "results" / "bench.json").read_text())
    note = (f"\nMeasured fp32 matrix-product peak in this run: {w.peak_gflops.max():.0f} GFLOP/s; "
            f"`results/bench.csv`, {d.machine.dropna().iloc[0]}, {str(side.get('datetime', '?'))[:10]}, commit "
            f"{side['commit_info']['id'][:7]}{' (dirty)' if side['commit_info'].get('dirty') else ''}.\n")
    return "\n".join(rows) + "\n" + note


def fig26_budget_table(root: Path = ROOT) -> str:
    """The budget profile's classifier-FD per model and sample kind, a column per data set."""
    path = root / "results" / "fig26_fid.csv"
    t = fig26_numbers(path)
    cfd = t.xs("classifier_fd", level="metric")
    datasets = sorted(dict.fromkeys(cfd.index.get_level_values("dataset")), key=lambda d: (d != "mnist", d))
    rows = ["| model | samples | " + " | ".join(datasets) + " |", "|---|---|" + "---|" * len(datasets)]
    for model, kind in dict.fromkeys((m, k) for _, m, k in cfd.index):
        vals = [f"{cfd.loc[(ds, model, kind)]['mean']:.1f}" if (ds, model, kind) in cfd.index else "-" for ds in datasets]
        rows.append(f"| {model} | {kind} | " + " | ".join(vals) + " |")
    n = int(cfd.n.max())
    side = json.loads(path.with_suffix(".json").read_text())
    raw = pd.read_csv(path)
    orders = raw[raw.family == "dbm"].groupby("dataset").sample_order.agg(lambda x: ", ".join(sorted(set(x.dropna()))))
    note = f"\n\n{n:,} samples per model; `results/fig26_fid.csv` (run of {short_sha(path.with_suffix('.json'))}"
    for part in side.get("spliced", []):
        note += (f"; {', '.join(part.get('whole_datasets') or [])} whole from `{part['part']}` "
                 f"(commit {str(part.get('git_sha'))[:7]})")
    note += "). Block order of the mode kinds' search: " + "; ".join(f"{ds} {o}" for ds, o in orders.items()) + ".\n"
    return "\n".join(rows) + note
