"""``check``, ``lint``, ``schema`` and ``demo``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.console import Console
from rich.table import Table

from .. import _json
from .._console import OUTCOME_COLOR, esc
from ..action import Action, Call
from ..decision import Decision
from ..evaluate.scenarios import NOW_EXPECTED, history_item_problem, parse_now
from ..spec.lint import lint_spec
from ..spec.model import SpecFile
from ._app import (
    _EXIT_FOR,
    EXIT_DENY,
    EXIT_INPUT,
    EXIT_OK,
    SpecsArg,
    _existing,
    _fail_input,
    _load_guard,
    _print_problems,
    app,
    out,
)


def _read_action_source(value: str) -> tuple[str, str]:
    if value.startswith("@"):
        path = Path(value[1:])
        try:
            return path.read_text(encoding="utf-8"), str(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise _fail_input(f"cannot read action file {path}: {exc}") from None
    if value == "-":
        return sys.stdin.read(), "<stdin>"
    return value, "--action"


def _parse_actions(text: str, where: str) -> list[Action]:
    try:
        data = _json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail_input(f"{where}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None
    except ValueError as exc:
        raise _fail_input(f"{where}: not valid JSON: {exc}") from None
    items = data if isinstance(data, list) else [data]
    if not items:
        raise _fail_input(f"{where}: the list of actions is empty")
    return [
        _action_from_json(item, f"{where}" + (f"[{i}]" if isinstance(data, list) else ""))
        for i, item in enumerate(items)
    ]


def _action_from_json(item: Any, where: str) -> Action:
    def fail(key: str, message: str) -> typer.Exit:
        return _fail_input(f"{where}{key}: {message}")

    if not isinstance(item, dict):
        raise fail("", "an action must be a JSON object with 'tool' and 'args'")
    allowed = {"tool", "args", "request", "history", "context", "now", "id"}
    unknown = sorted(set(item) - allowed)
    if unknown:
        raise fail("", f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    tool = item.get("tool")
    if not isinstance(tool, str) or not tool:
        raise fail(".tool", "expected a non-empty string")
    args = item.get("args", {})
    if not isinstance(args, dict):
        raise fail(".args", "expected an object")
    request = item.get("request", "")
    if not isinstance(request, str):
        raise fail(".request", "expected a string")
    history = item.get("history", [])
    if not isinstance(history, list):
        raise fail(".history", "expected a list of objects with 'tool', 'args' and 'output'")
    for i, h in enumerate(history):
        problem = history_item_problem(h)
        if problem:
            raise fail(f".history[{i}]{problem[0]}", problem[1])
    context = item.get("context", {})
    if not isinstance(context, dict):
        raise fail(".context", "expected an object")
    now = None
    if item.get("now") is not None:
        now = parse_now(item["now"])
        if now is None:
            raise fail(".now", NOW_EXPECTED)
    action_id = item.get("id")
    if action_id is not None and (not isinstance(action_id, str) or not action_id):
        raise fail(".id", "expected a non-empty string")
    return Action(
        tool=tool,
        args=args,
        request=request,
        history=tuple(Call.coerce(h) for h in history),
        context=context,
        now=now,
        id=action_id,
    )


def _render(decision: Decision) -> None:
    color = OUTCOME_COLOR[decision.outcome]
    out.print(f"[bold {color}]{decision.outcome.upper()}[/bold {color}]  {esc(decision.proposed.tool)}", markup=True)
    out.print(f"  proposed: {esc(json.dumps(decision.proposed.to_dict(), default=str))}", markup=True)
    if decision.outcome == "revise":
        out.print(f"  run:      {esc(json.dumps(decision.action.to_dict(), default=str))}", markup=True)
    if decision.findings:
        table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        for col in ("source", "id", "effect", "message"):
            table.add_column(col, overflow="fold")
        for f in decision.findings:
            table.add_row(esc(f.source), esc(f.id), esc(f.effect), esc(f.message))
        out.print(table)
    out.print(f"  [dim]{esc(decision.explain())}[/dim]", markup=True)


@app.command()
def check(
    specs: SpecsArg,
    action: Annotated[
        str,
        typer.Option(
            "--action",
            "-a",
            help="The action as JSON, @file.json, or - for stdin. A JSON list decides several in order "
            "(budgets accumulate).",
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the Decision as JSON.")] = False,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="Decide against the budgets and remembered entities in this store (sqlite:///state.db, "
            "redis://host:6379/0). Nothing is spent or noted there: the reservations are released before the "
            "command ends. Without it, a fresh in-memory store, whatever the spec's storage: section says.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Decide an action against SPECS, as a dry run: nothing is recorded, and nothing is spent but in a fresh
    in-memory store (or, with --store, for as long as the command runs). Exit 0 allow/revise, 1 deny,
    3 escalate, 2 invalid input."""
    text, where = _read_action_source(action)
    actions = _parse_actions(text, where)
    guard = _load_guard(specs, _existing(store, "store") if store else None)
    decisions = []
    try:
        for a in actions:
            d = guard.decide(a)
            if store is None:
                guard.report(d, ok=True)  # as if each allowed call ran, so a list of actions spends its budgets
            decisions.append(d)  # in a real store, reserved until the end: a list of actions still adds up
    finally:
        if store is not None:
            for d in decisions:
                guard.report(d, ok=False, error="fsa-guard check: a dry run")  # releases what it reserved
            guard.store.close()
    if as_json:
        payload: Any = [d.to_dict() for d in decisions] if text.lstrip().startswith("[") else decisions[0].to_dict()
        out.print_json(json.dumps(payload, default=str))
    else:
        for d in decisions:
            _render(d)
    worst = max(decisions, key=lambda d: {"allow": 0, "revise": 0, "escalate": 1, "deny": 2}[d.outcome])
    raise typer.Exit(_EXIT_FOR[worst.outcome])


@app.command()
def lint(
    specs: SpecsArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print problems as JSON.")] = False,
) -> None:
    """Print the problems of SPECS (errors and warnings): in a file that does not validate, its keys, its
    expressions and duplicate ids; references between items and layers once every file validates. Exit 0 no
    errors, 1 errors (a YAML syntax error included), 2 a file that cannot be read."""
    problems = lint_spec(*specs)
    errors = [p for p in problems if p.severity == "error"]
    unreadable = any(p.code in ("missing-file", "unreadable") for p in errors)
    if as_json:
        out.print_json(json.dumps([p.to_dict() for p in problems]))
    elif problems:
        _print_problems(problems, out)
        out.print(f"{len(errors)} error(s), {len(problems) - len(errors)} warning(s)")
    else:
        out.print("[green]no problems[/green]", markup=True)
    raise typer.Exit(EXIT_INPUT if unreadable else EXIT_DENY if errors else EXIT_OK)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the spec format (for editor autocompletion)."""
    doc = SpecFile.model_json_schema()
    doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    doc["title"] = "fsa_guard value spec"
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")


@app.command()
def demo(
    pause: Annotated[float, typer.Option(help="Seconds to pause between steps.", min=0.0)] = 0.0,
    critic_model: Annotated[
        str | None, typer.Option(help="Judge marked calls with this chat model (key: OPENAI_API_KEY).")
    ] = None,
    critic_base_url: Annotated[
        str | None, typer.Option(help="An OpenAI-compatible server, e.g. http://localhost:11434/v1.")
    ] = None,
    critic_mode: Annotated[
        str, typer.Option(help="json_schema, or json_object / tool for servers without structured outputs.")
    ] = "json_schema",
    interactive: Annotated[
        bool | None,
        typer.Option(
            "--interactive/--scripted",
            help="Answer escalations yourself, or let a scripted person answer them "
            "(default: interactive when stdin is a terminal).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run a scripted personal-assistant session through a guarded agent loop (offline without --critic-model)."""
    from ..demo import run_demo, scripted_approver
    from ..escalate.base import Approver
    from ..escalate.console import ConsoleApprover

    critic = None
    if critic_model or critic_base_url:
        from ..critique.openai import Mode, OpenAICritic

        if critic_mode not in ("json_schema", "json_object", "tool"):
            raise _fail_input(f"--critic-mode must be json_schema, json_object or tool, not {critic_mode!r}")
        mode = cast(Mode, critic_mode)
        critic = OpenAICritic(critic_model or "gpt-4o-mini", base_url=critic_base_url, mode=mode)
    console = Console(highlight=False)
    if interactive is None:
        interactive = sys.stdin.isatty()
    # --interactive asked for answers from standard input, whatever it is (a pipe of answers included)
    approver: Approver = ConsoleApprover(console, terminal_only=False) if interactive else scripted_approver(console)
    run_demo(console, pause=pause, critic=critic, approver=approver)
