"""Redis store (``redis://host:port/db``, ``rediss://``, ``unix://``): budgets shared by many machines.

Query parameters of our own, removed before the URL goes to redis-py: ``prefix`` (default ``fsa``) starts every
key, ``timeout`` (seconds, default 2) bounds connecting and each reply. Other parameters go to redis-py.

Key layout, for prefix ``P``:

* ``P:spend:{key}``: sorted set of a budget's entries, scored by ``at``; members are ``rid|amount|expires``, with
  ``expires`` replaced by ``c`` once committed. Amounts and times are written with ``repr``, so they round-trip.
* ``P:win:{key}``: the longest window the budget was reserved under (pruning and expiry go by it).
* ``P:res:{rid}``: hash of a reservation not yet reported (``key``, ``member``, ``done``, ``at``, ``used``,
  ``until``), so commit and release can find its entry.
* ``P:first:{key}`` and ``P:last:{key}``: sorted sets of remembered entities scored by first and last note.
* ``P:approval:{id}``: hash of an approval: the fields of :class:`~fsa_guard.store.base.ApprovalRow` (``answer``,
  ``claimed`` and ``claimed_by`` only once set), plus ``_add``, ``_settle`` and ``_claim``, the call that made each
  change, so a retried script knows its first try got through.
* ``P:approvals``: sorted set of approval ids scored by ``created``, read newest first; ids whose hash expired
  are dropped from it when listed.

Reserve, commit, release, usage and recall are Lua scripts, so each is atomic across every client; like
MemoryStore, reserve and usage first prune entries out of every window still asked about. Spend and reservation keys
expire once no window can still count them (window + ttl + a margin after the latest reserve, measured from the
later of ``now`` and the wall clock); remembered entities never expire, since ``recall`` may ask about any window
(``window: null`` means forever). An approval's hash expires 7 days after the approval does, or 7 days after
it was claimed; the index lives as long as its longest-lived approval. Single-node Redis only: commit, release
and the approval list touch keys they read from another key, which Redis Cluster does not allow.

Connections are made lazily, so the store can be built while Redis is down; every redis-py error becomes
:class:`~fsa_guard.StoreError` (the guard denies), and the next call after Redis is back reconnects by itself.
"""

from __future__ import annotations

import functools
import inspect
import math
import time
import uuid
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..errors import StoreError
from . import check_params
from .base import LIMIT_SLACK, ApprovalRow, Reservation, check_settle_status

__all__ = ["RedisStore"]

T = TypeVar("T")

_MARGIN_S = 60.0  # slack for clock differences between the machines that share the store
_MAX_KEEP_S = 10 * 365 * 86400.0  # an unbounded window still gets a (long) expiry that PEXPIRE accepts
_APPROVAL_KEEP_S = 7 * 86400.0  # how long an approval is kept after it expired or was claimed

# Grows a key's TTL, never shrinks it (PEXPIRE GT would skip a key that has no TTL yet).
_EXTEND = """
local function extend(key, ms)
  if redis.call('PTTL', key) < tonumber(ms) then redis.call('PEXPIRE', key, ms) end
end
"""

# Prunes, then sums the committed and live entries stamped after the horizon, as MemoryStore._used does;
# entries stamped after `now` count too (another worker may have reserved after this decision read its clock).
# Pruning goes by the longest window the key was reserved under (kept at `win`): specs sharing a store may give
# one budget id different windows, and a shorter one must not drop spending a longer one still counts.
_USED = """
local function used(spend, win, horizon, now, base, window)
  local longest = math.max(tonumber(redis.call('GET', win) or '0'), tonumber(window))
  redis.call('ZREMRANGEBYSCORE', spend, '-inf', string.format('%.17g', tonumber(base) - longest))
  local t, n = 0, tonumber(now)
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', spend, '(' .. horizon, '+inf')) do
    local amount, expires = string.match(m, '^[^|]*|([^|]*)|(.*)$')
    if expires == 'c' or tonumber(expires) > n then t = t + tonumber(amount) end
  end
  return t, longest
end
"""

# KEYS: spend, win. ARGV: horizon, now, base, window. %.17g: the sum comes back to Python as the same double.
_USAGE = _USED + "return string.format('%.17g', (used(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4])))"

# KEYS: spend, res, win. ARGV: horizon, now, base, window, amount, limit, force, member, done, keep_ms, until,
# slack (see base.over_limit).
_RESERVE = (
    _EXTEND
    + _USED
    + """
local spend, res, win = KEYS[1], KEYS[2], KEYS[3]
local prior = redis.call('HGET', res, 'used')
if prior then return {1, prior} end  -- a retried call whose first try got through
local u, longest = used(spend, win, ARGV[1], ARGV[2], ARGV[3], ARGV[4])
local used_s = string.format('%.17g', u)
local limit = tonumber(ARGV[6])
if u + tonumber(ARGV[5]) > limit + tonumber(ARGV[12]) * math.max(1, math.abs(limit)) and ARGV[7] ~= '1' then
  return {0, used_s}
end
-- kept as long as the longest window can still count the entry
local longer = longest - tonumber(ARGV[4])
local keep = string.format('%d', tonumber(ARGV[10]) + math.ceil(longer * 1000))
redis.call('ZADD', spend, ARGV[2], ARGV[8])
redis.call('HSET', res, 'key', spend, 'member', ARGV[8], 'done', ARGV[9], 'at', ARGV[2], 'used', used_s,
           'until', string.format('%.17g', tonumber(ARGV[11]) + longer))
redis.call('PEXPIRE', res, keep)
extend(spend, keep)
redis.call('SET', win, string.format('%.17g', longest), 'KEEPTTL')
extend(win, keep)
return {1, used_s}
"""
)

# KEYS: res. ARGV: wall clock, minimum keep in ms.
_COMMIT = (
    _EXTEND
    + """
local f = redis.call('HMGET', KEYS[1], 'key', 'member', 'done', 'at', 'until')
if not f[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', f[1], f[2])
-- added back even if it was pruned meanwhile: the call ran, so it counts (as MemoryStore does)
redis.call('ZADD', f[1], f[4], f[3])
local ms = math.max(math.ceil((tonumber(f[5]) - tonumber(ARGV[1])) * 1000), tonumber(ARGV[2]))
extend(f[1], string.format('%d', ms))
return 1
"""
)

# KEYS: res.
_RELEASE = """
local f = redis.call('HMGET', KEYS[1], 'key', 'member')
if not f[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', f[1], f[2])
return 1
"""

# KEYS: first, last. ARGV: lower bound (ZRANGEBYSCORE syntax), now. Returns entity, first, entity, first, ...
_RECALL = """
local out, seen = {}, {}
local a = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[2], 'WITHSCORES')
for i = 1, #a, 2 do
  seen[a[i]] = true
  out[#out + 1] = a[i]
  out[#out + 1] = a[i + 1]
end
for _, e in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[1], ARGV[2])) do
  if not seen[e] then
    out[#out + 1] = e
    out[#out + 1] = redis.call('ZSCORE', KEYS[1], e)
  end
end
return out
"""

# KEYS: approval, index. ARGV: call, keep_ms, id, created, then the row's fields and values.
_APPROVAL_ADD = (
    _EXTEND
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('HGET', KEYS[1], '_add') == ARGV[1] and 1 or 0  -- 1: a retried call whose first try got through
end
redis.call('HSET', KEYS[1], '_add', ARGV[1], unpack(ARGV, 5))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
extend(KEYS[2], ARGV[2])
return 1
"""
)

# KEYS: approval. ARGV: call, status, now, answer (absent for none). Returns {settled, HGETALL} ({0} if unknown).
_APPROVAL_SETTLE = """
local f = redis.call('HMGET', KEYS[1], 'status', 'expires', '_settle')
if not f[1] then return {0} end
if f[3] == ARGV[1] then return {1, redis.call('HGETALL', KEYS[1])} end
local now, expires = tonumber(ARGV[3]), tonumber(f[2])
local fits
if ARGV[2] == 'expired' then fits = now >= expires else fits = now < expires end
if f[1] ~= 'pending' or not fits then return {0, redis.call('HGETALL', KEYS[1])} end
redis.call('HSET', KEYS[1], 'status', ARGV[2], '_settle', ARGV[1])
if ARGV[4] then redis.call('HSET', KEYS[1], 'answer', ARGV[4]) else redis.call('HDEL', KEYS[1], 'answer') end
return {1, redis.call('HGETALL', KEYS[1])}
"""

# KEYS: approval, index. ARGV: call, now, by, keep_ms. Returns {claimed, HGETALL} ({0} if unknown).
_APPROVAL_CLAIM = (
    _EXTEND
    + """
local f = redis.call('HMGET', KEYS[1], 'status', 'claimed', '_claim')
if not f[1] then return {0} end
if f[3] == ARGV[1] then return {1, redis.call('HGETALL', KEYS[1])} end
if f[1] == 'pending' or f[2] then return {0, redis.call('HGETALL', KEYS[1])} end
redis.call('HSET', KEYS[1], 'claimed', ARGV[2], 'claimed_by', ARGV[3], '_claim', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
extend(KEYS[2], ARGV[4])
return {1, redis.call('HGETALL', KEYS[1])}
"""
)

# KEYS: index. ARGV: approval key prefix, limit, status (absent for any). Returns each row's HGETALL, newest first.
_APPROVAL_LIST = """
local out, start, limit, want = {}, 0, tonumber(ARGV[2]), ARGV[3]
while #out < limit do
  local ids = redis.call('ZREVRANGE', KEYS[1], start, start + 99)
  if #ids == 0 then break end
  local gone = 0
  for _, id in ipairs(ids) do
    local key = ARGV[1] .. id
    local status = redis.call('HGET', key, 'status')
    if not status then
      redis.call('ZREM', KEYS[1], id)
      gone = gone + 1
    elseif (not want or status == want) and #out < limit then
      out[#out + 1] = redis.call('HGETALL', key)
    end
  end
  start = start + #ids - gone
end
return out
"""


@functools.cache
def _params() -> frozenset[str]:
    """The query parameters a Redis URL may carry: ours, and what redis-py's pool and connections take (from_url
    hands it every parameter it does not parse itself)."""
    from redis import connection

    names = {"prefix", "timeout", *getattr(connection, "URL_QUERY_ARGUMENT_PARSERS", ())}
    classes = (
        connection.ConnectionPool,
        connection.Connection,
        connection.SSLConnection,
        connection.UnixDomainSocketConnection,
    )
    for cls in classes:
        for base in cls.__mro__:
            init = base.__dict__.get("__init__")
            if init is not None:
                kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
                names.update(n for n, p in inspect.signature(init).parameters.items() if p.kind in kinds)
    names.discard("self")
    return frozenset(names)


def _approval(d: dict[str, str]) -> ApprovalRow:
    """An approval from its hash."""
    claimed = d.get("claimed")
    return ApprovalRow(
        d["id"],
        float(d["created"]),
        float(d["expires"]),
        d["status"],
        d["request"],
        d.get("answer"),
        None if claimed is None else float(claimed),
        d.get("claimed_by"),
    )


def _changed(reply: list[object]) -> tuple[bool, ApprovalRow | None]:
    """A settle or claim script's reply as (changed, row)."""
    flat = reply[1] if len(reply) > 1 else None
    return bool(int(str(reply[0]))), None if not isinstance(flat, list) else _approval(_pairs(flat))


def _pairs(flat: list[str]) -> dict[str, str]:
    """A hash from a script, which gets HGETALL's reply as a flat list."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _num(x: float) -> str:
    """A float as text that Redis and Lua parse back to the same double."""
    return repr(float(x))


class RedisStore:
    """Budget state in Redis, safe for many threads, processes and machines."""

    def __init__(self, url: str) -> None:
        check_params(url, _params(), "prefix, timeout and redis-py's connection options, such as socket_keepalive")
        parts = urlsplit(url)
        params = parse_qsl(parts.query, keep_blank_values=True)
        ours = dict(params)
        self.prefix = ours.get("prefix", "fsa")
        if not self.prefix:
            raise ValueError(f"{self._display(parts)}: the prefix parameter is empty")
        try:
            timeout = float(ours.get("timeout", "2"))
        except ValueError:
            raise ValueError(f"{self._display(parts)}: timeout must be a number of seconds") from None
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ValueError(f"{self._display(parts)}: timeout must be a positive number of seconds")
        rest = urlencode([(k, v) for k, v in params if k not in ("prefix", "timeout")])
        self.url = self._display(parts)
        # from_url only parses: the first command connects, so a guard can start while Redis is down.
        # One immediate retry on a dropped connection, not redis-py's default of ten with backoff: a guard
        # should deny quickly, and every script below is safe to run twice.
        self._client = redis.Redis.from_url(
            urlunsplit(parts._replace(query=rest)),
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
            decode_responses=True,
        )
        self._reserve = self._client.register_script(_RESERVE)
        self._commit = self._client.register_script(_COMMIT)
        self._release = self._client.register_script(_RELEASE)
        self._recall = self._client.register_script(_RECALL)
        self._usage = self._client.register_script(_USAGE)
        self._approval_add = self._client.register_script(_APPROVAL_ADD)
        self._approval_settle = self._client.register_script(_APPROVAL_SETTLE)
        self._approval_claim = self._client.register_script(_APPROVAL_CLAIM)
        self._approval_list = self._client.register_script(_APPROVAL_LIST)

    @staticmethod
    def _display(p: SplitResult) -> str:
        """The URL for messages: no password, no query."""
        netloc = p.netloc.rpartition("@")[2]
        if p.username:
            netloc = f"{p.username}:***@{netloc}" if p.password is not None else f"{p.username}@{netloc}"
        elif p.password is not None:
            netloc = f":***@{netloc}"
        return urlunsplit((p.scheme, netloc, p.path, "", ""))

    def __repr__(self) -> str:
        return f"RedisStore({self.url!r}, prefix={self.prefix!r})"

    def _key(self, kind: str, name: str) -> str:
        return f"{self.prefix}:{kind}:{name}"

    @staticmethod
    def _window(window_s: float, now: float, wall: float | None = None) -> list[str]:
        """Horizon, now, the base pruning counts back from, and the window, as the scripts take them."""
        wall = time.time() if wall is None else wall
        # a future `now` must not drop today's spending: prune against the earlier of it and the wall clock
        return [_num(now - window_s), _num(now), _num(min(now, wall)), _num(window_s)]

    def _run(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except redis.RedisError as exc:
            raise StoreError(f"Redis store {self.url} (prefix {self.prefix!r}) failed to {what}: {exc}") from exc

    def reserve(
        self, key: str, amount: float, limit: float, window_s: float, now: float, ttl_s: float, force: bool = False
    ) -> Reservation:
        """See :meth:`fsa_guard.store.base.Store.reserve`."""
        wall = time.time()
        rid = uuid.uuid4().hex
        head = f"{rid}|{_num(amount)}|"
        keep_s = min(max(now, wall) - wall + window_s + ttl_s + _MARGIN_S, _MAX_KEEP_S)
        args = [
            *self._window(window_s, now, wall),
            _num(amount),
            _num(limit),
            "1" if force else "0",
            head + _num(now + ttl_s),
            head + "c",
            str(math.ceil(keep_s * 1000)),
            _num(wall + keep_s),
            _num(LIMIT_SLACK),
        ]
        keys = [self._key("spend", key), self._key("res", rid), self._key("win", key)]
        ok, used = self._run("reserve", lambda: self._reserve(keys=keys, args=args))
        if int(ok):
            return Reservation(True, key, amount, float(used), limit, rid)
        return Reservation(False, key, amount, float(used), limit)

    def commit(self, reservation_id: str) -> None:
        """See :meth:`fsa_guard.store.base.Store.commit`."""
        args = [_num(time.time()), str(int(_MARGIN_S * 1000))]
        self._run("commit", lambda: self._commit(keys=[self._key("res", reservation_id)], args=args))

    def release(self, reservation_id: str) -> None:
        """See :meth:`fsa_guard.store.base.Store.release`."""
        self._run("release", lambda: self._release(keys=[self._key("res", reservation_id)]))

    def usage(self, key: str, window_s: float, now: float) -> float:
        """See :meth:`fsa_guard.store.base.Store.usage`."""
        keys = [self._key("spend", key), self._key("win", key)]
        args = self._window(window_s, now)
        return float(self._run("read usage", lambda: self._usage(keys=keys, args=args)))

    def remember(self, key: str, entity: str, now: float) -> None:
        """See :meth:`fsa_guard.store.base.Store.remember`."""

        def go() -> None:
            # LT keeps the earliest note and GT the latest, whatever order pinned `now`s arrive in
            pipe = self._client.pipeline(transaction=True)
            pipe.zadd(self._key("first", key), {entity: now}, lt=True)
            pipe.zadd(self._key("last", key), {entity: now}, gt=True)
            pipe.execute()

        self._run("remember", go)

    def recall(self, key: str, window_s: float | None, now: float) -> list[str]:
        """See :meth:`fsa_guard.store.base.Store.recall`."""
        lo = "-inf" if window_s is None else f"({_num(now - window_s)}"
        keys = [self._key("first", key), self._key("last", key)]
        flat: list[str | None] = self._run("recall", lambda: self._recall(keys=keys, args=[lo, _num(now)]))
        pairs = [
            (float(first), entity)
            for entity, first in zip(flat[::2], flat[1::2], strict=True)
            if entity is not None and first is not None
        ]
        return [entity for _, entity in sorted(pairs)]

    def approval_add(self, row: ApprovalRow) -> None:
        """See :meth:`fsa_guard.store.base.ApprovalStore.approval_add`."""
        keep_s = min(max(row.expires - time.time(), 0.0) + _APPROVAL_KEEP_S, _MAX_KEEP_S)
        fields = {
            "id": row.id,
            "created": _num(row.created),
            "expires": _num(row.expires),
            "status": row.status,
            "request": row.request,
            "answer": row.answer,
            "claimed": None if row.claimed is None else _num(row.claimed),
            "claimed_by": row.claimed_by,
        }
        args = [uuid.uuid4().hex, str(math.ceil(keep_s * 1000)), row.id, _num(row.created)]
        args += [x for name, value in fields.items() if value is not None for x in (name, value)]
        keys = [self._key("approval", row.id), f"{self.prefix}:approvals"]
        if not int(self._run("add an approval", lambda: self._approval_add(keys=keys, args=args))):
            raise StoreError(f"approval {row.id!r} already exists")

    def approval_get(self, approval_id: str) -> ApprovalRow | None:
        """See :meth:`fsa_guard.store.base.ApprovalStore.approval_get`."""
        found = self._run("read an approval", lambda: self._client.hgetall(self._key("approval", approval_id)))
        return _approval({str(k): str(v) for k, v in found.items()}) if found else None

    def approval_settle(
        self, approval_id: str, status: str, answer: str | None, now: float
    ) -> tuple[bool, ApprovalRow | None]:
        """See :meth:`fsa_guard.store.base.ApprovalStore.approval_settle`."""
        check_settle_status(status)
        args = [uuid.uuid4().hex, status, _num(now), *([] if answer is None else [answer])]
        keys = [self._key("approval", approval_id)]
        return _changed(self._run("settle an approval", lambda: self._approval_settle(keys=keys, args=args)))

    def approval_claim(self, approval_id: str, now: float, by: str) -> tuple[bool, ApprovalRow | None]:
        """See :meth:`fsa_guard.store.base.ApprovalStore.approval_claim`."""
        args = [uuid.uuid4().hex, _num(now), by, str(math.ceil(_APPROVAL_KEEP_S * 1000))]
        keys = [self._key("approval", approval_id), f"{self.prefix}:approvals"]
        return _changed(self._run("claim an approval", lambda: self._approval_claim(keys=keys, args=args)))

    def approval_list(self, status: str | None = None, limit: int = 100) -> list[ApprovalRow]:
        """See :meth:`fsa_guard.store.base.ApprovalStore.approval_list`."""
        if limit <= 0:
            return []
        keys = [f"{self.prefix}:approvals"]
        args = [f"{self.prefix}:approval:", str(limit), *([] if status is None else [status])]
        found = self._run("list approvals", lambda: self._approval_list(keys=keys, args=args))
        return [_approval(_pairs(flat)) for flat in found]

    def close(self) -> None:
        """Close the connection pool (a later call would open it again)."""
        self._run("close", self._client.close)
