"""Budgets and rate limits: rolling windows, reserve/commit/release, exceeding, errors, and concurrency."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from fsa_guard import Action, Guard, MemoryStore, StoreError

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)

SPEND = """
values:
  - id: careful-money
    title: Careful stewardship of money
    attends_to: [CLARITY about who receives money and why]
norms:
  - id: no-huge
    tools: [pay]
    when: action.args.amount > 900.0
    effect: deny
budgets:
  - id: spend
    description: At most 100 per hour
    tools: [pay, purchase_*]
    measure: action.args.amount
    limit: 100
    window: 1h
    on_exceed: {on_exceed}
    serves: [careful-money]
"""


def spend_guard(make_guard, on_exceed: str = "deny", **options) -> Guard:
    return make_guard(SPEND.replace("{on_exceed}", on_exceed), **options)


def pay(guard: Guard, amount: float, minutes: float = 0, tool: str = "pay", ok: bool | None = True):
    d = guard.decide(Action(tool, {"amount": amount}, now=T0 + timedelta(minutes=minutes)))
    if ok is not None and d.allowed:
        guard.report(d, ok=ok)
    return d


def used(guard: Guard, budget: str = "spend", minutes: float = 0, window_s: float = 3600) -> float:
    return guard.store.usage(budget, window_s, (T0 + timedelta(minutes=minutes)).timestamp())


def test_spending_within_the_limit(make_guard):
    g = spend_guard(make_guard)
    assert [pay(g, a, m).outcome for a, m in [(60.0, 0), (40.0, 1)]] == ["allow", "allow"]
    assert used(g, minutes=1) == 100.0


def test_exceeding_denies_with_a_budget_finding(make_guard):
    g = spend_guard(make_guard)
    pay(g, 90.0)
    d = pay(g, 20.0, 1)
    assert d.outcome == "deny"
    (f,) = d.findings
    assert (f.source, f.id, f.effect, f.values) == ("budget", "spend", "deny", ("careful-money",))
    assert "90 used of 100" in f.message and "needs 20" in f.message
    assert "Careful stewardship of money" in d.explain()
    assert d.reservations == ()
    assert used(g, minutes=1) == 90.0  # nothing was reserved for the refused call
    assert pay(g, 10.0, 2).outcome == "allow"  # what still fits is allowed


def test_exceeding_escalates_when_the_budget_says_so(make_guard):
    g = spend_guard(make_guard, "escalate")
    pay(g, 90.0)
    d = pay(g, 20.0, 1)
    assert d.outcome == "escalate"
    assert [(f.id, f.effect) for f in d.findings] == [("spend", "escalate")]
    assert used(g, minutes=1) == 90.0


def test_rolling_window_with_a_pinned_clock(make_guard):
    g = spend_guard(make_guard)
    assert pay(g, 60.0, 0).outcome == "allow"
    assert pay(g, 30.0, 30).outcome == "allow"
    assert pay(g, 20.0, 59).outcome == "deny"  # 90 still counts
    assert pay(g, 20.0, 61).outcome == "allow"  # the call at minute 0 left the window
    assert used(g, minutes=61) == 50.0
    assert used(g, minutes=95) == 20.0
    assert used(g, minutes=200) == 0.0


def test_the_guard_clock_drives_the_window(make_guard):
    now = [T0]
    g = spend_guard(make_guard, clock=lambda: now[0])
    for _ in range(2):
        d = g.decide(Action("pay", {"amount": 50.0}))
        assert d.outcome == "allow"
        g.report(d, ok=True)
    assert g.decide(Action("pay", {"amount": 1.0})).outcome == "deny"
    now[0] = T0 + timedelta(hours=1, seconds=1)
    assert g.decide(Action("pay", {"amount": 100.0})).outcome == "allow"


def test_budget_over_a_glob_of_tools(make_guard):
    g = spend_guard(make_guard)
    assert pay(g, 80.0, tool="purchase_book").outcome == "allow"
    assert pay(g, 30.0, tool="pay").outcome == "deny"
    assert pay(g, 30.0, tool="purchase_tv").outcome == "deny"


def test_rate_limit_counts_calls(make_guard):
    g = make_guard("budgets:\n  - id: msgs\n    tools: [send]\n    limit: 3\n    window: 10m\n")
    outcomes = [g.decide(Action("send", {}, now=T0 + timedelta(minutes=i))) for i in range(5)]
    for d in outcomes:
        if d.allowed:
            g.report(d, ok=True)
    assert [d.outcome for d in outcomes] == ["allow", "allow", "allow", "deny", "deny"]
    assert g.decide(Action("send", {}, now=T0 + timedelta(minutes=10, seconds=1))).outcome == "allow"


def test_budget_when_limits_what_counts(make_guard):
    g = make_guard(
        """
        budgets:
          - id: irreversible
            tools: [act]
            when: get(action.args, "irreversible", false)
            limit: 1
            window: 1d
        """
    )
    assert g.decide(Action("act", {"irreversible": True}, now=T0)).reservations
    assert g.decide(Action("act", {"irreversible": True}, now=T0)).outcome == "deny"
    d = g.decide(Action("act", {}, now=T0))
    assert d.outcome == "allow" and d.reservations == ()


# -- reserve / commit / release ------------------------------------------------------------------------


def test_an_allowed_call_holds_a_reservation_until_reported(make_guard):
    g = spend_guard(make_guard)
    d = pay(g, 70.0, ok=None)
    assert d.outcome == "allow" and len(d.reservations) == 1
    assert used(g) == 70.0  # reserved counts, so parallel calls cannot overspend
    assert pay(g, 40.0, ok=None).outcome == "deny"
    g.report(d, ok=True)
    assert used(g) == 70.0


def test_release_gives_the_amount_back(make_guard):
    g = spend_guard(make_guard)
    d = pay(g, 70.0, ok=False)
    assert d.outcome == "allow"
    assert used(g) == 0.0
    assert pay(g, 100.0).outcome == "allow"


def test_committed_amount_stays_spent_after_the_reservation_ttl(make_guard):
    g = spend_guard(make_guard, reservation_ttl=60.0)
    pay(g, 70.0, 0, ok=True)
    assert used(g, minutes=30) == 70.0


def test_unreported_reservations_expire(make_guard):
    g = spend_guard(make_guard, reservation_ttl=60.0)
    assert pay(g, 70.0, 0, ok=None).outcome == "allow"
    assert pay(g, 70.0, 0.5, ok=None).outcome == "deny"
    assert pay(g, 70.0, 2, ok=None).outcome == "allow"  # the first one was never reported and expired


def test_report_twice_is_harmless(make_guard):
    g = spend_guard(make_guard)
    d = pay(g, 70.0, ok=None)
    g.report(d, ok=True)
    g.report(d, ok=False)  # a late release cannot give back a committed amount
    assert used(g) == 70.0


def test_a_revised_call_is_charged_its_revised_amount(make_guard):
    g = make_guard(
        """
        norms:
          - id: cap
            tools: [tip]
            when: action.args.amount > 20.0
            effect: revise
            revise: {amount: '20.0'}
        budgets:
          - id: tips
            tools: [tip]
            measure: action.args.amount
            limit: 50
            window: 1d
        """
    )
    d = g.decide(Action("tip", {"amount": 45.0}, now=T0))
    assert d.outcome == "revise"
    g.report(d, ok=True)
    assert g.store.usage("tips", 86400, T0.timestamp()) == 20.0


# -- not reserved for what does not run ----------------------------------------------------------------


def test_no_budget_is_reserved_for_denied_or_escalated_actions(make_guard):
    g = make_guard(
        """
        norms:
          - id: no-huge
            tools: [pay]
            when: action.args.amount > 900.0
            effect: deny
          - id: ask-big
            tools: [pay]
            when: action.args.amount > 500.0
            effect: escalate
        budgets:
          - id: calls
            tools: [pay]
            limit: 1
            window: 1d
        """
    )
    for amount in (1000.0, 600.0):
        d = g.decide(Action("pay", {"amount": amount}, now=T0))
        assert not d.allowed and d.reservations == ()
    assert g.store.usage("calls", 86400, T0.timestamp()) == 0.0
    assert g.decide(Action("pay", {"amount": 5.0}, now=T0)).outcome == "allow"


def test_budgets_are_all_or_nothing(make_guard):
    g = make_guard(
        """
        budgets:
          - id: count
            tools: [pay]
            limit: 10
            window: 1d
          - id: money
            tools: [pay]
            measure: action.args.amount
            limit: 100
            window: 1d
        """
    )
    d = g.decide(Action("pay", {"amount": 150.0}, now=T0))
    assert d.outcome == "deny" and d.finding_ids() == ["money"]
    assert g.store.usage("count", 86400, T0.timestamp()) == 0.0  # the count reservation was released


# -- measure errors fail closed ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [{}, {"amount": "lots"}, {"amount": -5.0}, {"amount": True}, {"amount": None}],
    ids=["missing", "text", "negative", "bool", "null"],
)
@pytest.mark.parametrize("on_exceed", ["deny", "escalate"])
def test_measure_errors_fail_closed(make_guard, args, on_exceed):
    g = make_guard(
        f"""
        budgets:
          - id: spend
            tools: [pay]
            measure: action.args.amount
            limit: 100
            window: 1d
            on_exceed: {on_exceed}
        """
    )
    d = g.decide(Action("pay", args, now=T0))
    assert d.outcome == on_exceed
    (f,) = d.findings
    assert (f.source, f.id, f.effect) == ("budget", "spend", on_exceed)
    assert f.error
    assert d.reservations == ()


def test_budget_when_error_fails_closed(make_guard):
    g = make_guard("budgets:\n  - id: b\n    tools: [t]\n    when: action.args.flag\n    limit: 5\n    window: 1d\n")
    for args in ({}, {"flag": "yes"}):
        d = g.decide(Action("t", args, now=T0))
        assert d.outcome == "deny" and d.findings[0].error


def test_a_failing_store_denies(make_guard):
    class BrokenStore(MemoryStore):
        def reserve(self, *args, **kwargs):
            raise StoreError("the store is down")

    g = spend_guard(make_guard, store=BrokenStore())
    d = g.decide(Action("pay", {"amount": 1.0}, now=T0))
    assert d.outcome == "deny"
    (f,) = d.findings
    assert (f.source, f.id, f.effect) == ("store", "store-unavailable", "deny")
    assert "the store is down" in f.message


# -- concurrency ---------------------------------------------------------------------------------------


def test_many_threads_never_overspend(make_guard):
    g = make_guard(
        """
        budgets:
          - id: spend
            tools: [pay]
            measure: action.args.amount
            limit: 100
            window: 1d
        """
    )
    barrier = threading.Barrier(16)

    def worker(i: int) -> list[str]:
        barrier.wait()
        out = []
        for j in range(25):
            d = g.decide(Action("pay", {"amount": 1.0 + (i + j) % 3}, now=T0))
            if d.allowed:
                g.report(d, ok=True)
            out.append(d.outcome)
        return out

    with ThreadPoolExecutor(16) as pool:
        outcomes = [o for res in pool.map(worker, range(16)) for o in res]
    spent = g.store.usage("spend", 86400, T0.timestamp())
    assert spent <= 100.0
    assert spent >= 98.0  # the budget was used up, not refused by mistake
    assert outcomes.count("allow") >= 33
    assert set(outcomes) == {"allow", "deny"}


def test_memory_store_reserve_is_atomic():
    store = MemoryStore()

    def worker(_: int) -> int:
        return sum(store.reserve("k", 1.0, 500.0, 60.0, 1000.0, 30.0).ok for _ in range(100))

    with ThreadPoolExecutor(12) as pool:
        granted = sum(pool.map(worker, range(12)))
    assert granted == 500
    assert store.usage("k", 60.0, 1000.0) == 500.0


def test_a_reservation_reported_after_it_expired_still_counts() -> None:
    from fsa_guard.store.memory import MemoryStore

    store = MemoryStore()
    t0 = 1_000_000.0
    r = store.reserve("b", 600, 1000, 86400, t0, ttl_s=300)
    assert r.ok and r.id
    assert store.usage("b", 86400, t0 + 360) == 0  # expired, not yet reported
    store.reserve("b", 1, 1000, 86400, t0 + 360, ttl_s=300)  # another decision runs meanwhile
    store.commit(r.id)  # the call did run
    assert store.usage("b", 86400, t0 + 400) == 601
    assert not store.reserve("b", 600, 1000, 86400, t0 + 400, ttl_s=300).ok


def test_a_decision_pinned_in_the_future_does_not_wipe_todays_spending() -> None:
    import time as _time

    from fsa_guard.store.memory import MemoryStore

    store = MemoryStore()
    now = _time.time()
    r = store.reserve("b", 900, 1000, 86400, now, ttl_s=300)
    assert r.id
    store.commit(r.id)
    assert store.usage("b", 86400, now + 2 * 86400) == 0  # two days on, today no longer counts ...
    assert not store.reserve("b", 900, 1000, 86400, now + 1, ttl_s=300).ok  # ... but today it still does
