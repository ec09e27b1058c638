"""Benchmark fixtures: devices, model shapes, the matrix-product peak measured in the same run.

Benchmarks time one step function each (with device synchronisation on GPU) and put sizes and
FLOP counts in ``extra_info``; ``benchmarks/to_csv.py`` turns the JSON into results/bench.csv.
"""
import os
import time

import pytest
import torch

from dbm import DBM

torch.set_num_threads(int(os.environ.get("DBM_BENCH_THREADS", min(2, os.cpu_count() or 1))))

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
SHAPES = {"binary-784x3": (784, 784, 784), "8bit-6272-1000-1000": (6272, 1000, 1000)}
BATCHES = [100, 1000]


def sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def matmul_peak(device: str, reps: int = 30, dtype=torch.float32) -> float:
    """Best achieved GFLOP/s of fp32 matrix products, square 2048 and the sweep's own
    (1000 x 784) @ (784 x 784): the peak that fractions are taken of (best of ``reps``)."""
    g = torch.Generator(device=device).manual_seed(0)
    rates = []
    for m, k, n in ((2048, 2048, 2048), (1000, 784, 784)):
        a = torch.rand(m, k, generator=g, device=device, dtype=dtype)
        b = torch.rand(k, n, generator=g, device=device, dtype=dtype)
        for _ in range(3):
            a @ b
        best = float("inf")
        for _ in range(reps):
            sync(device)
            t = time.perf_counter()
            a @ b
            sync(device)
            best = min(best, time.perf_counter() - t)
        rates.append(2 * m * k * n / best / 1e9)
    return max(rates)


@pytest.fixture(scope="session")
def peak_gflops():
    return {d: matmul_peak(d) for d in DEVICES}


def shared_data_dir():
    """DBM_DATA_DIR, else ../shared/data beside the repository, else None (random bits)."""
    import pathlib
    d = os.environ.get("DBM_DATA_DIR") or pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
    return pathlib.Path(d) if pathlib.Path(d).is_dir() else None


def make_model(shape, device):
    return DBM(shape, generator=torch.Generator(device=device).manual_seed(0), device=device)


def data(shape, batch, device, seed=0):
    g = torch.Generator(device=device).manual_seed(seed)
    return torch.randint(0, 2, (batch, shape[0]), generator=g, device=device).float()


def record(benchmark, peak, device, shape_name, shape, batch, flops, **extra):
    benchmark.extra_info.update(dict(device=device, shape=shape_name, layer_sizes=list(shape),
                                     batch=batch, flops=flops, peak_gflops=peak[device],
                                     threads=torch.get_num_threads(), **extra))


def pytest_benchmark_update_machine_info(config, machine_info):
    """The CPU's model name and the GPU's (None without CUDA) in the JSON's ``machine_info``, read
    by reproduce/provenance.py beside pytest-benchmark's ``commit_info``."""
    from dbm.provenance import cpu_model
    machine_info["cpu_model"] = cpu_model()
    machine_info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


_SESSION_START = {}


def pytest_sessionstart(session):
    from dbm.provenance import cpu_time_s
    _SESSION_START.update(wall=time.perf_counter(), cpu=cpu_time_s())


def pytest_benchmark_update_json(config, benchmarks, output_json):
    """Wall and CPU seconds of the whole benchmark session and the torch version, beside
    pytest-benchmark's own record (the provenance every sidecar carries)."""
    from dbm.provenance import cpu_time_s
    output_json["wall_time_s"] = time.perf_counter() - _SESSION_START.get("wall", time.perf_counter())
    output_json["cpu_time_s"] = cpu_time_s() - _SESSION_START.get("cpu", 0.0)
    output_json["machine_info"]["torch"] = torch.__version__
