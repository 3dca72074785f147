"""Responses API: decide and run the ``function_call`` items of a response, or run the whole guarded loop.

    from openai import OpenAI
    from fsa_guard_openai import run_response_loop

    result = run_response_loop(OpenAI(), "gpt-4o-mini", "pay the March bill", [pay_bill, read_inbox], guard)
    result.output_text, result.pending

The loop sends the full input list each time (the person's input, every output item of the model, and
every ``function_call_output``), not ``previous_response_id``: the conversation then lives in one place,
the guard reads the request and the history from it, a paused loop carries all it needs, and it works with
``store=False``. Reasoning models used with ``store=False`` need ``include=["reasoning.encrypted_content"]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from fsa_guard import Call, Guard

from ._convert import ProposedCall, field, responses_history, responses_request
from ._loop import ToolLoopResult, run_loop, start
from ._run import CallResult, ToolResults, adrive, drive, settle
from ._tools import Toolbox, Tools

__all__ = ["aguard_function_calls", "arun_response_loop", "guard_function_calls", "run_response_loop"]


class _Responses:
    """The loop's view of the Responses API."""

    name: Literal["responses"] = "responses"
    owned = frozenset({"model", "input", "tools", "stream", "previous_response_id", "conversation"})

    def request(self, loop: ToolLoopResult) -> dict[str, Any]:
        assert loop.toolbox is not None
        return {
            "model": loop.model,
            "input": list(loop.messages),
            "tools": loop.toolbox.response_tools(),
            **loop.options,
        }

    def create(self, client: Any) -> Any:
        return client.responses.create

    def absorb(self, messages: list[Any], response: Any) -> list[ProposedCall]:
        for item in response.output:
            messages.append(input_item(item))
        return function_calls(response)

    def request_text(self, messages: Sequence[Any]) -> str:
        return responses_request(messages)

    def history(self, messages: Sequence[Any]) -> list[Call]:
        return responses_history(messages)

    def entry(self, result: CallResult) -> dict[str, Any]:
        return result.to_item()

    def output_text(self, response: Any) -> str:
        return str(response.output_text)


RESPONSES = _Responses()


def input_item(item: Any) -> Any:
    """An output item as an input item for the next request: the fields the API sent, under their API names."""
    to_dict = getattr(item, "to_dict", None)
    return to_dict() if callable(to_dict) else item


def function_calls(response: Any) -> list[ProposedCall]:
    """The ``function_call`` items of a response (a ``Response``, its output list, or a list of items)."""
    output = field(response, "output", None)
    items = output if output is not None else response
    calls = []
    for item in items or ():
        if field(item, "type") == "function_call":
            calls.append(
                ProposedCall(
                    str(field(item, "call_id")), str(field(item, "name", "")), str(field(item, "arguments") or "")
                )
            )
    return calls


def guard_function_calls(
    response: Any,
    tools: Tools,
    guard: Guard,
    *,
    input: str | Sequence[Any] = (),
    context: Mapping[str, Any] | None = None,
) -> ToolResults:
    """Decide each ``function_call`` item of ``response`` (a ``Response`` or a list of output items) in order,
    run the allowed and revised ones, and return the results: ``results.items`` are the
    ``function_call_output`` items to append; calls that wait for a person are in ``results.pending``.
    ``input`` is the conversation so far (the text or the input items), for the request and the history."""
    toolbox = Toolbox.of(tools)
    toolbox.register(guard)
    steps = settle(function_calls(response), toolbox, responses_request(input), responses_history(input), context)
    return ToolResults(tuple(drive(steps, guard, toolbox)))


async def aguard_function_calls(
    response: Any,
    tools: Tools,
    guard: Guard,
    *,
    input: str | Sequence[Any] = (),
    context: Mapping[str, Any] | None = None,
) -> ToolResults:
    """:func:`guard_function_calls`, awaiting the guard and async tools."""
    toolbox = Toolbox.of(tools)
    toolbox.register(guard)
    steps = settle(function_calls(response), toolbox, responses_request(input), responses_history(input), context)
    return ToolResults(tuple(await adrive(steps, guard, toolbox)))


def _input_list(input: str | Sequence[Any]) -> list[Any]:
    return [{"role": "user", "content": input}] if isinstance(input, str) else list(input)


def run_response_loop(
    client: Any,
    model: str,
    input: str | Sequence[Any],
    tools: Tools,
    guard: Guard,
    *,
    max_steps: int = 10,
    context: Mapping[str, Any] | None = None,
    **options: Any,
) -> ToolLoopResult:
    """Run a guarded Responses tool loop with a sync client (``openai.OpenAI``): as
    :func:`~fsa_guard_openai.run_tool_loop`, with ``input`` (text, or input items) in place of messages.
    ``result.messages`` is the whole input list. ``instructions``, ``store``, ``reasoning`` and other
    ``options`` go to every ``create`` call; ``previous_response_id`` and ``conversation`` are refused."""
    loop = start(
        RESPONSES,
        client,
        model,
        _input_list(input),
        tools,
        guard,
        max_steps=max_steps,
        context=context,
        options=options,
    )
    assert loop.toolbox is not None
    return drive(run_loop(loop, RESPONSES), guard, loop.toolbox, lambda kw: client.responses.create(**kw))


async def arun_response_loop(
    client: Any,
    model: str,
    input: str | Sequence[Any],
    tools: Tools,
    guard: Guard,
    *,
    max_steps: int = 10,
    context: Mapping[str, Any] | None = None,
    **options: Any,
) -> ToolLoopResult:
    """:func:`run_response_loop` with an async client (``openai.AsyncOpenAI``)."""
    loop = start(
        RESPONSES,
        client,
        model,
        _input_list(input),
        tools,
        guard,
        max_steps=max_steps,
        context=context,
        options=options,
    )
    assert loop.toolbox is not None
    return await adrive(run_loop(loop, RESPONSES), guard, loop.toolbox, lambda kw: client.responses.create(**kw))
