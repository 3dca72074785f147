"""The README's examples work as written."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from fsa_guard import Action, Denied, Guard, lint_spec
from fsa_guard.cli import app

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_tour_spec_lints_and_decides_as_the_readme_says(tmp_path: Path) -> None:
    block = re.search(r"## Five-minute tour.*?```yaml\n(.*?)```", README, re.S)
    assert block, "the tour's YAML block is missing"
    spec = tmp_path / "alice.yaml"
    spec.write_text(block.group(1), encoding="utf-8")
    assert [str(p) for p in lint_spec(spec) if p.severity == "error"] == []
    result = CliRunner().invoke(app, ["check", str(spec), "--action", '{"tool": "tip", "args": {"amount": 50.0}}'])
    assert result.exit_code == 0 and "REVISE" in result.stdout
    guard = Guard.from_files(spec)
    assert guard.decide(Action("send_money", {"recipient": "X1", "amount": 5.0}, request="hi")).outcome == "deny"
    assert guard.decide(Action("send_money", {"recipient": "X1", "amount": 5.0}, request="pay X1")).outcome == "allow"


def test_the_python_example_runs() -> None:
    guard = Guard.from_files(ROOT / "policies" / "personal-assistant.yaml")
    d = guard.decide(
        Action(
            tool="send_money",
            args={"recipient": "DE44500105175407324931", "amount": 250.0},
            request="pay DE44 5001 0517 5407 3249 31 for the sofa",
            history=[],
            context={"user": "alice"},
        )
    )
    assert d.outcome == "allow", d.explain()

    sent: list[float] = []

    @guard.tool
    def send_money(recipient: str, amount: float) -> str:
        sent.append(amount)
        return "ok"

    with guard.session(request="pay DE44500105175407324931 the 80 I owe"):
        send_money("DE44500105175407324931", 80.0)
        try:
            send_money("GB33BUKB20201555555555", 80.0)
        except Denied as exc:
            assert "pay-only-payees-i-named" in exc.decision.finding_ids()
    assert sent == [80.0]
