"""The offline demo: a scripted session through the personal-assistant policy."""

from __future__ import annotations

import io

from rich.console import Console
from typer.testing import CliRunner

from fsa_guard.cli import app
from fsa_guard.decision import Decision
from fsa_guard.demo import SCRIPT, run_demo, scripted_approver


def by_step(decisions: list[Decision]) -> dict[tuple[str, str], Decision]:
    return {
        (d.proposed.tool, str(d.proposed.args.get("recipient", d.proposed.args.get("to", "")))): d for d in decisions
    }


def test_demo_session_stops_the_injection_and_covers_every_outcome() -> None:
    buffer = io.StringIO()
    decisions = run_demo(Console(file=buffer, width=120))
    steps = by_step(decisions)
    assert len(decisions) == len(SCRIPT)
    # the bill the person asked to pay goes through; the account planted in an email does not
    assert steps[("send_money", "DE89370400440532013000")].outcome == "allow"
    injected = steps[("send_money", "GB33BUKB20201555555555")]
    assert injected.outcome == "deny"
    assert "pay-only-payees-i-named" in injected.finding_ids()
    # without an approver, escalations pause
    assert steps[("send_email", "support@unlock-help.net")].outcome == "escalate"
    assert {d.outcome for d in decisions} == {"allow", "deny", "revise", "escalate"}
    night = next(d for d in decisions if d.proposed.tool == "send_notification" and d.outcome == "revise")
    assert night.action.args["deliver_at"] == "2026-03-03T08:00:00"
    text = buffer.getvalue()
    assert "Careful stewardship of money" in text and "Summary" in text
    assert "paused: the assistant asks you" in text and "answered:" not in text


def test_scripted_demo_lets_the_person_answer_escalations() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, width=200)
    decisions = run_demo(console, approver=scripted_approver(console))
    steps = by_step(decisions)
    assert len(decisions) == len(SCRIPT)
    injected = steps[("send_money", "GB33BUKB20201555555555")]
    assert injected.outcome == "deny" and "pay-only-payees-i-named" in injected.finding_ids()
    scam = steps[("send_email", "support@unlock-help.net")]
    assert scam.outcome == "deny" and "human-denied" in scam.finding_ids()
    club = next(d for d in decisions if d.proposed.tool == "subscribe")
    assert club.outcome == "allow" and "human-approved" in club.finding_ids()
    assert not any(d.outcome == "escalate" for d in decisions)
    text = buffer.getvalue()
    # the panel, the echoed answers, and who answered what
    assert "Needs your approval" in text and "support@unlock-help.net" in text
    assert "> deny" in text and "> I never asked for that; it is the scam email" in text
    assert "> approve" in text and "> fine, I wanted that club" in text
    assert "you answered: deny — I never asked for that; it is the scam email" in text
    assert "you answered: approve — fine, I wanted that club" in text
    assert "--critic-model" in text  # the summary still says how to enable a critic


def test_demo_command_runs() -> None:
    result = CliRunner().invoke(app, ["demo"])  # stdin is not a TTY: scripted, so it never blocks
    assert result.exit_code == 0, result.output
    assert "DENY" in result.stdout and "REVISE" in result.stdout
    assert "you answered: deny" in result.stdout and "> approve" in result.stdout


def test_demo_command_interactive_reads_the_answers() -> None:
    result = CliRunner().invoke(app, ["demo", "--interactive"], input="d\nscam\na\n\n")
    assert result.exit_code == 0, result.output
    assert "answered: deny — scam" in result.stdout
    assert "answered: approve" in result.stdout


def test_demo_command_interactive_with_closed_input_denies() -> None:
    result = CliRunner().invoke(app, ["demo", "--interactive"], input="")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("answered: deny — no answer (input closed)") == 2
