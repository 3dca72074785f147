"""RedisStore against the real Redis at 127.0.0.1:6379 (see conftest.py): budgets, windows, memory, outages."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import redis
from proxy import Proxy

from fsa_guard.errors import StoreError
from fsa_guard.store.base import Reservation, Store
from fsa_guard.store.redis import RedisStore

T = 1_700_000_000.0  # a pinned `now` far in the past is fine where pruning cannot reach it (see _now)


def _now() -> float:
    """The wall clock, for tests whose entries must survive pruning against it."""
    return time.time()


@pytest.fixture
def url(redis_url: str, redis_prefix: str) -> str:
    return f"{redis_url}?prefix={redis_prefix}"


@pytest.fixture
def store(url: str) -> Iterator[RedisStore]:
    s = RedisStore(url)
    yield s
    s.close()


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    p = Proxy("127.0.0.1", 6379)
    yield p
    p.cut()


def _keys(raw: redis.Redis, prefix: str) -> list[str]:
    return sorted(raw.scan_iter(f"{prefix}:*"))


# --- budgets -------------------------------------------------------------------------------------------------


def test_is_a_store(store: RedisStore) -> None:
    assert isinstance(store, Store)


def test_reserve_within_and_over_limit(store: RedisStore) -> None:
    now = _now()
    a = store.reserve("k", 6, 10, 60, now, 30)
    assert (a.ok, a.used, a.limit, a.amount, a.key) == (True, 0.0, 10, 6, "k")
    assert a.id
    b = store.reserve("k", 5, 10, 60, now, 30)
    assert b == Reservation(False, "k", 5, 6.0, 10, None)
    c = store.reserve("k", 4, 10, 60, now, 30)  # exactly at the limit fits
    assert (c.ok, c.used) == (True, 6.0)
    assert store.usage("k", 60, now) == 10.0
    assert store.reserve("k", 0.5, 10, 60, now, 30).ok is False
    assert store.usage("other", 60, now) == 0.0


def test_fractional_amounts_round_trip(store: RedisStore) -> None:
    now = _now()
    store.reserve("k", 0.1, 1, 60, now, 30)
    store.reserve("k", 0.2, 1, 60, now, 30)
    assert store.usage("k", 60, now) == 0.1 + 0.2
    fits = store.reserve("k", 0.7, 1, 60, now, 30)
    assert (fits.ok, fits.used) == (True, 0.30000000000000004)  # the exact double, not a rounded text
    assert store.reserve("k", 1e-9, 1, 60, now, 30).ok is False


def test_a_spend_that_exactly_meets_the_limit_fits_whatever_the_order_of_the_sum(store: RedisStore) -> None:
    now = _now()
    for amount in (0.1, 0.2, 0.3):  # 0.1 + 0.2 + 0.3 is 0.6000000000000001 in binary, 0.3 + 0.2 + 0.1 is 0.6
        assert store.reserve("k", amount, 0.7, 60, now, 30).ok
    assert store.reserve("k", 0.1, 0.7, 60, now, 30).ok
    assert store.reserve("k", 0.01, 0.7, 60, now, 30).ok is False


def test_a_shorter_window_for_the_same_budget_does_not_drop_what_a_longer_one_counts(store: RedisStore) -> None:
    # two specs sharing a store give one budget id 1h and 1d; reading or reserving by the hour must not prune
    # the day's spending
    now = _now()
    spent = store.reserve("spend", 80, 100, 86400, now - 3 * 3600, 30)
    store.commit(spent.id or "")
    store.usage("spend", 3600, now)
    assert store.reserve("spend", 1, 100, 3600, now, 30).ok
    assert store.usage("spend", 86400, now) == 81.0
    assert store.reserve("spend", 80, 100, 86400, now, 30).ok is False


def test_force_records_over_the_limit(store: RedisStore) -> None:
    now = _now()
    store.reserve("k", 8, 10, 60, now, 30)
    forced = store.reserve("k", 5, 10, 60, now, 30, force=True)
    assert (forced.ok, forced.used) == (True, 8.0)
    assert forced.id
    assert store.usage("k", 60, now) == 13.0
    assert store.reserve("k", 1, 10, 60, now, 30) == Reservation(False, "k", 1, 13.0, 10, None)


def test_rolling_window_boundaries(store: RedisStore) -> None:
    now = _now()
    store.commit(store.reserve("k", 5, 10, 10, now, 1).id or "")
    assert store.usage("k", 10, now + 9.5) == 5.0
    assert store.usage("k", 10, now + 10) == 0.0  # the window holds entries stamped after now - 10
    # an entry stamped after `now` counts: another worker may have reserved after this decision read its clock
    assert store.usage("k", 10, now - 0.5) == 5.0
    assert store.usage("k", 10, now - 10.5) == 5.0
    # once out of the window the amount is free again
    assert store.reserve("k", 10, 10, 10, now + 10, 1).used == 0.0


def test_pinned_future_now_does_not_drop_todays_spending(
    store: RedisStore, raw: redis.Redis, redis_prefix: str
) -> None:
    now = _now()
    store.commit(store.reserve("k", 5, 10, 10, now, 1).id or "")
    later = store.reserve("k", 3, 10, 10, now + 3600, 1)  # a replay far ahead prunes against the wall clock
    assert (later.ok, later.used) == (True, 0.0)
    assert raw.zcard(f"{redis_prefix}:spend:k") == 2
    assert store.usage("k", 10, now) == 8.0  # today's 5, and the replay's 3 stamped after `now`
    assert store.usage("k", 10, now + 3600) == 3.0


def test_pinned_past_now_counts_its_own_window(store: RedisStore) -> None:
    store.commit(store.reserve("k", 4, 10, 10, T, 1).id or "")
    assert store.usage("k", 10, T) == 4.0
    assert store.reserve("k", 7, 10, 10, T + 5, 1).ok is False
    assert store.reserve("k", 7, 10, 10, T + 10, 1).ok is True


def test_entries_out_of_every_window_are_pruned(store: RedisStore, raw: redis.Redis, redis_prefix: str) -> None:
    now = _now()
    store.commit(store.reserve("k", 4, 10, 10, now - 100, 1).id or "")
    assert raw.zcard(f"{redis_prefix}:spend:k") == 1
    store.reserve("k", 1, 10, 10, now, 1)
    assert raw.zcard(f"{redis_prefix}:spend:k") == 1  # the old entry went, the new one came
    assert store.usage("k", 10, now - 100) == 1.0  # only the new one, stamped after that `now`, is left


def test_live_reservation_counts_until_its_ttl(store: RedisStore) -> None:
    now = _now()
    store.reserve("k", 7, 10, 60, now, 5)
    assert store.usage("k", 60, now + 4.9) == 7.0
    assert store.usage("k", 60, now + 5) == 0.0  # live while expires > now
    again = store.reserve("k", 7, 10, 60, now + 5, 5)
    assert (again.ok, again.used) == (True, 0.0)


def test_commit_keeps_and_release_frees(store: RedisStore, raw: redis.Redis, redis_prefix: str) -> None:
    now = _now()
    kept = store.reserve("k", 3, 10, 60, now, 5)
    freed = store.reserve("k", 4, 10, 60, now, 5)
    assert kept.id and freed.id
    assert store.usage("k", 60, now) == 7.0
    store.commit(kept.id)
    store.release(freed.id)
    assert store.usage("k", 60, now) == 3.0
    assert store.usage("k", 60, now + 30) == 3.0  # committed: counts past the ttl, for the whole window
    assert store.usage("k", 60, now + 60) == 0.0
    assert raw.exists(f"{redis_prefix}:res:{kept.id}", f"{redis_prefix}:res:{freed.id}") == 0
    # reports after the first, and unknown ids, change nothing
    store.release(kept.id)
    store.commit(freed.id)
    store.commit(kept.id)
    store.commit("no-such-id")
    store.release("no-such-id")
    assert store.usage("k", 60, now) == 3.0
    assert raw.zcard(f"{redis_prefix}:spend:k") == 1


def test_reports_after_the_first_change_nothing(store: RedisStore) -> None:
    """A second report (an adapter reporting twice, a retry) must not give back what was spent."""
    now = _now()
    spent, freed = store.reserve("k", 6, 10, 60, now, 30), store.reserve("k", 1, 10, 60, now, 30)
    assert spent.id and freed.id
    store.commit(spent.id)
    store.release(freed.id)
    for report in (store.release, store.commit):
        report(spent.id)
        report(freed.id)
        report("no-such-id")
    assert store.usage("k", 60, now + 1) == 6.0
    assert store.reserve("k", 6, 10, 60, now + 1, 30).ok is False


def test_commit_after_expiry_still_counts(store: RedisStore) -> None:
    now = _now()
    r = store.reserve("k", 6, 10, 60, now, 1)
    assert store.usage("k", 60, now + 2) == 0.0
    assert store.reserve("k", 8, 10, 60, now + 2, 1).ok is True  # the expired one no longer holds room
    store.commit(r.id or "")
    assert store.usage("k", 60, now + 2) == 14.0  # the call ran, so it counts, over the limit if need be


def test_commit_after_pruning_adds_the_entry_back(store: RedisStore) -> None:
    now = _now()
    old = store.reserve("k", 6, 10, 10, now - 100, 1)
    store.reserve("k", 1, 10, 10, now, 1)  # prunes the old entry
    assert store.usage("k", 10, now - 100) == 1.0
    store.commit(old.id or "")
    assert store.usage("k", 10, now - 100) == 7.0


def test_a_retried_reserve_script_reserves_once(store: RedisStore, raw: redis.Redis, redis_prefix: str) -> None:
    # redis-py retries a command once on a dropped connection; the script must not reserve twice
    now = _now()
    keys = [f"{redis_prefix}:spend:k", f"{redis_prefix}:res:same", f"{redis_prefix}:win:k"]
    args = [*store._window(60, now), "6.0", "10.0", "0", "same|6.0|1e300", "same|6.0|c", "60000", repr(now + 60), "0"]
    first = store._reserve(keys=keys, args=args)
    second = store._reserve(keys=keys, args=args)
    assert [int(first[0]), float(first[1])] == [int(second[0]), float(second[1])] == [1, 0.0]
    assert raw.zcard(keys[0]) == 1
    assert store.usage("k", 60, now) == 6.0


# --- remembered entities ---------------------------------------------------------------------------------------


def test_remember_and_recall_windows_and_order(store: RedisStore) -> None:
    store.remember("payees", '"carol"', T - 50)
    store.remember("payees", '"bob"', T - 10)
    store.remember("payees", '"alice"', T - 10)  # same first note as bob: ordered by entity
    store.remember("payees", '"dave"', T - 100)
    store.remember("payees", '"dave"', T)  # last note in every window below
    store.remember("payees", '"carol"', T - 50)  # a repeat changes nothing
    assert store.recall("payees", None, T) == ['"dave"', '"carol"', '"alice"', '"bob"']
    assert store.recall("payees", 20, T) == ['"dave"', '"alice"', '"bob"']
    assert store.recall("payees", 10, T) == ['"dave"']  # (T - 10, T]: T - 10 is out
    assert store.recall("payees", 90, T - 20) == ['"dave"', '"carol"']  # notes after `now` do not count
    assert store.recall("payees", None, T - 101) == []
    assert store.recall("nobody", None, T) == []


def test_remember_keeps_first_and_last_note_whatever_the_order(store: RedisStore) -> None:
    store.remember("k", '"x"', T)
    store.remember("k", '"y"', T - 5)
    store.remember("k", '"x"', T - 30)  # a pinned earlier note moves the first note back
    store.remember("k", '"x"', T - 20)  # and one in between moves neither
    assert store.recall("k", None, T) == ['"x"', '"y"']
    assert store.recall("k", 11, T - 20) == ['"x"']  # the first note, T - 30, lies in (T - 31, T - 20]
    assert store.recall("k", 12, T - 18) == []  # (T - 30, T - 18]: the first note is just out
    assert store.recall("k", 3, T - 19) == []  # only first and last notes are kept, not the one at T - 20
    assert store.recall("k", 5, T - 1) == ['"y"']
    assert store.recall("k", 4, T - 1) == []  # (T - 5, T - 1]


def test_unicode_entities(store: RedisStore) -> None:
    store.remember("k", '{"name":"Zoë"}', T)
    store.remember("k", '{"name":"Ådne"}', T)
    assert store.recall("k", None, T) == ['{"name":"Zoë"}', '{"name":"Ådne"}']  # code point order, like SQLite


# --- keys --------------------------------------------------------------------------------------------------------


def test_prefix_isolates_stores(url: str, redis_url: str, redis_prefix: str, raw: redis.Redis) -> None:
    a = RedisStore(url)
    b = RedisStore(f"{redis_url}?prefix={redis_prefix}-b")
    now = _now()
    assert a.reserve("k", 8, 10, 60, now, 30).ok
    assert b.reserve("k", 8, 10, 60, now, 30).ok
    assert (a.usage("k", 60, now), b.usage("k", 60, now)) == (8.0, 8.0)
    a.remember("k", '"x"', now)
    assert b.recall("k", None, now) == []
    kinds = {k.split(":")[1] for k in _keys(raw, redis_prefix)}
    assert kinds == {"spend", "res", "win", "first", "last"}
    assert len(_keys(raw, f"{redis_prefix}-b")) == 3
    a.close()
    b.close()


def test_default_prefix_and_url_parameters(redis_url: str) -> None:
    s = RedisStore(redis_url)
    assert s.prefix == "fsa"
    assert s._key("spend", "k") == "fsa:spend:k"
    s.close()
    with pytest.raises(ValueError, match="prefix"):
        RedisStore(f"{redis_url}?prefix=")
    with pytest.raises(ValueError, match="timeout"):
        RedisStore(f"{redis_url}?timeout=soon")
    with pytest.raises(ValueError, match="timeout"):
        RedisStore(f"{redis_url}?timeout=0")


def test_budget_keys_expire_with_their_window(store: RedisStore, raw: redis.Redis, redis_prefix: str) -> None:
    now = _now()
    r = store.reserve("k", 1, 10, 100, now, 30)
    spend, res = f"{redis_prefix}:spend:k", f"{redis_prefix}:res:{r.id}"
    # window + ttl + a 60 s margin
    assert 189_000 < raw.pttl(spend) <= 190_000
    assert 189_000 < raw.pttl(res) <= 190_000
    store.reserve("k", 1, 10, 5, now, 1)  # a shorter window never shortens the key's life
    assert raw.pttl(spend) > 189_000
    store.reserve("k", 1, 10, 100, now + 1000, 30)  # a future `now` keeps the key until its window is past
    assert raw.pttl(spend) > 1_189_000
    store.commit(r.id or "")
    assert raw.exists(res) == 0
    assert raw.pttl(spend) > 1_189_000
    store.remember("k", '"x"', now)
    assert raw.pttl(f"{redis_prefix}:first:k") == raw.pttl(f"{redis_prefix}:last:k") == -1  # kept for ever


def test_commit_of_a_pruned_entry_gives_its_key_a_ttl(store: RedisStore, raw: redis.Redis, redis_prefix: str) -> None:
    now = _now()
    r = store.reserve("k", 1, 10, 10, now - 100, 1)
    raw.delete(f"{redis_prefix}:spend:k")  # as if the key had expired
    store.commit(r.id or "")
    assert raw.zcard(f"{redis_prefix}:spend:k") == 1
    assert raw.pttl(f"{redis_prefix}:spend:k") > 0


# --- failures ----------------------------------------------------------------------------------------------------


def test_outage_becomes_store_error_and_the_same_store_recovers(proxy: Proxy, redis_prefix: str) -> None:
    store = RedisStore(f"redis://127.0.0.1:{proxy.port}/0?prefix={redis_prefix}&timeout=1")
    now = _now()
    r = store.reserve("k", 3, 10, 60, now, 30)
    assert r.ok and r.id
    proxy.cut()
    calls = {
        "reserve": lambda: store.reserve("k", 1, 10, 60, now, 30),
        "commit": lambda: store.commit(r.id or ""),
        "release": lambda: store.release(r.id or ""),
        "read usage": lambda: store.usage("k", 60, now),
        "remember": lambda: store.remember("k", '"x"', now),
        "recall": lambda: store.recall("k", None, now),
    }
    for what, call in calls.items():
        with pytest.raises(StoreError) as info:
            call()
        message = str(info.value)
        assert f"redis://127.0.0.1:{proxy.port}/0" in message
        assert f"failed to {what}" in message
        assert isinstance(info.value.__cause__, redis.ConnectionError)
    proxy.restore()
    assert store.usage("k", 60, now) == 3.0  # the reservation survived; the pool reconnected by itself
    store.commit(r.id)
    assert store.reserve("k", 7, 10, 60, now, 30).used == 3.0
    store.close()


def test_built_while_redis_is_down(proxy: Proxy, redis_prefix: str) -> None:
    proxy.cut()
    store = RedisStore(f"redis://127.0.0.1:{proxy.port}/0?prefix={redis_prefix}")  # no connection yet
    with pytest.raises(StoreError, match="failed to reserve"):
        store.reserve("k", 1, 10, 60, _now(), 30)
    proxy.restore()
    assert store.reserve("k", 1, 10, 60, _now(), 30).ok
    store.close()


def test_error_messages_hide_the_password(proxy: Proxy, redis_prefix: str) -> None:
    proxy.cut()
    store = RedisStore(f"redis://user:s3cret@127.0.0.1:{proxy.port}/0?prefix={redis_prefix}")
    with pytest.raises(StoreError) as info:
        store.usage("k", 60, _now())
    assert "s3cret" not in str(info.value)
    assert f"redis://user:***@127.0.0.1:{proxy.port}/0" in str(info.value)
    assert "s3cret" not in repr(store)


def test_a_silent_server_times_out() -> None:
    silent = socket.socket()  # accepts (through the kernel backlog) but never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    store = RedisStore(f"redis://127.0.0.1:{silent.getsockname()[1]}/0?timeout=0.2")
    start = time.monotonic()
    with pytest.raises(StoreError, match="failed to read usage") as info:
        store.usage("k", 60, _now())
    assert time.monotonic() - start < 1.5
    assert isinstance(info.value.__cause__, redis.TimeoutError)
    silent.close()


def test_redis_errors_become_store_errors(store: RedisStore, raw: redis.Redis, redis_prefix: str) -> None:
    raw.set(f"{redis_prefix}:spend:k", "not a sorted set")
    with pytest.raises(StoreError, match=r"failed to reserve.*WRONGTYPE") as info:
        store.reserve("k", 1, 10, 60, _now(), 30)
    assert isinstance(info.value.__cause__, redis.ResponseError)


def test_survives_a_flushed_script_cache(store: RedisStore, raw: redis.Redis) -> None:
    now = _now()
    assert store.reserve("k", 1, 10, 60, now, 30).ok
    raw.script_flush()  # what a Redis restart does; redis-py loads the script again on NOSCRIPT
    assert store.reserve("k", 1, 10, 60, now, 30).used == 1.0


def test_usable_after_close(store: RedisStore) -> None:
    now = _now()
    store.reserve("k", 1, 10, 60, now, 30)
    store.close()
    assert store.usage("k", 60, now) == 1.0


# --- concurrency -------------------------------------------------------------------------------------------------


def test_concurrent_reserves_never_overspend(url: str) -> None:
    limit = 1000.0
    stores = [RedisStore(url) for _ in range(4)]
    now = _now()
    start = threading.Barrier(16)
    results: list[Reservation] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        rng = random.Random(n)
        mine = []
        start.wait()
        for _ in range(30):
            mine.append(stores[n % 4].reserve("shared", rng.randint(1, 20), limit, 3600, now, 3600))
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    granted = [r for r in results if r.ok]
    refused = [r for r in results if not r.ok]
    total = sum(r.amount for r in granted)
    assert len(results) == 480
    assert total <= limit
    assert refused, "16 x 30 reservations of 1..20 must run out of a budget of 1000"
    assert all(r.used + r.amount > limit for r in refused)
    assert total > limit - 20  # it filled up: a refusal means less than 20 was left, and nothing was released
    # serial order: each grant saw exactly the grants before it
    chain = sorted(granted, key=lambda r: r.used)
    running = 0.0
    for r in chain:
        assert r.used == running
        running += r.amount
    assert stores[0].usage("shared", 3600, now) == total
    for s in stores:
        s.close()
