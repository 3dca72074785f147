"""Escalations through the approval queue: asked now, answered later, applied once, recorded."""

from __future__ import annotations

import asyncio
import json
import tempfile
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fsa_guard import (
    Action,
    Answer,
    ApprovalError,
    ApprovalQueue,
    CallbackApprover,
    Decision,
    Guard,
    MemoryAuditSink,
    SpecError,
    load_spec,
    verify_sink,
)
from fsa_guard.audit.sqlite import SQLiteAuditSink

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

SPEC = """
fsa_guard: 1
id: payments
values:
  - id: careful-money
    title: Careful stewardship of money
    attends_to: [CLARITY about who receives money and why]
norms:
  - id: no-rivals
    description: No money to rivals.
    tools: [send_money]
    when: action.args.recipient.startsWith("rival")
    effect: deny
    serves: [careful-money]
  - id: no-weekend-wires
    description: No money leaves on a wire marked urgent.
    tools: [send_money]
    when: action.args.memo == "urgent"
    effect: deny
    human_overridable: true
    serves: [careful-money]
  - id: big-asks-me
    description: Payments above 500 wait for my yes.
    tools: [send_money]
    when: action.args.amount > 500.0
    effect: escalate
    serves: [careful-money]
budgets:
  - id: daily-money
    description: At most 2000 a day.
    tools: [send_money]
    measure: action.args.amount
    limit: 2000.0
    window: 1d
    on_exceed: escalate
    serves: [careful-money]
"""

BIG = Action("send_money", {"recipient": "landlord", "amount": 900.0, "memo": "rent"}, now=T0)


def guard_for(tmp_path: Path, extra: str = "", store: str | None = None, **options: object) -> Guard:
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC + extra)
    url = store or f"sqlite:///{tmp_path}/state.db"
    options.setdefault("approver", ApprovalQueue(url, poll=0.02))
    return Guard(load_spec(path), store=url, audit=MemoryAuditSink(), **options)  # type: ignore[arg-type]


def test_an_escalation_is_queued_and_returns_at_once(tmp_path):
    guard = guard_for(tmp_path)
    d = guard.decide(BIG)
    assert d.outcome == "escalate" and d.approval_id and d.approval_id.startswith("ap_")
    approval = guard.approver.get(d.approval_id)
    assert approval.pending and approval.tool == "send_money"
    assert approval.decision["findings"][0]["id"] == "big-asks-me"
    assert approval.action().args == dict(BIG.args) and approval.action().now == T0
    assert (approval.expires - approval.created).total_seconds() == pytest.approx(3600)
    (record,) = guard.audit.records
    assert record["outcome"] == "escalate" and record["approval_id"] == d.approval_id


def test_a_later_answer_is_applied_by_resume_once(tmp_path):
    guard = guard_for(tmp_path)
    d = guard.decide(BIG)
    guard.approver.approve(d.approval_id, by="alice", note="rent is due")
    done = guard.resume(d.approval_id)
    assert done.outcome == "allow" and done.approval_id == d.approval_id
    assert done.answer.by == "alice" and done.answer.choice == "approve" and done.answer.at is not None
    assert "human-approved" in done.finding_ids() and "Approved by alice (rent is due)" in done.explain()
    assert done.reservations  # the budget is reserved for the call that now runs
    record = guard.audit.records[-1]
    assert record["answer"]["by"] == "alice" and record["approval_id"] == d.approval_id
    again = guard.resume(d.approval_id)
    assert again.outcome == "deny" and again.finding_ids()[-1] == "approval-unusable"
    assert "already used" in again.explain()


def test_decide_can_wait_for_the_answer(tmp_path):
    guard = guard_for(tmp_path)
    queue: ApprovalQueue = guard.approver

    def person() -> None:
        for _ in range(200):
            pending = queue.list("pending")
            if pending:
                queue.deny(pending[0].id, by="bob", note="not this month")
                return
            time.sleep(0.01)

    t = threading.Thread(target=person)
    t.start()
    d = guard.decide(BIG, wait=5)
    t.join()
    assert d.outcome == "deny" and d.answer.by == "bob" and "human-denied" in d.finding_ids()
    outcomes = [r["outcome"] for r in guard.audit.records]
    assert outcomes == ["escalate", "deny"]  # the question, then the answer's decision


def test_still_unanswered_after_the_wait_resume_gives_the_escalation_back(tmp_path):
    guard = guard_for(tmp_path)
    d = guard.decide(BIG, wait=0.05)
    assert d.outcome == "escalate"
    again = guard.resume(d.approval_id, wait=0.05)
    assert again.outcome == "escalate" and again.approval_id == d.approval_id
    assert guard.approver.get(d.approval_id).pending


def test_an_unanswered_approval_expires_and_denies(tmp_path):
    guard = guard_for(tmp_path, "escalation:\n  timeout: 0.2s\n")
    d = guard.decide(BIG)
    time.sleep(0.25)
    assert guard.approver.get(d.approval_id).status == "expired"
    with pytest.raises(ApprovalError, match="expired"):
        guard.approver.approve(d.approval_id, by="late")
    done = guard.resume(d.approval_id)
    assert done.outcome == "deny" and done.finding_ids()[-1] == "approval-expired"
    assert "Nobody answered within 0.2s" in done.explain()


def test_on_timeout_allow_is_honoured_when_written(tmp_path):
    guard = guard_for(tmp_path, "escalation:\n  timeout: 0.1s\n  on_timeout: allow\n")
    d = guard.decide(BIG, wait=1)  # waits past the expiry
    assert d.outcome == "allow" and "approval-expired" in d.finding_ids()


def test_an_edit_is_verified_again(tmp_path):
    guard = guard_for(tmp_path)
    d = guard.decide(BIG)
    guard.approver.edit(d.approval_id, {"recipient": "landlord", "amount": 850.0, "memo": "rent"}, by="alice")
    done = guard.resume(d.approval_id)
    assert done.outcome == "revise" and done.action.args["amount"] == 850.0
    assert done.proposed.args["amount"] == 900.0 and "human-edited" in done.finding_ids()


def test_an_edit_cannot_pass_a_hard_deny(tmp_path):
    guard = guard_for(tmp_path)
    d = guard.decide(BIG)
    guard.approver.edit(d.approval_id, {"recipient": "rival-corp", "amount": 900.0, "memo": "rent"}, by="alice")
    done = guard.resume(d.approval_id)
    assert done.outcome == "deny" and "no-rivals" in done.finding_ids()
    assert not done.reservations


def test_an_edit_may_pass_a_human_overridable_deny_but_the_agent_may_not(tmp_path):
    guard = guard_for(tmp_path)
    urgent = {"recipient": "landlord", "amount": 900.0, "memo": "urgent"}
    assert guard.decide(BIG.with_args(urgent)).outcome == "deny"  # the agent's own call
    d = guard.decide(BIG)
    guard.approver.edit(d.approval_id, urgent, by="alice")
    done = guard.resume(d.approval_id)
    assert done.outcome == "revise" and done.action.args["memo"] == "urgent"
    overridden = next(f for f in done.findings if f.id == "no-weekend-wires")
    assert overridden.effect == "info" and "overridden" in overridden.message
    # both reasons at once: the overridable one does not lift the hard one
    d = guard.decide(BIG)
    guard.approver.edit(d.approval_id, {**urgent, "recipient": "rival-corp"}, by="alice")
    assert guard.resume(d.approval_id).outcome == "deny"


def test_the_same_approval_answered_twice_at_once_one_wins(tmp_path):
    guard = guard_for(tmp_path)
    d = guard.decide(BIG)
    barrier = threading.Barrier(8)
    results: list[str] = []

    def answer(i: int) -> None:
        queue = ApprovalQueue(f"sqlite:///{tmp_path}/state.db")
        barrier.wait()
        try:
            queue.answer(d.approval_id, Answer("approve" if i % 2 else "deny", by=f"p{i}"))
            results.append(f"won:{i}")
        except ApprovalError as exc:
            results.append(str(exc))

    threads = [threading.Thread(target=answer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if r.startswith("won:")]
    assert len(winners) == 1
    assert all("already answered" in r for r in results if not r.startswith("won:"))
    stored = guard.approver.get(d.approval_id)
    assert stored.answer.by == f"p{winners[0].split(':')[1]}"


def test_unknown_approvals_and_a_guard_without_a_queue(tmp_path):
    guard = guard_for(tmp_path)
    d = guard.resume("ap_nothing")
    assert d.outcome == "deny" and "no approval with id 'ap_nothing'" in d.explain()
    with pytest.raises(ApprovalError, match="no approval with id"):
        guard.approver.approve("ap_nothing", by="x")
    plain = guard_for(tmp_path, approver=None)
    with pytest.raises(ApprovalError, match="no approval queue"):
        plain.resume("ap_x")


def test_an_unreachable_queue_still_escalates(tmp_path, redis_url):
    guard = guard_for(tmp_path, approver=ApprovalQueue("redis://127.0.0.1:1/0?timeout=0.2"))
    d = guard.decide(BIG)
    assert d.outcome == "escalate" and d.approval_id is None
    assert d.finding_ids()[-1] == "approver-failed" and "could not be queued" in d.explain()


def test_a_changed_spec_is_applied_to_a_later_answer(tmp_path):
    guard = guard_for(tmp_path)
    d = guard.decide(BIG)
    guard.approver.approve(d.approval_id, by="alice")
    stricter = tmp_path / "stricter.yaml"
    new_norm = "  - id: no-landlord\n    tools: [send_money]\n    when: action.args.recipient == 'landlord'\n"
    stricter.write_text(SPEC.replace("norms:\n", "norms:\n" + new_norm + "    effect: deny\n", 1))
    url = f"sqlite:///{tmp_path}/state.db"
    later = Guard(load_spec(stricter), store=url, approver=ApprovalQueue(url))
    done = later.resume(d.approval_id)
    assert done.outcome == "deny" and {"spec-changed", "no-landlord"} <= set(done.finding_ids())


def test_async_decide_and_resume(tmp_path):
    guard = guard_for(tmp_path)

    async def run() -> tuple[str, str]:
        async def person() -> None:
            while not guard.approver.list("pending"):
                await asyncio.sleep(0.01)
            guard.approver.approve(guard.approver.list("pending")[0].id, by="carol")

        task = asyncio.create_task(person())
        waited = await guard.adecide(BIG, wait=5)
        await task
        d = await guard.adecide(BIG)
        guard.approver.deny(d.approval_id, by="carol")
        resumed = await guard.aresume(d.approval_id, wait=1)
        return waited.outcome, resumed.outcome

    assert asyncio.run(run()) == ("allow", "deny")


def test_an_approver_that_answers_after_the_timeout_is_not_used(tmp_path):
    def slow(decision):
        time.sleep(0.3)
        return Answer("approve", by="sleepy")

    guard = guard_for(tmp_path, "escalation:\n  timeout: 0.1s\n", approver=CallbackApprover(slow))
    d = guard.decide(BIG)
    assert d.outcome == "deny" and d.finding_ids()[-1] == "approval-expired"

    async def aslow(decision):
        await asyncio.sleep(5)
        return Answer("approve", by="sleepy")

    guard = guard_for(tmp_path, "escalation:\n  timeout: 0.1s\n", approver=CallbackApprover(aslow))
    started = time.monotonic()
    d = asyncio.run(guard.adecide(BIG))
    assert d.outcome == "deny" and time.monotonic() - started < 2


def test_the_answer_is_in_the_audit_trail_with_who_and_when(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC)
    url = f"sqlite:///{tmp_path}/state.db"
    guard = Guard(load_spec(path), store=url, audit=f"sqlite:///{tmp_path}/audit.db", approver=ApprovalQueue(url))
    d = guard.decide(BIG)
    guard.approver.edit(d.approval_id, {"recipient": "landlord", "amount": 800.0, "memo": "rent"}, by="alice")
    done = guard.resume(d.approval_id)
    guard.report(done, ok=True)
    sink = SQLiteAuditSink(tmp_path / "audit.db")
    records = [r for s in sink.streams() for r in sink.read(s)]
    assert [r["kind"] for r in records] == ["decision", "decision", "report"]
    assert records[0]["outcome"] == "escalate" and records[1]["outcome"] == "revise"
    answer = records[1]["answer"]
    assert answer["by"] == "alice" and answer["choice"] == "edit" and answer["args"]["amount"] == 800.0
    assert datetime.fromisoformat(answer["at"]).tzinfo is not None
    assert all(r.ok for r in verify_sink(sink))


# -- the spec ----------------------------------------------------------------------------------------------


def test_escalation_settings_layer_only_tighter(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("fsa_guard: 1\nid: base\nescalation:\n  timeout: 10m\n")
    person = tmp_path / "person.yaml"
    person.write_text("fsa_guard: 1\nid: me\nextends: [base.yaml]\nescalation:\n  timeout: 1h\n  on_timeout: allow\n")
    with pytest.raises(SpecError) as info:
        load_spec(person)
    keys = {p.key for p in info.value.problems}
    assert keys == {"escalation.timeout", "escalation.on_timeout"}
    assert all(p.line is not None and p.code == "layer-loosens" for p in info.value.problems)
    person.write_text("fsa_guard: 1\nid: me\nextends: [base.yaml]\nescalation:\n  timeout: 5m\n")
    assert load_spec(person).escalation.timeout == "5m"


def test_human_overridable_is_only_for_deny_norms_and_cannot_be_added_later(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "fsa_guard: 1\nnorms:\n  - id: n\n    tools: [x]\n    effect: escalate\n    human_overridable: true\n"
    )
    with pytest.raises(SpecError, match="only used with effect 'deny'"):
        load_spec(bad)
    base = tmp_path / "base.yaml"
    base.write_text("fsa_guard: 1\nnorms:\n  - id: n\n    tools: [x]\n    effect: deny\n")
    person = tmp_path / "person.yaml"
    person.write_text(
        "fsa_guard: 1\nextends: [base.yaml]\nnorms:\n  - id: n\n    tools: [x]\n    effect: deny\n"
        "    human_overridable: true\n"
    )
    with pytest.raises(SpecError, match="made human_overridable"):
        load_spec(person)


def test_the_linter_warns_when_silence_allows(tmp_path):
    from fsa_guard import lint_spec

    path = tmp_path / "spec.yaml"
    path.write_text(SPEC + "escalation:\n  on_timeout: allow\n")
    warning = next(p for p in lint_spec(path) if p.code == "approval-fails-open")
    assert warning.severity == "warning" and warning.key == "escalation.on_timeout" and warning.line is not None


def test_an_integration_answers_an_escalation_itself(tmp_path):
    guard = guard_for(tmp_path, approver=None)
    d = guard.decide(BIG)
    assert d.outcome == "escalate" and d.approval_id is None
    done = guard.answer(d, Answer("edit", args={**BIG.args, "amount": 700.0}, by="alice"))
    assert done.outcome == "revise" and done.action.args["amount"] == 700.0 and done.answer.at is not None
    again = guard.answer(d, Answer("approve", by="bob"))  # once only, as through a queue
    assert again.outcome == "deny" and "already answered" in again.explain()
    # ... whichever copy is answered: the integration may have checkpointed it, or rebuilt it
    for copy in (Decision.from_dict(json.loads(json.dumps(d.to_dict()))), replace(d, tokens={})):
        assert guard.answer(copy, Answer("approve", by="bob")).finding_ids()[-1] == "approval-unusable"
    assert guard.answer(guard.decide(BIG), Answer("approve", by="bob")).outcome == "allow"  # a new escalation
    unrecorded = Guard(guard.spec, audit=False)  # no record id to go by
    d = unrecorded.decide(BIG)
    assert d.record_id is None and unrecorded.answer(d, Answer("approve")).outcome == "allow"
    assert unrecorded.answer(Decision.from_dict(d.to_dict()), Answer("approve")).outcome == "deny"
    rival = Answer("edit", args={**BIG.args, "recipient": "rival-x"}, by="a")
    assert guard.answer(guard.decide(BIG), rival).outcome == "deny"
    assert guard.answer(guard.decide(BIG), Answer("maybe", by="a")).outcome == "escalate"  # type: ignore[arg-type]
    with pytest.raises(ApprovalError, match="only an escalated decision"):
        guard.answer(done, Answer("approve"))


def test_answering_a_queued_escalation_goes_through_the_queue_once(tmp_path):
    guard = guard_for(tmp_path)
    d = guard.decide(BIG)
    assert guard.answer(d, Answer("approve", by="alice")).outcome == "allow"
    assert guard.approver.get(d.approval_id).claimed_by == guard.identity
    again = guard.answer(d, Answer("approve", by="bob"))
    assert again.outcome == "deny" and "already answered" in again.explain()


def test_under_on_timeout_allow_a_later_layer_may_not_shorten_the_wait(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("fsa_guard: 1\nid: base\nescalation:\n  timeout: 10m\n  on_timeout: allow\n")
    person = tmp_path / "person.yaml"
    person.write_text("fsa_guard: 1\nid: me\nextends: [base.yaml]\nescalation:\n  timeout: 1s\n")
    with pytest.raises(SpecError, match="only lengthen"):
        load_spec(person)
    person.write_text("fsa_guard: 1\nid: me\nextends: [base.yaml]\nescalation:\n  timeout: 1s\n  on_timeout: deny\n")
    assert load_spec(person).escalation.timeout == "1s"  # silence now refuses, so a short wait is safe


# -- what a later answer may and may not do -----------------------------------------------------------------

REDACT = """  - id: memo-redacted
    tools: [send_money]
    when: action.args.memo.contains("ssn")
    effect: revise
    revise: {memo: '"[redacted]"'}
"""


def stricter_guard(tmp_path: Path, extra_norms: str, extra: str = "") -> Guard:
    path = tmp_path / "later.yaml"
    path.write_text(SPEC.replace("norms:\n", "norms:\n" + extra_norms, 1) + extra)
    url = f"sqlite:///{tmp_path}/state.db"
    return Guard(load_spec(path), store=url, approver=ApprovalQueue(url))


def test_silence_that_allows_still_cannot_pass_a_deny_of_the_current_spec(tmp_path):
    guard = guard_for(tmp_path, "escalation:\n  timeout: 0.1s\n  on_timeout: allow\n")
    d = guard.decide(BIG)
    time.sleep(0.15)
    deny = "  - id: no-landlord\n    tools: [send_money]\n    when: action.args.recipient == 'landlord'\n"
    later = stricter_guard(tmp_path, deny + "    effect: deny\n", "escalation:\n  on_timeout: allow\n")
    done = later.resume(d.approval_id)
    assert done.outcome == "deny" and "no-landlord" in done.finding_ids()


def test_an_approval_applied_later_still_gets_the_revisions_of_the_current_spec(tmp_path):
    guard = guard_for(tmp_path)
    d = guard.decide(BIG.with_args({**BIG.args, "memo": "ssn 123-45-6789"}))
    guard.approver.approve(d.approval_id, by="alice")
    done = stricter_guard(tmp_path, REDACT).resume(d.approval_id)
    assert done.outcome == "revise" and done.action.args["memo"] == "[redacted]"
    assert "memo-redacted" in done.finding_ids()


def test_a_new_reason_to_ask_asks_again(tmp_path):
    guard = guard_for(tmp_path)
    d = guard.decide(BIG)
    guard.approver.approve(d.approval_id, by="alice")
    ask = "  - id: landlord-asks\n    tools: [send_money]\n    when: action.args.recipient == 'landlord'\n"
    stricter = stricter_guard(tmp_path, ask + "    effect: escalate\n")
    done = stricter.resume(d.approval_id)
    assert done.outcome == "escalate" and done.finding_ids()[-1] == "changed-since-asked"
    assert "landlord-asks" in done.finding_ids()
    # it is a new question in the queue, which the person can answer; the old one was used
    assert done.approval_id not in (None, d.approval_id) and stricter.approver.get(done.approval_id).pending
    stricter.approver.approve(done.approval_id, by="alice")
    assert stricter.resume(done.approval_id).outcome == "allow"
    assert stricter.resume(d.approval_id).finding_ids()[-1] == "approval-unusable"


def test_an_approval_does_not_overspend_a_budget_the_person_never_saw_exceeded(tmp_path):
    guard = guard_for(tmp_path)
    d = guard.decide(BIG)
    assert "daily-money" not in d.finding_ids()  # it fitted when the person was asked
    for _ in range(3):  # meanwhile, other calls use the day's money up
        small = guard.decide(BIG.with_args({**BIG.args, "amount": 400.0}))
        assert small.outcome == "allow"
        guard.report(small, ok=True)
    guard.approver.approve(d.approval_id, by="alice")
    done = guard.resume(d.approval_id)
    assert done.outcome == "escalate" and "daily-money" in done.finding_ids() and not done.reservations
    # a budget the person saw exceeded is what the yes was for
    d = guard.decide(BIG)
    assert "daily-money" in d.finding_ids()
    guard.approver.approve(d.approval_id, by="alice")
    assert guard.resume(d.approval_id).outcome == "allow"


def test_an_escalation_that_could_not_be_recorded_cannot_be_answered_later(tmp_path):
    class FailingAudit(MemoryAuditSink):
        def write(self, record):  # type: ignore[no-untyped-def]
            raise OSError("disk full")

    guard = guard_for(tmp_path)
    guard.audit = FailingAudit()
    d = guard.decide(BIG, wait=1)
    assert d.outcome == "deny" and "audit-unavailable" in d.finding_ids()
    approval = guard.approver.get(d.approval_id)
    assert approval.status == "deny" and approval.answer.by == "fsa_guard"


def test_a_late_no_is_still_no_and_an_approvers_own_timeout_is_a_failure(tmp_path):
    def late_no(decision):
        time.sleep(0.2)
        return Answer("deny", by="slow")

    allow_on_silence = "escalation:\n  timeout: 0.1s\n  on_timeout: allow\n"
    d = guard_for(tmp_path, allow_on_silence, approver=CallbackApprover(late_no)).decide(BIG)
    assert d.outcome == "deny" and "human-denied" in d.finding_ids() and d.answer.by == "slow"

    async def webhook_timed_out(decision):
        raise TimeoutError("the approval webhook timed out")

    guard = guard_for(tmp_path, allow_on_silence.replace("0.1s", "10s"), approver=CallbackApprover(webhook_timed_out))
    d = asyncio.run(guard.adecide(BIG))
    assert d.outcome == "escalate" and d.finding_ids()[-1] == "approver-failed"


def test_only_json_goes_through_the_queue(tmp_path):
    from decimal import Decimal

    guard = guard_for(tmp_path)
    d = guard.decide(BIG)
    with pytest.raises(ApprovalError, match="JSON"):
        guard.approver.edit(d.approval_id, {**BIG.args, "amount": Decimal("20")}, by="alice")
    assert guard.approver.get(d.approval_id).pending
    nan = guard.decide(BIG.with_args({**BIG.args, "amount": float("inf")}))
    assert nan.outcome in ("deny", "escalate") and nan.approval_id is None


def test_an_edit_still_being_revised_after_the_limit_escalates(tmp_path):
    guard = guard_for(tmp_path, "defaults:\n  max_revisions: 0\n")
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.replace("norms:\n", "norms:\n" + REDACT, 1) + "defaults:\n  max_revisions: 0\n")
    guard = Guard(load_spec(path), approver=ApprovalQueue("memory://"))
    d = guard.decide(BIG)
    guard.approver.edit(d.approval_id, {**BIG.args, "memo": "ssn 1"}, by="alice")
    done = guard.resume(d.approval_id)
    assert done.outcome == "escalate" and "revision-limit" in done.finding_ids()


def test_a_queued_escalation_is_answered_through_its_queue_only(tmp_path):
    d = guard_for(tmp_path).decide(BIG)
    plain = guard_for(tmp_path, approver=None)
    with pytest.raises(ApprovalError, match="answer it there"):
        plain.answer(d, Answer("approve", by="x"))


def test_an_answer_given_after_the_timeout_follows_on_timeout(tmp_path):
    from dataclasses import replace as copy

    guard = guard_for(tmp_path, "escalation:\n  timeout: 10m\n", approver=None)
    d = guard.decide(BIG)
    assert d.decided_at is not None and Decision.from_dict(d.to_dict()).decided_at == d.decided_at
    old = copy(d, decided_at=d.decided_at - timedelta(minutes=11))
    done = guard.answer(old, Answer("approve", by="alice"))
    assert done.outcome == "deny" and done.finding_ids()[-1] == "approval-expired"
    late_no = guard.answer(copy(guard.decide(BIG), decided_at=old.decided_at), Answer("deny", by="alice"))
    assert late_no.outcome == "deny" and late_no.answer.by == "alice"


def test_aanswer_and_capturing_every_decision(tmp_path):
    from fsa_guard.testing import capture_decisions

    guard = guard_for(tmp_path)
    with capture_decisions(guard) as seen:
        d = guard.decide(BIG)
        done = asyncio.run(guard.aanswer(d, Answer("approve", by="alice")))
        assert done.outcome == "allow"
        d2 = asyncio.run(guard.adecide(BIG))
        guard.approver.deny(d2.approval_id, by="bob")
        assert guard.resume(d2.approval_id).outcome == "deny"
    assert [x.outcome for x in seen] == ["escalate", "allow", "escalate", "deny"]
    assert guard.decide.__func__ is Guard.decide  # type: ignore[attr-defined]


def test_current_session_is_public():
    from fsa_guard import current_session

    guard = guard_for(Path(tempfile.mkdtemp()), approver=None)
    assert current_session() is None
    with guard.session(request="pay the rent") as s:
        assert current_session() is s and s.request == "pay the rent"
    assert current_session() is None
