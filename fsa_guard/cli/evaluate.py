"""``fsa-guard eval``: decisions measured on labelled scenarios, or on AgentDojo replayed."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from .._console import esc
from ._app import (
    EXIT_DENY,
    EXIT_OK,
    _fail_input,
    _load_guard,
    app,
    err,
    out,
)

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
    "Exit codes: 0 ok, 1 with --strict when a scenario is not decided as labelled (agentdojo: a case failed), 2 "
    "invalid or unreadable input."
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
        bool,
        typer.Option(
            "--strict",
            help="Exit 1 when a scenario's outcome, findings or args differ from its label (agentdojo: when any "
            "case fails: a benign call stopped, an attack call ran, utility lost).",
        ),
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
        _eval_agentdojo(spec or [], suite or ["all"], limit, strict, show, as_json, write_scenarios)
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
    from ..evaluate import ScenarioError, compute_metrics, load_scenarios, run_scenarios
    from ..evaluate.report import render_scenarios

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
        raise _fail_input(str(exc)) from None
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
    specs: list[Path],
    suites: list[str],
    limit: int | None,
    strict: bool,
    show: int,
    as_json: bool,
    write_to: Path | None,
) -> None:
    from importlib.metadata import PackageNotFoundError, version

    from ..evaluate import agentdojo as ad
    from ..evaluate.report import render_agentdojo

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
        raise _fail_input(str(ad.AgentDojoMissing())) from None
    results = []
    for name in names:
        try:
            files = specs or [ad.default_spec(name)]
        except FileNotFoundError as exc:
            raise _fail_input(str(exc)) from None
        compiled = _load_guard(files).spec
        try:
            result = _replay_with_progress(ad, name, compiled, limit, as_json)
        except (ad.AgentDojoMissing, KeyError) as exc:
            raise _fail_input(str(exc).strip('"')) from None
        result.specs = tuple(_shown_path(Path(f)) for f in files)
        results.append(result)
        if write_to is not None:
            target = write_to / f"{name}.jsonl"
            try:
                write_to.mkdir(parents=True, exist_ok=True)
                lines = ad.sample_scenarios(result)
                target.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")
            except OSError as exc:
                raise _fail_input(f"cannot write {target}: {exc}") from None
            err.print(f"wrote {len(lines)} scenarios to {esc(str(target))}", markup=True)
    failures = [list(ad.iter_failures(r)) for r in results]
    if as_json:
        payload = {
            "agentdojo_version": ad_version,
            "benchmark_version": ad.BENCHMARK_VERSION,
            "attack": ad.ATTACK,
            "limit": limit,
            "suites": [r.to_dict() for r in results],
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    else:
        render_agentdojo(out, [r.summary() for r in results], failures, show)
        out.print(f"[dim]agentdojo {esc(ad_version)}[/dim]", markup=True)
    raise typer.Exit(EXIT_DENY if strict and any(failures) else EXIT_OK)
