# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.vibeml-installed
TSTAMP := $(VENV)/.vibeml-test-installed

export HF_HUB_OFFLINE ?= 1
export HF_HUB_DISABLE_TELEMETRY = 1
export TOKENIZERS_PARALLELISM = false

.PHONY: install demo test test-fast lint bench clean

PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check

# What `make demo` needs: VibeML with the training extra (torch first, so the CPU build is taken).
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) 'torch==2.13.0'
	$(PIP) -e '.[train]'
	@touch $@

# What `make test` needs on top: the test tools and SkyPilot (see requirements/sky-runtime.txt).
$(TSTAMP): $(STAMP) requirements/sky-runtime.txt
	$(PIP) -e '.[train,dev]'
	$(PIP) -r requirements/sky-runtime.txt
	$(PIP) --no-deps 'skypilot==0.14.1'
	@touch $@

install: $(STAMP)

## A real local fine-tune of the bundled tiny model, with a progress bar and the loss falling.
demo: $(STAMP)
	$(BIN)/vibeml launch --demo --follow

## The whole test suite (slow tests included; well under 10 minutes on 2 cores).
test: $(TSTAMP)
	$(BIN)/python -m pytest -q

test-fast: $(TSTAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(TSTAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

bench: $(TSTAMP)
	$(BIN)/python bench/cli_startup.py
	$(BIN)/python bench/demo.py
	$(BIN)/python bench/estimate_speed.py
	$(BIN)/python bench/calibration.py
	$(BIN)/python bench/mcp_startup.py
	$(BIN)/python bench/vast_rank.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
