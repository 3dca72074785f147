"""One corpus of (spec, action, expected outcome and finding ids) run through Guard.decide and the CLI."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fsa_guard import Action, Guard
from fsa_guard.cli import app

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
SPEC = CORPUS / "spec.yaml"
CASES: list[dict[str, Any]] = json.loads((CORPUS / "cases.json").read_text())


def _action(raw: dict[str, Any]) -> Action:
    now = datetime.fromisoformat(raw["now"].replace("Z", "+00:00")) if raw.get("now") else None
    return Action(
        raw["tool"], raw.get("args", {}), raw.get("request", ""), raw.get("history", ()), raw.get("context", {}), now
    )


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_library(case: dict[str, Any]) -> None:
    decision = Guard.from_files(SPEC).decide(_action(case["action"]))
    assert decision.outcome == case["outcome"]
    assert decision.finding_ids() == case["findings"]
    if "revised_args" in case:
        assert dict(decision.action.args) == case["revised_args"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_cli(case: dict[str, Any]) -> None:
    result = CliRunner().invoke(app, ["check", str(SPEC), "--action", json.dumps(case["action"]), "--json"])
    assert result.exit_code == {"allow": 0, "revise": 0, "deny": 1, "escalate": 3}[case["outcome"]], result.output
    payload = json.loads(result.stdout)
    assert payload["outcome"] == case["outcome"]
    assert [f["id"] for f in payload["findings"]] == case["findings"]
    if "revised_args" in case:
        assert payload["action"]["args"] == case["revised_args"]
