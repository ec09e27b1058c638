# Every target runs from the repository root so that `import dbm` finds this project's
# package and not the standard library's `dbm` (see README, "The name dbm").
PY      := .venv/bin/python
STAMP   := .venv/.installed
QUICK   ?=
DEVICE  ?= cpu
QFLAG   := $(if $(QUICK),--quick,)
PROFILE ?= budget
comma   := ,
# flags that override the zoo models' training settings (e.g. ZOO="--updates 6000"): passed alike to
# zoo, reproduce-fig25, fid and reproduce-fig27, so every script trains and judges the same models
ZOO     ?=
RECORD  ?=
# every long target is timed (wall and CPU seconds, printed); RECORD=1 also appends the measurement
# to results/runtimes.csv, the one source of the runtimes in `make help`, the README and the docs
TIMED    = DBM_RECORD_RUNTIME=$(RECORD) $(PY) -m reproduce.runtimes record $@ $(if $(QUICK),quick,$(PROFILE)) $(if $(QUICK),quick,full) --
# the targets with one profile of their own (fig24, the bias study, the tests, the benchmarks)
TIMED1   = DBM_RECORD_RUNTIME=$(RECORD) $(PY) -m reproduce.runtimes record $@ $(if $(QUICK),quick,-) $(if $(QUICK),quick,full) --
# data sets: DBM_DATA_DIR if set, else the project's offline copies beside the checkout
export DBM_DATA_DIR ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)

.PHONY: help venv test test-all bench bench-syncs bench-compare bench-side-by-side zoo reproduce-all provenance reproduce-fig24 reproduce-fig25 reproduce-fig27 \
        reproduce-bias reproduce-anatomy fid gans clean-venv tables

help:  ## this list, with each target's newest measured runtime (results/runtimes.csv)
	@python3 -m reproduce.runtimes help Makefile

venv: $(STAMP)  ## create .venv and install the project (from the local wheels where they are)

$(STAMP): pyproject.toml
	python3.11 -m venv .venv || python3 -m venv .venv
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)  ## the test suite without the slow tests (the install adds 1-2 min on a fresh clone)
	$(TIMED1) $(PY) -m pytest -m "not slow" -q

test-all: $(STAMP)  ## every test, slow ones included
	$(TIMED1) $(PY) -m pytest -q

BENCH_OUT := results$(if $(QUICK),/quick,)
bench: $(STAMP)  ## timings and the width-scaling plot -> results/bench.{json,csv}, bench_scaling.png (QUICK=1: to results/quick/)
	mkdir -p $(BENCH_OUT)
	$(TIMED1) $(PY) -m pytest benchmarks -q -o python_files="bench_*.py" -p no:cacheprovider --benchmark-json=$(BENCH_OUT)/bench.json
	$(PY) -m benchmarks.to_csv $(BENCH_OUT)/bench.json $(BENCH_OUT)/bench.csv
	$(PY) -m benchmarks.plot_scaling $(BENCH_OUT)/bench.csv $(BENCH_OUT)/bench_scaling.png

bench-syncs: $(STAMP)  ## issue 36: host synchronisations per update on the device path, before / after -> results/bench_syncs.{json,csv}
	mkdir -p $(BENCH_OUT)
	$(TIMED1) $(PY) -m pytest benchmarks/bench_syncs.py -q -o python_files="bench_*.py" -p no:cacheprovider --benchmark-json=$(BENCH_OUT)/bench_syncs.json
	$(PY) -m benchmarks.to_csv $(BENCH_OUT)/bench_syncs.json $(BENCH_OUT)/bench_syncs.csv

bench-compare: $(STAMP)  ## run the benchmarks again (-> results/quick/) and compare with the committed results/bench.json, naming both machines
	mkdir -p results/quick
	$(PY) -m pytest benchmarks -q -o python_files="bench_*.py" -p no:cacheprovider --benchmark-json=results/quick/bench.json
	$(PY) -m benchmarks.host_check results/bench.json results/quick/bench.json
	$(PY) -m pytest_benchmark compare results/bench.json results/quick/bench.json --group-by=name --columns=median,iqr

REF ?= 1016ea7
bench-side-by-side: $(STAMP)  ## issue 14's protocol: one update of git ref REF vs the working tree, alternating -> results/bench_side_by_side.{csv,json}
	$(TIMED1) $(PY) -m benchmarks.side_by_side --ref $(REF) --batch 100 1000 --warm-start

reproduce-all: reproduce-fig24 reproduce-fig25 fid reproduce-fig27 reproduce-bias reproduce-anatomy  ## every figure of the profile

zoo: $(STAMP)  ## train fig25's models of PROFILE in 2 parallel processes (CELLS=ucd-mh-lmi:0,fashion-mnist/cd:0 trains those alone)
	$(TIMED) $(PY) -m reproduce.zoo --profile $(PROFILE) --jobs 2 --device $(DEVICE) $(if $(CELLS),--cells $(CELLS),) $(ZOO)

reproduce-fig24: $(STAMP)  ## slide 24: coupling time against width
	$(TIMED1) $(PY) -m reproduce.fig24_coupling_time $(QFLAG) --device $(DEVICE)

reproduce-fig25: $(STAMP)  ## slide 25: end-to-end training, likelihood and samples (PROFILE=converged or ladder: run `make zoo` first)
	$(TIMED) $(PY) -m reproduce.$(if $(filter ladder,$(PROFILE)),ladder,fig25_end_to_end) $(if $(QUICK),--quick,--profile $(PROFILE)) --device $(DEVICE) $(ZOO)

reproduce-fig27: $(STAMP)  ## slide 27: inpainting with fig25's models
	$(TIMED) $(PY) -m reproduce.fig27_inpainting $(if $(QUICK),--quick,--profile $(PROFILE)) --device $(DEVICE) $(ZOO)

fid: $(STAMP)  ## slide 26: FID / classifier-FD of DBMs and WGANs (trains the zoo and GANs it does not find)
	$(TIMED) $(PY) -m reproduce.fig26_fid $(if $(QUICK),--quick,--profile $(PROFILE)) --device $(DEVICE) $(ZOO)

gans: $(STAMP)  ## slide 26: train fig26's GANs of PROFILE (converged: to their classifier-FD plateau, hours per GAN; resumable)
	$(TIMED) $(PY) -c "from reproduce.fig26_fid import train_gans; train_gans('$(PROFILE)', device='$(DEVICE)')"

EBM_MNIST = $(PY) -m reproduce.ebm_anatomy_mnist $(if $(QUICK),--quick,--profile $(PROFILE)) --device $(DEVICE)

reproduce-anatomy: $(STAMP)  ## EBM anatomy: toy densities and MNIST's three models in two one-thread processes, then MNIST's table
	$(TIMED) sh -c 'export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1; \
	  { $(PY) -m reproduce.ebm_anatomy_toy $(if $(QUICK),--quick,--profile $(PROFILE)) --device $(DEVICE) && \
	    $(EBM_MNIST) --outcomes short-run; } & a=$$!; \
	  $(EBM_MNIST) --outcomes $(if $(QUICK),persistent,persistent$(if $(filter paper,$(PROFILE)),,$(comma)persistent-vanilla)) & b=$$!; \
	  wait $$a && wait $$b && unset OMP_NUM_THREADS MKL_NUM_THREADS && $(EBM_MNIST)'

reproduce-bias: $(STAMP)  ## estimator bias and MSE against exact gradients, the exact a(X0) diagnostics, a verdict per cell, and the cap model checked exactly
	$(TIMED1) sh -c '$(PY) -m reproduce.bias_study $(QFLAG) --device $(DEVICE) && $(PY) -m reproduce.cap_model_check $(QFLAG)'

provenance: $(STAMP)  ## every committed result's commit, clean tree or not, CPU, GPU, date, wall and CPU time (exit 1 on an undeclared gap)
	$(PY) -m reproduce.provenance

tables: $(STAMP)  ## rewrite the README's and docs' result tables from the committed CSVs (a test fails when they drift)
	$(PY) -m reproduce.tables

clean-venv:  ## remove .venv
	rm -rf .venv
