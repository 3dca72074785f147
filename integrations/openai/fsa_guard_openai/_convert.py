"""From OpenAI's shapes to what the guard judges: the person's request, the run's earlier calls, and the
args of a proposed call.

A conversation tells the whole run: each assistant message (Chat Completions) or ``function_call`` item
(Responses) proposes calls, and each ``tool`` message or ``function_call_output`` item (matched by call id)
holds what came back. OpenAI's messages have no room for our own notes, so the texts this package writes
for the model say what happened in their first words: a result that starts with :data:`REFUSED` did not
run, and one that starts with :data:`CHANGED` ran with other args, written into the note. The history is
therefore what ``@guard.tool`` would have built: a revised call appears as it ran, and a refused call does
not appear at all. (Were refused calls in the history, a norm such as "only payees paid before" would let
the model through on its second try.) A tool's own output that starts with one of those words (an email, a
web page: text someone else wrote) is written after :data:`RAN` (:func:`as_output`), so no text a tool
returns can hide a call that ran or invent one that did not.

Messages and items may be plain dicts or the SDK's pydantic objects.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fsa_guard import Call

__all__ = [
    "CHANGED",
    "RAN",
    "REFUSED",
    "ProposedCall",
    "as_output",
    "changed_note",
    "chat_history",
    "chat_request",
    "field",
    "parse_arguments",
    "responses_history",
    "responses_request",
    "text_of",
    "with_result",
]

#: The first words of a result for a call that did not run (refused by the guard, a person, or as malformed).
REFUSED = "Refused: "
#: The first words of a result for a call the guard (or a person) changed before it ran.
CHANGED = "Changed before it ran: "
_RESULT = "\nResult: "
#: After :data:`REFUSED`: the refusal of a call that reused the id of an earlier call of its turn.
DUPLICATE_ID = "another call of this turn has the id "
#: Put before a tool's output that starts with one of these words itself, so it is read as that call's output.
RAN = "Ran as proposed." + _RESULT


@dataclass(frozen=True, slots=True)
class ProposedCall:
    """One tool call as the model proposed it: its id, the function's name, and the raw JSON arguments."""

    call_id: str
    name: str
    arguments: str


def field(obj: Any, key: str, default: Any = None) -> Any:
    """``obj[key]`` of a mapping, or ``obj.key`` of an SDK object."""
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_arguments(raw: str | None) -> tuple[dict[str, Any] | None, str | None]:
    """The args of a call as a dict, or ``(None, error)`` when they are not a JSON object.

    Empty arguments mean no args (some servers send ``""`` for a function without parameters); ``NaN`` and
    ``Infinity`` are refused, as JSON has no such values.
    """
    text = raw if isinstance(raw, str) else ""
    if raw is not None and not isinstance(raw, str):
        return None, f"expected a JSON string, got {type(raw).__name__}"
    if not text.strip():
        return {}, None
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        return None, str(exc)
    if not isinstance(value, dict):
        return None, f"expected a JSON object, got {_json_type(value)}"
    return value, None


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def text_of(content: Any) -> str:
    """The text of a message's content: the string itself, or its text parts joined by newlines."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    parts: list[str] = []
    if isinstance(content, Sequence) and not isinstance(content, bytes | bytearray):
        for part in content:
            if isinstance(part, str):
                parts.append(part)
                continue
            text = field(part, "text")
            if isinstance(text, str) and field(part, "type") in ("text", "input_text", "output_text", None):
                parts.append(text)
    return "\n".join(parts)


# -- Chat Completions ----------------------------------------------------------------------------------------


def chat_request(messages: Sequence[Any]) -> str:
    """The person's request: the text of the latest ``user`` message, or ``""`` when there is none."""
    for message in reversed(messages):
        if field(message, "role") == "user":
            return text_of(field(message, "content"))
    return ""


def chat_history(messages: Sequence[Any]) -> list[Call]:
    """The run's earlier calls with what they returned, in the order their results came, oldest first.

    Left out: calls without a result yet (the calls being decided), and calls that did not run.
    """
    proposed: dict[str, deque[tuple[str, str]]] = {}  # per id, oldest first: providers may reuse ids
    history: list[Call] = []
    for message in messages:
        role = field(message, "role")
        if role == "assistant":
            for tool_call in field(message, "tool_calls") or ():
                function = field(tool_call, "function")
                if function is not None:
                    name, arguments = field(function, "name", ""), field(function, "arguments", "")
                    proposed.setdefault(str(field(tool_call, "id")), deque()).append((str(name), str(arguments or "")))
        elif role == "tool":
            waiting = proposed.get(str(field(message, "tool_call_id")))
            if waiting:
                text = text_of(field(message, "content"))
                call = _ran(*_answered(waiting, text), text)
                if call is not None:
                    history.append(call)
    return history


# -- Responses -----------------------------------------------------------------------------------------------


def responses_request(input: str | Sequence[Any]) -> str:
    """The person's request: ``input`` when it is text, else the text of its latest ``user`` message."""
    if isinstance(input, str):
        return input
    for item in reversed(input):
        if field(item, "role") == "user" and field(item, "type", "message") in ("message", None):
            return text_of(field(item, "content"))
    return ""


def responses_history(input: str | Sequence[Any]) -> list[Call]:
    """The run's earlier calls (``function_call`` items answered by a ``function_call_output``), oldest first.

    Left out: calls without an output yet, and calls that did not run.
    """
    if isinstance(input, str):
        return []
    proposed: dict[str, deque[tuple[str, str]]] = {}  # per id, oldest first: providers may reuse ids
    history: list[Call] = []
    for item in input:
        kind = field(item, "type")
        if kind == "function_call":
            call = (str(field(item, "name", "")), str(field(item, "arguments") or ""))
            proposed.setdefault(str(field(item, "call_id")), deque()).append(call)
        elif kind == "function_call_output":
            waiting = proposed.get(str(field(item, "call_id")))
            if waiting:
                text = text_of(field(item, "output"))
                ran = _ran(*_answered(waiting, text), text)
                if ran is not None:
                    history.append(ran)
    return history


# -- results -------------------------------------------------------------------------------------------------


def changed_note(tool: str, args: Mapping[str, Any], explanation: str) -> str:
    """The first line of a result for a changed call: which call ran instead, and why."""
    return f"{CHANGED}{tool} with {json.dumps(args, default=str, ensure_ascii=False)}. {explanation}"


def with_result(note: str, output: str) -> str:
    """A note and the tool's output, in the form :func:`chat_history` reads back."""
    return f"{note}{_RESULT}{output}"


def as_output(text: str) -> str:
    """A tool's output as the model reads it: as it is, or after :data:`RAN` when it starts like a note of
    ours (or like :data:`RAN` itself), so :func:`chat_history` reads it back as the output of the call."""
    return RAN + text if text.startswith((REFUSED, CHANGED, RAN)) else text


def _answered(waiting: deque[tuple[str, str]], result: str) -> tuple[str, str]:
    """The call a result answers among those waiting under its id: the oldest, except for the refusal of a
    reused id, which the loop writes at once for the latest call (the earlier one may still wait for a person)."""
    return waiting.pop() if result.startswith(REFUSED + DUPLICATE_ID) else waiting.popleft()


def _ran(name: str, arguments: str, result: str) -> Call | None:
    """The call that ran, read from its proposal and its result text; None when it did not run."""
    if result.startswith(RAN):
        args, _ = parse_arguments(arguments)
        return Call(name, args or {}, result[len(RAN) :])
    if result.startswith(REFUSED):
        return None
    if result.startswith(CHANGED):
        rest = result[len(CHANGED) :]
        tool, sep, after = rest.partition(" with ")
        if sep:
            try:
                args, end = json.JSONDecoder().raw_decode(after)
            except ValueError:
                args, end = None, 0
            if isinstance(args, dict):
                _, found, output = after[end:].partition(_RESULT)
                return Call(tool, args, output if found else "")
    args, _ = parse_arguments(arguments)
    return Call(name, args or {}, result)
