"""Fixtures for the OpenAI integration's tests: a guard over ``oa_fakes.SPEC`` with an in-memory audit trail,
tools that record what they receive, and the ``mode`` (sync or async) a test runs in."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from oa_fakes import SPEC, Ledger

from fsa_guard import Guard, load_spec
from fsa_guard.testing import RecordingAuditSink


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


@pytest.fixture
def make_guard(tmp_path: Path) -> Callable[..., Guard]:
    """A guard over SPEC (plus ``extra`` text) with a RecordingAuditSink as ``guard.audit``."""
    counter = iter(range(1000))

    def make(extra: str = "", **options: Any) -> Guard:
        path = tmp_path / f"spec-{next(counter)}.yaml"
        path.write_text(SPEC + extra, encoding="utf-8")
        options.setdefault("audit", RecordingAuditSink())
        return Guard(load_spec(path), **options)

    return make


@pytest.fixture
def guard(make_guard: Callable[..., Guard]) -> Guard:
    return make_guard()


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    """Run each test through the sync and the async entry points."""
    return str(request.param)
