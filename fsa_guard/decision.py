"""What the guard answers: a :class:`Decision` with its :class:`Finding` reasons."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from .action import Action, jsonable

__all__ = ["Answer", "Decision", "Finding", "FindingSource", "Outcome"]

Outcome = Literal["allow", "deny", "revise", "escalate"]
FindingSource = Literal["norm", "budget", "schema", "critic", "human", "guard", "store", "audit"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One reason behind a decision.

    ``effect`` is what the finding asks for (``deny``, ``escalate``, ``revise``, ``critique``, ``allow``
    or ``info``); ``values`` are the ids of the values cards it serves; ``error`` is set when the finding
    comes from an expression that failed at run time.
    """

    source: FindingSource
    id: str
    message: str
    effect: str = "info"
    values: tuple[str, ...] = ()
    error: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        """Read back what :meth:`to_dict` wrote."""
        return cls(
            source=data["source"],
            id=data["id"],
            message=data["message"],
            effect=data.get("effect", "info"),
            values=tuple(data.get("values") or ()),
            error=data.get("error"),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "source": self.source,
            "id": self.id,
            "effect": self.effect,
            "message": self.message,
            "values": list(self.values),
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class Answer:
    """A person's answer to an escalation; ``by`` identifies who answered."""

    choice: Literal["approve", "deny", "edit"]
    args: Mapping[str, Any] | None = None  # for edit: the whole args to run instead
    by: str = "unknown"
    note: str = ""
    at: datetime | None = None  # when it was given; the guard stamps it when the approver did not

    def stamped(self) -> Answer:
        """This answer with ``at`` set to now when the approver left it unset."""
        return self if self.at is not None else replace(self, at=datetime.now(UTC))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "choice": self.choice,
            "args": jsonable(self.args) if self.args is not None else None,
            "by": self.by,
            "note": self.note,
            "at": self.at.isoformat() if self.at is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Answer:
        """Read back what :meth:`to_dict` wrote."""
        at = data.get("at")
        return cls(
            choice=data["choice"],
            args=data.get("args"),
            by=str(data.get("by") or "unknown"),
            note=str(data.get("note") or ""),
            at=datetime.fromisoformat(at) if isinstance(at, str) else None,
        )


_VERB = {
    "allow": "Allowed",
    "deny": "Denied",
    "revise": "Allowed after a change",
    "escalate": "Needs your approval",
}


@dataclass(frozen=True, slots=True)
class Decision:
    """The guard's answer for one proposed action.

    ``action`` is what to run (the revised action when ``outcome == "revise"``); ``proposed`` is what the
    agent asked for. ``timings`` holds seconds per pipeline stage, named as in ``guard.STAGES``.
    """

    outcome: Outcome
    action: Action
    proposed: Action
    findings: tuple[Finding, ...] = ()
    spec_id: str = ""
    spec_digest: str = ""
    timings: Mapping[str, float] = field(default_factory=dict)
    tokens: Mapping[str, int] = field(default_factory=dict)  # the critic's token use: prompt, completion, total
    critique_cached: bool = False  # the critique came from the cache (no tokens spent)
    value_titles: Mapping[str, str] = field(default_factory=dict)
    reservations: tuple[str, ...] = ()
    approval_id: str | None = None  # the approval a person answers (or answered), with a queue
    answer: Answer | None = None  # the person's answer, when one decided this
    at: datetime | None = None  # the time the decision was made for (the action's ``now``)
    decided_at: datetime | None = None  # when the guard decided (wall clock, UTC)
    remember: tuple[tuple[str, str], ...] = ()  # what the store notes when the call is reported as run
    record_id: str | None = None  # the audit record's id (``stream:seq``), when an audit sink wrote one

    @property
    def allowed(self) -> bool:
        """True when the action (``self.action``) may run: outcome allow or revise."""
        return self.outcome in ("allow", "revise")

    def finding_ids(self) -> list[str]:
        """The ids of all findings, in order."""
        return [f.id for f in self.findings]

    def explain(self) -> str:
        """A short paragraph saying what was decided and why, citing the person's values by title."""
        tool = self.proposed.tool
        parts = [f"{_VERB[self.outcome]}: {tool}."]
        if self.outcome == "revise":
            changed = _changed_args(self.proposed.args, self.action.args)
            if self.action.tool != tool:
                parts.append(f"The call was changed to {self.action.tool}.")
            if changed:
                sentence = "; ".join(changed)
                parts.append(sentence[0].upper() + sentence[1:] + ".")
        # Lead with the findings that decided the outcome; mention the others after them.
        wanted = {"allow": ("info", "allow"), "revise": ("revise", "info")}.get(self.outcome, (self.outcome,))
        decisive = [f for f in self.findings if f.effect in wanted]
        others = [f for f in self.findings if f.effect not in wanted and f.effect != "info"]
        for f in decisive:
            sentence = f.message.rstrip(".") + "."
            titles = [self.value_titles.get(v, v) for v in f.values]
            if titles:
                sentence += " This protects " + _join_titles(titles) + "."
            parts.append(sentence)
        if others:
            parts.append("Also: " + "; ".join(f.message.rstrip(".") for f in others) + ".")
        if not self.findings:
            parts.append("No rule of the spec objects to this call.")
        return " ".join(parts)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        """Read back what :meth:`to_dict` wrote (the calls without their request, history and context). The copy
        can be reported like the original: it holds the same reservations and what to remember."""
        now = data.get("now")
        answer = data.get("answer")
        findings = tuple(Finding.from_dict(f) for f in data.get("findings") or ())
        return cls(
            outcome=data["outcome"],
            action=Action(data["action"]["tool"], dict(data["action"].get("args") or {})),
            proposed=Action(data["proposed"]["tool"], dict(data["proposed"].get("args") or {})),
            findings=findings,
            spec_id=data.get("spec_id", ""),
            spec_digest=data.get("spec_digest", ""),
            timings=dict(data.get("timings") or {}),
            tokens=dict(data.get("tokens") or {}),
            critique_cached=bool(data.get("critique_cached")),
            value_titles=dict(data.get("value_titles") or {}),
            approval_id=data.get("approval_id"),
            answer=Answer.from_dict(answer) if isinstance(answer, Mapping) else None,
            at=datetime.fromisoformat(now) if isinstance(now, str) else None,
            decided_at=datetime.fromisoformat(decided) if isinstance(decided := data.get("decided_at"), str) else None,
            reservations=tuple(data.get("reservations") or ()),
            remember=tuple((str(k), str(v)) for k, v in data.get("remember") or ()),
            record_id=data.get("record_id"),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``fsa-guard check --json`` prints)."""
        return {
            "outcome": self.outcome,
            "action": self.action.to_dict(),
            "proposed": self.proposed.to_dict(),
            "findings": [f.to_dict() for f in self.findings],
            "explanation": self.explain(),
            "spec_id": self.spec_id,
            "spec_digest": self.spec_digest,
            "timings": dict(self.timings),
            "tokens": dict(self.tokens),
            "critique_cached": self.critique_cached,
            "approval_id": self.approval_id,
            "answer": self.answer.to_dict() if self.answer is not None else None,
            "now": self.at.isoformat() if self.at is not None else None,
            "decided_at": self.decided_at.isoformat() if self.decided_at is not None else None,
            "value_titles": dict(self.value_titles),
            "reservations": list(self.reservations),
            "remember": [list(kv) for kv in self.remember],
            **({"record_id": self.record_id} if self.record_id is not None else {}),
        }


def _changed_args(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    out = []
    for key in sorted(set(before) | set(after)):
        if key not in after:
            out.append(f"removed {key}")
        elif key not in before:
            out.append(f"set {key} to {_shown(after[key])}")
        elif before[key] != after[key]:
            out.append(f"changed {key} from {_shown(before[key])} to {_shown(after[key])}")
    return out


def _shown(value: Any) -> str:
    """A value as the tool call carries it (JSON: "text", null), not as Python prints it."""
    return json.dumps(value, ensure_ascii=False, default=str)


def _join_titles(titles: list[str]) -> str:
    quoted = [f"'{t}'" for t in dict.fromkeys(titles)]
    if len(quoted) == 1:
        return "your value " + quoted[0]
    return "your values " + ", ".join(quoted[:-1]) + " and " + quoted[-1]
