"""Labelled actions for policies/examples/alice.yaml, a person's spec layered over the enterprise baseline.

The cases mix what Alice's own layer adds, what it tightens, and what the baseline still enforces beneath
it. Times carry Berlin's winter offset (+01:00), Alice's zone.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from fsa_guard import check_spec, load_spec
from fsa_guard.evaluate import load_scenarios
from fsa_guard.spec.model import EFFECT_STRENGTH

POLICIES = Path(__file__).resolve().parents[2] / "policies"
SPEC_PATH = POLICIES / "examples" / "alice.yaml"
BASELINE_PATH = POLICIES / "enterprise-baseline.yaml"

SCENARIOS_PATH = POLICIES / "examples" / "scenarios" / "alice.jsonl"

# The labelled actions live in the scenario file, so that `fsa-guard eval` measures the same material.
CASES = load_scenarios(SCENARIOS_PATH)


@pytest.fixture(scope="module")
def spec():
    return load_spec(SPEC_PATH)


@pytest.fixture(scope="module")
def baseline():
    return load_spec(BASELINE_PATH)


@pytest.mark.parametrize("case", [pytest.param(c, id=f"{c.expected}:{c.id}") for c in CASES])
def test_labelled_action(spec, run_case, case):
    run_case(spec, case)


def test_layered_digest_differs_from_the_baseline(spec, baseline):
    assert spec.digest.startswith("sha256:")
    assert spec.digest != baseline.digest
    assert [Path(f).name for f in spec.files] == ["enterprise-baseline.yaml", "alice.yaml"]


def test_layer_keeps_and_only_tightens_the_baseline(spec, baseline):
    mine = {n.id: n.norm for n in spec.norms}
    for n in baseline.norms:
        assert n.id in mine, n.id
        assert EFFECT_STRENGTH[mine[n.id].effect] >= EFFECT_STRENGTH[n.norm.effect], n.id
    assert mine["company-wide-posts"].effect == "escalate"
    budgets = {b.id: b.budget for b in spec.budgets}
    for b in baseline.budgets:
        assert budgets[b.id].limit <= b.budget.limit, b.id
    assert budgets["daily-payments"].limit == 10000
    assert spec.unknown_tool == "deny"


BASELINE_ALONE = {
    "tightened-daily-payments-refuse": ("allow", []),
    "company-wide-post-asks-alice-outright": ("escalate", ["company-wide-posts", "critic-unavailable"]),
}


@pytest.mark.parametrize("case_id", sorted(BASELINE_ALONE))
def test_baseline_alone_is_looser(baseline, decide, case_id):
    """The same call decided under the baseline alone: Alice's layer is what makes it stricter."""
    case = next(c for c in CASES if c.id == case_id)
    decision = decide(baseline, case)
    outcome, findings = BASELINE_ALONE[case_id]
    assert decision.outcome == outcome, decision.explain()
    assert sorted(decision.finding_ids()) == sorted(findings)


LOOSENINGS = [
    pytest.param(
        "defaults: {unknown_tool: allow}",
        "unknown_tool",
        id="relax-unknown-tool",
    ),
    pytest.param(
        """
        norms:
          - id: payments-above-threshold
            description: I approve my own payments.
            tools: [pay_invoice]
            when: "action.args.amount > 1000.0"
            effect: allow
            serves: [accountable-spending]
        """,
        "payments-above-threshold",
        id="weaken-a-norm-effect",
    ),
    pytest.param(
        """
        norms:
          - id: payments-above-threshold
            description: Payments above 50000 need approval.
            tools: [pay_invoice]
            when: "action.args.amount > 50000.0"
            effect: escalate
            serves: [accountable-spending]
        """,
        "payments-above-threshold",
        id="raise-a-threshold-in-the-condition",
    ),
    pytest.param(
        """
        budgets:
          - id: daily-payments
            tools: [pay_invoice]
            measure: "double(action.args.amount)"
            limit: 100000
            window: 1d
            on_exceed: escalate
            serves: [accountable-spending]
        """,
        "daily-payments",
        id="raise-a-budget-limit",
    ),
    pytest.param(
        """
        budgets:
          - id: external-mail-per-hour
            tools: [send_email]
            when: "size(external_domains) > 0"
            limit: 30
            window: 1h
            on_exceed: escalate
            serves: [customer-trust]
        """,
        "external-mail-per-hour",
        id="soften-a-budget-refusal",
    ),
    pytest.param(
        """
        let:
          partner_domains: '["partner.example.net", "audit.example.org", "gmail.com"]'
        """,
        "partner_domains",
        id="widen-an-allowlist",
    ),
]


@pytest.mark.parametrize(("body", "item_id"), LOOSENINGS)
def test_a_layer_that_loosens_the_baseline_is_rejected(write_spec, body, item_id):
    text = f"fsa_guard: 1\nid: mallory\nextends: [{BASELINE_PATH}]\n" + textwrap.dedent(body).lstrip("\n")
    path = write_spec(text, name="mallory.yaml")
    compiled, problems = check_spec(path)
    assert compiled is None
    rejections = [p for p in problems if p.code in ("layer-loosens", "layer-replaces")]
    assert rejections, [str(p) for p in problems]
    for p in rejections:
        assert p.file == str(path)
        assert p.line is not None
        assert "enterprise-baseline.yaml" in str(p)
        assert item_id in str(p)
