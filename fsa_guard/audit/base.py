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
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "GENESIS",
    "AuditReader",
    "AuditSink",
    "ChainReport",
    "Unreadable",
    "canonical",
    "check_chain",
    "checked_row",
    "parse_record",
    "seal",
    "verify_sink",
]

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
    """Check every stream of ``sink``. A sink with a ``chain(stream)`` method (those of this package) hands
    over a stream's records and head as one snapshot, so a trail being written while it is checked verifies."""
    chain = getattr(sink, "chain", None)
    reports = []
    for stream in sink.streams():
        if chain is None:
            reports.append(check_chain(stream, sink.read(stream), sink.head(stream)))
            continue
        records, head = chain(stream)
        if head is None and records:
            head = (0, GENESIS)  # these sinks keep a head for every stream they write to: it was removed
        reports.append(check_chain(stream, records, head))
    return reports


class Unreadable(str):
    """A stored record that is not one, with why (``check_chain`` reports it)."""

    reason: str = "not a JSON object"

    def __new__(cls, text: str, reason: str = "not a JSON object") -> Unreadable:
        made = super().__new__(cls, text)
        made.reason = reason
        return made


def parse_record(text: str | bytes) -> Any:
    """A stored record parsed, or :class:`Unreadable`: a key given twice (it would hide what the hash covers
    behind a value that shows), nesting too deep, or text that is not JSON."""
    from .._json import loads

    shown = text if isinstance(text, str) else text.decode("utf-8", "replace")
    try:
        return loads(shown)
    except ValueError as exc:
        return Unreadable(shown, f"not a JSON record: {exc}")


def checked_row(text: str, columns: Iterable[Any], column: Callable[[Any], Any] = lambda v: v) -> Any:
    """A database row's record, or :class:`Unreadable` when its ``time``, ``outcome`` and ``tool`` columns (as
    ``column`` stores a value) differ from the record: an edited column shows in every query, not in the chain."""
    record = parse_record(text)
    if isinstance(record, Mapping):
        proposed = record.get("proposed")
        tool = proposed.get("tool") if isinstance(proposed, Mapping) else None
        if tuple(columns) != tuple(map(column, (record.get("time"), record.get("outcome"), tool))):
            return Unreadable(text, "its time, outcome or tool column and its record differ (one of them was changed)")
    return record


_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


def canonical(record: Mapping[str, Any]) -> bytes:
    """The bytes a record's hash is taken over: sorted keys, no spaces, UTF-8. A lone surrogate (a file name
    read with ``surrogateescape``) is written as its ``\\uXXXX`` escape, which reads back as the same text."""
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:
        return text.encode()
    except UnicodeEncodeError:
        # a high and a low surrogate side by side read back from JSON as the one character they stand for, so
        # they are written as it; only then are the lone ones escaped, and the record hashes the same when read
        joined = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
        return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", joined).encode()


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
            return ChainReport(stream, False, n, n, getattr(record, "reason", "not a JSON object"))
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
        kept = "the stream's head (its last seq and hash, kept apart)"
        if head == (0, GENESIS):
            why = f"the stream has records but no head: {kept} was removed, or no guard wrote these records"
        else:
            why = f"{kept} cannot be read" if head == (0, "") else f"{kept} differs"
        return ChainReport(stream, False, n, n, why)
    return ChainReport(stream, True, n)


def matches(record: Mapping[str, Any], outcome: str | None, tool: str | None, since: str | None) -> bool:
    """Whether a decision record passes ``audit show`` filters (``since`` is an ISO time, compared as text)."""
    if outcome is not None and record.get("outcome") != outcome:
        return False
    proposed = record.get("proposed")
    if tool is not None and (proposed.get("tool") if isinstance(proposed, Mapping) else None) != tool:
        return False
    return not (since is not None and str(record.get("time", "")) < since)
