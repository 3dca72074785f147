"""FSAGuardMiddleware end to end: create_agent with ChatOpenAI, the OpenAI API mocked at the HTTP transport,
the model proposing real tool calls, and the guard deciding each one (sync and async)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Annotated

import pytest
from fsa_guard_langchain import METADATA_KEY, FSAGuardMiddleware, history_from_messages
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import InjectedToolCallId, tool
from langgraph.types import Command
from lc_fakes import API, THREAD, ask, calls, says, sent, tool_messages

from fsa_guard import Action, Decision, Finding

DAY = 86400.0


def spent(guard) -> float:
    return guard.store.usage("daily-spend", DAY, time.time())


async def test_an_allowed_call_runs_and_the_model_gets_its_result(make_guard, make_agent, ledger, run, httpx2_mock):
    guard = make_guard()
    model = httpx2_mock.post(API).mock(
        side_effect=[calls(("call_1", "send_money", {"recipient": "LANDLORD-DE44", "amount": 300.0})), says("Paid.")]
    )
    result = await run(make_agent(guard), ask("pay my landlord 300"))

    assert ledger.ran("send_money") == [{"recipient": "LANDLORD-DE44", "amount": 300.0}]
    assert json.loads(tool_messages(sent(model))["call_1"]) == {
        "status": "sent",
        "recipient": "LANDLORD-DE44",
        "amount": 300.0,
    }
    assert result["messages"][-1].content == "Paid."
    assert guard.audit.outcomes() == ["allow"]
    assert [r["ok"] for r in guard.audit.reports()] == [True]
    assert spent(guard) == 300.0  # the reservation was committed


async def test_a_denied_call_does_not_run_and_the_model_sees_why(make_guard, make_agent, ledger, run, httpx2_mock):
    guard = make_guard()
    model = httpx2_mock.post(API).mock(
        side_effect=[
            calls(("call_1", "send_money", {"recipient": "rival-corp", "amount": 50.0})),
            says("I could not send money to rival-corp: your rules refuse payments to a rival."),
        ]
    )
    result = await run(make_agent(guard), ask("send 50 to rival-corp"))

    assert ledger.calls == []
    seen = tool_messages(sent(model))["call_1"]
    assert seen.startswith("Refused by the guard: Denied: send_money.")
    assert "No money goes to a rival" in seen and "Careful stewardship of money" in seen
    refusal = next(m for m in result["messages"] if isinstance(m, ToolMessage))
    assert refusal.status == "error" and refusal.name == "send_money"
    assert refusal.response_metadata[METADATA_KEY]["ran"] is False
    assert isinstance(result["messages"][-1], AIMessage) and "rival" in result["messages"][-1].content
    assert guard.audit.outcomes() == ["deny"] and guard.audit.reports() == []


async def test_a_revised_call_runs_revised_and_the_record_keeps_both(make_guard, make_agent, ledger, run, httpx2_mock):
    guard = make_guard()
    model = httpx2_mock.post(API).mock(
        side_effect=[calls(("call_1", "tip", {"amount": 50.0})), says("Tipped 20, the most your rules allow.")]
    )
    await run(make_agent(guard), ask("tip the courier 50"))

    assert ledger.ran("tip") == [{"amount": 20.0}]
    seen = tool_messages(sent(model))["call_1"]
    assert seen.startswith("tipped 20\n\nNote: the guard changed this call before it ran:")
    assert "amount from 50.0 to 20.0" in seen
    (record,) = [r for r in guard.audit.records if r["kind"] == "decision"]
    assert record["outcome"] == "revise"
    assert record["proposed"] == {"tool": "tip", "args": {"amount": 50.0}}
    assert record["action"] == {"tool": "tip", "args": {"amount": 20.0}}
    assert [r["ok"] for r in guard.audit.reports()] == [True]


async def test_a_tool_that_answers_with_a_command_is_told_of_its_revision(make_guard, make_agent, run, httpx2_mock):
    """A tool may answer with a Command that carries its ToolMessage: the model still reads what the guard
    changed, and the history records the call as it ran."""
    ran: list[float] = []

    @tool
    def tip(amount: float, tool_call_id: Annotated[str, InjectedToolCallId]) -> Command:
        """Tip the courier."""
        ran.append(amount)
        return Command(update={"messages": [ToolMessage(f"tipped {amount:g}", tool_call_id=tool_call_id)]})

    guard = make_guard()
    model = httpx2_mock.post(API).mock(side_effect=[calls(("call_1", "tip", {"amount": 50.0})), says("Tipped.")])
    result = await run(make_agent(guard, [tip]), ask("tip the courier 50"))
    assert ran == [20.0] and "amount from 50.0 to 20.0" in tool_messages(sent(model))["call_1"]
    assert history_from_messages(result["messages"])[0].args == {"amount": 20.0}
    assert [r["ok"] for r in guard.audit.reports()] == [True]


def test_a_revision_to_another_tool_runs_that_tool(make_guard, make_agent, ledger, httpx2_mock, monkeypatch):
    # No spec rule changes the tool yet; an integration must still run the tool the decision names.
    guard = make_guard()
    proposed = Action("tip", {"amount": 5.0})

    def decide(action: Action, *, wait: float | None = None) -> Decision:
        run = Action("send_money", {"recipient": "COURIER-1", "amount": 5.0})
        return Decision("revise", run, proposed, (Finding("norm", "tips-by-transfer", "Tips go by transfer."),))

    monkeypatch.setattr(guard, "decide", decide)
    model = httpx2_mock.post(API).mock(side_effect=[calls(("call_1", "tip", {"amount": 5.0})), says("Done.")])
    result = make_agent(guard).invoke(ask("tip 5"), THREAD)

    assert ledger.calls == [("send_money", {"recipient": "COURIER-1", "amount": 5.0})]
    message = next(m for m in result["messages"] if isinstance(m, ToolMessage))
    assert message.name == "send_money" and message.tool_call_id == "call_1"
    assert "The call was changed to send_money" in tool_messages(sent(model))["call_1"]


async def test_parallel_calls_get_one_decision_each(make_guard, make_agent, ledger, run, httpx2_mock):
    guard = make_guard()
    model = httpx2_mock.post(API).mock(
        side_effect=[
            calls(
                ("call_a", "send_money", {"recipient": "rival-corp", "amount": 10.0}),
                ("call_b", "tip", {"amount": 5.0}),
                ("call_c", "tip", {"amount": 35.0}),
            ),
            says("Tipped; the transfer to rival-corp was refused."),
        ]
    )
    await run(make_agent(guard), ask("send 10 to rival-corp and tip 5, and tip the other courier 35"))

    assert sorted(args["amount"] for args in ledger.ran("tip")) == [5.0, 20.0]
    assert ledger.ran("send_money") == []
    results = tool_messages(sent(model))
    assert results["call_a"].startswith("Refused by the guard")
    assert results["call_b"] == "tipped 5"
    assert results["call_c"].startswith("tipped 20\n\nNote: the guard changed this call")
    assert sorted(guard.audit.outcomes()) == ["allow", "deny", "revise"]


async def test_budgets_commit_on_success_and_release_when_the_tool_fails(
    make_guard, make_agent, ledger, run, httpx2_mock
):
    guard = make_guard()
    model = httpx2_mock.post(API).mock(
        side_effect=[
            calls(("call_1", "send_money", {"recipient": "LANDLORD-DE44", "amount": 300.0})),
            calls(("call_2", "send_money", {"recipient": "broken", "amount": 400.0})),
            says("The second transfer failed."),
        ]
    )
    await run(make_agent(guard), ask("pay the landlord 300 and the broken bank 400"))

    assert [a["amount"] for a in ledger.ran("send_money")] == [300.0, 400.0]
    assert "the bank refused the transfer" in tool_messages(sent(model))["call_2"]
    assert spent(guard) == 300.0  # the failed transfer's 400 was released
    reports = guard.audit.reports()
    assert [r["ok"] for r in reports] == [True, False]
    assert "the bank refused the transfer" in reports[1]["error"]


async def test_a_tool_that_raises_releases_its_budget_and_the_error_propagates(
    make_guard, make_agent, ledger, run, httpx2_mock
):
    guard = make_guard()
    httpx2_mock.post(API).mock(side_effect=[calls(("call_1", "send_money", {"recipient": "crash", "amount": 200.0}))])
    with pytest.raises(RuntimeError, match="the bank client crashed"):
        await run(make_agent(guard), ask("pay crash 200"))

    assert spent(guard) == 0.0
    (report,) = guard.audit.reports()
    assert report["ok"] is False and "RuntimeError: the bank client crashed" in report["error"]


DATA_FLOW_SPEC = """
fsa_guard: 1
id: data-flow
values:
  - id: careful-money
    title: Careful stewardship of money
    attends_to: [CLARITY about who receives money and why]
    tools: [send_money, list_payees]
norms:
  - id: pay-only-payees-i-named
    description: Money goes only to someone I named or to a saved payee.
    tools: [send_money]
    when: >-
      !mentions(request, action.args.recipient)
      && !in_outputs(history, action.args.recipient, "list_payees")
      && !seen(history, "send_money", "recipient", action.args.recipient)
    effect: deny
    serves: [careful-money]
  - id: only-for-the-account-holder
    description: Only the account holder pays.
    tools: [send_money]
    when: get(context, "user", "") != "alice"
    effect: deny
"""


@dataclass
class Person:
    user: str


async def test_data_flow_norms_see_the_request_the_history_and_the_context(
    make_guard, make_agent, ledger, run, httpx2_mock
):
    guard = make_guard(DATA_FLOW_SPEC)
    agent = make_agent(guard, context_schema=Person, context=lambda request: {"user": request.runtime.context.user})
    model = httpx2_mock.post(API).mock(
        side_effect=[
            calls(("call_1", "list_payees", {})),
            calls(
                ("call_2", "send_money", {"recipient": "LANDLORD-DE44", "amount": 100.0}),
                ("call_3", "send_money", {"recipient": "ATTACKER-99", "amount": 100.0}),
            ),
            calls(("call_4", "send_money", {"recipient": "ATTACKER-99", "amount": 100.0})),
            says("Paid the landlord; the other transfer is refused."),
        ]
    )
    await run(agent, ask("pay my landlord 100 from my saved payees"), context=Person("alice"))

    # a saved payee (list_payees' output) is paid; an account from nowhere is refused, and stays refused on
    # a second try: a refused call is not an earlier payment
    assert ledger.ran("send_money") == [{"recipient": "LANDLORD-DE44", "amount": 100.0}]
    results = tool_messages(sent(model))
    assert "pay-only-payees-i-named" not in results["call_2"]
    assert "Money goes only to someone I named" in results["call_3"]
    assert "Money goes only to someone I named" in results["call_4"]
    assert sorted(guard.audit.outcomes()) == ["allow", "allow", "deny", "deny"]


async def test_the_context_callable_feeds_norms(make_guard, make_agent, ledger, run, httpx2_mock):
    guard = make_guard(DATA_FLOW_SPEC)
    agent = make_agent(guard, context_schema=Person, context=lambda request: {"user": request.runtime.context.user})
    model = httpx2_mock.post(API).mock(
        side_effect=[calls(("call_1", "send_money", {"recipient": "LANDLORD-DE44", "amount": 5.0})), says("No.")]
    )
    await run(agent, ask("pay LANDLORD-DE44 5"), context=Person("mallory"))

    assert ledger.calls == []
    assert "Only the account holder pays" in tool_messages(sent(model))["call_1"]


async def test_inject_values_states_the_active_values_in_the_system_message(make_guard, make_agent, run, httpx2_mock):
    guard = make_guard()
    model = httpx2_mock.post(API).mock(side_effect=[says("Hello."), says("Hello.")])
    await run(make_agent(guard, inject_values=True, system_prompt="You are Alice's assistant."), ask("hi"))
    await run(make_agent(guard), ask("hi"), config={"configurable": {"thread_id": "plain"}})

    system = sent(model, 0)["messages"][0]
    assert system["role"] == "system"
    assert system["content"].startswith("You are Alice's assistant.\n\nYou act for a person.")
    assert "- Careful stewardship of money: I spend on what lasts" in system["content"]
    assert "Thrift above all" not in system["content"]  # an inferred value is inactive until endorsed
    assert "need the person's approval" in system["content"]
    assert [m["role"] for m in sent(model, 1)["messages"]] == ["user"]  # off by default


def test_the_middleware_implements_both_paths_of_each_hook(make_guard) -> None:
    from langchain.agents.middleware import AgentMiddleware

    for hook in ("wrap_tool_call", "awrap_tool_call"):
        assert hook in FSAGuardMiddleware.__dict__
    plain, injecting = FSAGuardMiddleware(make_guard()), FSAGuardMiddleware(make_guard(), inject_values=True)
    # model calls pass through a middleware only when it has something to add to them
    assert type(plain).wrap_model_call is AgentMiddleware.wrap_model_call
    for hook in ("wrap_model_call", "awrap_model_call"):
        assert getattr(type(injecting), hook) is not getattr(AgentMiddleware, hook)
    assert isinstance(injecting, FSAGuardMiddleware) and injecting.inject_values


def test_the_hooks_show_langsmith_their_own_signature(make_guard):
    """LangSmith's traceable reads a hook's signature on every call, to pass a `run_tree` to hooks that take one;
    the signature kept on the hooks must be the one their code has."""
    import inspect

    middleware = FSAGuardMiddleware(make_guard(), inject_values=True)
    for name in ("wrap_tool_call", "awrap_tool_call", "wrap_model_call", "awrap_model_call"):
        hook = getattr(middleware, name)
        assert list(inspect.signature(hook).parameters) == ["request", "handler"]
        kept = inspect.signature(hook.__func__)
        del hook.__func__.__signature__
        try:
            assert inspect.signature(hook.__func__) == kept
        finally:
            hook.__func__.__signature__ = kept
