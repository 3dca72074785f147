"""In-process store: budgets for one process, for tests and single-process agents (``memory://``)."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass

from .base import Reservation

__all__ = ["MemoryStore"]


@dataclass(slots=True)
class _Entry:
    at: float
    amount: float
    expires: float | None  # None once committed


class MemoryStore:
    """Thread-safe in-memory budget store with rolling windows."""

    def __init__(self) -> None:
        self._entries: dict[str, list[_Entry]] = {}
        self._pending: dict[str, tuple[str, _Entry]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def _live(self, key: str, window_s: float, now: float) -> list[_Entry]:
        entries = self._entries.get(key, [])
        horizon = now - window_s
        live = [e for e in entries if e.at > horizon and (e.expires is None or e.expires > now)]
        if len(live) != len(entries):
            self._entries[key] = live  # old entries can never count again: windows only move forward
        return live

    def reserve(
        self, key: str, amount: float, limit: float, window_s: float, now: float, ttl_s: float, force: bool = False
    ) -> Reservation:
        """See :meth:`fsa_guard.store.base.Store.reserve`."""
        with self._lock:
            used = sum(e.amount for e in self._live(key, window_s, now))
            if used + amount > limit and not force:
                return Reservation(False, key, amount, used, limit)
            entry = _Entry(now, amount, now + ttl_s)
            self._entries.setdefault(key, []).append(entry)
            rid = f"m{next(self._ids)}"
            self._pending[rid] = (key, entry)
            return Reservation(True, key, amount, used, limit, rid)

    def commit(self, reservation_id: str) -> None:
        """See :meth:`fsa_guard.store.base.Store.commit`."""
        with self._lock:
            item = self._pending.pop(reservation_id, None)
            if item is not None:
                item[1].expires = None

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
            return sum(e.amount for e in self._live(key, window_s, now))
