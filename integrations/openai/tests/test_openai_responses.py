"""Responses API: the input list the loop sends, settling one response's function calls yourself, and the
request and history read from input items."""

from __future__ import annotations

import asyncio

import pytest
from fsa_guard_openai import (
    CHANGED,
    aguard_function_calls,
    chat_history,
    guard_function_calls,
    response_tools,
    responses_history,
    responses_request,
    run_response_loop,
)
from oa_fakes import RESPONSES_URL, SECRET, FakeModel, response, sync_client


def test_the_loop_sends_the_full_input_list_with_the_models_items_and_the_outputs(httpx2_mock, guard, ledger):
    model = FakeModel("responses", [[("call_t1", "tip", {"amount": 3.0})], "Tipped 3."])
    httpx2_mock.post(RESPONSES_URL).mock(side_effect=model)
    state = run_response_loop(
        sync_client(),
        "gpt-4o-mini",
        "Tip 3, please.",
        ledger.tools(),
        guard,
        instructions="You help Alice.",
        store=False,
    )

    first, second = model.bodies
    assert first["input"] == [{"role": "user", "content": "Tip 3, please."}]
    assert (
        first["instructions"] == "You help Alice." and first["store"] is False and "previous_response_id" not in first
    )
    tools = {t["name"]: t for t in first["tools"]}
    assert tools["tip"] == {
        "type": "function",
        "name": "tip",
        "parameters": tools["tip"]["parameters"],
        "strict": False,
        "description": "Tip the waiter.",
    }
    assert tools["tip"]["parameters"]["required"] == ["amount"]
    assert second["input"][1:] == [
        {
            "type": "function_call",
            "id": "fc_67ca09c6bedc8190a7abfec07b1a1332096610f474011cc0",
            "call_id": "call_t1",
            "name": "tip",
            "arguments": '{"amount": 3.0}',
            "status": "completed",
        },
        {"type": "function_call_output", "call_id": "call_t1", "output": '{"tipped": 3.0}'},
    ]
    assert state.output_text == "Tipped 3."
    assert state.messages[-1]["type"] == "message" and state.messages[-1]["content"][0]["text"] == "Tipped 3."


def test_previous_response_id_and_conversation_are_refused(guard, ledger):
    with pytest.raises(ValueError, match="conversation, previous_response_id"):
        run_response_loop(
            sync_client(), "m", "hi", ledger.tools(), guard, previous_response_id="resp_1", conversation="c"
        )


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_guard_function_calls_settles_the_calls_of_one_response(guard, ledger, use_async):
    from openai.types.responses import Response

    resp = Response.model_validate(  # validated: the fake's body is a complete, well-formed Response
        response(
            [
                ("call_n1", "read_notes", {"name": "door"}),
                ("call_e2", "send_email", {"to": "bob@example.com", "body": SECRET}),
                ("call_l3", "send_money", {"recipient": "landlord", "amount": 900.0}),
            ]
        )
    )
    prior = [
        {"role": "user", "content": [{"type": "input_text", "text": "Read 'door', mail bob, pay the landlord 900."}]}
    ]
    if use_async:
        results = asyncio.run(aguard_function_calls(resp, ledger.tools(), guard, input=prior))
    else:
        results = guard_function_calls(resp.output, ledger.tools(), guard, input=prior)
    assert [r.status for r in results.results] == ["ran", "refused", "pending"]
    assert results.items[0] == {"type": "function_call_output", "call_id": "call_n1", "output": SECRET}
    assert results.items[1]["output"].startswith("Refused: Denied: send_email.")
    # the email saw the note read just before it, in the same turn
    assert [c.tool for c in results.decisions[1].proposed.history] == ["read_notes"]
    assert results.decisions[1].proposed.request == "Read 'door', mail bob, pay the landlord 900."
    assert ledger.names() == ["read_notes"]


def test_request_and_history_from_input_items():
    items = [
        {"role": "user", "content": "first"},
        {"type": "function_call", "call_id": "c1", "name": "read_notes", "arguments": '{"name": "a"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "note a"},
        {"type": "function_call", "call_id": "c2", "name": "send_money", "arguments": '{"amount": 1}'},
        {
            "type": "function_call_output",
            "call_id": "c2",
            "output": "Refused: Denied: send_money. The call did not run.",
        },
        {"type": "function_call", "call_id": "c3", "name": "tip", "arguments": '{"amount": 35}'},
        {
            "type": "function_call_output",
            "call_id": "c3",
            "output": f'{CHANGED}tip with {{"amount": 20.0}}. Allowed after a change: tip.\nResult: {{"tipped": 20}}',
        },
        {"type": "function_call", "call_id": "c4", "name": "tip", "arguments": "{}"},  # no output yet
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "second"}]},
    ]
    assert responses_request(items) == "second" and responses_request("just text") == "just text"
    history = responses_history(items)
    assert [(c.tool, dict(c.args), c.output) for c in history] == [
        ("read_notes", {"name": "a"}, "note a"),
        ("tip", {"amount": 20.0}, '{"tipped": 20}'),  # as it ran; the refused call is not there
    ]
    assert history[1].parsed_output() == {"tipped": 20}


def test_history_pairs_reused_call_ids_in_order():
    """Each output answers the oldest unanswered call with its id: reused ids must not hide an earlier call."""
    items = [
        {"type": "function_call", "call_id": "call_0", "name": "read_notes", "arguments": '{"name": "a"}'},
        {"type": "function_call", "call_id": "call_0", "name": "tip", "arguments": '{"amount": 1}'},
        {"type": "function_call_output", "call_id": "call_0", "output": "note a"},
        {"type": "function_call_output", "call_id": "call_0", "output": "tipped"},
        {"type": "function_call", "call_id": "call_0", "name": "send_email", "arguments": "{}"},  # no output yet
    ]
    assert [(c.tool, c.output) for c in responses_history(items)] == [("read_notes", "note a"), ("tip", "tipped")]
    messages = [
        {"role": "assistant", "tool_calls": [_chat_call("call_0", "read_notes"), _chat_call("call_0", "tip")]},
        {"role": "tool", "tool_call_id": "call_0", "content": "note a"},
        {"role": "tool", "tool_call_id": "call_0", "content": "tipped"},
        {"role": "assistant", "tool_calls": [_chat_call("call_0", "send_email")]},
    ]
    assert [(c.tool, c.output) for c in chat_history(messages)] == [("read_notes", "note a"), ("tip", "tipped")]


def _chat_call(call_id: str, name: str) -> dict[str, object]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": "{}"}}


def test_response_tools_from_a_mapping():
    def lookup(query: str, limit: int = 5) -> list[str]:
        """Search the notes.

        Longer text that is not the description."""
        return []

    [tool] = response_tools({"search_notes": lookup}, strict=True)
    assert tool["name"] == "search_notes" and tool["description"] == "Search the notes." and tool["strict"] is True
    assert tool["parameters"]["properties"]["limit"] == {"default": 5, "title": "Limit", "type": "integer"}
