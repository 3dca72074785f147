# Two commands do all set-up: `make demo` runs the demo, `make test` runs the whole test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

# One resolve, so the integrations' fsa-guard requirement is met by this checkout: the core with its test tools,
# AgentDojo (`fsa-guard eval agentdojo`) and the peers `make bench` compares; the LangChain integration (with
# langchain-openai) and the OpenAI integration (with the Agents SDK).
$(STAMP): pyproject.toml integrations/langchain/pyproject.toml integrations/openai/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,agentdojo,bench]' -e 'integrations/langchain[openai]' -e 'integrations/openai[agents]'
	$(BIN)/python -m pip install --quiet --no-deps 'invariant-ai==0.3.5'   # pins openai<2; its LocalPolicy runs on ours
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/fsa-guard demo

test: $(STAMP)
	$(BIN)/ruff check fsa_guard tests bench integrations/langchain integrations/openai
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
