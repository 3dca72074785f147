"""What every benchmark shares: timing per call, interleaved rounds, the machine and the versions.

Timing: each call is timed on its own with ``perf_counter_ns`` after a warm-up; a case reports the median
(p50) and the 99th percentile (p99) of its samples, in microseconds. Competitors take turns in small chunks
of calls (A, B, C on calls 0-49; B, C, A on calls 50-99; ...), round after round, so a burst of noise on
the machine falls on all of them alike.
"""

from __future__ import annotations

import gc
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/x.py` puts bench/ on the path, not the checkout
    sys.path.insert(0, str(ROOT))

#: The clock every benchmark action is pinned to (a Monday, 11:00 in Berlin: business hours).
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

#: Distributions whose versions the report states.
PACKAGES = (
    "fsa-guard",
    "common-expression-language",
    "cedarpy",
    "invariant-ai",
    "langchain",
    "langchain-core",
    "langgraph",
    "fsa-guard-langchain",
    "redis",
    "pyinstrument",
    "matplotlib",
)


def stats(samples_ns: Sequence[int]) -> dict[str, float]:
    """p50 / p99 / mean of per-call samples (nanoseconds in, microseconds out)."""
    if not samples_ns:
        return {"p50_us": math.nan, "p99_us": math.nan, "mean_us": math.nan, "n": 0}
    ordered = sorted(samples_ns)
    p99 = ordered[min(len(ordered) - 1, max(0, math.ceil(len(ordered) * 0.99) - 1))]
    return {
        "p50_us": statistics.median(ordered) / 1000,
        "p99_us": p99 / 1000,
        "mean_us": statistics.fmean(ordered) / 1000,
        "n": len(ordered),
    }


def measure(fn: Callable[[], object], n: int, warmup: int | None = None) -> dict[str, float]:
    """Time ``n`` calls of ``fn`` one by one, after ``warmup`` untimed calls (default: n/5, at most 500)."""
    for _ in range(min(500, n // 5 + 1) if warmup is None else warmup):
        fn()
    clock = time.perf_counter_ns
    samples = []
    for _ in range(n):
        t0 = clock()
        fn()
        samples.append(clock() - t0)
    return stats(samples)


def interleaved(
    contenders: Mapping[str, Callable[[int], object]],
    items: int,
    rounds: int,
    *,
    chunk: int | None = None,
    warmup: int = 1,
    after: Mapping[str, Callable[[int, object], object]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Time each contender on items ``0..items-1``, ``rounds`` times, the contenders taking turns.

    ``contenders[name](i)`` handles item ``i``; every call is timed on its own. ``after[name](i, result)``,
    when given, runs untimed after each call (to release what a call reserved). Each round goes through the
    items ``chunk`` at a time (default: all at once), every contender doing that chunk before the next one
    starts, in an order that rotates from chunk to chunk; so a burst of noise on the machine lands on all
    contenders, not on one. ``warmup`` untimed passes over all items come first. Each result has the
    ``stats`` of all samples and ``round_p50_us``, the median of each round.
    """
    names = list(contenders)
    after = after or {}
    chunk = max(1, chunk or items)
    for name in names:
        fn, undo = contenders[name], after.get(name)
        for _ in range(warmup):
            for i in range(items):
                r = fn(i)
                if undo is not None:
                    undo(i, r)
    samples: dict[str, list[int]] = {name: [] for name in names}
    gc.collect()
    gc.freeze()  # what the set-up built stays out of later collections: they cost the same for every contender
    try:
        _rounds(names, contenders, after, items, rounds, chunk, samples)
    finally:
        gc.unfreeze()
    out: dict[str, dict[str, Any]] = {}
    for name, s in samples.items():
        per_round = [statistics.median(s[k * items : (k + 1) * items]) / 1000 for k in range(rounds)]
        out[name] = {**stats(s), "round_p50_us": per_round}
    return out


def _rounds(
    names: list[str],
    contenders: Mapping[str, Callable[[int], object]],
    after: Mapping[str, Callable[[int, object], object]],
    items: int,
    rounds: int,
    chunk: int,
    samples: dict[str, list[int]],
) -> None:
    clock = time.perf_counter_ns
    turn = 0
    for _ in range(rounds):
        gc.collect()
        for start in range(0, items, chunk):
            k = turn % len(names)
            turn += 1
            for name in names[k:] + names[:k]:
                fn, undo, out = contenders[name], after.get(name), samples[name]
                for i in range(start, min(start + chunk, items)):
                    t0 = clock()
                    result = fn(i)
                    out.append(clock() - t0)
                    if undo is not None:
                        undo(i, result)


def cpu_model() -> str:
    """The CPU model as /proc/cpuinfo names it (elsewhere: what platform knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    """Where and with what the numbers were taken."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = math.nan
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": f"{platform.system()} {platform.release()}",
        "load_1m_at_start": round(load, 2),
        "versions": {dist: version(dist) for dist in PACKAGES},
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def paired_difference(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Median over rounds of (a's round median - b's round median): robust to the machine drifting."""
    return statistics.median(x - y for x, y in zip(a["round_p50_us"], b["round_p50_us"], strict=True))


def calibration_us() -> list[float]:
    """A fixed pure-Python workload (summing 10,000 ints): the median µs of each of 10 batches of 30 calls,
    sorted. Read at the start and the end of a run, it shows how steady the machine itself was."""
    batches = [measure(lambda: sum(range(10_000)), 30, warmup=3)["p50_us"] for _ in range(10)]
    return sorted(batches)


def cpu_times() -> list[int] | None:
    """The machine's CPU time counters (/proc/stat: user nice system idle iowait irq softirq steal ...)."""
    try:
        with open("/proc/stat") as f:
            return [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None


def busy_and_steal(before: list[int] | None, after: list[int] | None) -> dict[str, float] | None:
    """Between two :func:`cpu_times`: the share of the machine's CPU time that was busy, and the share the
    hypervisor took for other guests (steal), in percent."""
    if not before or not after or len(before) < 8 or len(after) < 8:
        return None
    d = [b - a for a, b in zip(before, after, strict=False)]
    total = sum(d[:8]) or 1
    return {"busy_pct": 100 * (total - d[3] - d[4]) / total, "steal_pct": 100 * d[7] / total}


def ratio(a: float, b: float) -> float:
    """a / b, NaN when either is missing."""
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan
