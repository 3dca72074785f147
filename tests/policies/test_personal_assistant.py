"""Labelled actions for policies/personal-assistant.yaml: allows, denies, revisions and escalations.

Times are pinned with fixed UTC offsets (+01:00 is Berlin in winter, the spec's zone).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from fsa_guard import Action, Guard, load_spec
from fsa_guard.evaluate import load_scenarios

POLICIES = Path(__file__).resolve().parents[2] / "policies"
SPEC_PATH = POLICIES / "personal-assistant.yaml"

SCENARIOS_PATH = POLICIES / "scenarios" / "personal-assistant.jsonl"

# The labelled actions live in the scenario file, so that `fsa-guard eval` measures the same material.
CASES = load_scenarios(SCENARIOS_PATH)


@pytest.fixture(scope="module")
def spec():
    return load_spec(SPEC_PATH)


@pytest.mark.parametrize("case", [pytest.param(c, id=f"{c.expected}:{c.id}") for c in CASES])
def test_labelled_action(spec, run_case, case):
    run_case(spec, case)


def test_denial_explains_in_terms_of_my_values(spec, run_case):
    case = next(c for c in CASES if c.id == "injected-payee-from-an-email")
    decision = run_case(spec, case)
    assert "Careful stewardship of money" in decision.explain()


def test_every_card_has_three_to_six_policies_and_norms_say_what_they_serve(spec):
    for card in spec.values.values():
        assert 3 <= len(card.attends_to) <= 6, card.id
    for norm in spec.norms:
        assert norm.norm.serves and norm.norm.description, norm.id


@pytest.mark.parametrize(
    ("local_now", "deliver_at"),
    [
        pytest.param(datetime(2025, 3, 4, 1, 0), "2025-03-04T08:00:00", id="winter-1am"),
        pytest.param(datetime(2025, 7, 1, 23, 30), "2025-07-02T08:00:00", id="summer-1130pm"),
        pytest.param(datetime(2025, 10, 26, 2, 30), "2025-10-26T08:00:00", id="dst-ends-night"),
    ],
)
def test_night_is_read_in_my_zone(spec, local_now, deliver_at):
    """A clock in the spec's own zone (a ZoneInfo, with daylight saving) gives the same answers."""
    now = local_now.replace(tzinfo=ZoneInfo("Europe/Berlin"))
    decision = Guard(spec).decide(Action("send_notification", {"title": "t", "body": "b"}, now=now))
    assert decision.outcome == "revise", decision.explain()
    assert decision.action.args["deliver_at"] == deliver_at
    assert decision.finding_ids() == ["night-notifications-wait"]
