# The two commands of the README: `make reproduce` and `make test`. Both set up first and are safe to re-run.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
KERNEL := clinical-utils
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help setup reproduce test test-notebooks docs lab bench gpu-check

help:  ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: $(STAMP)  ## create .venv, install the package and register the Jupyter kernel "clinical-utils"

# Re-installs only when pyproject.toml changes; the stamp is written last, so a failed install is retried.
# The kernel starts with the batch's settings (environment.BATCH_ENVIRONMENT: glibc keeps freed tensor memory
# instead of page-faulting it back in; oneDNN runs the reference's bf16 kernels), in JupyterLab as in the batch.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (clinical-utils)" \
		$$($(PY) -m clinical_utils.batch.environment --kernel-env) > /dev/null
	touch $@

# The batch runs as per-seed shards on WORKERS Dask worker processes, one thread each (the reference's thread count,
# so records compare): by default one per usable core, fewer where memory is short (2 here; docs/setup.md: minutes and
# memory measured). WORKERS=1 runs the notebooks one after the other in this process, as the reference was made.
WORKERS ?= $(shell $(PY) -m clinical_utils.batch.environment --workers)

reproduce: setup  ## every notebook (quick) on WORKERS Dask workers, the summary, the check against the reference
	$(PY) -m clinical_utils.batch $(if $(filter-out 1,$(WORKERS)),--workers $(WORKERS)) --threads 1

test-notebooks: setup  ## refresh the nbval references in tests/notebooks/ (after an intended output change)
	$(PY) tests/render_notebooks.py

test: setup  ## unit tests and notebook regression tests
	$(PY) -m pytest

$(VENV)/.docs-installed: $(STAMP)
	$(PY) -m pip install --quiet -e ".[docs]"
	touch $@

docs: $(VENV)/.docs-installed  ## the documentation site from docs/ into site/, offline; a broken link or anchor fails it
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

bench: setup  ## the speed benchmarks at 1,000 and 10,000 points (results/bench/; about 25 minutes on 2 CPU cores)
	$(PY) benchmarks/bench_training.py
	$(PY) benchmarks/bench_selection.py --sizes 1000 10000
	$(PY) benchmarks/interval_coverage.py

# No set-up: the GPU machine may have no package registry; it runs from the source tree on its own torch.
gpu-check:  ## on a CUDA machine: CUDA tests, training and selection benchmarks, a paper round (results/bench/*_cuda.json)
	PYTHONPATH=. $(PYTHON) benchmarks/gpu_check.py

lab: setup  ## open JupyterLab on the notebooks
	$(VENV)/bin/jupyter lab notebooks/
