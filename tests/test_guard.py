"""The Guard: decorated tools, sessions, async parity, approvers, audit, and the Decision it returns."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

import fsa_guard
from fsa_guard import (
    STAGES,
    Action,
    Answer,
    AuditError,
    CallbackApprover,
    CritiqueVerdict,
    Decision,
    Denied,
    EscalationRequired,
    Guard,
    MemoryAuditSink,
    PolicyJudgment,
    policy_ids,
)

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)

SPEC = """
id: alice
values:
  - id: careful-money
    title: Careful stewardship of money
    attends_to:
      - CLARITY about who receives money and why
  - id: attention
    title: Protecting my attention
    attends_to:
      - QUIET hours that let me rest
norms:
  - id: no-huge
    description: No payments above 900.
    tools: [send_money]
    when: action.args.amount > 900.0
    effect: deny
    serves: [careful-money]
  - id: big-needs-approval
    description: Payments above 500 need my approval.
    tools: [send_money]
    when: action.args.amount > 500.0
    effect: escalate
    serves: [careful-money]
  - id: cap-tips
    description: Tips are at most 20.
    tools: [tip]
    when: action.args.amount > 20.0
    effect: revise
    revise: {amount: '20.0'}
    serves: [careful-money]
  - id: known-payee
    description: Money only to accounts in my request or in a bill I read.
    tools: [pay_bill]
    when: '!mentions(request, action.args.iban) && !in_outputs(history, action.args.iban, "read_bill")'
    effect: deny
    serves: [careful-money]
  - id: no-spam
    tools: [notify]
    when: action.args.text.contains("!!!")
    effect: deny
    serves: [attention]
budgets:
  - id: daily-spend
    tools: [send_money, tip]
    measure: action.args.amount
    limit: 1000
    window: 1d
    serves: [careful-money]
"""


@pytest.fixture
def guard(make_guard) -> Guard:
    return make_guard(SPEC, clock=lambda: T0)


def spent(guard: Guard) -> float:
    return guard.store.usage("daily-spend", 86400, T0.timestamp())


# -- @guard.tool, sync ---------------------------------------------------------------------------------


def test_sync_tool_allowed_call_runs(guard):
    ran: list[tuple[str, float]] = []

    @guard.tool
    def send_money(recipient: str, amount: float) -> str:
        ran.append((recipient, amount))
        return "sent"

    assert send_money("US13", 250.0) == "sent"
    assert send_money(recipient="US14", amount=5) == "sent"
    assert ran == [("US13", 250.0), ("US14", 5)]
    assert spent(guard) == 255.0  # committed after the call ran
    assert send_money.__name__ == "send_money"


def test_sync_tool_revised_call_runs_with_revised_args(guard):
    got: list[float] = []

    @guard.tool
    def tip(amount: float, to: str = "waiter") -> float:
        got.append(amount)
        return amount

    assert tip(35.0) == 20.0
    assert tip(5.0) == 5.0
    assert got == [20.0, 5.0]
    assert spent(guard) == 25.0


def test_sync_tool_denied_raises_with_the_decision(guard):
    ran = []

    @guard.tool
    def send_money(recipient: str, amount: float) -> str:
        ran.append(1)
        return "sent"

    with pytest.raises(Denied) as info:
        send_money("US13", 1000.0)
    assert not isinstance(info.value, EscalationRequired)
    d = info.value.decision
    assert isinstance(d, Decision) and d.outcome == "deny" and "no-huge" in d.finding_ids()
    assert "Careful stewardship of money" in str(info.value)
    assert ran == [] and spent(guard) == 0.0


def test_sync_tool_escalation_raises_escalation_required(guard):
    ran = []

    @guard.tool
    def send_money(recipient: str, amount: float) -> str:
        ran.append(1)
        return "sent"

    with pytest.raises(EscalationRequired) as info:
        send_money("US13", 600.0)
    assert info.value.decision.outcome == "escalate"
    assert info.value.decision.finding_ids() == ["big-needs-approval"]
    assert ran == [] and spent(guard) == 0.0


def test_tool_exception_releases_the_budget(guard):
    @guard.tool
    def send_money(recipient: str, amount: float) -> str:
        raise ConnectionError("bank is down")

    with pytest.raises(ConnectionError):
        send_money("US13", 400.0)
    assert spent(guard) == 0.0


def test_tool_with_a_custom_name(guard):
    @guard.tool(name="send_money")
    def transfer(recipient: str, amount: float) -> str:
        return "sent"

    with pytest.raises(Denied):
        transfer("US13", 1000.0)
    assert transfer("US13", 10.0) == "sent"


def test_a_method_is_guarded_without_its_instance(guard):
    class Bank:
        def __init__(self) -> None:
            self.paid: list[tuple[str, float]] = []

        @guard.tool(name="send_money")
        def pay(self, recipient: str, amount: float) -> str:
            self.paid.append((recipient, amount))
            return "sent"

        @guard.tool
        async def tip(self, amount: float) -> float:
            return amount

    bank = Bank()
    assert bank.pay("US13", 10.0) == "sent" and bank.pay(recipient="US14", amount=5.0) == "sent"
    assert bank.paid == [("US13", 10.0), ("US14", 5.0)] and spent(guard) == 15.0
    with pytest.raises(Denied) as info:
        bank.pay("US13", 1000.0)
    assert dict(info.value.decision.proposed.args) == {"recipient": "US13", "amount": 1000.0}
    assert asyncio.run(bank.tip(35.0)) == 20.0  # revised, and run on the same instance


def test_a_generator_function_is_refused(guard):
    """Its body runs while it is iterated, after the guard reported the call: a failure would not be reported."""
    with pytest.raises(TypeError, match="cannot guard the generator function stream"):

        @guard.tool
        def stream(n: int):  # type: ignore[no-untyped-def]
            yield n


def test_args_schema_from_signature_denies_wrong_types(guard):
    ran = []

    @guard.tool
    def send_money(recipient: str, amount: float) -> str:
        ran.append(1)
        return "sent"

    for bad in [("US13", "lots"), (13, 10.0), ("US13", None), ("US13", [1])]:
        with pytest.raises(Denied) as info:
            send_money(*bad)
        d = info.value.decision
        assert d.outcome == "deny"
        (f,) = d.findings
        assert (f.source, f.id, f.effect) == ("schema", "malformed-action", "deny")
    assert ran == []


def test_args_schema_from_signature_denies_unknown_and_missing_args(guard):
    @guard.tool
    def send_money(recipient: str, amount: float) -> str:
        return "sent"

    for args in ({"recipient": "US13", "amount": 5.0, "memo": "x"}, {"recipient": "US13"}):
        d = guard.decide(Action("send_money", args))
        assert d.outcome == "deny" and d.finding_ids() == ["malformed-action"], args
    with pytest.raises((Denied, TypeError)):  # a call the function cannot take never runs
        send_money(recipient="US13", amount=5.0, memo="x")


def test_tool_with_kwargs_accepts_extra_args(guard):
    @guard.tool
    def notify(text: str, **options: object) -> dict:
        return {"text": text, **options}

    assert notify("hello", channel="sms") == {"text": "hello", "channel": "sms"}
    with pytest.raises(Denied):
        notify("buy now!!!", channel="push")


def test_register_tool_with_a_json_schema(make_guard):
    g = make_guard(
        """
        defaults:
          unknown_tool: deny
        norms:
          - id: n
            tools: [pay]
            when: "false"
            effect: deny
        """
    )
    g.register_tool(
        "pay",
        {
            "type": "object",
            "properties": {"iban": {"type": "string", "pattern": "^[A-Z]{2}[0-9]+$"}, "amount": {"type": "number"}},
            "required": ["iban", "amount"],
            "additionalProperties": False,
        },
    )
    assert g.decide(Action("pay", {"iban": "DE12", "amount": 5})).outcome == "allow"
    for args in ({"iban": "DE12"}, {"iban": "de12", "amount": 5}, {"iban": "DE12", "amount": "5"}, {"x": 1}):
        d = g.decide(Action("pay", args))
        assert d.outcome == "deny" and d.finding_ids() == ["malformed-action"], args
    with pytest.raises(ValueError):
        g.register_tool("bad", {"type": "no-such-type"})


# -- @guard.tool, async --------------------------------------------------------------------------------


async def test_async_tool_allowed_revised_denied_escalated(guard):
    ran: list[tuple[str, float]] = []

    @guard.tool
    async def send_money(recipient: str, amount: float) -> str:
        await asyncio.sleep(0)
        ran.append((recipient, amount))
        return "sent"

    @guard.tool
    async def tip(amount: float) -> float:
        return amount

    assert await send_money("US13", 250.0) == "sent"
    assert await tip(50.0) == 20.0
    with pytest.raises(Denied) as info:
        await send_money("US13", 1000.0)
    assert info.value.decision.outcome == "deny"
    with pytest.raises(EscalationRequired):
        await send_money("US13", 600.0)
    with pytest.raises(Denied) as info:
        await send_money("US13", "lots")
    assert info.value.decision.finding_ids() == ["malformed-action"]
    assert ran == [("US13", 250.0)]
    assert spent(guard) == 270.0


async def test_async_tool_exception_releases_the_budget(guard):
    @guard.tool
    async def send_money(recipient: str, amount: float) -> str:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await send_money("US13", 400.0)
    assert spent(guard) == 0.0


# -- sessions ------------------------------------------------------------------------------------------


def bill_tools(guard: Guard):
    paid: list[str] = []

    @guard.tool
    def read_bill(bill_id: str) -> str:
        return json.dumps({"bill": bill_id, "iban": "FR76 3000 6000", "amount": 80.0})

    @guard.tool
    def pay_bill(iban: str, amount: float) -> str:
        paid.append(iban)
        return "paid"

    return read_bill, pay_bill, paid


def test_session_supplies_request_and_history(guard):
    read_bill, pay_bill, paid = bill_tools(guard)
    with pytest.raises(Denied):
        pay_bill("FR7630006000", 80.0)  # outside a session there is no bill in the history
    with guard.session(request="please pay the electricity bill") as session:
        read_bill("b-17")
        assert pay_bill("FR7630006000", 80.0) == "paid"  # the account is in the bill that was read
        with pytest.raises(Denied):
            pay_bill("NL01EVIL", 80.0)  # not in the request nor in any bill
        assert [c.tool for c in session.history] == ["read_bill", "pay_bill"]
        assert json.loads(session.history[0].output)["iban"] == "FR76 3000 6000"
    with guard.session(request="pay NL01EVIL 80 euros"):
        assert pay_bill("NL01EVIL", 80.0) == "paid"  # named in the request
    assert paid == ["FR7630006000", "NL01EVIL"]


def test_sessions_do_not_leak_history(guard):
    read_bill, pay_bill, _ = bill_tools(guard)
    with guard.session(request="x"):
        read_bill("b-1")
    with guard.session(request="x"), pytest.raises(Denied):
        pay_bill("FR7630006000", 80.0)


def test_session_records_revised_args_and_failures(guard):
    @guard.tool
    def tip(amount: float) -> str:
        return "ok"

    @guard.tool
    def send_money(recipient: str, amount: float) -> str:
        raise OSError("offline")

    with guard.session() as session:
        tip(50.0)
        with pytest.raises(OSError):
            send_money("US1", 5.0)
    assert [dict(c.args) for c in session.history] == [{"amount": 20.0}, {"recipient": "US1", "amount": 5.0}]
    assert "offline" in str(session.history[1].output)


async def test_async_session(guard):
    paid = []

    @guard.tool
    async def read_bill(bill_id: str) -> dict:
        return {"iban": "FR76 3000 6000"}

    @guard.tool
    async def pay_bill(iban: str, amount: float) -> str:
        paid.append(iban)
        return "paid"

    async with guard.session(request="pay my bill"):
        await read_bill("b-1")
        assert await pay_bill("FR7630006000", 1.0) == "paid"
        with pytest.raises(Denied):
            await pay_bill("XX99", 1.0)
    assert paid == ["FR7630006000"]


# -- adecide -------------------------------------------------------------------------------------------

PARITY_ACTIONS = [
    Action("send_money", {"recipient": "US13", "amount": 250.0}),
    Action("send_money", {"recipient": "US13", "amount": 600.0}),
    Action("send_money", {"recipient": "US13", "amount": 1000.0}),
    Action("send_money", {"recipient": "US13"}),
    Action("tip", {"amount": 30.0}),
    Action("notify", {"text": "hi!!!"}),
    Action("pay_bill", {"iban": "FR99", "amount": 1.0}, request="pay FR99"),
    Action("unknown_tool", {"x": 1}),
    Action("tip", {"amount": {"nested": [1, None, True]}}),
]


async def test_adecide_matches_decide(make_guard):
    sync_guard = make_guard(SPEC, clock=lambda: T0)
    async_guard = make_guard(SPEC, clock=lambda: T0)
    for action in PARITY_ACTIONS:
        a = sync_guard.decide(action)
        b = await async_guard.adecide(action)
        assert (a.outcome, a.action, a.findings, a.spec_digest) == (b.outcome, b.action, b.findings, b.spec_digest)


# -- approvers -----------------------------------------------------------------------------------------


def with_approver(make_guard, answer, **options) -> tuple[Guard, list[Decision]]:
    asked: list[Decision] = []

    def callback(decision: Decision):
        asked.append(decision)
        return answer(decision) if callable(answer) else answer

    return make_guard(SPEC, clock=lambda: T0, approver=CallbackApprover(callback), **options), asked


def test_approver_approve_allows(make_guard):
    g, asked = with_approver(make_guard, Answer("approve", by="alice"))
    d = g.decide(Action("send_money", {"recipient": "US13", "amount": 600.0}))
    assert d.outcome == "allow" and d.allowed
    assert len(asked) == 1 and asked[0].outcome == "escalate"
    assert asked[0].finding_ids() == ["big-needs-approval"]
    assert "human-approved" in d.finding_ids()
    assert "escalate" in d.timings
    assert g.decide(Action("send_money", {"recipient": "US13", "amount": 5.0})).outcome == "allow"
    assert len(asked) == 1  # allowed calls never ask


def test_approver_is_not_asked_about_denials(make_guard):
    g, asked = with_approver(make_guard, Answer("approve"))
    assert g.decide(Action("send_money", {"recipient": "US13", "amount": 1000.0})).outcome == "deny"
    assert asked == []


def test_approver_deny_denies(make_guard):
    g, _ = with_approver(make_guard, Answer("deny", by="alice", note="not this month"))
    d = g.decide(Action("send_money", {"recipient": "US13", "amount": 600.0}))
    assert d.outcome == "deny"
    (f,) = [f for f in d.findings if f.source == "human"]
    assert f.id == "human-denied" and "alice" in f.message and "not this month" in f.message


def test_approver_edit_is_verified_again(make_guard):
    g, _ = with_approver(make_guard, Answer("edit", args={"recipient": "US13", "amount": 450.0}, by="alice"))
    d = g.decide(Action("send_money", {"recipient": "US13", "amount": 600.0}))
    assert d.outcome == "revise"
    assert dict(d.action.args) == {"recipient": "US13", "amount": 450.0}
    assert "human-edited" in d.finding_ids()
    g.report(d, ok=True)
    assert spent(g) == 450.0


def test_approver_edit_that_hits_a_deny_is_denied(make_guard):
    g, _ = with_approver(make_guard, Answer("edit", args={"recipient": "US13", "amount": 5000.0}))
    d = g.decide(Action("send_money", {"recipient": "US13", "amount": 600.0}))
    assert d.outcome == "deny"
    assert "no-huge" in d.finding_ids()
    assert spent(g) == 0.0


@pytest.mark.parametrize("edited", [{"amount": "60"}, {}], ids=["amount-as-text", "amount-left-out"])
def test_an_edit_a_budget_cannot_measure_asks_again(make_guard, edited):
    """The person wrote the call, but a budget that cannot measure it could not charge it either: the call
    does not run past the budget unseen."""
    body = """
    norms:
      - {id: big, tools: [pay], when: 'action.args.amount > 50.0', effect: escalate, on_error: skip}
    budgets:
      - {id: daily, tools: [pay], measure: action.args.amount, limit: 100, window: 1d, on_exceed: escalate}
    """
    edit = Answer("edit", args={"to": "bob", **edited}, by="alice")
    g = make_guard(body, clock=lambda: T0, approver=CallbackApprover(lambda d: edit))
    d = g.decide(Action("pay", {"to": "bob", "amount": 60.0}))
    assert d.outcome == "escalate" and d.finding_ids()[-2:] == ["daily", "changed-since-asked"]
    assert "could not measure" in d.findings[-1].message and d.reservations == ()
    measured = Answer("edit", args={"amount": 70.0})
    fine = make_guard(body, clock=lambda: T0, approver=CallbackApprover(lambda d: measured))
    assert fine.decide(Action("pay", {"amount": 60.0})).outcome == "revise"  # measured, charged: it runs


def test_a_slow_answer_reserves_from_when_it_came(make_guard):
    """A person who answers after the reservation's ttl must not leave a reservation that is born expired:
    the next call would not see it and the budget would overspend."""
    clock = [T0]

    def approve_after_ten_minutes(decision: Decision) -> Answer:
        clock[0] += timedelta(minutes=10)
        return Answer("approve", by="alice")

    body = """
    norms:
      - {id: big, tools: [pay], when: 'action.args.amount > 50.0', effect: escalate}
    budgets:
      - {id: daily, tools: [pay], measure: action.args.amount, limit: 100, window: 1d}
    """
    g = make_guard(body, clock=lambda: clock[0], approver=CallbackApprover(approve_after_ten_minutes))
    first = g.decide(Action("pay", {"amount": 60.0}))
    assert first.outcome == "allow" and first.at == T0 + timedelta(minutes=10)
    assert g.store.usage("daily", 86400, clock[0].timestamp()) == 60.0  # live, though the ttl is 5 minutes
    assert g.decide(Action("pay", {"amount": 50.0})).outcome == "deny"  # 110 would exceed 100


def test_approving_an_exceeded_budget_spends_it(make_guard):
    asked: list[Decision] = []

    def approve(decision: Decision) -> Answer:
        asked.append(decision)
        return Answer("approve", by="alice")

    body = "budgets:\n  - id: b\n    tools: [pay]\n    measure: action.args.amount\n    limit: 100\n    window: 1d\n"
    g = make_guard(body + "    on_exceed: escalate\n", clock=lambda: T0, approver=CallbackApprover(approve))
    g.report(g.decide(Action("pay", {"amount": 90.0})), ok=True)
    d = g.decide(Action("pay", {"amount": 30.0}))
    assert d.outcome == "allow" and len(asked) == 1 and asked[0].finding_ids() == ["b"]
    g.report(d, ok=True)
    assert g.store.usage("b", 86400, T0.timestamp()) == 120.0  # a person approved the overspend
    # a budget that says deny is never put to a person
    strict = make_guard(body, clock=lambda: T0, approver=CallbackApprover(approve))
    strict.report(strict.decide(Action("pay", {"amount": 90.0})), ok=True)
    assert strict.decide(Action("pay", {"amount": 30.0})).outcome == "deny"
    assert len(asked) == 1


def test_approver_that_fails_leaves_the_call_escalated(make_guard):
    def broken(decision):
        raise RuntimeError("nobody home")

    g, _ = with_approver(make_guard, broken)
    d = g.decide(Action("send_money", {"recipient": "US13", "amount": 600.0}))
    assert d.outcome == "escalate"
    assert "approver-failed" in d.finding_ids()
    g2, _ = with_approver(make_guard, "yes please")
    assert g2.decide(Action("send_money", {"recipient": "US13", "amount": 600.0})).outcome == "escalate"


async def test_async_approver_callback(make_guard):
    async def approve(decision: Decision) -> Answer:
        await asyncio.sleep(0)
        return Answer("approve", by="bob")

    g = make_guard(SPEC, clock=lambda: T0, approver=CallbackApprover(approve))
    d = await g.adecide(Action("send_money", {"recipient": "US13", "amount": 600.0}))
    assert d.outcome == "allow" and "human-approved" in d.finding_ids()


def test_sync_decide_with_an_async_approver_callback(make_guard):
    async def deny(decision: Decision) -> Answer:
        return Answer("deny", by="bob")

    g = make_guard(SPEC, clock=lambda: T0, approver=CallbackApprover(deny))
    assert g.decide(Action("send_money", {"recipient": "US13", "amount": 600.0})).outcome == "deny"


def test_decorated_tool_runs_after_approval(make_guard):
    g, _ = with_approver(make_guard, Answer("approve"))

    @g.tool
    def send_money(recipient: str, amount: float) -> str:
        return f"sent {amount}"

    assert send_money("US13", 600.0) == "sent 600.0"


# -- audit ---------------------------------------------------------------------------------------------


def test_memory_audit_sink_gets_one_record_per_decision(make_guard):
    sink = MemoryAuditSink()
    g = make_guard(SPEC, clock=lambda: T0, audit=sink)
    decisions = [g.decide(a) for a in PARITY_ACTIONS]
    assert len(sink.records) == len(decisions)
    for record, d in zip(sink.records, decisions, strict=True):
        assert record["outcome"] == d.outcome
        assert record["spec_digest"] == g.spec.digest
        assert [f["id"] for f in record["findings"]] == d.finding_ids()
        assert "time" in record
        json.dumps(record)
    assert all("record" in d.timings for d in decisions)


def test_audit_sink_that_raises_denies_and_spends_nothing(make_guard):
    class Broken:
        def write(self, record):
            raise AuditError("disk full")

    g = make_guard(SPEC, clock=lambda: T0, audit=Broken())
    d = g.decide(Action("send_money", {"recipient": "US13", "amount": 250.0}))
    assert d.outcome == "deny" and not d.allowed
    f = d.findings[-1]
    assert (f.source, f.id, f.effect) == ("audit", "audit-unavailable", "deny")
    assert "disk full" in f.message
    assert d.reservations == ()
    assert spent(g) == 0.0
    revised = g.decide(Action("tip", {"amount": 50.0}))
    assert revised.outcome == "deny" and revised.action.args == {"amount": 50.0}


def test_audit_sink_with_an_unexpected_error_also_denies(make_guard):
    class Broken:
        def write(self, record):
            raise KeyError("oops")

    g = make_guard(SPEC, clock=lambda: T0, audit=Broken())

    @g.tool
    def send_money(recipient: str, amount: float) -> str:
        raise AssertionError("must not run")

    with pytest.raises(Denied) as info:
        send_money("US13", 5.0)
    assert info.value.decision.findings[-1].id == "audit-unavailable"
    assert spent(g) == 0.0


# -- the Decision --------------------------------------------------------------------------------------


def test_explain_cites_value_titles(guard):
    d = guard.decide(Action("send_money", {"recipient": "US13", "amount": 600.0}))
    text = d.explain()
    assert text.startswith("Needs your approval: send_money.")
    assert "Payments above 500 need my approval." in text
    assert "'Careful stewardship of money'" in text
    assert "careful-money" not in text
    assert d.value_titles == {"careful-money": "Careful stewardship of money"}
    assert "Protecting my attention" in guard.decide(Action("notify", {"text": "!!!"})).explain()
    allowed = guard.decide(Action("send_money", {"recipient": "US13", "amount": 6.0})).explain()
    assert allowed.startswith("Allowed: send_money.")


def test_explain_of_a_revision_says_what_changed(guard):
    text = guard.decide(Action("tip", {"amount": 50.0})).explain()
    assert "Changed amount from 50.0 to 20.0." in text and "Careful stewardship of money" in text


def test_explain_shows_revised_values_as_the_call_carries_them(make_guard):
    # YAML null removes an arg; the CEL expression null sets it to null: both show as the tool call has them
    g = make_guard(
        """
        norms:
          - id: r
            tools: [t]
            effect: revise
            revise: {to: "null", note: "'x'", cc: null}
        """
    )
    d = g.decide(Action("t", {"to": "bob", "cc": "amy"}))
    assert dict(d.action.args) == {"to": None, "note": "x"}
    assert 'Removed cc; set note to "x"; changed to from "bob" to null.' in d.explain()


def test_to_dict_is_json_serialisable(guard):
    for action in PARITY_ACTIONS:
        d = guard.decide(action)
        data = json.loads(json.dumps(d.to_dict()))
        assert data["outcome"] == d.outcome
        assert data["action"]["tool"] == d.action.tool
        assert [f["id"] for f in data["findings"]] == d.finding_ids()
        assert {f["source"] for f in data["findings"]} <= {
            "norm",
            "budget",
            "schema",
            "critic",
            "human",
            "guard",
            "store",
            "audit",
        }
        assert data["spec_digest"] == guard.spec.digest
        assert data["explanation"] == d.explain()


def test_timings_are_named_by_stage(make_guard):
    stages = set(STAGES) | {"total"}
    assert STAGES == ("verify", "critique", "revise", "escalate", "record")
    g, _ = with_approver(make_guard, Answer("approve"), audit=MemoryAuditSink())
    for action in PARITY_ACTIONS:
        d = g.decide(action)
        assert set(d.timings) <= stages
        assert {"verify", "total", "record"} <= set(d.timings)
        assert all(isinstance(v, float) and v >= 0 for v in d.timings.values())
        assert d.timings["total"] >= max(v for k, v in d.timings.items() if k != "total")
    assert "revise" in g.decide(Action("tip", {"amount": 50.0})).timings
    g.store = type(g.store)()  # the approved calls above spent the daily budget
    assert "escalate" in g.decide(Action("send_money", {"recipient": "US13", "amount": 600.0})).timings


def test_timings_include_critique_when_a_critic_is_asked(make_guard):
    class Critic:
        def critique(self, request):
            judged = [PolicyJudgment(p, "honoured") for p in policy_ids(request.values)]
            return CritiqueVerdict("allow", "fine", values=[v.id for v in request.values], judgments=judged)

        async def acritique(self, request):
            return self.critique(request)

    g = make_guard(
        "values:\n  - id: v\n    title: T\n    attends_to: [MOMENTS of x]\n    tools: [post]\n    critique: true\n",
        critic=Critic(),
    )
    d = g.decide(Action("post", {}))
    assert d.outcome == "allow" and "critique" in d.timings
    assert set(d.timings) <= set(STAGES) | {"total"}


def test_decide_never_raises_for_bad_input(guard):
    weird = [
        Action("send_money", {"recipient": object(), "amount": 1.0}),
        Action("send_money", {"recipient": "x", "amount": float("nan")}),
        Action("send_money", {"recipient": "x", "amount": 10**400}),
        Action("pay_bill", {"iban": "x", "amount": 1.0}, history=[None]),  # type: ignore[list-item]
        Action("pay_bill", {"iban": {"a": [1, {"b": None}]}, "amount": 1.0}),
    ]
    for action in weird:
        assert guard.decide(action).outcome in ("deny", "escalate")


@pytest.mark.parametrize(
    ("action", "problem"),
    [
        (Action("tip", {"amount": float("inf")}), "args.amount is inf, not a finite number"),
        (Action("tip", {"amount": 1.0, "split": [1.0, float("nan")]}), "args.split[1] is nan, not a finite number"),
        (Action("tip", {"amount": 1.0}, context=[("blocked", True)]), "context of tip must be a mapping, got list"),  # type: ignore[arg-type]
        # no norm of "tip" applies to "tip " (none would fire), yet a runner that trims names would run tip
        (Action("tip ", {"amount": 500.0}), "tool must be a non-empty name without controls or spaces around it"),
        (Action("\u200btip", {"amount": 500.0}), "got '\\u200btip'"),
    ],
)
def test_what_no_tool_call_or_record_can_carry_is_malformed(guard, action, problem):
    """NaN and infinities would be charged to a budget as nothing or as everything, and the audit trail could
    not record them; a context that is not a mapping would read as empty, so no norm on it could fire."""
    d = guard.decide(action)
    assert d.outcome == "deny" and d.finding_ids() == ["malformed-action"] and problem in d.findings[0].message
    json.dumps(d.to_dict(), allow_nan=False)


@pytest.mark.parametrize("given", [None, {"tool": "tip", "args": {"amount": 1.0}}], ids=["none", "dict"])
def test_something_that_is_not_an_action_is_denied_explained_and_recorded(make_guard, given):
    sink = MemoryAuditSink()
    g = make_guard(SPEC, clock=lambda: T0, audit=sink)
    for d in (g.decide(given), asyncio.run(g.adecide(given))):
        assert d.outcome == "deny" and d.finding_ids() == ["malformed-action"]
        assert "takes an fsa_guard.Action" in d.explain() and type(given).__name__ in json.dumps(d.to_dict())
    assert [r["outcome"] for r in sink.records] == ["deny", "deny"]


def test_a_malformed_now_is_recorded(make_guard):
    sink = MemoryAuditSink()
    g = make_guard(SPEC, audit=sink)
    d = g.decide(Action("tip", {"amount": 1.0}, now="yesterday"))  # type: ignore[arg-type]
    assert d.finding_ids() == ["malformed-action"] and [r["outcome"] for r in sink.records] == ["deny"]


def test_a_critic_or_approver_that_only_one_of_decide_and_adecide_could_call_is_refused(make_guard):
    """Otherwise the same call would be decided one way by decide and another by adecide."""

    class SyncOnlyCritic:
        def critique(self, request):  # type: ignore[no-untyped-def]
            raise AssertionError("never called")

    class AsyncOnlyApprover:
        async def aask(self, decision):  # type: ignore[no-untyped-def]
            return Answer("approve")

    with pytest.raises(TypeError, match=r"the critic SyncOnlyCritic has no acritique\(\)"):
        make_guard(SPEC, critic=SyncOnlyCritic())
    with pytest.raises(TypeError, match=r"the approver AsyncOnlyApprover has no ask\(\).*CallbackApprover"):
        make_guard(SPEC, approver=AsyncOnlyApprover())


def test_malformed_args_with_an_audit_sink_are_denied_not_raised(make_guard):
    sink = MemoryAuditSink()
    g = make_guard(SPEC, clock=lambda: T0, audit=sink)
    d = g.decide(Action("tip", ["not", "a", "mapping"]))  # type: ignore[arg-type]
    assert d.outcome == "deny" and d.finding_ids() == ["malformed-action"]
    assert len(sink.records) == 1
    json.dumps(d.to_dict())


def test_to_dict_of_a_malformed_action_is_json_serialisable(guard):
    d = guard.decide(Action("tip", {"amount": {1, 2}}))
    assert d.outcome == "deny"
    json.dumps(d.to_dict())


def test_public_names_used_by_integrations():
    for name in ("Guard", "Action", "Decision", "Denied"):
        assert hasattr(fsa_guard, name)


# -- regressions from review ----------------------------------------------------------------------------

BUDGETS = """
norms:
  - id: big-needs-approval
    tools: [pay]
    when: action.args.amount > 500.0
    effect: escalate
budgets:
  - id: soft-rate
    tools: [pay]
    limit: 0
    window: 1h
    on_exceed: escalate
  - id: hard-cap
    tools: [pay]
    measure: action.args.amount
    limit: 1000
    window: 1d
    on_exceed: deny
"""


def test_a_deny_budget_wins_whatever_the_order_of_budgets(make_guard):
    d = make_guard(BUDGETS, clock=lambda: T0).decide(Action("pay", {"amount": 5000.0}))
    assert d.outcome == "deny"
    assert "hard-cap" in d.finding_ids()


def test_approval_never_passes_a_deny_budget_and_is_not_asked_when_it_could_not(make_guard):
    asked: list[Decision] = []

    def approve(decision: Decision) -> Answer:
        asked.append(decision)
        return Answer("approve", by="bob")

    g = make_guard(BUDGETS, clock=lambda: T0, approver=CallbackApprover(approve))
    first = g.decide(Action("pay", {"amount": 900.0}))  # escalates (norm and soft-rate); bob approves
    assert first.outcome == "allow" and len(asked) == 1
    g.report(first, ok=True)
    second = g.decide(Action("pay", {"amount": 600.0}))
    assert second.outcome == "deny" and "hard-cap" in second.finding_ids()
    assert len(asked) == 1  # 900 + 600 > 1000: no answer could let it run, so nobody was asked
    assert g.store.usage("hard-cap", 86400, T0.timestamp()) == 900.0


def test_an_escalation_shows_and_runs_the_revised_call(make_guard):
    shown: list[Decision] = []

    def approve(decision: Decision) -> Answer:
        shown.append(decision)
        return Answer("approve", by="bob")

    body = """
norms:
  - id: cap-tips
    tools: [tip]
    when: action.args.amount > 20.0
    effect: revise
    revise: {amount: "20.0"}
  - id: late-night
    tools: [tip]
    when: hour(now) >= 22
    effect: escalate
"""
    g = make_guard(body, clock=lambda: T0.replace(hour=23), approver=CallbackApprover(approve))
    d = g.decide(Action("tip", {"amount": 500.0}))
    assert dict(shown[0].action.args) == {"amount": 20.0}
    assert d.outcome == "revise" and dict(d.action.args) == {"amount": 20.0}
    assert d.finding_ids() == ["cap-tips", "late-night", "human-approved"]


def test_malformed_replies_of_critic_and_approver_escalate(make_guard):
    from fsa_guard.testing import ScriptedCritic

    body = (
        "values:\n  - {id: care, title: Care, attends_to: [CARE in each call], tools: [t]}\n"
        "norms:\n  - id: judge\n    tools: [t]\n    effect: critique\n    serves: [care]\n"
    )
    for bad in (
        CritiqueVerdict("revise", "x", revised_args=[1, 2]),  # type: ignore[arg-type]
        CritiqueVerdict("allow", "x", tokens=None),  # type: ignore[arg-type]
        CritiqueVerdict("allow", "x", values=None),  # type: ignore[arg-type]
        "allow",
    ):
        d = make_guard(body, critic=ScriptedCritic([bad])).decide(Action("t", {}))  # type: ignore[list-item]
        assert d.outcome == "escalate" and "critic-unverified" in d.finding_ids(), bad
    g, _ = with_approver(make_guard, Answer("edit", args=[1, 2]))  # type: ignore[arg-type]
    d = g.decide(Action("send_money", {"recipient": "US13", "amount": 600.0}))
    assert d.outcome == "escalate" and "approver-failed" in d.finding_ids()


def test_decide_denies_instead_of_raising_on_odd_actions(guard):
    d = guard.decide(Action("send_money", {"amount": 1.0}, now="2026-01-01"))  # type: ignore[arg-type]
    assert d.outcome == "deny" and d.finding_ids() == ["malformed-action"]
    d = guard.decide(Action(["send_money"], {}))  # type: ignore[arg-type]
    assert d.outcome == "deny" and d.finding_ids() == ["malformed-action"]
    far = Action("send_money", {"recipient": "US13", "amount": 1.0}, now=datetime(9999, 12, 31, 23, 0, tzinfo=UTC))
    assert guard.decide(far).outcome in ("deny", "allow")  # never an exception


def test_a_store_that_fails_while_a_norm_reads_state_denies(make_guard):
    from fsa_guard import StoreError
    from fsa_guard.store.memory import MemoryStore

    class Down(MemoryStore):
        def usage(self, key, window_s, now):  # type: ignore[no-untyped-def]
            raise StoreError("connection refused")

    body = """
norms:
  - id: near-limit
    tools: [pay]
    when: 'state.budgets["b"].remaining < 10.0'
    effect: escalate
budgets:
  - {id: b, tools: [pay], limit: 100, window: 1d}
"""
    d = make_guard(body, store=Down()).decide(Action("pay", {}))
    assert d.outcome == "deny" and d.finding_ids() == ["store-unavailable"]


def test_a_revision_that_computes_a_time_gives_iso_text(make_guard):
    body = """
defaults: {timezone: UTC}
norms:
  - id: later
    tools: [notify]
    when: "!has(action.args.send_at)"
    effect: revise
    revise: {send_at: 'now + duration("10h")'}
"""
    d = make_guard(body, clock=lambda: T0).decide(Action("notify", {"text": "hi"}))
    assert d.outcome == "revise"
    assert d.action.args["send_at"] == "2025-03-01T19:00:00+00:00"


def test_tools_with_var_positional_and_positional_only_parameters(make_guard):
    g = make_guard("norms:\n  - {id: n, tools: [join, square], when: 'false', effect: deny}\n")

    @g.tool
    def join(prefix: str, *lines: str) -> str:
        return prefix + ",".join(lines)

    @g.tool
    def square(x: int, /) -> int:
        return x * x

    assert join("p", "a", "b") == "pa,b"
    assert square(3) == 9
    with pytest.raises(Denied) as info:
        join("p", 1)  # type: ignore[arg-type]
    assert info.value.decision.finding_ids() == ["malformed-action"]


def test_an_approver_is_told_about_every_budget_the_call_would_exceed(make_guard):
    shown: list[Decision] = []

    def approve(decision: Decision) -> Answer:
        shown.append(decision)
        return Answer("approve", by="bob")

    body = """
norms:
  - {id: new-payee, tools: [pay], when: 'action.args.to != "landlord"', effect: escalate}
budgets:
  - {id: daily-spend, tools: [pay], measure: action.args.amount, limit: 100, window: 1d, on_exceed: escalate}
"""
    g = make_guard(body, clock=lambda: T0, approver=CallbackApprover(approve))
    g.report(g.decide(Action("pay", {"to": "landlord", "amount": 100.0})), ok=True)
    d = g.decide(Action("pay", {"to": "stranger", "amount": 5000.0}))
    assert shown[0].finding_ids() == ["new-payee", "daily-spend"]  # the overspend is approved knowingly
    assert d.outcome == "allow"
