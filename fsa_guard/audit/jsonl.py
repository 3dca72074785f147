"""JSON-lines audit sink (``jsonl:///path/to/audit.jsonl``): one sealed record per line, easy to ship and grep.

Writers on one machine take an exclusive ``flock`` on the file, find their stream's last record at its end,
and append the next one with a single ``write``, so several processes keep one valid chain and a killed
writer leaves whole lines. The stream heads are kept beside the file (``<file>.head``), so records cut off
the end show; the head is moved after the record is written, so a writer killed between the two leaves a
head one record behind, which :meth:`JSONLAuditSink.head` accepts when that record follows it.
``?fsync=1`` also syncs every record to disk (survives power loss, at the cost of a disk flush per decision).
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import AuditError
from .base import GENESIS, canonical, iter_lines, seal

__all__ = ["JSONLAuditSink"]

_CHUNK = 1 << 16


class JSONLAuditSink:
    """Hash-chained records, one JSON object per line."""

    def __init__(self, path: str | Path, stream: str = "default", fsync: bool = False) -> None:
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.name + ".head")
        self.stream = stream
        self.fsync = fsync
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch(exist_ok=True)
        except OSError as exc:
            raise AuditError(f"cannot open the JSONL audit trail {str(self.path)!r}: {exc}") from exc

    def write(self, record: Mapping[str, Any]) -> str:
        """Seal and append one record; returns its id (``stream:seq``)."""
        try:
            with self._lock, open(self.path, "ab+") as f:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # released when the file closes
                seq, prev, torn = self._tail(f)
                sealed = seal(record, self.stream, seq + 1, prev)
                line = canonical(sealed) + b"\n"
                _write_all(f.fileno(), (b"\n" if torn else b"") + line)
                if self.fsync:
                    os.fsync(f.fileno())
                self._set_head(seq + 1, sealed["hash"])
        except (OSError, TypeError, ValueError) as exc:
            raise AuditError(f"cannot write to the JSONL audit trail {str(self.path)!r}: {exc}") from exc
        return f"{self.stream}:{seq + 1}"

    def _tail(self, f: Any) -> tuple[int, str, bool]:
        """This stream's last seq and hash, read backwards from the end; and whether the last line is torn."""
        end = f.seek(0, os.SEEK_END)
        if end == 0:
            return 0, GENESIS, False
        f.seek(end - 1)
        torn = f.read(1) != b"\n"
        pos, partial = end, b""
        while pos > 0:
            size = min(_CHUNK, pos)
            pos -= size
            f.seek(pos)
            lines = (f.read(size) + partial).split(b"\n")
            partial = lines.pop(0) if pos > 0 else b""  # may be the end of a line that starts further back
            for raw in reversed(lines):
                found = _sealed_of(raw, self.stream)
                if found is not None:
                    return found[0], found[1], torn
        return 0, GENESIS, torn

    def _heads(self) -> dict[str, list[Any]]:
        try:
            data = json.loads(self.head_path.read_text())
        except FileNotFoundError:
            return {}
        except ValueError:
            return {"": []}  # unreadable heads: every stream's head check fails
        return data if isinstance(data, dict) else {"": []}

    def _set_head(self, seq: int, digest: str) -> None:
        heads = self._heads()
        heads[self.stream] = [seq, digest]
        tmp = self.head_path.with_name(self.head_path.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(heads, sort_keys=True))
        os.replace(tmp, self.head_path)  # atomic: a reader sees the old heads or the new ones

    def streams(self) -> list[str]:
        """See :class:`~fsa_guard.audit.base.AuditReader`."""
        names = {r.get("stream") for r in self._all() if isinstance(r, Mapping)}
        names |= {k for k in self._heads() if k}
        return sorted(n for n in names if isinstance(n, str)) or [self.stream]

    def read(self, stream: str) -> Iterator[Any]:
        """See :class:`~fsa_guard.audit.base.AuditReader`. A line that is not JSON is yielded to every stream."""
        for r in self._all():
            if not isinstance(r, Mapping) or r.get("stream") == stream:
                yield r

    def _all(self) -> Iterator[Any]:
        try:
            with open(self.path, encoding="utf-8", errors="replace") as f:
                yield from iter_lines(f)
        except OSError as exc:
            raise AuditError(f"cannot read the JSONL audit trail {str(self.path)!r}: {exc}") from exc

    def head(self, stream: str) -> tuple[int, str] | None:
        """The stream's head; one a single record behind is moved on when that record follows it (see above)."""
        heads = self._heads()
        if stream not in heads:
            return None if not heads else (0, "")  # heads kept but not this stream's: it cannot be checked
        value = heads[stream]
        if not (isinstance(value, list) and len(value) == 2):
            return (0, "")
        seq, digest = int(value[0]), str(value[1])
        for r in self.read(stream):
            if isinstance(r, Mapping) and r.get("seq") == seq + 1 and r.get("prev") == digest:
                return seq + 1, str(r.get("hash"))
        return seq, digest

    def close(self) -> None:
        """Nothing stays open between writes."""


def _sealed_of(raw: bytes, stream: str) -> tuple[int, str] | None:
    if not raw.strip():
        return None
    try:
        r = json.loads(raw)
    except ValueError:
        return None
    if isinstance(r, dict) and r.get("stream") == stream and isinstance(r.get("seq"), int):
        return int(r["seq"]), str(r.get("hash"))
    return None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
