"""The hash-chained audit trail on SQLite, JSONL and memory sinks: records, tampering, and the audit CLI."""

from __future__ import annotations

import itertools
import json
import os
import random
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fsa_guard import Action, AuditError, Guard, load_spec, open_audit
from fsa_guard.audit.base import GENESIS, canonical, seal, verify_sink
from fsa_guard.cli import app

SPEC = """
fsa_guard: 1
id: audited
values:
  - id: care
    title: Care with money
    attends_to: [PAYMENTS I can account for]
norms:
  - id: big
    description: Payments above 100 wait for me.
    tools: [pay]
    when: action.args.amount > 100.0
    effect: escalate
    serves: [care]
  - id: never
    tools: [wire]
    effect: deny
    serves: [care]
"""


@pytest.fixture
def spec(tmp_path: Path):
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC)
    return load_spec(path)


def _fill(guard: Guard, n: int = 12) -> None:
    for i in range(n):
        tool = ("pay", "pay", "wire")[i % 3]
        d = guard.decide(Action(tool, {"amount": float(50 + 40 * i)}))
        if d.allowed:
            guard.report(d, ok=i % 2 == 0, error=None if i % 2 == 0 else "boom")


@pytest.mark.parametrize("scheme", ["sqlite", "jsonl", "memory"])
def test_every_decision_and_reported_outcome_is_a_chained_record(tmp_path: Path, spec, scheme: str) -> None:
    url = "memory://" if scheme == "memory" else f"{scheme}:///{tmp_path}/trail.{scheme}"
    sink = open_audit(url)
    guard = Guard(spec, audit=sink)
    d = guard.decide(Action("pay", {"amount": 20.0}))
    assert d.record_id == "default:1"
    guard.report(d, ok=True)
    _fill(guard)
    records = list(sink.read("default"))
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert records[0]["prev"] == GENESIS and all(b["prev"] == a["hash"] for a, b in itertools.pairwise(records))
    first = records[0]
    assert first["kind"] == "decision" and first["outcome"] == "allow"
    assert first["spec_id"] == "audited" and first["spec_digest"] == spec.digest
    assert first["proposed"]["tool"] == "pay" and first["proposed"]["args"] == {"amount": 20.0}
    assert first["action"] == first["proposed"] and first["findings"] == [] and first["tokens"] == {}
    assert "verify" in first["timings"] and first["time"] and first["now"]
    assert records[1] == {**records[1], "kind": "report", "decision": "default:1", "ok": True}
    failed = [r for r in records if r.get("kind") == "report" and not r["ok"]]
    assert failed and all(r["error"] == "boom" for r in failed)
    assert {r["outcome"] for r in records if r["kind"] == "decision"} == {"allow", "escalate", "deny"}
    assert [str(r) for r in verify_sink(sink)] == [f"stream 'default': {len(records)} records, chain intact"]


def _tamper_sqlite(path: Path, rng: random.Random, n: int) -> tuple[str, int]:
    db = sqlite3.connect(path)
    kind = rng.choice(["edit", "delete", "reorder", "insert"])
    seq = rng.randint(1, n)
    if kind == "edit":
        (text,) = db.execute("SELECT record FROM audit_records WHERE seq = ?", (seq,)).fetchone()
        rec = json.loads(text)
        rec["time"] = "1999-01-01T00:00:00+00:00"
        db.execute("UPDATE audit_records SET record = ? WHERE seq = ?", (json.dumps(rec), seq))
    elif kind == "delete":
        db.execute("DELETE FROM audit_records WHERE seq = ?", (seq,))
    elif kind == "reorder":
        other = seq % n + 1
        db.execute("UPDATE audit_records SET seq = -1 WHERE seq = ?", (seq,))
        db.execute("UPDATE audit_records SET seq = ? WHERE seq = ?", (seq, other))
        db.execute("UPDATE audit_records SET seq = ? WHERE seq = -1", (other,))
        seq = min(seq, other)
    else:
        (text,) = db.execute("SELECT record FROM audit_records WHERE seq = ?", (seq,)).fetchone()
        db.execute("UPDATE audit_records SET seq = seq + 1 WHERE seq >= ? ", (seq + 10_000,))  # no-op guard
        db.execute("INSERT INTO audit_records (stream, seq, record) VALUES ('default', ?, ?)", (n + 1, text))
        seq = n + 1
    db.commit()
    db.close()
    return kind, seq


def _tamper_jsonl(path: Path, rng: random.Random, n: int) -> tuple[str, int]:
    lines = path.read_text().splitlines()
    kind = rng.choice(["edit", "delete", "reorder", "insert"])
    i = rng.randrange(n)
    if kind == "edit":
        rec = json.loads(lines[i])
        rec["outcome"] = "allow" if rec.get("outcome") != "allow" else "deny"
        lines[i] = json.dumps(rec)
    elif kind == "delete":
        del lines[i]
    elif kind == "reorder":
        j = (i + 1) % n
        lines[i], lines[j] = lines[j], lines[i]
        i = min(i, j)
    else:
        lines.insert(i, lines[i])
    path.write_text("\n".join(lines) + "\n")
    return kind, i + 1


@pytest.mark.parametrize("scheme", ["sqlite", "jsonl"])
def test_any_single_edit_deletion_insertion_or_reorder_is_detected(tmp_path: Path, spec, scheme: str) -> None:
    rng = random.Random(7)
    for trial in range(25):
        path = tmp_path / f"t{trial}.{scheme}"
        sink = open_audit(f"{scheme}:///{path}")
        _fill(Guard(spec, audit=sink), 10)
        n = len(list(sink.read("default")))
        kind, seq = (_tamper_sqlite if scheme == "sqlite" else _tamper_jsonl)(path, rng, n)
        (report,) = verify_sink(open_audit(f"{scheme}:///{path}"))
        assert not report.ok, f"trial {trial}: {kind} at {seq} went unnoticed"
        if kind in ("edit", "delete", "reorder"):
            assert report.bad_seq == seq, (trial, kind, str(report))


def test_cli_audit_verify_show_and_tail(tmp_path: Path, spec) -> None:
    url = f"sqlite:///{tmp_path}/trail.db"
    guard = Guard(spec, audit=url)
    _fill(guard, 9)
    runner = CliRunner()
    ok = runner.invoke(app, ["audit", "verify", url])
    assert ok.exit_code == 0 and "chain intact" in ok.output
    shown = runner.invoke(app, ["audit", "show", url, "--outcome", "deny", "--json"])
    assert shown.exit_code == 0
    denied = [json.loads(line) for line in shown.output.splitlines()]
    assert len(denied) == 3 and all(r["outcome"] == "deny" and r["proposed"]["tool"] == "wire" for r in denied)
    limited = runner.invoke(app, ["audit", "show", url, "--tool", "pay", "--limit", "2", "--json"])
    assert [json.loads(x)["proposed"]["tool"] for x in limited.output.splitlines()] == ["pay", "pay"]
    future = runner.invoke(app, ["audit", "show", url, "--since", "2999-01-01T00:00:00Z", "--json"])
    assert future.exit_code == 0 and future.output == ""
    tail = runner.invoke(app, ["audit", "tail", url, "-n", "3", "--json"])
    all_records = list(open_audit(url).read("default"))
    assert [json.loads(x)["seq"] for x in tail.output.splitlines()] == [r["seq"] for r in all_records[-3:]]
    table = runner.invoke(app, ["audit", "show", url])
    assert "DENY" in table.output and "wire" in table.output
    shouted = runner.invoke(app, ["audit", "show", url, "--outcome", "DENY", "--json"])  # as the table prints it
    assert shouted.exit_code == 0 and shouted.output == shown.output
    typo = runner.invoke(app, ["audit", "show", url, "--outcome", "dney"])
    assert typo.exit_code == 2 and "--outcome must be allow, revise, escalate or deny, not 'dney'" in typo.output
    db = sqlite3.connect(tmp_path / "trail.db")
    db.execute("DELETE FROM audit_records WHERE seq = 4")
    db.commit()
    broken = runner.invoke(app, ["audit", "verify", url])
    assert broken.exit_code == 1 and "broken at record 4" in broken.output
    bad = runner.invoke(app, ["audit", "verify", "ftp://nowhere"])
    assert bad.exit_code == 2 and "unknown audit URL" in bad.output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["audit", "verify", "sqlite:///{tmp}/trial.db"], "no audit trail at"),
        (["audit", "show", "jsonl:///{tmp}/trail.jsonl"], "no audit trail at"),
        (["audit", "verify", "sqlite:///{tmp}/trail.db?stream=defualt"], "no stream 'defualt'; its streams: default"),
        (["approvals", "list", "--store", "sqlite:///{tmp}/sate.db"], "no store at"),
        (["approvals", "approve", "ap_1", "--store", "sqlite:///{tmp}/sate.db"], "no store at"),
    ],
)
def test_cli_commands_on_a_mistyped_trail_or_store_fail_and_create_nothing(tmp_path: Path, spec, args, says) -> None:
    """Otherwise they would create an empty file there and report that nothing is in it."""
    _fill(Guard(spec, audit=f"sqlite:///{tmp_path}/trail.db"), 1)

    def created() -> list[str]:  # besides the trail, whose -wal and -shm files come and go
        return sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("trail.db"))

    before = created()
    result = CliRunner().invoke(app, [a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.exit_code == 2 and says in " ".join(result.output.split())
    assert created() == before


def test_an_audit_sink_that_cannot_write_denies_and_releases_the_budget(tmp_path: Path, spec) -> None:
    trail = tmp_path / "trail.jsonl"
    guard = Guard(spec, audit=f"jsonl:///{trail}")
    assert guard.decide(Action("pay", {"amount": 5.0})).outcome == "allow"
    trail.unlink()
    trail.mkdir()  # the trail's path is now a directory: writing fails
    d = guard.decide(Action("pay", {"amount": 5.0}))
    assert d.outcome == "deny" and d.finding_ids()[-1] == "audit-unavailable"
    assert "could not be recorded" in d.findings[-1].message
    trail.rmdir()
    assert guard.decide(Action("pay", {"amount": 5.0})).outcome == "allow"  # and it recovers by itself


# -- damage a trail survives, damage it shows ----------------------------------------------------------------


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_jsonl_an_unfinished_line_is_cut_off_and_a_whole_record_kept(tmp_path: Path, spec) -> None:
    path = tmp_path / "trail.jsonl"
    guard = Guard(spec, audit=f"jsonl:///{path}")
    _fill(guard, 3)
    whole = _lines(path)
    with open(path, "ab") as f:  # a writer killed mid-write (or a write cut short by a full disk)
        f.write(b'{"stream":"default","seq":99,"outc')
    guard.decide(Action("pay", {"amount": 1.0}))
    assert _lines(path)[: len(whole)] == whole and len(_lines(path)) == len(whole) + 1
    assert all(r.ok for r in verify_sink(open_audit(f"jsonl:///{path}")))
    # a record written whole but for its newline is kept, and the next one goes on the line after it
    text = path.read_bytes()
    path.write_bytes(text[:-1])
    guard.decide(Action("pay", {"amount": 2.0}))
    assert path.read_bytes().startswith(text) and all(r.ok for r in verify_sink(open_audit(f"jsonl:///{path}")))


def test_jsonl_heads_are_a_log_kept_short_that_goes_on_from_the_heads_of_earlier_versions(tmp_path: Path) -> None:
    from fsa_guard.audit.jsonl import _HEADS_MAX

    path, heads = tmp_path / "trail.jsonl", tmp_path / "trail.jsonl.head"
    sink = open_audit(f"jsonl:///{path}")
    for i in range(3):
        sink.write({"kind": "decision", "n": i})
    assert [json.loads(line) for line in _lines(heads)][-1] == {
        "default": [3, json.loads(_lines(path)[-1])["hash"]] * 2
    }
    # earlier versions kept the heads as one JSON object without a newline, replaced on every write
    last = json.loads(_lines(path)[-1])
    heads.write_text(json.dumps({"default": [3, last["hash"]]}, sort_keys=True))
    for i in range(3, 600):  # far past the log's limit: it is rewritten as one line, and goes on
        sink.write({"kind": "decision", "n": i})
        assert heads.stat().st_size <= _HEADS_MAX
    [report] = verify_sink(open_audit(f"jsonl:///{path}"))
    assert report.ok and report.records == 600
    path.write_text("\n".join(_lines(path)[:-1]) + "\n")  # the last record cut off, its head kept
    [report] = verify_sink(open_audit(f"jsonl:///{path}"))
    assert (report.ok, report.reason) == (False, "records 600 to 600 are missing from the end")


def test_jsonl_a_head_append_cut_short_is_not_read_and_the_next_writer_mends_it(tmp_path: Path) -> None:
    path, heads = tmp_path / "trail.jsonl", tmp_path / "trail.jsonl.head"
    sink = open_audit(f"jsonl:///{path}")
    for i in range(3):
        sink.write({"kind": "decision", "n": i})
    with open(heads, "ab") as f:  # a writer killed while it named its next record as pending
        f.write(b'{"default":[3,"')
    assert all(r.ok for r in verify_sink(open_audit(f"jsonl:///{path}")))
    sink.write({"kind": "decision", "n": 3})
    assert all(json.loads(line) for line in _lines(heads)) and heads.read_bytes().endswith(b"\n")
    [report] = verify_sink(open_audit(f"jsonl:///{path}"))
    assert report.ok and report.records == 4
    # a line that is not a head anywhere else in the log is damage, not an unfinished append
    kept = heads.read_bytes()
    heads.write_bytes(b'{"default":[1,"x"]\n' + kept)
    [report] = verify_sink(open_audit(f"jsonl:///{path}"))
    assert not report.ok and report.reason.endswith("head (its last seq and hash, kept apart) cannot be read")
    # and so is a last line that is JSON but not a head: the next writer does not cut it off
    heads.write_bytes(kept + b"[]")
    sink.write({"kind": "decision", "n": 4})
    [report] = verify_sink(open_audit(f"jsonl:///{path}"))
    assert not report.ok and report.reason.endswith("cannot be read")


def test_jsonl_with_fsync_the_head_naming_a_record_is_on_disk_before_the_record(tmp_path: Path, monkeypatch) -> None:
    synced: list[str] = []
    real = os.fsync
    monkeypatch.setattr(
        os, "fsync", lambda fd: (synced.append(Path(os.readlink(f"/proc/self/fd/{fd}")).name), real(fd))
    )
    sink = open_audit(f"jsonl:///{tmp_path}/trail.jsonl?fsync=1")
    sink.write({"kind": "decision", "n": 1})
    sink.write({"kind": "decision", "n": 2})
    assert synced == ["trail.jsonl.head", "trail.jsonl"] * 2


def test_jsonl_fsync_in_the_url_is_honoured_and_checked(tmp_path: Path) -> None:
    assert open_audit(f"jsonl:///{tmp_path}/a.jsonl?fsync=1").fsync is True  # type: ignore[attr-defined]
    assert open_audit(f"jsonl:///{tmp_path}/a.jsonl").fsync is False  # type: ignore[attr-defined]
    with pytest.raises(AuditError, match=r"\?fsync='often': write 1"):
        open_audit(f"jsonl:///{tmp_path}/a.jsonl?fsync=often")


def test_jsonl_a_key_given_twice_in_a_line_is_tampering(tmp_path: Path, spec) -> None:
    # json.loads keeps the last value, so the hash would still match while grep and jq see the first
    path = tmp_path / "trail.jsonl"
    _fill(Guard(spec, audit=f"jsonl:///{path}"), 3)
    lines = _lines(path)
    lines[2] = '{"outcome":"allow",' + lines[2][1:]
    path.write_text("\n".join(lines) + "\n")
    [report] = verify_sink(open_audit(f"jsonl:///{path}"))
    assert (report.ok, report.bad_seq) == (False, 3) and 'key "outcome" is given twice' in report.reason


@pytest.mark.parametrize("scheme", ["sqlite", "jsonl"])
def test_records_cut_off_with_their_head_removed_still_show(tmp_path: Path, spec, scheme: str) -> None:
    url = f"{scheme}:///{tmp_path}/trail.{scheme}"
    _fill(Guard(spec, audit=url), 6)
    if scheme == "jsonl":
        path = tmp_path / "trail.jsonl"
        path.write_text("\n".join(_lines(path)[:3]) + "\n")
        (tmp_path / "trail.jsonl.head").unlink()
    else:
        db = sqlite3.connect(tmp_path / "trail.sqlite")
        db.execute("DELETE FROM audit_records WHERE seq > 3")
        db.execute("DELETE FROM audit_heads")
        db.commit()
        db.close()
    [report] = verify_sink(open_audit(url))
    assert not report.ok and report.reason.startswith("the stream has records but no head")


def test_jsonl_a_record_of_a_stream_no_writer_headed_shows(tmp_path: Path, spec) -> None:
    # every writer heads a stream before its first record, so a stream with records and no head was forged
    path = tmp_path / "trail.jsonl"
    _fill(Guard(spec, audit=f"jsonl:///{path}"), 2)
    forged = seal({"kind": "decision", "outcome": "allow"}, "payments", 1, GENESIS)
    with open(path, "ab") as f:
        f.write(canonical(forged) + b"\n")
    reports = {r.stream: r for r in verify_sink(open_audit(f"jsonl:///{path}"))}
    assert reports["default"].ok and not reports["payments"].ok


def test_jsonl_a_record_cut_short_by_a_killed_writer_is_not_read_as_one(tmp_path: Path, spec) -> None:
    path = tmp_path / "trail.jsonl"
    _fill(Guard(spec, audit=f"jsonl:///{path}"), 2)
    with open(path, "ab") as f:  # what a writer killed in the middle of a large write leaves
        f.write(b'{"stream":"default","seq":3,"ki')
    assert all(r.ok for r in verify_sink(open_audit(f"jsonl:///{path}")))


def test_jsonl_one_file_through_a_link_keeps_one_head(tmp_path: Path, spec) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    _fill(Guard(spec, audit=f"jsonl:///{tmp_path}/real/trail.jsonl"), 2)
    _fill(Guard(spec, audit=f"jsonl:///{tmp_path}/link/trail.jsonl"), 2)
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["trail.jsonl", "trail.jsonl.head"]
    assert all(r.ok for r in verify_sink(open_audit(f"jsonl:///{tmp_path}/real/trail.jsonl")))


def test_sqlite_a_query_column_changed_apart_from_its_record_shows(tmp_path: Path, spec) -> None:
    _fill(Guard(spec, audit=f"sqlite:///{tmp_path}/trail.db"), 3)
    db = sqlite3.connect(tmp_path / "trail.db")
    [(seq,)] = db.execute("SELECT seq FROM audit_records WHERE outcome = 'deny'").fetchall()
    db.execute("UPDATE audit_records SET outcome = 'allow' WHERE seq = ?", (seq,))  # what a query would show
    db.commit()
    [report] = verify_sink(open_audit(f"sqlite:///{tmp_path}/trail.db"))
    assert (report.ok, report.bad_seq) == (False, seq) and "column and its record differ" in report.reason


@pytest.mark.parametrize("scheme", ["sqlite", "jsonl"])
def test_a_trail_being_written_verifies(tmp_path: Path, spec, scheme: str) -> None:
    import threading

    url = f"{scheme}:///{tmp_path}/trail.{scheme}"
    guard = Guard(spec, audit=url)
    done = threading.Event()

    def write() -> None:
        while not done.is_set():
            guard.decide(Action("pay", {"amount": 1.0}))

    writers = [threading.Thread(target=write) for _ in range(2)]
    for w in writers:
        w.start()
    try:
        reader = open_audit(url)
        reports = [r for _ in range(40) for r in verify_sink(reader)]  # type: ignore[arg-type]
    finally:
        done.set()
        for w in writers:
            w.join()
    assert all(r.ok for r in reports), [str(r) for r in reports if not r.ok][:1]


@pytest.mark.parametrize("scheme", ["sqlite", "jsonl", "memory"])
def test_a_file_name_that_is_not_valid_utf8_is_recorded_as_it_was(tmp_path: Path, spec, scheme: str) -> None:
    url = "memory://" if scheme == "memory" else f"{scheme}:///{tmp_path}/trail.{scheme}"
    sink = open_audit(url)
    name = b"caf\xe9.txt".decode("utf-8", "surrogateescape")  # as os.listdir gives it
    guard = Guard(spec, audit=sink)
    d = guard.decide(Action("delete", {"path": name}))
    assert d.record_id == "default:1"
    # a surrogate pair held as two code points is recorded as the character it stands for
    assert guard.decide(Action("delete", {"path": "\ud83d\ude00.txt"})).record_id == "default:2"
    first, second = list(sink.read("default"))  # type: ignore[attr-defined]
    stored = "\ud83d\ude00.txt" if scheme == "memory" else "\U0001f600.txt"  # the memory sink keeps the objects
    assert first["proposed"]["args"]["path"] == name and second["proposed"]["args"]["path"] == stored
    assert all(r.ok for r in verify_sink(sink))  # type: ignore[arg-type]


def test_cli_audit_merges_streams_in_time_and_shows_control_characters(tmp_path: Path, spec) -> None:
    path = tmp_path / "trail.jsonl"
    times = iter(f"2026-03-01T0{h}:00:00+00:00" for h in range(10))
    for stream in ("a", "b", "a"):
        sink = open_audit(f"jsonl:///{path}?stream={stream}")
        record = {"kind": "decision", "time": next(times), "outcome": "deny", "proposed": {"tool": f"t-{stream}"}}
        sink.write(record)
    open_audit(f"jsonl:///{path}?stream=b").write(
        {"kind": "report", "time": next(times), "tool": "wire", "ok": False, "error": "x\x1b[1A\x1b[2Kfake ALLOW"}
    )
    runner = CliRunner()
    tail = runner.invoke(app, ["audit", "tail", f"jsonl:///{path}", "-n", "2", "--json"])
    assert [(r["stream"], r["seq"]) for r in map(json.loads, tail.output.splitlines())] == [("a", 2), ("b", 2)]
    shown = runner.invoke(app, ["audit", "show", f"jsonl:///{path}"])
    assert "\x1b[1A" not in shown.output and "\\x1b[1A" in shown.output
    open_audit(f"jsonl:///{path}?stream=ops[1]").write({"kind": "decision", "time": "2000", "outcome": "deny"})
    assert "ops[1]:1 " in runner.invoke(app, ["audit", "show", f"jsonl:///{path}"]).output  # brackets as they are
    since = runner.invoke(app, ["audit", "show", f"jsonl:///{path}", "--since", "2026-03-01T02:00", "--json"])
    assert [json.loads(x)["time"][:13] for x in since.output.splitlines()] == ["2026-03-01T02", "2026-03-01T03"]


def test_cli_audit_verify_refuses_an_sqlite_file_that_is_not_a_trail(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "state.db")
    db.execute("CREATE TABLE spend (id TEXT)")
    db.commit()
    db.close()
    result = CliRunner().invoke(app, ["audit", "verify", f"sqlite:///{tmp_path}/state.db"])
    assert result.exit_code == 2 and "not an audit trail" in result.output
    tables = sqlite3.connect(tmp_path / "state.db").execute("SELECT name FROM sqlite_master").fetchall()
    assert tables == [("spend",)]


class _Killed(BaseException):
    """A writer process killed at this point."""


def test_jsonl_writers_killed_one_after_another_leave_a_sound_trail_and_a_forged_record_shows(
    tmp_path: Path, spec
) -> None:
    from fsa_guard.audit.jsonl import JSONLAuditSink

    class KilledAfterTheRecord(JSONLAuditSink):
        def _set_head(self, head: list) -> None:  # type: ignore[type-arg]
            if head[0] == head[2]:  # the head would move to the record just appended
                raise _Killed
            super()._set_head(head)

    path = tmp_path / "trail.jsonl"
    _fill(Guard(spec, audit=f"jsonl:///{path}"), 3)
    for _ in range(2):  # two writers in a row, each killed between its record and its head
        with pytest.raises(_Killed):
            KilledAfterTheRecord(path).write({"kind": "decision", "time": "t", "outcome": "deny"})
    [report] = verify_sink(open_audit(f"jsonl:///{path}"))
    assert report.ok and report.records == len(_lines(path))
    Guard(spec, audit=f"jsonl:///{path}").decide(Action("pay", {"amount": 1.0}))  # the next writer goes on
    assert all(r.ok for r in verify_sink(open_audit(f"jsonl:///{path}")))
    # one well-formed record appended by someone else matches neither the head nor the record it was waiting for
    last = json.loads(_lines(path)[-1])
    forged = seal({"kind": "decision", "outcome": "allow"}, "default", last["seq"] + 1, last["hash"])
    with open(path, "ab") as f:
        f.write(canonical(forged) + b"\n")
    [report] = verify_sink(open_audit(f"jsonl:///{path}"))
    assert not report.ok and report.bad_seq == last["seq"] + 1


def test_jsonl_a_record_written_whose_head_cannot_move_on_is_still_the_decision_record(tmp_path: Path, spec) -> None:
    from fsa_guard.audit.jsonl import JSONLAuditSink

    class DiskFullAfterTheRecord(JSONLAuditSink):
        def _set_head(self, head: list) -> None:  # type: ignore[type-arg]
            if head[0] == head[2]:
                raise OSError(28, "No space left on device")
            super()._set_head(head)

    path = tmp_path / "trail.jsonl"
    guard = Guard(spec, audit=DiskFullAfterTheRecord(path))
    d = guard.decide(Action("pay", {"amount": 1.0}))
    # the pending head already names the record, so the trail vouches for it: the call is not refused for it
    assert d.outcome == "allow" and d.record_id == "default:1"
    assert [json.loads(line)["outcome"] for line in _lines(path)] == ["allow"]
    _fill(Guard(spec, audit=f"jsonl:///{path}"), 3)
    [report] = verify_sink(open_audit(f"jsonl:///{path}"))
    assert report.ok and report.records == len(_lines(path)) > 4


def test_cli_audit_reads_a_relative_sqlite_url(tmp_path: Path, spec, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _fill(Guard(spec, audit="sqlite:///audit.db"), 2)
    runner = CliRunner()
    for args in (["verify"], ["show"], ["tail", "-n", "1"]):
        result = runner.invoke(app, ["audit", *args, "sqlite:///audit.db"])
        assert result.exit_code == 0, result.output
    assert "chain intact" in runner.invoke(app, ["audit", "verify", "sqlite:///audit.db"]).output
