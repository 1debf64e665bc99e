# Two commands for everything: `make run` starts the bot, `make test` runs the whole suite.
# Both create the virtual environment in .venv on first use.
PYTHON ?= python3
# torch is pinned here, not in pyproject: 2.13.0 is the CPU build the CI machine carries.
# On a GPU machine use e.g. `make run TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"`.
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test setup demo-model lint bench bench-workers clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[local,dev]'
	touch $@

setup: $(VENV)/.installed

run: setup
	$(BIN)/python -m bot

test: setup
	$(BIN)/python -m pytest -q

demo-model: setup
	$(BIN)/python -m bot demo-model

lint: setup
	$(BIN)/ruff check .

bench: setup
	$(BIN)/python bench/engine_bench.py
	$(BIN)/python bench/core_bench.py

# GPU workers on Redis (needs redis-server): overhead, throughput with 1/2/4 workers, death to rerun.
bench-workers: setup
	$(BIN)/python bench/workers_bench.py

clean:
	rm -rf $(VENV) .pytest_cache
