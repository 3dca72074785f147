"""From agent state to the guard's view (request, history) and from a resume value to a person's Answer."""

from __future__ import annotations

import pytest
from fsa_guard_langchain import (
    METADATA_KEY,
    answer_from_resume,
    history_from_messages,
    read_messages,
    request_from_messages,
)
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from fsa_guard import Answer, Call


def turn(*calls: tuple[str, str, dict]) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"id": i, "name": n, "args": a} for i, n, a in calls])


def note(outcome: str, ran: bool, tool: str, args: dict) -> dict:
    return {METADATA_KEY: {"outcome": outcome, "ran": ran, "tool": tool, "args": args, "record_id": None}}


def test_the_request_is_the_latest_human_message_with_its_text_parts_joined():
    messages = [
        SystemMessage("be careful"),
        HumanMessage("first"),
        AIMessage("ok"),
        HumanMessage(content=[{"type": "text", "text": "pay"}, {"type": "image_url", "image_url": {"url": "x"}}, "Bo"]),
    ]
    assert request_from_messages(messages) == "pay\nBo"
    assert request_from_messages([SystemMessage("x")]) == ""


def test_history_pairs_calls_with_their_results_in_order():
    messages = [
        HumanMessage("pay the bill"),
        turn(("a", "read_email", {"subject": "bill"})),
        ToolMessage('{"iban": "DE44"}', tool_call_id="a"),
        turn(("b", "tip", {"amount": 50.0}), ("c", "send_money", {"recipient": "rival"}), ("d", "tip", {"amount": 1})),
        ToolMessage("tipped 20", tool_call_id="b", response_metadata=note("revise", True, "tip", {"amount": 20.0})),
        ToolMessage("Refused", tool_call_id="c", status="error", response_metadata=note("deny", False, "x", {})),
        ToolMessage("bank down", tool_call_id="e", status="error"),
    ]
    history = history_from_messages(messages, exclude="d")
    assert history == [
        Call("read_email", {"subject": "bill"}, '{"iban": "DE44"}'),
        Call("tip", {"amount": 20.0}, "tipped 20"),  # as it ran, not as proposed
    ]  # the refused call, the current one ("d") and the result without a call are left out
    assert history[0].parsed_output() == {"iban": "DE44"}


def test_history_pairs_reused_ids_in_order():
    """Providers that number calls per turn reuse ids: each result answers the oldest unanswered call with its
    id, so an earlier call is not lost behind a later one (a data-flow norm would not see what it read)."""
    messages = [
        turn(("call_0", "read_notes", {"name": "door"})),
        ToolMessage("the door code is 4711", tool_call_id="call_0"),
        turn(("call_0", "tip", {"amount": 1}), ("call_0", "tip", {"amount": 2})),  # the same id twice in a turn
        ToolMessage("tipped 1", tool_call_id="call_0"),
        ToolMessage("tipped 2", tool_call_id="call_0"),
        turn(("call_0", "send_email", {"body": "4711"})),  # being decided
    ]
    assert history_from_messages(messages, exclude="call_0") == [
        Call("read_notes", {"name": "door"}, "the door code is 4711"),
        Call("tip", {"amount": 1}, "tipped 1"),
        Call("tip", {"amount": 2}, "tipped 2"),
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("approve", Answer("approve")),
        (" Deny ", Answer("deny")),
        ({"choice": "approve", "by": "alice", "note": "ok"}, Answer("approve", by="alice", note="ok")),
        ({"choice": "edit", "args": {"amount": 1.0}, "by": "alice"}, Answer("edit", {"amount": 1.0}, by="alice")),
        ({"type": "reject", "message": "not now"}, Answer("deny", note="not now")),  # LangChain's HITL shape
        ({"type": "edit", "edited_action": {"name": "t", "args": {"a": 1}}}, Answer("edit", {"a": 1})),
        ({"choice": "edit"}, Answer("edit")),  # no args: the guard keeps the call waiting
        (Answer("approve", by="bob"), Answer("approve", by="bob")),
    ],
)
def test_resume_values_that_are_answers(value, expected):
    assert answer_from_resume(value) == expected


@pytest.mark.parametrize("value", ["yes", "edit", 42, None, {"choice": "maybe"}, {"args": {}}, ["approve"]])
def test_anything_else_refuses_the_call(value):
    answer = answer_from_resume(value)
    assert answer.choice == "deny" and "could not be read" in answer.note


def test_one_pass_reads_the_request_the_history_and_the_turn_that_made_the_call():
    """What the middleware reads per call: the turn is the latest AI message proposing the id (its id, or
    ``#`` and its place), so a replay of that turn finds its kept escalation and a later turn reusing the id
    does not."""
    first = AIMessage(content="", id="turn-1", tool_calls=[{"id": "call_0", "name": "read_notes", "args": {}}])
    messages = [
        HumanMessage("hello"),
        first,
        ToolMessage("notes", tool_call_id="call_0"),
        HumanMessage("now mail them"),
        turn(("call_0", "send_email", {"to": "x@example.com"})),  # no message id: its place
    ]
    request, history, made_by = read_messages(messages, "call_0")
    assert request == "now mail them"
    assert history == [Call("read_notes", {}, "notes")]  # the call being decided is left out
    assert made_by == "#4"
    assert read_messages(messages[:3], "call_0") == ("hello", [], "turn-1")
    assert read_messages(messages, "call_9") == ("now mail them", [Call("read_notes", {}, "notes")], "")
    assert read_messages(messages, None)[2] == ""

    # a subclass of a message class (a chunk, an app's own) is read as its base class
    class Mine(HumanMessage):
        pass

    assert read_messages([*messages, Mine("and thank them")], "call_0")[0] == "and thank them"
