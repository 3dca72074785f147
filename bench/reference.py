"""``decide`` on the reference specs, with each store: memory, SQLite (a file), Redis.

    .venv/bin/python -m bench --only reference [--n 5000]

Specs and their labelled calls (every scenario line of the files, round robin):

- ``alice``: the layered example, ``policies/examples/alice.yaml`` over ``policies/enterprise-baseline.yaml``
  (a person's layer over the enterprise baseline), the labelled calls of both;
- ``personal-assistant``: ``policies/personal-assistant.yaml`` alone, its labelled calls.

Each spec also runs on the memory store with every expression evaluated by the CEL package
(``FSA_GUARD_PYCEL=0``, store ``memory, CEL package only``): what evaluating in Python saves.

Budgets really reserve (a Redis round trip, a SQLite transaction); the reservation is released after each
timed ``decide``, untimed, so every run of a call sees the same budget state and reaches the same
decision. The stores take turns (interleaved rounds). Scenario lines that set budget use beforehand
(``used``) are decided without it: this measures cost, not correctness (``fsa-guard eval`` does that).
"""

from __future__ import annotations

import tempfile
import uuid
from dataclasses import replace
from typing import Any

from bench._common import NOW, ROOT, interleaved

SPECS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "alice": (
        ("policies/examples/alice.yaml",),
        ("policies/scenarios/enterprise-baseline.jsonl", "policies/examples/scenarios/alice.jsonl"),
    ),
    "personal-assistant": (("policies/personal-assistant.yaml",), ("policies/scenarios/personal-assistant.jsonl",)),
}
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
CEL_ONLY = "memory, CEL package only"


def load_actions(files: tuple[str, ...]) -> list[Any]:
    """The actions of the scenario files, each pinned to a clock (its own ``now``, else :data:`NOW`)."""
    from fsa_guard.evaluate import load_scenarios

    return [
        s.action if s.action.now is not None else replace(s.action, now=NOW)
        for f in files
        for s in load_scenarios(ROOT / f)
    ]


def _redis_ok(url: str) -> str | None:
    """None when Redis answers at ``url``, else why not."""
    try:
        import redis
    except ImportError:
        return "the redis package is not installed"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        client.ping()
        client.close()
    except Exception as exc:
        return f"no Redis at {url} ({type(exc).__name__})"
    return None


def _drop_redis_keys(url: str, prefix: str) -> int:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        return len(keys)
    finally:
        client.close()


def _norms_for(guard: Any, tool: str) -> int | None:
    try:  # CompiledSpec.plan is internal: a count when it is there, nothing when it moved
        return len(guard.spec.plan(tool).norms)
    except Exception:
        return None


def run(n: int = 5000, rounds: int = 5, redis_url: str = DEFAULT_REDIS, by_tool: bool = True) -> dict[str, Any]:
    """p50/p99 of ``decide`` per spec and store; per tool for ``alice`` on the memory store."""
    from fsa_guard import Guard, load_spec
    from fsa_guard.store.memory import MemoryStore

    redis_problem = _redis_ok(redis_url)
    rows: list[dict[str, Any]] = []
    per_tool: dict[str, Any] = {}
    cleaned = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, (spec_files, scenario_files) in SPECS.items():
            spec = load_spec(*(ROOT / f for f in spec_files))
            actions = load_actions(scenario_files)
            prefix = f"bench-{uuid.uuid4().hex[:12]}"
            stores: dict[str, Any] = {"memory": MemoryStore(), "sqlite": f"sqlite:///{tmp}/{name}-state.db"}
            if redis_problem is None:
                stores["redis"] = f"{redis_url}?prefix={prefix}"
            guards = {}
            for store_name, store in stores.items():
                # the cost of deciding; writing the audit trail is a stage of its own
                guards[store_name] = Guard(spec, store=store, audit=False)
            # the same, every expression evaluated by the CEL package (FSA_GUARD_PYCEL=0): what Python saves
            guards[CEL_ONLY] = Guard(spec, store=MemoryStore(), audit=False)
            decide = {s: (_cel_only(g) if s == CEL_ONLY else g.decide) for s, g in guards.items()}
            try:
                outcomes = {s: [_decide_released(decide[s], g, a) for a in actions] for s, g in guards.items()}
                same = len({tuple(o) for o in outcomes.values()}) == 1
                items = len(actions) * max(1, n // (len(actions) * rounds))
                stats = interleaved(
                    {s: (lambda i, d=decide[s], acts=actions: d(acts[i % len(acts)])) for s in guards},
                    items,
                    rounds,
                    chunk=len(actions),
                    after={s: (lambda i, d, g=g: g.report(d, ok=False)) for s, g in guards.items()},
                )
                for store_name, st in stats.items():
                    rows.append(
                        {
                            "spec": name,
                            "files": list(spec_files),
                            "store": store_name,
                            "actions": len(actions),
                            "norms": len(spec.norms),
                            "budgets": len(spec.budgets),
                            "same_outcomes_across_stores": same,
                            **st,
                        }
                    )
                if by_tool and name == "alice":
                    per_tool = _by_tool(guards["memory"], actions, max(200, n // 10), rounds)
            finally:
                for g in guards.values():
                    g.store.close()
                if redis_problem is None:
                    cleaned += _drop_redis_keys(redis_url, prefix)
    return {
        "hot": _hot(n),
        "rows": rows,
        "alice_by_tool": per_tool,
        "rounds": rounds,
        "redis": redis_problem or f"{redis_url}, keys under a random bench-* prefix ({cleaned} deleted after)",
        "redis_skipped": redis_problem is not None,
    }


def _hot(n: int) -> dict[str, Any]:
    """``bench/decide.py``'s measure, which the target is stated in: one guard on ``alice`` in a hot loop
    (budgets never fill), evaluating in Python and then on the CEL package only."""
    from bench.decide import reference_case
    from fsa_guard.verify import engine

    out: dict[str, Any] = {}
    for name, python in (("python", True), ("cel_only", False)):
        engine.PYTHON_EVAL = python
        try:
            case = reference_case(n) or {}
        finally:
            engine.PYTHON_EVAL = True
        out[name] = {k: v for k, v in case.items() if k != "by_tool"}
    return out


def _decide_released(decide: Any, guard: Any, action: Any) -> str:
    d = decide(action)
    guard.report(d, ok=False)
    return str(d.outcome)


def _cel_only(guard: Any) -> Any:
    """``guard.decide`` with every expression evaluated by the CEL package, as ``FSA_GUARD_PYCEL=0`` does."""
    from fsa_guard.verify import engine

    def decide(action: Any) -> Any:
        engine.PYTHON_EVAL = False
        try:
            return guard.decide(action)
        finally:
            engine.PYTHON_EVAL = True

    return decide


def _by_tool(guard: Any, actions: list[Any], per: int, rounds: int) -> dict[str, Any]:
    """p50/p99 per tool of the labelled calls (each tool's calls round robin), tools taking turns."""
    tools: dict[str, list[Any]] = {}
    for a in actions:
        tools.setdefault(a.tool, []).append(a)
    stats = interleaved(
        {t: (lambda i, acts=acts: guard.decide(acts[i % len(acts)])) for t, acts in sorted(tools.items())},
        max(1, per // rounds),
        rounds,
        chunk=20,
        after={t: (lambda i, d: guard.report(d, ok=False)) for t in tools},
    )
    return {t: {**stats[t], "actions": len(tools[t]), "norms": _norms_for(guard, t)} for t in sorted(tools)}
