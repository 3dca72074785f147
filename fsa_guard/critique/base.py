"""The critique seam: an LLM (or anything else) judges an action against the person's values cards.

The guard asks a :class:`Critic` only where the spec asks for judgment (norms with effect ``critique``,
tools of values marked ``critique: true``). Its verdict is checked before use (:func:`check_verdict`); a
verdict that fails the checks, or a critic that raises, counts as a critic failure and escalates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from ..action import Action
from ..spec.model import Priority, ValueCard

__all__ = ["Critic", "CritiqueRequest", "CritiqueVerdict", "check_verdict"]


@dataclass(frozen=True, slots=True)
class CritiqueRequest:
    """What the critic sees: the action, the relevant values cards, priorities, and why it was asked."""

    action: Action
    values: Sequence[ValueCard]
    priorities: Sequence[Priority] = ()
    asked_by: Sequence[str] = ()  # ids of the norms (or values) that asked for judgment
    spec_digest: str = ""


@dataclass(frozen=True, slots=True)
class CritiqueVerdict:
    """The critic's judgment. ``values`` are the ids of the cards it cites."""

    verdict: Literal["allow", "revise", "escalate", "deny"]
    rationale: str
    values: Sequence[str] = ()
    revised_args: Mapping[str, Any] | None = None
    question: str | None = None
    tokens: Mapping[str, int] = field(default_factory=dict)


@runtime_checkable
class Critic(Protocol):
    """Judges an action against values cards. Raise CriticError on failure."""

    def critique(self, request: CritiqueRequest) -> CritiqueVerdict:
        """Judge synchronously."""
        ...

    async def acritique(self, request: CritiqueRequest) -> CritiqueVerdict:
        """Judge asynchronously."""
        ...


def check_verdict(request: CritiqueRequest, verdict: CritiqueVerdict) -> str | None:
    """Why ``verdict`` cannot be trusted, or None when it passes the mechanical checks."""
    if not isinstance(verdict, CritiqueVerdict):
        return f"the critic returned {type(verdict).__name__}, not a CritiqueVerdict"
    if not isinstance(verdict.values, Sequence) or not all(isinstance(v, str) for v in verdict.values):
        return "cited values must be a list of value ids"
    if verdict.revised_args is not None and not isinstance(verdict.revised_args, Mapping):
        return "revised args must be a mapping"
    if not isinstance(verdict.tokens, Mapping) or not all(isinstance(n, int) for n in verdict.tokens.values()):
        return "token counts must be a mapping of integers"
    if verdict.verdict not in ("allow", "revise", "escalate", "deny"):
        return f"unknown verdict {verdict.verdict!r}"
    relevant = {v.id for v in request.values}
    unknown = [v for v in verdict.values if v not in relevant]
    if unknown:
        return f"cites value ids that are not among the relevant values: {', '.join(unknown)}"
    if verdict.verdict == "revise" and not verdict.revised_args:
        return "verdict 'revise' without revised arguments"
    return None
