"""The evaluation measures, computed from observations by hand."""

from __future__ import annotations

from typing import Any

import pytest

from fsa_guard.evaluate import Observation, compute_metrics, percentile


def obs(expected: Any, actual: Any, *findings: str, us: float = 10.0, **more: Any) -> Observation:
    return Observation(f"{expected}->{actual}-{us}", expected, actual, findings, us, **more)


def test_confusion_stopped_precision_recall_and_over_refusal() -> None:
    m = compute_metrics(
        [
            obs("allow", "allow"),
            obs("allow", "escalate", "new-recipient"),  # over-refused
            obs("revise", "revise", "cap-tips"),
            obs("revise", "deny", "unknown-tool"),  # over-refused
            obs("deny", "deny", "payee"),
            obs("deny", "escalate", "payee", "big"),  # stopped, though not as labelled: still a true positive
            obs("escalate", "allow"),  # let through
            obs("escalate", "escalate", "big"),
        ]
    )
    assert m.total == 8 and m.correct == 4 and m.accuracy == 0.5
    assert m.confusion["allow"] == {"allow": 1, "revise": 0, "escalate": 1, "deny": 0}
    assert m.confusion["deny"] == {"allow": 0, "revise": 0, "escalate": 1, "deny": 1}
    assert m.confusion["escalate"]["allow"] == 1
    assert (m.stopped_tp, m.stopped_fp, m.stopped_fn) == (3, 2, 1)
    assert m.stopped_precision == 3 / 5 and m.stopped_recall == 3 / 4
    assert (m.over_refused, m.expected_to_run, m.over_refusal) == (2, 4, 0.5)
    counts = {f.id: (f.fired, f.on_wrong) for f in m.findings}
    assert counts == {
        "payee": (2, 1),
        "big": (2, 1),
        "new-recipient": (1, 1),
        "cap-tips": (1, 0),
        "unknown-tool": (1, 1),
    }
    assert [f.id for f in m.findings][:2] == ["big", "payee"]  # most frequent first, then by id
    assert len(m.mismatches) == 4


def test_exact_needs_findings_and_args_as_labelled_too() -> None:
    m = compute_metrics(
        [
            obs("deny", "deny", "a", expected_findings=("a",)),
            obs("deny", "deny", "a", "b", us=11.0, expected_findings=("a",)),
            obs("revise", "revise", us=12.0, args_ok=False),
        ]
    )
    assert (m.correct, m.exact) == (3, 1)
    assert [o.findings_ok for o in m.mismatches] == [False, True]
    assert m.to_dict()["mismatches"][0]["expected_findings"] == ["a"]


def test_a_finding_counts_once_per_scenario() -> None:
    m = compute_metrics([obs("deny", "deny", "x", "x")])
    assert [(f.id, f.fired) for f in m.findings] == [("x", 1)]


def test_latency_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert [percentile(values, p) for p in (50, 90, 99, 100)] == [50.0, 90.0, 99.0, 100.0]
    assert percentile([7.0], 99) == 7.0 and percentile([], 50) == 0.0
    m = compute_metrics([obs("allow", "allow", us=v) for v in (30.0, 10.0, 20.0)])
    assert m.latency_us == {"p50": 20.0, "p90": 30.0, "p99": 30.0, "max": 30.0}


@pytest.mark.parametrize(
    ("observations", "nones"),
    [
        pytest.param([], {"accuracy", "stopped_precision", "stopped_recall", "over_refusal"}, id="empty"),
        pytest.param([obs("allow", "allow")], {"stopped_precision", "stopped_recall"}, id="nothing-stopped"),
        pytest.param([obs("deny", "deny")], {"over_refusal"}, id="nothing-to-run"),
    ],
)
def test_ratios_with_nothing_to_divide_by_are_none(observations: list[Observation], nones: set[str]) -> None:
    m = compute_metrics(observations)
    for name in ("accuracy", "stopped_precision", "stopped_recall", "over_refusal"):
        assert (getattr(m, name) is None) == (name in nones), name
    assert m.to_dict()["over_refusal"]["rate"] == m.over_refusal
