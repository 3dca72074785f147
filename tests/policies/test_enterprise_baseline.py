"""Labelled actions for policies/enterprise-baseline.yaml: allows, denies, revisions and escalations.

Times are UTC; the baseline reads business hours in the office zone (Europe/Berlin, +01:00 in March).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from fsa_guard import Action, Guard, load_spec
from fsa_guard.evaluate import load_scenarios

POLICIES = Path(__file__).resolve().parents[2] / "policies"
SPEC_PATH = POLICIES / "enterprise-baseline.yaml"

SCENARIOS_PATH = POLICIES / "scenarios" / "enterprise-baseline.jsonl"

TUESDAY_MORNING = "2025-03-04T10:00:00+00:00"  # 11:00 in the office

# The labelled actions live in the scenario file, so that `fsa-guard eval` measures the same material.
CASES = load_scenarios(SCENARIOS_PATH)


@pytest.fixture(scope="module")
def spec():
    return load_spec(SPEC_PATH)


@pytest.mark.parametrize("case", [pytest.param(c, id=f"{c.expected}:{c.id}") for c in CASES])
def test_labelled_action(spec, run_case, case):
    run_case(spec, case)


def test_baseline_denies_unknown_tools(spec):
    assert spec.unknown_tool == "deny"


def test_display_names_are_read_for_their_address(spec):
    action = Action(
        "send_email",
        {"to": "Kim <kim@partner.example.net>", "subject": "x", "body": "y"},
        now=datetime.fromisoformat(TUESDAY_MORNING),
    )
    assert Guard(spec).decide(action).outcome == "allow"


@pytest.mark.parametrize(
    "to",
    [
        pytest.param("not-an-address", id="no-at-sign"),
        pytest.param("kim@partner.example.net.evil.example", id="partner-lookalike"),
        pytest.param(["sam@example.com", "x@example.com.evil.example"], id="lookalike-domain"),
    ],
)
def test_recipients_the_norms_cannot_place_are_not_allowed(spec, to):
    """An address whose domain is not plainly ours or a partner's is treated as outside."""
    action = Action("send_email", {"to": to, "subject": "x", "body": "y"}, now=datetime.fromisoformat(TUESDAY_MORNING))
    decision = Guard(spec).decide(action)
    assert decision.outcome == "escalate", decision.explain()
    assert decision.finding_ids() == ["mail-to-unlisted-domains"]
