"""Decide labelled scenarios with a guard and observe what it answered and how long it took.

By default every scenario is decided by a fresh guard (its own in-memory store), so budgets and
remembered entities do not leak from one line into the next; ``sequence=True`` decides them in order
against one guard, as ``fsa-guard check`` does a list of actions (each allowed call is reported as run).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..critique.base import Critic
from ..decision import Decision
from ..guard import Guard
from ..spec.compiled import CompiledSpec
from ..store.memory import MemoryStore
from .metrics import Observation
from .scenarios import Scenario, spend_before

__all__ = ["ScenarioResult", "evaluation_guard", "run_scenarios"]


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    """A scenario, the guard's decision on it, and the observation the metrics are computed from."""

    scenario: Scenario
    decision: Decision
    observation: Observation


def run_scenarios(
    spec: CompiledSpec,
    scenarios: Sequence[Scenario],
    *,
    sequence: bool = False,
    critic: Critic | None = None,
    on_step: Callable[[ScenarioResult], None] | None = None,
    warm_up: bool | None = None,
) -> list[ScenarioResult]:
    """Decide each scenario against ``spec``; ``on_step`` is called after each (a progress bar).

    With ``warm_up`` every scenario is first decided once on a throwaway guard, so the latencies measure
    decisions, not the first use of a tool's compiled program or of the CEL runtime's caches. By default it
    warms up unless a critic is given or the spec configures one (it would be asked twice).
    """
    if warm_up is None:
        warm_up = critic is None and not (spec.critic.model or spec.critic.base_url)
    if warm_up:
        scratch = evaluation_guard(spec, critic)
        for s in scenarios:
            scratch.decide(s.action)
    shared = evaluation_guard(spec, critic) if sequence else None
    results = []
    for s in scenarios:
        guard = shared or evaluation_guard(spec, critic)
        spend_before(guard.store, spec, s)
        t0 = time.perf_counter_ns()
        decision = guard.decide(s.action)
        elapsed_us = (time.perf_counter_ns() - t0) / 1000.0
        if shared is not None:
            shared.report(decision, ok=True)  # as if each allowed call ran, so later lines see its budgets
        args_ok = s.expected_args is None or _same(dict(decision.action.args), dict(s.expected_args))
        observation = Observation(
            id=s.id,
            expected=s.expected,
            actual=decision.outcome,
            findings=tuple(decision.finding_ids()),
            latency_us=elapsed_us,
            expected_findings=s.expected_findings,
            args_ok=args_ok,
            where=s.where,
        )
        result = ScenarioResult(s, decision, observation)
        results.append(result)
        if on_step is not None:
            on_step(result)
    return results


def _same(a: Any, b: Any) -> bool:
    """JSON equality: as ``==``, except that a boolean equals only a boolean (Python has ``True == 1``, and an
    ``expected_args`` of ``{"notify": true}`` must not pass a call that runs with ``notify: 1``)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def evaluation_guard(spec: CompiledSpec, critic: Critic | None = None) -> Guard:
    """A guard for measuring: its own in-memory store, and no audit trail, whatever the environment
    (``FSA_GUARD_AUDIT``) or the spec's ``storage:`` says, so an evaluation writes nothing anywhere."""
    return Guard(spec, store=MemoryStore(), audit=False, critic=critic)
