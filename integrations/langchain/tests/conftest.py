"""Fixtures for the LangChain integration's tests: a guard over a small spec with an in-memory audit trail,
an agent with tools that record what they receive, and a ``run`` that invokes it synchronously or
asynchronously. Shared data and helpers are in ``lc_fakes``."""

from __future__ import annotations

import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from fsa_guard_langchain import FSAGuardMiddleware
from langchain.agents import create_agent
from langchain_core.tools import BaseTool
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.memory import InMemorySaver
from lc_fakes import SPEC, THREAD, Ledger

from fsa_guard import Guard, load_spec
from fsa_guard.testing import RecordingAuditSink


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


@pytest.fixture
def make_guard(tmp_path: Path) -> Callable[..., Guard]:
    """A guard over SPEC (or the given spec text) with a RecordingAuditSink as ``guard.audit``."""
    counter = iter(range(1000))

    def make(spec: str = SPEC, **options: Any) -> Guard:
        path = tmp_path / f"spec-{next(counter)}.yaml"
        path.write_text(textwrap.dedent(spec).lstrip("\n"), encoding="utf-8")
        options.setdefault("audit", RecordingAuditSink())
        return Guard(load_spec(path), **options)

    return make


@pytest.fixture
def make_agent(ledger: Ledger) -> Callable[..., Any]:
    """``create_agent(ChatOpenAI(...), ledger tools, middleware=[FSAGuardMiddleware(guard)], checkpointer)``."""

    def make(guard: Guard, tools: list[BaseTool] | None = None, **options: Any) -> Any:
        agent_options = {k: options.pop(k) for k in ("system_prompt", "context_schema") if k in options}
        agent_options.setdefault("checkpointer", options.pop("checkpointer", None) or InMemorySaver())
        return create_agent(
            ChatOpenAI(model="gpt-4o-mini", api_key="sk-test", max_retries=0),
            tools=tools if tools is not None else ledger.tools(),
            middleware=[FSAGuardMiddleware(guard, **options)],
            **agent_options,
        )

    return make


Run = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture(params=["sync", "async"])
def run(request: pytest.FixtureRequest) -> Run:
    """Invoke an agent with ``invoke`` or ``ainvoke`` (the middleware's sync and async paths)."""

    async def invoke(agent: Any, value: Any, config: dict[str, Any] = THREAD, **kwargs: Any) -> dict[str, Any]:
        if request.param == "sync":
            result: dict[str, Any] = agent.invoke(value, config, **kwargs)
        else:
            result = await agent.ainvoke(value, config, **kwargs)
        return result

    return invoke
