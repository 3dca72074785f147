"""The escalation seam: a person answers a decision that needs approval.

An :class:`Approver` receives the escalated :class:`~fsa_guard.Decision` and answers approve, deny, or edit
(with new args). An edited action goes through verification again, so a person's edit cannot pass a hard
deny. Without an approver, ``decide`` returns outcome ``escalate`` and the integration asks in its own way.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from ..decision import Answer, Decision

__all__ = ["Answer", "Approver", "CallbackApprover"]


@runtime_checkable
class Approver(Protocol):
    """Asks a person about an escalated decision."""

    def ask(self, decision: Decision) -> Answer:
        """Ask and wait for the answer."""
        ...

    async def aask(self, decision: Decision) -> Answer:
        """Ask asynchronously."""
        ...


class CallbackApprover:
    """An approver backed by any function or coroutine function ``(decision) -> Answer``."""

    def __init__(self, callback: Callable[[Decision], Answer | Awaitable[Answer]]) -> None:
        self._callback = callback

    def ask(self, decision: Decision) -> Answer:
        """Call the callback (a coroutine result is run to completion)."""
        result = self._callback(decision)
        if inspect.isawaitable(result):
            import asyncio

            async def _await() -> Answer:
                return await result

            return asyncio.run(_await())
        return result

    async def aask(self, decision: Decision) -> Answer:
        """Call (and await) the callback."""
        result = self._callback(decision)
        if inspect.isawaitable(result):
            return await result
        return result
