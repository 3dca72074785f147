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

__all__ = ["APPROVAL_STATUSES", "ApprovalRow", "ApprovalStore", "Reservation", "Store"]


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
        """The call ran: the reserved amount stays spent for its window. Committing again, or an unknown id,
        changes nothing and does not raise: a commit that failed is sent again (and a store that raises for it
        keeps every decision that reads the store refused)."""
        ...

    def release(self, reservation_id: str) -> None:
        """The call did not run or failed: give the amount back. A committed amount stays spent: releasing it
        (a second report, a retry) changes nothing, and so does releasing an unknown id."""
        ...

    def usage(self, key: str, window_s: float, now: float) -> float:
        """Committed plus live reserved amount of ``key`` stamped after ``now - window_s``.

        Entries stamped after ``now`` count too: under concurrency a decision's ``now`` may be read before
        another worker's reservation is made, and leaving it out would overspend.
        """
        ...

    def remember(self, key: str, entity: str, now: float) -> None:
        """Note that a call that ran acted on ``entity`` (canonical JSON text) under ``key`` at ``now``. Noting
        it again keeps its first and latest note (a note that failed is sent again)."""
        ...

    def recall(self, key: str, window_s: float | None, now: float) -> list[str]:
        """The distinct entities noted under ``key`` with ``now - window_s < at <= now`` (no lower bound when
        ``window_s`` is None), in the order they were first noted."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...


#: ``pending`` until a person answers (``approve``, ``deny``, ``edit``) or it expires (``expired``).
APPROVAL_STATUSES = ("pending", "approve", "deny", "edit", "expired")


APPROVAL_KEEP_CLAIMED_S = 30 * 86400.0  # approvals used, or expired unused, longer ago than this are pruned


#: Relative slack when a sum of amounts is compared with a limit: 0.1 + 0.2 is 0.30000000000000004 in binary, and
#: a spend that exactly meets its limit must not be refused (nor the answer depend on the order of the sum).
LIMIT_SLACK = 1e-12


def over_limit(used: float, amount: float, limit: float) -> bool:
    """Whether ``amount`` on top of ``used`` goes over ``limit`` (beyond float rounding)."""
    return used + amount > limit + LIMIT_SLACK * max(1.0, abs(limit))


def check_settle_status(status: str) -> None:
    """Raise ValueError unless ``status`` is one an approval can be settled to."""
    if status not in APPROVAL_STATUSES or status == "pending":
        raise ValueError(f"cannot settle an approval to {status!r}: use one of {APPROVAL_STATUSES[1:]}")


@dataclass(frozen=True, slots=True)
class ApprovalRow:
    """One approval as a store keeps it; :class:`~fsa_guard.ApprovalQueue` reads and writes the JSON parts.

    Times are wall-clock seconds (``time.time()``), so every process and machine reads them alike.
    """

    id: str
    created: float
    expires: float
    status: str  # one of APPROVAL_STATUSES
    request: str  # JSON text: the escalated decision and what the guard needs to resume it
    answer: str | None = None  # JSON text of the person's answer, once there is one
    claimed: float | None = None  # when a guard used the settled approval (at most once)
    claimed_by: str | None = None


@runtime_checkable
class ApprovalStore(Protocol):
    """Stores that also keep approvals (memory, SQLite, Redis): pending escalations a person answers later,
    possibly from another process. Every state change is atomic across processes."""

    def approval_add(self, row: ApprovalRow) -> None:
        """Store a new approval (status ``pending``). Raises StoreError when the id is taken."""
        ...

    def approval_get(self, approval_id: str) -> ApprovalRow | None:
        """The approval, or None when there is none with this id."""
        ...

    def approval_settle(
        self, approval_id: str, status: str, answer: str | None, now: float
    ) -> tuple[bool, ApprovalRow | None]:
        """Move a ``pending`` approval to ``status``, atomically: to an answer (approve, deny, edit) only while
        ``now < expires``; to ``expired`` only once ``now >= expires``. Returns (True, the new row), or
        (False, the row as it is, or None when unknown) when it was not pending or the time did not fit."""
        ...

    def approval_claim(self, approval_id: str, now: float, by: str) -> tuple[bool, ApprovalRow | None]:
        """Mark a settled (not pending) approval as used, once: (True, new row) for the first claim, else
        (False, the row as it is, or None when unknown)."""
        ...

    def approval_list(self, status: str | None = None, limit: int = 100) -> list[ApprovalRow]:
        """Approvals, newest first, optionally only those with the stored ``status``."""
        ...
