"""An in-memory audit sink (``memory://``): for tests and short scripts."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

from .base import GENESIS, seal

__all__ = ["MemoryAuditSink"]


class MemoryAuditSink:
    """Keeps every sealed record in a list, in order; one chain per stream."""

    def __init__(self, stream: str = "default") -> None:
        self.stream = stream
        self.records: list[dict[str, Any]] = []
        self._heads: dict[str, tuple[int, str]] = {}
        self._lock = threading.Lock()

    def write(self, record: Mapping[str, Any]) -> str:
        """Seal and append one record; returns its id."""
        with self._lock:
            seq, prev = self._heads.get(self.stream, (0, GENESIS))
            sealed = seal(record, self.stream, seq + 1, prev)
            self.records.append(sealed)
            self._heads[self.stream] = (seq + 1, sealed["hash"])
        return f"{self.stream}:{seq + 1}"

    def streams(self) -> list[str]:
        """See :class:`~fsa_guard.audit.base.AuditReader`."""
        return sorted({r.get("stream", "") for r in self.records} | set(self._heads))

    def read(self, stream: str) -> Iterator[Any]:
        """See :class:`~fsa_guard.audit.base.AuditReader`."""
        return iter([r for r in list(self.records) if not isinstance(r, Mapping) or r.get("stream") == stream])

    def head(self, stream: str) -> tuple[int, str] | None:
        """See :class:`~fsa_guard.audit.base.AuditReader`."""
        return self._heads.get(stream)

    def chain(self, stream: str) -> tuple[list[Any], tuple[int, str] | None]:
        """The stream's records and head as one snapshot (see :func:`~fsa_guard.audit.base.verify_sink`)."""
        with self._lock:
            return list(self.read(stream)), self.head(stream)
