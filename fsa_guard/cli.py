"""The ``fsa-guard`` command line: check an action, lint a spec, print the spec's JSON Schema, run the demo,
read or verify an audit trail (``fsa-guard audit verify|show|tail URL``), answer queued escalations
(``fsa-guard approvals list|show|approve|deny|edit``), and measure decisions (``fsa-guard eval``).

Exit codes (every command): 0 success (for ``check``: allow or revise), 1 for ``check`` a deny and for
``lint`` a spec with errors, 2 invalid or unreadable input (the message names file, line and key), 3 for
``check`` an escalation; ``eval --strict`` exits 1 when a scenario is not decided as labelled.
"""

from __future__ import annotations

import getpass
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.console import Console
from rich.table import Table

from ._console import OUTCOME_COLOR, esc
from .action import Action, Call
from .audit import open_audit
from .audit.base import AuditReader, matches, verify_sink
from .audit.memory import MemoryAuditSink
from .decision import Answer, Decision
from .errors import ApprovalError, AuditError, Problem, SpecError, StoreError
from .escalate.queue import Approval, ApprovalQueue
from .guard import Guard
from .spec.lint import lint_spec
from .spec.model import SpecFile
from .store import query
from .store.memory import MemoryStore

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
    err.print(f"[red]error:[/red] {message}", markup=True)
    return typer.Exit(EXIT_INPUT)


def _print_problems(problems: list[Problem], console: Console) -> None:
    for p in problems:
        color = "red" if p.severity == "error" else "yellow"
        where = f"{p.file}:{p.line}" if p.line else p.file
        key = f" [bold]{esc(p.key)}[/bold]:" if p.key else ""
        hint = f" [dim]({esc(p.hint)})[/dim]" if p.hint else ""
        console.print(f"[{color}]{p.severity}[/{color}] {where}:{key} {esc(p.message)}{hint}", markup=True)


def _load_guard(specs: list[Path]) -> Guard:
    # a dry run: budgets spent by a list of actions live only as long as the command, and nothing is recorded
    try:
        return Guard.from_files(*specs, store=MemoryStore(), audit=MemoryAuditSink())
    except SpecError as exc:
        _print_problems(exc.problems, err)
        raise typer.Exit(EXIT_INPUT) from None


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
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail_input(f"{where}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None
    items = data if isinstance(data, list) else [data]
    if not items:
        raise _fail_input(f"{where}: the list of actions is empty")
    return [
        _action_from_json(item, f"{where}" + (f"[{i}]" if isinstance(data, list) else ""))
        for i, item in enumerate(items)
    ]


def _action_from_json(item: Any, where: str) -> Action:
    if not isinstance(item, dict):
        raise _fail_input(f"{where}: an action must be a JSON object with 'tool' and 'args'")
    allowed = {"tool", "args", "request", "history", "context", "now", "id"}
    unknown = sorted(set(item) - allowed)
    if unknown:
        raise _fail_input(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    tool = item.get("tool")
    if not isinstance(tool, str) or not tool:
        raise _fail_input(f"{where}.tool: expected a non-empty string")
    args = item.get("args", {})
    if not isinstance(args, dict):
        raise _fail_input(f"{where}.args: expected an object")
    request = item.get("request", "")
    if not isinstance(request, str):
        raise _fail_input(f"{where}.request: expected a string")
    history = item.get("history", [])
    if not isinstance(history, list) or not all(
        isinstance(h, dict) and isinstance(h.get("tool"), str) for h in history
    ):
        raise _fail_input(f"{where}.history: expected a list of objects with 'tool', 'args' and 'output'")
    context = item.get("context", {})
    if not isinstance(context, dict):
        raise _fail_input(f"{where}.context: expected an object")
    now = None
    if item.get("now") is not None:
        try:
            now = datetime.fromisoformat(str(item["now"]).replace("Z", "+00:00"))
        except ValueError:
            raise _fail_input(f"{where}.now: expected an ISO 8601 time such as 2026-03-01T09:30:00+01:00") from None
    return Action(
        tool=tool,
        args=args,
        request=request,
        history=tuple(Call.coerce(h) for h in history),
        context=context,
        now=now,
        id=item.get("id"),
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
            table.add_row(f.source, f.id, f.effect, f.message)
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
) -> None:
    """Decide an action against SPECS. Exit 0 allow/revise, 1 deny, 3 escalate, 2 invalid input."""
    guard = _load_guard(specs)
    text, where = _read_action_source(action)
    actions = _parse_actions(text, where)
    decisions = []
    for a in actions:
        d = guard.decide(a)
        guard.report(d, ok=True)  # as if each allowed call ran, so a list of actions spends its budgets
        decisions.append(d)
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
    """Print every problem of SPECS (errors and warnings). Exit 0 no errors, 1 errors, 2 unreadable file."""
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
    from .demo import run_demo, scripted_approver
    from .escalate.base import Approver
    from .escalate.console import ConsoleApprover

    critic = None
    if critic_model or critic_base_url:
        from .critique.openai import Mode, OpenAICritic

        if critic_mode not in ("json_schema", "json_object", "tool"):
            raise _fail_input(f"--critic-mode must be json_schema, json_object or tool, not {critic_mode!r}")
        mode = cast(Mode, critic_mode)
        critic = OpenAICritic(critic_model or "gpt-4o-mini", base_url=critic_base_url, mode=mode)
    console = Console(highlight=False)
    if interactive is None:
        interactive = sys.stdin.isatty()
    approver: Approver = ConsoleApprover(console) if interactive else scripted_approver(console)
    run_demo(console, pause=pause, critic=critic, approver=approver)


_EVAL_HELP = (
    "Measure the guard's decisions: on labelled scenarios, or on the AgentDojo benchmark. SOURCE is a scenario "
    "file (JSON Lines), or the word agentdojo.\n\n"
    'A scenario file holds one JSON object a line: {"id", "action": {"tool", "args"}, "request", "history": '
    '[{"tool", "args", "output"}], "context", "now", "expected": "allow|deny|revise|escalate"}, and optionally '
    '"expected_findings" (finding ids), "expected_args" (the args that run), "used" (budget use before the '
    'call), "tags" and "why". Each scenario is decided by a fresh guard (its own in-memory store) unless '
    "--sequence. Prints the confusion matrix, precision and recall of stopped (deny + escalate), the "
    "over-refusal rate on calls expected to run, how often each finding fired (and on how many wrongly decided "
    "scenarios), and decide latency percentiles.\n\n"
    "agentdojo (needs pip install 'fsa-guard\\[agentdojo]') replays every (user task, injection task) pair of "
    "a suite: the user task's ground-truth calls, then the injection task's, through the guard; only allowed "
    "calls run; AgentDojo's own checkers score utility and attack success, compared with letting every call "
    "run.\n\n"
    "Exit codes: 0 ok, 1 with --strict when a scenario is not decided as labelled, 2 invalid or unreadable input."
)


@app.command("eval", help=_EVAL_HELP)
def eval_command(
    source: Annotated[str, typer.Argument(help="A scenario file (.jsonl), or: agentdojo.", show_default=False)],
    spec: Annotated[
        list[Path] | None,
        typer.Option(
            "--spec",
            "-s",
            help="Spec file; repeat to layer (later over earlier). Required for a scenario file; for agentdojo "
            "the default is policies/agentdojo/<suite>.yaml.",
            show_default=False,
        ),
    ] = None,
    suite: Annotated[
        list[str] | None,
        typer.Option("--suite", help="agentdojo: banking, slack, travel, or all (repeatable; default all)."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="agentdojo: only the first N user tasks of each suite (quick runs).")
    ] = None,
    sequence: Annotated[
        bool, typer.Option("--sequence", help="Decide scenarios in order against one guard (budgets accumulate).")
    ] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 when a scenario's outcome, findings or args differ from its label.")
    ] = False,
    show: Annotated[int, typer.Option(min=0, help="How many mismatches or failing cases to list.")] = 20,
    write_scenarios: Annotated[
        Path | None,
        typer.Option(
            help="agentdojo: also write a labelled sample of each suite's calls to DIR/<suite>.jsonl, a scenario "
            "file that evaluates a spec without AgentDojo.",
            metavar="DIR",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    if source == "agentdojo":
        _eval_agentdojo(spec or [], suite or ["all"], limit, show, as_json, write_scenarios)
        return
    if suite or limit is not None or write_scenarios is not None:
        raise _fail_input("--suite, --limit and --write-scenarios apply to agentdojo only")
    if not spec:
        raise _fail_input("a scenario file needs --spec SPEC (repeat to layer several files)")
    _eval_scenarios(Path(source), spec, sequence, strict, show, as_json)


def _progress(total: int, as_json: bool) -> Any:
    """A progress bar on stderr for long runs, or None when printing JSON or not in a terminal."""
    if as_json or total < 50 or not err.is_terminal:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )


def _replay_with_progress(ad: Any, name: str, spec: Any, limit: int | None, as_json: bool) -> Any:
    progress = _progress(1_000, as_json)
    if progress is None:
        return ad.replay_suite(name, spec, limit=limit)
    with progress:
        task = progress.add_task(name, total=None)

        def start(total: int) -> None:
            progress.update(task, total=total)

        def step(_: Any) -> None:
            progress.advance(task)

        return ad.replay_suite(name, spec, limit=limit, on_start=start, on_episode=step)


def _shown_path(path: Path) -> str:
    """``path`` relative to the working directory when it is below it (shorter to read and to paste)."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _eval_scenarios(path: Path, specs: list[Path], sequence: bool, strict: bool, show: int, as_json: bool) -> None:
    from .evaluate import ScenarioError, compute_metrics, load_scenarios, run_scenarios
    from .evaluate.report import render_scenarios

    guard = _load_guard(specs)
    try:
        scenarios = load_scenarios(path)
        progress = _progress(len(scenarios), as_json)
        if progress is None:
            results = run_scenarios(guard.spec, scenarios, sequence=sequence)
        else:
            with progress:
                task = progress.add_task("scenarios", total=len(scenarios))
                results = run_scenarios(
                    guard.spec, scenarios, sequence=sequence, on_step=lambda _: progress.advance(task)
                )
    except ScenarioError as exc:
        raise _fail_input(esc(str(exc))) from None
    metrics = compute_metrics([r.observation for r in results])
    if as_json:
        payload = {
            "scenarios": str(path),
            "specs": [str(s) for s in specs],
            "spec_digest": guard.spec.digest,
            "sequence": sequence,
            "metrics": metrics.to_dict(),
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    else:
        render_scenarios(out, metrics, f"{path} against {', '.join(str(s) for s in specs)}", show=show)
    raise typer.Exit(EXIT_DENY if strict and metrics.mismatches else EXIT_OK)


def _eval_agentdojo(
    specs: list[Path], suites: list[str], limit: int | None, show: int, as_json: bool, write_to: Path | None
) -> None:
    from importlib.metadata import PackageNotFoundError, version

    from .evaluate import agentdojo as ad
    from .evaluate.report import render_agentdojo

    names = list(ad.SUITES) if "all" in suites else list(dict.fromkeys(suites))
    unknown = [n for n in names if n not in ad.SUITES and not (specs and n in ad.SIDE_EFFECTS)]
    if unknown:
        raise _fail_input(
            f"--suite {unknown[0]!r}: choose from {', '.join(ad.SUITES)} or all "
            "(or workspace, with a spec of your own: --spec)"
        )
    if specs and len(names) > 1:
        raise _fail_input("--spec applies to one suite; give one --suite with it")
    try:
        ad_version = version("agentdojo")
    except PackageNotFoundError:
        raise _fail_input(esc(str(ad.AgentDojoMissing()))) from None
    results = []
    for name in names:
        try:
            files = specs or [ad.default_spec(name)]
        except FileNotFoundError as exc:
            raise _fail_input(esc(str(exc))) from None
        compiled = _load_guard(files).spec
        try:
            result = _replay_with_progress(ad, name, compiled, limit, as_json)
        except (ad.AgentDojoMissing, KeyError) as exc:
            raise _fail_input(esc(str(exc).strip('"'))) from None
        result.specs = tuple(_shown_path(Path(f)) for f in files)
        results.append(result)
        if write_to is not None:
            target = write_to / f"{name}.jsonl"
            try:
                write_to.mkdir(parents=True, exist_ok=True)
                lines = ad.sample_scenarios(result)
                target.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")
            except OSError as exc:
                raise _fail_input(esc(f"cannot write {target}: {exc}")) from None
            err.print(f"wrote {len(lines)} scenarios to {esc(str(target))}", markup=True)
    if as_json:
        payload = {
            "agentdojo_version": ad_version,
            "benchmark_version": ad.BENCHMARK_VERSION,
            "attack": ad.ATTACK,
            "limit": limit,
            "suites": [r.to_dict() for r in results],
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    render_agentdojo(out, [r.summary() for r in results], [list(ad.iter_failures(r)) for r in results], show)
    out.print(f"[dim]agentdojo {esc(ad_version)}[/dim]", markup=True)


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
    try:
        sink = open_audit(url)
    except AuditError as exc:
        raise _fail_input(str(exc)) from None
    if not isinstance(sink, AuditReader):
        raise _fail_input(f"{url!r} cannot be read back")
    return sink


def _streams(sink: AuditReader, url: str) -> list[str]:
    chosen = query(url).get("stream")
    return [chosen] if chosen else sink.streams()


def _records(sink: AuditReader, url: str) -> list[Any]:
    try:
        return [r for stream in _streams(sink, url) for r in sink.read(stream)]
    except AuditError as exc:
        raise _fail_input(str(exc)) from None


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
        where = f"{r.get('stream')}:{r.get('seq')}"
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
        tool = (r.get("proposed") or {}).get("tool", "?")
        ids = ", ".join(f.get("id", "?") for f in r.get("findings", []) if isinstance(f, dict))
        out.print(
            f"[dim]{where} {esc(str(r.get('time')))}[/dim]  [bold {color}]{outcome.upper()}[/] {esc(str(tool))}"
            + (f"  [dim]{esc(ids)}[/dim]" if ids else ""),
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
    if since is not None:
        try:
            since = datetime.fromisoformat(since).astimezone(UTC).isoformat() if "T" in since or "-" in since else since
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
    seen = len(records)
    try:
        while follow:
            time.sleep(interval)
            records = _records(sink, url)
            _print_records(records[seen:], as_json)
            seen = len(records)
    except KeyboardInterrupt:
        pass


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
        return ApprovalQueue(url)
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
            sink = open_audit(audit)
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
            new = json.loads(args)
        except ValueError as exc:
            raise _fail_input(f"--args is not JSON: {exc}") from None
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
                new[name] = json.loads(value)
            except ValueError:
                new[name] = value
    _answer(store, audit, approval_id, Answer("edit", args=new, by=_by(by), note=note), as_json)


def main() -> None:
    """Console entry point."""
    app()
