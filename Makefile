# The two commands of the README: `make reproduce` and `make test`. Both set up first and are safe to re-run.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
KERNEL := clinical-utils
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help setup reproduce test test-notebooks lab bench

help:  ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: $(STAMP)  ## create .venv, install the package and register the Jupyter kernel "clinical-utils"

# Re-installs only when pyproject.toml changes; the stamp is written last, so a failed install is retried.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (clinical-utils)" > /dev/null
	touch $@

# One Dask worker process per core, each kernel on one thread: the reference's thread count, so records compare.
WORKERS ?= $(shell $(PYTHON) -c 'import os; print(os.cpu_count())')

reproduce: setup  ## run the main job: every notebook (quick profile) as per-seed shards on WORKERS Dask workers, then the summary figures and the comparison with the reference
	$(PY) -m clinical_utils.reproduce --workers $(WORKERS)

test-notebooks: setup  ## refresh the nbval references in tests/notebooks/ (after an intended output change)
	$(PY) tests/render_notebooks.py

test: setup  ## unit tests and notebook regression tests
	$(PY) -m pytest

bench: setup  ## the speed benchmarks (results/bench/; about 15 minutes on 2 CPU cores)
	$(PY) benchmarks/bench_training.py
	$(PY) benchmarks/bench_selection.py

lab: setup  ## open JupyterLab on the notebooks
	$(VENV)/bin/jupyter lab notebooks/
