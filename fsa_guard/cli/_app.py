"""The Typer app, its consoles and exit codes, shared by every command module."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from .._console import esc
from ..audit.memory import MemoryAuditSink
from ..errors import Problem, SpecError, StoreError
from ..guard import Guard
from ..store import sqlite_path
from ..store.memory import MemoryStore

EXIT_OK, EXIT_DENY, EXIT_INPUT, EXIT_ESCALATE = 0, 1, 2, 3
_EXIT_FOR = {"allow": EXIT_OK, "revise": EXIT_OK, "deny": EXIT_DENY, "escalate": EXIT_ESCALATE}

app = typer.Typer(
    name="fsa-guard",
    help="Put a person's values between an AI agent and the world.\n\n"
    "Exit codes: 0 ok (check: allow or revise), 1 check: deny / lint: errors found / eval --strict: a scenario "
    "decided otherwise than labelled, 2 invalid or unreadable input, 3 check: escalate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


SpecsArg = Annotated[list[Path], typer.Argument(help="Spec files, later layered over earlier.", show_default=False)]


def _fail_input(message: str) -> typer.Exit:
    """Print ``message`` (plain text: a path or a tool name may hold brackets) and the exit to raise."""
    err.print(f"[red]error:[/red] {esc(message)}", markup=True)
    return typer.Exit(EXIT_INPUT)


def _existing(url: str, what: str) -> str:
    """``url``, when it is not a file URL or its file exists: a command that reads (or answers in) a store or an
    audit trail must not create an empty one at a mistyped path and report that nothing is there."""
    if url.split("://", 1)[0].lower() in ("sqlite", "jsonl"):
        try:
            path = sqlite_path(url)
        except ValueError as exc:
            raise _fail_input(str(exc)) from None
        if not path.exists():
            raise _fail_input(f"there is no {what} at {path} (from {url!r}); check the path")
    return url


def _print_problems(problems: list[Problem], console: Console) -> None:
    for p in problems:
        color = "red" if p.severity == "error" else "yellow"
        where = esc(f"{p.file}:{p.line}" if p.line else p.file)
        key = f" [bold]{esc(p.key)}[/bold]:" if p.key else ""
        hint = f" [dim]({esc(p.hint)})[/dim]" if p.hint else ""
        console.print(f"[{color}]{p.severity}[/{color}] {where}:{key} {esc(p.message)}{hint}", markup=True)


def _load_guard(specs: list[Path], store: str | None = None) -> Guard:
    # a dry run: nothing is recorded, and budgets spent by a list of actions live only as long as the command
    # (in a fresh store, or as reservations the command releases in the one it is given)
    try:
        return Guard.from_files(*specs, store=store or MemoryStore(), audit=MemoryAuditSink())
    except SpecError as exc:
        _print_problems(exc.problems, err)
        raise typer.Exit(EXIT_INPUT) from None
    except StoreError as exc:
        raise _fail_input(str(exc)) from None
