# audioflow: `make demo` sets up and runs the main job, `make test` sets up and runs the tests.
# Both create or reuse .venv; nothing needs installing by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed-stamp
export PATH := $(BIN):$(PATH)
# One thread per process keeps 2-core machines responsive when several jobs run at once.
export OMP_NUM_THREADS ?= 1

.PHONY: setup demo demo-speech espeak test test-slow test-gpu lint format bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/snakemake --cores 2
	@$(BIN)/python -m audioflow.workflow.summary

# The speech demo: the spoken-digit corpus (espeak-ng) and an ASR XP, published to
# reference/demo_asr; its own workflow config keeps `make demo` as it is.
demo-speech: setup espeak
	$(BIN)/snakemake --cores 2 --configfile config/workflow_speech.yaml
	@$(BIN)/python -m audioflow.workflow.summary --configfile config/workflow.yaml --configfile config/workflow_speech.yaml

# espeak-ng speaks the speech demo corpus (and its tests): installed as root, else named.
espeak:
	@command -v espeak-ng >/dev/null || { [ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null; } || { echo "espeak-ng is missing: run 'apt-get install -y espeak-ng' as root" >&2; exit 2; }

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint
	$(BIN)/pytest

test-slow: setup
	$(BIN)/pytest -m slow

test-gpu: setup
	$(BIN)/pytest -m gpu

# Each benchmark prints its ratio against a baseline timed in the same run (benchmarks/README.md).
bench: setup
	for script in benchmarks/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
