"""The store seam: where budget and rate-limit state lives.

Reserve, then commit: the guard reserves a budget amount when it allows a call, and the caller reports
whether the tool ran (``commit``) or failed (``release``). Reservations never reported expire after their
``ttl``. Stores also remember entities (payees paid, recipients written to) that spec ``remember`` rules
name, for ``state.remembered`` in expressions.

Backends map their driver errors to :class:`~fsa_guard.StoreError`, which the guard turns into a deny with
finding ``store-unavailable``. :func:`fsa_guard.open_store` picks a backend by URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["Reservation", "Store"]


@dataclass(frozen=True, slots=True)
class Reservation:
    """The answer to a reserve: ``ok`` when the amount fit; ``used`` is what was in use before it."""

    ok: bool
    key: str
    amount: float
    used: float
    limit: float
    id: str | None = None


@runtime_checkable
class Store(Protocol):
    """Budget state shared by every decision of a guard (and, for durable backends, across processes)."""

    def reserve(
        self, key: str, amount: float, limit: float, window_s: float, now: float, ttl_s: float, force: bool = False
    ) -> Reservation:
        """Atomically reserve ``amount`` if ``used + amount <= limit`` over the last ``window_s`` seconds.

        ``force`` records the amount even over the limit (a person approved the overspend).
        """
        ...

    def commit(self, reservation_id: str) -> None:
        """The call ran: the reserved amount stays spent for its window."""
        ...

    def release(self, reservation_id: str) -> None:
        """The call did not run or failed: give the amount back."""
        ...

    def usage(self, key: str, window_s: float, now: float) -> float:
        """Committed plus live reserved amount of ``key`` stamped after ``now - window_s``.

        Entries stamped after ``now`` count too: under concurrency a decision's ``now`` may be read before
        another worker's reservation is made, and leaving it out would overspend.
        """
        ...

    def remember(self, key: str, entity: str, now: float) -> None:
        """Note that a call that ran acted on ``entity`` (canonical JSON text) under ``key`` at ``now``."""
        ...

    def recall(self, key: str, window_s: float | None, now: float) -> list[str]:
        """The distinct entities noted under ``key`` with ``now - window_s < at <= now`` (no lower bound when
        ``window_s`` is None), in the order they were first noted."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...
