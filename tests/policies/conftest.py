"""Helpers for the ready-made policies' labelled actions.

The labelled actions live in scenario files beside the policies (``policies/scenarios/*.jsonl``,
``policies/examples/scenarios/*.jsonl``), one JSON object a line, so the same material serves these tests
and ``fsa-guard eval``. A line looks like::

    {"id": "pay-the-bill-i-asked-for", "expected": "allow", "expected_findings": [],
     "expected_args": {...},                 # revise (and escalate with a revision): the args that run
     "used": {"daily-spend": 950.0},         # optional: budget use before this call
     "action": {"tool": "send_money", "args": {...}}, "request": "...", "history": [...], "context": {...},
     "now": "2025-03-04T14:30:00+01:00", "why": "what the case shows"}

``now`` is an ISO time with a fixed UTC offset, so every case pins its clock. The tests here are stricter
than ``fsa-guard eval``: every case must say its finding ids, and a case without ``expected_args`` must run
its args unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fsa_guard import CompiledSpec, Decision, Guard
from fsa_guard.evaluate import Scenario
from fsa_guard.evaluate.scenarios import spend_before


def decide_case(spec: CompiledSpec, case: Scenario) -> Decision:
    """Decide a labelled case on a fresh guard, with the budget use the case starts from."""
    assert case.action.now is not None, f"{case.where}: every labelled case pins its clock with 'now'"
    guard = Guard(spec)
    spend_before(guard.store, spec, case)
    return guard.decide(case.action)


def check_case(decision: Decision, case: Scenario) -> None:
    """Assert the outcome, the finding ids and (for revisions) the args that will run."""
    explain = decision.explain()
    assert case.expected_findings is not None, f"{case.where}: a labelled case names its expected_findings"
    assert decision.outcome == case.expected, explain
    assert sorted(decision.finding_ids()) == sorted(case.expected_findings), explain
    errors = [f"{f.id}: {f.error}" for f in decision.findings if f.error]
    assert not errors, f"a norm's expression failed at run time: {errors}"
    if case.expected in ("revise", "escalate") and case.expected_args is not None:
        # an escalation is asked about the revised call, the one that would run
        assert dict(decision.action.args) == case.expected_args, explain
    else:
        assert case.expected != "revise", "a revise case needs expected_args"
        assert case.expected_args is None
        assert dict(decision.action.args) == dict(case.action.args)


@pytest.fixture
def run_case() -> Callable[[CompiledSpec, Scenario], Decision]:
    """Decide and check a labelled case; returns the decision for further assertions."""

    def run(spec: CompiledSpec, case: Scenario) -> Decision:
        decision = decide_case(spec, case)
        check_case(decision, case)
        return decision

    return run


@pytest.fixture
def decide() -> Callable[[CompiledSpec, Scenario], Decision]:
    """Decide a labelled case without checking it (to compare one case under different specs)."""
    return decide_case
