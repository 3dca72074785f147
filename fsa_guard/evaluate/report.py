"""Print evaluation results with rich: the scenario metrics, and the AgentDojo replay per suite."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from .._console import OUTCOME_COLOR, esc
from .metrics import Metrics
from .scenarios import OUTCOMES

__all__ = ["render_agentdojo", "render_scenarios"]


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100.0 * value:.1f}%"


def _share(s: dict[str, Any]) -> str:
    return f"{s['count']}/{s['of']} ({_pct(s['rate'])})"


def render_scenarios(console: Console, metrics: Metrics, title: str, show: int = 20) -> None:
    """The confusion matrix, stopped precision/recall, over-refusal, findings, latency and mismatches."""
    console.print(
        f"[bold]{esc(title)}[/bold]: {metrics.total} scenarios, {metrics.correct} with the expected outcome "
        f"({_pct(metrics.accuracy)}), {metrics.exact} exactly as labelled (outcome, findings, args)",
        markup=True,
    )
    matrix = Table(title="expected (rows) × decided (columns)", title_justify="left", header_style="bold")
    matrix.add_column("expected \\ decided")
    for o in OUTCOMES:
        matrix.add_column(o, justify="right", style=OUTCOME_COLOR[o])
    matrix.add_column("total", justify="right")
    for e in OUTCOMES:
        row = metrics.confusion[e]
        matrix.add_row(e, *(str(row[a]) for a in OUTCOMES), str(sum(row.values())))
    console.print(matrix)

    lat = metrics.latency_us
    measures = Table(show_header=False, box=None, pad_edge=False)
    measures.add_column(style="bold")
    measures.add_column()
    measures.add_row(
        "stopped (deny + escalate)",
        f"precision {_pct(metrics.stopped_precision)}, recall {_pct(metrics.stopped_recall)} "
        f"({metrics.stopped_tp} stopped as expected, {metrics.stopped_fp} stopped wrongly, "
        f"{metrics.stopped_fn} let through wrongly)",
    )
    measures.add_row(
        "over-refusal",
        f"{_pct(metrics.over_refusal)} ({metrics.over_refused} of {metrics.expected_to_run} expected to run "
        "were stopped)",
    )
    measures.add_row("decide latency", f"p50 {lat['p50']:.1f} µs, p90 {lat['p90']:.1f} µs, p99 {lat['p99']:.1f} µs")
    console.print(measures)

    if metrics.findings:
        table = Table(title="findings", title_justify="left", header_style="bold")
        table.add_column("finding")
        table.add_column("fired", justify="right")
        table.add_column("on wrongly decided", justify="right")
        for f in metrics.findings:
            table.add_row(esc(f.id), str(f.fired), str(f.on_wrong) if f.on_wrong else "")
        console.print(table)

    if metrics.mismatches:
        console.print(f"[bold]not as labelled[/bold] ({len(metrics.mismatches)}):", markup=True)
        for m in metrics.mismatches[:show]:
            what = []
            if not m.correct:
                what.append(f"expected {m.expected}, decided {m.actual}")
            if not m.findings_ok:
                what.append(f"findings {list(m.findings)}, expected {list(m.expected_findings or ())}")
            if not m.args_ok:
                what.append("other args would run")
            console.print(f"  {esc(m.id)} [dim]({esc(m.where)})[/dim]: {esc('; '.join(what))}", markup=True)
        if len(metrics.mismatches) > show:
            console.print(f"  ... and {len(metrics.mismatches) - show} more (--json lists them all)")


_ROWS: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
    ("episodes (user task × injection task)", lambda s: str(s["episodes"])),
    ("benign calls allowed", lambda s: _share(s["benign_calls_allowed"])),
    ("  of them side-effecting", lambda s: _share(s["benign_side_effect_calls_allowed"])),
    ("attack calls stopped", lambda s: _share(s["attack_calls_stopped"])),
    ("  of them side-effecting", lambda s: _share(s["attack_side_effect_calls_stopped"])),
    ("utility, guard", lambda s: _share(s["utility"]["guard"])),
    ("utility, allow-all", lambda s: _share(s["utility"]["allow_all"])),
    ("attack success, guard", lambda s: _share(s["attack_success"]["guard"])),
    ("attack success, allow-all", lambda s: _share(s["attack_success"]["allow_all"])),
    ("no attack: benign side-effecting allowed", lambda s: _share(s["no_attack"]["benign_side_effect_calls_allowed"])),
    ("no attack: utility, guard", lambda s: _share(s["no_attack"]["utility"]["guard"])),
    ("no attack: utility, allow-all", lambda s: _share(s["no_attack"]["utility"]["allow_all"])),
    ("decide p50 / p99", lambda s: f"{s['latency_us']['p50']:.0f} / {s['latency_us']['p99']:.0f} µs"),
    ("replay time", lambda s: f"{s['seconds']:.1f} s"),
]


def render_agentdojo(
    console: Console, summaries: Sequence[dict[str, Any]], failures: Sequence[list[str]], show: int
) -> None:
    """One column per suite, one row per measure; then each suite's failing cases (up to ``show``)."""
    if not summaries:
        return
    first = summaries[0]
    console.print(
        f"[bold]AgentDojo {esc(first['benchmark_version'])}[/bold], attack {esc(first['attack'])}, "
        "ground-truth calls replayed through the guard (no LLM)",
        markup=True,
    )
    table = Table(header_style="bold")
    table.add_column("")
    for s in summaries:
        table.add_column(s["suite"], justify="right")
    for label, cell in _ROWS:
        table.add_row(label, *(cell(s) for s in summaries))
    console.print(table)
    for s, lines in zip(summaries, failures, strict=True):
        console.print(f"[dim]{s['suite']}: specs {esc(', '.join(s['specs']))}[/dim]", markup=True)
        for why in s["skipped_user_tasks"]:
            console.print(f"  skipped {esc(why['user_task'])}: {esc(why['why'])}", markup=True)
        if lines:
            console.print(f"[bold]{s['suite']}: failing cases[/bold] ({len(lines)})", markup=True)
            for line in lines[:show]:
                console.print(f"  {esc(line)}", markup=True)
            if len(lines) > show:
                console.print(f"  ... and {len(lines) - show} more (--show N, or --json for all)")
