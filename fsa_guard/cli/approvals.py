"""``fsa-guard approvals list|show|approve|deny|edit``: answer queued escalations."""

from __future__ import annotations

import getpass
import json
import sys
from datetime import UTC, datetime
from typing import Annotated

import typer

from .. import _json
from .._console import esc
from ..audit import open_audit
from ..decision import Answer
from ..errors import ApprovalError, AuditError, StoreError
from ..escalate.queue import Approval, ApprovalQueue
from ._app import (
    EXIT_DENY,
    EXIT_INPUT,
    _existing,
    _fail_input,
    app,
    err,
    out,
)

approvals_app = typer.Typer(
    help="Answer escalations waiting in an approval queue (the store: sqlite:///state.db, redis://host:6379/0).\n\n"
    "Exit codes: 0 ok, 1 the approval cannot be answered (already answered, expired), 2 bad input, unknown id or "
    "unreachable store.",
    no_args_is_help=True,
)
app.add_typer(approvals_app, name="approvals")

StoreOpt = Annotated[
    str,
    typer.Option("--store", envvar="FSA_GUARD_STORE", help="The store that keeps the approvals.", show_default=False),
]
AuditOpt = Annotated[
    str | None,
    typer.Option("--audit", envvar="FSA_GUARD_AUDIT", help="Also record the answer in this audit trail."),
]
IdArg = Annotated[str, typer.Argument(help="The approval's id (ap_...).", show_default=False)]
ByOpt = Annotated[str | None, typer.Option(help="Who answers (default: your user name).")]
NoteOpt = Annotated[str, typer.Option(help="Why, in a few words; kept with the answer.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _queue(url: str) -> ApprovalQueue:
    try:
        return ApprovalQueue(_existing(url, "store"))
    except (StoreError, TypeError) as exc:
        raise _fail_input(str(exc)) from None


def _show_approval(a: Approval, as_json: bool, full: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(a.to_dict(), sort_keys=True, default=str) + "\n")
        return
    color = {"pending": "yellow", "expired": "dim", "approve": "green", "edit": "green", "deny": "red"}[a.status]
    args = json.dumps((a.decision.get("action") or {}).get("args", {}), ensure_ascii=False)
    who = f" by {a.answer.by}" if a.answer else ""
    used = f", used by {a.claimed_by}" if a.claimed_by else ""
    out.print(
        f"[bold]{a.id}[/bold] [{color}]{a.status}{esc(who)}[/{color}]{esc(used)}  [bold]{esc(a.tool)}[/bold] "
        f"{esc(args if full else args[:120])}  [dim]expires {a.expires.isoformat(timespec='seconds')}[/dim]",
        markup=True,
    )
    if a.answer is not None and a.answer.args is not None:  # an edit: what runs, not what was asked
        edited = json.dumps(a.answer.args, ensure_ascii=False)
        out.print(f"  edited to: {esc(edited if full else edited[:120])}", markup=True)
    if full:
        out.print(f"  {esc(str(a.decision.get('explanation', '')))}", markup=True)
        for f in a.decision.get("findings", []):
            out.print(f"  - [dim]{esc(f['source'])}[/dim] {esc(f['id'])} ({esc(f['effect'])}): {esc(f['message'])}")
        if a.answer and a.answer.note:
            out.print(f"  note: {esc(a.answer.note)}", markup=True)


@approvals_app.command("list")
def approvals_list(
    store: StoreOpt,
    status: Annotated[str, typer.Option(help="pending, approve, deny, edit, expired, or all.")] = "pending",
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List approvals, newest first (by default those still waiting for an answer)."""
    if status not in ("pending", "approve", "deny", "edit", "expired", "all"):
        raise _fail_input(f"--status must be pending, approve, deny, edit, expired or all, not {status!r}")
    queue = _queue(store)
    try:
        items = queue.list(None if status == "all" else status, limit)
    except (StoreError, ApprovalError) as exc:
        raise _fail_input(str(exc)) from None
    for a in items:
        _show_approval(a, as_json, full=False)
    if not items and not as_json:
        out.print(f"no {'' if status == 'all' else status + ' '}approvals")


@approvals_app.command("show")
def approvals_show(approval_id: IdArg, store: StoreOpt, as_json: JsonOpt = False) -> None:
    """Show one approval: the call, why it needs an answer, and the answer if there is one."""
    try:
        approval = _queue(store).get(approval_id)
    except (StoreError, ApprovalError) as exc:
        raise _fail_input(str(exc)) from None
    _show_approval(approval, as_json, full=True)


def _answer(store: str, audit: str | None, approval_id: str, answer: Answer, as_json: bool) -> None:
    queue = _queue(store)
    sink = None
    if audit:  # opened first: an answer that cannot be recorded is not given
        try:
            sink = open_audit(audit)  # answers may start a trail of their own
        except AuditError as exc:
            raise _fail_input(str(exc)) from None
    try:
        approval = queue.answer(approval_id, answer)
    except StoreError as exc:
        raise _fail_input(str(exc)) from None
    except ApprovalError as exc:
        known = "no approval with id" not in str(exc)
        err.print(f"[red]error:[/red] {esc(str(exc))}", markup=True)
        raise typer.Exit(EXIT_DENY if known else EXIT_INPUT) from None
    assert approval.answer is not None
    if sink is not None:
        record = {
            "kind": "answer",
            "time": datetime.now(UTC).isoformat(),
            "approval_id": approval.id,
            "tool": approval.tool,
            **approval.answer.to_dict(),
        }
        try:
            sink.write(record)
        except Exception as exc:
            err.print(
                f"[red]error:[/red] answered, but not recorded in {esc(str(audit))}: {esc(str(exc))}", markup=True
            )
            raise typer.Exit(EXIT_DENY) from None
    _show_approval(approval, as_json, full=False)


def _by(by: str | None) -> str:
    if by:
        return by
    try:
        return getpass.getuser()
    except Exception:
        return "cli"


@approvals_app.command("approve")
def approvals_approve(
    approval_id: IdArg,
    store: StoreOpt,
    audit: AuditOpt = None,
    by: ByOpt = None,
    note: NoteOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Let the call run as it is."""
    _answer(store, audit, approval_id, Answer("approve", by=_by(by), note=note), as_json)


@approvals_app.command("deny")
def approvals_deny(
    approval_id: IdArg,
    store: StoreOpt,
    audit: AuditOpt = None,
    by: ByOpt = None,
    note: NoteOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Refuse the call."""
    _answer(store, audit, approval_id, Answer("deny", by=_by(by), note=note), as_json)


@approvals_app.command("edit")
def approvals_edit(
    approval_id: IdArg,
    store: StoreOpt,
    args: Annotated[str | None, typer.Option(help="The call's new args, a JSON object (replaces them all).")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="NAME=VALUE: change one arg (VALUE is read as JSON, else as text). Repeatable."),
    ] = None,
    audit: AuditOpt = None,
    by: ByOpt = None,
    note: NoteOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Let the call run with other args; the guard verifies them again (a hard deny still holds)."""
    if (args is None) == (not set_):
        raise _fail_input("give the new args with --args '{...}' or change some with --set name=value (not both)")
    if args is not None:
        try:
            new = _json.loads(args)
        except ValueError as exc:
            raise _fail_input(f"--args is not JSON: {_json.describe(exc)}") from None
        if not isinstance(new, dict):
            raise _fail_input("--args must be a JSON object of the call's args")
    else:
        try:
            approval = _queue(store).get(approval_id)
        except (StoreError, ApprovalError) as exc:
            raise _fail_input(str(exc)) from None
        new = dict((approval.decision.get("action") or {}).get("args") or {})
        for item in set_ or []:
            name, eq, value = item.partition("=")
            if not eq or not name:
                raise _fail_input(f"--set {item!r}: write NAME=VALUE")
            try:
                new[name] = _json.loads(value)
            except ValueError:
                was = new.get(name)
                if name in new and not isinstance(was, str):
                    # a typo (85O for 850) would otherwise be sent as text, and spend the approval on a call
                    # the guard cannot read
                    kind = "a number" if isinstance(was, int | float) and not isinstance(was, bool) else "not text"
                    raise _fail_input(
                        f"--set {item!r}: {name} is {kind} ({json.dumps(was)}), and {value!r} is not JSON; "
                        f"write {name}='\"{value}\"' to send it as text"
                    ) from None
                new[name] = value
    _answer(store, audit, approval_id, Answer("edit", args=new, by=_by(by), note=note), as_json)
