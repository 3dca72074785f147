"""The hash-chained audit trail on SQLite, JSONL and memory sinks: records, tampering, and the audit CLI."""

from __future__ import annotations

import itertools
import json
import random
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fsa_guard import Action, Guard, load_spec, open_audit
from fsa_guard.audit.base import GENESIS, verify_sink
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
