"""The README's and docs' result tables, written from the committed CSVs and sidecars (issue 34).

Each table sits between two markers in a Markdown file:

    <!-- table:NAME (written by `make tables` from results/...; edit reproduce/tables.py, not the table) -->
    | ... |
    <!-- /table:NAME -->

``python -m reproduce.tables`` rewrites every marked table from the results; ``--check`` rewrites
nothing and exits 1 naming the tables that drifted from their CSVs (tests/test_tables.py runs it).
A table names its sample counts where two are in use, and its source file.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import pandas as pd

from reproduce import verdicts
from reproduce.verdicts import fmt as _fmt, short_sha

ROOT = Path(__file__).resolve().parents[1]
FILES = ("README.md", "docs/estimators.md", "docs/dbm_paper.md", "docs/performance.md", "docs/ebm_anatomy.md")
_BLOCK = re.compile(r"(<!-- table:(?P<name>[a-z0-9_-]+)[^>]*-->\n)(?P<body>.*?)(<!-- /table:(?P=name) -->)", re.S)


# --------------------------------------------------------------------------------------------
# bias study (results/bias_study.csv)

BIAS_LABELS = {
    "ucd-mh-lmi": "`ucd-mh-lmi` (the paper, released pi0)",
    "ucd-mh-lmi-even-first": "`ucd-mh-lmi-even-first` (the suite's pi0 before issue 30)",
    "ucd-mh-lmi-avg": "`ucd-mh-lmi-avg` (H_{1:10})",
    "ucd-mh-lmi-marg": "`ucd-mh-lmi-marg` (odd layers summed out)",
    "ucd-mh-lmi-mixed": "**`ucd-mh-lmi-mixed`** (a coupled Gibbs sweep before each MH step)",
    "ucd-mh-lmi-mixed-marg": "**`ucd-mh-lmi-mixed-marg`** (the same, odd layers summed out)",
    "ucd-gibbs": "`ucd-gibbs`",
    "ucd-gibbs-avg": "`ucd-gibbs-avg` (H_{2:10})",
    "official-single-chain": "`official-single-chain` (released loop; biased)",
    "cd-1": "`cd-1` (biased)",
    "cd-10": "`cd-10` (biased)",
    "pcd-1": "`pcd-1` (biased)",
}
VERDICT_ORDER = ("unbiased within noise", "biased by its cap", "heavy-tailed", "flagged, not explained",
                 "flagged, no diagnostics", "capped", "biased")


def bias_table(root: Path = ROOT) -> str:
    """Per estimator: the cells by verdict (a rerun cell counted at its largest chain count), and
    medians over the models of P(tau > 1), per-chain MSE, cost and MSE x cost."""
    df = pd.read_csv(root / "results/bias_study.csv")
    df = df[df.final] if "final" in df else df
    cells = df.drop_duplicates(["shape", "w_scale", "weights", "estimator"])
    kind = cells.verdict.str.split(r"[:(;]").str[0].str.strip()
    w = df.pivot_table(index=["shape", "w_scale", "weights", "estimator"], columns="metric", values="value")
    med = w.groupby(level="estimator").median()
    n_models = cells.groupby("estimator").size()
    chains = cells.groupby("estimator").chains.agg(["min", "max"])
    rows = ["| estimator | cells by verdict | P(tau > 1), neg. phase | per-chain MSE / abs(g*)^2 | sweeps per chain "
            "| MSE x cost |", "|---|---|---|---|---|---|"]
    for est in [e for e in BIAS_LABELS if e in med.index]:
        counts = kind[cells.estimator == est].value_counts()
        verdicts = ", ".join(f"{counts[v]} {v}" for v in VERDICT_ORDER if v in counts)
        m = med.loc[est]
        p = "-" if est.startswith(("cd", "pcd")) else _fmt(m.p_correction_neg)
        rows.append(f"| {BIAS_LABELS[est]} | {verdicts} (of {n_models[est]}) | {p} | {_fmt(m.mse_per_chain)} | "
                    f"{_fmt(m.cost_sweeps)} | {_fmt(m.mse_per_chain * m.cost_sweeps)} |")
    lo, hi = int(chains["min"].min()), int(chains["max"].max())
    note = (f"\nMedians over the {int(n_models.max())} models; {lo:,} chains a cell"
            + (f" ({hi:,} in the cells rerun with more)" if hi > lo else "")
            + f"; `results/bias_study.csv` (commit {short_sha(root / 'results/bias_study.json')}).\n")
    return "\n".join(rows) + "\n" + note


def bias_cells_table(root: Path = ROOT, estimators=("ucd-mh-lmi", "ucd-mh-lmi-even-first")) -> str:
    """The cells of the lag-1 MH estimators that were flagged, biased by their cap or rerun: the
    exact diagnostics beside the z-test, per chain count."""
    df = pd.read_csv(root / "results/bias_study.csv")
    df = df[df.estimator.isin(estimators)]
    w = df.pivot_table(index=["estimator", "shape", "w_scale", "weights", "chains"], columns="metric",
                       values="value").reset_index()
    v = df.drop_duplicates(["estimator", "shape", "w_scale", "weights", "chains"]).set_index(
        ["estimator", "shape", "w_scale", "weights", "chains"]).verdict
    w["verdict"] = [v[tuple(r)] for r in w[["estimator", "shape", "w_scale", "weights", "chains"]].itertuples(index=False)]
    runs = w.groupby(["estimator", "shape", "w_scale", "weights"]).chains.transform("size")
    w = w[~w.verdict.str.startswith("unbiased") | (runs > 1)]
    rows = ["| estimator | model | chains | max abs z | median a(X0), neg. | corrections cut (count, at least) | "
            "correction term cut (stuck-Y) | relative bias from the cap (stuck-Y) | chains for a typical correction "
            "| verdict |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in w.sort_values(["estimator", "shape", "w_scale", "weights", "chains"]).itertuples():
        cut_n = max(r.p_cap_given_correction_lower_pos, r.p_cap_given_correction_lower_neg)
        cut_t = max(r.term_cut_share_pos, r.term_cut_share_neg)
        need = max(r.chains_for_typical_pos, r.chains_for_typical_neg)
        rows.append(f"| `{r.estimator}` | {r.shape}, scale {r.w_scale:g}, {r.weights} | {r.chains:,} | "
                    f"{r.max_abs_z:.1f} | {_fmt(r.a_median_neg)} | {cut_n:.1%} | {cut_t:.1%} | "
                    f"{_fmt(r.cap_bias_model)} | {_fmt(need)} | {r.verdict.split(':')[0].split(' (')[0]} |")
    return "\n".join(rows) + "\n"


def cap_model_table(root: Path = ROOT) -> str:
    """The stuck-Y cap model against the exact pair chain (reproduce/cap_model_check.py): per model
    and cap, the share of the correction term past the cap and the capped estimator's relative bias,
    exact and modelled, and whether the proven lower bound on the unmet steps held."""
    df = pd.read_csv(root / "results/cap_model_check.csv")
    rows = ["| model (2^8 states) | P(correction) | cap | term share past the cap, exact / model | "
            "relative bias, exact / model | steps past the cap: exact, lower bound |", "|---|---|---|---|---|---|"]
    for r in df.itertuples():
        rows.append(f"| {r.shape}, scale {r.w_scale:g} | {_fmt(r.p_correction)} | {r.cap} | "
                    f"{_fmt(r.share_exact)} / {_fmt(r.share_model)} | {_fmt(r.bias_exact)} / {_fmt(r.bias_model)} | "
                    f"{_fmt(r.steps_past_cap_exact)}, {_fmt(r.steps_past_cap_lower)} |")
    share, bias = df.share_exact / df.share_model, df.bias_exact / df.bias_model
    held = int((df.steps_past_cap_lower <= df.steps_past_cap_exact * (1 + 1e-9)).sum())
    note = (f"\nExact / model: term share {share.min():.2f}-{share.max():.2f}, relative bias "
            f"{bias.min():.2f}-{bias.max():.2f}; the lower bound held in {held} of {len(df)} rows; "
            f"`results/cap_model_check.csv` (commit {short_sha(root / 'results/cap_model_check.json')}).\n")
    return "\n".join(rows) + "\n" + note


# --------------------------------------------------------------------------------------------
# EBM anatomy (results/ebm_anatomy_{toy,mnist}.csv and their traces)

def _trace_windows(trace: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per run (``keys``): d_st over the last third of the updates (mean, sd, share > 0) and r_t /
    grad_norm over the first tenth and the last third (means)."""
    out = []
    for k, d in trace.groupby(keys):
        n = d.step.max()
        late, early = d[d.step > 2 * n / 3], d[d.step <= max(1, n / 10)]
        dst = late[late.metric == "d_st"].value
        rec = dict(zip(keys, k if isinstance(k, tuple) else (k,)), updates=int(n), dst_mean=dst.mean(),
                   dst_sd=dst.std(), dst_pos=(dst > 0).mean(), late_from=int(2 * n / 3) + 1)
        for m in ("r_t", "grad_norm"):
            rec[f"{m}_early"] = early[early.metric == m].value.mean()
            rec[f"{m}_late"] = late[late.metric == m].value.mean()
        out.append(rec)
    return pd.DataFrame(out).set_index(keys)


def ebm_toy_table(root: Path = ROOT) -> str:
    """Per target and outcome: the density and sample errors, and the learning diagnostics."""
    df = pd.read_csv(root / "results/ebm_anatomy_toy.csv")
    trace = pd.read_csv(root / "results/ebm_anatomy_toy_trace.csv")
    s = df[df.kind == "summary"].pivot_table(index=["target", "outcome"], columns="metric", values="value")
    w = _trace_windows(trace, ["target", "outcome"])
    rows = ["| target | outcome | density TV | KL(truth \\|\\| model) | short-run KDE TV | long-run KDE TV | bank KDE TV "
            "| d_st, last third (mean +- sd, share > 0) | r_t (paper's units), first tenth -> last third "
            "| mean abs(grad U), last third |", "|---|---|---|---|---|---|---|---|---|---|"]
    for (t, o), r in s.iterrows():
        x = w.loc[(t, o)]
        bank = "" if pd.isna(r.get("bank_kde_tv")) else f"{r.bank_kde_tv:.2f}"
        rows.append(f"| {t} | {o} | {r.density_tv:.2f} | {_fmt(r.density_kl)} | {r.short_run_kde_tv:.2f} | "
                    f"{r.long_run_kde_tv:.2f} | {bank} | {_fmt(x.dst_mean)} +- {_fmt(x.dst_sd)}, {x.dst_pos:.0%} | "
                    f"{_fmt(x.r_t_early)} -> {_fmt(x.r_t_late)} | {_fmt(x.grad_norm_late)} |")
    side = json.loads((root / "results/ebm_anatomy_toy.json").read_text())
    floors = side.get("kde_tv_of_true_samples", {})
    note = (f"\n{int(w.updates.max()):,} updates, seed 0, net `{side.get('net', 'toy')}`; the KDE of "
            f"{int(side['config']['n_eval']):,} true samples gives TV "
            + ", ".join(f"{_fmt(v)} ({k})" for k, v in floors.items())
            + f" (the floor). `results/ebm_anatomy_toy.csv` (commit {short_sha(root / 'results/ebm_anatomy_toy.json')}).\n")
    return "\n".join(rows) + "\n" + note


EBM_MNIST_SAMPLES = ("short-run", "persistent bank", "long-run", "long-run from data")


def ebm_mnist_table(root: Path = ROOT) -> str:
    """Per model and sample set: classifier-FD, saturated pixels and mean energy; per model the
    learning diagnostics."""
    df = pd.read_csv(root / "results/ebm_anatomy_mnist.csv")
    trace = pd.read_csv(root / "results/ebm_anatomy_mnist_trace.csv")
    s = df[df.kind == "summary"].pivot_table(index=["model", "samples"], columns="metric", values="value")
    nets = df.dropna(subset=["net"]).groupby("model").net.first()
    floor = s.loc[("data", "held-out test images"), "classifier_fd"]
    n_eval = int(df.n_eval.max())
    rows = [f"| model (net) | samples | classifier FD ({n_eval:,} samples; floor {floor:.1f}) | pixels beyond [-1, 1] "
            "| mean U |", "|---|---|---|---|---|"]
    order = {"short-run": 0, "persistent": 1, "persistent-vanilla": 2}
    models = sorted((m for m in s.index.get_level_values(0).unique() if m != "data"), key=lambda m: (order.get(m, 9), m))
    for m in models:
        for smp in EBM_MNIST_SAMPLES:
            if (m, smp) in s.index:
                r = s.loc[(m, smp)]
                rows.append(f"| {m} ({nets.get(m, '?')}) | {smp} | {r.classifier_fd:.1f} | {r.saturated_fraction:.2f} "
                            f"| {_fmt(r.mean_energy)} |")
    w = _trace_windows(trace[trace.samples == "training"], ["model"])
    rows += ["", "| model (net) | d_st, last third (mean +- sd, share > 0) | r_t (paper's units), first tenth -> last "
             "third | mean abs(grad U), first tenth -> last third |", "|---|---|---|---|"]
    for m in models:
        x = w.loc[m]
        rows.append(f"| {m} ({nets.get(m, '?')}) | {_fmt(x.dst_mean)} +- {_fmt(x.dst_sd)}, {x.dst_pos:.0%} | "
                    f"{_fmt(x.r_t_early)} -> {_fmt(x.r_t_late)} | {_fmt(x.grad_norm_early)} -> {_fmt(x.grad_norm_late)} |")
    note = (f"\n{int(w.updates.max()):,} updates; last third: updates {int(w.late_from.min()):,}-"
            f"{int(w.updates.max()):,}. `results/ebm_anatomy_mnist.csv` (commit "
            f"{short_sha(root / 'results/ebm_anatomy_mnist.json')}).\n")
    return "\n".join(rows) + "\n" + note


def ladder_table(root: Path = ROOT) -> str:
    """The scale ladder (issue 31): per rung and method, the training time, the likelihood and its
    margin over independent pixels, classifier-FD by kind and the samples' statistics; then the
    trend by the rules of ``reproduce.ladder.trend``."""
    from reproduce.ladder import summarise
    path = root / "results" / "ladder" / "ladder.csv"
    if not path.exists():
        return "Not run yet: `make zoo PROFILE=ladder && make reproduce-fig25 PROFILE=ladder`.\n"
    d = pd.read_csv(path)
    s = summarise(d)                                  # the traces' flatness is in the CSV's convergence rows
    fd_kinds = [c[:-len("_classifier_fd")] for c in s if c.endswith("_classifier_fd")]
    n_fd = int(d[d.kind == "fd"].n.max()) if (d.kind == "fd").any() else 0
    gibbs = [c[:-len("_nn_distance")] for c in s if c.startswith("gibbs-") and c.endswith("-noise_nn_distance")]
    longest = max(gibbs, key=lambda k: int(k.split("-")[1])) if gibbs else None
    rows = [f"| rung | shape, batch, updates | method | training, min (one core) | LL bound (forward AIS) | LL interval "
            f"| margin over independent pixels | classifier-FD ({n_fd:,} samples): {' / '.join(fd_kinds)} "
            f"| {longest or 'Gibbs'}: nearest-test distance | held-out traces flat |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    s = s.assign(first=(s.method != "ucd-mh-lmi")).sort_values(["rung", "first"])
    for _, r in s.iterrows():
        row = r.to_dict()
        fds = " / ".join(_fmt(row.get(f"{k}_classifier_fd", float("nan"))) for k in fd_kinds)
        nn = row.get(f"{longest}_nn_distance", float("nan")) if longest else float("nan")
        flat = row.get("all_traces_flat")
        seeds = int(row.get("seeds", 1) or 1)
        rows.append(f"| {row['rung']} | {row['shape']}, {int(row['batch_size'])}, {int(row['updates']):,} | `{row['method']}`"
                    + (f" ({seeds} seeds: means)" if seeds > 1 else "") + " "
                    f"| {_fmt(row['train_wall_s'] / 60)} | {row['test_ll_bound']:.1f} "
                    f"| [{row['test_ll_low']:.1f}, {row['test_ll_high']:.1f}] | {row['margin_over_pixels']:+.1f} | {fds} "
                    f"| {_fmt(nn)} | {'-' if flat is None or pd.isna(flat) else 'yes' if flat else 'no'} |")
    side = json.loads(path.with_suffix(".json").read_text())
    base = float(d[d.metric == "bernoulli_baseline_ll"].value.iloc[0])
    note = (f"\nIndependent pixels: {base:.1f} nats. MNIST, seed 0; the margin is the interval's low end minus "
            f"independent pixels. {trend_sentence(side.get('trend', {}))} `results/ladder/ladder.csv` (commit "
            f"{short_sha(path.with_suffix('.json'))}).\n")
    return "\n".join(rows) + "\n" + note


def trend_sentence(t: dict) -> str:
    """The ladder's trend in words (``reproduce.ladder.trend``'s rules)."""
    from reproduce.ladder import TREND_WORDS as words
    if not t:
        return "Trend: fewer than two rungs."
    out = (f"Trend, rung {t['first_rung']} to {t['last_rung']}: the margin {' -> '.join(f'{m:+.0f}' for m in t['margin'])} "
           f"nats, {words[t['ll_trend']]} (rule: a change beyond the two brackets' widths plus twice the seed spread, "
           f"{t['tolerance']:.1f} nats here; seed s.d. at rung {t['first_rung']}: {t['seed_sd_first']:.1f} over "
           f"{t['seeds'][0]} seed(s))")
    if "best_fd" in t:
        out += (f"; the best classifier-FD {' -> '.join(f'{x:.0f} ({k})' for x, k in zip(t['best_fd'], t['best_fd_kind']))}, "
                f"{words[t['fd_trend']]} (rule: a factor of 2).")
    return out + ("" if out.endswith(".") else ".")


def _registry() -> dict:
    return {"bias": bias_table, "bias-cells": bias_cells_table, "cap-model": cap_model_table,
            "verdicts": verdicts.verdict_table, "speed": verdicts.speed_table, "provenance": verdicts.provenance_table,
            "runtimes": verdicts.runtime_table, "bench-steps": verdicts.bench_steps_table,
            "fig26-budget": verdicts.fig26_budget_table, "slides-25-26-mnist": verdicts.slides25_26_table,
            "slides-25-26-fashion-mnist": lambda root=ROOT: verdicts.slides25_26_table(root, "fashion-mnist"),
            "ebm-toy": ebm_toy_table, "ebm-mnist": ebm_mnist_table, "ladder": ladder_table,
            "host-syncs": verdicts.syncs_table}


TABLES = _registry()


def render(text: str, root: Path = ROOT) -> tuple[str, list[str]]:
    """``text`` with every marked table rewritten, and the names of those that changed."""
    changed = []

    def sub(m):
        body = TABLES[m.group("name")](root)
        if body != m.group("body"):
            changed.append(m.group("name"))
        return m.group(1) + body + m.group(4)
    for m in _BLOCK.finditer(text):
        if m.group("name") not in TABLES:
            raise SystemExit(f"unknown table {m.group('name')!r}: known {', '.join(TABLES)}")
    return _BLOCK.sub(sub, text), changed


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if a table drifted from its CSV")
    args = p.parse_args(argv)
    drift = []
    from dbm.provenance import atomic_write_text
    for name in FILES:
        path = ROOT / name
        text = path.read_text()
        new, changed = render(text)
        drift += [f"{name}: {t}" for t in changed]
        if changed and not args.check:
            atomic_write_text(path, new)
    if drift:
        print(("drifted from the CSVs (run `make tables`): " if args.check else "rewrote: ") + "; ".join(drift))
    return 1 if drift and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
