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
from dataclasses import astuple
from pathlib import Path
from typing import TypeVar

from .._sqlite import SQLiteFile
from ..errors import StoreError
from .base import APPROVAL_KEEP_CLAIMED_S, ApprovalRow, Reservation, check_settle_status, over_limit

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
-- the longest window each key was reserved under: specs sharing a file may give one budget id different
-- windows, and pruning by a shorter one would drop spending a longer one still counts
CREATE TABLE IF NOT EXISTS windows (key TEXT PRIMARY KEY, longest REAL NOT NULL);
CREATE TABLE IF NOT EXISTS remembered (
    key TEXT NOT NULL,
    entity TEXT NOT NULL,
    first REAL NOT NULL,
    last REAL NOT NULL,
    PRIMARY KEY (key, entity)
);
CREATE TABLE IF NOT EXISTS approvals (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    status TEXT NOT NULL,
    request TEXT NOT NULL,
    answer TEXT,
    claimed REAL,
    claimed_by TEXT
);
CREATE INDEX IF NOT EXISTS approvals_created ON approvals (created);
"""

_APPROVAL = "SELECT id, created, expires, status, request, answer, claimed, claimed_by FROM approvals"
_USED = "SELECT COALESCE(SUM(amount), 0) FROM spend WHERE key = ? AND at > ? AND (expires IS NULL OR expires > ?)"


class SQLiteStore:
    """Budget state in one SQLite file, safe for many threads and processes on one machine."""

    def __init__(self, path: str | Path, timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self._writes = 0
        self._approval_adds = 0
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
                if over_limit(used, amount, limit) and not force:
                    return Reservation(False, key, amount, used, limit)
                rid = uuid.uuid4().hex
                conn.execute("INSERT INTO spend VALUES (?, ?, ?, ?, ?)", (rid, key, now, amount, now + ttl_s))
                conn.execute(
                    "INSERT INTO windows VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET longest = "
                    "max(longest, excluded.longest)",
                    (key, window_s),
                )
                self._writes += 1
                if self._writes % 1000 == 0:
                    self._prune(conn, key, window_s, now)
                return Reservation(True, key, amount, used, limit, rid)

        return self._run("reserve", go)

    @staticmethod
    def _prune(conn: sqlite3.Connection, key: str, window_s: float, now: float) -> None:
        # a future `now` must not drop today's spending: prune against the earlier of it and the wall clock
        row = conn.execute("SELECT longest FROM windows WHERE key = ?", (key,)).fetchone()
        before = min(now, time.time()) - max(window_s, row[0] if row else 0.0)
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
        # only a live reservation is given back: a committed amount was spent, whatever is reported later
        self._run(
            "release",
            lambda: self._conn().execute("DELETE FROM spend WHERE id = ? AND expires IS NOT NULL", (reservation_id,)),
        )

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

    def approval_add(self, row: ApprovalRow) -> None:
        """See :meth:`fsa_guard.store.base.ApprovalStore.approval_add`."""

        def go() -> None:
            with self._write() as conn:
                try:
                    conn.execute("INSERT INTO approvals VALUES (?, ?, ?, ?, ?, ?, ?, ?)", astuple(row))
                except sqlite3.IntegrityError:
                    raise StoreError(f"approval {row.id!r} already exists") from None
                self._approval_adds += 1
                if self._approval_adds % 100 == 0:
                    before = time.time() - APPROVAL_KEEP_CLAIMED_S
                    # used a month ago, or expired a month ago and never used (Redis expires them likewise)
                    conn.execute("DELETE FROM approvals WHERE claimed < ? OR expires < ?", (before, before))

        self._run("add an approval", go)

    def approval_get(self, approval_id: str) -> ApprovalRow | None:
        """See :meth:`fsa_guard.store.base.ApprovalStore.approval_get`."""
        found = self._run(
            "read an approval", lambda: self._conn().execute(f"{_APPROVAL} WHERE id = ?", (approval_id,)).fetchone()
        )
        return None if found is None else ApprovalRow(*found)

    def _change(
        self, what: str, sql: str, args: tuple[object, ...], approval_id: str
    ) -> tuple[bool, ApprovalRow | None]:
        """Run a conditional UPDATE of one approval; the row is read in the same transaction."""

        def go() -> tuple[bool, ApprovalRow | None]:
            with self._write() as conn:
                changed = conn.execute(sql, args).rowcount == 1
                found = conn.execute(f"{_APPROVAL} WHERE id = ?", (approval_id,)).fetchone()
            return changed, None if found is None else ApprovalRow(*found)

        return self._run(what, go)

    def approval_settle(
        self, approval_id: str, status: str, answer: str | None, now: float
    ) -> tuple[bool, ApprovalRow | None]:
        """See :meth:`fsa_guard.store.base.ApprovalStore.approval_settle`."""
        check_settle_status(status)
        fits = "? >= expires" if status == "expired" else "? < expires"
        sql = f"UPDATE approvals SET status = ?, answer = ? WHERE id = ? AND status = 'pending' AND {fits}"
        return self._change("settle an approval", sql, (status, answer, approval_id, now), approval_id)

    def approval_claim(self, approval_id: str, now: float, by: str) -> tuple[bool, ApprovalRow | None]:
        """See :meth:`fsa_guard.store.base.ApprovalStore.approval_claim`."""
        sql = (
            "UPDATE approvals SET claimed = ?, claimed_by = ? WHERE id = ? AND status != 'pending' AND claimed IS NULL"
        )
        return self._change("claim an approval", sql, (now, by, approval_id), approval_id)

    def approval_list(self, status: str | None = None, limit: int = 100) -> list[ApprovalRow]:
        """See :meth:`fsa_guard.store.base.ApprovalStore.approval_list`."""
        where, args = ("", ()) if status is None else (" WHERE status = ?", (status,))
        sql = f"{_APPROVAL}{where} ORDER BY created DESC, id DESC LIMIT ?"
        found = self._run("list approvals", lambda: self._conn().execute(sql, (*args, max(limit, 0))).fetchall())
        return [ApprovalRow(*r) for r in found]

    def close(self) -> None:
        """Close every thread's connection."""
        self._db.close()
