"""JSON-lines audit sink (``jsonl:///path/to/audit.jsonl``): one sealed record per line, easy to ship and grep.

Writers on one machine take an exclusive ``flock`` on the file, find their stream's last record at its end,
and append the next one with a single ``write``, so several processes keep one valid chain. The stream heads
are kept beside the file, so records cut off the end show: ``<file>.head`` is a log of JSON lines, each naming
one stream's head, rewritten as one line once it passes 64 KiB (appending a line costs microseconds, replacing a
file about 100 µs on ext4). Before a record is appended its stream's head names it as pending, and once it is
written the head moves to it: a writer killed at any point leaves a head that matches the end of the file,
while a record appended by anyone else matches neither. A write that fails part-way (a full disk) is cut off
again, and a line a killed writer left unfinished (of the file or of its heads) is cut off by the next writer,
so neither breaks the chain that follows.
``?fsync=1`` also syncs every record, and the head naming it, to disk (survives power loss, at the cost of two
disk flushes per decision).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import AuditError
from .base import GENESIS, Unreadable, canonical, parse_record, seal

__all__ = ["JSONLAuditSink"]

_CHUNK = 1 << 16
_FIRST_CHUNK = 1 << 12  # the last record is usually near the end: read back a little first, then more
_HEADS_MAX = 1 << 16  # a head log past this is rewritten as one line


class JSONLAuditSink:
    """Hash-chained records, one JSON object per line."""

    def __init__(self, path: str | Path, stream: str = "default", fsync: bool = False) -> None:
        # resolved: the same file reached through a link keeps one head file, not one per path
        self.path = Path(path).resolve()
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
                seq, prev, end = self._tail(f)
                sealed = seal(record, self.stream, seq + 1, prev)
                line = canonical(sealed) + b"\n"
                # the head names the record about to be written before it is: a writer killed at any point leaves
                # a head that matches the file's end, and a record anyone else appends matches neither
                self._set_head([seq, prev, seq + 1, sealed["hash"]])
                try:
                    _write_all(f.fileno(), line)
                    if self.fsync:
                        os.fsync(f.fileno())
                except BaseException:
                    os.ftruncate(f.fileno(), end)  # no part of a record that was not written stays behind
                    raise
                # nothing pending; where that fails (a full disk), the pending head already vouches for the record
                with contextlib.suppress(OSError):
                    self._set_head([seq + 1, sealed["hash"], seq + 1, sealed["hash"]])
        except (OSError, TypeError, ValueError) as exc:
            raise AuditError(f"cannot write to the JSONL audit trail {str(self.path)!r}: {exc}") from exc
        return f"{self.stream}:{seq + 1}"

    def _tail(self, f: Any) -> tuple[int, str, int]:
        """This stream's last seq and hash, read backwards from the end, and where the next record goes. An
        unfinished last line (a writer killed mid-write) is cut off, or ended when it holds a whole record."""
        end = f.seek(0, os.SEEK_END)
        if end == 0:
            return 0, GENESIS, 0
        f.seek(end - 1)
        if f.read(1) != b"\n":
            start = _line_start(f, end)
            f.seek(start)
            if isinstance(parse_record(f.read(end - start)), dict):
                _write_all(f.fileno(), b"\n")  # the record is whole; only its newline is missing
                end += 1
            else:
                os.ftruncate(f.fileno(), start)
                end = start
        pos, partial, chunk = end, b"", _FIRST_CHUNK
        while pos > 0:
            size = min(chunk, pos)
            chunk = min(2 * chunk, _CHUNK)
            pos -= size
            f.seek(pos)
            lines = (f.read(size) + partial).split(b"\n")
            partial = lines.pop(0) if pos > 0 else b""  # may be the end of a line that starts further back
            for raw in reversed(lines):
                found = _sealed_of(raw, self.stream)
                if found is not None:
                    return found[0], found[1], end
        return 0, GENESIS, end

    def _heads(self) -> dict[str, list[Any]]:
        """Every stream's head: the log's lines merged in order, a later line naming a stream overriding an
        earlier one. An unfinished last line (a writer killed while appending it) is not read: its record was
        not written yet. Anything else that is not a JSON object makes the heads unreadable."""
        try:
            raw = self.head_path.read_bytes()
        except FileNotFoundError:
            return {}
        lines = raw.split(b"\n")
        ended = len(lines) - 1  # lines before this one end with a newline; the last is b"" or unfinished
        heads: dict[str, list[Any]] = {}
        for i, line in enumerate(lines):
            if i == ended and not line.strip():
                break
            try:
                data = json.loads(line)
            except ValueError:
                if i == ended:
                    break
                return {"": []}  # unreadable heads: every stream's head check fails
            if not isinstance(data, dict):
                return {"": []}
            heads.update(data)
        return heads

    def _set_head(self, head: list[Any]) -> None:
        """Append this stream's head to the log (mending a line a killed writer left unfinished), or rewrite
        the log as one line once it is long. Called with the file's lock held, so appends do not interleave."""
        line = json.dumps({self.stream: head}, sort_keys=True, separators=(",", ":")).encode() + b"\n"
        fd = os.open(self.head_path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                size = _mend(fd, size)
            # with fsync, a head that names a record pending is on disk before the record is: after a power
            # loss the head matches the file's end (the one that moves on from it may be lost, and need not be kept)
            synced = self.fsync and head[0] != head[2]
            if size + len(line) <= _HEADS_MAX:
                _write_all(fd, line)
                if synced:
                    os.fsync(fd)
                return
        finally:
            os.close(fd)
        heads = self._heads()
        heads[self.stream] = head
        tmp = self.head_path.with_name(self.head_path.name + f".{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            f.write(json.dumps(heads, sort_keys=True, separators=(",", ":")).encode() + b"\n")
            if self.fsync:  # not an empty file in its place after a power loss
                f.flush()
                os.fsync(f.fileno())
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
                for line in f:
                    if not line.strip():
                        continue
                    record = parse_record(line)
                    if isinstance(record, Unreadable) and not line.endswith("\n"):
                        return  # a record its writer was killed while writing: the next writer cuts it off
                    yield record
        except OSError as exc:
            raise AuditError(f"cannot read the JSONL audit trail {str(self.path)!r}: {exc}") from exc

    def head(self, stream: str) -> tuple[int, str] | None:
        """The stream's head; one a single record behind is moved on when that record follows it (see above)."""
        return self._head(stream, self.read(stream))

    def chain(self, stream: str) -> tuple[list[Any], tuple[int, str] | None]:
        """The stream's records and head, read while holding the file's lock shared, so no writer appends in
        between (a trail being written verifies)."""
        try:
            with open(self.path, "rb") as f:
                fcntl.flock(f.fileno(), fcntl.LOCK_SH)
                records = list(self.read(stream))
                return records, self._head(stream, records)
        except OSError as exc:
            raise AuditError(f"cannot read the JSONL audit trail {str(self.path)!r}: {exc}") from exc

    def _head(self, stream: str, records: Iterable[Any]) -> tuple[int, str] | None:
        heads = self._heads()
        if "" in heads:
            return (0, "")  # the head file cannot be read: no stream can be checked against it
        value = heads.get(stream)
        if value is None:
            if not self.head_path.exists() and not any(True for _ in self._all()):
                return None  # nothing written yet
            if any(isinstance(v, list) and len(v) == 4 for v in heads.values()):
                return (0, GENESIS)  # this version heads a stream before its first record: no writer headed this one
            # no head for a stream that has records: the head file was removed (records cut off the end would
            # not show), or an older version was killed between a new stream's first record and its head
            value = [0, GENESIS]
        if not (isinstance(value, list) and len(value) in (2, 4) and all(type(v) is int for v in value[::2])):
            return (0, "")  # a head that is not [seq, hash] (and the pending record's) cannot match
        seq, digest = value[0], str(value[1])
        last = None
        for r in records:
            if isinstance(r, Mapping):
                last = r
        if len(value) == 4:  # [seq, hash, pending seq, pending hash]: the file ends at one or the other
            pending = (value[2], str(value[3]))
            return pending if last is not None and (last.get("seq"), last.get("hash")) == pending else (seq, digest)
        # [seq, hash] alone, moved after its record was written (as by earlier versions): a writer killed between
        # the two left it one record behind, which is accepted when that record follows it
        if last is not None and last.get("seq") == seq + 1 and last.get("prev") == digest:
            return seq + 1, str(last.get("hash"))
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


def _mend(fd: int, size: int) -> int:
    """End the head log's last line: whole JSON (as earlier versions wrote the heads, one object without a
    newline) gets its newline, and a line that is not JSON (an append cut short) is cut off. Whole JSON that is
    not an object stays, so heads that cannot be read stay so. Returns the new size."""
    with open(fd, "rb", closefd=False) as f:
        start = _line_start(f, size)
        f.seek(start)
        last = f.read(size - start)
    try:
        json.loads(last)
        whole = True
    except ValueError:
        whole = False
    if whole:
        _write_all(fd, b"\n")
        return size + 1
    os.ftruncate(fd, start)
    return start


def _line_start(f: Any, end: int) -> int:
    """Where the line that ends at ``end`` starts (just after the newline before it)."""
    pos = end
    while pos > 0:
        size = min(_CHUNK, pos)
        f.seek(pos - size)
        chunk: bytes = f.read(size)
        found = chunk.rfind(b"\n")
        if found >= 0:
            return pos - size + found + 1
        pos -= size
    return 0


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
