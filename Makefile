# The repository's commands. `make demo` and `make test` each set up everything they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
CONFIG ?= configs/demo.yaml
RUN ?=
# On the development machines torch/torchvision lie on disk under a pip cap (/etc/xdg/pip):
# pin them there so pip never downloads a multi-GB CUDA build. Elsewhere this stays empty and
# `pip install -e .` resolves torch normally (see README, "Installing" for GPU wheels).
TORCH_PINS ?= $(shell grep -qs '^torch<=2.14.1' /etc/xdg/pip/constraints.txt && echo 'torch==2.14.1 torchvision==0.29.1')

.PHONY: install kernel demo test lab clean export bench readme docs serve-docs study

install: $(STAMP)

$(STAMP): setup.py settings.ini
	$(PY) -m pip --version >/dev/null 2>&1 || $(PYTHON) -m venv --clear $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install $(TORCH_PINS) -e ".[dev]"
	$(MAKE) kernel
	touch $(STAMP)

# The project's own kernel, "Python (cxr_nbdev)", for the venv's JupyterLab (--sys-prefix) and for
# the user's (root's on a cloud image), so a system-wide JupyterLab sees it too. Stage runs use it
# when it starts this venv's Python, else python3 (cxr_nbdev.runs.stage_kernel).
kernel:
	$(PY) -m ipykernel install --sys-prefix --name cxr_nbdev --display-name "Python (cxr_nbdev)"
	$(PY) -m ipykernel install --user --name cxr_nbdev --display-name "Python (cxr_nbdev)"

demo: $(STAMP)
	$(VENV)/bin/cxr-pipeline --config $(CONFIG) $(if $(RUN),--run-name $(RUN),)

test: $(STAMP)
	$(PY) -m pytest tests -ra

# A study: many runs over a grid, as tasks on Ray (a local cluster; see README, "Studies")
STUDY ?= configs/study-smoke.yaml
study: $(STAMP)
	$(VENV)/bin/cxr-study --config $(STUDY)

bench: $(STAMP)
	$(PY) bench/bench.py

# Cloud GPU containers run as root, where Jupyter refuses to start without --allow-root. The
# notebooks ask for the cxr_nbdev kernel; where it is registered it is the only one offered.
LAB_KERNEL = $(shell $(PY) -c "from cxr_nbdev.runs import stage_kernel; print(stage_kernel())")
lab: $(STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=nbs $(if $(filter 0,$(shell id -u)),--allow-root,) \
	  --MappingKernelManager.default_kernel_name=$(LAB_KERNEL) \
	  $(if $(filter cxr_nbdev,$(LAB_KERNEL)),--KernelSpecManager.allowed_kernelspecs=cxr_nbdev,)

export: $(STAMP)
	$(VENV)/bin/nbdev_clean && $(VENV)/bin/nbdev_export
	$(MAKE) readme

# README.md is generated from nbs/index.ipynb (nbdev_readme needs quarto; nbconvert does the same here)
readme: $(STAMP)
	$(VENV)/bin/jupyter nbconvert --to markdown nbs/index.ipynb --output-dir . --output README --log-level WARN

# The documentation site, offline (mkdocs-material; see nbs/08_pipeline.ipynb): every notebook
# executed at smoke scale (as nbdev_test runs it, outputs kept) into a page in _proc/, then the
# site with search, a sidebar in notebook order and an API reference into _docs/. The run writes
# to its own outputs folder, _docs_run/, never to outputs/. `make serve-docs` serves it.
docs: $(STAMP)
	rm -rf _docs_run _proc
	MPLBACKEND=Agg $(PY) -c "from cxr_nbdev.pipeline import build_docs; print(build_docs())"

DOCS_PORT ?= 8000
DOCS_BIND ?= 127.0.0.1
serve-docs:
	@test -f _docs/index.html || { echo "no site in _docs/: run make docs first" >&2; exit 1; }
	$(PY) -m http.server $(DOCS_PORT) --bind $(DOCS_BIND) --directory _docs

clean:
	find outputs -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
	rm -rf _docs _docs_run _proc .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
