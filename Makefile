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

.PHONY: install demo test lab clean export bench readme docs study

install: $(STAMP)

$(STAMP): setup.py settings.ini
	$(PY) -m pip --version >/dev/null 2>&1 || $(PYTHON) -m venv --clear $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install $(TORCH_PINS) -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (cxr_nbdev)"
	touch $(STAMP)

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

# Cloud GPU containers run as root, where Jupyter refuses to start without --allow-root.
lab: $(STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=nbs $(if $(filter 0,$(shell id -u)),--allow-root,)

export: $(STAMP)
	$(VENV)/bin/nbdev_clean && $(VENV)/bin/nbdev_export
	$(MAKE) readme

# README.md is generated from nbs/index.ipynb (nbdev_readme needs quarto; nbconvert does the same here)
readme: $(STAMP)
	$(VENV)/bin/jupyter nbconvert --to markdown nbs/index.ipynb --output-dir . --output README --log-level WARN

# The documentation site, offline: every notebook executed at smoke scale (as nbdev_test runs it,
# outputs kept) into _docs/<notebook>.html, plus _docs/index.html (the README and the smoke run's key
# figures). The run writes to its own outputs folder, _docs_run/, never to outputs/.
docs: $(STAMP)
	rm -rf _docs_run
	MPLBACKEND=Agg $(PY) -c "from cxr_nbdev.pipeline import build_docs; print(build_docs())"

clean:
	find outputs -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
	rm -rf _docs _docs_run _proc .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
