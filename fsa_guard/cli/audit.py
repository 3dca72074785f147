"""``fsa-guard audit verify|show|tail``: read and check an audit trail."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from .._console import OUTCOME_COLOR, esc
from ..audit import open_audit
from ..audit.base import AuditReader, matches, verify_sink
from ..errors import AuditError
from ..evaluate.scenarios import OUTCOMES
from ..store import query, sqlite_path
from ._app import (
    EXIT_DENY,
    EXIT_OK,
    _existing,
    _fail_input,
    app,
    out,
)

if TYPE_CHECKING:
    from ..audit.postgres import PostgresAuditSink

audit_app = typer.Typer(
    help="Read and verify an audit trail (URL: sqlite:///audit.db, jsonl:///audit.jsonl, postgresql://...).\n\n"
    "Exit codes: 0 ok (verify: chain intact), 1 verify: chain broken, 2 unreadable trail or bad URL.",
    no_args_is_help=True,
)
app.add_typer(audit_app, name="audit")

UrlArg = Annotated[
    str, typer.Argument(help="The audit trail's URL; ?stream=name picks one stream.", show_default=False)
]


def _open_reader(url: str) -> AuditReader:
    _existing(url, "audit trail")
    scheme = url.split("://", 1)[0].lower()
    if scheme == "sqlite":
        _refuse_other_sqlite(url)
    try:
        sink = open_audit(url)
    except AuditError as exc:
        raise _fail_input(str(exc)) from None
    if not isinstance(sink, AuditReader):
        raise _fail_input(f"{url!r} cannot be read back")
    if scheme in ("postgresql", "postgres"):
        _refuse_other_postgres(cast("PostgresAuditSink", sink))
    return sink


def _refuse_other_postgres(sink: PostgresAuditSink) -> None:
    """Reading leaves the database as it is: a database with no trail (a mistyped name) is refused, not reported
    as a trail with no records."""
    try:
        found = sink.exists()
    except AuditError as exc:
        raise _fail_input(str(exc)) from None
    if not found:
        raise _fail_input(
            f"there is no audit trail in {sink.url!r}: it has no {sink.table} table; check the database name"
        )


def _refuse_other_sqlite(url: str) -> None:
    """Opening a sink creates its tables: a mistyped path to another SQLite file (``state.db``) must be refused,
    not given empty audit tables and reported as a trail with no records."""
    path = sqlite_path(url)
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            found = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_records'").fetchone()
    except sqlite3.Error as exc:
        raise _fail_input(f"cannot read {path} as an SQLite audit trail: {exc}") from None
    if found is None and path.stat().st_size > 0:
        raise _fail_input(f"{path} is an SQLite file but not an audit trail (it has no audit_records table)")


def _streams(sink: AuditReader, url: str) -> list[str]:
    chosen = query(url).get("stream")
    streams = sink.streams()
    if chosen and chosen not in streams:
        raise _fail_input(f"the audit trail has no stream {chosen!r}; its streams: {', '.join(streams) or 'none'}")
    return [chosen] if chosen else streams


def _records(sink: AuditReader, url: str) -> list[Any]:
    """Every chosen stream's records, merged in time order (then stream and seq): "the latest" of several streams
    are the latest written, not the end of the last stream."""
    try:
        records = [r for stream in _streams(sink, url) for r in sink.read(stream)]
    except AuditError as exc:
        raise _fail_input(str(exc)) from None
    return sorted(records, key=_when)


def _when(record: Any) -> tuple[str, str, int]:
    if not isinstance(record, dict):
        return ("", "", 0)  # unreadable ones first, where they are seen
    seq = record.get("seq")
    return (str(record.get("time", "")), str(record.get("stream", "")), seq if isinstance(seq, int) else 0)


@audit_app.command("verify")
def audit_verify(url: UrlArg) -> None:
    """Check the hash chain of every stream. Exit 0 intact, 1 broken (naming the first bad record)."""
    sink = _open_reader(url)
    try:
        reports = [r for r in verify_sink(sink) if r.stream in _streams(sink, url)]
    except AuditError as exc:
        raise _fail_input(str(exc)) from None
    for r in reports:
        out.print(f"[{'green' if r.ok else 'red'}]{'ok' if r.ok else 'BROKEN'}[/] {esc(str(r))}", markup=True)
    if not reports:
        out.print("no records")
    raise typer.Exit(EXIT_OK if all(r.ok for r in reports) else EXIT_DENY)


def _print_records(records: list[Any], as_json: bool) -> None:
    for r in records:
        if as_json:
            sys.stdout.write(json.dumps(r, sort_keys=True, default=str) + "\n")
            continue
        if not isinstance(r, dict):
            out.print(f"[red]unreadable record[/red] {esc(str(r)[:200])}", markup=True)
            continue
        where = esc(f"{r.get('stream')}:{r.get('seq')}")
        if r.get("kind") == "answer":
            note = f" — {r.get('note')}" if r.get("note") else ""
            out.print(
                f"[dim]{where} {esc(str(r.get('time')))}[/dim]  [bold]ANSWER[/bold] {esc(str(r.get('choice')))} "
                f"{esc(str(r.get('tool')))} by {esc(str(r.get('by')))}{esc(note)} "
                f"[dim](approval {esc(str(r.get('approval_id')))})[/dim]",
                markup=True,
            )
            continue
        if r.get("kind") == "report":
            state = "[green]ran[/green]" if r.get("ok") else f"[red]failed[/red] {esc(str(r.get('error') or ''))}"
            out.print(
                f"[dim]{where} {esc(str(r.get('time')))}[/dim]  {esc(str(r.get('tool')))} {state} "
                f"[dim](decision {esc(str(r.get('decision')))})[/dim]",
                markup=True,
            )
            continue
        outcome = str(r.get("outcome", "?"))
        color = OUTCOME_COLOR.get(outcome, "white")
        proposed, findings = r.get("proposed"), r.get("findings")
        tool = proposed.get("tool", "?") if isinstance(proposed, dict) else "?"
        found = findings if isinstance(findings, list) else []
        ids = ", ".join(str(f.get("id", "?")) for f in found if isinstance(f, dict))
        out.print(
            f"[dim]{where} {esc(str(r.get('time')))}[/dim]  [bold {color}]{esc(outcome.upper())}[/] "
            f"{esc(str(tool))}" + (f"  [dim]{esc(ids)}[/dim]" if ids else ""),
            markup=True,
        )


@audit_app.command("show")
def audit_show(
    url: UrlArg,
    outcome: Annotated[str | None, typer.Option(help="Only decisions with this outcome.")] = None,
    tool: Annotated[str | None, typer.Option(help="Only decisions about this tool.")] = None,
    since: Annotated[str | None, typer.Option(help="Only records at or after this ISO time (UTC).")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many, the latest.", min=1)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON record per line.")] = False,
) -> None:
    """List decisions (and reported outcomes), oldest first."""
    if outcome is not None:
        if outcome.lower() not in OUTCOMES:  # a typo would list nothing and exit 0, as if nothing matched
            raise _fail_input(f"--outcome must be {', '.join(OUTCOMES[:-1])} or {OUTCOMES[-1]}, not {outcome!r}")
        outcome = outcome.lower()  # as printed (DENY) or as recorded (deny)
    if since is not None:
        try:
            when = datetime.fromisoformat(since.replace("Z", "+00:00"))
            since = (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
        except ValueError:
            raise _fail_input(f"--since {since!r} is not an ISO time such as 2026-03-02T10:00:00Z") from None
    wanted_decisions = outcome is not None or tool is not None
    chosen = [
        r
        for r in _records(_open_reader(url), url)
        if not isinstance(r, dict)
        or (matches(r, outcome, tool, since) and not (wanted_decisions and r.get("kind") == "report"))
    ]
    _print_records(chosen[-limit:] if limit else chosen, as_json)


@audit_app.command("tail")
def audit_tail(
    url: UrlArg,
    lines: Annotated[int, typer.Option("-n", "--lines", help="How many of the latest records to show.", min=0)] = 10,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing new records (Ctrl-C stops).")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between checks when following.", min=0.05)] = 0.5,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON record per line.")] = False,
) -> None:
    """Print the latest records; with -f, keep printing new ones as they are written."""
    sink = _open_reader(url)
    records = _records(sink, url)
    _print_records(records[-lines:] if lines else [], as_json)
    seen = {_key(r) for r in records}  # a new record may land in any stream, not only after the last one read
    try:
        while follow:
            time.sleep(interval)
            new = [r for r in _records(sink, url) if _key(r) not in seen]
            _print_records(new, as_json)
            seen.update(_key(r) for r in new)
    except KeyboardInterrupt:
        pass


def _key(record: Any) -> str:
    return repr((record.get("stream"), record.get("seq"))) if isinstance(record, dict) else str(record)
