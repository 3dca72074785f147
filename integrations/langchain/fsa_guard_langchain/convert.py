"""From LangChain's agent state to what the guard judges: the person's request and the run's earlier calls.

The state's messages tell the whole run: each ``AIMessage`` lists the calls the model proposed, and each
``ToolMessage`` (matched by ``tool_call_id``) holds what came back. The middleware notes on each
``ToolMessage`` it returns (``response_metadata["fsa_guard"]``) whether the call ran and which call ran, so
the history is what ``@guard.tool`` would have built: a revised or edited call appears as it ran, and a call
the guard did not let run does not appear at all. (Were refused calls in the history, a norm such as "only
payees paid before", ``seen(history, ...)``, would let the model through on its second try.)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from fsa_guard import Answer, Call, Decision

__all__ = [
    "METADATA_KEY",
    "answer_from_resume",
    "history_from_messages",
    "is_resume",
    "messages_of",
    "read_messages",
    "refusal_text",
    "request_from_messages",
    "revision_note",
    "text_of",
    "waiting_text",
    "with_revision_note",
]

#: The ``ToolMessage.response_metadata`` key under which the middleware notes its decision and the call that ran.
METADATA_KEY = "fsa_guard"


def messages_of(state: Any) -> Sequence[BaseMessage]:
    """The messages of an agent state (a mapping, an object with ``messages``, or a list of messages)."""
    if type(state) is dict or isinstance(state, Mapping):
        messages = state.get("messages", ())
    elif isinstance(state, list | tuple):
        messages = state
    else:
        messages = getattr(state, "messages", ())
    return [m for m in messages or () if _kind(type(m)) is not _OTHER]


_HUMAN, _AI, _TOOL, _MESSAGE, _OTHER = range(5)
_KINDS: dict[type, int] = {}


def _kind(t: type) -> int:
    """What a message of type ``t`` is, found once per type: message classes are pydantic models, whose
    ``isinstance`` goes through ``ABCMeta`` every time, and every call of every run reads every message."""
    kind = _KINDS.get(t)
    if kind is None:
        kind = (
            _HUMAN
            if issubclass(t, HumanMessage)
            else _AI
            if issubclass(t, AIMessage)
            else _TOOL
            if issubclass(t, ToolMessage)
            else _MESSAGE
            if issubclass(t, BaseMessage)
            else _OTHER
        )
        if len(_KINDS) < 256:  # a few message classes, unless someone makes classes on the fly
            _KINDS[t] = kind
    return kind


def text_of(message: BaseMessage) -> str:
    """A message's text: its content when that is text, otherwise its text parts joined."""
    content = message.content
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, Mapping) and block.get("type") == "text" and isinstance(block.get("text"), str):
            parts.append(block["text"])
    return "\n".join(parts)


def request_from_messages(messages: Sequence[BaseMessage]) -> str:
    """The person's request: the text of the latest human message, or ``""`` when there is none."""
    for message in reversed(messages):
        if _kind(type(message)) is _HUMAN:
            return text_of(message)
    return ""


def history_from_messages(messages: Sequence[BaseMessage], exclude: str | None = None) -> list[Call]:
    """The run's earlier tool calls with their results, oldest first.

    Each result answers the oldest unanswered call with its id, in message order: providers may reuse ids
    across turns (``call_0`` every turn) and even within one. Left out: calls without a result yet (the
    current call, its siblings in the same model turn), calls the guard did not let run, and the latest call
    whose id is ``exclude`` (the call being decided).
    """
    return read_messages(messages, exclude)[1]


def read_messages(messages: Sequence[BaseMessage], call_id: str | None = None) -> tuple[str, list[Call], str]:
    """In one pass over the run: the person's request (see :func:`request_from_messages`), the history
    before the call ``call_id`` (see :func:`history_from_messages`), and the model turn that made that call
    (the id of the latest AI message proposing it, or ``#`` and its place; ``""`` when none does)."""
    calls: list[Mapping[str, Any]] = []
    waiting: dict[str, deque[int]] = {}
    results: dict[int, ToolMessage] = {}
    human: BaseMessage | None = None
    turn, latest = "", -1
    for i, message in enumerate(messages):
        kind = _kind(type(message))
        if kind is _AI:
            for proposed in message.tool_calls:  # type: ignore[attr-defined]
                pid = proposed.get("id")
                if pid is not None:
                    if call_id is not None and pid == call_id:
                        turn, latest = str(message.id or f"#{i}"), len(calls)
                    waiting.setdefault(str(pid), deque()).append(len(calls))
                    calls.append(proposed)
        elif kind is _TOOL:
            queue = waiting.get(message.tool_call_id)  # type: ignore[attr-defined]
            if queue:
                results[queue.popleft()] = message  # type: ignore[assignment]
        elif kind is _HUMAN:
            human = message
    results.pop(latest, None)
    history: list[Call] = []
    for i, call in enumerate(calls):
        result = results.get(i)
        if result is None:
            continue
        tool, args = call["name"], dict(call.get("args") or {})
        noted = result.response_metadata.get(METADATA_KEY)
        if isinstance(noted, Mapping):
            if noted.get("ran") is False:
                continue
            if isinstance(noted.get("tool"), str) and isinstance(noted.get("args"), Mapping):
                tool, args = noted["tool"], dict(noted["args"])
        history.append(Call(tool, args, text_of(result)))
    return ("" if human is None else text_of(human)), history, turn


# -- what the model reads ----------------------------------------------------------------------------


def refusal_text(decision: Decision) -> str:
    """What the model reads for a call the guard refused."""
    return f"Refused by the guard: {decision.explain()}"


def waiting_text(decision: Decision, again: bool = False) -> str:
    """What the model reads for a call that waits for the person's approval and did not run."""
    still = "still needs" if again else "needs"
    where = f" (approval {decision.approval_id})" if decision.approval_id else ""
    return f"Not run: this call {still} the person's approval{where}. {decision.explain()}"


def revision_note(decision: Decision) -> str:
    """What the model reads after the result of a call the guard changed before it ran."""
    return f"Note: the guard changed this call before it ran: {decision.explain()}"


def with_revision_note(decision: Decision, content: Any) -> Any:
    """A tool message's content with :func:`revision_note` after it, where the guard changed the call: the model
    must not believe its own call ran as it wrote it."""
    if decision.outcome != "revise":
        return content
    note = revision_note(decision)
    return f"{content}\n\n{note}" if isinstance(content, str) else [*content, {"type": "text", "text": note}]


# -- what a person answers ---------------------------------------------------------------------------

_CHOICES = {"approve": "approve", "accept": "approve", "deny": "deny", "reject": "deny", "edit": "edit"}


def is_resume(value: Any) -> bool:
    """True for the resume value that says "the person answered through the approval queue": ``"resume"``
    or ``{"choice": "resume", "approval_id": ...}``."""
    if isinstance(value, str):
        return value.strip().lower() == "resume"
    return isinstance(value, Mapping) and str(value.get("choice", value.get("type", ""))).lower() == "resume"


def answer_from_resume(value: Any) -> Answer:
    """A person's :class:`~fsa_guard.Answer` from the value an interrupt was resumed with.

    Accepted: an ``Answer``; ``"approve"`` or ``"deny"``; a mapping ``{"choice": "approve" | "deny" |
    "edit", "args": {...}, "by": "...", "note": "..."}`` (LangChain's human-in-the-loop shape, ``{"type":
    "approve" | "reject" | "edit", "edited_action": {"args": {...}}, "message": "..."}``, works too).
    Anything else is read as a refusal whose note says why: an answer nobody can read never runs a call.
    An edit without args is passed on as it is, and the guard keeps the call waiting.
    """
    if isinstance(value, Answer):
        return value
    if isinstance(value, str):
        choice = _CHOICES.get(value.strip().lower())
        if choice in ("approve", "deny"):
            return Answer(choice)  # type: ignore[arg-type]
        return _unreadable(value, "unknown")
    if isinstance(value, Mapping):
        by = str(value.get("by") or "unknown")
        raw = value.get("choice", value.get("type"))
        choice = _CHOICES.get(raw.strip().lower()) if isinstance(raw, str) else None
        if choice is None:
            return _unreadable(value, by)
        note = str(value.get("note") or value.get("message") or "")
        args = value.get("args")
        edited = value.get("edited_action")
        if args is None and isinstance(edited, Mapping):
            args = edited.get("args")
        if choice == "edit":
            return Answer("edit", dict(args) if isinstance(args, Mapping) else None, by=by, note=note)
        return Answer(choice, by=by, note=note)  # type: ignore[arg-type]
    return _unreadable(value, "unknown")


def _unreadable(value: Any, by: str) -> Answer:
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return Answer(
        "deny",
        by=by,
        note=f"the answer {shown} could not be read (expected approve, deny or edit), so the call is refused",
    )
