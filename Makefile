# The two commands of the README: `make demo` (the main job) and `make test` (the whole suite).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export RAY_USAGE_STATS_ENABLED := 0
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: venv demo test test-fast lint typecheck bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# CPU torch first: an open range would pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	bash scripts/demo.sh

lint: $(STAMP)
	$(BIN)/ruff check mlac workers service tests benchmarks experiments
	$(BIN)/mypy

test: $(STAMP) lint
	$(BIN)/python -m pytest tests -q --durations=25

# Local iteration (~4 min on 2 cores): unit and deploy tests, without Ray, the service, the CLI audit or the behaviour test
# (CI still runs everything through `make test`).
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests/unit tests/deploy -q -m "not slow and not ray" --durations=10

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_mlac_step.py

clean:
	rm -rf $(VENV) demo-out
