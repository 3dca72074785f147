"""Approvals in every store (memory, SQLite, the real Redis of conftest.py): the ApprovalStore contract."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from fsa_guard import open_store
from fsa_guard.errors import StoreError
from fsa_guard.store.base import ApprovalRow, ApprovalStore, Store
from fsa_guard.store.redis import RedisStore

T = 1_700_000_000.123456789  # not exactly representable: times must still round-trip to the same double
Make = Callable[[], ApprovalStore]


@pytest.fixture(params=["memory", "sqlite", "redis"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Make]:
    """Opens another store on the same state (the same object for memory); all are closed afterwards."""
    if request.param == "memory":
        url = "memory://"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/state.db"
    else:
        url = f"{request.getfixturevalue('redis_url')}?prefix={request.getfixturevalue('redis_prefix')}"
    opened: list[Store] = []

    def new() -> ApprovalStore:
        if request.param != "memory" or not opened:
            opened.append(open_store(url))
        store = opened[-1]
        assert isinstance(store, ApprovalStore)
        return store

    yield new
    for s in opened:
        s.close()


@pytest.fixture
def store(make: Make) -> ApprovalStore:
    return make()


REQUEST = json.dumps({"tool": "pay", "payee": "Zoë Ärger ✓ 💸"}, ensure_ascii=False)


def _row(id: str = "a1", created: float = T, expires: float = T + 60.1, request: str = REQUEST) -> ApprovalRow:
    return ApprovalRow(id, created, expires, "pending", request)


def test_is_an_approval_store(store: ApprovalStore) -> None:
    assert isinstance(store, ApprovalStore)


def test_add_and_get_round_trip(store: ApprovalStore) -> None:
    row = _row()
    store.approval_add(row)
    got = store.approval_get("a1")
    assert got == row and got.answer is None and got.claimed is None and got.claimed_by is None
    assert json.loads(got.request)["payee"] == "Zoë Ärger ✓ 💸"
    ok, settled = store.approval_settle("a1", "edit", '{"args": {"amount": 0.1}, "by": "Søren"}', T + 0.3)
    assert ok and settled == store.approval_get("a1")
    ok, claimed = store.approval_claim("a1", T + 1 / 3, "guard-Ω")
    assert ok and claimed == store.approval_get("a1")
    assert claimed == ApprovalRow(
        "a1", T, T + 60.1, "edit", row.request, '{"args": {"amount": 0.1}, "by": "Søren"}', T + 1 / 3, "guard-Ω"
    )


def test_a_taken_id_raises(store: ApprovalStore) -> None:
    store.approval_add(_row())
    with pytest.raises(StoreError, match="a1"):
        store.approval_add(_row(request="{}"))
    assert store.approval_get("a1") == _row()


def test_unknown_id(store: ApprovalStore) -> None:
    assert store.approval_get("nope") is None
    assert store.approval_settle("nope", "approve", None, T) == (False, None)
    assert store.approval_settle("nope", "expired", None, T + 1e9) == (False, None)
    assert store.approval_claim("nope", T, "g") == (False, None)


@pytest.mark.parametrize("status", ["pending", "approved", "", "APPROVE"])
def test_settling_to_an_unknown_status_raises(store: ApprovalStore, status: str) -> None:
    store.approval_add(_row())
    with pytest.raises(ValueError, match="settle"):
        store.approval_settle("a1", status, None, T)
    with pytest.raises(ValueError):
        store.approval_settle("nope", status, None, T)
    assert store.approval_get("a1") == _row()


@pytest.mark.parametrize("status", ["approve", "deny", "edit"])
def test_answer_before_expiry(store: ApprovalStore, status: str) -> None:
    store.approval_add(_row())
    ok, row = store.approval_settle("a1", status, '{"note": "ok"}', T + 60.0)
    assert ok and row is not None and (row.status, row.answer) == (status, '{"note": "ok"}')
    assert store.approval_get("a1") == row


def test_no_answer_once_expired(store: ApprovalStore) -> None:
    store.approval_add(_row())
    assert store.approval_settle("a1", "approve", "{}", T + 60.1) == (False, _row())  # at `expires` it is over
    assert store.approval_settle("a1", "deny", "{}", T + 1e6) == (False, _row())
    ok, row = store.approval_settle("a1", "expired", None, T + 60.1)
    assert ok and row == ApprovalRow("a1", T, T + 60.1, "expired", _row().request)


def test_expires_only_once_expired(store: ApprovalStore) -> None:
    store.approval_add(_row())
    assert store.approval_settle("a1", "expired", None, T + 60.09) == (False, _row())
    assert store.approval_settle("a1", "approve", None, T + 60.09)[0] is True
    ok, row = store.approval_settle("a1", "expired", None, T + 1e6)  # settled: it stays approved
    assert not ok and row is not None and row.status == "approve"


def test_only_the_first_settle_counts(store: ApprovalStore) -> None:
    store.approval_add(_row())
    assert store.approval_settle("a1", "deny", '{"why": "no"}', T + 1)[0] is True
    ok, row = store.approval_settle("a1", "approve", '{"why": "yes"}', T + 2)
    assert not ok and row is not None and (row.status, row.answer) == ("deny", '{"why": "no"}')


def test_claim_once_and_never_while_pending(store: ApprovalStore) -> None:
    store.approval_add(_row())
    assert store.approval_claim("a1", T + 1, "g1") == (False, _row())
    store.approval_settle("a1", "approve", None, T + 2)
    ok, row = store.approval_claim("a1", T + 3, "g1")
    assert ok and row is not None and (row.claimed, row.claimed_by) == (T + 3, "g1")
    assert store.approval_claim("a1", T + 4, "g2") == (False, row)
    assert store.approval_claim("a1", T + 4, "g1") == (False, row)


def test_expired_approvals_can_be_claimed(store: ApprovalStore) -> None:
    store.approval_add(_row())
    store.approval_settle("a1", "expired", None, T + 61)
    assert store.approval_claim("a1", T + 62, "g")[0] is True


def test_list_newest_first_by_status_and_limit(store: ApprovalStore) -> None:
    assert store.approval_list() == []
    for i, created in enumerate([T + 2, T, T + 3, T + 1]):
        store.approval_add(_row(f"a{i}", created))
    store.approval_settle("a1", "deny", None, T + 5)
    store.approval_settle("a3", "deny", None, T + 5)
    assert [r.id for r in store.approval_list()] == ["a2", "a0", "a3", "a1"]
    assert [r.id for r in store.approval_list(limit=2)] == ["a2", "a0"]
    assert [r.id for r in store.approval_list("deny")] == ["a3", "a1"]
    assert [r.id for r in store.approval_list("deny", limit=1)] == ["a3"]
    assert [r.id for r in store.approval_list("pending")] == ["a2", "a0"]
    assert store.approval_list("approve") == [] and store.approval_list(limit=0) == []
    assert store.approval_list()[2] == store.approval_get("a3")


def test_racing_settles_one_wins(make: Make) -> None:
    make().approval_add(_row())
    stores = [make() for _ in range(8)]
    start = threading.Barrier(len(stores))
    results: list[tuple[bool, ApprovalRow | None]] = []

    def settle(i: int) -> None:
        start.wait()
        results.append(stores[i].approval_settle("a1", "approve" if i % 2 else "deny", f'{{"by": {i}}}', T + 1))

    threads = [threading.Thread(target=settle, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [row for ok, row in results if ok]
    assert len(results) == 8 and len(winners) == 1
    assert all(row == winners[0] for _, row in results)  # the losers see the winner's answer
    assert make().approval_get("a1") == winners[0]


def test_racing_claims_one_wins(make: Make) -> None:
    make().approval_add(_row())
    make().approval_settle("a1", "approve", None, T + 1)
    stores = [make() for _ in range(8)]
    start = threading.Barrier(len(stores))
    won: list[str] = []

    def claim(i: int) -> None:
        start.wait()
        ok, row = stores[i].approval_claim("a1", T + 2, f"g{i}")
        if ok and row is not None and row.claimed_by == f"g{i}":
            won.append(row.claimed_by)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and (make().approval_get("a1") or _row()).claimed_by == won[0]


@pytest.mark.parametrize("url", ["memory://", "sqlite:///{tmp}/state.db"])
def test_approvals_used_or_expired_a_month_ago_are_pruned(url: str, tmp_path: Path) -> None:
    """Every 100th add prunes them (Redis expires them instead, see below); pending ones are kept."""
    store = open_store(url.format(tmp=tmp_path))
    assert isinstance(store, ApprovalStore)
    now = time.time()
    month = 30 * 86400
    for i, claimed in enumerate([now - month - 86400, now - month + 86400]):
        store.approval_add(_row(f"c{i}", now - 2 * month, now))
        store.approval_settle(f"c{i}", "deny", None, now - 2 * month)
        store.approval_claim(f"c{i}", claimed, "g")
    store.approval_add(_row("expired-unused", now - 2 * month, now - month - 1))
    store.approval_add(_row("expired-lately", now - 2 * month, now - month + 60))
    for i in range(96):
        store.approval_add(_row(f"p{i}", now, now + 60))
    kept = {r.id for r in store.approval_list(limit=1000)}
    assert "c0" not in kept and "expired-unused" not in kept
    assert {"c1", "expired-lately"} <= kept and len(kept) == 98
    store.close()


def test_sqlite_stores_on_one_file_share_approvals(tmp_path: Path) -> None:
    a, b = open_store(f"sqlite:///{tmp_path}/s.db"), open_store(f"sqlite:///{tmp_path}/s.db")
    assert isinstance(a, ApprovalStore) and isinstance(b, ApprovalStore)
    a.approval_add(_row())
    assert b.approval_get("a1") == _row()
    assert b.approval_settle("a1", "approve", "{}", T + 1)[0] is True
    assert a.approval_settle("a1", "deny", "{}", T + 1)[0] is False
    assert a.approval_claim("a1", T + 2, "ga")[0] is True
    assert b.approval_claim("a1", T + 2, "gb")[0] is False
    assert b.approval_list() == a.approval_list() == [a.approval_get("a1")]
    a.close()
    b.close()


# --- inside Redis --------------------------------------------------------------------------------------------

DAY_MS = 86400 * 1000


@pytest.fixture
def rstore(redis_url: str, redis_prefix: str) -> Iterator[RedisStore]:
    s = RedisStore(f"{redis_url}?prefix={redis_prefix}")
    yield s
    s.close()


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


def test_redis_keys_expire_a_week_after_the_approval_and_after_a_claim(rstore: RedisStore, raw: redis.Redis) -> None:
    p = rstore.prefix
    now = time.time()
    rstore.approval_add(_row("a1", now, now + 3600))
    assert sorted(raw.scan_iter(f"{p}:*")) == [f"{p}:approval:a1", f"{p}:approvals"]
    for key in (f"{p}:approval:a1", f"{p}:approvals"):
        assert 7 * DAY_MS + 3590_000 < raw.pttl(key) <= 7 * DAY_MS + 3600_000
    rstore.approval_add(_row("old", T, T + 60))  # long expired: still kept a week, for someone to expire it
    assert 7 * DAY_MS - 10_000 < raw.pttl(f"{p}:approval:old") <= 7 * DAY_MS
    rstore.approval_settle("a1", "approve", None, now)
    rstore.approval_claim("a1", now, "g")
    assert 7 * DAY_MS - 10_000 < raw.pttl(f"{p}:approval:a1") <= 7 * DAY_MS
    assert raw.pttl(f"{p}:approvals") > 7 * DAY_MS + 3590_000  # the index never shrinks its TTL


def test_redis_list_drops_expired_hashes(rstore: RedisStore, raw: redis.Redis) -> None:
    p = rstore.prefix
    for i in range(250):  # more than one page of the index
        rstore.approval_add(_row(f"a{i:03}", T + i))
    raw.delete(*[f"{p}:approval:a{i:03}" for i in range(250) if i % 3])
    assert [r.id for r in rstore.approval_list(limit=1000)] == [f"a{i:03}" for i in reversed(range(250)) if i % 3 == 0]
    assert raw.zcard(f"{p}:approvals") == 84
    assert [r.id for r in rstore.approval_list(limit=3)] == ["a249", "a246", "a243"]
    assert rstore.approval_get("a001") is None and rstore.approval_settle("a001", "deny", None, T) == (False, None)


def test_redis_retried_scripts_report_their_own_change(rstore: RedisStore) -> None:
    """The client retries a script once on a dropped connection; a retry of a change that got through says so."""
    keys = [rstore._key("approval", "a1"), f"{rstore.prefix}:approvals"]
    add = ["call-1", str(7 * DAY_MS), "a1", repr(T), "id", "a1", "created", repr(T), "expires", repr(T + 60)]
    add += ["status", "pending", "request", "{}"]
    assert rstore._approval_add(keys=keys, args=add) == 1
    assert rstore._approval_add(keys=keys, args=add) == 1
    assert rstore._approval_add(keys=keys, args=["call-2", *add[1:]]) == 0
    settle = ["call-3", "approve", repr(T + 1)]
    assert rstore._approval_settle(keys=keys[:1], args=settle)[0] == 1
    assert rstore._approval_settle(keys=keys[:1], args=settle)[0] == 1
    assert rstore._approval_settle(keys=keys[:1], args=["call-4", *settle[1:]])[0] == 0
    claim = ["call-5", repr(T + 2), "g", str(DAY_MS)]
    assert rstore._approval_claim(keys=keys, args=claim)[0] == 1
    assert rstore._approval_claim(keys=keys, args=claim)[0] == 1
    assert rstore._approval_claim(keys=keys, args=["call-6", *claim[1:]])[0] == 0
    assert rstore.approval_get("a1") == ApprovalRow("a1", T, T + 60, "approve", "{}", None, T + 2, "g")
