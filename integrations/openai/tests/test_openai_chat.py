"""Chat Completions: the request the loop sends, settling one completion's calls yourself, queued approvals
resumed in another process, failing and rate-limited model calls."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from fsa_guard_openai import (
    REFUSED,
    Toolbox,
    ToolLoopError,
    ToolLoopResult,
    aguard_tool_calls,
    answer_tool_calls,
    chat_history,
    chat_tools,
    guard_tool_calls,
    run_tool_loop,
)
from oa_fakes import BASE_URL, CHAT_URL, FakeModel, async_client, completion, rate_limited, results_in, sync_client
from openai import OpenAI

from fsa_guard import ApprovalError, ApprovalQueue, Guard, MemoryAuditSink


def test_the_loop_sends_the_tools_schemas_and_the_assistant_message_as_openai_takes_them(httpx2_mock, guard, ledger):
    model = FakeModel("chat", [[("call_t1", "tip", {"amount": 3.0})], "Tipped 3."])
    httpx2_mock.post(CHAT_URL).mock(side_effect=model)
    messages = [{"role": "user", "content": [{"type": "text", "text": "Tip 3, please."}]}]
    state = run_tool_loop(sync_client(), "gpt-4o-mini", messages, ledger.tools(), guard, temperature=0.2)

    first, second = model.bodies
    assert first["model"] == "gpt-4o-mini" and first["temperature"] == 0.2
    assert first["messages"] == messages and messages == [messages[0]]  # the caller's list is not changed
    tools = {t["function"]["name"]: t for t in first["tools"]}
    assert list(tools) == ["send_money", "tip", "read_notes", "send_email"]
    send = tools["send_money"]
    assert send["type"] == "function" and send["function"]["description"] == "Send money to a recipient."
    params = send["function"]["parameters"]
    assert params["required"] == ["recipient", "amount"] and params["additionalProperties"] is False
    assert params["properties"]["amount"]["type"] == "number" and params["properties"]["memo"]["default"] == ""
    assert second["messages"][1:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_t1", "type": "function", "function": {"name": "tip", "arguments": '{"amount": 3.0}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_t1", "content": '{"tipped": 3.0}'},
    ]
    assert state.output_text == "Tipped 3." and state.messages[-1] == {"role": "assistant", "content": "Tipped 3."}
    assert state.results[0].decision.proposed.request == "Tip 3, please."


def test_args_that_do_not_match_the_signature_are_denied_as_malformed(httpx2_mock, guard, ledger):
    httpx2_mock.post(CHAT_URL).mock(
        side_effect=FakeModel("chat", [[("call_t1", "tip", {"amount": "lots", "waiter": "Sam"})], "Sorry."])
    )
    state = run_tool_loop(sync_client(), "gpt-4o-mini", [{"role": "user", "content": "tip"}], ledger.tools(), guard)
    assert ledger.ran == []
    assert state.results[0].decision.finding_ids() == ["malformed-action"]
    assert state.results[0].content.startswith(REFUSED)


def test_a_call_to_a_tool_that_is_not_there_is_refused_by_name(httpx2_mock, guard, ledger):
    model = FakeModel("chat", [[("call_x1", "delete_everything", {})], "I cannot do that."])
    httpx2_mock.post(CHAT_URL).mock(side_effect=model)
    run_tool_loop(sync_client(), "gpt-4o-mini", [{"role": "user", "content": "clean up"}], ledger.tools(), guard)
    assert results_in(model.sent())["call_x1"] == (
        "Refused: there is no tool named 'delete_everything' (the tools are: send_money, tip, read_notes, "
        "send_email). The call did not run."
    )
    assert guard.audit.records == []  # type: ignore[union-attr]


def test_two_calls_of_one_turn_with_one_id_are_not_both_answered_by_one_answer(httpx2_mock, guard, ledger):
    """An answer, a result and a resume name a call by its id: a second call under the same id is refused, so
    a person's yes to one waiting call cannot run another."""
    calls = [("call_0", "send_money", {"recipient": "landlord", "amount": 600.0})]
    calls.append(("call_0", "send_money", {"recipient": "bob", "amount": 700.0}))
    httpx2_mock.post(CHAT_URL).mock(side_effect=FakeModel("chat", [calls, "done"]))
    asked = [{"role": "user", "content": "pay the landlord 600 and bob 700"}]
    state = run_tool_loop(sync_client(), "m", asked, ledger.tools(), guard)
    assert [p.arguments for p in state.pending] == ['{"recipient": "landlord", "amount": 600.0}']
    refused = [r for r in state.results if r.status == "refused"]
    assert len(refused) == 1 and "another call of this turn has the id 'call_0'" in refused[0].content
    done = state.resume({"call_0": "approve"}, by="alice")
    assert ledger.ran == [("send_money", {"recipient": "landlord", "amount": 600.0, "memo": ""})]
    # read back, the conversation pairs the landlord's payment with its result (the refusal came first)
    history = [(c.tool, dict(c.args), c.output) for c in chat_history(done.messages)]
    assert history == [("send_money", {"recipient": "landlord", "amount": 600.0}, "sent 600 to landlord")]


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_guard_tool_calls_settles_one_completion_and_answer_tool_calls_the_waiting_ones(
    httpx2_mock, guard, ledger, use_async
):
    httpx2_mock.post(CHAT_URL).respond(
        200,
        json=completion(
            [
                ("call_a1", "send_money", {"recipient": "alice", "amount": 20.0}),
                ("call_l2", "send_money", {"recipient": "landlord", "amount": 700.0}),
            ]
        ),
    )
    messages = [{"role": "user", "content": "Pay alice 20 and the landlord 700."}]
    response = sync_client().chat.completions.create(
        model="gpt-4o-mini", messages=messages, tools=chat_tools(ledger.tools())
    )
    tools = Toolbox(ledger.tools())
    if use_async:
        results = asyncio.run(aguard_tool_calls(response, tools, guard, messages=messages, context={"user": "alice"}))
    else:
        results = guard_tool_calls(
            response.choices[0].message, tools, guard, messages=messages, context={"user": "alice"}
        )
    assert results.messages == [{"role": "tool", "tool_call_id": "call_a1", "content": "sent 20 to alice"}]
    assert [r.call_id for r in results.pending] == ["call_l2"]
    assert results.decisions[0].proposed.context == {"user": "alice"}
    assert results.decisions[0].proposed.id == "call_a1"

    with pytest.raises(ValueError, match="no call waits under 'call_zz'"):
        answer_tool_calls(results, {"call_zz": "approve"}, tools, guard)
    with pytest.raises(ValueError, match="choice"):
        answer_tool_calls(results, {"call_l2": "maybe"}, tools, guard)
    answered = answer_tool_calls(results, {"call_l2": "approve"}, tools, guard, by="alice")
    assert answered.messages == [{"role": "tool", "tool_call_id": "call_l2", "content": "sent 700 to landlord"}]
    assert answered.items == [{"type": "function_call_output", "call_id": "call_l2", "output": "sent 700 to landlord"}]
    assert ledger.names() == ["send_money", "send_money"]


def test_a_queued_escalation_resumes_in_another_process_once_only(httpx2_mock, make_guard, tmp_path, ledger):
    store = f"sqlite:///{tmp_path}/state.db"
    guard = make_guard(store=store, approver=ApprovalQueue(store, wait=0))
    model = FakeModel("chat", [[("call_l1", "send_money", {"recipient": "landlord", "amount": 900.0})], "Paid."])
    httpx2_mock.post(CHAT_URL).mock(side_effect=model)
    state = run_tool_loop(
        sync_client(), "gpt-4o-mini", [{"role": "user", "content": "Pay the landlord 900."}], ledger.tools(), guard
    )
    [waiting] = state.pending
    assert waiting.approval_id is not None and waiting.approval_id.startswith("ap_")
    saved = json.dumps(state.to_dict())

    # another process: a new guard over the same store, a person answers in the queue, the loop resumes
    queue = ApprovalQueue(store, wait=0)
    other = make_guard(store=store, approver=queue)
    queue.approve(waiting.approval_id, by="alice", note="rent is due")
    restored = ToolLoopResult.from_dict(json.loads(saved), client=sync_client(), guard=other, tools=ledger.tools())
    assert restored.pending[0].decision.proposed.request == "Pay the landlord 900."
    done = restored.resume()
    assert done.stopped == "done" and done.output_text == "Paid."
    assert ledger.ran == [("send_money", {"recipient": "landlord", "amount": 900.0, "memo": ""})]
    assert done.results[0].decision.answer.by == "alice"

    again = ToolLoopResult.from_dict(json.loads(saved), client=sync_client(), guard=other, tools=ledger.tools())
    model.turns.append("Refused.")
    twice = again.resume()
    assert twice.results[0].status == "refused" and "approval-unusable" in twice.results[0].decision.finding_ids()
    assert len(ledger.ran) == 1

    with pytest.raises(ApprovalError, match="approval queue"):
        ToolLoopResult.from_dict(
            json.loads(saved), client=sync_client(), guard=make_guard(), tools=ledger.tools()
        ).resume()


def test_an_unanswered_queued_call_keeps_the_loop_paused(httpx2_mock, make_guard, tmp_path, ledger):
    store = f"sqlite:///{tmp_path}/state.db"
    guard = make_guard(store=store, approver=ApprovalQueue(store, wait=0))
    httpx2_mock.post(CHAT_URL).mock(
        side_effect=FakeModel("chat", [[("call_l1", "send_money", {"recipient": "landlord", "amount": 900.0})]])
    )
    state = run_tool_loop(
        sync_client(), "gpt-4o-mini", [{"role": "user", "content": "Pay the landlord 900."}], ledger.tools(), guard
    )
    still = state.resume()
    assert still.stopped == "escalated" and still.pending[0].approval_id == state.pending[0].approval_id
    assert ledger.ran == []


def test_a_failing_model_call_raises_with_the_loop_so_far_and_resumes_from_there(httpx2_mock, guard, ledger):
    model = FakeModel(
        "chat",
        [
            [("call_a1", "send_money", {"recipient": "alice", "amount": 10.0})],
            httpx.Response(
                500,
                json={
                    "error": {"message": "The server had an error", "type": "server_error", "param": None, "code": None}
                },
            ),
            "Paid alice.",
        ],
    )
    httpx2_mock.post(CHAT_URL).mock(side_effect=model)
    with pytest.raises(ToolLoopError, match="InternalServerError") as failed:
        run_tool_loop(
            sync_client(), "gpt-4o-mini", [{"role": "user", "content": "Pay alice 10."}], ledger.tools(), guard
        )
    state = failed.value.state
    assert state.steps == 1 and [r.status for r in state.results] == ["ran"]
    done = state.resume()
    assert done.output_text == "Paid alice." and len(ledger.ran) == 1  # the call that ran is not run again


def test_a_rate_limited_call_is_retried_by_the_sdk(httpx2_mock, guard, ledger):
    model = FakeModel("chat", [rate_limited(), "Nothing to do."])
    httpx2_mock.post(CHAT_URL).mock(side_effect=model)
    client = OpenAI(api_key="sk-test", base_url=BASE_URL, max_retries=1)
    state = run_tool_loop(client, "gpt-4o-mini", [{"role": "user", "content": "hi"}], ledger.tools(), guard)
    assert state.output_text == "Nothing to do." and len(model.bodies) == 2 and state.steps == 1


def test_options_the_loop_sets_itself_are_refused(guard, ledger):
    with pytest.raises(ValueError, match="sets stream itself"):
        run_tool_loop(sync_client(), "m", [], ledger.tools(), guard, stream=True)
    with pytest.raises(ValueError, match="max_steps"):
        run_tool_loop(sync_client(), "m", [], ledger.tools(), guard, max_steps=-1)


def test_the_async_loop_with_an_audit_sink_that_fails_refuses_the_call(httpx2_mock, make_guard, ledger):
    class Broken(MemoryAuditSink):
        def write(self, record):
            raise OSError("disk full")

    guard: Guard = make_guard(audit=Broken())
    from fsa_guard_openai import arun_tool_loop

    httpx2_mock.post(CHAT_URL).mock(
        side_effect=FakeModel(
            "chat", [[("call_a1", "send_money", {"recipient": "alice", "amount": 10.0})], "Could not."]
        )
    )
    state = asyncio.run(
        arun_tool_loop(
            async_client(), "gpt-4o-mini", [{"role": "user", "content": "Pay alice 10."}], ledger.tools(), guard
        )
    )
    assert ledger.ran == [] and state.results[0].decision.finding_ids()[-1] == "audit-unavailable"
