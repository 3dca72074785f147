"""SQLite store (``sqlite:///path/to/state.db``): one file shared by every process on one machine.

The file is in WAL mode, so readers never wait for the writer; each reserve runs in a ``BEGIN IMMEDIATE``
transaction, which takes the file's write lock before reading, so two processes can never both see room for
the same last units. Each thread gets its own connection.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from .._sqlite import SQLiteFile
from ..errors import StoreError
from .base import Reservation

__all__ = ["SQLiteStore"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spend (
    id TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    at REAL NOT NULL,
    amount REAL NOT NULL,
    expires REAL            -- NULL once committed
);
CREATE INDEX IF NOT EXISTS spend_key_at ON spend (key, at);
CREATE TABLE IF NOT EXISTS remembered (
    key TEXT NOT NULL,
    entity TEXT NOT NULL,
    first REAL NOT NULL,
    last REAL NOT NULL,
    PRIMARY KEY (key, entity)
);
"""

_USED = "SELECT COALESCE(SUM(amount), 0) FROM spend WHERE key = ? AND at > ? AND (expires IS NULL OR expires > ?)"


class SQLiteStore:
    """Budget state in one SQLite file, safe for many threads and processes on one machine."""

    def __init__(self, path: str | Path, timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self._writes = 0
        try:
            self._db = SQLiteFile(self.path, _SCHEMA, timeout_s)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the SQLite store {str(self.path)!r}: {exc}") from exc
        self._conn = self._db.conn
        self._write = self._db.write

    def _run(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite store {str(self.path)!r} failed to {what}: {exc}") from exc

    def reserve(
        self, key: str, amount: float, limit: float, window_s: float, now: float, ttl_s: float, force: bool = False
    ) -> Reservation:
        """See :meth:`fsa_guard.store.base.Store.reserve`."""

        def go() -> Reservation:
            with self._write() as conn:
                used = float(conn.execute(_USED, (key, now - window_s, now)).fetchone()[0])
                if used + amount > limit and not force:
                    return Reservation(False, key, amount, used, limit)
                rid = uuid.uuid4().hex
                conn.execute("INSERT INTO spend VALUES (?, ?, ?, ?, ?)", (rid, key, now, amount, now + ttl_s))
                self._writes += 1
                if self._writes % 1000 == 0:
                    self._prune(conn, key, window_s, now)
                return Reservation(True, key, amount, used, limit, rid)

        return self._run("reserve", go)

    @staticmethod
    def _prune(conn: sqlite3.Connection, key: str, window_s: float, now: float) -> None:
        # a future `now` must not drop today's spending: prune against the earlier of it and the wall clock
        before = min(now, time.time()) - window_s
        conn.execute("DELETE FROM spend WHERE key = ? AND at <= ?", (key, before))
        # reservations never reported are forgotten a day after they expired
        conn.execute("DELETE FROM spend WHERE expires IS NOT NULL AND expires < ?", (before - 86400,))

    def commit(self, reservation_id: str) -> None:
        """See :meth:`fsa_guard.store.base.Store.commit`."""
        self._run(
            "commit", lambda: self._conn().execute("UPDATE spend SET expires = NULL WHERE id = ?", (reservation_id,))
        )

    def release(self, reservation_id: str) -> None:
        """See :meth:`fsa_guard.store.base.Store.release`."""
        self._run("release", lambda: self._conn().execute("DELETE FROM spend WHERE id = ?", (reservation_id,)))

    def usage(self, key: str, window_s: float, now: float) -> float:
        """See :meth:`fsa_guard.store.base.Store.usage`."""
        return self._run(
            "read usage", lambda: float(self._conn().execute(_USED, (key, now - window_s, now)).fetchone()[0])
        )

    def remember(self, key: str, entity: str, now: float) -> None:
        """See :meth:`fsa_guard.store.base.Store.remember`."""
        sql = (
            "INSERT INTO remembered VALUES (?, ?, ?, ?) ON CONFLICT (key, entity) DO UPDATE SET "
            "first = MIN(first, excluded.first), last = MAX(last, excluded.last)"
        )
        self._run("remember", lambda: self._conn().execute(sql, (key, entity, now, now)))

    def recall(self, key: str, window_s: float | None, now: float) -> list[str]:
        """See :meth:`fsa_guard.store.base.Store.recall`."""
        lo = -1e300 if window_s is None else now - window_s
        sql = (
            "SELECT entity FROM remembered WHERE key = ? AND ((last > ? AND last <= ?) OR (first > ? AND first <= ?)) "
            "ORDER BY first, entity"
        )
        rows = self._run("recall", lambda: self._conn().execute(sql, (key, lo, now, lo, now)).fetchall())
        return [r[0] for r in rows]

    def close(self) -> None:
        """Close every thread's connection."""
        self._db.close()
