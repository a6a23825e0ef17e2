# lrtrain: `make` lists the targets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  := torch==2.13.0   # the CPU wheel; a plain `torch` pulls a multi-GB CUDA build

.DEFAULT_GOAL := help
.PHONY: help venv bytecode run test quick lint fmt bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/lrtrain: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

venv: $(BIN)/lrtrain ## create .venv and install lrtrain with its dev tools

# An editable install compiles nothing, and where PYTHONDONTWRITEBYTECODE is set every command would
# compile lrtrain's modules again (0.06 s of each start): compiled here as `pip install` does (only what changed).
bytecode: venv
	@$(BIN)/python -m compileall -q src/lrtrain

run: bytecode ## train the default config (the cheat sheet's data)
	$(BIN)/lrtrain fit

test: bytecode ## run lint, type checks, the import layers and the tests
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

quick: lint bytecode ## lint and the tests not marked slow (seconds, not minutes)
	$(BIN)/python -m pytest -m "not slow"

lint: venv ## ruff, mypy and the import layers only
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: venv ## format and auto-fix the code
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

bench: bytecode ## benchmarks against peers and limits (minutes; writes benchmarks/results/)
	$(BIN)/python benchmarks/bench.py

clean: ## remove the virtual environment, caches and runs
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache src/*.egg-info
