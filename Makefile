# Every target runs from the repository root so that `import dbm` finds this project's
# package and not the standard library's `dbm` (see README, "The name dbm").
PY      := .venv/bin/python
STAMP   := .venv/.installed
QUICK   ?=
DEVICE  ?= cpu
QFLAG   := $(if $(QUICK),--quick,)
PROFILE ?= budget
# data sets: DBM_DATA_DIR if set, else the project's offline copies beside the checkout
export DBM_DATA_DIR ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)

.PHONY: venv test test-all bench reproduce-fig24 reproduce-fig25 reproduce-fig27 reproduce-bias reproduce-anatomy fid clean-venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	python3.11 -m venv .venv || python3 -m venv .venv
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -m "not slow" -q

test-all: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m pytest benchmarks -q -o python_files="bench_*.py" -p no:cacheprovider --benchmark-json=results/bench.json
	$(PY) -m benchmarks.to_csv results/bench.json results/bench.csv
	$(PY) -m benchmarks.plot_scaling results/bench.csv results/bench_scaling.png

reproduce-fig24: $(STAMP)
	$(PY) -m reproduce.fig24_coupling_time $(QFLAG) --device $(DEVICE)

reproduce-fig25: $(STAMP)
	$(PY) -m reproduce.fig25_end_to_end $(if $(QUICK),--quick,--profile $(PROFILE)) --device $(DEVICE)

reproduce-fig27: $(STAMP)
	$(PY) -m reproduce.fig27_inpainting $(if $(QUICK),--quick,--profile $(PROFILE)) --device $(DEVICE)

fid: $(STAMP)
	$(PY) -m reproduce.fig26_fid $(if $(QUICK),--quick,--profile $(PROFILE)) --device $(DEVICE)

reproduce-anatomy: $(STAMP)
	$(PY) -m reproduce.ebm_anatomy_toy $(if $(QUICK),--quick,--profile $(PROFILE)) --device $(DEVICE)
	$(PY) -m reproduce.ebm_anatomy_mnist $(if $(QUICK),--quick,--profile $(PROFILE)) --device $(DEVICE)

reproduce-bias: $(STAMP)
	$(PY) -m reproduce.bias_study $(QFLAG) --device $(DEVICE)

clean-venv:
	rm -rf .venv
