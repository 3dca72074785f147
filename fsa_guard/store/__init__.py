"""Budget and rate-limit state: :func:`open_store` picks a backend by URL."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from ..errors import StoreError, did_you_mean
from .base import Reservation, Store

__all__ = ["Reservation", "Store", "check_params", "open_store", "query", "redact", "sqlite_path"]

STORE_SCHEMES = "memory://, sqlite:///path/to/state.db or redis://host:port/db"


def sqlite_path(url: str, base: str | Path | None = None) -> Path:
    """The file of a ``sqlite:///`` or ``jsonl:///`` URL, as SQLAlchemy reads them.

    ``sqlite:///state.db`` is relative (to ``base``, or the working directory), ``sqlite:////var/x.db``
    absolute.
    """
    rest = url.split("://", 1)[1].split("?", 1)[0]
    if not rest.startswith("/") or rest == "/":
        raise ValueError(f"{url!r} names no file: write {url.split('://')[0]}:///relative/path or :////absolute/path")
    path = Path(rest[1:]).expanduser()
    return path if path.is_absolute() or base is None else Path(base) / path


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def check_params(url: str, allowed: Collection[str], takes: str | None = None) -> None:
    """Refuse a query parameter the URL's backend does not take: a misspelt one would otherwise be ignored, or
    fail on every decision rather than here. ``takes`` says what it takes, where listing ``allowed`` would not."""
    for name in parse_qs(urlsplit(url).query, keep_blank_values=True):
        if name not in allowed:
            hint = did_you_mean(name, allowed)
            said = takes or (", ".join(sorted(allowed)) if allowed else "no parameters")
            raise ValueError(
                f"{redact(url).split('?', 1)[0]}: unknown parameter {name!r} (it takes {said})"
                + (f"; {hint}" if hint else "")
            )


def query(url: str) -> dict[str, str]:
    """The URL's query parameters (the last value of each)."""
    return {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}


def open_store(url: str, base: str | Path | None = None) -> Store:
    """A store for ``url``: ``memory://``, ``sqlite:///path`` (relative to ``base``) or ``redis://host:port/db``.

    Raises :class:`~fsa_guard.StoreError` for a URL it cannot use, saying what it expected.
    """
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    try:
        if scheme == "memory":
            from .memory import MemoryStore

            check_params(url, ())
            return MemoryStore()
        if scheme == "sqlite":
            from .sqlite import SQLiteStore

            check_params(url, ())
            return SQLiteStore(sqlite_path(url, base))
        if scheme in ("redis", "rediss", "unix"):
            from .redis import RedisStore

            return RedisStore(url)
    except ImportError as exc:
        raise StoreError(
            f"the store {redact(url)!r} needs a package that is not installed ({exc.name}): "
            "pip install 'fsa-guard[redis]'"
        ) from exc
    except ValueError as exc:
        raise StoreError(f"bad store URL: {exc}") from exc
    raise StoreError(f"unknown store URL {redact(url)!r}: use {STORE_SCHEMES}")
