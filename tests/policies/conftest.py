"""Helpers for the ready-made policies' labelled actions.

Each policy test module keeps its labelled actions as plain data (a list of dicts at module top), so a
later tool can write them out as scenario files. A case looks like::

    {
        "id": "pay-the-bill-i-asked-for",          # readable test id
        "expect": "allow",                          # allow | deny | revise | escalate
        "findings": [],                             # finding ids, in any order
        "revised_args": {...},                      # revise (and escalate with a revision): the args that run
        "used": {"daily-spend": 950.0},             # optional: budget use before this call
        "action": {"tool": ..., "args": {...}, "request": "...", "history": [...], "context": {...},
                   "now": "2025-03-04T14:30:00+01:00"},
        "why": "what the case shows",
    }

``now`` is an ISO time with a fixed UTC offset, so every case pins its clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import pytest

from fsa_guard import Action, CompiledSpec, Decision, Guard

Case = Mapping[str, Any]


def _action(case: Case) -> Action:
    a = case["action"]
    return Action(
        tool=a["tool"],
        args=dict(a.get("args", {})),
        request=a.get("request", ""),
        history=list(a.get("history", [])),
        context=dict(a.get("context", {})),
        now=datetime.fromisoformat(a["now"]),
    )


def decide_case(spec: CompiledSpec, case: Case) -> Decision:
    """Decide a labelled case on a fresh guard, with the budget use the case starts from."""
    guard = Guard(spec)
    action = _action(case)
    assert action.now is not None
    budgets = {b.id: b for b in spec.budgets}
    for budget_id, amount in case.get("used", {}).items():
        b = budgets[budget_id]
        earlier = (action.now - timedelta(minutes=1)).timestamp()
        r = guard.store.reserve(budget_id, float(amount), b.budget.limit, b.window_s, earlier, 3600.0, force=True)
        assert r.id is not None
        guard.store.commit(r.id)
    return guard.decide(action)


def check_case(decision: Decision, case: Case) -> None:
    """Assert the outcome, the finding ids and (for revisions) the args that will run."""
    explain = decision.explain()
    assert decision.outcome == case["expect"], explain
    assert sorted(decision.finding_ids()) == sorted(case["findings"]), explain
    errors = [f"{f.id}: {f.error}" for f in decision.findings if f.error]
    assert not errors, f"a norm's expression failed at run time: {errors}"
    if case["expect"] in ("revise", "escalate") and "revised_args" in case:
        # an escalation is asked about the revised call, the one that would run
        assert dict(decision.action.args) == case["revised_args"], explain
    else:
        assert case["expect"] != "revise", "a revise case needs revised_args"
        assert "revised_args" not in case
        assert dict(decision.action.args) == dict(case["action"].get("args", {}))


@pytest.fixture
def run_case() -> Callable[[CompiledSpec, Case], Decision]:
    """Decide and check a labelled case; returns the decision for further assertions."""

    def run(spec: CompiledSpec, case: Case) -> Decision:
        decision = decide_case(spec, case)
        check_case(decision, case)
        return decision

    return run


@pytest.fixture
def decide() -> Callable[[CompiledSpec, Case], Decision]:
    """Decide a labelled case without checking it (to compare one case under different specs)."""
    return decide_case
