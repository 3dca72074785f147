"""ConsoleApprover: asking the person at a terminal, failing closed, and answering a real Guard."""

from __future__ import annotations

import asyncio
import io
import sys
import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from rich.console import Console

from fsa_guard import Action, Answer, Approver, Decision, Finding, Guard, load_spec
from fsa_guard.escalate.console import ConsoleApprover


def lines(*typed: str) -> Callable[[str], str]:
    """An ``input`` that returns ``typed`` one by one, then raises EOFError (the input closed)."""
    queue = list(typed)

    def read(prompt: str) -> str:
        if not queue:
            raise EOFError
        return queue.pop(0)

    return read


def approver(*typed: str) -> tuple[ConsoleApprover, io.StringIO]:
    buffer = io.StringIO()
    return ConsoleApprover(Console(file=buffer, width=160), input=lines(*typed), by="alice"), buffer


def decision(args: dict[str, object] | None = None, approval_id: str | None = None) -> Decision:
    action = Action("send_money", args if args is not None else {"recipient": "US13", "amount": 600.0})
    finding = Finding("norm", "big-needs-approval", "Payments above 500 need my approval", "escalate", ("money",))
    return Decision(
        "escalate",
        action,
        action,
        (finding,),
        value_titles={"money": "Careful stewardship of money"},
        approval_id=approval_id,
    )


def test_is_an_approver() -> None:
    assert isinstance(ConsoleApprover(Console(file=io.StringIO()), input=lines()), Approver)


@pytest.mark.parametrize("typed", ["a", "approve", "APPROVE", " A "])
def test_approve(typed: str) -> None:
    a, _ = approver(typed, "looks right")
    answer = a.ask(decision())
    assert answer.choice == "approve" and answer.args is None
    assert answer.by == "alice" and answer.note == "looks right" and answer.at is not None


@pytest.mark.parametrize("typed", ["d", "deny", "Deny"])
def test_deny_with_an_empty_note(typed: str) -> None:
    a, _ = approver(typed, "")
    answer = a.ask(decision())
    assert answer.choice == "deny" and answer.note == ""


def test_edit_replaces_the_whole_args() -> None:
    a, buffer = approver("e", '{"recipient": "US13", "amount": 450.0}', "less")
    answer = a.ask(decision())
    assert answer.choice == "edit"
    assert answer.args == {"recipient": "US13", "amount": 450.0}
    assert answer.note == "less"
    assert "Current args" in buffer.getvalue()


def test_invalid_answer_then_valid() -> None:
    a, buffer = approver("maybe", "yes", "deny", "")
    assert a.ask(decision()).choice == "deny"
    assert buffer.getvalue().count("Please answer approve, deny or edit") == 2


def test_invalid_json_then_valid() -> None:
    a, buffer = approver("edit", "{not json", "[1, 2]", '{"amount": 1}', "")
    answer = a.ask(decision())
    assert answer.choice == "edit" and answer.args == {"amount": 1}
    text = buffer.getvalue()
    assert "Not valid JSON" in text and "must be a JSON object" in text


def test_edited_args_with_a_key_twice_or_nested_too_deep_are_asked_again() -> None:
    a, buffer = approver("edit", '{"amount": 1, "amount": 9000}', "[" * 100_000 + "]" * 100_000, '{"amount": 1}', "")
    answer = a.ask(decision())
    assert answer.choice == "edit" and answer.args == {"amount": 1}
    text = " ".join(buffer.getvalue().split())
    assert 'key "amount" is given twice' in text and "nested too deeply" in text


def test_too_many_invalid_answers_deny() -> None:
    a, _ = approver("x", "y", "z", "maybe", "perhaps", "approve")
    answer = a.ask(decision())
    assert answer.choice == "deny" and answer.note == "no valid answer"


def test_too_many_invalid_args_deny() -> None:
    a, _ = approver("e", "{", "1", "null", '{"amount": 1}')
    answer = a.ask(decision())
    assert answer.choice == "deny" and answer.args is None


@pytest.mark.parametrize("typed", [(), ("approve",), ("edit",), ("edit", '{"amount": 1}')])
def test_closed_input_denies(typed: Iterable[str]) -> None:
    a, _ = approver(*typed)
    answer = a.ask(decision())
    assert answer.choice == "deny" and answer.note == "no answer (input closed)" and answer.by == "alice"


def test_ctrl_c_denies() -> None:
    def interrupted(prompt: str) -> str:
        raise KeyboardInterrupt

    a = ConsoleApprover(Console(file=io.StringIO()), input=interrupted)
    assert a.ask(decision()).choice == "deny"


def test_panel_shows_the_call_findings_and_values_and_escapes_markup() -> None:
    a, buffer = approver("d", "")
    a.ask(decision({"recipient": "[bold]US13[/bold]", "amount": 600.0}, approval_id="ap-7"))
    text = buffer.getvalue()
    assert "send_money" in text and "600.0" in text
    assert "[bold]US13[/bold]" in text  # shown as typed, not read as markup
    assert "big-needs-approval" in text and "Careful stewardship of money" in text
    assert "Needs your approval" in text and "ap-7" in text


def test_prompts_go_to_input() -> None:
    asked: list[str] = []

    def read(prompt: str) -> str:
        asked.append(prompt)
        return "a" if len(asked) == 1 else ""

    ConsoleApprover(Console(file=io.StringIO()), input=read).ask(decision())
    assert "approve, deny or edit" in asked[0] and "note" in asked[1]


def test_reads_with_rich_prompt_without_input(monkeypatch: pytest.MonkeyPatch) -> None:
    typed = iter(["deny", "no"])
    monkeypatch.setattr("builtins.input", lambda *_: next(typed))
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    answer = ConsoleApprover(Console(file=io.StringIO()), by="bob").ask(decision())
    assert (answer.choice, answer.note, answer.by) == ("deny", "no", "bob")


def test_stdin_that_is_not_a_terminal_is_not_read_as_a_person(monkeypatch: pytest.MonkeyPatch) -> None:
    # a program fed from a pipe: its next line of data must not approve a payment
    monkeypatch.setattr("sys.stdin", io.StringIO("approve\n\n"))
    buffer = io.StringIO()
    answer = ConsoleApprover(Console(file=buffer, width=160), by="bob").ask(decision())
    assert answer.choice == "deny" and "not a terminal" in answer.note
    assert "not a terminal" in buffer.getvalue() and sys.stdin.read() == "approve\n\n"  # nothing was consumed
    # asked for on purpose, answers scripted into stdin are read
    monkeypatch.setattr("sys.stdin", io.StringIO("approve\n\n"))
    answer = ConsoleApprover(Console(file=io.StringIO()), by="bob", terminal_only=False).ask(decision())
    assert answer.choice == "approve"


def test_by_defaults_to_the_login_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("getpass.getuser", lambda: "carol")
    assert ConsoleApprover(Console(file=io.StringIO())).by == "carol"

    def fail() -> str:
        raise OSError("no login name")

    monkeypatch.setattr("getpass.getuser", fail)
    assert ConsoleApprover(Console(file=io.StringIO())).by == "console"


def test_aask() -> None:
    a, _ = approver("approve", "")
    answer = asyncio.run(a.aask(decision()))
    assert isinstance(answer, Answer) and answer.choice == "approve"


# -- with a real Guard -------------------------------------------------------------------------------

SPEC = """
fsa_guard: 1
id: alice
values:
  - id: careful-money
    title: Careful stewardship of money
    attends_to:
      - CLARITY about who receives money and why
norms:
  - id: no-huge
    description: No payments above 900.
    tools: [send_money]
    when: action.args.amount > 900.0
    effect: deny
    serves: [careful-money]
  - id: big-needs-approval
    description: Payments above 500 need my approval.
    tools: [send_money]
    when: action.args.amount > 500.0
    effect: escalate
    serves: [careful-money]
"""


@pytest.fixture
def spec_path(tmp_path: Path) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent(SPEC).lstrip("\n"), encoding="utf-8")
    return path


def guarded(spec_path: Path, *typed: str) -> tuple[Guard, io.StringIO]:
    a, buffer = approver(*typed)
    return Guard(load_spec(spec_path), store="memory://", approver=a), buffer


def test_guard_approve_runs_the_call(spec_path: Path) -> None:
    guard, buffer = guarded(spec_path, "a", "ok")
    d = guard.decide(Action("send_money", {"recipient": "US13", "amount": 600.0}))
    assert d.outcome == "allow"
    assert "human-approved" in d.finding_ids()
    text = buffer.getvalue()
    assert "big-needs-approval" in text and "Careful stewardship of money" in text


def test_guard_edit_that_trips_a_deny_is_denied(spec_path: Path) -> None:
    guard, _ = guarded(spec_path, "e", '{"recipient": "US13", "amount": 5000.0}', "")
    d = guard.decide(Action("send_money", {"recipient": "US13", "amount": 600.0}))
    assert d.outcome == "deny"
    assert "no-huge" in d.finding_ids()


def test_guard_closed_input_denies(spec_path: Path) -> None:
    guard, _ = guarded(spec_path)
    d = guard.decide(Action("send_money", {"recipient": "US13", "amount": 600.0}))
    assert d.outcome == "deny" and "human-denied" in d.finding_ids()


def test_guard_adecide_asks_in_a_thread(spec_path: Path) -> None:
    guard, _ = guarded(spec_path, "approve", "")
    d = asyncio.run(guard.adecide(Action("send_money", {"recipient": "US13", "amount": 600.0})))
    assert d.outcome == "allow"
