"""What ``FSAGuardMiddleware`` adds to a step of a LangChain ``create_agent`` agent, with a mocked model.

    .venv/bin/python -m bench --only middleware

One step: the person asks, the model proposes one tool call (an internal ``send_email`` the reference spec
allows), the tool runs, the model answers. Two models, each answering at once:

- ``ChatOpenAI`` (langchain-openai) with its HTTP mocked at the transport (``httpx.MockTransport`` answering
  with OpenAI's exact chat-completion JSON), as this project mocks a model everywhere else: the client builds
  the request and parses the response, and no time goes to the network. The target is stated on this step.
- a scripted ``BaseChatModel`` (no client, no HTTP): the step is all framework, the worst case for a guard's
  share.

On ``ChatOpenAI``: ``plain``, ``no-op hooks`` and ``FSAGuardMiddleware`` (below). On the scripted model, every
variant, timed per ``agent.invoke`` in interleaved rounds:

- ``plain``: the agent without middleware;
- ``no-op hooks``: a middleware whose ``wrap_tool_call`` only calls on, i.e. what LangChain itself charges for
  the hook FSAGuardMiddleware registers;
- ``FSAGuardMiddleware``: the guard on the reference layered spec (memory store, no audit trail);
- ``FSAGuardMiddleware, inject_values``: the same with ``inject_values=True``, which also wraps every model call
  (without it, the middleware has no model hooks and LangChain does not wrap the model);
- ``FSAGuardMiddleware, decision stubbed``: the middleware around a guard whose ``decide`` returns at once the
  decision the real one reaches: the middleware's own code (building the Action from the messages,
  reporting, annotating the ToolMessage) without the decision.

LangSmith tracing is turned off for the run.
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import time
from typing import Any

from bench._common import ROOT, interleaved, measure, paired_difference, stats

REQUEST = "Tell the controller that INV-1042 is paid"
ARGS = {"to": "controller@example.com", "subject": "INV-1042", "body": "Paid today."}


def _completion(message: dict[str, Any], finish: str) -> dict[str, Any]:
    """A chat completion exactly as OpenAI returns it (one choice, usage with its details)."""
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1_767_225_600,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_bench",
        "service_tier": "default",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": 61,
            "completion_tokens": 24,
            "total_tokens": 85,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
    }


def openai_model() -> Any | None:
    """``ChatOpenAI`` over a transport that answers like OpenAI at once: the send_email call, then, once the
    tool's result is in the request, the final answer. None without langchain-openai."""
    try:
        import httpx
        from langchain_openai import ChatOpenAI
    except ImportError:
        return None
    ids = itertools.count()

    def answer(request: httpx.Request) -> httpx.Response:
        last = json.loads(request.content)["messages"][-1]
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None, "annotations": []}
        if last["role"] == "tool":
            message["content"] = "Done: the controller knows."
            return httpx.Response(200, json=_completion(message, "stop"))
        call = {"id": f"call_{next(ids)}", "type": "function"}
        message["tool_calls"] = [{**call, "function": {"name": "send_email", "arguments": json.dumps(ARGS)}}]
        return httpx.Response(200, json=_completion(message, "tool_calls"))

    client = httpx.Client(transport=httpx.MockTransport(answer))
    return ChatOpenAI(model="gpt-4o-mini", api_key="sk-bench", http_client=client, max_retries=0)


def _missing() -> str | None:
    try:
        import fsa_guard_langchain  # noqa: F401
        import langchain.agents  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed"
    return None


def build() -> dict[str, Any]:
    """The agents to compare, the guard, and the input of one step."""
    from fsa_guard_langchain import FSAGuardMiddleware
    from langchain.agents import create_agent
    from langchain.agents.middleware import AgentMiddleware
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
    from langchain_core.outputs import ChatGeneration, ChatResult
    from langchain_core.tools import tool

    from fsa_guard import Action, Guard

    ids = itertools.count()

    class ScriptedModel(BaseChatModel):
        """Proposes the send_email call, then, once it has the tool's result, answers."""

        @property
        def _llm_type(self) -> str:
            return "scripted"

        def _generate(
            self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
        ) -> ChatResult:
            if isinstance(messages[-1], ToolMessage):
                message = AIMessage(content="Done: the controller knows.")
            else:
                call = {"id": f"call_{next(ids)}", "name": "send_email", "args": dict(ARGS), "type": "tool_call"}
                message = AIMessage(content="", tool_calls=[call])
            return ChatResult(generations=[ChatGeneration(message=message)])

        def bind_tools(self, tools: Any, **kw: Any) -> Any:
            return self

    @tool
    def send_email(to: str, subject: str, body: str) -> str:
        """Send an email."""
        return f"sent to {to}"

    class NoOpHooks(AgentMiddleware):
        def wrap_tool_call(self, request: Any, handler: Any) -> Any:
            return handler(request)

        async def awrap_tool_call(self, request: Any, handler: Any) -> Any:
            return await handler(request)

    guard = Guard.from_files(ROOT / "policies/examples/alice.yaml", store="memory://", audit=False)
    # the same middleware around a guard that answers at once with the decision it would reach: what the
    # middleware's own code and LangChain cost, without the decision
    canned = guard.decide(Action("send_email", ARGS, request=REQUEST))
    stub = Guard(guard.spec, store="memory://", audit=False)
    stub.decide = lambda action, **kw: canned  # type: ignore[method-assign]
    agents = {
        "plain": create_agent(ScriptedModel(), [send_email]),
        "no-op hooks": create_agent(ScriptedModel(), [send_email], middleware=[NoOpHooks()]),
        "FSAGuardMiddleware": create_agent(ScriptedModel(), [send_email], middleware=[FSAGuardMiddleware(guard)]),
        "FSAGuardMiddleware, inject_values": create_agent(
            ScriptedModel(), [send_email], middleware=[FSAGuardMiddleware(guard, inject_values=True)]
        ),
        "FSAGuardMiddleware, decision stubbed": create_agent(
            ScriptedModel(), [send_email], middleware=[FSAGuardMiddleware(stub)]
        ),
    }
    openai_agents = {}
    if openai_model() is not None:
        openai_agents = {
            "plain": create_agent(openai_model(), [send_email]),
            "no-op hooks": create_agent(openai_model(), [send_email], middleware=[NoOpHooks()]),
            "FSAGuardMiddleware": create_agent(openai_model(), [send_email], middleware=[FSAGuardMiddleware(guard)]),
        }
    return {
        "agents": agents,
        "openai_agents": openai_agents,
        "guard": guard,
        "input": {"messages": [HumanMessage(REQUEST)]},
    }


ASYNC_VARIANTS = ("plain", "no-op hooks", "FSAGuardMiddleware")


def _async_steps(agents: dict[str, Any], step_input: Any, reps: int, rounds: int) -> dict[str, Any]:
    """The same step under ``ainvoke``, the variants taking turns every 5 steps in one event loop."""
    import asyncio

    samples: dict[str, list[int]] = {name: [] for name in ASYNC_VARIANTS}
    round_p50: dict[str, list[float]] = {name: [] for name in ASYNC_VARIANTS}

    async def go() -> None:
        for name in ASYNC_VARIANTS:  # warm up
            for _ in range(5):
                await agents[name].ainvoke(step_input)
        clock = time.perf_counter_ns
        for _ in range(rounds):
            this_round: dict[str, list[int]] = {name: [] for name in ASYNC_VARIANTS}
            for chunk in range(max(1, reps // 5)):
                order = ASYNC_VARIANTS[chunk % 3 :] + ASYNC_VARIANTS[: chunk % 3]
                for name in order:
                    for _ in range(5):
                        t0 = clock()
                        await agents[name].ainvoke(step_input)
                        this_round[name].append(clock() - t0)
            for name, got in this_round.items():
                samples[name] += got
                round_p50[name].append(statistics.median(got) / 1000)

    asyncio.run(go())
    steps = {name: {**stats(samples[name]), "round_p50_us": round_p50[name]} for name in ASYNC_VARIANTS}
    plain = steps["plain"]
    return {
        "steps": steps,
        "overhead": {
            name: {"paired_us": (d := paired_difference(s, plain)), "paired_pct": 100 * d / plain["p50_us"]}
            for name, s in steps.items()
            if name != "plain"
        },
    }


def run(reps: int = 100, rounds: int = 5) -> dict[str, Any]:
    missing = _missing()
    if missing:
        return {"skipped": missing}
    os.environ["LANGSMITH_TRACING"] = "false"
    os.environ["LANGCHAIN_TRACING_V2"] = "false"
    from fsa_guard import Action

    built = build()
    agents, guard, step_input = built["agents"], built["guard"], built["input"]
    openai_agents = built["openai_agents"]
    checked = [*agents.items(), *((f"ChatOpenAI, {name}", a) for name, a in openai_agents.items())]
    for name, agent in checked:  # the step must really run the tool, guarded or not
        out = agent.invoke(step_input)["messages"]
        kinds = [type(m).__name__ for m in out]
        if kinds != ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"] or "sent to" not in out[2].content:
            raise RuntimeError(f"{name}: unexpected step {kinds}: {out[2].content!r}")
    steps = interleaved(
        {name: (lambda i, a=a: a.invoke(step_input)) for name, a in agents.items()}, reps, rounds, chunk=5
    )
    openai_steps = (
        interleaved(
            {name: (lambda i, a=a: a.invoke(step_input)) for name, a in openai_agents.items()}, reps, rounds, chunk=5
        )
        if openai_agents
        else {}
    )

    # the guard's own decision for that call: in a hot loop, and inside the agent (timed through a shim)
    action = Action("send_email", ARGS, request=REQUEST)
    hot = measure(lambda: guard.decide(action), max(200, reps * rounds))
    inside: list[int] = []
    decide = guard.decide

    def timed(a: Any, **kw: Any) -> Any:
        t0 = time.perf_counter_ns()
        d = decide(a, **kw)
        inside.append(time.perf_counter_ns() - t0)
        return d

    guard.decide = timed
    try:
        for _ in range(max(50, reps)):
            agents["FSAGuardMiddleware"].invoke(step_input)
    finally:
        del guard.decide
    plain = steps["plain"]
    overhead = {}
    for name, s in steps.items():
        if name != "plain":
            paired = paired_difference(s, plain)
            overhead[name] = {
                "us": s["p50_us"] - plain["p50_us"],
                "pct": 100 * (s["p50_us"] - plain["p50_us"]) / plain["p50_us"],
                "paired_us": paired,
                "paired_pct": 100 * paired / plain["p50_us"],
            }
    fsa, stubbed, noop = (
        steps["FSAGuardMiddleware"],
        steps["FSAGuardMiddleware, decision stubbed"],
        steps["no-op hooks"],
    )
    breakdown = {  # where FSAGuardMiddleware's overhead comes from, each a median of per-round differences
        "langchain_hooks_us": paired_difference(noop, plain),
        "middleware_code_us": paired_difference(stubbed, noop),
        "decision_us": paired_difference(fsa, stubbed),
        "model_hook_us": paired_difference(steps["FSAGuardMiddleware, inject_values"], fsa),
    }
    openai = None
    if openai_steps:
        base = openai_steps["plain"]
        openai = {
            "steps": openai_steps,
            "overhead": {
                name: {"paired_us": (d := paired_difference(s, base)), "paired_pct": 100 * d / base["p50_us"]}
                for name, s in openai_steps.items()
                if name != "plain"
            },
        }
    return {
        "steps": steps,
        "overhead": overhead,
        "openai": openai,
        "breakdown": breakdown,
        "async": _async_steps(agents, step_input, max(20, reps // 2), rounds),
        "decide_hot_loop": hot,
        "decide_inside_agent": stats(inside),
        "reps": reps * rounds,
        "rounds": rounds,
    }
