"""An in-memory audit sink (``memory://``): for tests and short scripts."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

__all__ = ["MemoryAuditSink"]


class MemoryAuditSink:
    """Keeps every record in a list, in order."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def write(self, record: Mapping[str, Any]) -> None:
        """Append one record."""
        with self._lock:
            self.records.append(dict(record))
