"""What every ready-made policy file promises: labelled actions for all four outcomes, and a clean lint."""

from __future__ import annotations

import pytest
import test_alice_example
import test_enterprise_baseline
import test_personal_assistant

from fsa_guard import lint_spec

MODULES = [test_personal_assistant, test_enterprise_baseline, test_alice_example]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_cases_cover_every_outcome(module) -> None:
    outcomes = [c["expect"] for c in module.CASES]
    assert set(outcomes) == {"allow", "deny", "revise", "escalate"}
    assert len(module.CASES) >= 14
    assert len({c["id"] for c in module.CASES}) == len(module.CASES)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_spec_lints_clean(module) -> None:
    assert [str(p) for p in lint_spec(module.SPEC_PATH)] == []  # no errors, and no warnings either
