"""The cost curve as specs grow: norms for other tools (must stay flat) and norms on the decided tool (at most
linear).

    .venv/bin/python -m bench --only scaling [--n 3000]

- ``other tools``: specs of 10 to 10,000 norms spread over 10, 100 or 1,000 tools, plus the decided tool
  ``probe`` with the same 5 norms in every spec. A decision on ``probe`` should not care how many norms
  the other tools have.
- ``same tool``: 1, 10, 100, 300, 1,000 and 3,000 norms on ``probe`` itself (over a constant background of 1,000
  norms on 100 other tools). Every norm stays silent on the decided call, so each is evaluated: the worst
  case. The cost should grow at most linearly: a least-squares line gives the cost per norm and R², and
  the growth exponent between the two largest points says whether the cost per norm climbs.

Each spec is written as YAML and loaded with ``Guard.from_files`` (its load time: parse, layer, validate,
compile); the first decision of the tool (which builds its plan) is timed on its own. The points take
turns every 50 decisions, so machine noise falls on all of them alike.
"""

from __future__ import annotations

import itertools
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench._common import NOW, interleaved

EFFECTS = ("deny", "escalate", "revise", "deny")
VALUE = {
    "id": "care",
    "title": "Care",
    "attends_to": ["MOMENTS when money leaves", "SIGNS of a mistake", "CHANCES to ask first"],
    "tools": ["probe"],
}


def _norm(i: int, tool: str, prefix: str = "n") -> dict[str, Any]:
    effect = EFFECTS[i % len(EFFECTS)]
    norm: dict[str, Any] = {
        "id": f"{prefix}{i}",
        "description": f"norm {i}",
        "tools": [tool],
        "when": f'action.args.amount > {1000 + i}.0 && action.args.recipient != "r{i}"',
        "effect": effect,
        "serves": ["care"],
    }
    if effect == "revise":
        norm["revise"] = {"amount": "1000.0"}
    return norm


def spec(other_norms: int, other_tools: int, probe_norms: int = 5) -> dict[str, Any]:
    """``other_norms`` norms round robin over ``tool_0 .. tool_{other_tools-1}``, and ``probe_norms`` on
    ``probe``; the call ``probe(recipient="r-x", amount=10.0)`` makes every one of them silent."""
    norms = [_norm(i, f"tool_{i % other_tools}") for i in range(other_norms)]
    norms += [_norm(j, "probe", "probe") for j in range(probe_norms)]
    return {
        "fsa_guard": 1,
        "id": f"synthetic-{other_norms}-{other_tools}-{probe_norms}",
        "values": [VALUE],
        "norms": norms,
    }


def _dump(data: dict[str, Any], path: Path) -> None:
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    path.write_text(yaml.dump(data, Dumper=dumper, sort_keys=False))


def linear_fit(xs: list[float], ys: list[float]) -> dict[str, float]:
    """Least squares y = a + b·x; R²."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    a = my - b * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - (a + b * x)) ** 2 for x, y in zip(xs, ys, strict=True))
    return {"intercept_us": a, "per_norm_us": b, "r2": 1 - ss_res / ss_tot if ss_tot else 1.0}


def growth_exponent(line: list[dict[str, Any]]) -> float:
    """How the cost above the smallest point grows between the last two points: (Δ cost ratio) = (k ratio)^α.
    α = 1 is linear; 2 would be quadratic. NaN with fewer than three points."""
    if len(line) < 3:
        return math.nan
    base, a, b = line[0], line[-2], line[-1]
    above_a, above_b = a["p50_us"] - base["p50_us"], b["p50_us"] - base["p50_us"]
    if above_a <= 0 or above_b <= 0:
        return math.nan
    return math.log(above_b / above_a) / math.log((b["norms"] - base["norms"]) / (a["norms"] - base["norms"]))


def run(
    n: int = 3000,
    rounds: int = 5,
    sizes: tuple[int, ...] = (10, 100, 1000, 10000),
    tools: tuple[int, ...] = (10, 100, 1000),
    same: tuple[int, ...] = (1, 10, 100, 300, 1000, 3000),
    background: tuple[int, int] = (1000, 100),
) -> dict[str, Any]:
    from fsa_guard import Action, Guard

    probe = Action("probe", {"recipient": "r-x", "amount": 10.0}, now=NOW)
    guards: dict[str, Any] = {}
    points: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:

        def load(key: str, data: dict[str, Any], meta: dict[str, Any]) -> None:
            path = Path(tmp) / f"{key}.yaml"
            _dump(data, path)
            t0 = time.perf_counter()
            guard = Guard.from_files(path, audit=False)
            load_s = time.perf_counter() - t0
            t0 = time.perf_counter_ns()
            first = guard.decide(probe)
            first_us = (time.perf_counter_ns() - t0) / 1000
            if first.outcome != "allow":
                raise RuntimeError(f"{key}: the probe call should be allowed, got {first.outcome}")
            guards[key] = guard
            points[key] = {**meta, "spec_norms": len(data["norms"]), "load_s": load_s, "first_decision_us": first_us}

        for t in tools:
            for s in sizes:
                load(f"other-{s}-{t}", spec(s, t), {"curve": "other", "norms": s, "tools": t})
        for k in same:
            load(f"same-{k}", spec(*background, probe_norms=k), {"curve": "same", "norms": k, "tools": background[1]})
        per_point = max(1, n // rounds)
        stats = interleaved(
            {key: (lambda i, g=g: g.decide(probe)) for key, g in guards.items()}, per_point, rounds, chunk=50
        )
    for key, st in stats.items():
        points[key].update(st)

    other = [p for p in points.values() if p["curve"] == "other"]
    flat = {}
    for t in tools:
        line = sorted((p for p in other if p["tools"] == t), key=lambda p: p["norms"])
        flat[t] = line[-1]["p50_us"] / line[0]["p50_us"]
    same_line = sorted((p for p in points.values() if p["curve"] == "same"), key=lambda p: p["norms"])
    fit = linear_fit([float(p["norms"]) for p in same_line], [p["p50_us"] for p in same_line])
    marginal = [
        {
            "from": a["norms"],
            "to": b["norms"],
            "per_norm_us": (b["p50_us"] - a["p50_us"]) / (b["norms"] - a["norms"]),
        }
        for a, b in itertools.pairwise(same_line)
    ]
    return {
        "same_exponent": growth_exponent(same_line),
        "points": list(points.values()),
        "flatness": flat,  # p50 at the most norms / p50 at the fewest, per number of tools
        "same_fit": fit,
        "same_marginal": marginal,
        "background": {"norms": background[0], "tools": background[1]},
        "rounds": rounds,
        "per_point": per_point * rounds,
    }
