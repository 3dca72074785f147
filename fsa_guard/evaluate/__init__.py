"""Measure a guard's decisions: labelled scenarios (``fsa-guard eval FILE``) and the AgentDojo benchmark
replayed through the guard (``fsa-guard eval agentdojo``, with the ``fsa-guard[agentdojo]`` extra).

    from fsa_guard import load_spec
    from fsa_guard.evaluate import compute_metrics, load_scenarios, run_scenarios
    results = run_scenarios(load_spec("policies/personal-assistant.yaml"),
                            load_scenarios("policies/scenarios/personal-assistant.jsonl"))
    metrics = compute_metrics([r.observation for r in results])
    metrics.confusion, metrics.stopped_recall, metrics.over_refusal

The AgentDojo replay lives in :mod:`fsa_guard.evaluate.agentdojo`; importing it does not import AgentDojo.
"""

from ..errors import ScenarioError
from .metrics import STOPPED, FindingCount, Metrics, Observation, compute_metrics, percentile
from .runner import ScenarioResult, run_scenarios
from .scenarios import OUTCOMES, Scenario, load_scenarios, parse_scenario, parse_scenarios

__all__ = [
    "OUTCOMES",
    "STOPPED",
    "FindingCount",
    "Metrics",
    "Observation",
    "Scenario",
    "ScenarioError",
    "ScenarioResult",
    "compute_metrics",
    "load_scenarios",
    "parse_scenario",
    "parse_scenarios",
    "percentile",
    "run_scenarios",
]
