"""guard_tools(): plain LangChain tools that ask the guard before they run."""

from __future__ import annotations

import time
from typing import Annotated, Any

import pytest
from fsa_guard_langchain import GuardedTool, guard_tools
from langchain.agents import create_agent
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool, InjectedToolCallId, ToolException, tool
from langchain_openai import ChatOpenAI
from langgraph.types import Command
from lc_fakes import API, ask, calls, says, sent, tool_messages
from pydantic import BaseModel, Field

from fsa_guard import EscalationRequired

DAY = 86400.0


class TransferArgs(BaseModel):
    recipient: str = Field(description="An account or a payee's name")
    amount: float = Field(description="How much to send")


class Transfer(BaseTool):
    """A plain BaseTool subclass, sync and async, that records what it sent."""

    name: str = "send_money"
    description: str = "Send money to a recipient."
    args_schema: type[BaseModel] = TransferArgs
    sent: list[dict[str, Any]] = Field(default_factory=list)

    def _run(self, recipient: str, amount: float) -> str:
        self.sent.append({"recipient": recipient, "amount": amount})
        if recipient == "broken":
            raise ToolException("the bank refused the transfer")
        if recipient == "crash":
            raise RuntimeError("the bank client crashed")
        return f"sent {amount:g} to {recipient}"

    async def _arun(self, recipient: str, amount: float) -> str:
        return self._run(recipient, amount)


def tip(amount: float) -> str:
    """Tip the courier."""
    return f"tipped {amount:g}"


@pytest.fixture(params=["sync", "async"])
def call(request: pytest.FixtureRequest):
    async def invoke(tool: BaseTool, args: dict[str, Any]) -> Any:
        return tool.invoke(args) if request.param == "sync" else await tool.ainvoke(args)

    return invoke


def test_a_wrapped_tool_keeps_its_name_description_and_schema(make_guard):
    transfer = Transfer()
    wrapped, tipping = guard_tools([transfer, tip], make_guard())
    assert isinstance(wrapped, GuardedTool) and wrapped.inner is transfer
    assert (wrapped.name, wrapped.description) == ("send_money", transfer.description)
    assert wrapped.args_schema is TransferArgs
    assert wrapped.tool_call_schema.model_json_schema() == transfer.tool_call_schema.model_json_schema()
    assert tipping.name == "tip" and tipping.description == "Tip the courier."


async def test_each_call_is_decided_before_it_runs(make_guard, call):
    guard = make_guard()
    transfer = Transfer()
    send_money, tipping = guard_tools([transfer, tip], guard)

    waiting = await call(send_money, {"recipient": "LANDLORD-DE44", "amount": 900.0})
    assert waiting.startswith("Not run: this call needs the person's approval.")
    assert await call(send_money, {"recipient": "LANDLORD-DE44", "amount": 300.0}) == "sent 300 to LANDLORD-DE44"
    refused = await call(send_money, {"recipient": "rival-corp", "amount": 10.0})
    assert refused.startswith("Refused by the guard: Denied: send_money. No money goes to a rival.")
    # revised: tips are at most 20, and the model reads that its call was changed
    assert await call(tipping, {"amount": 50.0}) == (
        "tipped 20\n\nNote: the guard changed this call before it ran: Allowed after a change: tip. "
        "Changed amount from 50.0 to 20.0. Tips are at most 20. This protects your value "
        "'Careful stewardship of money'."
    )

    assert transfer.sent == [{"recipient": "LANDLORD-DE44", "amount": 300.0}]
    assert guard.audit.outcomes() == ["escalate", "allow", "deny", "revise"]
    assert [r["ok"] for r in guard.audit.reports()] == [True, True]
    assert guard.store.usage("daily-spend", DAY, time.time()) == 300.0


async def test_raise_on_escalate_hands_the_decision_to_the_caller(make_guard, call):
    (send_money,) = guard_tools([Transfer()], make_guard(), raise_on_escalate=True)
    with pytest.raises(EscalationRequired) as raised:
        await call(send_money, {"recipient": "LANDLORD-DE44", "amount": 900.0})
    assert raised.value.decision.finding_ids() == ["big-payments-ask-me"]


async def test_a_failed_call_releases_its_budget(make_guard, call):
    guard = make_guard()
    transfer = Transfer(handle_tool_error=True)
    (send_money,) = guard_tools([transfer], guard)

    assert await call(send_money, {"recipient": "broken", "amount": 400.0}) == "the bank refused the transfer"
    with pytest.raises(RuntimeError, match="crashed"):
        await call(send_money, {"recipient": "crash", "amount": 400.0})
    assert guard.store.usage("daily-spend", DAY, time.time()) == 0.0
    assert [r["ok"] for r in guard.audit.reports()] == [False, False]


async def test_an_unhandled_tool_error_propagates_as_it_did(make_guard, call):
    (send_money,) = guard_tools([Transfer()], make_guard())
    with pytest.raises(ToolException, match="the bank refused"):
        await call(send_money, {"recipient": "broken", "amount": 10.0})


DATA_FLOW_SPEC = """
fsa_guard: 1
id: data-flow
norms:
  - id: pay-only-payees-i-named
    description: Money goes only to someone I named or paid before.
    tools: [send_money]
    when: >-
      !mentions(request, action.args.recipient)
      && !seen(history, "send_money", "recipient", action.args.recipient)
    effect: deny
"""


def test_calls_in_a_guard_session_carry_the_request_and_history(make_guard):
    guard = make_guard(DATA_FLOW_SPEC)
    transfer = Transfer()
    (send_money,) = guard_tools([transfer], guard)
    with guard.session(request="pay LANDLORD-DE44 the rent") as session:
        send_money.invoke({"recipient": "LANDLORD-DE44", "amount": 100.0})
        send_money.invoke({"recipient": "ATTACKER-1", "amount": 100.0})
    with guard.session(request="pay again", history=session.history):
        send_money.invoke({"recipient": "LANDLORD-DE44", "amount": 100.0})

    assert [s["recipient"] for s in transfer.sent] == ["LANDLORD-DE44", "LANDLORD-DE44"]
    assert [c.tool for c in session.history] == ["send_money"]  # the refused call is not history


def test_guarded_tools_work_in_an_agent_without_the_middleware(make_guard, httpx2_mock):
    guard = make_guard()
    transfer = Transfer()
    model = httpx2_mock.post(API).mock(
        side_effect=[calls(("call_1", "send_money", {"recipient": "rival-corp", "amount": 5.0})), says("Refused.")]
    )
    agent = create_agent(ChatOpenAI(model="gpt-4o-mini", api_key="sk-test"), tools=guard_tools([transfer], guard))
    agent.invoke(ask("send 5 to rival-corp"))

    assert transfer.sent == []
    assert tool_messages(sent(model))["call_1"].startswith("Refused by the guard")


def test_args_langchain_injects_reach_the_tool_and_are_no_part_of_the_call(make_guard):
    """A tool that reads its call id (to answer with a Command) or its runtime gets them as LangChain gives
    them; the guard judges only what the model sent, and the tool answers under the model's call id."""
    seen: list[str] = []

    @tool
    def send_money(recipient: str, amount: float, tool_call_id: Annotated[str, InjectedToolCallId]) -> Command:
        """Send money and say so in the state."""
        seen.append(tool_call_id)
        return Command(update={"messages": [ToolMessage(f"sent {amount:g}", tool_call_id=tool_call_id)]})

    guard = make_guard()
    (guarded,) = guard_tools([send_money], guard)
    call = {"type": "tool_call", "name": "send_money", "args": {"recipient": "bob", "amount": 5.0}, "id": "call_7"}
    result = guarded.invoke(call)
    assert seen == ["call_7"] and result.update["messages"][0].tool_call_id == "call_7"
    (decision,) = [r for r in guard.audit.records if r["kind"] == "decision"]
    assert decision["action"]["args"] == {"recipient": "bob", "amount": 5.0}
