"""The critique seam: an LLM (or anything else) judges an action against the person's values cards.

The guard asks a :class:`Critic` only where the spec asks for judgment (norms with effect ``critique``,
tools of values marked ``critique: true``). Its verdict is checked mechanically before use
(:func:`check_verdict`): the values it cites exist, every attentional policy it was shown is judged, and
the verdict agrees with those judgments. A verdict that fails the checks, or a critic that raises, is a
critic failure, which the spec's ``critic.on_error`` settles.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from ..action import Action
from ..spec.model import Priority, ValueCard

__all__ = [
    "Critic",
    "CritiqueRequest",
    "CritiqueVerdict",
    "PolicyJudgment",
    "check_verdict",
    "policy_ids",
    "priority_ids",
]

Judgment = Literal["honoured", "at_risk", "not_relevant"]
Verdict = Literal["allow", "revise", "escalate", "deny"]


@dataclass(frozen=True, slots=True)
class CritiqueRequest:
    """What the critic sees: the action (with the person's request and recent calls), the relevant values
    cards, the priorities between them, and why it was asked.

    Attentional policies are named ``<value id>#<n>`` (n from 1, in card order) and priorities ``P<n>``
    (see :func:`policy_ids`, :func:`priority_ids`); a verdict refers to them by these ids. ``deadline`` is
    a :func:`time.monotonic` instant by which the critic must answer (None: its own timeout applies).
    """

    action: Action
    values: Sequence[ValueCard]
    priorities: Sequence[Priority] = ()
    asked_by: Sequence[str] = ()  # ids of the norms (or "value:<id>") that asked for judgment
    spec_digest: str = ""
    history_limit: int = 5  # how many of the latest calls the critic is shown
    deadline: float | None = None

    def remaining(self) -> float | None:
        """Seconds left before the deadline (never below zero), or None without one."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())


@dataclass(frozen=True, slots=True)
class PolicyJudgment:
    """How the action stands towards one attentional policy, with the evidence for it."""

    policy: str
    judgment: Judgment
    evidence: str = ""


@dataclass(frozen=True, slots=True)
class CritiqueVerdict:
    """The critic's judgment, following the rubric.

    ``judgments`` covers every attentional policy of the request's values; ``rejectable`` says whether
    those the action affects could reasonably reject it; ``manipulative`` whether it manipulates the person
    or exploits their attention; ``priorities`` are the ids of the person's priorities the critic applied to
    settle a conflict. ``revised_args`` (for ``revise``) replace the named args; ``question`` (for
    ``escalate``) is what to ask the person. ``values`` are the ids of the cards it cites.
    """

    verdict: Verdict
    rationale: str
    values: Sequence[str] = ()
    judgments: Sequence[PolicyJudgment] = ()
    rejectable: bool = False
    manipulative: bool = False
    priorities: Sequence[str] = ()
    revised_args: Mapping[str, Any] | None = None
    question: str | None = None
    tokens: Mapping[str, int] = field(default_factory=dict)

    def concerns(self) -> list[str]:
        """The policies at risk, and whether the action is rejectable or manipulative."""
        out = [j.policy for j in self.judgments if j.judgment == "at_risk"]
        if self.rejectable:
            out.append("could reasonably be rejected by those it affects")
        if self.manipulative:
            out.append("manipulates the person or exploits their attention")
        return out


@runtime_checkable
class Critic(Protocol):
    """Judges an action against values cards. Raises :class:`~fsa_guard.CriticError` on failure."""

    def critique(self, request: CritiqueRequest) -> CritiqueVerdict:
        """Judge synchronously."""
        ...

    async def acritique(self, request: CritiqueRequest) -> CritiqueVerdict:
        """Judge asynchronously."""
        ...


def policy_ids(values: Sequence[ValueCard]) -> dict[str, tuple[ValueCard, str]]:
    """Each attentional policy of ``values`` by its id ``<value id>#<n>``."""
    return {f"{card.id}#{i}": (card, text) for card in values for i, text in enumerate(card.attends_to, 1)}


def priority_ids(priorities: Sequence[Priority]) -> dict[str, Priority]:
    """The request's priorities by their ids ``P1``, ``P2``, ..."""
    return {f"P{i}": p for i, p in enumerate(priorities, 1)}


def check_verdict(request: CritiqueRequest, verdict: CritiqueVerdict) -> str | None:
    """Why ``verdict`` cannot be trusted, or None when it passes the mechanical checks.

    The checks: cited values and priorities exist among those the critic was shown; every attentional
    policy shown is judged exactly once; and the verdict agrees with the judgments — ``allow`` only when no
    policy is at risk (or a cited priority of the person's settles each conflict), nobody could reasonably
    reject the action and it manipulates no one; ``revise`` and ``deny`` only with a concern; ``revise``
    with revised args; ``escalate`` with a question for the person.
    """
    problem = _shape_problem(verdict)
    if problem:
        return problem
    relevant = {v.id for v in request.values}
    unknown = [v for v in verdict.values if v not in relevant]
    if unknown:
        return f"cites value ids that are not among the relevant values: {', '.join(unknown)}"
    policies = policy_ids(request.values)
    priorities = priority_ids(request.priorities)
    stray = [p for p in verdict.priorities if p not in priorities]
    if stray:
        return f"cites priorities it was not shown: {', '.join(stray)}"
    judged: dict[str, str] = {}
    for j in verdict.judgments:
        if j.policy not in policies:
            return f"judges a policy it was not shown: {j.policy!r}"
        if j.policy in judged:
            return f"judges policy {j.policy} twice"
        judged[j.policy] = j.judgment
    missing = [p for p in policies if p not in judged]
    if missing:
        return f"does not judge every relevant attentional policy (missing {', '.join(missing)})"
    return _consistency_problem(verdict, judged, policies, priorities)


def _shape_problem(verdict: Any) -> str | None:
    if not isinstance(verdict, CritiqueVerdict):
        return f"the critic returned {type(verdict).__name__}, not a CritiqueVerdict"
    for name in ("values", "priorities"):
        items = getattr(verdict, name)
        if isinstance(items, str) or not isinstance(items, Sequence) or not all(isinstance(v, str) for v in items):
            return f"cited {name} must be a list of ids"
    if isinstance(verdict.judgments, str) or not isinstance(verdict.judgments, Sequence):
        return "judgments must be a list"
    for j in verdict.judgments:
        if not isinstance(j, PolicyJudgment) or j.judgment not in ("honoured", "at_risk", "not_relevant"):
            return f"a judgment must be honoured, at_risk or not_relevant, got {j!r}"
    if verdict.revised_args is not None and not isinstance(verdict.revised_args, Mapping):
        return "revised args must be a mapping"
    if not isinstance(verdict.tokens, Mapping) or not all(isinstance(n, int) for n in verdict.tokens.values()):
        return "token counts must be a mapping of integers"
    if verdict.verdict not in ("allow", "revise", "escalate", "deny"):
        return f"unknown verdict {verdict.verdict!r}"
    return None


def _consistency_problem(
    verdict: CritiqueVerdict,
    judged: Mapping[str, str],
    policies: Mapping[str, tuple[ValueCard, str]],
    priorities: Mapping[str, Priority],
) -> str | None:
    at_risk = [p for p, j in judged.items() if j == "at_risk"]
    concern = bool(at_risk) or verdict.rejectable or verdict.manipulative
    if verdict.verdict == "allow":
        if verdict.rejectable:
            return "verdict 'allow' although those affected could reasonably reject the action"
        if verdict.manipulative:
            return "verdict 'allow' although the action manipulates the person or exploits their attention"
        honoured = {policies[p][0].id for p, j in judged.items() if j == "honoured"}
        applied = [priorities[p] for p in verdict.priorities]
        for p in at_risk:
            value = policies[p][0].id
            if not any(pr.over == value and pr.prefer in honoured for pr in applied):
                return (
                    f"verdict 'allow' although policy {p} is at risk and no cited priority of the person's "
                    f"prefers a value the action honours over '{value}'"
                )
    elif verdict.verdict in ("revise", "deny") and not concern:
        return f"verdict '{verdict.verdict}' although no policy is at risk and no other concern is named"
    if verdict.verdict == "revise" and not verdict.revised_args:
        return "verdict 'revise' without revised arguments"
    if verdict.verdict == "escalate" and not (verdict.question or "").strip():
        return "verdict 'escalate' without a question for the person"
    return None
