"""The audit seam: every decision is written to a sink before it is returned.

A sink that cannot write raises :class:`~fsa_guard.AuditError`; the guard then denies with finding
``audit-unavailable`` — no call is allowed without its record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

__all__ = ["AuditSink"]


@runtime_checkable
class AuditSink(Protocol):
    """Somewhere decisions are recorded."""

    def write(self, record: Mapping[str, Any]) -> None:
        """Append one record (a JSON-ready mapping). Raise AuditError when it cannot be written."""
        ...
