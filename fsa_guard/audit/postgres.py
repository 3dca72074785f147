"""PostgreSQL audit sink (``postgresql://user@host:port/db``): one chain per stream, shared by many writers.

Each write is one transaction that locks the stream's head row (``SELECT ... FOR UPDATE``), appends the sealed
record and moves the head, so any number of threads and processes keep one valid chain and a failed write
leaves nothing behind. Records are stored as the exact canonical JSON text their hash was taken over (``TEXT``,
not ``jsonb``, which would renormalize numbers and key order and so break the hash).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ..errors import AuditError
from .base import GENESIS, canonical, checked_row, seal

__all__ = ["PostgresAuditSink"]

# Query parameters of the audit URL that are ours, not libpq's: libpq rejects unknown ones.
_OURS = ("stream",)
# A decision waits on its audit write: a dead network or a stuck lock must fail it (deny), not hang it.
_DEFAULTS = {
    "connect_timeout": "3",
    "application_name": "fsa_guard-audit",
    "tcp_user_timeout": "10000",
    "options": "-c lock_timeout=10s -c statement_timeout=30s",
}
# Leave room for the "_heads" suffix within PostgreSQL's 63-byte identifiers (longer ones are cut silently).
_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,56}")


class PostgresAuditSink:
    """Hash-chained records in a PostgreSQL table ``table`` (heads in ``table_heads``), one chain per stream.

    Connects on first use and again after any error, so writing resumes once the server is back. One
    connection per sink, used under a lock: safe to share between threads.
    """

    def __init__(self, url: str, stream: str = "default", table: str = "fsa_audit") -> None:
        if not _TABLE.fullmatch(table):
            raise AuditError(f"bad audit table name {table!r}: use letters, digits and _ (at most 57)")
        self.stream = stream
        self.table = table
        self.url = _redact(url)
        try:
            conninfo = _strip(url)
            given = conninfo_to_dict(conninfo)  # parses without a server: bad URLs fail here, not on first write
            self._conninfo = make_conninfo(conninfo, **{k: v for k, v in _DEFAULTS.items() if k not in given})
        except psycopg.Error as exc:
            raise AuditError(f"bad PostgreSQL audit URL {self.url!r}: {exc}") from exc
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._tables = False  # seen in place: reads never create them, so a mistyped database stays as it was
        records, heads = sql.Identifier(table), sql.Identifier(f"{table}_heads")
        self._regclass = (f'"{table}"', f'"{table}_heads"')
        self._schema = [
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (stream TEXT NOT NULL, seq BIGINT NOT NULL, time TEXT, outcome TEXT, "
                "tool TEXT, record TEXT NOT NULL, PRIMARY KEY (stream, seq))"
            ).format(records),
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (stream TEXT PRIMARY KEY, seq BIGINT NOT NULL, hash TEXT NOT NULL)"
            ).format(heads),
        ]
        # Advisory locks are keyed by a bigint; derive it from the table so unrelated sinks do not wait on us.
        digest = hashlib.sha256(f"fsa_guard.audit:{table}".encode()).digest()
        self._schema_key = int.from_bytes(digest[:8], "big", signed=True)
        self._claim = sql.SQL("INSERT INTO {} (stream, seq, hash) VALUES (%s, 0, %s) ON CONFLICT DO NOTHING").format(
            heads
        )
        self._lock_head = sql.SQL("SELECT seq, hash FROM {} WHERE stream = %s FOR UPDATE").format(heads)
        self._insert = sql.SQL(
            "INSERT INTO {} (stream, seq, time, outcome, tool, record) VALUES (%s, %s, %s, %s, %s, %s)"
        ).format(records)
        self._move_head = sql.SQL("UPDATE {} SET seq = %s, hash = %s WHERE stream = %s").format(heads)
        self._select_streams = sql.SQL("SELECT stream FROM {} UNION SELECT stream FROM {} ORDER BY 1").format(
            records, heads
        )
        self._select_records = sql.SQL(
            "SELECT record, time, outcome, tool FROM {} WHERE stream = %s ORDER BY seq"
        ).format(records)
        self._select_head = sql.SQL("SELECT seq, hash FROM {} WHERE stream = %s").format(heads)

    def write(self, record: Mapping[str, Any]) -> str:
        """Seal and append one record; returns its id (``stream:seq``)."""
        with self._lock:
            try:
                conn = self._connect()
                with conn.transaction(), conn.cursor() as cur:
                    # The head row is the stream's lock: create it if this is the stream's first record, then
                    # hold it until commit so concurrent writers queue up behind us and see our new head.
                    cur.execute(self._claim, (self.stream, GENESIS))
                    cur.execute(self._lock_head, (self.stream,))
                    row = cur.fetchone()
                    if row is None:  # the claim above guarantees a row; a missing one means the table was altered
                        raise AuditError(f"the head of stream {self.stream!r} vanished while it was locked")
                    seq = int(row[0]) + 1
                    sealed = seal(record, self.stream, seq, str(row[1]))
                    proposed = sealed.get("proposed")
                    tool = proposed.get("tool") if isinstance(proposed, Mapping) else None
                    text = canonical(sealed).decode()
                    fields = (_text(sealed.get("time")), _text(sealed.get("outcome")), _text(tool))
                    cur.execute(self._insert, (self.stream, seq, *fields, text))
                    cur.execute(self._move_head, (seq, sealed["hash"], self.stream))
            except (TypeError, ValueError) as exc:  # the record is not JSON-ready; the connection is fine
                raise AuditError(f"cannot write to the PostgreSQL audit trail: the record is not JSON: {exc}") from exc
            except psycopg.Error as exc:
                self._drop()
                raise AuditError(f"cannot write to the PostgreSQL audit trail {self._where()}: {exc}") from exc
        return f"{self.stream}:{seq}"

    def streams(self) -> list[str]:
        """See :class:`~fsa_guard.audit.base.AuditReader`."""
        return [str(r[0]) for r in self._fetch(self._select_streams, ())]

    def read(self, stream: str) -> Iterator[Any]:
        """See :class:`~fsa_guard.audit.base.AuditReader`. Rows come in ``seq`` order."""
        yield from self._records(self._fetch(self._select_records, (stream,)))

    def head(self, stream: str) -> tuple[int, str] | None:
        """See :class:`~fsa_guard.audit.base.AuditReader`."""
        rows = self._fetch(self._select_head, (stream,))
        return (int(rows[0][0]), str(rows[0][1])) if rows else None

    def exists(self) -> bool:
        """Whether the trail's tables are in the database. Reading never creates them (writing does), so a
        reader can tell a trail with no records from a database that holds none."""
        with self._lock:
            try:
                return self._present(self._connect(create=False))
            except psycopg.Error as exc:
                self._drop()
                raise AuditError(f"cannot read the PostgreSQL audit trail {self._where()}: {exc}") from exc

    def chain(self, stream: str) -> tuple[list[Any], tuple[int, str] | None]:
        """The stream's records and head read in one REPEATABLE READ transaction: one snapshot, so writers
        committing meanwhile do not make a sound trail look broken."""
        with self._lock:
            try:
                conn = self._connect(create=False)
                if not self._present(conn):
                    return [], None  # nothing written yet
                with conn.transaction():
                    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    rows = conn.execute(self._select_records, (stream,)).fetchall()
                    heads = conn.execute(self._select_head, (stream,)).fetchall()
            except psycopg.Error as exc:
                self._drop()
                raise AuditError(f"cannot read the PostgreSQL audit trail {self._where()}: {exc}") from exc
        return self._records(rows), ((int(heads[0][0]), str(heads[0][1])) if heads else None)

    @staticmethod
    def _records(rows: list[tuple[Any, ...]]) -> list[Any]:
        return [checked_row(text, columns, _text) for text, *columns in rows]

    def close(self) -> None:
        """Close the connection (a later call opens a new one)."""
        with self._lock:
            self._drop()

    def _fetch(self, query: sql.Composed, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                conn = self._connect(create=False)
                if not self._present(conn):
                    return []  # nothing written yet
                with conn.cursor() as cur:
                    cur.execute(query, params)
                    return cur.fetchall()
            except psycopg.Error as exc:
                self._drop()
                raise AuditError(f"cannot read the PostgreSQL audit trail {self._where()}: {exc}") from exc

    def _connect(self, create: bool = True) -> psycopg.Connection[Any]:
        """The open connection, or a new one; with ``create``, with the tables in place. Call with the lock held."""
        conn = self._conn
        if conn is None or conn.closed:
            conn = psycopg.connect(self._conninfo, autocommit=True)
            # The head-row lock relies on READ COMMITTED (each statement sees the last commit); under a server
            # default of REPEATABLE READ or SERIALIZABLE, queued writers would fail instead of waiting.
            conn.isolation_level = psycopg.IsolationLevel.READ_COMMITTED
            self._conn = conn
        if create:
            try:
                self._ensure_schema(conn)
            except BaseException:
                self._drop()
                raise
        return conn

    def _present(self, conn: psycopg.Connection[Any]) -> bool:
        if not self._tables:
            row = conn.execute("SELECT to_regclass(%s), to_regclass(%s)", self._regclass).fetchone()
            self._tables = row is not None and None not in row
        return self._tables

    def _ensure_schema(self, conn: psycopg.Connection[Any]) -> None:
        # Look first: CREATE ... IF NOT EXISTS still needs CREATE rights, which a writer of existing tables may lack.
        if self._present(conn):
            return
        with conn.transaction():
            # Concurrent CREATE TABLE IF NOT EXISTS can still collide (duplicate pg_type rows); serialize them.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._schema_key,))
            for statement in self._schema:
                conn.execute(statement)
        self._tables = True

    def _drop(self) -> None:
        """Forget the connection (it may be broken); the next call reconnects. Call with the lock held."""
        conn, self._conn = self._conn, None
        self._tables = False  # look again: the error may have been a table dropped under us
        if conn is not None:
            with contextlib.suppress(psycopg.Error):  # closing a dead connection may fail; it is gone anyway
                conn.close()

    def _where(self) -> str:
        return f"{self.url!r} (table {self.table!r}, stream {self.stream!r})"


def _text(value: Any) -> str | None:
    """A value for a query column: text only (PostgreSQL TEXT cannot hold NUL); the record keeps the rest."""
    return value if isinstance(value, str) and "\x00" not in value else None


def _strip(url: str) -> str:
    """``url`` without our own query parameters, for libpq."""
    if "://" not in url:
        return url  # a key=value conninfo string: nothing of ours in it
    parts = urlsplit(url)
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in _OURS]
    return urlunsplit(parts._replace(query=urlencode(kept)))


def _redact(url: str) -> str:
    """``url`` with its password (in the user part or ``?password=``) replaced by ``***``, for messages."""
    if "://" not in url:
        return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", url)
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, host = netloc.rsplit("@", 1)
        if ":" in user:
            netloc = f"{user.split(':', 1)[0]}:***@{host}"
    query = [(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query, safe="*")))
