# The two commands of the README: `make reproduce` and `make test`. Both set up first and are safe to re-run.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
KERNEL := clinical-utils
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help setup reproduce test test-notebooks lab bench gpu-check

help:  ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: $(STAMP)  ## create .venv, install the package and register the Jupyter kernel "clinical-utils"

# Re-installs only when pyproject.toml changes; the stamp is written last, so a failed install is retried.
# The kernel keeps freed tensor memory instead of page-faulting it back in (reproduce.MALLOC_TUNING).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (clinical-utils)" \
		--env MALLOC_MMAP_THRESHOLD_ 4294967296 --env MALLOC_TRIM_THRESHOLD_ 4294967296 > /dev/null
	touch $@

# WORKERS=N shares the notebooks out as per-seed shards on N Dask worker processes (one thread each: the reference's
# thread count, so records compare), e.g. WORKERS=2 here: 49.7 minutes for the batch against 71 serially (README).
# Serial by default, as the reference was computed.
WORKERS ?=

reproduce: setup  ## run the main job: every notebook (quick profile), then the summary figures and the comparison with the reference (WORKERS=N: on Dask)
	$(PY) -m clinical_utils.reproduce $(if $(WORKERS),--workers $(WORKERS) --threads 1)

test-notebooks: setup  ## refresh the nbval references in tests/notebooks/ (after an intended output change)
	$(PY) tests/render_notebooks.py

test: setup  ## unit tests and notebook regression tests
	$(PY) -m pytest

bench: setup  ## the speed benchmarks at 1,000 and 10,000 points (results/bench/; about 25 minutes on 2 CPU cores)
	$(PY) benchmarks/bench_training.py
	$(PY) benchmarks/bench_selection.py --sizes 1000 10000
	$(PY) benchmarks/interval_coverage.py

# No set-up: the GPU machine may have no package registry; it runs from the source tree on its own torch.
gpu-check:  ## on a CUDA machine: CUDA tests, training and selection benchmarks, a paper round (results/bench/*_cuda.json)
	PYTHONPATH=. $(PYTHON) benchmarks/gpu_check.py

lab: setup  ## open JupyterLab on the notebooks
	$(VENV)/bin/jupyter lab notebooks/
