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
