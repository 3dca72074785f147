"""The audit trail: :func:`open_audit` picks a sink by URL."""

from __future__ import annotations

from pathlib import Path

from ..errors import AuditError
from ..store import check_params, query, redact, sqlite_path
from .base import AuditReader, AuditSink

__all__ = ["AuditReader", "AuditSink", "open_audit"]

_FLAGS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}
AUDIT_SCHEMES = "memory://, sqlite:///path/to/audit.db, jsonl:///path/to/audit.jsonl or postgresql://host/db"


def open_audit(url: str, base: str | Path | None = None) -> AuditSink:
    """An audit sink for ``url``; ``?stream=name`` picks the chain it writes (default ``default``).

    ``memory://``, ``sqlite:///path``, ``jsonl:///path`` (relative paths from ``base``) or
    ``postgresql://user@host:port/db``. Raises :class:`~fsa_guard.AuditError` for a URL it cannot use.
    """
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    try:
        stream = query(url).get("stream", "default")
        if scheme == "memory":
            from .memory import MemoryAuditSink

            check_params(url, ("stream",))
            return MemoryAuditSink(stream=stream)
        if scheme == "sqlite":
            from .sqlite import SQLiteAuditSink

            check_params(url, ("stream",))
            return SQLiteAuditSink(sqlite_path(url, base), stream=stream)
        if scheme == "jsonl":
            from .jsonl import JSONLAuditSink

            check_params(url, ("stream", "fsync"))
            fsync = query(url).get("fsync", "0").lower()
            if fsync not in _FLAGS:
                raise ValueError(f"?fsync={fsync!r}: write 1 (sync every record to disk) or 0")
            return JSONLAuditSink(sqlite_path(url, base), stream=stream, fsync=_FLAGS[fsync])
        if scheme in ("postgresql", "postgres"):
            from .postgres import PostgresAuditSink

            return PostgresAuditSink(url, stream=stream)
    except ImportError as exc:
        raise AuditError(
            f"the audit sink {redact(url)!r} needs a package that is not installed ({exc.name}): "
            "pip install 'fsa-guard[postgres]'"
        ) from exc
    except ValueError as exc:
        raise AuditError(f"bad audit URL: {exc}") from exc
    raise AuditError(f"unknown audit URL {redact(url)!r}: use {AUDIT_SCHEMES}")
