"""The benchmark JSON -> tidy CSV conversion."""
from benchmarks.to_csv import markdown, tidy


def test_tidy_rows_and_fraction_of_peak():
    record = {"machine_info": {"cpu": {"brand_raw": "test cpu"}}, "datetime": "now", "benchmarks": [
        {"name": "test_x", "stats": {"median": 0.5, "min": 0.4, "max": 0.7, "iqr": 0.1, "rounds": 5},
         "extra_info": {"step": "gibbs_sweep", "device": "cpu", "shape": "s", "batch": 10,
                        "flops": 50e9, "peak_gflops": 200.0, "threads": 2}}]}
    df = tidy(record)
    v = dict(zip(df.metric, df.value))
    assert v["gflops"] == 100.0 and v["fraction_of_peak"] == 0.5 and v["median_s"] == 0.5
    assert set(df.columns) >= {"step", "device", "batch", "metric", "value", "machine", "flops_kind"}
    assert "| gibbs_sweep | cpu | s | 10 | 0.5 [0.4, 0.7] | 100 | 0.50 | executed |" in markdown(df)


def test_scaling_exponents_are_recovered_and_plotted(tmp_path):
    """Rows with time = c d^2.3 and T = d^0.34 give back those exponents; the PNG is written."""
    import pytest
    from benchmarks.plot_scaling import STEP, plot
    bench = []
    for batch in (100, 1000):
        for d in (100, 200, 500, 1000, 2000):
            info = {"step": STEP, "device": "cpu", "shape": f"{d}x3", "batch": batch, "width": d,
                    "flops": 8.0 * batch * d * d, "peak_gflops": 100.0, "threads": 2,
                    "pos_sweeps_mean": d ** 0.34, "neg_sweeps_mean": d ** 0.34}
            t = 1e-7 * batch * d ** 2.3
            bench.append({"name": "x", "stats": {"median": t, "min": t, "max": t, "iqr": 0.0, "rounds": 3},
                          "extra_info": info})
    df = tidy({"machine_info": {"cpu": {"brand_raw": "test cpu"}}, "datetime": "2026-01-01", "benchmarks": bench})
    fits = plot(df, tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 0 and len(fits) == 2
    assert fits.time_exponent.tolist() == pytest.approx([2.3, 2.3])
    assert fits.sweeps_exponent.tolist() == pytest.approx([0.34, 0.34])
    assert fits.flops_exponent.tolist() == pytest.approx([2.0, 2.0])


def test_side_by_side_times_a_ref_against_the_tree(tmp_path):
    """benchmarks.side_by_side checks HEAD out into a worktree, times both versions alternately in
    their own processes, and writes one row per timed update plus a sidecar with the ratio."""
    import json
    import math
    import subprocess

    import pandas as pd
    from benchmarks.side_by_side import ROOT, main
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True).returncode:
        import pytest
        pytest.skip("not a git checkout")
    out = tmp_path / "sbs.csv"
    assert main(["--ref", "HEAD", "--sizes", "20", "10", "5", "--batch", "8", "--procs", "1",
                 "--updates", "2", "--warmup", "0", "--threads", "1", "--random-data", "--out", str(out)]) == 0
    df = pd.read_csv(out)
    assert len(df) == 4 and df.version.nunique() == 2 and (df.seconds > 0).all() and (df.sweeps >= 1).all()
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["data"].startswith("random bits") and side["sizes"] == [20, 10, 5]
    assert math.isfinite(side["summary"][0]["speedup"]) and side["summary"][0]["speedup"] > 0
    worktrees = subprocess.run(["git", "-C", str(ROOT), "worktree", "list"], capture_output=True, text=True).stdout
    assert str(tmp_path) not in worktrees and "ref-" not in worktrees


def test_host_check_names_both_machines_and_warns_on_another_cpu(tmp_path, capsys):
    """make bench-compare: the committed timings' machine is named, and a different CPU is flagged."""
    import json
    from benchmarks.host_check import main

    def write(name, cpu):
        p = tmp_path / name
        p.write_text(json.dumps({"machine_info": {"cpu": {"brand_raw": cpu, "count": 2}}, "datetime": "2026-01-01T00:00:00",
                                 "commit_info": {"id": "abcdef0123", "dirty": False}, "benchmarks": []}))
        return str(p)
    a, b, c = write("a.json", "AMD EPYC"), write("b.json", "AMD EPYC"), write("c.json", "Intel Xeon")
    assert main([a, b]) == 0 and "WARNING" not in capsys.readouterr().out
    assert main([a, c]) == 0
    out = capsys.readouterr().out
    assert "AMD EPYC" in out and "Intel Xeon" in out and "WARNING: another CPU" in out
    assert main([a]) == 2
