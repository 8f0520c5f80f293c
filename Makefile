# The two commands a newcomer runs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8501

.PHONY: install demo dashboard test lint clean

$(STAMP): requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10 or newer is needed; set PYTHON=python3.x")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $(STAMP)

## The install step also compiles the feature kernels (pipeline/features/_kernels.c; without a C
## compiler it warns and numpy computes the features), and fetches musicnn 0.1.0's published
## weights with pip (SHA-256 checked), converting them into the torch zoo; offline, it warns and
## the tests that need them skip.
install: $(STAMP)
	@$(PY) -m pipeline.features.kernels || true
	@$(PY) -m pipeline pretrained fetch > $(VENV)/pretrained.log 2>&1 \
		&& echo "published models ready (python -m pipeline pretrained list)" \
		|| { tail -n 1 $(VENV)/pretrained.log; echo "warning: published models not converted; rerun 'make install' online"; }

## Build the demo end to end (corpus, features, training, artifacts), then open the dashboard.
demo: install
	$(PY) -m pipeline demo
	$(MAKE) dashboard

## Open the dashboard on every run under data/runs (http://localhost:$(PORT)).
dashboard: install
	$(PY) -m streamlit run dashboard/app.py --server.address localhost --server.port $(PORT) \
		--browser.gatherUsageStats false -- --runs data/runs

## Run the whole test suite (browser tests skip where Chromium is absent).
test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache
