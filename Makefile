# audioflow: `make demo` sets up and runs the main job, `make test` sets up and runs the tests.
# Both create or reuse .venv; nothing needs installing by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed-stamp
export PATH := $(BIN):$(PATH)
# One thread per process keeps 2-core machines responsive when several jobs run at once.
export OMP_NUM_THREADS ?= 1

.PHONY: setup system-packages demo demo-speech test test-slow test-gpu lint format bench clean

# Commands the tests run for real (a Prometheus server, promtool, a Pushgateway, espeak-ng
# for the spoken corpus, Opus as the codec's baseline), as command:debian-package;
# `make test` installs the missing ones when run as root.
TEST_COMMANDS := prometheus:prometheus promtool:prometheus prometheus-pushgateway:prometheus-pushgateway espeak-ng:espeak-ng \
  opusenc:opus-tools opusdec:opus-tools

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

system-packages:
	@need=$$(for pair in $(TEST_COMMANDS); do \
	  command -v "$${pair%%:*}" >/dev/null || echo "$${pair#*:}"; done | sort -u | paste -sd ' '); \
	if [ -z "$$need" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends $$need >/dev/null; \
	else \
	  echo "missing system packages: $$need (as root: apt-get install $$need); their tests are skipped" >&2; \
	fi

demo: setup system-packages
	$(BIN)/snakemake --cores 2
	@$(BIN)/python -m audioflow.workflow.summary

# The speech demo: the spoken-digit corpus (espeak-ng) and an ASR XP published to
# reference/demo_asr; its own workflow config, so `make demo` stays as it is.
demo-speech: setup system-packages
	@command -v espeak-ng >/dev/null || { echo "demo-speech needs espeak-ng: apt-get install -y espeak-ng (as root)" >&2; exit 2; }
	$(BIN)/snakemake --cores 2 --configfile config/workflow_speech.yaml
	@$(BIN)/python -m audioflow.workflow.summary --configfile config/workflow.yaml --configfile config/workflow_speech.yaml

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: system-packages lint
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
