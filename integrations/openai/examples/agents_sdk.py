"""A personal assistant on the OpenAI Agents SDK whose every tool call fsa_guard decides, on a real model.

    pip install 'integrations/openai[agents]'
    export OPENAI_API_KEY=sk-...
    .venv/bin/python integrations/openai/examples/agents_sdk.py ["what you ask the assistant"]

``OPENAI_MODEL`` picks the model (default gpt-4o-mini). With ``OPENAI_BASE_URL`` (any OpenAI-compatible
server: Ollama, vLLM, a llama.cpp server; no key needed) the agent talks Chat Completions, which those
servers implement; otherwise it uses the Responses API. The spec and the fake tools are those of
``chat_loop.py``. Escalated calls interrupt the run (the SDK's approval flow) and are asked here, at the
console (piped, without a terminal, they are rejected); the answer goes to the guard, which verifies the
call again, and the run resumes from its ``RunState``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from fsa_guard import Decision, Guard
from fsa_guard.demo import policy_path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # chat_loop.py's request and tools, from any directory
from chat_loop import REQUEST, make_tools

NOT_SET = """\
This example runs an OpenAI Agents SDK agent on a real OpenAI model, so it needs a key. Set it and run again:

    export OPENAI_API_KEY=sk-...
    .venv/bin/python integrations/openai/examples/agents_sdk.py

Optional: OPENAI_MODEL (default gpt-4o-mini), and OPENAI_BASE_URL for any OpenAI-compatible server
(for Ollama: OPENAI_BASE_URL=http://localhost:11434/v1 OPENAI_MODEL=qwen2.5, no key needed).
It needs the Agents SDK: pip install 'integrations/openai[agents]'. For a tour that needs no key, run `make demo`."""


def build_agent(model: Any, guard: Guard) -> tuple[Any, Any]:
    """The agent, its tools guarded, and the AgentGuard that holds their decisions."""
    from agents import Agent
    from fsa_guard_openai.agents import AgentGuard

    ag = AgentGuard(guard, context={"contacts": ["sam@example.org"]}, on_decision=show)  # context: the address book
    tools = [ag.tool(fn) for fn in make_tools().values()]
    instructions = (
        "You are a careful personal assistant. Use the tools to do what the person asks, then say what you did."
    )
    return Agent(name="assistant", instructions=instructions, tools=tools, model=model), ag


def show(decision: Decision) -> None:
    """Print one decision: the call, the outcome and why."""
    call = decision.proposed.to_dict()
    print(f"  {call['tool']}({json.dumps(call['args'], ensure_ascii=False)})\n    -> {decision.explain()}")


def answer(ag: Any, state: Any, item: Any) -> None:
    """Ask at the console about one interrupted call; without a terminal it is rejected."""
    decision = ag.decision(item)
    print(f"\n  The assistant asks you. {decision.explain() if decision else item.tool_name}")
    print(f"  The call: {item.tool_name}({item.arguments})")
    who = os.environ.get("USER", "you")
    if not sys.stdin.isatty():
        print("  (no terminal to ask at: rejected)")
        ag.reject(state, item, by="example", note="no terminal to ask at")
        return
    while True:
        reply = input("  approve / deny / edit {json args}: ").strip()
        if reply == "approve":
            ag.approve(state, item, by=who)
            return
        if reply == "deny":
            ag.reject(state, item, by=who)
            return
        if reply.startswith("edit "):
            try:
                ag.approve(state, item, by=who, args=json.loads(reply[5:]))
                return
            except ValueError as exc:
                print(f"  not JSON: {exc}")


def main(argv: list[str] | None = None, model: Any = None) -> int:
    """Run the assistant once; returns the exit status."""
    request = " ".join(argv or []) or REQUEST
    if model is None and not os.environ.get("OPENAI_API_KEY") and not os.environ.get("OPENAI_BASE_URL"):
        print(NOT_SET)
        return 2
    try:
        from agents import OpenAIChatCompletionsModel, OpenAIResponsesModel, Runner, set_tracing_disabled
    except ImportError:
        print(NOT_SET)
        return 2
    if model is None:
        from openai import AsyncOpenAI

        client = AsyncOpenAI(api_key=os.environ.get("OPENAI_API_KEY") or "not-needed")
        name = os.environ.get("OPENAI_MODEL", "gpt-4o-mini")
        if os.environ.get("OPENAI_BASE_URL"):
            model = OpenAIChatCompletionsModel(name, client)
            set_tracing_disabled(True)  # traces go to OpenAI, which a local server is not
        else:
            model = OpenAIResponsesModel(name, client)
    guard = Guard.from_files(policy_path("personal-assistant.yaml"))
    agent, ag = build_agent(model, guard)
    print(f"You: {request}\n")
    result = Runner.run_sync(agent, request)
    while result.interruptions:
        state = result.to_state()
        for item in result.interruptions:
            answer(ag, state, item)
        result = Runner.run_sync(agent, state)
    print(f"\nAssistant: {result.final_output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
