# Two commands do all set-up: `make demo` runs the demo, `make test` runs the whole test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/fsa-guard demo

test: $(STAMP)
	$(BIN)/ruff check fsa_guard tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/decide.py
	$(BIN)/python bench/conversion.py
	$(BIN)/python bench/state.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
