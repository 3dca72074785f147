"""Chat Completions: decide and run the tool calls of an assistant message, or run the whole guarded loop.

from openai import OpenAI
from fsa_guard_openai import run_tool_loop

result = run_tool_loop(OpenAI(), "gpt-4o-mini", [{"role": "user", "content": "pay the March bill"}],
                       [pay_bill, read_inbox], guard)
result.output_text, result.pending       # the answer, or the calls that wait for a person
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from fsa_guard import Call, Guard

from ._convert import ProposedCall, chat_history, chat_request, field
from ._loop import ToolLoopResult, run_loop, start
from ._run import CallResult, ToolResults, adrive, drive, settle
from ._tools import Toolbox, Tools

__all__ = [
    "aguard_tool_calls",
    "arun_tool_loop",
    "guard_tool_calls",
    "run_tool_loop",
]


class _Chat:
    """The loop's view of the Chat Completions API."""

    name: Literal["chat"] = "chat"
    owned = frozenset({"model", "messages", "tools", "stream"})

    def request(self, loop: ToolLoopResult) -> dict[str, Any]:
        assert loop.toolbox is not None
        return {
            "model": loop.model,
            "messages": list(loop.messages),
            "tools": loop.toolbox.chat_tools(),
            **loop.options,
        }

    def create(self, client: Any) -> Any:
        return client.chat.completions.create

    def absorb(self, messages: list[Any], response: Any) -> list[ProposedCall]:
        message = response.choices[0].message
        messages.append(assistant_message(message))
        return proposed_calls(message)

    def request_text(self, messages: Sequence[Any]) -> str:
        return chat_request(messages)

    def history(self, messages: Sequence[Any]) -> list[Call]:
        return chat_history(messages)

    def entry(self, result: CallResult) -> dict[str, Any]:
        return result.to_message()

    def output_text(self, response: Any) -> str:
        return str(response.choices[0].message.content or "")


CHAT = _Chat()


def assistant_message(message: Any) -> dict[str, Any]:
    """An assistant message of a response as a message to send back (the fields a request accepts)."""
    entry: dict[str, Any] = {"role": "assistant", "content": field(message, "content")}
    if field(message, "refusal"):
        entry["refusal"] = field(message, "refusal")
    tool_calls = []
    for call in field(message, "tool_calls") or ():
        function, custom = field(call, "function"), field(call, "custom")
        if function is not None:
            data = {"name": field(function, "name"), "arguments": field(function, "arguments")}
            tool_calls.append({"id": field(call, "id"), "type": "function", "function": data})
        elif custom is not None:
            data = {"name": field(custom, "name"), "input": field(custom, "input")}
            tool_calls.append({"id": field(call, "id"), "type": "custom", "custom": data})
    if tool_calls:
        entry["tool_calls"] = tool_calls
    return entry


def proposed_calls(message: Any) -> list[ProposedCall]:
    """The tool calls an assistant message proposes (a custom tool's input is taken as its arguments)."""
    calls = []
    for call in field(message, "tool_calls") or ():
        spec = field(call, "function") or field(call, "custom")
        arguments = field(spec, "arguments", None)
        if arguments is None:
            arguments = field(spec, "input", "")
        calls.append(ProposedCall(str(field(call, "id")), str(field(spec, "name", "")), str(arguments or "")))
    return calls


def _message_of(message: Any) -> Any:
    choices = field(message, "choices")
    return field(choices[0], "message") if choices else message


def guard_tool_calls(
    message: Any,
    tools: Tools,
    guard: Guard,
    *,
    messages: Sequence[Any] = (),
    context: Mapping[str, Any] | None = None,
) -> ToolResults:
    """Decide each tool call of an assistant message (a ``ChatCompletionMessage``, its dict, or a whole
    ``ChatCompletion``) in the model's order, run the allowed and revised ones, and return the results.

    ``results.messages`` are the ``tool`` messages to append after the assistant message; calls that wait for
    a person are in ``results.pending`` (answer them with :func:`answer_tool_calls`). ``messages`` is the
    conversation so far: each call carries its latest user message as the request and its earlier calls as
    history. ``context`` goes into every action.
    """
    toolbox = Toolbox.of(tools)
    toolbox.register(guard)
    calls = proposed_calls(_message_of(message))
    steps = settle(calls, toolbox, chat_request(messages), chat_history(messages), context)
    return ToolResults(tuple(drive(steps, guard, toolbox)))


async def aguard_tool_calls(
    message: Any,
    tools: Tools,
    guard: Guard,
    *,
    messages: Sequence[Any] = (),
    context: Mapping[str, Any] | None = None,
) -> ToolResults:
    """:func:`guard_tool_calls`, awaiting the guard and async tools."""
    toolbox = Toolbox.of(tools)
    toolbox.register(guard)
    calls = proposed_calls(_message_of(message))
    steps = settle(calls, toolbox, chat_request(messages), chat_history(messages), context)
    return ToolResults(tuple(await adrive(steps, guard, toolbox)))


def run_tool_loop(
    client: Any,
    model: str,
    messages: Sequence[Any],
    tools: Tools,
    guard: Guard,
    *,
    max_steps: int = 10,
    context: Mapping[str, Any] | None = None,
    **options: Any,
) -> ToolLoopResult:
    """Run a guarded Chat Completions tool loop with a sync client (``openai.OpenAI``).

    Asks the model with ``messages`` and the tools' schemas, settles every tool call it proposes (see
    :func:`guard_tool_calls`), sends the results back, and repeats until the model answers without calling
    tools (``stopped == "done"``), a call waits for a person (``"escalated"``: see ``result.pending`` and
    :func:`resume_tool_loop`), or the model was asked ``max_steps`` times (``"max_steps"``). With an
    in-process approver (``ConsoleApprover``, ``CallbackApprover``) the guard asks the person itself and the
    loop does not pause. Other ``options`` (``temperature``, ``parallel_tool_calls``, ...) go to every
    ``create`` call. ``messages`` is not changed; ``result.messages`` is the whole conversation.
    """
    loop = start(
        CHAT, client, model, list(messages), tools, guard, max_steps=max_steps, context=context, options=options
    )
    assert loop.toolbox is not None
    return drive(run_loop(loop, CHAT), guard, loop.toolbox, lambda kw: client.chat.completions.create(**kw))


async def arun_tool_loop(
    client: Any,
    model: str,
    messages: Sequence[Any],
    tools: Tools,
    guard: Guard,
    *,
    max_steps: int = 10,
    context: Mapping[str, Any] | None = None,
    **options: Any,
) -> ToolLoopResult:
    """:func:`run_tool_loop` with an async client (``openai.AsyncOpenAI``), awaiting the guard and async tools."""
    loop = start(
        CHAT, client, model, list(messages), tools, guard, max_steps=max_steps, context=context, options=options
    )
    assert loop.toolbox is not None
    return await adrive(run_loop(loop, CHAT), guard, loop.toolbox, lambda kw: client.chat.completions.create(**kw))
