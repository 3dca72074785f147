"""Shared fixtures of the core test suite, and the real servers the durable-state tests talk to.

Under CI (``CI`` set) a server that cannot be reached fails the test; elsewhere the test is skipped with a
message saying what to start.
"""

from __future__ import annotations

import os
import socket
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fsa_guard import Guard

SpecWriter = Callable[..., Path]


@pytest.fixture
def write_spec(tmp_path: Path) -> SpecWriter:
    """Write a spec file into ``tmp_path`` and return its path.

    ``write_spec(text)`` writes ``spec.yaml``; ``write_spec(text, name="base.yaml")`` picks the name. The text is
    dedented, so specs can be written as indented triple-quoted strings; its line numbers are those of the
    dedented text with the leading newline removed (line 1 is the first line of text).
    """

    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


@pytest.fixture
def make_guard(write_spec: SpecWriter) -> Callable[..., Guard]:
    """Build a guard from the body of a spec (``fsa_guard: 1`` is prepended); keyword options go to Guard."""

    counter = iter(range(1_000_000))

    def make(body: str, **options: object) -> Guard:
        text = "fsa_guard: 1\n" + textwrap.dedent(body).lstrip("\n")
        return Guard.from_files(write_spec(text, name=f"guard-{next(counter)}.yaml"), **options)

    return make


REDIS_URL = os.environ.get("FSA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("FSA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def need_server(name: str, host: str, port: int, how: str) -> None:
    """Fail (under CI) or skip (elsewhere) when ``host:port`` does not answer."""
    if _reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}; start it ({how})"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def redis_url() -> str:
    """The URL of the test Redis; each test should use its own key prefix (see ``redis_prefix``)."""
    need_server("Redis", "127.0.0.1", 6379, "e.g. `redis-server --port 6379`")
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    import redis

    prefix = f"fsa-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def postgres_url() -> str:
    """The URL of the test PostgreSQL database (trust auth, database ``test``)."""
    need_server("PostgreSQL", "127.0.0.1", 5432, "e.g. `pg_ctlcluster 15 main start`")
    return POSTGRES_URL
