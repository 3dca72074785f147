"""Servers for the durable-state tests: the real Redis and PostgreSQL on this machine.

Under CI (``CI`` set) a server that cannot be reached fails the test; elsewhere the test is skipped with a
message saying what to start.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest

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
