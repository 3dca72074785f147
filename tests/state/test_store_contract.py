"""The store contract, run against the memory and SQLite stores with the Redis store's tests of it.

The Redis tests (test_redis_store.py) pin down the semantics every backend shares; the ones that do not look
inside Redis run here against the other two backends, so all three agree.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_redis_store import (  # noqa: F401  (collected here with this module's `store` fixture)
    test_a_shorter_window_for_the_same_budget_does_not_drop_what_a_longer_one_counts,
    test_a_spend_that_exactly_meets_the_limit_fits_whatever_the_order_of_the_sum,
    test_commit_after_expiry_still_counts,
    test_force_records_over_the_limit,
    test_fractional_amounts_round_trip,
    test_is_a_store,
    test_live_reservation_counts_until_its_ttl,
    test_pinned_past_now_counts_its_own_window,
    test_remember_and_recall_windows_and_order,
    test_remember_keeps_first_and_last_note_whatever_the_order,
    test_reports_after_the_first_change_nothing,
    test_reserve_within_and_over_limit,
    test_rolling_window_boundaries,
    test_unicode_entities,
)

from fsa_guard import Store, open_store


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/state.db"
    s = open_store(url)
    yield s
    s.close()


def test_sqlite_state_is_shared_by_every_store_on_the_file(tmp_path: Path) -> None:
    a, b = open_store(f"sqlite:///{tmp_path}/s.db"), open_store(f"sqlite:///{tmp_path}/s.db")
    r = a.reserve("k", 6, 10, 60, 1000.0, 30)
    assert b.reserve("k", 5, 10, 60, 1000.0, 30).ok is False
    b.commit(r.id or "")
    a.remember("payees", '"x"', 1000.0)
    assert b.usage("k", 60, 1000.0 + 45) == 6.0 and b.recall("payees", None, 1000.0) == ['"x"']
