"""How a Guard finds its store and audit trail, remembered entities, and failing closed on state."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fsa_guard import (
    Action,
    AuditError,
    Decision,
    Guard,
    MemoryAuditSink,
    SpecError,
    StoreError,
    load_spec,
    open_audit,
    open_store,
    verify_sink,
)
from fsa_guard.audit.jsonl import JSONLAuditSink
from fsa_guard.audit.sqlite import SQLiteAuditSink
from fsa_guard.store.memory import MemoryStore
from fsa_guard.store.sqlite import SQLiteStore

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

PAYEES = """
fsa_guard: 1
id: payees
values:
  - id: careful-money
    title: Careful stewardship of money
    attends_to: [PAYEES I know and chose]
remember:
  - id: payees
    description: Accounts my agent has paid.
    tools: [send_money]
    value: action.args.recipient
    serves: [careful-money]
  - id: recent
    description: Whom my agent wrote to this week.
    tools: [send_email]
    value: action.args.to
    window: 7d
norms:
  - id: only-known-payees
    description: Money goes only to payees I have paid before or named in my request.
    tools: [send_money]
    when: '!(action.args.recipient in state.remembered.payees) && !request.contains(action.args.recipient)'
    effect: deny
    serves: [careful-money]
  - id: many-new-recipients
    tools: [send_email]
    when: 'size(state.remembered.recent) >= 2 && !(action.args.to in state.remembered.recent)'
    effect: escalate
    serves: [careful-money]
"""


@pytest.fixture
def payees_spec(tmp_path: Path):
    path = tmp_path / "payees.yaml"
    path.write_text(PAYEES)
    return load_spec(path)


@pytest.mark.parametrize("store", ["memory://", "sqlite"])
def test_payees_paid_before_are_remembered_when_the_call_ran(tmp_path: Path, payees_spec, store: str) -> None:
    url = store if store == "memory://" else f"sqlite:///{tmp_path}/state.db"
    guard = Guard(payees_spec, store=url, clock=lambda: T0)
    pay = Action("send_money", {"recipient": "DE89", "amount": 10.0}, request="pay DE89 for the sofa", now=T0)
    first = guard.decide(pay)
    assert first.outcome == "allow"
    again = Action("send_money", {"recipient": "DE89", "amount": 10.0}, request="settle up", now=T0)
    assert guard.decide(again).outcome == "deny"  # not remembered: the first call has not been reported as run
    guard.report(first, ok=False)
    assert guard.decide(again).outcome == "deny"  # it failed: nothing to remember
    guard.report(guard.decide(pay), ok=True)
    assert guard.decide(again).outcome == "allow"
    assert guard.decide(Action("send_money", {"recipient": "XX1", "amount": 1.0}, now=T0)).outcome == "deny"
    if store == "sqlite":  # another process (a new guard on the same file) sees it too
        other = Guard(payees_spec, store=url)
        assert other.decide(again).outcome == "allow"


def test_a_decision_read_back_from_json_reports_like_the_original(tmp_path: Path, payees_spec) -> None:
    """An adapter that checkpoints the decision (to_dict) and reports the copy after the tool ran must commit
    its budget reservation and remember what it acted on, and the report is recorded under the decision."""
    path = tmp_path / "paid.yaml"
    path.write_text(
        PAYEES + "budgets:\n  - id: daily\n    tools: [send_money]\n    measure: action.args.amount\n"
        "    limit: 100\n    window: 1d\n"
    )
    clock = [T0]
    sink = JSONLAuditSink(tmp_path / "audit")
    guard = Guard(load_spec(path), clock=lambda: clock[0], audit=sink, reservation_ttl=60)
    pay = Action("send_money", {"recipient": "DE89", "amount": 60.0}, request="pay DE89")
    decision = guard.decide(pay)
    copy = Decision.from_dict(json.loads(json.dumps(decision.to_dict())))
    assert decision.reservations and decision.remember and decision.record_id
    kept = ("reservations", "remember", "record_id")
    assert [getattr(copy, f) for f in kept] == [getattr(decision, f) for f in kept]
    guard.report(copy, ok=True)
    clock[0] = T0 + timedelta(minutes=10)  # past the reservation's ttl: only a committed amount still counts
    assert guard.store.usage("daily", 86400, clock[0].timestamp()) == 60.0
    assert guard.decide(pay).outcome == "deny"  # 60 more would exceed 100 a day
    assert guard.decide(Action("send_money", {"recipient": "DE89", "amount": 1.0})).outcome == "allow"  # remembered
    reports = [r for r in sink.read("default") if r["kind"] == "report"]
    assert [r["decision"] for r in reports] == [decision.record_id]


def test_distinct_recipients_within_a_window(payees_spec) -> None:
    guard = Guard(payees_spec)

    def send(to: str, at: datetime) -> str:
        d = guard.decide(Action("send_email", {"to": to}, now=at))
        if d.allowed:
            guard.report(d, ok=True)
        return d.outcome

    assert [send("a@x", T0), send("b@x", T0), send("c@x", T0), send("a@x", T0)] == [
        "allow",
        "allow",
        "escalate",
        "allow",
    ]
    assert send("c@x", T0 + timedelta(days=8)) == "allow"  # a week later the earlier recipients have left the window


def test_store_and_audit_by_url_argument_environment_spec_and_state_dir(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("FSA_GUARD_STORE", raising=False)
    monkeypatch.delenv("FSA_GUARD_AUDIT", raising=False)
    monkeypatch.delenv("FSA_GUARD_STATE_DIR", raising=False)
    base = tmp_path / "base.yaml"
    base.write_text(
        "fsa_guard: 1\nid: base\nstorage:\n  store: sqlite:///state/spec.db\n  audit: jsonl:///state/audit.jsonl\n"
    )
    plain = tmp_path / "plain.yaml"
    plain.write_text("fsa_guard: 1\nid: plain\n")
    # the spec's storage section, its relative paths read from the spec file's folder
    g = Guard.from_files(base)
    assert isinstance(g.store, SQLiteStore) and g.store.path == tmp_path / "state" / "spec.db"
    assert isinstance(g.audit, JSONLAuditSink) and g.audit.path == tmp_path / "state" / "audit.jsonl"
    # the environment beats the spec
    monkeypatch.setenv("FSA_GUARD_STORE", f"sqlite:///{tmp_path}/env.db")
    assert Guard.from_files(base).store.path == tmp_path / "env.db"
    # an argument beats both
    assert isinstance(Guard.from_files(base, store="memory://").store, MemoryStore)
    monkeypatch.delenv("FSA_GUARD_STORE")
    # with nothing configured: a state directory gives SQLite files there; without one, memory and no audit
    g = Guard.from_files(plain, state_dir=tmp_path / "dir")
    assert g.store.path == tmp_path / "dir" / "state.db"
    assert isinstance(g.audit, SQLiteAuditSink) and g.audit.path == tmp_path / "dir" / "audit.db"
    monkeypatch.setenv("FSA_GUARD_STATE_DIR", str(tmp_path / "envdir"))
    assert Guard.from_files(plain).store.path == tmp_path / "envdir" / "state.db"
    monkeypatch.delenv("FSA_GUARD_STATE_DIR")
    g = Guard.from_files(plain)
    assert isinstance(g.store, MemoryStore) and g.audit is None


def test_a_later_layer_cannot_move_storage(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("fsa_guard: 1\nid: base\nstorage:\n  audit: sqlite:///audit.db\n")
    (tmp_path / "me.yaml").write_text(
        "fsa_guard: 1\nid: me\nextends: [base.yaml]\nstorage:\n  audit: jsonl:///mine.jsonl\n  store: memory://\n"
    )
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "me.yaml")
    (p,) = info.value.problems
    assert p.key == "storage.audit" and p.line == 5 and "cannot move it" in p.message and p.code == "layer-replaces"
    (tmp_path / "ok.yaml").write_text("fsa_guard: 1\nid: ok\nextends: [base.yaml]\nstorage:\n  store: memory://\n")
    assert load_spec(tmp_path / "ok.yaml").resolved.storage["audit"] == f"sqlite:///{tmp_path}/audit.db"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ftp://x", "unknown store URL 'ftp://x': use memory://"),
        ("sqlite://", "names no file"),
        ("redis://:secret@127.0.0.1:1/0?prefix=x", None),  # lazily connected: no error until used
    ],
)
def test_store_urls(url: str, expected: str | None) -> None:
    if expected is None:
        store = open_store(url)
        with pytest.raises(StoreError) as info:
            store.usage("k", 60.0, 0.0)
        assert "secret" not in str(info.value)
        return
    with pytest.raises(StoreError, match=expected):
        open_store(url)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://:secret@127.0.0.1:6379/0?prefx=a", "unknown parameter 'prefx' .*; did you mean 'prefix'\\?"),
        (
            "sqlite:///state.db?timeout=5",
            "sqlite:///state.db: unknown parameter 'timeout' \\(it takes no parameters\\)",
        ),
        ("memory://?prefix=a", "unknown parameter 'prefix'"),
    ],
)
def test_a_misspelt_store_url_parameter_is_refused_when_the_store_opens(url: str, expected: str) -> None:
    # redis-py would take it as a connection option and fail on every decision; SQLite would ignore it
    with pytest.raises(StoreError, match=expected) as info:
        open_store(url)
    assert "secret" not in str(info.value)


def test_redis_urls_keep_taking_redis_py_options(redis_url: str) -> None:
    store = open_store(f"{redis_url}?prefix=fsa-test-opts&socket_keepalive=true&health_check_interval=5&timeout=1")
    assert store.usage("k", 60.0, 0.0) == 0.0
    store.close()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "sqlite:///{tmp}/audit.db?strem=ops",
            "unknown parameter 'strem' \\(it takes stream\\); did you mean 'stream'",
        ),
        ("jsonl:///{tmp}/audit.jsonl?fsnyc=1", "unknown parameter 'fsnyc' \\(it takes fsync, stream\\)"),
        ("memory://?stream=ops&x=1", "unknown parameter 'x'"),
    ],
)
def test_a_misspelt_audit_url_parameter_is_refused_when_the_sink_opens(tmp_path: Path, url: str, expected: str) -> None:
    # it would be ignored: records going to the default stream, or a trail not synced that was asked to be
    with pytest.raises(AuditError, match=expected):
        open_audit(url.replace("{tmp}", str(tmp_path)))
    assert list(tmp_path.iterdir()) == []


def test_a_store_that_fails_denies_with_store_unavailable(tmp_path: Path, payees_spec) -> None:
    spec_path = tmp_path / "b.yaml"
    spec_path.write_text("fsa_guard: 1\nid: b\nbudgets:\n  - id: calls\n    tools: [t]\n    limit: 5\n    window: 1h\n")
    guard = Guard(load_spec(spec_path), store="redis://127.0.0.1:1/0?timeout=0.2")  # nothing listens there
    d = guard.decide(Action("t", {}))
    assert d.outcome == "deny" and d.finding_ids() == ["store-unavailable"]
    assert "Budget state could not be checked" in d.findings[0].message


BUDGET = "fsa_guard: 1\nid: b\nbudgets:\n  - id: calls\n    tools: [t]\n    limit: 100\n    window: 1h\n"


def test_redis_going_away_denies_with_store_unavailable_and_coming_back_resumes(
    tmp_path: Path, redis_prefix: str
) -> None:
    from proxy import Proxy

    (tmp_path / "b.yaml").write_text(BUDGET)
    proxy = Proxy("127.0.0.1", 6379)
    try:
        guard = Guard.from_files(tmp_path / "b.yaml", store=f"redis://127.0.0.1:{proxy.port}/0?prefix={redis_prefix}")
        d = guard.decide(Action("t", {}))
        assert d.outcome == "allow"
        guard.report(d, ok=True)
        proxy.cut()
        down = guard.decide(Action("t", {}))
        assert down.outcome == "deny" and down.finding_ids() == ["store-unavailable"]
        proxy.restore()
        back = guard.decide(Action("t", {}))
        assert back.outcome == "allow"
        assert guard.store.usage("calls", 3600.0, datetime.now(UTC).timestamp()) == 2.0  # the earlier spend held
    finally:
        proxy.cut()


def test_postgres_going_away_denies_with_audit_unavailable_and_coming_back_resumes(
    tmp_path: Path, postgres_url: str
) -> None:
    import uuid

    import psycopg
    from proxy import Proxy

    from fsa_guard.audit.postgres import PostgresAuditSink

    (tmp_path / "b.yaml").write_text(BUDGET)
    table = f"fsa_audit_{uuid.uuid4().hex[:10]}"
    proxy = Proxy("127.0.0.1", 5432)
    try:
        sink = PostgresAuditSink(f"postgresql://postgres@127.0.0.1:{proxy.port}/test?connect_timeout=2", table=table)
        guard = Guard.from_files(tmp_path / "b.yaml", audit=sink)
        assert guard.decide(Action("t", {})).outcome == "allow"
        proxy.cut()
        down = guard.decide(Action("t", {}))
        assert down.outcome == "deny" and down.finding_ids() == ["audit-unavailable"]
        assert guard.store.usage("calls", 3600.0, datetime.now(UTC).timestamp()) == 1.0  # its reservation released
        proxy.restore()
        assert guard.decide(Action("t", {})).outcome == "allow"
        (report,) = [r for r in verify_sink(sink) if r.stream == "default"]
        assert report.ok and report.records == 2
    finally:
        proxy.cut()
        with psycopg.connect(postgres_url, autocommit=True) as db:
            db.execute(f"DROP TABLE IF EXISTS {table}, {table}_heads")


def test_guarded_tools_record_their_decisions_and_outcomes(tmp_path: Path) -> None:
    from fsa_guard.testing import RecordingAuditSink

    (tmp_path / "b.yaml").write_text(BUDGET)
    sink = RecordingAuditSink()
    guard = Guard.from_files(tmp_path / "b.yaml", audit=sink)

    @guard.tool
    def t(fail: bool = False) -> str:
        if fail:
            raise RuntimeError("disk full")
        return "done"

    t()
    with pytest.raises(RuntimeError):
        t(fail=True)
    assert sink.outcomes() == ["allow", "allow"]
    assert [(r["decision"], r["ok"], r["error"]) for r in sink.reports()] == [
        ("default:1", True, None),
        ("default:3", False, "error: disk full"),
    ]


def test_audit_false_keeps_no_trail_whatever_the_environment_says(tmp_path, monkeypatch) -> None:
    from fsa_guard import Action, Guard, load_spec

    monkeypatch.setenv("FSA_GUARD_AUDIT", f"jsonl:///{tmp_path}/audit.jsonl")
    spec = tmp_path / "spec.yaml"
    spec.write_text("fsa_guard: 1\n")
    assert Guard(load_spec(spec)).audit is not None
    guard = Guard(load_spec(spec), audit=False)
    assert guard.audit is None and guard.decide(Action("x")).outcome == "allow"
    assert not (tmp_path / "audit.jsonl").exists() or (tmp_path / "audit.jsonl").read_text() == ""


SPEND = (
    "fsa_guard: 1\nid: s\nbudgets:\n"
    "  - {id: daily, tools: [pay], measure: action.args.amount, limit: 100, window: 1d}\n"
    "remember:\n  - {id: payees, tools: [pay], value: action.args.to}\n"
)


def test_a_spend_the_store_missed_while_down_is_sent_again_before_the_next_decision(
    tmp_path: Path, redis_prefix: str
) -> None:
    from proxy import Proxy

    (tmp_path / "s.yaml").write_text(SPEND)
    proxy = Proxy("127.0.0.1", 6379)
    clock = [T0]
    try:
        url = f"redis://127.0.0.1:{proxy.port}/0?prefix={redis_prefix}&timeout=0.5"
        guard = Guard.from_files(tmp_path / "s.yaml", store=url, clock=lambda: clock[0], reservation_ttl=60)
        first = guard.decide(Action("pay", {"amount": 60, "to": "landlord"}))
        assert first.outcome == "allow"
        proxy.cut()
        guard.report(first, ok=True)  # the money left, but the store did not hear of it
        # while it cannot be sent, a call that reads the store is refused; one that does not goes on
        waiting = guard.decide(Action("pay", {"amount": 1, "to": "plumber"}))
        assert waiting.outcome == "deny" and waiting.finding_ids() == ["store-unavailable"]
        assert "not in the store yet" in waiting.findings[0].message
        assert guard.decide(Action("look_up", {})).outcome == "allow"
        proxy.restore()
        clock[0] = T0 + timedelta(minutes=2)  # the reservation has expired meanwhile
        second = guard.decide(Action("pay", {"amount": 60, "to": "plumber"}))
        assert second.outcome == "deny" and second.finding_ids() == ["daily"]  # 120 would be over 100 a day
        assert guard.store.usage("daily", 86400.0, clock[0].timestamp()) == 60.0
        assert guard.store.recall("remember:payees", None, clock[0].timestamp()) == ['"landlord"']
    finally:
        proxy.cut()


class _UnreadableStore(MemoryStore):
    def usage(self, key: str, window_s: float, now: float) -> float:
        raise ValueError("row 7 is corrupt")


def test_a_store_that_raises_anything_is_unavailable_not_a_bad_action(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(
        SPEND.replace(
            "remember:",
            "norms:\n  - {id: n, tools: [pay], when: 'state.budgets.daily.used > 50.0', effect: deny}\nremember:",
        )
    )
    d = Guard.from_files(tmp_path / "s.yaml", store=_UnreadableStore()).decide(Action("pay", {"amount": 5, "to": "x"}))
    assert d.outcome == "deny" and d.finding_ids() == ["store-unavailable"]
    assert "ValueError: row 7 is corrupt" in d.findings[0].message


@pytest.mark.parametrize("ttl", [0, -5.0, float("nan"), float("inf")])
def test_reservations_must_hold_for_some_time(tmp_path: Path, ttl: float) -> None:
    (tmp_path / "s.yaml").write_text(SPEND)
    with pytest.raises(ValueError, match="reservation_ttl must be a finite number of seconds above 0"):
        Guard.from_files(tmp_path / "s.yaml", reservation_ttl=ttl)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open files through /proc")
def test_threads_that_come_and_go_do_not_keep_sqlite_connections_open(tmp_path: Path) -> None:
    # LangGraph runs each step on a thread of its own: one connection kept per finished thread would use up
    # the process's file descriptors, and every decision would then be denied
    import threading

    (tmp_path / "s.yaml").write_text(SPEND)
    guard = Guard.from_files(tmp_path / "s.yaml", state_dir=tmp_path / "state")
    outcomes: list[str] = []

    def step() -> None:
        outcomes.append(guard.decide(Action("pay", {"amount": 0.01, "to": "x"})).outcome)

    def open_files() -> int:
        return len(list(Path("/proc/self/fd").iterdir()))

    for _ in range(5):
        step()
    before = open_files()
    for _ in range(200):
        thread = threading.Thread(target=step)
        thread.start()
        thread.join()
    assert open_files() <= before + 4 and outcomes == ["allow"] * 205


class _SizedSink(MemoryAuditSink):
    def __len__(self) -> int:  # empty at first, so falsy
        return len(self.records)


class _SizedStore(MemoryStore):
    def __len__(self) -> int:
        return 0


def test_a_sink_or_store_of_ones_own_that_is_empty_is_still_used(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("FSA_GUARD_AUDIT", raising=False)
    monkeypatch.delenv("FSA_GUARD_STORE", raising=False)
    (tmp_path / "s.yaml").write_text(SPEND)
    sink, store = _SizedSink(), _SizedStore()
    guard = Guard.from_files(tmp_path / "s.yaml", audit=sink, store=store)
    assert guard.audit is sink and guard.store is store
    d = guard.decide(Action("pay", {"amount": 5, "to": "x"}))
    assert d.record_id == "default:1" and len(sink) == 1


class _ForgetfulOnce(MemoryStore):
    """A store whose first note of a remembered entity fails, as a blip would."""

    failed = False

    def remember(self, key: str, entity: str, now: float) -> None:
        if not self.failed:
            self.failed = True
            raise ConnectionError("the store blinked")
        super().remember(key, entity, now)


def test_an_answer_is_verified_only_once_what_earlier_calls_noted_is_in_the_store(tmp_path: Path) -> None:
    from fsa_guard import Answer

    (tmp_path / "s.yaml").write_text(
        "fsa_guard: 1\nremember:\n  - {id: payees, tools: [pay], value: action.args.to}\nnorms:\n"
        "  - {id: one-payee, tools: [pay], when: 'size(state.remembered.payees) > 0 && "
        "!(action.args.to in state.remembered.payees)', effect: deny}\n"
        "  - {id: big, tools: [pay], when: 'action.args.amount > 100', effect: escalate}\n"
    )
    guard = Guard.from_files(tmp_path / "s.yaml", store=_ForgetfulOnce())
    asked = guard.decide(Action("pay", {"amount": 500, "to": "plumber"}))
    assert asked.outcome == "escalate"
    paid = guard.decide(Action("pay", {"amount": 5, "to": "landlord"}))
    guard.report(paid, ok=True)  # the note of the landlord fails once, and waits to be sent again
    # the person says yes to the plumber: verified again, once the landlord is in the store, the one-payee rule holds
    answered = guard.answer(asked, Answer("approve", by="alice"))
    assert answered.outcome == "deny" and "one-payee" in answered.finding_ids()


class _SlowDown(MemoryStore):
    """A store that takes a while to fail every commit, and counts them."""

    commits = 0

    def commit(self, reservation_id: str) -> None:
        import time

        self.commits += 1
        time.sleep(0.2)
        raise ConnectionError("no answer")


def test_decisions_waiting_on_one_failed_resend_share_its_answer(tmp_path: Path) -> None:
    import threading

    (tmp_path / "s.yaml").write_text(SPEND)
    store = _SlowDown()
    guard = Guard.from_files(tmp_path / "s.yaml", store=store)
    paid = guard.decide(Action("pay", {"amount": 5, "to": "x"}))
    guard.report(paid, ok=True)  # the commit fails and waits to be sent again
    outcomes: list[str] = []

    def decide(tool: str) -> None:
        outcomes.append(guard.decide(Action(tool, {"amount": 1, "to": "x"})).outcome)

    threads = [threading.Thread(target=decide, args=(t,)) for t in ("pay", "pay", "pay", "look_up", "look_up")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # one more try shared by the decisions that read the store (each refused; a thread the scheduler starts
    # after that try failed may make one more), none for those that do not: not one try per thread
    assert sorted(outcomes) == ["allow", "allow", "deny", "deny", "deny"] and store.commits <= 3
