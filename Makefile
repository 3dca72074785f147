# Two commands do all set-up: `make demo` runs the demo, `make test` runs the whole test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

# The core with its test tools and AgentDojo (for `fsa-guard eval agentdojo`), the LangChain integration (with langchain-openai) and the OpenAI integration
# (with the Agents SDK), in one resolve so that the integrations' fsa-guard requirement is met by this checkout.
$(STAMP): pyproject.toml integrations/langchain/pyproject.toml integrations/openai/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,agentdojo]' -e 'integrations/langchain[openai]' -e 'integrations/openai[agents]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/fsa-guard demo

test: $(STAMP)
	$(BIN)/ruff check fsa_guard tests bench integrations/langchain integrations/openai
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/decide.py
	$(BIN)/python bench/conversion.py
	$(BIN)/python bench/state.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
