"""Escalations inside a LangChain agent: a LangGraph interrupt asks the person, ``Command(resume=...)``
answers, and the guard verifies the answer before anything runs."""

from __future__ import annotations

from fsa_guard_langchain import APPROVAL_TYPE
from langchain_core.messages import ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from lc_fakes import (
    API,
    CRITIC_API,
    CRITIC_BASE_URL,
    SPEC,
    THREAD,
    ask,
    calls,
    critic_answer,
    says,
    sent,
    tool_messages,
)

from fsa_guard import Answer, ApprovalQueue, OpenAICritic
from fsa_guard.testing import ScriptedApprover

BIG = ("call_1", "send_money", {"recipient": "LANDLORD-DE44", "amount": 900.0})


def paused(result):
    (pending,) = result["__interrupt__"]
    return pending.value


async def test_an_escalation_interrupts_and_approve_runs_the_call(make_guard, make_agent, ledger, run, httpx2_mock):
    guard = make_guard()
    model = httpx2_mock.post(API).mock(side_effect=[calls(BIG), says("Paid the rent.")])
    agent = make_agent(guard)

    result = await run(agent, ask("pay the rent, 900, to LANDLORD-DE44"))
    payload = paused(result)
    assert ledger.calls == []
    assert payload["type"] == APPROVAL_TYPE and payload["tool_call_id"] == "call_1"
    assert payload["action"] == {"tool": "send_money", "args": {"recipient": "LANDLORD-DE44", "amount": 900.0}}
    assert payload["allowed"] == ["approve", "deny", "edit"] and payload["approval_id"] is None
    assert [f["id"] for f in payload["findings"]] == ["big-payments-ask-me"]
    assert payload["explanation"].startswith("Needs your approval: send_money. A payment over 500 waits for my yes.")

    result = await run(agent, Command(resume={"choice": "approve", "by": "alice", "note": "rent is due"}))
    assert ledger.ran("send_money") == [{"recipient": "LANDLORD-DE44", "amount": 900.0}]
    assert '"status": "sent"' in tool_messages(sent(model))["call_1"]
    assert result["messages"][-1].content == "Paid the rent."
    assert guard.audit.outcomes() == ["escalate", "allow"]
    final = [r for r in guard.audit.records if r["kind"] == "decision"][-1]
    assert final["answer"]["by"] == "alice" and final["answer"]["note"] == "rent is due"
    assert [r["ok"] for r in guard.audit.reports()] == [True]


async def test_replaying_an_answered_interrupt_does_not_run_the_call_again(
    make_guard, make_agent, ledger, run, httpx2_mock
):
    """A replay of the interrupted checkpoint (or a second worker resuming it) brings back the same resume
    value: it meets the escalation it answered, which the guard lets be answered once."""
    guard = make_guard()
    httpx2_mock.post(API).mock(side_effect=[calls(BIG), says("Paid."), says("Paid.")])
    agent = make_agent(guard)
    await run(agent, ask("pay the rent, 900, to LANDLORD-DE44"))
    interrupted = agent.get_state(THREAD).config
    await run(agent, Command(resume="approve"))
    await run(agent, Command(resume="approve"), interrupted)
    assert ledger.ran("send_money") == [{"recipient": "LANDLORD-DE44", "amount": 900.0}]
    assert guard.audit.outcomes() == ["escalate", "allow", "deny"]
    assert [r["ok"] for r in guard.audit.reports()] == [True]


async def test_a_later_turn_that_reuses_the_call_id_is_asked_about_anew(
    make_guard, make_agent, ledger, run, httpx2_mock
):
    guard = make_guard(SPEC.replace("limit: 1000", "limit: 5000"))  # two rents fit in a day
    httpx2_mock.post(API).mock(side_effect=[calls(BIG), says("Paid."), calls(BIG), says("Paid again.")])
    agent = make_agent(guard)
    await run(agent, ask("pay the rent, 900, to LANDLORD-DE44"))
    await run(agent, Command(resume="approve"))
    assert "__interrupt__" in await run(agent, ask("and next month's rent, 900, to LANDLORD-DE44"))
    await run(agent, Command(resume="approve"))
    assert len(ledger.ran("send_money")) == 2 and guard.audit.outcomes() == ["escalate", "allow"] * 2


async def test_deny_refuses_the_call_and_the_model_is_told(make_guard, make_agent, ledger, run, httpx2_mock):
    guard = make_guard()
    model = httpx2_mock.post(API).mock(side_effect=[calls(BIG), says("Alice said no.")])
    agent = make_agent(guard)
    await run(agent, ask("pay the rent, 900, to LANDLORD-DE44"))
    result = await run(agent, Command(resume="deny"))

    assert ledger.calls == []
    seen = tool_messages(sent(model))["call_1"]
    assert seen.startswith("Refused by the guard: Denied: send_money. Denied by unknown.")
    assert next(m for m in result["messages"] if isinstance(m, ToolMessage)).status == "error"
    assert guard.audit.outcomes() == ["escalate", "deny"]


async def test_an_edit_runs_the_edited_call_verified_again(make_guard, make_agent, ledger, run, httpx2_mock):
    guard = make_guard()
    model = httpx2_mock.post(API).mock(side_effect=[calls(BIG), says("Paid 450 now, the rest later.")])
    agent = make_agent(guard)
    await run(agent, ask("pay the rent, 900, to LANDLORD-DE44"))
    edit = {"choice": "edit", "args": {"recipient": "LANDLORD-DE44", "amount": 450.0}, "by": "alice"}
    await run(agent, Command(resume=edit))

    assert ledger.ran("send_money") == [{"recipient": "LANDLORD-DE44", "amount": 450.0}]
    seen = tool_messages(sent(model))["call_1"]
    assert "Note: the guard changed this call before it ran" in seen and "amount from 900.0 to 450.0" in seen
    assert "Edited and approved by alice" in seen
    assert guard.audit.outcomes() == ["escalate", "revise"]


async def test_an_edit_into_a_hard_deny_is_refused(make_guard, make_agent, ledger, run, httpx2_mock):
    guard = make_guard()
    httpx2_mock.post(API).mock(side_effect=[calls(BIG), says("Refused.")])
    agent = make_agent(guard)
    await run(agent, ask("pay the rent"))
    await run(agent, Command(resume={"choice": "edit", "args": {"recipient": "rival-corp", "amount": 900.0}}))

    assert ledger.calls == []
    assert guard.audit.outcomes() == ["escalate", "deny"]


async def test_an_unreadable_answer_refuses_the_call(make_guard, make_agent, ledger, run, httpx2_mock):
    guard = make_guard()
    model = httpx2_mock.post(API).mock(side_effect=[calls(BIG), says("Not paid.")])
    agent = make_agent(guard)
    await run(agent, ask("pay the rent"))
    await run(agent, Command(resume={"choice": "maybe later"}))

    assert ledger.calls == []
    assert "could not be read (expected approve, deny or edit)" in tool_messages(sent(model))["call_1"]
    assert guard.audit.outcomes() == ["escalate", "deny"]


async def test_an_edit_without_args_leaves_the_call_waiting(make_guard, make_agent, ledger, run, httpx2_mock):
    guard = make_guard()
    model = httpx2_mock.post(API).mock(side_effect=[calls(BIG), says("Still waiting for Alice.")])
    agent = make_agent(guard)
    await run(agent, ask("pay the rent"))
    await run(agent, Command(resume={"choice": "edit"}))

    assert ledger.calls == []
    assert tool_messages(sent(model))["call_1"].startswith("Not run: this call still needs the person's approval.")
    assert guard.audit.outcomes() == ["escalate", "escalate"]


CRITIQUE_SPEC = """
fsa_guard: 1
id: critique
values:
  - id: careful-money
    title: Careful stewardship of money
    attends_to:
      - MOMENTS when a purchase serves a lasting need rather than an impulse
      - CLARITY about who receives money and why
      - SUBSCRIPTIONS that keep taking money long after the moment I wanted them
    tools: [subscribe]
norms:
  - id: new-subscriptions-weighed
    description: A new subscription is weighed against what lasts.
    tools: [subscribe]
    effect: critique
    serves: [careful-money]
"""


async def test_the_critic_is_asked_once_across_interrupt_and_resume(make_guard, make_agent, ledger, run, httpx2_mock):
    # no critique cache, so only the middleware's own memory of the escalation can spare the second question
    critic = OpenAICritic("gpt-4o-mini", base_url=CRITIC_BASE_URL, api_key="sk-test", retries=0)
    guard = make_guard(CRITIQUE_SPEC.replace("norms:", "critic: {cache_ttl: 0s}\nnorms:"), critic=critic)
    policies = [f"careful-money#{i}" for i in (1, 2, 3)]
    judge = httpx2_mock.post(CRITIC_API).mock(
        side_effect=[critic_answer("escalate", policies, question="Do you want another streaming service?")]
    )
    httpx2_mock.post(API).mock(
        side_effect=[calls(("call_1", "subscribe", {"service": "StreamMax", "amount": 14.99})), says("Subscribed.")]
    )
    agent = make_agent(guard)

    result = await run(agent, ask("sign me up for StreamMax"))
    assert "Do you want another streaming service?" in paused(result)["explanation"]
    await run(agent, Command(resume="approve"))

    assert judge.call_count == 1
    assert ledger.ran("subscribe") == [{"service": "StreamMax", "amount": 14.99}]
    assert guard.audit.outcomes() == ["escalate", "allow"]


async def test_parallel_calls_run_once_though_one_of_them_waits(make_guard, make_agent, ledger, run, httpx2_mock):
    guard = make_guard()
    model = httpx2_mock.post(API).mock(
        side_effect=[calls(BIG, ("call_2", "tip", {"amount": 5.0})), says("Tipped and paid.")]
    )
    agent = make_agent(guard)
    await run(agent, ask("tip 5 and pay the rent"))
    assert ledger.calls == [("tip", {"amount": 5.0})]  # the allowed call ran; the other waits

    await run(agent, Command(resume="approve"))
    assert ledger.calls == [("tip", {"amount": 5.0}), ("send_money", {"recipient": "LANDLORD-DE44", "amount": 900.0})]
    assert set(tool_messages(sent(model))) == {"call_1", "call_2"}
    assert sorted(guard.audit.outcomes()) == ["allow", "allow", "escalate"]


async def test_two_escalations_in_one_turn_are_answered_by_interrupt_id(
    make_guard, make_agent, ledger, run, httpx2_mock
):
    guard = make_guard()
    other = ("call_2", "send_money", {"recipient": "GRANDMA-AT61", "amount": 600.0})
    model = httpx2_mock.post(API).mock(side_effect=[calls(BIG, other), says("Paid the rent only.")])
    agent = make_agent(guard)
    result = await run(agent, ask("pay the rent and send grandma 600"))
    answers = {
        p.id: ("approve" if p.value["tool_call_id"] == "call_1" else {"choice": "deny", "by": "alice"})
        for p in result["__interrupt__"]
    }
    assert len(answers) == 2

    await run(agent, Command(resume=answers))
    assert ledger.ran("send_money") == [{"recipient": "LANDLORD-DE44", "amount": 900.0}]
    results = tool_messages(sent(model))
    assert '"status": "sent"' in results["call_1"] and "Denied by alice" in results["call_2"]


async def test_with_an_approval_queue_the_person_answers_there_and_the_run_resumes(
    make_guard, make_agent, ledger, run, httpx2_mock, tmp_path
):
    store = f"sqlite:///{tmp_path}/state.db"
    queue = ApprovalQueue(store)
    guard = make_guard(store=store, approver=queue)
    httpx2_mock.post(API).mock(side_effect=[calls(BIG), says("Paid.")])
    agent = make_agent(guard)

    payload = paused(await run(agent, ask("pay the rent")))
    assert payload["approval_id"].startswith("ap_")
    queue.approve(payload["approval_id"], by="alice", note="from the approvals CLI")
    await run(agent, Command(resume="resume"))

    assert ledger.ran("send_money") == [{"recipient": "LANDLORD-DE44", "amount": 900.0}]
    final = [r for r in guard.audit.records if r["kind"] == "decision"][-1]
    assert final["outcome"] == "allow" and final["answer"]["by"] == "alice"


async def test_with_an_approval_queue_the_resume_value_can_answer_too(
    make_guard, make_agent, ledger, run, httpx2_mock, tmp_path
):
    store = f"sqlite:///{tmp_path}/state.db"
    queue = ApprovalQueue(store)
    guard = make_guard(store=store, approver=queue)
    httpx2_mock.post(API).mock(side_effect=[calls(BIG), says("Not paid.")])
    agent = make_agent(guard)
    payload = paused(await run(agent, ask("pay the rent")))
    await run(agent, Command(resume={"choice": "deny", "by": "alice"}))

    assert ledger.calls == []
    assert queue.get(payload["approval_id"]).status == "deny"


def test_an_in_process_approver_answers_without_an_interrupt(make_guard, make_agent, ledger, httpx2_mock):
    approver = ScriptedApprover([Answer("approve", by="alice")])
    guard = make_guard(approver=approver)
    httpx2_mock.post(API).mock(side_effect=[calls(BIG), says("Paid.")])
    result = make_agent(guard).invoke(ask("pay the rent"), THREAD)

    assert "__interrupt__" not in result
    assert len(approver.asked) == 1
    assert ledger.ran("send_money") == [{"recipient": "LANDLORD-DE44", "amount": 900.0}]


async def test_a_resume_elsewhere_decides_again_and_the_critique_cache_spares_the_critic(
    make_guard, make_agent, ledger, run, httpx2_mock
):
    # another process: a new middleware (and agent) over the same checkpoints and the same guard settings
    critic = OpenAICritic("gpt-4o-mini", base_url=CRITIC_BASE_URL, api_key="sk-test", retries=0)
    guard = make_guard(CRITIQUE_SPEC, critic=critic)
    policies = [f"careful-money#{i}" for i in (1, 2, 3)]
    judge = httpx2_mock.post(CRITIC_API).mock(side_effect=[critic_answer("escalate", policies, question="Sure?")])
    httpx2_mock.post(API).mock(
        side_effect=[calls(("call_1", "subscribe", {"service": "StreamMax", "amount": 14.99})), says("Subscribed.")]
    )
    checkpoints = InMemorySaver()
    await run(make_agent(guard, checkpointer=checkpoints), ask("sign me up for StreamMax"))
    await run(make_agent(guard, checkpointer=checkpoints), Command(resume="approve"))

    assert judge.call_count == 1
    assert ledger.ran("subscribe") == [{"service": "StreamMax", "amount": 14.99}]
    assert guard.audit.outcomes() == ["escalate", "escalate", "allow"]  # decided again, from the cache


async def test_a_queued_approval_resumes_elsewhere_by_its_id(
    make_guard, make_agent, ledger, run, httpx2_mock, tmp_path
):
    store = f"sqlite:///{tmp_path}/state.db"
    queue = ApprovalQueue(store)
    guard = make_guard(store=store, approver=queue)
    httpx2_mock.post(API).mock(side_effect=[calls(BIG), says("Paid.")])
    checkpoints = InMemorySaver()
    payload = paused(await run(make_agent(guard, checkpointer=checkpoints), ask("pay the rent")))
    queue.approve(payload["approval_id"], by="alice")

    resume = {"choice": "resume", "approval_id": payload["approval_id"]}
    await run(make_agent(guard, checkpointer=checkpoints), Command(resume=resume))
    assert ledger.ran("send_money") == [{"recipient": "LANDLORD-DE44", "amount": 900.0}]
    assert queue.get(payload["approval_id"]).claimed_by == guard.identity
