"""The audit seam: every decision is written to a sink before it is returned.

Records are hash-chained per stream: each sealed record holds ``stream``, ``seq`` (1, 2, ...), ``prev`` (the
hash of the record before it, or 64 zeros for the first) and ``hash``, the SHA-256 of its canonical JSON
without ``hash``. Changing, deleting, inserting or reordering a record breaks the chain; sinks also keep the
head of each stream (its last seq and hash) apart from the records, so cutting records off the end shows too.

A sink that cannot write raises :class:`~fsa_guard.AuditError`; the guard then denies with finding
``audit-unavailable`` — no call is allowed without its record.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["GENESIS", "AuditReader", "AuditSink", "ChainReport", "canonical", "check_chain", "seal", "verify_sink"]

#: The ``prev`` of a stream's first record.
GENESIS = "0" * 64
_SEALED = ("stream", "seq", "prev", "hash")


@runtime_checkable
class AuditSink(Protocol):
    """Somewhere decisions are recorded."""

    def write(self, record: Mapping[str, Any]) -> str | None:
        """Append one record (a JSON-ready mapping) and return its id (``stream:seq``) if it has one.

        Raise :class:`~fsa_guard.AuditError` when it cannot be written.
        """
        ...


@runtime_checkable
class AuditReader(Protocol):
    """A sink that can also read its records back (for ``fsa-guard audit`` and :func:`verify_sink`)."""

    def streams(self) -> list[str]:
        """The names of the streams stored."""
        ...

    def read(self, stream: str) -> Iterator[Any]:
        """The stream's records in stored order (a record that cannot be parsed is yielded as its text)."""
        ...

    def head(self, stream: str) -> tuple[int, str] | None:
        """The stream's last seq and hash as kept apart from the records, or None if none is kept."""
        ...


def verify_sink(sink: AuditReader) -> list[ChainReport]:
    """Check every stream of ``sink``."""
    return [check_chain(stream, sink.read(stream), sink.head(stream)) for stream in sink.streams()]


def canonical(record: Mapping[str, Any]) -> bytes:
    """The bytes a record's hash is taken over: sorted keys, no spaces, UTF-8."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def seal(record: Mapping[str, Any], stream: str, seq: int, prev: str) -> dict[str, Any]:
    """``record`` as the ``seq``-th link of ``stream``, after the record whose hash is ``prev``."""
    out = {k: v for k, v in record.items() if k not in _SEALED}
    out.update(stream=stream, seq=seq, prev=prev)
    out["hash"] = hashlib.sha256(canonical(out)).hexdigest()
    return out


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The result of checking a stream: ``ok``, how many records were read, and the first bad one."""

    stream: str
    ok: bool
    records: int
    bad_seq: int | None = None  # the seq where the chain first breaks (the position, counted from 1)
    reason: str = ""

    def __str__(self) -> str:
        if self.ok:
            return f"stream {self.stream!r}: {self.records} records, chain intact"
        return f"stream {self.stream!r}: chain broken at record {self.bad_seq}: {self.reason}"


def check_chain(stream: str, records: Iterable[Mapping[str, Any]], head: tuple[int, str] | None) -> ChainReport:
    """Check one stream's records, in stored order, against each other and the stream's ``head``."""
    prev, n = GENESIS, 0
    for n, record in enumerate(records, start=1):
        if not isinstance(record, Mapping):
            return ChainReport(stream, False, n, n, "not a JSON object")
        if record.get("stream") != stream:
            return ChainReport(stream, False, n, n, f"belongs to stream {record.get('stream')!r}")
        if record.get("seq") != n:
            return ChainReport(stream, False, n, n, f"has seq {record.get('seq')!r} where {n} was expected")
        if record.get("prev") != prev:
            return ChainReport(stream, False, n, n, "does not follow the record before it (prev hash differs)")
        body = {k: v for k, v in record.items() if k != "hash"}
        try:
            digest = hashlib.sha256(canonical(body)).hexdigest()
        except (TypeError, ValueError) as exc:
            return ChainReport(stream, False, n, n, f"cannot be hashed: {exc}")
        if record.get("hash") != digest:
            return ChainReport(stream, False, n, n, "its content does not match its hash (it was changed)")
        prev = digest
    if head is not None and head != (n, prev):
        if head[0] > n:
            return ChainReport(stream, False, n, n + 1, f"records {n + 1} to {head[0]} are missing from the end")
        return ChainReport(stream, False, n, n, "the stream's head (its last seq and hash, kept apart) differs")
    return ChainReport(stream, True, n)


def matches(record: Mapping[str, Any], outcome: str | None, tool: str | None, since: str | None) -> bool:
    """Whether a decision record passes ``audit show`` filters (``since`` is an ISO time, compared as text)."""
    if outcome is not None and record.get("outcome") != outcome:
        return False
    if tool is not None and (record.get("proposed") or {}).get("tool") != tool:
        return False
    return not (since is not None and str(record.get("time", "")) < since)


def iter_lines(lines: Iterable[str]) -> Iterator[Any]:
    """Parse JSON lines; a line that is not JSON yields its text (reported as bad by :func:`check_chain`)."""
    for line in lines:
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except ValueError:
            yield line
