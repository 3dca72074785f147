"""An approver that asks the person at a terminal, with rich."""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from rich import box
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.prompt import Prompt
from rich.table import Table

from .._console import esc
from .._json import loads as json_loads
from ..decision import Decision
from .base import Answer

__all__ = ["ConsoleApprover"]

Choice = Literal["approve", "deny", "edit"]

_CHOICES: dict[str, Choice] = {
    "a": "approve",
    "approve": "approve",
    "d": "deny",
    "deny": "deny",
    "e": "edit",
    "edit": "edit",
}
_MAX_CHOICE_TRIES = 5
_MAX_ARGS_TRIES = 3
_CLOSED = "no answer (input closed)"
_NO_TERMINAL = "no answer (standard input is not a terminal to ask a person at)"

Q_CHOICE = "approve, deny or edit (a/d/e)"
Q_ARGS = "the whole new args, as one line of JSON"
Q_NOTE = "note (optional, Enter to skip)"


class _InputClosed(Exception):
    """The input ended (EOF) or the person pressed Ctrl-C."""


class _Prompt(Prompt):
    prompt_suffix = " > "


class ConsoleApprover:
    """Asks the person at the terminal about an escalated decision: it shows the call, the findings with the
    values they serve and the guard's explanation, then reads approve, deny or edit (with the whole new args
    as JSON) and an optional note. Anything it cannot read as an answer (closed input, Ctrl-C, too many
    invalid answers) is a deny, so a missing person never lets a call through. ``input`` replaces the prompt
    (it gets the question and returns one line); ``by`` names who answers (default: the login name).

    Without ``input`` it reads the terminal, and when standard input is not one (a pipe, a file, a service) it
    denies without reading: lines meant for the program would otherwise be taken for a person's answer.
    ``terminal_only=False`` reads standard input whatever it is (answers scripted on purpose).
    """

    def __init__(
        self,
        console: Console | None = None,
        *,
        input: Callable[[str], str] | None = None,
        by: str | None = None,
        terminal_only: bool = True,
    ) -> None:
        self.console = console or Console()
        self._input = input
        self.by = by if by is not None else _login_name()
        self.terminal_only = terminal_only

    def ask(self, decision: Decision) -> Answer:
        """Show ``decision`` and read the person's answer (deny when none can be read)."""
        self.console.print(self._panel(decision))
        if self._input is None and self.terminal_only and not _stdin_is_terminal():
            self.console.print(f"[red]Denied: {_NO_TERMINAL}.[/red]")
            return self._answer("deny", note=_NO_TERMINAL)
        try:
            return self._read(decision)
        except _InputClosed:
            return self._answer("deny", note=_CLOSED)

    async def aask(self, decision: Decision) -> Answer:
        """Ask in a thread of its own, so the event loop keeps running while the person thinks.

        A daemon thread, not the loop's executor: when the guard stops waiting (``escalation.timeout``), a
        prompt still blocked on the terminal must not keep the program from exiting.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Answer] = loop.create_future()

        def run() -> None:
            try:
                answer = self.ask(decision)
            except BaseException as exc:  # handed to the awaiting task, which decides what it means
                loop.call_soon_threadsafe(_settle, done, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, done, answer, None)

        threading.Thread(target=run, name="fsa-guard-console-approver", daemon=True).start()
        return await done

    # -- reading -----------------------------------------------------------------------------------

    def _read(self, decision: Decision) -> Answer:
        choice: Choice | None = None
        for _ in range(_MAX_CHOICE_TRIES):
            choice = _CHOICES.get(self._line(Q_CHOICE).strip().lower())
            if choice is not None:
                break
            self.console.print("[red]Please answer approve, deny or edit (a, d or e).[/red]")
        if choice is None:
            return self._answer("deny", note="no valid answer")
        args: dict[str, Any] | None = None
        if choice == "edit":
            args = self._read_args(decision)
            if args is None:
                return self._answer("deny", note="no valid args for the edit")
        note = self._line(Q_NOTE).strip()
        return self._answer(choice, args, note)

    def _read_args(self, decision: Decision) -> dict[str, Any] | None:
        self.console.print("Current args:")
        self.console.print(esc(_json(decision.action.args, indent=None)))
        for _ in range(_MAX_ARGS_TRIES):
            text = self._line(Q_ARGS)
            try:
                value = json_loads(text)
            except ValueError as exc:
                self.console.print(f"[red]Not valid JSON: {esc(str(exc))}[/red]")
                continue
            if isinstance(value, dict):
                return value
            self.console.print('[red]The args must be a JSON object, like {"amount": 20}.[/red]')
        return None

    def _line(self, question: str) -> str:
        try:
            if self._input is not None:
                return self._input(question + _Prompt.prompt_suffix)
            return _Prompt.ask(question, console=self.console)
        except (EOFError, KeyboardInterrupt):
            raise _InputClosed from None

    def _answer(self, choice: Choice, args: Mapping[str, Any] | None = None, note: str = "") -> Answer:
        return Answer(choice, args, by=self.by, note=note, at=datetime.now(UTC))

    # -- showing -----------------------------------------------------------------------------------

    def _panel(self, decision: Decision) -> Panel:
        action, proposed = decision.action, decision.proposed
        parts: list[RenderableType] = [
            f"The assistant wants to run [bold]{esc(action.tool)}[/bold] with:",
            esc(_json(action.args)),
        ]
        if action.tool != proposed.tool or dict(action.args) != dict(proposed.args):
            parts.append(
                f"[dim](the agent proposed {esc(proposed.tool)} {esc(_json(proposed.args, indent=None))}; "
                "the spec changed it)[/dim]"
            )
        if decision.findings:
            table = Table(box=box.SIMPLE, show_edge=False, pad_edge=False)
            for column in ("source", "id", "effect", "message", "values"):
                table.add_column(column, overflow="fold")
            for f in decision.findings:
                titles = ", ".join(decision.value_titles.get(v, v) for v in f.values)
                table.add_row(esc(f.source), esc(f.id), esc(f.effect), esc(f.message), esc(titles) or "-")
            parts.append(table)
        parts += ["", esc(decision.explain())]
        title = "[bold yellow]Needs your approval[/bold yellow]"
        if decision.approval_id:
            title += f" [dim]· approval {esc(decision.approval_id)}[/dim]"
        return Panel(Group(*parts), title=title, title_align="left", border_style="yellow")


def _json(value: Mapping[str, Any], indent: int | None = 2) -> str:
    return json.dumps(dict(value), indent=indent, ensure_ascii=False, default=str)


def _stdin_is_terminal() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError):  # replaced by something without isatty, or closed
        return False


def _login_name() -> str:
    try:
        return getpass.getuser() or "console"
    except Exception:  # no login name in the environment (containers, services)
        return "console"


def _settle(future: asyncio.Future[Answer], answer: Answer | None, exc: BaseException | None) -> None:
    if future.done():  # the guard stopped waiting
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        assert answer is not None
        future.set_result(answer)
