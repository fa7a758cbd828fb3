# Two commands do all set-up on a fresh machine: `make demo` and `make test`. Both install only from the lock.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
LOCK   := src/vibeml/locks/main.txt
LOCKS  := $(LOCK) src/vibeml/locks/unsloth.txt
STAMP  := $(VENV)/.vibeml-demo-installed
TSTAMP := $(VENV)/.vibeml-test-installed

export HF_HUB_OFFLINE ?= 1
export HF_HUB_DISABLE_TELEMETRY = 1
export TOKENIZERS_PARALLELISM = false

.PHONY: install demo test test-fast test-compat lint lock lock-check bench bench-install clean

# What `make demo` needs: VibeML with the training extra. A changed lock or pyproject.toml starts the
# environment afresh, so nothing the lock no longer names stays behind.
$(STAMP): pyproject.toml $(LOCK) requirements/sky-runtime.in tools/venv.sh
	rm -rf $(VENV)
	tools/venv.sh $(VENV) $(PYTHON) demo
	@touch $@

# What `make test` needs on top: the test tools, bitsandbytes (QLoRA trains on CPU in the tests), SkyPilot.
$(TSTAMP): $(STAMP)
	tools/venv.sh $(VENV) $(PYTHON) test
	@touch $@

install: $(STAMP)

## A real local fine-tune of the bundled tiny model, with a progress bar and the loss falling.
demo: $(STAMP)
	$(BIN)/vibeml launch --demo --follow

## What CI runs: the linters, the type checker, then the whole test suite (slow tests included).
test: $(TSTAMP)
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

test-fast: $(TSTAMP)
	$(BIN)/python -m pytest -q -m "not slow"

## The tests that need no torch, on every Python 3.10-3.13 this machine has (absent ones are skipped).
test-compat:
	tools/compat.sh

lint: $(TSTAMP)
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools
	$(BIN)/mypy

## Re-resolve the lock within pyproject.toml's ranges (newest versions), for every Python from 3.10.
## Then `make test` installs and tests exactly that.
## (It needs no working environment: uv comes from .venv, or PATH, or is installed into .venv first.)
lock:
	@test -x $(BIN)/uv || command -v uv >/dev/null || { test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); \
	  $(BIN)/python -m pip install --quiet --disable-pip-version-check uv; }
	$(PYTHON) tools/lock.py --uv $$(test -x $(BIN)/uv && echo $(BIN)/uv || command -v uv)

## Fail if the committed locks are not what uv resolves from pyproject.toml now (without upgrading anything).
lock-check: $(TSTAMP)
	$(PYTHON) tools/lock.py --check --uv $(BIN)/uv

bench: $(TSTAMP)
	$(BIN)/python bench/cli_startup.py
	$(BIN)/python bench/demo.py
	$(BIN)/python bench/estimate_speed.py
	$(BIN)/python bench/calibration.py
	$(BIN)/python bench/mcp_startup.py
	$(BIN)/python bench/vast_rank.py

## `make demo` on a fresh clone, install included (writes bench/results/fresh_demo.txt).
bench-install:
	$(PYTHON) bench/fresh_demo.py

clean:
	rm -rf $(VENV) .venv-compat build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
