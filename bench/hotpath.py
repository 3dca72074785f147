"""A short profile of the hot path: ``decide`` on the reference layered spec, its labelled calls round robin.

    .venv/bin/python -m bench --only profile

pyinstrument samples the calling thread every 100 µs while the guard decides (memory store, no audit
trail; each reservation released after its decision). The report shows the functions with the most
*self* time (flat) and the top of the call tree, both as shares of the profiled time, plus the mean time
per pipeline stage as the decisions themselves record it (``Decision.timings``). Without pyinstrument,
cProfile's table of own time stands in.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import re
import statistics
from typing import Any

from bench._common import ROOT, version
from bench.reference import SPECS, load_actions

_SITE = re.compile(r"\S*/site-packages/")


def _tidy(text: str, lines: int, drop_self: bool = False) -> str:
    """The profile without pyinstrument's banner and absolute paths (and, for the flat view, without its
    "[self]" line, which lumps together the time of frames it does not show)."""
    text = _SITE.sub("", text.replace(str(ROOT) + "/", ""))
    kept = []
    for line in text.splitlines():
        if not line.strip() or line.startswith(("  _ ", " /_/", "/   _/")) or "Recorded:" in line:
            continue
        if line.startswith("Profile at ") or (drop_self and "[self]" in line):
            continue
        kept.append(line.rstrip())
    return "\n".join(kept[:lines])


def run(n: int = 20_000, interval: float = 0.0001) -> dict[str, Any]:
    from fsa_guard import Guard, load_spec

    spec_files, scenario_files = SPECS["alice"]
    guard = Guard(load_spec(*(ROOT / f for f in spec_files)), store="memory://", audit=False)
    actions = load_actions(scenario_files)

    def work(count: int) -> list[dict[str, float]]:
        timings = []
        for i in range(count):
            d = guard.decide(actions[i % len(actions)])
            guard.report(d, ok=False)
            timings.append(dict(d.timings))
        return timings

    work(len(actions) * 10)  # warm: every tool's plan is built
    out: dict[str, Any] = {"decisions": n, "spec": "alice over enterprise-baseline", "actions": len(actions)}
    try:
        from pyinstrument import Profiler
    except ImportError:
        fallback = cProfile.Profile()
        fallback.enable()
        timings = work(n)
        fallback.disable()
        buf = io.StringIO()
        pstats.Stats(fallback, stream=buf).sort_stats("tottime").print_stats(20)
        out.update(tool="cProfile", flat=_tidy(buf.getvalue(), 32), tree=None)
    else:
        profiler = Profiler(interval=interval, async_mode="disabled")
        profiler.start()
        timings = work(n)
        profiler.stop()
        flat = profiler.output_text(unicode=True, color=False, flat=True, time="percent_of_total", show_all=True)
        tree = profiler.output_text(unicode=True, color=False, time="percent_of_total", show_all=False)
        out.update(
            tool=f"pyinstrument {version('pyinstrument')}, a sample every {interval * 1e6:.0f} µs",
            flat=_tidy(flat, 25, drop_self=True),
            tree=_tidy(tree, 45),
        )
    stages: dict[str, list[float]] = {}
    for t in timings:
        for stage, seconds in t.items():
            stages.setdefault(stage, []).append(seconds)
    out["stages_us"] = {
        stage: {"mean": statistics.fmean(v) * 1e6, "share_of_decisions": len(v) / len(timings)}
        for stage, v in stages.items()
    }
    return out
