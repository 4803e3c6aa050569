# `make demo` and `make test` set everything up from a fresh clone: a .venv, torch pinned (the CPU build
# here; on other machines pass TORCH_PIP_ARGS, e.g. "--index-url https://download.pytorch.org/whl/cpu"),
# and evalkit installed in editable mode. torch goes in first: evalkit depends on torch>=2.5, which the
# pinned CPU build satisfies, so pip keeps it and never fetches a CUDA build. The extras are what the tests
# use (lc: the AlpacaEval LC refit, train: LoRA and accelerate, dev: pytest, ruff, hypothesis); the
# dependencies (transformers, datasets, ...) come with evalkit itself. Nothing touches a model or dataset hub.
PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
TORCH_PIP_ARGS ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.evalkit-installed

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "torch==$(TORCH_VERSION)" $(TORCH_PIP_ARGS)
	$(BIN)/python -m pip install -q -e ".[lc,train,smolvlm,dev]"
	touch $(STAMP)

demo: setup
	HF_HUB_OFFLINE=1 $(BIN)/evalkit demo

test: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check evalkit tasks training tests benchmarks
	$(BIN)/ruff format --check evalkit tasks training tests benchmarks

bench: setup
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/eval_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache
