"""SQLite audit sink (``sqlite:///path/to/audit.db``): the embedded default, safe for several processes.

Each write is one ``BEGIN IMMEDIATE`` transaction that reads the stream's head, appends the sealed record and
moves the head, so concurrent writers on one machine keep one valid chain and a crash leaves no half record.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .._sqlite import SQLiteFile
from ..errors import AuditError
from .base import GENESIS, canonical, checked_row, seal

__all__ = ["SQLiteAuditSink"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_records (
    stream TEXT NOT NULL,
    seq INTEGER NOT NULL,
    time TEXT,
    outcome TEXT,
    tool TEXT,
    record TEXT NOT NULL,     -- the canonical JSON the hash was taken over
    PRIMARY KEY (stream, seq)
);
CREATE TABLE IF NOT EXISTS audit_heads (stream TEXT PRIMARY KEY, seq INTEGER NOT NULL, hash TEXT NOT NULL);
"""


class SQLiteAuditSink:
    """Hash-chained records in one SQLite file (WAL), one chain per stream."""

    def __init__(self, path: str | Path, stream: str = "default", timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self.stream = stream
        try:
            self._db = SQLiteFile(self.path, _SCHEMA, timeout_s)
        except (sqlite3.Error, OSError) as exc:
            raise AuditError(f"cannot open the SQLite audit trail {str(self.path)!r}: {exc}") from exc

    def write(self, record: Mapping[str, Any]) -> str:
        """Seal and append one record; returns its id (``stream:seq``)."""
        try:
            with self._db.write() as conn:
                row = conn.execute("SELECT seq, hash FROM audit_heads WHERE stream = ?", (self.stream,)).fetchone()
                seq, prev = (int(row[0]), str(row[1])) if row else (0, GENESIS)
                sealed = seal(record, self.stream, seq + 1, prev)
                proposed = sealed.get("proposed")
                tool = proposed.get("tool") if isinstance(proposed, Mapping) else None
                conn.execute(
                    "INSERT INTO audit_records VALUES (?, ?, ?, ?, ?, ?)",
                    (self.stream, seq + 1, sealed.get("time"), sealed.get("outcome"), tool, canonical(sealed).decode()),
                )
                conn.execute(
                    "INSERT INTO audit_heads VALUES (?, ?, ?) ON CONFLICT (stream) DO UPDATE SET "
                    "seq = excluded.seq, hash = excluded.hash",
                    (self.stream, seq + 1, sealed["hash"]),
                )
        except (sqlite3.Error, TypeError, ValueError) as exc:
            raise AuditError(f"cannot write to the SQLite audit trail {str(self.path)!r}: {exc}") from exc
        return f"{self.stream}:{seq + 1}"

    def streams(self) -> list[str]:
        """See :class:`~fsa_guard.audit.base.AuditReader`."""
        sql = "SELECT stream FROM audit_records UNION SELECT stream FROM audit_heads ORDER BY 1"
        return [r[0] for r in self._read(sql, ())]

    def read(self, stream: str) -> Iterator[Any]:
        """See :class:`~fsa_guard.audit.base.AuditReader`. Rows come in ``seq`` order."""
        yield from self._records(stream)

    def head(self, stream: str) -> tuple[int, str] | None:
        """See :class:`~fsa_guard.audit.base.AuditReader`."""
        return _head(self._read("SELECT seq, hash FROM audit_heads WHERE stream = ?", (stream,)))

    def chain(self, stream: str) -> tuple[list[Any], tuple[int, str] | None]:
        """The stream's records and head read in one transaction, so a writer cannot slip in between."""
        try:
            conn = self._db.conn()
            conn.execute("BEGIN")
            try:
                records = self._records(stream)
                head = self.head(stream)
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise AuditError(f"cannot read the SQLite audit trail {str(self.path)!r}: {exc}") from exc
        return records, head

    def _records(self, stream: str) -> list[Any]:
        sql = "SELECT record, time, outcome, tool FROM audit_records WHERE stream = ? ORDER BY seq"
        return [checked_row(text, columns) for text, *columns in self._read(sql, (stream,))]

    def _read(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        try:
            return self._db.conn().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise AuditError(f"cannot read the SQLite audit trail {str(self.path)!r}: {exc}") from exc

    def close(self) -> None:
        """Close every thread's connection."""
        self._db.close()


def _head(rows: list[Any]) -> tuple[int, str] | None:
    if not rows:
        return None
    seq, digest = rows[0]
    return (seq, str(digest)) if isinstance(seq, int) else (0, "")  # a head that is not a number cannot match
