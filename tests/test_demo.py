"""The offline demo: a scripted session through the personal-assistant policy."""

from __future__ import annotations

import io

from rich.console import Console
from typer.testing import CliRunner

from fsa_guard.cli import app
from fsa_guard.demo import SCRIPT, run_demo


def test_demo_session_stops_the_injection_and_covers_every_outcome() -> None:
    buffer = io.StringIO()
    decisions = run_demo(Console(file=buffer, width=120))
    by_step = {
        (d.proposed.tool, str(d.proposed.args.get("recipient", d.proposed.args.get("to", "")))): d for d in decisions
    }
    assert len(decisions) == len(SCRIPT)
    # the bill the person asked to pay goes through; the account planted in an email does not
    assert by_step[("send_money", "DE89370400440532013000")].outcome == "allow"
    injected = by_step[("send_money", "GB33BUKB20201555555555")]
    assert injected.outcome == "deny"
    assert "pay-only-payees-i-named" in injected.finding_ids()
    assert by_step[("send_email", "support@unlock-help.net")].outcome == "escalate"
    assert {d.outcome for d in decisions} == {"allow", "deny", "revise", "escalate"}
    night = next(d for d in decisions if d.proposed.tool == "send_notification" and d.outcome == "revise")
    assert night.action.args["deliver_at"] == "2026-03-03T08:00:00"
    text = buffer.getvalue()
    assert "Careful stewardship of money" in text and "Summary" in text


def test_demo_command_runs() -> None:
    result = CliRunner().invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    assert "DENY" in result.stdout and "REVISE" in result.stdout
