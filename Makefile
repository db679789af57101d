# exegpt-harness: `make` lists the targets; `make reproduce` and `make test` are the two that matter.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
HARNESS := $(VENV)/bin/harness
STAMP := $(VENV)/.installed
EXTRAS := figures,launchers,engine,dev
# torch first, pinned: the machine image ships this CPU wheel; a bare `torch` pulls a multi-GB CUDA build.
# Elsewhere: `make setup TORCH_INDEX=https://download.pytorch.org/whl/cpu` (the GitHub workflow does).
TORCH ?= torch==2.13.0
TORCH_INDEX ?=

.PHONY: help setup data data-status test reproduce reproduce-quick fidelity figures regress regress-update bench lint clean clean-runs

help: ## list the targets
	@echo "usage: make <target>"
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-11s %s\n", $$1, $$2}'

$(PY):
	python3.11 -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(VENV)/bin/pip install $(TORCH) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(VENV)/bin/pip install -e '.[$(EXTRAS)]'
	touch $@

setup: $(STAMP) ## create .venv and install the package with all extras (once; again when pyproject.toml changes)

data: setup ## download the measured data (profiles, traces) from upstream, sha256-checked (harness data fetch)
	$(HARNESS) data fetch

data-status: setup ## which data files are present, missing or corrupt (harness data status)
	$(HARNESS) data status

test: setup ## run the test suite
	$(PY) -m pytest -q

reproduce: setup ## every paper table/figure + runs/REPORT.md (paper vs ours); resumable
	$(HARNESS) reproduce

reproduce-quick: setup ## a handful of scenarios through the same pipeline (about a minute)
	$(HARNESS) reproduce --quick

fidelity: setup ## real runner vs simulator, 27 configurations x 3 runs (median kept) + repeatability floor (CPU mini-cluster, ~7-8 min; reproduce runs it once each)
	$(HARNESS) fidelity runner.fidelity.reprofile=true runner.fidelity.repeats=3

figures: setup ## regenerate figures and runs/REPORT.md from runs/*/results.parquet alone
	$(HARNESS) figures

regress: setup ## searched throughput vs benchmarks/golden/regress.json (fails on a >1% drop)
	$(HARNESS) regress

regress-update: setup ## rewrite the golden file and print what changed
	$(HARNESS) regress --update

bench: setup ## run benchmarks/bench_*.py; results in runs/bench/results.json
	$(PY) -m benchmarks.run

lint: setup ## ruff over harness, tests and benchmarks; the one-way import contract (pyproject.toml)
	$(VENV)/bin/ruff check harness tests benchmarks
	$(VENV)/bin/lint-imports

clean: ## remove caches (keeps .venv and runs/)
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -print0 | xargs -0 rm -rf
	rm -rf .pytest_cache .ruff_cache build dist

clean-runs: ## remove everything under runs/
	rm -rf runs
