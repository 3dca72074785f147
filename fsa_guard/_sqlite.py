"""SQLite files shared by threads and processes: one connection per thread, WAL, explicit write transactions."""

from __future__ import annotations

import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["SQLiteFile"]


class SQLiteFile:
    """One SQLite file in WAL mode with ``schema`` in place; :meth:`conn` gives this thread's connection."""

    def __init__(self, path: Path, schema: str, timeout_s: float) -> None:
        self.path = path
        self._timeout = timeout_s
        self._local = threading.local()
        self._lock = threading.Lock()
        self._held: weakref.WeakSet[_Held] = weakref.WeakSet()
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = self.conn()
        # Switching to WAL and creating the tables take the file's locks; when several processes open a new
        # file at once SQLite may answer "database is locked" at once, without waiting its busy timeout.
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(schema)
                break
            except sqlite3.OperationalError as exc:
                if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() > deadline:
                    raise
                time.sleep(random.uniform(0.005, 0.05))

    def conn(self) -> sqlite3.Connection:
        """This thread's connection, in autocommit mode: transactions are begun explicitly. It is closed when
        the thread ends (LangGraph, for one, runs each step on a thread of its own: kept open, they would use up
        the process's file descriptors)."""
        held: _Held | None = getattr(self._local, "held", None)
        if held is None:
            conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
            held = _Held(conn)
            weakref.finalize(held, conn.close)  # the thread's locals go when it ends, and the connection with them
            self._local.held = held
            with self._lock:
                self._held.add(held)
        return held.conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A ``BEGIN IMMEDIATE`` transaction: it takes the file's write lock before reading, so no other
        process can act on what it reads until it commits."""
        conn = self.conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            for held in list(self._held):
                held.conn.close()
            self._held.clear()
        self._local = threading.local()


class _Held:
    """A thread's connection, held by that thread's locals only."""

    __slots__ = ("__weakref__", "conn")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
