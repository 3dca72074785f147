"""In-process store: budgets for one process, for tests and single-process agents (``memory://``)."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, replace

from ..errors import StoreError
from .base import APPROVAL_KEEP_CLAIMED_S, ApprovalRow, Reservation, check_settle_status, over_limit

__all__ = ["MemoryStore"]


@dataclass(slots=True)
class _Entry:
    at: float
    amount: float
    expires: float | None  # None once committed


class MemoryStore:
    """Thread-safe in-memory budget store with rolling windows.

    The window counts entries with ``at > now - window``, including any stamped after ``now``: under
    concurrency a decision's ``now`` may be read before another worker's reservation is made. A decision's
    ``now`` may be pinned (replays, tests), so entries are only dropped once they are out of every window that the
    wall clock or the decisions can still ask about.
    """

    def __init__(self) -> None:
        self._entries: dict[str, list[_Entry]] = {}
        # the longest window each key was asked about: specs sharing a store may give one budget id different
        # windows, and pruning by a shorter one would drop spending a longer one still counts
        self._longest: dict[str, float] = {}
        self._pending: dict[str, tuple[str, _Entry]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._remembered: dict[str, dict[str, tuple[float, float]]] = {}  # key -> entity -> (first, last)
        self._approvals: dict[str, ApprovalRow] = {}
        self._approval_adds = 0

    def _used(self, key: str, window_s: float, now: float) -> float:
        entries = self._entries.get(key, [])
        horizon = now - window_s
        longest = self._longest[key] = max(window_s, self._longest.get(key, 0.0))
        # a future `now` must not drop today's spending, so prune against the earlier of it and the wall clock
        prune_before = min(now, time.time()) - longest
        kept = [e for e in entries if e.at > prune_before]
        if len(kept) != len(entries):
            self._entries[key] = kept
        return sum(e.amount for e in kept if horizon < e.at and (e.expires is None or e.expires > now))

    def reserve(
        self, key: str, amount: float, limit: float, window_s: float, now: float, ttl_s: float, force: bool = False
    ) -> Reservation:
        """See :meth:`fsa_guard.store.base.Store.reserve`."""
        with self._lock:
            used = self._used(key, window_s, now)
            if over_limit(used, amount, limit) and not force:
                return Reservation(False, key, amount, used, limit)
            entry = _Entry(now, amount, now + ttl_s)
            self._entries.setdefault(key, []).append(entry)
            rid = f"m{next(self._ids)}"
            self._pending[rid] = (key, entry)
            if len(self._pending) > 10_000:
                self._forget_stale(now)
            return Reservation(True, key, amount, used, limit, rid)

    def _forget_stale(self, now: float) -> None:
        # reservations never reported for a day are forgotten, so an agent that never reports cannot grow memory
        for rid in [r for r, (_, e) in self._pending.items() if e.expires is not None and e.expires < now - 86400]:
            del self._pending[rid]

    def commit(self, reservation_id: str) -> None:
        """See :meth:`fsa_guard.store.base.Store.commit`."""
        with self._lock:
            item = self._pending.pop(reservation_id, None)
            if item is None:
                return
            key, entry = item
            entry.expires = None
            entries = self._entries.setdefault(key, [])
            if not any(e is entry for e in entries):
                entries.append(entry)  # it expired before the report came: the call still ran, so it counts

    def release(self, reservation_id: str) -> None:
        """See :meth:`fsa_guard.store.base.Store.release`."""
        with self._lock:
            item = self._pending.pop(reservation_id, None)
            if item is not None:
                key, entry = item
                self._entries[key] = [e for e in self._entries.get(key, []) if e is not entry]

    def usage(self, key: str, window_s: float, now: float) -> float:
        """See :meth:`fsa_guard.store.base.Store.usage`."""
        with self._lock:
            return self._used(key, window_s, now)

    def remember(self, key: str, entity: str, now: float) -> None:
        """See :meth:`fsa_guard.store.base.Store.remember`."""
        with self._lock:
            seen = self._remembered.setdefault(key, {})
            first, last = seen.get(entity, (now, now))
            seen[entity] = (min(first, now), max(last, now))

    def recall(self, key: str, window_s: float | None, now: float) -> list[str]:
        """See :meth:`fsa_guard.store.base.Store.recall`."""
        with self._lock:
            items = list(self._remembered.get(key, {}).items())
        items.sort(key=lambda i: (i[1][0], i[0]))  # first noted, then by entity, as every backend orders them
        return [e for e, (first, last) in items if _noted_within(first, last, window_s, now)]

    def approval_add(self, row: ApprovalRow) -> None:
        """See :meth:`fsa_guard.store.base.ApprovalStore.approval_add`."""
        with self._lock:
            if row.id in self._approvals:
                raise StoreError(f"approval {row.id!r} already exists")
            self._approvals[row.id] = row
            self._approval_adds += 1
            if self._approval_adds % 100 == 0:
                before = time.time() - APPROVAL_KEEP_CLAIMED_S
                stale = [r.id for r in self._approvals.values() if (r.claimed or r.expires) < before]
                for old in stale:  # used a month ago, or expired a month ago and never used
                    del self._approvals[old]

    def approval_get(self, approval_id: str) -> ApprovalRow | None:
        """See :meth:`fsa_guard.store.base.ApprovalStore.approval_get`."""
        with self._lock:
            return self._approvals.get(approval_id)

    def approval_settle(
        self, approval_id: str, status: str, answer: str | None, now: float
    ) -> tuple[bool, ApprovalRow | None]:
        """See :meth:`fsa_guard.store.base.ApprovalStore.approval_settle`."""
        check_settle_status(status)
        with self._lock:
            row = self._approvals.get(approval_id)
            if row is None or row.status != "pending":
                return False, row
            if not (now >= row.expires if status == "expired" else now < row.expires):
                return False, row
            row = self._approvals[approval_id] = replace(row, status=status, answer=answer)
            return True, row

    def approval_claim(self, approval_id: str, now: float, by: str) -> tuple[bool, ApprovalRow | None]:
        """See :meth:`fsa_guard.store.base.ApprovalStore.approval_claim`."""
        with self._lock:
            row = self._approvals.get(approval_id)
            if row is None or row.status == "pending" or row.claimed is not None:
                return False, row
            row = self._approvals[approval_id] = replace(row, claimed=now, claimed_by=by)
            return True, row

    def approval_list(self, status: str | None = None, limit: int = 100) -> list[ApprovalRow]:
        """See :meth:`fsa_guard.store.base.ApprovalStore.approval_list`."""
        with self._lock:
            rows = [r for r in self._approvals.values() if status is None or r.status == status]
        rows.sort(key=lambda r: (r.created, r.id), reverse=True)  # ties by id, as every backend orders them
        return rows[: max(limit, 0)]

    def close(self) -> None:
        """Nothing to release."""


def _noted_within(first: float, last: float, window_s: float | None, now: float) -> bool:
    """Whether the first or the last note of an entity lies in ``(now - window_s, now]``.

    Only those two times are kept (every backend does the same), so memory stays bounded by the number of
    entities; with the wall clock as ``now`` the last note alone decides.
    """
    lo = -float("inf") if window_s is None else now - window_s
    return lo < last <= now or lo < first <= now
