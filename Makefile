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

.PHONY: help venv test test-all bench bench-compare bench-side-by-side zoo reproduce-all provenance reproduce-fig24 reproduce-fig25 reproduce-fig27 \
        reproduce-bias reproduce-anatomy fid gans clean-venv tables

help:  ## this list (runtimes: 2-core CPU, default profile; QUICK=1 runs take a minute or two each)
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 22

venv: $(STAMP)  ## create .venv and install the project (about 1 min from the local wheels)

$(STAMP): pyproject.toml
	python3.11 -m venv .venv || python3 -m venv .venv
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)  ## the test suite without the slow tests (about 5-7 min; the install adds 1-2)
	$(PY) -m pytest -m "not slow" -q

test-all: $(STAMP)  ## every test, slow ones included (about 25 min: the 47 slow ones 17 min)
	$(PY) -m pytest -q

BENCH_OUT := results$(if $(QUICK),/quick,)
bench: $(STAMP)  ## timings and the width-scaling plot -> results/bench.{json,csv}, bench_scaling.png (about 4 min; QUICK=1: to results/quick/)
	mkdir -p $(BENCH_OUT)
	$(PY) -m pytest benchmarks -q -o python_files="bench_*.py" -p no:cacheprovider --benchmark-json=$(BENCH_OUT)/bench.json
	$(PY) -m benchmarks.to_csv $(BENCH_OUT)/bench.json $(BENCH_OUT)/bench.csv
	$(PY) -m benchmarks.plot_scaling $(BENCH_OUT)/bench.csv $(BENCH_OUT)/bench_scaling.png

bench-compare: $(STAMP)  ## run the benchmarks again (-> results/quick/) and compare with the committed results/bench.json, naming both machines
	mkdir -p results/quick
	$(PY) -m pytest benchmarks -q -o python_files="bench_*.py" -p no:cacheprovider --benchmark-json=results/quick/bench.json
	$(PY) -m benchmarks.host_check results/bench.json results/quick/bench.json
	$(PY) -m pytest_benchmark compare results/bench.json results/quick/bench.json --group-by=name --columns=median,iqr

REF ?= 1016ea7
bench-side-by-side: $(STAMP)  ## issue 14's protocol: one update of git ref REF vs the working tree, alternating -> results/bench_side_by_side.{csv,json} (about 5 min)
	$(PY) -m benchmarks.side_by_side --ref $(REF) --batch 100 1000 --warm-start

reproduce-all: reproduce-fig24 reproduce-fig25 fid reproduce-fig27 reproduce-bias reproduce-anatomy  ## every figure of the profile (budget: about 3 h)

zoo: $(STAMP)  ## train fig25's models of PROFILE in 2 parallel processes (converged: about 2 h, MNIST and Fashion-MNIST; converged-2x: about 55 min; CELLS=ucd-mh-lmi:0,fashion-mnist/cd:0 trains those alone)
	$(PY) -m reproduce.zoo --profile $(PROFILE) --jobs 2 --device $(DEVICE) $(if $(CELLS),--cells $(CELLS),)

reproduce-fig24: $(STAMP)  ## slide 24: coupling time against width (about 8 min)
	$(PY) -m reproduce.fig24_coupling_time $(QFLAG) --device $(DEVICE)

reproduce-fig25: $(STAMP)  ## slide 25: end-to-end training, likelihood and samples (budget: 50 min; PROFILE=converged: run `make zoo` first)
	$(PY) -m reproduce.fig25_end_to_end $(if $(QUICK),--quick,--profile $(PROFILE)) --device $(DEVICE)

reproduce-fig27: $(STAMP)  ## slide 27: inpainting with fig25's models (about 15 min)
	$(PY) -m reproduce.fig27_inpainting $(if $(QUICK),--quick,--profile $(PROFILE)) --device $(DEVICE)

fid: $(STAMP)  ## slide 26: FID / classifier-FD of DBMs and WGANs (about 40 min)
	$(PY) -m reproduce.fig26_fid $(if $(QUICK),--quick,--profile $(PROFILE)) --device $(DEVICE)

gans: $(STAMP)  ## slide 26: train fig26's GANs of PROFILE (converged: to their classifier-FD plateau, hours per GAN; resumable)
	$(PY) -c "from reproduce.fig26_fid import train_gans; train_gans('$(PROFILE)', device='$(DEVICE)')"

EBM_MNIST = $(PY) -m reproduce.ebm_anatomy_mnist $(if $(QUICK),--quick,--profile $(PROFILE)) --device $(DEVICE)

reproduce-anatomy: $(STAMP)  ## EBM anatomy: toy densities (45 min) and MNIST (2 models in parallel, about 35 min)
	$(PY) -m reproduce.ebm_anatomy_toy $(if $(QUICK),--quick,--profile $(PROFILE)) --device $(DEVICE)
	export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1; $(EBM_MNIST) --outcomes short-run & a=$$!; \
	  $(EBM_MNIST) --outcomes persistent & b=$$!; wait $$a && wait $$b
	$(EBM_MNIST)

reproduce-bias: $(STAMP)  ## estimator bias and MSE against exact gradients, the exact a(X0) diagnostics, a verdict per cell, and the cap model checked exactly (not timed alone: cells 60 min beside other jobs, diagnostics 6 min)
	$(PY) -m reproduce.bias_study $(QFLAG) --device $(DEVICE)
	$(PY) -m reproduce.cap_model_check $(QFLAG)

provenance: $(STAMP)  ## every committed result's commit, clean tree or not, CPU, GPU, date, wall and CPU time (exit 1 on an undeclared gap)
	$(PY) -m reproduce.provenance

tables: $(STAMP)  ## rewrite the README's and docs' result tables from the committed CSVs (a test fails when they drift)
	$(PY) -m reproduce.tables

clean-venv:  ## remove .venv
	rm -rf .venv
