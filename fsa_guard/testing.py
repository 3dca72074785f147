"""Test doubles for testing your own agents with fsa_guard: a scripted critic, a recording audit sink,
a scripted approver, and a capture of every decision a guard makes.

    from fsa_guard.testing import capture_decisions
    with capture_decisions(guard) as decisions:
        run_my_agent()
    assert [d.outcome for d in decisions] == ["allow", "deny"]
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Sequence
from typing import Any

from .audit.memory import MemoryAuditSink
from .critique.base import CritiqueRequest, CritiqueVerdict
from .decision import Decision
from .errors import CriticError
from .escalate.base import Answer
from .guard import Guard

__all__ = ["RecordingAuditSink", "ScriptedApprover", "ScriptedCritic", "capture_decisions"]


class RecordingAuditSink(MemoryAuditSink):
    """An audit sink that keeps records in memory, with helpers for assertions."""

    def outcomes(self) -> list[str]:
        """The outcome of each recorded decision, in order (reported call outcomes are left out)."""
        return [str(r["outcome"]) for r in self.records if r.get("kind", "decision") == "decision"]

    def reports(self) -> list[dict[str, Any]]:
        """The reported outcomes of calls that were allowed (``ok``, ``error``, the decision's record id)."""
        return [r for r in self.records if r.get("kind") == "report"]


class ScriptedCritic:
    """A critic that answers from a script, in order; an exception in the script is raised instead.

    ``requests`` keeps what the critic was asked, so tests can check which values it was shown.
    """

    def __init__(self, verdicts: Sequence[CritiqueVerdict | Exception]) -> None:
        self._script = list(verdicts)
        self.requests: list[CritiqueRequest] = []

    def critique(self, request: CritiqueRequest) -> CritiqueVerdict:
        """Answer with the next scripted verdict."""
        self.requests.append(request)
        if not self._script:
            raise CriticError("ScriptedCritic ran out of verdicts")
        item = self._script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    async def acritique(self, request: CritiqueRequest) -> CritiqueVerdict:
        """Answer with the next scripted verdict."""
        return self.critique(request)


class ScriptedApprover:
    """An approver that answers from a script, in order; ``asked`` keeps the decisions it was shown."""

    def __init__(self, answers: Sequence[Answer]) -> None:
        self._script = list(answers)
        self.asked: list[Decision] = []

    def ask(self, decision: Decision) -> Answer:
        """Answer with the next scripted answer."""
        self.asked.append(decision)
        if not self._script:
            raise RuntimeError("ScriptedApprover ran out of answers")
        return self._script.pop(0)

    async def aask(self, decision: Decision) -> Answer:
        """Answer with the next scripted answer."""
        return self.ask(decision)


@contextlib.contextmanager
def capture_decisions(guard: Guard) -> Iterator[list[Decision]]:
    """Collect every decision ``guard`` returns inside the ``with`` block: from ``decide``, ``answer`` and
    ``resume``, sync and async."""
    captured: list[Decision] = []
    names = ("decide", "adecide", "answer", "aanswer", "resume", "aresume")
    originals = {name: getattr(guard, name) for name in names}

    def capture(name: str) -> Any:
        original = originals[name]
        if inspect.iscoroutinefunction(original):

            async def async_wrapper(*args: Any, **kwargs: Any) -> Decision:
                d: Decision = await original(*args, **kwargs)
                captured.append(d)
                return d

            return async_wrapper

        def wrapper(*args: Any, **kwargs: Any) -> Decision:
            d: Decision = original(*args, **kwargs)
            captured.append(d)
            return d

        return wrapper

    for name in names:
        setattr(guard, name, capture(name))
    try:
        yield captured
    finally:
        for name in names:
            delattr(guard, name)
