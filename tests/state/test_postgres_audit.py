"""The PostgreSQL audit sink against the real server: round trip, tamper detection, many writers, outages."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from proxy import Proxy

from fsa_guard.audit import open_audit
from fsa_guard.audit.base import GENESIS, ChainReport, canonical, seal, verify_sink
from fsa_guard.audit.postgres import PostgresAuditSink
from fsa_guard.errors import AuditError

SinkFactory = Callable[..., PostgresAuditSink]


@pytest.fixture
def table(postgres_url: str) -> Iterator[str]:
    """A records table name of this test's own; it and its heads table are dropped afterwards."""
    name = f"fsa_audit_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP TABLE IF EXISTS "{name}", "{name}_heads"')


@pytest.fixture
def db(postgres_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A direct connection, for looking at and tampering with the tables behind the sink's back."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def make_sink(postgres_url: str, table: str) -> Iterator[SinkFactory]:
    """``make_sink(stream="default", url=postgres_url)``: sinks on this test's table, closed afterwards."""
    made: list[PostgresAuditSink] = []

    def make(stream: str = "default", url: str = postgres_url) -> PostgresAuditSink:
        sink = PostgresAuditSink(url, stream=stream, table=table)
        made.append(sink)
        return sink

    yield make
    for sink in made:
        sink.close()


def decision(n: int) -> dict[str, Any]:
    """A record shaped like the guard's, with values that JSON renormalization would change."""
    return {
        "outcome": "deny",
        "proposed": {"tool": "send_email", "args": {"to": f"user{n}@example.com", "amount": 1.0 * n, "n": n}},
        "findings": [{"rule": "no-external-mail", "effect": "deny"}],
        "explanation": "Sending mail outside the company is not allowed. — ünïcode ✓",
        "big": 10**30,
        "float": 0.1 + 0.2,
        "time": f"2024-06-07T12:00:{n % 60:02d}+00:00",
    }


def report(sink: PostgresAuditSink, stream: str) -> ChainReport:
    (found,) = [r for r in verify_sink(sink) if r.stream == stream]
    return found


# --- round trip ----------------------------------------------------------------------------------------------


def test_round_trip_keeps_the_exact_canonical_text(
    make_sink: SinkFactory, db: psycopg.Connection[Any], table: str
) -> None:
    sink = make_sink()
    ids = [sink.write(decision(n)) for n in range(1, 6)]
    assert ids == [f"default:{n}" for n in range(1, 6)]

    expected, prev = [], GENESIS
    for n in range(1, 6):
        expected.append(seal(decision(n), "default", n, prev))
        prev = expected[-1]["hash"]
    assert list(sink.read("default")) == expected
    assert sink.head("default") == (5, prev)
    assert sink.streams() == ["default"]
    assert verify_sink(sink) == [ChainReport("default", True, 5)]

    # Stored as the very text the hash was taken over (jsonb would rewrite 1.0 and reorder keys).
    rows = db.execute(f'SELECT seq, record, outcome, tool, time FROM "{table}" ORDER BY seq').fetchall()
    assert [r[1] for r in rows] == [canonical(r).decode() for r in expected]
    assert rows[0][2:] == ("deny", "send_email", "2024-06-07T12:00:01+00:00")


def test_a_query_column_changed_apart_from_its_record_is_detected(
    make_sink: SinkFactory, db: psycopg.Connection[Any], table: str
) -> None:
    sink = make_sink()
    for n in range(1, 4):
        sink.write(decision(n))
    db.execute(f"""UPDATE "{table}" SET outcome = 'allow' WHERE seq = 2""")  # what a query by outcome would show
    [found] = verify_sink(sink)
    assert (found.ok, found.bad_seq) == (False, 2) and "column and its record differ" in found.reason


def test_two_streams_in_one_table_are_independent_chains(
    make_sink: SinkFactory, db: psycopg.Connection[Any], table: str
) -> None:
    a, b = make_sink("a"), make_sink("b")
    ids = [a.write(decision(1)), b.write(decision(1)), b.write(decision(2)), a.write(decision(2)), a.write(decision(3))]
    assert ids == ["a:1", "b:1", "b:2", "a:2", "a:3"]
    assert a.streams() == ["a", "b"]
    assert verify_sink(a) == [ChainReport("a", True, 3), ChainReport("b", True, 2)]
    assert [r["seq"] for r in b.read("b")] == [1, 2]
    assert a.head("b") == b.head("b") and a.head("nope") is None

    # Breaking one chain leaves the other intact.
    db.execute(f"""UPDATE "{table}" SET record = replace(record, '"deny"', '"allow"') WHERE stream = 'a' AND seq = 2""")
    assert verify_sink(b) == [
        ChainReport(
            "a", False, 2, 2, "its time, outcome or tool column and its record differ (one of them was changed)"
        ),
        ChainReport("b", True, 2),
    ]


def test_open_audit_strips_stream_and_passes_libpq_params(postgres_url: str, make_sink: SinkFactory) -> None:
    sink = open_audit(postgres_url + "?stream=ops&connect_timeout=2")
    assert isinstance(sink, PostgresAuditSink) and sink.stream == "ops"
    # The same URL as the sink's own (on this test's table): libpq accepts it, so writing works.
    own = make_sink("ops", postgres_url + "?stream=ops&connect_timeout=2")
    assert own.write(decision(1)) == "ops:1"


def test_construction_needs_no_server_and_errors_are_audit_errors() -> None:
    sink = PostgresAuditSink("postgresql://postgres:s3cret@127.0.0.1:1/test?connect_timeout=2")
    started = time.monotonic()
    with pytest.raises(AuditError, match="cannot write to the PostgreSQL audit trail") as info:
        sink.write(decision(1))
    assert time.monotonic() - started < 5
    assert "s3cret" not in str(info.value) and "postgres:***@127.0.0.1:1" in str(info.value)
    with pytest.raises(AuditError, match="cannot read"):
        sink.streams()
    with pytest.raises(AuditError, match="bad PostgreSQL audit URL"):
        PostgresAuditSink("postgresql://127.0.0.1/test?no_such_param=1")
    with pytest.raises(AuditError, match="bad audit table name"):
        PostgresAuditSink("postgresql://127.0.0.1/test", table="x; DROP TABLE y")


def _tables_named(db: psycopg.Connection[Any], table: str) -> list[str]:
    rows = db.execute("SELECT tablename FROM pg_tables WHERE tablename IN (%s, %s)", (table, f"{table}_heads"))
    return sorted(str(r[0]) for r in rows.fetchall())


def test_reading_a_trail_never_written_creates_nothing(
    make_sink: SinkFactory, db: psycopg.Connection[Any], table: str
) -> None:
    reader = make_sink()
    assert reader.exists() is False
    assert (reader.streams(), list(reader.read("default")), reader.head("default")) == ([], [], None)
    assert reader.chain("default") == ([], None) and verify_sink(reader) == []
    assert _tables_named(db, table) == []  # a reader (a mistyped database) leaves the database as it was

    make_sink().write(decision(1))  # another writer creates the tables: the same reader now sees them
    assert _tables_named(db, table) == sorted([table, f"{table}_heads"])
    assert reader.exists() is True and reader.streams() == ["default"] and reader.head("default") is not None
    assert report(reader, "default") == ChainReport("default", True, 1)


def test_cli_refuses_a_database_with_no_trail_and_leaves_it_empty(
    postgres_url: str, db: psycopg.Connection[Any]
) -> None:
    from typer.testing import CliRunner

    from fsa_guard.cli import app

    name = f"fsa_cli_{uuid.uuid4().hex[:12]}"  # a database of its own: the shared one may hold a default trail
    db.execute(f'CREATE DATABASE "{name}"')
    url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        for command in ("verify", "show", "tail"):
            result = CliRunner().invoke(app, ["audit", command, url])
            assert result.exit_code == 2, result.output
            assert "there is no audit trail in" in " ".join(result.output.split()), result.output
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)
        sink = open_audit(url)
        sink.write(decision(1))
        sink.close()
        result = CliRunner().invoke(app, ["audit", "verify", url])
        assert result.exit_code == 0 and "chain intact" in result.output, result.output
    finally:
        db.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_a_writer_recreates_tables_dropped_under_it(
    make_sink: SinkFactory, db: psycopg.Connection[Any], table: str
) -> None:
    sink = make_sink()
    sink.write(decision(1))
    db.execute(f'DROP TABLE "{table}", "{table}_heads"')
    with pytest.raises(AuditError, match="cannot write"):
        sink.write(decision(2))  # the error is seen once; the sink looks for its tables again on reconnecting
    assert sink.write(decision(3)) == "default:1"
    assert report(sink, "default") == ChainReport("default", True, 1)


def test_a_failed_write_leaves_nothing_behind(make_sink: SinkFactory, db: psycopg.Connection[Any], table: str) -> None:
    sink = make_sink()
    sink.write(decision(1))
    with pytest.raises(AuditError, match="not JSON"):
        sink.write({"bad": object()})
    with pytest.raises(AuditError, match="not JSON"):
        sink.write({"bad": float("nan")})
    # A row squatting on the next seq makes the INSERT fail mid-transaction: the head must not move.
    squatter = seal(decision(99), "default", 2, "f" * 64)
    db.execute(
        f'INSERT INTO "{table}" (stream, seq, record) VALUES (%s, 2, %s)', ("default", canonical(squatter).decode())
    )
    with pytest.raises(AuditError, match="duplicate key"):
        sink.write(decision(2))
    assert sink.head("default") == (1, seal(decision(1), "default", 1, GENESIS)["hash"])
    db.execute(f'DELETE FROM "{table}" WHERE seq = 2')
    assert sink.write(decision(2)) == "default:2"  # the same sink, reconnected
    assert verify_sink(sink) == [ChainReport("default", True, 2)]


# --- tampering -----------------------------------------------------------------------------------------------

N = 8  # records per tampered stream


def _rows(db: psycopg.Connection[Any], table: str, stream: str) -> list[str]:
    return [r[0] for r in db.execute(f'SELECT record FROM "{table}" WHERE stream = %s ORDER BY seq', (stream,))]


def _set_seq(db: psycopg.Connection[Any], table: str, stream: str, old: int, new: int) -> None:
    db.execute(f'UPDATE "{table}" SET seq = %s WHERE stream = %s AND seq = %s', (new, stream, old))


def _columns_of(db: psycopg.Connection[Any], table: str, stream: str, seq: int, record: dict[str, Any]) -> None:
    """Set a row's query columns as the sink would have written them for ``record``."""
    tool = record["proposed"]["tool"]
    sql = f'UPDATE "{table}" SET time = %s, outcome = %s, tool = %s WHERE stream = %s AND seq = %s'
    db.execute(sql, (record["time"], record["outcome"], tool, stream, seq))


def tamper(kind: str, rng: random.Random, db: psycopg.Connection[Any], table: str, stream: str) -> int:
    """Apply one change of ``kind`` to ``stream`` in the database; returns the seq where the chain must break."""
    k = rng.randint(1, N)
    texts = _rows(db, table, stream)

    def update(expression: str, *params: Any) -> None:
        db.execute(f'UPDATE "{table}" SET record = {expression} WHERE stream = %s AND seq = %s', (*params, stream, k))

    if kind == "sql-replace":  # the classic: turn a refusal into an approval with plain SQL
        update("""replace(record, '"deny"', '"allow"')""")
        return k
    if kind == "edit-field":  # change one field, written back in canonical form as a careful forger would
        record = json.loads(texts[k - 1])
        field = rng.choice(["time", "outcome", "args", "seq", "prev", "hash", "stream"])
        if field == "args":
            record["proposed"]["args"]["amount"] += 1
        elif field == "seq":
            record["seq"] += 1
        elif field in ("prev", "hash"):
            record[field] = "0" * 63 + "1"
        else:
            record[field] = record[field] + "x"
        update("%s", canonical(record).decode())
        return k
    if kind == "edit-resealed":  # change a record and recompute its own hash: the next link (or the head) breaks
        record = json.loads(texts[k - 1])
        record["outcome"] = "allow"
        update("%s", canonical(seal(record, stream, k, record["prev"])).decode())
        _columns_of(db, table, stream, k, record)  # a careful forger keeps the columns in step with the record
        return min(k + 1, N)
    if kind == "garble":  # no longer JSON at all
        update("left(record, 20)")
        return k
    if kind == "delete":  # any row, the last one included
        db.execute(f'DELETE FROM "{table}" WHERE stream = %s AND seq = %s', (stream, k))
        return k
    if kind == "swap":  # reorder two records
        j, k = sorted(rng.sample(range(1, N + 1), 2))
        _set_seq(db, table, stream, j, -1)
        _set_seq(db, table, stream, k, j)
        _set_seq(db, table, stream, -1, k)
        return j
    if kind == "forge-append":  # a well-formed new last record; only the head (kept apart) gives it away
        last = json.loads(texts[-1])
        forged = seal(decision(100), stream, N + 1, last["hash"])
        db.execute(
            f'INSERT INTO "{table}" (stream, seq, record) VALUES (%s, %s, %s)',
            (stream, N + 1, canonical(forged).decode()),
        )
        _columns_of(db, table, stream, N + 1, forged)
        return N + 1
    if kind == "forge-insert":  # a well-formed record slipped in before record k, the rest shifted down
        for seq in range(N, k - 1, -1):
            _set_seq(db, table, stream, seq, seq + 1)
        prev = json.loads(texts[k - 2])["hash"] if k > 1 else GENESIS
        forged = seal(decision(100), stream, k, prev)
        db.execute(
            f'INSERT INTO "{table}" (stream, seq, record) VALUES (%s, %s, %s)', (stream, k, canonical(forged).decode())
        )
        _columns_of(db, table, stream, k, forged)
        return k + 1
    if kind == "forge-copy":  # replay an existing record as a new last one
        db.execute(f'INSERT INTO "{table}" (stream, seq, record) VALUES (%s, %s, %s)', (stream, N + 1, texts[k - 1]))
        _columns_of(db, table, stream, N + 1, json.loads(texts[k - 1]))
        return N + 1
    raise AssertionError(kind)


KINDS = [
    "sql-replace",
    "edit-field",
    "edit-resealed",
    "garble",
    "delete",
    "swap",
    "forge-append",
    "forge-insert",
    "forge-copy",
]


def test_every_single_change_in_the_database_is_detected(
    make_sink: SinkFactory, db: psycopg.Connection[Any], table: str
) -> None:
    rng = random.Random(20240607)
    trials = [KINDS[i % len(KINDS)] for i in range(30)]  # every kind at least three times, in random order
    rng.shuffle(trials)
    reader = make_sink()
    for i, kind in enumerate(trials):
        stream = f"t{i:02d}"
        writer = make_sink(stream)
        for n in range(1, N + 1):
            writer.write(decision(n))
        writer.close()
        assert report(reader, stream).ok
        bad = tamper(kind, rng, db, table, stream)
        found = report(reader, stream)
        assert not found.ok, f"trial {i}: {kind} went unnoticed"
        assert found.bad_seq == bad, f"trial {i}: {kind}: {found}"
    # Each stream's damage stays in its stream.
    assert all(r.ok for r in verify_sink(reader) if r.stream == "default")


# --- several writers -----------------------------------------------------------------------------------------

_WORKER = textwrap.dedent(
    """
    import sys, time
    from fsa_guard.audit.postgres import PostgresAuditSink
    url, table, start, n, who = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    sink = PostgresAuditSink(url, stream="shared", table=table)
    time.sleep(max(0.0, start - time.time()))  # everyone starts together, on a table that does not exist yet
    print(" ".join(sink.write({"who": who, "n": i}) for i in range(n)))
    sink.close()
    """
)


def test_processes_and_threads_share_one_chain(
    make_sink: SinkFactory, postgres_url: str, table: str, db: psycopg.Connection[Any]
) -> None:
    processes, per_process, threads, per_thread = 4, 50, 4, 25
    start = time.time() + 1.5  # time enough for the interpreters to start
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, postgres_url, table, str(start), str(per_process), f"p{i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    ids: list[str] = []
    errors: list[BaseException] = []

    def run(who: str, sink: PostgresAuditSink) -> None:
        time.sleep(max(0.0, start - time.time()))
        try:
            mine = [sink.write({"who": who, "n": i}) for i in range(per_thread)]
        except BaseException as exc:
            errors.append(exc)
            return
        ids.extend(mine)

    shared = make_sink("shared")
    # Some threads with a sink each (as separate guards would have), some sharing one sink, plus this thread.
    workers = [threading.Thread(target=run, args=(f"t{i}", make_sink("shared"))) for i in range(threads)]
    workers += [threading.Thread(target=run, args=(f"s{i}", shared)) for i in range(2)]
    try:
        for w in workers:
            w.start()
        run("main", shared)
        for w in workers:
            w.join()
        for child in children:
            out, err = child.communicate(timeout=60)
            assert child.returncode == 0, err
            ids.extend(out.split())
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert not errors

    total = processes * per_process + (threads + 2) * per_thread + per_thread
    assert sorted(ids, key=lambda i: int(i.split(":")[1])) == [f"shared:{n}" for n in range(1, total + 1)]
    assert verify_sink(shared) == [ChainReport("shared", True, total)]
    seqs = [r[0] for r in db.execute(f'SELECT seq FROM "{table}" WHERE stream = %s ORDER BY seq', ("shared",))]
    assert seqs == list(range(1, total + 1))
    records = list(shared.read("shared"))
    for who in [f"p{i}" for i in range(processes)]:
        assert [r["n"] for r in records if r["who"] == who] == list(range(per_process))  # each writer's order kept


# --- outages -------------------------------------------------------------------------------------------------


def test_writing_resumes_after_an_outage(make_sink: SinkFactory) -> None:
    proxy = Proxy("127.0.0.1", 5432)
    try:
        sink = make_sink(url=f"postgresql://postgres:s3cret@127.0.0.1:{proxy.port}/test?connect_timeout=2")
        assert [sink.write(decision(n)) for n in (1, 2, 3)] == ["default:1", "default:2", "default:3"]

        proxy.cut()
        for n in (4, 5):  # first on the dead connection, then trying to reconnect
            started = time.monotonic()
            with pytest.raises(AuditError, match="cannot write to the PostgreSQL audit trail") as info:
                sink.write(decision(n))
            assert time.monotonic() - started < 5
            assert "s3cret" not in str(info.value)
        with pytest.raises(AuditError, match="cannot read"):
            list(sink.read("default"))

        proxy.restore()
        assert sink.write(decision(4)) == "default:4"  # the same sink object, without being recreated
        assert verify_sink(sink) == [ChainReport("default", True, 4)]
        assert [r["proposed"]["args"]["n"] for r in sink.read("default")] == [1, 2, 3, 4]
    finally:
        proxy.cut()
