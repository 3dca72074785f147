"""What every ready-made policy file promises: labelled actions for all four outcomes, and a clean lint."""

from __future__ import annotations

import dataclasses

import pytest
import test_alice_example
import test_enterprise_baseline
import test_personal_assistant

from fsa_guard import lint_spec, load_spec
from fsa_guard.spec.compiled import ToolPlan
from fsa_guard.verify import engine

MODULES = [test_personal_assistant, test_enterprise_baseline, test_alice_example]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_cases_cover_every_outcome(module) -> None:
    outcomes = [c.expected for c in module.CASES]
    assert set(outcomes) == {"allow", "deny", "revise", "escalate"}
    assert len(module.CASES) >= 14
    assert len({c.id for c in module.CASES}) == len(module.CASES)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_spec_lints_clean(module) -> None:
    assert [str(p) for p in lint_spec(module.SPEC_PATH)] == []  # no errors, and no warnings either


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_every_case_takes_the_one_program_path_and_agrees_with_one_by_one(module, monkeypatch, decide) -> None:
    """On the CEL package, each tool's norms and budgets run as one program; one by one decides the same."""
    monkeypatch.setattr(engine, "PYTHON_EVAL", False)
    spec = load_spec(module.SPEC_PATH)
    for case in module.CASES:
        plan = spec.plan(case.action.tool)
        if plan.norms or plan.budgets:
            assert plan.batch is not None, f"{plan.tool}: its expressions did not combine"
    fast = [decide(spec, case) for case in module.CASES]
    slow_spec = load_spec(module.SPEC_PATH)
    original = slow_spec.plan

    def one_by_one(tool: str) -> ToolPlan:
        return dataclasses.replace(original(tool), _batch=[None])

    monkeypatch.setattr(slow_spec, "plan", one_by_one)
    slow = [decide(slow_spec, case) for case in module.CASES]
    for case, a, b in zip(module.CASES, fast, slow, strict=True):
        assert (a.outcome, a.findings, dict(a.action.args)) == (b.outcome, b.findings, dict(b.action.args)), case.id
