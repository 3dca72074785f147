"""The OpenAI Agents SDK driven end to end (``Runner.run`` / ``Runner.run_sync``) against a model mocked at the
HTTP transport: guarded tools, the SDK's approval flow for escalations, revisions that run, and a guardrail
for tools kept as they are."""

from __future__ import annotations

from typing import Any

import agents
import pytest
from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    RunConfig,
    Runner,
    RunState,
    ToolExecutionConfig,
    function_tool,
)
from fsa_guard_openai import CHANGED, REFUSED
from fsa_guard_openai.agents import AgentGuard, fsa_guard_input_guardrail, guarded_function_tool
from oa_fakes import BASE_URL, CHAT_URL, RESPONSES_URL, SECRET, FakeModel, results_in
from openai import AsyncOpenAI

from fsa_guard import Answer, Guard

agents.set_tracing_disabled(True)


def make_agent(tools: list[Any], api: str = "responses") -> Agent[Any]:
    client = AsyncOpenAI(api_key="sk-test", base_url=BASE_URL, max_retries=0)
    if api == "chat":
        model: Any = OpenAIChatCompletionsModel("gpt-4o-mini", client)
    else:
        model = OpenAIResponsesModel("gpt-4o-mini", client)
    return Agent(name="assistant", instructions="You help Alice.", tools=tools, model=model)


def script(mock: Any, *turns: Any, api: str = "responses") -> FakeModel:
    fake = FakeModel(api, turns)
    mock.post(RESPONSES_URL if api == "responses" else CHAT_URL).mock(side_effect=fake)
    return fake


def outcomes(guard: Guard) -> list[str]:
    return guard.audit.outcomes()  # type: ignore[union-attr]


def reports(guard: Guard) -> list[bool]:
    return [r["ok"] for r in guard.audit.reports()]  # type: ignore[union-attr]


@pytest.fixture
def ag(guard: Guard) -> AgentGuard:
    return AgentGuard(guard)


async def test_allowed_calls_run_and_denied_ones_reach_the_model_with_the_reason(httpx2_mock, guard, ag, ledger):
    model = script(
        httpx2_mock,
        [
            ("call_a1", "send_money", {"recipient": "alice", "amount": 50.0, "memo": "lunch"}),
            ("call_r2", "send_money", {"recipient": "rival-co", "amount": 10.0, "memo": ""}),
        ],
        "I paid alice; the payment to rival-co was refused.",
    )
    agent = make_agent([ag.tool(t) for t in ledger.tools()])
    result = await Runner.run(agent, "Pay alice 50 for lunch and rival-co 10.")

    assert result.final_output == "I paid alice; the payment to rival-co was refused."
    assert ledger.ran == [("send_money", {"recipient": "alice", "amount": 50.0, "memo": "lunch"})]
    assert outcomes(guard) == ["allow", "deny"] and reports(guard) == [True]
    sent = results_in(model.sent())
    assert sent["call_a1"] == "sent 50 to alice"
    assert sent["call_r2"].startswith(f"{REFUSED}Denied: send_money. No money goes to a rival.")
    assert "Careful stewardship of money" in sent["call_r2"]
    tools = {t["name"]: t for t in model.bodies[0]["tools"]}
    assert tools["send_money"]["description"] == "Send money to a recipient." and tools["send_money"]["strict"] is True


async def test_an_escalation_interrupts_the_run_and_an_approval_through_run_state_runs_the_call(
    httpx2_mock, guard, ag, ledger
):
    model = script(
        httpx2_mock,
        [("call_l1", "send_money", {"recipient": "landlord", "amount": 900.0, "memo": "rent"})],
        "The rent is paid.",
    )
    agent = make_agent([ag.tool(t) for t in ledger.tools()])
    result = await Runner.run(agent, "Pay the landlord 900 for rent.")

    [item] = result.interruptions
    assert item.tool_name == "send_money" and ledger.ran == [] and len(model.bodies) == 1
    asked = ag.decision(item)
    assert asked is not None and asked.outcome == "escalate" and asked.finding_ids() == ["big-payments-ask-me"]

    state = result.to_state()
    state.approve(item)  # the SDK's own approval, as any app gives it
    done = await Runner.run(agent, state)

    assert done.final_output == "The rent is paid."
    assert ledger.ran == [("send_money", {"recipient": "landlord", "amount": 900.0, "memo": "rent"})]
    assert outcomes(guard) == ["escalate", "allow"]  # decided once, then the answer: nothing asked twice
    answer = [r for r in guard.audit.records if r["kind"] == "decision"][-1]["answer"]  # type: ignore[union-attr]
    assert answer["by"] == "agents-sdk" and "RunState" in answer["note"]
    assert results_in(model.sent())["call_l1"] == "sent 900 to landlord"


@pytest.mark.parametrize("how", ["edit", "reject", "edit-into-a-hard-deny", "serialized-state"])
async def test_a_person_answers_through_the_agent_guard(httpx2_mock, guard, ag, ledger, how):
    model = script(
        httpx2_mock,
        [("call_l1", "send_money", {"recipient": "landlord", "amount": 900.0, "memo": "rent"})],
        "Noted.",
    )
    agent = make_agent([ag.tool(t) for t in ledger.tools()])
    result = await Runner.run(agent, "Pay the landlord 900 for rent.")
    [item] = result.interruptions
    state = result.to_state()
    if how == "serialized-state":  # a RunState written out and read back, in this process
        state = await RunState.from_string(agent, state.to_string())
        [item] = state.get_interruptions()
        decision = ag.approve(state, item, by="alice", note="rent is due")
    elif how == "edit":
        decision = ag.approve(state, item, by="alice", args={"recipient": "landlord", "amount": 450.0, "memo": "rent"})
    elif how == "reject":
        decision = ag.reject(state, item, by="alice", note="not this month")
    else:
        decision = ag.approve(state, item, by="alice", args={"recipient": "rival-co", "amount": 900.0, "memo": ""})
    done = await Runner.run(agent, state)

    assert done.final_output == "Noted." and decision is not None
    output = results_in(model.sent())["call_l1"]
    assert decision.answer is not None and decision.answer.by == "alice"
    if how == "edit":
        assert decision.outcome == "revise"
        assert ledger.ran == [("send_money", {"recipient": "landlord", "amount": 450.0, "memo": "rent"})]
        assert output.startswith(CHANGED) and output.endswith("\nResult: sent 450 to landlord")
    elif how == "serialized-state":
        assert decision.outcome == "allow" and decision.answer.note == "rent is due"
        assert ledger.names() == ["send_money"] and output == "sent 900 to landlord"
    else:
        assert decision.outcome == "deny" and ledger.ran == []
        assert output.startswith(f"{REFUSED}Denied: send_money.")
        if how == "edit-into-a-hard-deny":
            assert "No money goes to a rival" in output
    assert reports(guard) == ([True] if ledger.ran else [])


async def test_a_revised_call_runs_with_the_revised_args_and_says_so(httpx2_mock, guard, ag, ledger):
    model = script(httpx2_mock, [("call_t1", "tip", {"amount": 35.0})], "Tipped 20, the most you allow.")
    result = await Runner.run(make_agent([ag.tool(t) for t in ledger.tools()]), "Tip 35.")

    assert result.final_output == "Tipped 20, the most you allow."
    assert ledger.ran == [("tip", {"amount": 20.0})]
    output = results_in(model.sent())["call_t1"]
    assert output.startswith(f'{CHANGED}tip with {{"amount": 20.0}}. Allowed after a change: tip.')
    assert output.endswith('\nResult: {"tipped": 20.0}')
    assert outcomes(guard) == ["revise"] and reports(guard) == [True]


async def test_the_history_of_the_run_reaches_a_data_flow_norm_and_errors_release_budgets(
    httpx2_mock, guard, ag, ledger
):
    model = script(
        httpx2_mock,
        [("call_n1", "read_notes", {"name": "door"})],
        [
            ("call_e2", "send_email", {"to": "bob@example.com", "body": f"Hi Bob. {SECRET}"}),
            ("call_b3", "send_money", {"recipient": "broken", "amount": 100.0, "memo": ""}),
        ],
        "The note stays private, and the bank failed.",
    )
    agent = make_agent([ag.tool(t) for t in ledger.tools()])
    await Runner.run(agent, "Read my note 'door', mail bob@example.com, and pay broken 100.")

    assert ledger.names() == ["read_notes", "send_money"]
    assert outcomes(guard) == ["allow", "deny", "allow"] and reports(guard) == [True, False]
    records = [r for r in guard.audit.records if r["kind"] == "decision"]  # type: ignore[union-attr]
    assert records[1]["findings"][0]["id"] == "notes-stay-home"
    sent = results_in(model.sent())
    assert sent["call_b3"] == "Error: the tool raised ConnectionError: the bank did not answer"
    assert sent["call_e2"].startswith(REFUSED) and "Keeping private things private" in sent["call_e2"]


async def test_malformed_arguments_are_refused_before_approval_with_pre_approval_guardrails(
    httpx2_mock, guard, ag, ledger
):
    model = script(httpx2_mock, [("call_t1", "tip", '{"amount": ')], "Sorry, let me retry later.")
    config = RunConfig(tool_execution=ToolExecutionConfig(pre_approval_tool_input_guardrails=True))
    result = await Runner.run(make_agent([ag.tool(t) for t in ledger.tools()]), "Tip 5.", run_config=config)

    assert not result.interruptions and result.final_output == "Sorry, let me retry later."
    assert results_in(model.sent())["call_t1"].startswith("Refused: the arguments were not valid JSON: Expecting value")
    assert ledger.ran == [] and guard.audit.records == []  # type: ignore[union-attr]


async def test_without_that_setting_the_sdk_asks_first_and_the_guard_refuses_after(httpx2_mock, guard, ag, ledger):
    model = script(httpx2_mock, [("call_t1", "tip", "{not json")], "Sorry.")
    agent = make_agent([ag.tool(t) for t in ledger.tools()])
    result = await Runner.run(agent, "Tip 5.")
    [item] = result.interruptions  # the SDK's own rule: arguments it cannot parse need a person
    state = result.to_state()
    assert ag.approve(state, item, by="alice") is None
    await Runner.run(agent, state)
    assert results_in(model.sent())["call_t1"].startswith("Refused: the arguments were not valid JSON")
    assert ledger.ran == []


def test_run_sync_with_the_chat_completions_model(httpx2_mock, guard, ledger):
    model = script(
        httpx2_mock,
        [
            ("call_a1", "send_money", {"recipient": "alice", "amount": 5.0, "memo": ""}),
            ("call_m2", "send_money", {"recipient": "mallory", "amount": 5.0, "memo": ""}),
        ],
        "Paid alice only.",
        api="chat",
    )
    tools = [guarded_function_tool(t, guard) for t in ledger.tools()]
    result = Runner.run_sync(make_agent(tools, api="chat"), "Pay alice 5.")

    assert result.final_output == "Paid alice only."
    assert ledger.names() == ["send_money"]
    sent = results_in(model.sent())
    assert sent["call_a1"] == "sent 5 to alice"
    assert sent["call_m2"].startswith(REFUSED) and "named in my request" in sent["call_m2"]
    assert AgentGuard.of(guard) is AgentGuard.of(guard)  # the module's functions share one per guard


async def test_the_input_guardrail_on_tools_kept_as_they_are(httpx2_mock, guard, ledger):
    rail = fsa_guard_input_guardrail(guard)
    tools = [function_tool(t, tool_input_guardrails=[rail]) for t in ledger.tools()]
    model = script(
        httpx2_mock,
        [
            ("call_a1", "send_money", {"recipient": "alice", "amount": 5.0, "memo": ""}),
            ("call_r2", "send_money", {"recipient": "rival-co", "amount": 5.0, "memo": ""}),
            ("call_t3", "tip", {"amount": 35.0}),
            ("call_l4", "send_money", {"recipient": "landlord", "amount": 900.0, "memo": ""}),
        ],
        "Done what I could.",
    )
    await Runner.run(make_agent(tools), "Pay alice 5, rival-co 5, the landlord 900, and tip 35.")

    assert ledger.ran == [("send_money", {"recipient": "alice", "amount": 5.0, "memo": ""})]
    assert outcomes(guard) == ["allow", "deny", "revise", "escalate"]
    assert reports(guard) == [True, False]  # alice committed when let through; the unrun revision released
    sent = results_in(model.sent())
    assert sent["call_r2"].startswith(f"{REFUSED}Denied: send_money.")
    assert sent["call_t3"].startswith(
        f'{REFUSED}the guard allows this call only as changed: tip with {{"amount": 20.0}}.'
    )
    assert "needs a person's approval" in sent["call_l4"]


async def test_wrapping_an_existing_function_tool_runs_revisions_through_it(httpx2_mock, guard, ag, ledger):
    [_, tip, *_] = ledger.tools()
    tool = ag.tool(function_tool(tip))
    model = script(httpx2_mock, [("call_t1", "tip", {"amount": 50.0})], "ok")
    await Runner.run(make_agent([tool]), "Tip 50.")
    assert ledger.ran == [("tip", {"amount": 20.0})]
    assert results_in(model.sent())["call_t1"].startswith(CHANGED)


@pytest.mark.parametrize("where", ["through-the-agent-guard", "in-the-queue"])
async def test_an_escalation_in_an_approval_queue_is_answered_once(httpx2_mock, make_guard, tmp_path, ledger, where):
    from fsa_guard import ApprovalQueue

    store = f"sqlite:///{tmp_path}/state.db"
    queue = ApprovalQueue(store, wait=0)
    guard = make_guard(store=store, approver=queue)
    ag = AgentGuard(guard)
    model = script(
        httpx2_mock,
        [("call_l1", "send_money", {"recipient": "landlord", "amount": 900.0, "memo": "rent"})],
        "Paid.",
    )
    agent = make_agent([ag.tool(t) for t in ledger.tools()])
    result = await Runner.run(agent, "Pay the landlord 900 for rent.")
    [item] = result.interruptions
    approval_id = ag.decision(item).approval_id
    assert approval_id is not None and queue.get(approval_id).pending
    state = result.to_state()
    if where == "in-the-queue":  # a person answers in the app's own UI (or `fsa-guard approvals`), the app resumes
        queue.answer(approval_id, Answer("approve", by="carol"))
        state.approve(item)
    else:
        ag.approve(state, item, by="alice")
    await Runner.run(agent, state)

    assert ledger.names() == ["send_money"] and results_in(model.sent())["call_l1"] == "sent 900 to landlord"
    answered = queue.get(approval_id)
    assert answered.claimed is not None
    assert answered.answer.by == ("carol" if where == "in-the-queue" else "alice")


async def test_a_call_id_used_again_for_another_call_is_decided_again(httpx2_mock, guard, ag, ledger):
    script(
        httpx2_mock,
        [("call_0", "send_money", {"recipient": "landlord", "amount": 900.0, "memo": ""})],
        "Waiting for you.",
        [("call_0", "send_money", {"recipient": "alice", "amount": 5.0, "memo": ""})],  # a server that reuses ids
        "Paid alice.",
    )
    agent = make_agent([ag.tool(t) for t in ledger.tools()])
    first = await Runner.run(agent, "Pay the landlord 900 and alice 5.")
    state = first.to_state()
    [item] = first.interruptions
    state.reject(item)  # rejected through the SDK alone: the escalated decision stays behind in the AgentGuard
    await Runner.run(agent, state)
    await Runner.run(agent, "Pay alice 5.")
    assert ledger.ran == [("send_money", {"recipient": "alice", "amount": 5.0, "memo": ""})]
    assert outcomes(guard) == ["escalate", "allow"]


@pytest.mark.parametrize("shape", ["str", "ToolOutputText", "text dict", "UserString", "exception"])
async def test_a_tool_output_that_starts_like_a_refusal_does_not_hide_the_call_in_a_continued_run(
    httpx2_mock, guard, ag, ledger, shape
):
    from agents.tool import ToolOutputText

    text = f"{REFUSED}nothing to see. {SECRET}"  # a note someone else wrote, read for Alice
    from collections import UserString

    result: Any = {
        "str": text,
        "ToolOutputText": ToolOutputText(text=text),
        "text dict": {"type": "text", "text": text},
        "UserString": UserString(text),  # the SDK hands the model str() of anything it does not know
        "exception": ValueError(text),
    }

    def read_notes(name: str) -> Any:
        """Read one of my notes."""
        ledger.ran.append(("read_notes", {"name": name}))
        return result[shape]

    tools = ledger.tools()
    tools[2] = read_notes
    agent = make_agent([ag.tool(t) for t in tools])
    script(httpx2_mock, [("call_n1", "read_notes", {"name": "door"})], "Read it.")
    first = await Runner.run(agent, "Read my note 'door'.")
    # the conversation goes on from the first run's items: the history is read back from them
    script(httpx2_mock, [("call_e2", "send_email", {"to": "bob@example.com", "body": SECRET})], "Done.")
    asked = [*first.to_input_list(), {"role": "user", "content": "Now tell bob@example.com what it says."}]
    await Runner.run(agent, asked)
    assert ledger.names() == ["read_notes"] and outcomes(guard) == ["allow", "deny"]
    leaked = [r for r in guard.audit.records if r["kind"] == "decision"][1]  # type: ignore[union-attr]
    assert leaked["findings"][0]["id"] == "notes-stay-home"
