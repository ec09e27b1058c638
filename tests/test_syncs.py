"""The device path of the local search (issue 36): the chunked search reaches the reference's fixed
points in its sweep counts (run on the CPU), and synchronises with the host a bounded number of
times whatever the sweeps; the counter itself counts what it should."""
from __future__ import annotations

import math

import pytest
import torch

import dbm
from dbm import samplers
from dbm.syncs import HostSyncs
from conftest import search_case


def _same(a, b) -> torch.Tensor:
    return torch.stack([(x == y).all(-1) for x, y in zip(a, b)]).all(0)


def test_the_counter_counts_host_reads_and_nothing_else():
    x, m = torch.randn(6), torch.tensor([True, False, True, False, True, True])
    with HostSyncs() as s:
        y = torch.where(m, x, 0.0) * 2 + x.sum()          # device-only work
        _ = y @ y, m.any(), x[1:], x[torch.tensor([0, 2])]
    assert s.count == 0
    with HostSyncs() as s:
        bool(m.any()), x.sum().item(), int(m.sum()), x[m], m.nonzero(), x.tolist(), torch.where(m)
    assert s.count == 7 and s.by_name["__getitem__"] == 1 and s.by_name["nonzero"] == 1


@pytest.mark.parametrize("sizes,clamp,order", [([120, 80, 60], None, "even-first"), ([120, 80, 60], None, "random"),
                                               ([120, 80, 60], True, "random"), ([120, 80, 60], "mask", "random"),
                                               ([120, 80, 60], None, "odd-first"), ([30, 20, 10, 8], None, "random"),
                                               ([30, 20, 10, 8], "mask", "even-first")])
def test_chunked_search_equals_the_reference_and_the_cpu_path(sizes, clamp, order, gen):
    """float64: the same modes, sweep counts, caps (also when the cap stops chains) as the dense
    reference, and the incremental CPU path's logits bit for bit (a near-tie between the paths'
    rounding has probability ~1e-5 over the test: test_samplers' float64 argument)."""
    _, xs, clamp, of, k = search_case(sizes, clamp, order, gen)
    a, ia = k.local_mode(xs, method="chunked", odd_first=of)
    b, ib = k.local_mode(xs, method="dense", odd_first=of)
    c, ic = k.local_mode(xs, method="incremental", odd_first=of)
    assert bool(_same(a, b).all()) and torch.equal(ia.sweeps, ib.sweeps) and torch.equal(ia.capped, ib.capped)
    assert bool(_same(a, c).all()) and torch.equal(ia.sweeps, ic.sweeps) and not ia.capped.any()
    assert int(ia.sweeps.max()) >= 4
    assert ia.logits.keys() == ic.logits.keys() and all(torch.equal(ia.logits[l], ic.logits[l]) for l in ic.logits)
    longest = int(ia.sweeps.max())
    for cap in (1, 3, longest - 1):                                     # the cap, inside and past a chunk
        a, ia = k.local_mode(xs, cap, method="chunked", odd_first=of)
        b, ib = k.local_mode(xs, cap, method="dense", odd_first=of)
        assert bool(_same(a, b).all()) and torch.equal(ia.sweeps, ib.sweeps) and torch.equal(ia.capped, ib.capped)
        assert bool(ia.capped.any())


def test_chunked_search_at_mnist_width_in_float32(gen):
    """float32, 784-784-784: the rule of test_samplers' float32 comparison (near-ties are rare but
    real: at least 99 % of the chains agree with the incremental path); every mode is a fixed point."""
    m, xs, _, of, k = search_case([784, 784, 784], None, "random", gen, dtype=torch.float32)
    a, ia = k.local_mode(xs, method="chunked", odd_first=of)
    c, ic = k.local_mode(xs, method="incremental", odd_first=of)
    assert float((_same(a, c) & (ia.sweeps == ic.sweeps)).float().mean()) >= 0.99
    for parity in (0, 1):
        again, _ = samplers.Gibbs(m, 0.0).block(a, parity, None, only=~of if parity == 0 else of)
        assert all(torch.equal(p, q) for p, q in zip(again, a))


def test_chunked_search_syncs_a_bounded_number_of_times(gen, monkeypatch):
    """One synchronisation for any search that ends (or is capped) within the first chunk, at
    most ceil(log2(cap / FIRST_CHUNK + 1)) for any cap; the incremental device path's count grows
    with the sweeps (so the test can fail)."""
    monkeypatch.setattr(samplers, "NUMPY_SCAN", False)                 # the incremental search's device path
    m = dbm.DBM([300, 300, 300], init="gaussian", sigma=1.0, generator=torch.Generator().manual_seed(6),
                dtype=torch.float64)
    xs = m.random_state(64, gen)
    of = samplers.draw_order("random", 64, gen)
    k = samplers._Kernel(m, None, xs[0])

    def count(method, cap):
        with HostSyncs() as s:
            _, info = k.local_mode(xs, cap, method=method, odd_first=of)
        return s.count, int(info.sweeps.max())
    assert count("chunked", 1000)[1] > 2 * samplers.FIRST_CHUNK      # this model's search is long
    for cap in range(1, samplers.FIRST_CHUNK + 1):
        assert count("chunked", cap)[0] == 1
    for cap in (16, 50, 200, 1000):
        assert count("chunked", cap)[0] <= math.ceil(math.log2(cap / samplers.FIRST_CHUNK + 1))
    assert count("incremental", 8)[0] > count("incremental", 2)[0] + 4


def _trainer(hidden, n, batch, data_gen=1):
    from dbm.train import TrainConfig, Trainer
    v = (torch.rand(n, 784 if hidden[0] > 100 else 64, generator=torch.Generator().manual_seed(data_gen)) < 0.3).float()
    return Trainer(TrainConfig(hidden=hidden, batch_size=batch, estimator="ucd-mh-lmi", updates=10, seed=3,
                               out_dir="unused", eval_every=0, log_every=1000, ckpt_every=10 ** 6), data=v)


def test_the_update_on_the_device_path_is_the_cpu_paths(monkeypatch):
    """Training updates of UCD-MH-LMI (released pi0) with the chunked search give the incremental
    search's parameters bit for bit (a small model, where corrections fire)."""
    params = {}
    for search in ("incremental", "chunked"):
        monkeypatch.setattr(samplers, "CPU_SEARCH", search)
        t = _trainer((48, 32), 600, 50)
        taus = [float(t.update()[1].summary().get("neg_tau_mean", 1.0)) for _ in range(6)]
        params[search] = [p.detach().clone() for p in t.model.parameters()]
    assert max(taus) > 1                                               # the coupled loop ran
    assert all(torch.equal(a, b) for a, b in zip(params["incremental"], params["chunked"]))


def test_an_updates_syncs_do_not_grow_with_its_sweeps(monkeypatch):
    """At 784-200-200 (no correction fires: tau = 1, as at MNIST width) every update on the
    device path synchronises as often as the first, while its searches' sweeps vary from update
    to update; the incremental device path's count follows the sweeps (the test's power)."""
    monkeypatch.setattr(samplers, "NUMPY_SCAN", False)
    counts = {}
    for search in ("chunked", "incremental"):
        monkeypatch.setattr(samplers, "CPU_SEARCH", search)
        t = _trainer((200, 200), 1000, 100)
        per = []
        for _ in range(5):
            with HostSyncs() as s:
                _, info = t.update()
            rec = info.summary()
            per.append((s.count, rec["neg_sweeps_mean"] + rec["pos_sweeps_mean"], rec["neg_tau_mean"]))
        counts[search] = per
    assert all(tau == 1.0 for *_, tau in counts["chunked"])
    assert len({c for c, *_ in counts["chunked"]}) == 1 and len({sw for _, sw, _ in counts["chunked"]}) > 1, counts
    assert len({c for c, *_ in counts["incremental"]}) > 1 and counts["incremental"][0][0] > counts["chunked"][0][0]


def test_the_sync_table_reads_the_benchmark_csv(tmp_path):
    """make bench-syncs's CSV (benchmarks.to_csv's layout) becomes the docs' table, one row per
    search, the search of before first."""
    from benchmarks.to_csv import tidy
    from reproduce.verdicts import syncs_table
    assert "Not measured yet" in syncs_table(tmp_path)
    bench = [{"name": f"t[{s}]", "stats": {"median": 0.01 * (i + 1), "min": 0.01, "max": 0.05, "iqr": 0.001, "rounds": 5},
              "extra_info": {"step": f"update_syncs_{s}", "device": "cpu", "shape": "binary-784-200-200", "batch": 100,
                             "flops": 1e9, "peak_gflops": 100.0, "host_syncs": c, "host_syncs_max": c + 1,
                             "pos_sweeps_mean": 5.0, "neg_sweeps_mean": 6.5}}
             for i, (s, c) in enumerate((("chunked", 34.0), ("incremental", 243.0)))]
    (tmp_path / "results").mkdir()
    tidy({"benchmarks": bench, "machine_info": {"cpu": {"brand_raw": "AMD EPYC"}}, "datetime": "2026-12-07T18:00"}
         ).to_csv(tmp_path / "results" / "bench_syncs.csv", index=False)
    table = syncs_table(tmp_path)
    assert table.index("| incremental | 243 (244) |") < table.index("| chunked | 34 (35) |")
    assert "| 5.0, 6.5 | 20 ms |" in table and "AMD EPYC, 2026-12-07" in table


def _chunks(tau_max: int) -> int:
    """The chunked loop's chunks for chains that meet by tau_max: the least c with
    FIRST_CHUNK (GROWTH^c - 1) / (GROWTH - 1) >= tau_max - 1 coupled steps."""
    from dbm import coupled
    c, steps, chunk = 0, 0, coupled.FIRST_CHUNK
    while steps < tau_max - 1:
        c, steps, chunk = c + 1, steps + chunk, chunk * coupled.GROWTH
    return c


def _mh_pair(seed, n=300, w_scale=1.0):
    """A small DBM whose coupled MH chains run for tens of steps: (kernel, X0, Y0 independent)."""
    from stat_helpers import random_dbm
    m = random_dbm([7, 5, 4], seed=seed, w_scale=w_scale)
    g = torch.Generator().manual_seed(seed)
    mh = samplers.MH(m)
    return m, mh, mh.init(m.random_state(n, g)), mh.init(m.random_state(n, g)), g


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_chunked_coupled_loop_syncs_once_per_chunk(seed):
    """run_coupled on a device: one synchronisation to split off the chains met at t = 1, then one
    per chunk, whatever tau_max; the per-step loop's count grows with tau_max (the power)."""
    from dbm import coupled, couplings
    from dbm.estimators import Accumulator
    counts = {}
    for loop in ("chunked", "per-step"):
        m, mh, x0, y0, g = _mh_pair(seed)
        sink = Accumulator("stats", m, False, x0.xs[0].shape[0])
        cp = couplings.Coupled(mh)
        with HostSyncs() as s:
            res = coupled.run_coupled(x0, y0, step=lambda st, idx: mh.step(st, g, idx),
                                      coupled_step=lambda x, y, idx: cp.step(x, y, g, idx),
                                      met=lambda x, y: couplings.states_equal(x.xs, y.xs), max_steps=10_000,
                                      on_pair=lambda x, y, idx, w, live=None: (sink.add(x.xs, w, idx, live),
                                                                               sink.add(y.xs, -w, idx, live)),
                                      method=loop)
        counts[loop] = (s.count, int(res.tau.max()))
    count, tau_max = counts["chunked"]
    assert tau_max > 3 * coupled.FIRST_CHUNK and not res.capped.any()
    assert count == 1 + _chunks(tau_max), counts
    assert counts["per-step"][0] > tau_max, counts


@pytest.mark.parametrize("name,opts", [("ucd-mh-lmi", {}), ("ucd-mh-lmi", {"y0": "independent", "max_steps": 50}),
                                       ("ucd-mh-lmi", {"gibbs_sweeps": 1}), ("ucd-gibbs", {})])
def test_one_chunk_a_step_is_the_per_step_loop(name, opts, monkeypatch):
    """With FIRST_CHUNK = 1 and GROWTH = 1 the chunked loop compacts after every step as the
    per-step loop does: the same random numbers, so the same per-chain estimates, meeting times
    and loss, bit for bit (small models, where corrections fire)."""
    from dbm import coupled
    from stat_helpers import random_dbm
    monkeypatch.setattr(coupled, "FIRST_CHUNK", 1)
    monkeypatch.setattr(coupled, "GROWTH", 1)
    m = random_dbm([6, 4, 3], seed=11)
    v = (torch.rand(200, 6, generator=torch.Generator().manual_seed(1)) < 0.5).double()
    est = dbm.estimator(name, **opts)
    out = {}
    for loop in ("per-step", "chunked"):
        monkeypatch.setattr(coupled, "CPU_COUPLED", loop)
        g, _, info = est.chain_estimates(m, v, None, torch.Generator().manual_seed(5))
        loss, _, _ = est.loss(m, v, None, torch.Generator().manual_seed(5))
        out[loop] = (g, info.pos.tau, info.neg.tau, loss)
    assert float(out["per-step"][2].max()) > 2                      # the loop ran
    assert all(torch.equal(a, b) for a, b in zip(out["per-step"], out["chunked"]))


def test_an_updates_syncs_do_not_grow_with_its_coupled_steps(monkeypatch):
    """The update on the device path (chunked search and chunked coupled loop) on a small model
    whose meeting times vary from update to update: its count is a constant plus the coupled
    loops' chunks (one per chunk, logarithmic in tau_max); the per-step loop's count follows
    tau_max (the power)."""
    from dbm import coupled
    from stat_helpers import random_dbm
    monkeypatch.setattr(samplers, "NUMPY_SCAN", False)
    monkeypatch.setattr(samplers, "CPU_SEARCH", "chunked")
    m = random_dbm([7, 5, 4], seed=3)
    v = (torch.rand(40, 7, generator=torch.Generator().manual_seed(2)) < 0.5).double()
    est = dbm.estimator("ucd-mh-lmi")
    rest = {}
    for loop in ("chunked", "per-step"):
        monkeypatch.setattr(coupled, "CPU_COUPLED", loop)
        g, per = torch.Generator().manual_seed(9), []
        for _ in range(4):
            with HostSyncs() as s:
                _, _, info = est.loss(m, v, None, g)
            taus = (int(info.pos.tau.max()), int(info.neg.tau.max()))
            per.append((s.count - (sum(map(_chunks, taus)) if loop == "chunked" else 0), taus))
        rest[loop] = per
    assert len({t for _, t in rest["chunked"]}) > 1 and max(max(t) for _, t in rest["chunked"]) > 2 * coupled.FIRST_CHUNK
    assert len({c for c, _ in rest["chunked"]}) == 1, rest
    assert len({c for c, _ in rest["per-step"]}) > 1, rest
