"""Host synchronisations of one training update on the device path (issue 36), counted on any
device by ``dbm.syncs.HostSyncs``, beside the update's time: the search of before ("incremental",
its device (torch) path, which a GPU ran, with the per-step coupled loop) and the device path now
("chunked": the chunked search and the chunked coupled loop, ``dbm.coupled``),
at batch 100 and 1000 and widths 200 and 784 (UCD-MH-LMI with the released pi0, binary MNIST,
the authors' optimiser; updates 1-4 untimed). On a CPU the times are the device path's CPU cost,
not a GPU's; the counts are what a GPU would wait for."""
import pytest
import torch

import dbm
from dbm import coupled, samplers
from dbm.syncs import HostSyncs
from benchmarks.bench_estimators import authors_update, count_flops
from benchmarks.conftest import DEVICES, record


@pytest.mark.benchmark(group="host-syncs")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("width", [200, 784])
@pytest.mark.parametrize("batch", [100, 1000])
@pytest.mark.parametrize("search", ["incremental", "chunked"])
def test_update_host_syncs(benchmark, peak_gflops, monkeypatch, device, width, batch, search):
    monkeypatch.setattr(samplers, "NUMPY_SCAN", False)                  # the incremental search's device path
    monkeypatch.setattr(samplers, "CPU_SEARCH", search)
    monkeypatch.setattr(samplers, "DEVICE_SEARCH", search)
    loop = "chunked" if search == "chunked" else "per-step"
    monkeypatch.setattr(coupled, "CPU_COUPLED", loop)
    monkeypatch.setattr(coupled, "DEVICE_COUPLED", loop)
    shape = (784, width, width)
    _, update = authors_update(shape, batch, device, dbm.estimator("ucd-mh-lmi"))
    for _ in range(4):
        update()
    counts = []
    for _ in range(3):                                                  # updates 5-7: their counts
        with HostSyncs() as syncs:
            update()
        counts.append(syncs.count)
    benchmark.pedantic(update, rounds=5 if batch == 1000 and width == 784 else 10, warmup_rounds=0)
    flops, info = count_flops(update)
    s = info.summary()
    record(benchmark, peak_gflops, device, f"binary-784-{width}-{width}", shape, batch, flops,
           step=f"update_syncs_{search}", estimator="ucd-mh-lmi", search=search, coupled_loop=loop,
           host_syncs=sum(counts) / len(counts), host_syncs_max=max(counts),
           pos_sweeps_mean=s["pos_sweeps_mean"], neg_sweeps_mean=s["neg_sweeps_mean"], neg_p_tau1=s["neg_p_tau1"])
