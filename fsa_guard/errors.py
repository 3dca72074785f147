"""The one error family of fsa_guard.

    FSAGuardError
     ├── SpecError          a spec could not be loaded; holds every Problem found (file, line, key, hint)
     ├── StoreError         the budget/state store failed (the guard turns this into a deny)
     ├── AuditError         an audit record could not be written (the guard turns this into a deny)
     ├── CriticError        the critic failed or its verdict could not be verified
     ├── ApprovalError      an approver failed
     ├── ScenarioError      a file of labelled scenarios could not be read (file, line, key)
     └── Denied             raised by ``@guard.tool`` when the decision is not allow/revise
          └── EscalationRequired   the decision is ``escalate`` and no approver answered

Driver errors (sqlite3, redis, psycopg, openai) are mapped into this family inside each backend, so callers
handle one family and the guard fails closed on it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .decision import Decision

__all__ = [
    "ApprovalError",
    "AuditError",
    "CriticError",
    "Denied",
    "EscalationRequired",
    "FSAGuardError",
    "Problem",
    "ScenarioError",
    "SpecError",
    "StoreError",
    "did_you_mean",
]


class FSAGuardError(Exception):
    """Root of every error fsa_guard raises on purpose."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem found in a spec: where it is, what is wrong, and how to fix it."""

    file: str
    line: int | None
    key: str
    message: str
    code: str = "invalid"
    severity: str = "error"  # "error" | "warning"
    hint: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        text = f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text

    def to_dict(self) -> dict[str, object]:
        """The problem as a JSON-ready dict."""
        return {
            "file": self.file,
            "line": self.line,
            "key": self.key,
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "hint": self.hint,
        }


class SpecError(FSAGuardError):
    """A spec is invalid. ``problems`` lists every problem found, sorted by file and line."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line or 0, p.key))
        errors = [p for p in self.problems if p.severity == "error"]
        shown = errors or self.problems
        head = f"{len(errors)} problem(s) in the value spec:" if errors else "problems in the value spec:"
        super().__init__("\n".join([head, *(f"  {p}" for p in shown)]))


class StoreError(FSAGuardError):
    """The state store could not be read or written."""


class AuditError(FSAGuardError):
    """An audit record could not be written or read."""


class CriticError(FSAGuardError):
    """The critic failed, timed out, refused, or returned a verdict that could not be read or verified.

    ``kind`` says which: ``unavailable`` (none configured, or not set up), ``timeout`` (the deadline
    passed), ``exhausted`` (transient errors until the retries ran out), ``error`` (any other failure,
    such as HTTP 401), ``invalid`` (output that does not parse as the rubric), ``refused`` (the model
    declined) or ``unverified`` (the verdict failed the mechanical checks). ``tokens`` counts what the
    failed attempts used.
    """

    def __init__(self, message: str, kind: str = "error", tokens: Mapping[str, int] | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.tokens: dict[str, int] = dict(tokens or {})


class ApprovalError(FSAGuardError):
    """An approval cannot be answered or used as asked: unknown id, already answered, expired, already used,
    or an answer that is not one of approve / deny / edit."""


class ScenarioError(FSAGuardError):
    """A scenario file (``fsa-guard eval``) could not be read: ``file``, ``line`` and ``key`` say where."""

    def __init__(self, file: str, line: int | None, key: str, message: str) -> None:
        self.file, self.line, self.key = file, line, key
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")


class Denied(FSAGuardError):
    """Raised by a guarded tool when its call was not allowed. ``decision`` says why."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        super().__init__(decision.explain())


class EscalationRequired(Denied):
    """The call needs a person's approval and no approver was configured or reachable."""


def did_you_mean(word: str, options: Iterable[str]) -> str | None:
    """A 'did you mean ...?' hint for a misspelt name, or None when nothing is close."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None
