"""The CEL function library that agent policies need.

Every function is documented in README.md ("Functions in expressions"). Names here are the contract.

History functions take ``history`` as their first argument so policies read naturally
(``seen(history, "send_money", "recipient", action.args.recipient)``). The guard indexes the history once
per decision (:class:`HistoryIndex`) and binds these functions to that index, so a lookup costs the same
however many norms use it, and the history list itself is only converted for CEL when an expression
uses it directly (``history.size()``, ``history.exists(...)``).

Time functions read zone-less timestamps and dates in the spec's ``defaults.timezone``.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import cel

from ..action import Call

__all__ = ["HISTORY_FUNCTIONS", "HistoryIndex", "history_functions", "static_functions"]

#: Functions bound per decision to the history index. name -> (min args, max args)
HISTORY_FUNCTIONS: dict[str, tuple[int, int]] = {
    "calls": (2, 2),
    "count": (2, 2),
    "seen": (4, 4),
    "last_output": (2, 3),
    "output_field": (3, 4),
    "outputs": (2, 3),
    "in_outputs": (2, 4),
    "arg_values": (3, 3),
    "copied_from": (3, 4),
    "fields_in": (3, 4),
}


_TOKEN = re.compile(r"[^\W_]+")  # runs of letters and digits


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) and not value.is_integer() else str(int(value))
    return json.dumps(value, default=str, sort_keys=True, ensure_ascii=False)


def _fold(text: str) -> str:
    """Case-folded, without whitespace: what equality of two texts means in lookups. Compatibility forms are
    folded too (NFKC: fullwidth "ＤＥ８９" is "DE89"), so a value cannot hide from a check in another form."""
    return "".join(_nfkc(text).split()).casefold()


def _nfkc(text: str) -> str:
    return text if text.isascii() else unicodedata.normalize("NFKC", text)  # isascii() is a flag: no scan


@functools.lru_cache(maxsize=2048)
def _tokens_cached(text: str) -> tuple[str, frozenset[int]]:
    return _tokens_uncached(text)


def _tokens_uncached(text: str) -> tuple[str, frozenset[int]]:
    tokens = _TOKEN.findall(_nfkc(text).casefold())
    bounds = {0}
    pos = 0
    for tok in tokens:
        pos += len(tok)
        bounds.add(pos)
    return "".join(tokens), frozenset(bounds)


def token_text(value: Any) -> tuple[str, frozenset[int]]:
    """The letters and digits of ``value``'s text, case-folded and joined, with the offsets where words end.

    Tool outputs recur across the decisions of one agent run, so short texts are cached (long ones are
    not, to bound memory).
    """
    text = _as_text(value)
    return _tokens_cached(text) if len(text) <= 8192 else _tokens_uncached(text)


def contains(haystack: tuple[str, frozenset[int]], value: Any) -> bool:
    """Whether ``value``'s words occur in ``haystack`` as whole words, ignoring case, spacing and punctuation.

    "DE89 3704 0044" matches "DE8937040044" and "Sam" matches "thank Sam!", but "US1" does not match
    "US13" and "1" does not match "2014": a match must start and end at word boundaries of the haystack.
    """
    needle, _ = token_text(value)
    return bool(needle) and _contains_run(haystack, needle)


def _contains_run(haystack: tuple[str, frozenset[int]], needle: str) -> bool:
    text, bounds = haystack
    i = text.find(needle)
    while i != -1:
        if i in bounds and i + len(needle) in bounds:
            return True
        i = text.find(needle, i + 1)
    return False


def _key(value: Any) -> Any:
    """What equality means in lookups: text ignores case and whitespace; 1 == 1.0; true is not 1."""
    if isinstance(value, str):
        return _fold(value)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list | dict):
        return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    return value


@functools.lru_cache(maxsize=1024)
def _parsed_text(text: str) -> Any:
    """``Call.parsed_output`` of a text output, cached: shared between decisions, so never changed in place."""
    return Call("", {}, text).parsed_output()


_is_glob = re.compile(r"[*?\[]").search


@functools.lru_cache(maxsize=1024)
def _glob(pattern: Any) -> Callable[[str], Any]:
    """A matcher for a tool-name glob (case-sensitive, as ``fnmatch.fnmatchcase``)."""
    if not isinstance(pattern, str):
        raise TypeError(f"a tool pattern must be text, got {type(pattern).__name__}")
    return re.compile(fnmatch.translate(pattern)).match


class HistoryIndex:
    """One decision's history, indexed once: calls by tool, parsed outputs and their normalized text."""

    __slots__ = ("_arg_keys", "_by_tool", "_calls", "_found", "_leaves", "_outputs", "_texts")

    def __init__(self, history: Sequence[Call | Mapping[str, Any]]) -> None:
        self._calls = [c if type(c) is Call else Call.coerce(c) for c in history]
        self._by_tool: dict[str, list[int]] = {}
        for i, call in enumerate(self._calls):
            self._by_tool.setdefault(call.tool, []).append(i)
        self._outputs: list[Any] = [_UNSET] * len(self._calls)
        self._texts: list[tuple[str, frozenset[int]] | None] = [None] * len(self._calls)
        self._arg_keys: dict[tuple[int, str], Any] = {}
        self._leaves: dict[int, list[tuple[str, frozenset[int]]]] = {}
        self._found: dict[Any, list[int]] = {}  # glob patterns -> indices, for the norms that ask again

    def _indices(self, tool: str | Sequence[str]) -> list[int]:
        if isinstance(tool, str):
            if not _is_glob(tool):
                return self._by_tool.get(tool, [])
            patterns: Sequence[str] = (tool,)
        else:
            patterns = tool
        if not self._by_tool:
            return []
        key = tuple(patterns)
        found = self._found.get(key)
        if found is None:
            globs = [_glob(p) for p in patterns]
            found = self._found[key] = sorted(
                i for name, idx in self._by_tool.items() if any(g(name) for g in globs) for i in idx
            )
        return found

    def _output(self, i: int) -> Any:
        out = self._outputs[i]
        if out is _UNSET:
            call = self._calls[i]
            text = call.output
            # The same outputs come back in every decision of a run: parse short texts once.
            out = _parsed_text(text) if type(text) is str and len(text) <= 8192 else call.parsed_output()
            self._outputs[i] = out
        return out

    def _text(self, i: int) -> tuple[str, frozenset[int]]:
        text = self._texts[i]
        if text is None:
            out = self._calls[i].output
            text = self._texts[i] = token_text(out if isinstance(out, str) else self._output(i))
        return text

    def _arg_key(self, i: int, name: str) -> Any:
        """The lookup key of call ``i``'s arg ``name`` (computed once per decision), or _UNSET."""
        k = (i, name)
        found = self._arg_keys.get(k, _UNSET)
        if found is _UNSET:
            args = self._calls[i].args
            found = self._arg_keys[k] = _key(args[name]) if name in args else _MISSING
        return found

    def _matching(self, tool: str | Sequence[str], args: Mapping[str, Any] | None = None) -> list[int]:
        idx = self._indices(tool)
        if args:
            wanted = [(name, _key(v)) for name, v in args.items()]
            idx = [i for i in idx if all(self._arg_key(i, name) == w for name, w in wanted)]
        return idx

    def _fields(self, i: int) -> list[tuple[str, frozenset[int]]]:
        """The text leaves of call ``i``'s structured output, tokenized (cached per decision)."""
        fields = self._leaves.get(i)
        if fields is None:
            out = self._output(i)
            fields = self._leaves[i] = [token_text(t) for t in _text_leaves(out)] if not isinstance(out, str) else []
        return fields

    def as_cel(self) -> list[dict[str, Any]]:
        """The history as CEL sees it: a list of ``{tool, args, output}`` maps, outputs parsed."""
        return [self._call_map(i) for i in range(len(self._calls))]

    def _call_map(self, i: int) -> dict[str, Any]:
        return {"tool": self._calls[i].tool, "args": dict(self._calls[i].args), "output": self._output(i)}

    # The functions below are bound into CEL. The first parameter receives CEL's ``history`` and is
    # ignored: the index already holds it.

    def calls(self, _h: Any, tool: str) -> list[dict[str, Any]]:
        """``calls(history, tool)``: earlier calls of ``tool`` (a glob), each ``{tool, args, output}``."""
        return [self._call_map(i) for i in self._matching(tool)]

    def count(self, _h: Any, tool: str) -> int:
        """``count(history, tool)``: how many earlier calls of ``tool`` (a glob)."""
        return len(self._matching(tool))

    def seen(self, _h: Any, tool: str, key: str, value: Any) -> bool:
        """``seen(history, tool, key, value)``: an earlier call of ``tool`` had ``args[key] == value``."""
        wanted = _key(value)
        return any(self._arg_key(i, key) == wanted for i in self._indices(tool))

    def last_output(self, _h: Any, tool: str, args: Mapping[str, Any] | None = None) -> Any:
        """``last_output(history, tool[, args])``: output of the latest matching call, or null."""
        idx = self._matching(tool, args)
        return self._output(idx[-1]) if idx else None

    def output_field(self, _h: Any, tool: str, key: str, args: Mapping[str, Any] | None = None) -> Any:
        """``output_field(history, tool, key[, args])``: field ``key`` (dots go deeper: ``"total.amount"``) of
        the latest matching output, or null. Cheaper than ``last_output(...).key``: only the field crosses into
        CEL, not the whole output."""
        idx = self._matching(tool, args)
        value = self._output(idx[-1]) if idx else None
        for part in key.split("."):
            if not isinstance(value, Mapping):
                return None
            value = value.get(part)
        return value

    def outputs(self, _h: Any, tool: str, args: Mapping[str, Any] | None = None) -> list[Any]:
        """``outputs(history, tool[, args])``: outputs of all matching calls, oldest first."""
        return [self._output(i) for i in self._matching(tool, args)]

    def in_outputs(
        self, _h: Any, value: Any, tool: str | Sequence[str] | None = None, args: Mapping[str, Any] | None = None
    ) -> bool:
        """``in_outputs(history, value[, tool[, args]])``: ``value`` occurs as whole words in an earlier
        output (of ``tool``, whose args include ``args``)."""
        if not token_text(value)[0]:
            return False
        idx = range(len(self._calls)) if tool is None else self._matching(tool, args)
        return any(contains(self._text(i), value) for i in idx)

    def copied_from(self, _h: Any, value: Any, tool: str | Sequence[str], min_chars: int = 20) -> bool:
        """``copied_from(history, value, tool[, min_chars])``: ``value`` repeats, word for word, a run of
        whole words of at least ``min_chars`` letters and digits from an earlier output of ``tool``."""
        words = _TOKEN.findall(_as_text(value).casefold())
        if not words:
            return False
        texts = [self._text(i) for i in self._indices(tool)]
        if not texts:
            return False
        for start in range(len(words)):
            run, end = "", start
            while end < len(words) and len(run) < min_chars:
                run += words[end]
                end += 1
            if len(run) < min_chars:
                break  # no later start can reach min_chars either
            if any(_contains_run(t, run) for t in texts):
                return True
        return False

    def fields_in(self, _h: Any, value: Any, tool: str | Sequence[str], min_chars: int = 6) -> bool:
        """``fields_in(history, value, tool[, min_chars])``: a text field (of at least ``min_chars`` letters
        and digits) of an earlier structured output of ``tool`` occurs in ``value`` as whole words."""
        haystack = token_text(value)
        for i in self._indices(tool):
            for field in self._fields(i):
                if len(field[0]) >= min_chars and _contains_run(haystack, field[0]):
                    return True
        return False

    def arg_values(self, _h: Any, tool: str, key: str) -> list[Any]:
        """``arg_values(history, tool, key)``: the values ``args[key]`` took in earlier calls of ``tool``."""
        return [self._calls[i].args[key] for i in self._matching(tool) if key in self._calls[i].args]

    def bound(self, names: Sequence[str]) -> dict[str, Callable[..., Any]]:
        """The named history functions bound to this index."""
        return {name: getattr(self, name) for name in names}


_UNSET: Any = object()
_MISSING: Any = object()


_NO_HISTORY = HistoryIndex(())  # nothing to index, nothing it caches: one serves every decision without history


@functools.lru_cache(maxsize=256)
def _unbound(names: tuple[str, ...]) -> Mapping[str, Callable[..., Any]]:
    return MappingProxyType(_NO_HISTORY.bound(names))


def history_functions(history: Sequence[Any], names: tuple[str, ...]) -> Mapping[str, Callable[..., Any]]:
    """The history functions ``names`` over ``history``, indexed once for this decision. (The first call of a
    run has no history: its functions are made once per plan.)"""
    if not history and type(history) in (tuple, list):
        return _unbound(names)
    return HistoryIndex(history).bound(names)


def _text_leaves(value: Any, depth: int = 0) -> list[str]:
    if isinstance(value, str):
        return [value]
    if depth > 16:
        return []
    if isinstance(value, Mapping):
        return [t for v in value.values() for t in _text_leaves(v, depth + 1)]
    if isinstance(value, list | tuple):
        return [t for v in value for t in _text_leaves(v, depth + 1)]
    return []


def _climbs(path: str) -> bool:
    """Whether ``path`` has a '..' segment (between slashes or backslashes, or at an end)."""
    return ".." in re.split(r"[/\\]", path)


def _fixed_offset(value: datetime) -> datetime:
    """``value`` with a fixed-offset tzinfo: the CEL package cannot convert datetimes in a ZoneInfo zone."""
    offset = value.utcoffset()
    return value if offset is None else value.astimezone(timezone(offset))


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
# One address, bare or as ``Name <address>``: anything else that holds an '@' (two addresses, stray brackets) is
# read differently by different mail libraries, so it has no domain.
_ADDRESS = re.compile(r'(?:(?P<name>"[^"]*"\s*|[^<>@,;"]*)<)?[^\s<>@,;"]+@(?P<domain>[^\s<>@,;"/?#:]+)(?(name)>)')


def host_of(value: Any) -> str:
    """The lower-case host of a URL (``scheme://user@host:port/path``) or the domain of an email address.

    The part after the last '@' of a URL's authority is where data goes, so ``https://intranet.example.com@evil.net/``
    is ``evil.net``. Text that HTTP and mail libraries could read in two ways has no host (``""``), so it is in no
    domain and an allowlist refuses it: a backslash or a control character anywhere, a space in a URL, a scheme
    without ``//`` (``https:evil.net``), a percent sign in the authority, or more than one address. Other text
    without an '@' or a scheme gives its part before any '/', '?' or '#' (``example.com``).
    """
    if not isinstance(value, str):
        return ""
    return _host(value) if len(value) <= 2048 else _host.__wrapped__(value)


@functools.lru_cache(maxsize=4096)
def _host(value: str) -> str:
    # addresses and URLs recur across the decisions of an agent run (and a policy reads one several times)
    text = value.strip()
    if "\\" in text or not text.isprintable():  # browsers read a backslash as '/', Python's clients do not
        return ""
    if text.startswith("//"):
        text = "https:" + text  # protocol-relative
    scheme = _SCHEME.match(text)
    if scheme is not None:
        rest = text[scheme.end() :]
        if scheme.group().lower() == "mailto:":
            return _domain(rest.split("?", 1)[0])
        if not rest.startswith("//"):
            return ""  # https:evil.net is evil.net to a browser, a path to urllib
        return _authority_host(re.split(r"[/?#]", rest[2:], maxsplit=1)[0])
    if "@" in text:
        return _domain(text)
    return _authority_host(re.split(r"[/?#]", text, maxsplit=1)[0])


def _authority_host(authority: str) -> str:
    if " " in authority or "%" in authority:
        return ""
    host = authority.rpartition("@")[2]
    if host.startswith("["):  # an IPv6 literal keeps its colons
        return host.split("]", 1)[0].lstrip("[").lower()
    return host.split(":", 1)[0].rstrip(".").lower()


def _domain(address: str) -> str:
    found = _ADDRESS.fullmatch(address.strip())
    return found.group("domain").rstrip(".").lower() if found else ""


@functools.lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(_end_anchors(pattern))


def _end_anchors(pattern: str) -> str:
    """``pattern`` with each ``$`` outside a character class written ``\\Z``: the CEL package's ``$`` (without
    the m flag) matches only at the end of the text, Python's also before a final newline."""
    out: list[str] = []
    i, n, in_class = 0, len(pattern), False
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            start = i + 1 + (pattern[i + 1 : i + 2] == "^")
            if pattern[start : start + 1] == "]":  # a ']' first in a class is a literal
                start += 1
            out.append(pattern[i:start])
            i, in_class = start, True
            continue
        elif ch == "$":
            ch = "\\Z"
        out.append(ch)
        i += 1
    return "".join(out)


def regex_search(text: str, pattern: str) -> bool:
    """CEL's ``matches`` (an unanchored search) with the pattern compiled once, not on every call.

    Python's ``re`` and the package's engine read \\w, \\b, \\s and (?i) alike on ASCII text only (beyond it
    they disagree on marks, fractions, separators and case folding): other text goes to the package itself.
    """
    if not isinstance(text, str) or not isinstance(pattern, str):
        raise TypeError("matches() takes a string and a pattern")
    if _unicode_sensitive(pattern) and (not text.isascii() or _C0_SEPARATORS.search(text)):
        return bool(cel.evaluate("t.matches(p)", {"t": text, "p": pattern}))
    return _regex(pattern).search(text) is not None


_C0_SEPARATORS = re.compile("[\x1c-\x1f]")  # whitespace to Python's \s, not to the package's


@functools.lru_cache(maxsize=1024)
def _unicode_sensitive(pattern: str) -> bool:
    return re.search(r"\\[wWbBsS]|\(\?[a-zA-Z]*i", pattern) is not None


def static_functions(zone: tzinfo) -> dict[str, Callable[..., Any]]:
    """Functions that do not depend on the decision, with ``zone`` as the spec's time zone."""

    def to_time(value: Any, zone_name: str | None = None) -> datetime:
        z = ZoneInfo(zone_name) if zone_name else zone
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=z)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, tz=z)
        if not isinstance(value, str):
            raise TypeError(f"time() expects text like '2025-03-01 14:00', got {type(value).__name__}")
        text = value.strip().replace("Z", "+00:00")
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"time(): '{value}' is not an ISO date or date-time") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=z)

    def local(value: Any, zone_name: str | None) -> datetime:
        if (type(value) is datetime or type(value) is str) and (zone_name is None or type(zone_name) is str):
            return local_cached(value, zone_name)  # norms ask hour(now), weekday(now), ... of the same time
        return local_uncached(value, zone_name)

    def local_uncached(value: Any, zone_name: str | None) -> datetime:
        z = ZoneInfo(zone_name) if zone_name else zone
        return to_time(value, zone_name).astimezone(z)

    # Equal datetimes are the same instant (or, naive, the same wall time), which is all the result depends on.
    local_cached = functools.lru_cache(maxsize=256)(local_uncached)

    def hour(value: Any, zone_name: str | None = None) -> int:
        return local(value, zone_name).hour

    def minute_of_day(value: Any, zone_name: str | None = None) -> int:
        t = local(value, zone_name)
        return t.hour * 60 + t.minute

    def weekday(value: Any, zone_name: str | None = None) -> int:
        return local(value, zone_name).isoweekday()

    def local_date(value: Any, zone_name: str | None = None) -> str:
        return local(value, zone_name).date().isoformat()

    def day_start(value: Any, zone_name: str | None = None) -> datetime:
        t = local(value, zone_name)
        return datetime.combine(t.date(), time(0), tzinfo=t.tzinfo)

    def days_between(a: Any, b: Any) -> int:
        return (date.fromisoformat(local_date(b)) - date.fromisoformat(local_date(a))).days

    def mentions(text: Any, value: Any) -> bool:
        return contains(token_text(text), value)

    def letters(value: Any) -> int:
        # what mentions() matches on: spaces, punctuation and invisible characters add nothing
        return len(token_text(value)[0])

    def get(container: Any, key: Any, default: Any = None) -> Any:
        if type(container) is dict or isinstance(container, Mapping):
            return container.get(key, default)
        if isinstance(container, list) and isinstance(key, int) and -len(container) <= key < len(container):
            return container[key]
        return default

    def glob(name: str, pattern: str) -> bool:
        # '*' crosses '/', so "/workspace/*" would match "/workspace/../etc/passwd": a name that climbs out with
        # '..' matches only a pattern that says '..' itself
        if _climbs(name) and not _climbs(pattern):
            return False
        return fnmatch.fnmatchcase(name, pattern)

    def host(value: Any) -> str:
        return host_of(value)

    def in_domain(value: Any, domains: Any) -> bool:
        h = host_of(value)
        names = [domains] if isinstance(domains, str) else list(domains)
        return bool(h) and any(h == d.lower() or h.endswith("." + d.lower()) for d in names if isinstance(d, str))

    def hours(value: Any) -> float:
        if isinstance(value, timedelta):
            return value.total_seconds() / 3600
        raise TypeError("hours() expects a duration")

    return {
        "fsa_matches": regex_search,  # what matches() with a literal pattern compiles to
        "time": lambda *a: _fixed_offset(to_time(*a)),
        "hour": hour,
        "minute_of_day": minute_of_day,
        "weekday": weekday,
        "local_date": local_date,
        "day_start": lambda *a: _fixed_offset(day_start(*a)),
        "days_between": days_between,
        "mentions": mentions,
        "letters": letters,
        "get": get,
        "glob": glob,
        "host": host,
        "in_domain": in_domain,
        "hours": hours,
    }


#: name -> (min args, max args) of the static functions, for load-time checks.
STATIC_ARITY: dict[str, tuple[int, int]] = {
    "time": (1, 2),
    "hour": (1, 2),
    "minute_of_day": (1, 2),
    "weekday": (1, 2),
    "local_date": (1, 2),
    "day_start": (1, 2),
    "days_between": (2, 2),
    "mentions": (2, 2),
    "letters": (1, 1),
    "get": (2, 3),
    "glob": (2, 2),
    "host": (1, 1),
    "in_domain": (2, 2),
    "hours": (1, 1),
}
