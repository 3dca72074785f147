"""How good a guard's decisions are over labelled scenarios: pure functions, no guard, no I/O.

- **confusion matrix**: expected outcome × actual outcome, over allow, revise, escalate, deny;
- **stopped** = deny or escalate (the call does not run without a person): its precision (of the calls the
  guard stopped, how many should have been) and recall (of the calls that should have been stopped, how many
  were);
- **over-refusal**: of the calls expected to run (allow or revise), the share the guard stopped;
- **findings**: how often each finding id fired, and on how many wrongly decided items;
- **latency**: percentiles of ``decide`` in microseconds (nearest rank).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..decision import Outcome
from .scenarios import OUTCOMES

__all__ = ["STOPPED", "FindingCount", "Metrics", "Observation", "compute_metrics", "percentile"]

#: The outcomes under which a call does not run on its own.
STOPPED: frozenset[str] = frozenset({"deny", "escalate"})


@dataclass(frozen=True, slots=True)
class Observation:
    """One scenario as decided: what was expected, what the guard answered, and how long it took.

    ``expected_findings`` is ``None`` when the scenario does not say; ``args_ok`` is False when the scenario
    names the args that should run and others would.
    """

    id: str
    expected: Outcome
    actual: Outcome
    findings: tuple[str, ...] = ()
    latency_us: float = 0.0
    expected_findings: tuple[str, ...] | None = None
    args_ok: bool = True
    where: str = ""

    @property
    def correct(self) -> bool:
        """The outcome is the expected one."""
        return self.expected == self.actual

    @property
    def findings_ok(self) -> bool:
        """The finding ids are the expected ones (in any order), or none were given."""
        return self.expected_findings is None or sorted(self.expected_findings) == sorted(self.findings)

    @property
    def exact(self) -> bool:
        """Outcome, finding ids and args are all as expected."""
        return self.correct and self.findings_ok and self.args_ok

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "id": self.id,
            "where": self.where,
            "expected": self.expected,
            "actual": self.actual,
            "findings": list(self.findings),
            "expected_findings": None if self.expected_findings is None else list(self.expected_findings),
            "args_ok": self.args_ok,
            "latency_us": round(self.latency_us, 1),
        }


@dataclass(frozen=True, slots=True)
class FindingCount:
    """How often a finding id fired over the scenarios, and on how many wrongly decided ones."""

    id: str
    fired: int
    on_wrong: int


@dataclass(frozen=True, slots=True)
class Metrics:
    """The measures of one evaluation; ``None`` where a ratio has nothing to divide by."""

    total: int
    correct: int
    exact: int
    confusion: dict[str, dict[str, int]]
    stopped_tp: int
    stopped_fp: int
    stopped_fn: int
    expected_to_run: int
    over_refused: int
    findings: tuple[FindingCount, ...]
    latency_us: dict[str, float]
    mismatches: tuple[Observation, ...] = field(default_factory=tuple)

    @property
    def accuracy(self) -> float | None:
        """Share of scenarios decided with the expected outcome."""
        return _ratio(self.correct, self.total)

    @property
    def stopped_precision(self) -> float | None:
        """Of the calls stopped (deny or escalate), the share that should have been."""
        return _ratio(self.stopped_tp, self.stopped_tp + self.stopped_fp)

    @property
    def stopped_recall(self) -> float | None:
        """Of the calls that should have been stopped, the share that were."""
        return _ratio(self.stopped_tp, self.stopped_tp + self.stopped_fn)

    @property
    def over_refusal(self) -> float | None:
        """Of the calls expected to run (allow or revise), the share that were stopped."""
        return _ratio(self.over_refused, self.expected_to_run)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``fsa-guard eval --json`` prints under ``metrics``)."""
        return {
            "total": self.total,
            "correct": self.correct,
            "exact": self.exact,
            "accuracy": self.accuracy,
            "confusion": self.confusion,
            "stopped": {
                "precision": self.stopped_precision,
                "recall": self.stopped_recall,
                "true_positives": self.stopped_tp,
                "false_positives": self.stopped_fp,
                "false_negatives": self.stopped_fn,
            },
            "over_refusal": {"rate": self.over_refusal, "stopped": self.over_refused, "of": self.expected_to_run},
            "findings": [{"id": f.id, "fired": f.fired, "on_wrong": f.on_wrong} for f in self.findings],
            "latency_us": self.latency_us,
            "mismatches": [m.to_dict() for m in self.mismatches],
        }


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile (0 < p <= 100) of values sorted ascending; 0.0 when empty."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def compute_metrics(observations: Sequence[Observation]) -> Metrics:
    """The measures over ``observations`` (see the module docstring)."""
    confusion: dict[str, dict[str, int]] = {e: dict.fromkeys(OUTCOMES, 0) for e in OUTCOMES}
    tp = fp = fn = 0
    expected_to_run = over_refused = 0
    fired: dict[str, int] = {}
    on_wrong: dict[str, int] = {}
    for o in observations:
        confusion[o.expected][o.actual] += 1
        should_stop, stopped = o.expected in STOPPED, o.actual in STOPPED
        tp += should_stop and stopped
        fp += stopped and not should_stop
        fn += should_stop and not stopped
        if not should_stop:
            expected_to_run += 1
            over_refused += stopped
        for fid in dict.fromkeys(o.findings):  # a finding counts once per scenario
            fired[fid] = fired.get(fid, 0) + 1
            if not o.correct:
                on_wrong[fid] = on_wrong.get(fid, 0) + 1
    latencies = sorted(o.latency_us for o in observations)
    return Metrics(
        total=len(observations),
        correct=sum(o.correct for o in observations),
        exact=sum(o.exact for o in observations),
        confusion=confusion,
        stopped_tp=tp,
        stopped_fp=fp,
        stopped_fn=fn,
        expected_to_run=expected_to_run,
        over_refused=over_refused,
        findings=tuple(
            FindingCount(fid, n, on_wrong.get(fid, 0))
            for fid, n in sorted(fired.items(), key=lambda kv: (-kv[1], kv[0]))
        ),
        latency_us={
            "p50": percentile(latencies, 50),
            "p90": percentile(latencies, 90),
            "p99": percentile(latencies, 99),
            "max": latencies[-1] if latencies else 0.0,
        },
        mismatches=tuple(o for o in observations if not o.exact),
    )
