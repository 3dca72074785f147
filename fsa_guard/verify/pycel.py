"""CEL evaluated in Python, for the expressions specs are made of.

Handing a decision's data to the CEL package converts every value into Rust (about a microsecond per
string, since it tries bool, int, float and datetime first), and that conversion was most of what a
decision cost. This module parses CEL itself and compiles each expression to Python closures that read
the same data where it lies.

It answers only where it gives what the CEL package gives. Every case it does not model — any error (a
missing key, a type mismatch, an overflow, a failing function), a value of a kind it does not know, a
map iterated where order would show — raises :class:`Defer`, and the engine asks the CEL package
instead, which then gives its own value or its own error. An expression it cannot parse, or that uses
what it does not implement (uint and bytes literals, optional syntax, timestamp methods, a ``matches``
pattern that Python's ``re`` reads differently), is not compiled here at all: :func:`compile_py` says why
(``fsa-guard lint`` shows it), and that tool's plan runs on the CEL package. ``tests/verify/test_pycel.py``
checks both agree on generated expressions and data and on every labelled case of the shipped policies;
``tests/test_properties.py`` on random specs and actions.

Semantics follow the CEL package (``common-expression-language`` 0.10), including where it differs from
the CEL spec: ``size()`` of a string counts UTF-8 bytes; ``exists``/``all`` stop at the first element
that decides them and fail at the first that errors; ``&&`` and ``||`` absorb an error when the other side
decides. The engine leaves to the package every decision whose args, request or context hold what the
package reads otherwise (:func:`unmodelled`: ints beyond 64 bits, lone surrogates), and every result that
does. One difference is known and left: such a value deep inside a history output that an expression hands
whole to a function reaches it as it is, where the package would convert it (or fail).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

__all__ = ["RESERVED", "Defer", "PyProgram", "Scope", "compile_py", "unmodelled"]


class Defer(Exception):
    """Raised where the CEL package must answer instead (an error, or a case this module does not model)."""


class _Unsupported(Exception):
    """The expression uses something this module does not implement: compile it with the CEL package only."""


PyProgram = Callable[["Scope"], Any]

_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
_EXACT = 2**53  # ints up to this compare with doubles exactly, in Rust as in Python
_LISTS = (list, tuple)
_NONE: Any = object()
_FAILED: Any = object()


class CelType:
    """A CEL type value, what ``type(x)`` returns and what ``int``, ``list``, ... name in expressions."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


_TYPES = {
    n: CelType(n) for n in ("int", "uint", "double", "string", "bool", "bytes", "list", "map", "null_type", "type")
}
_TYPES.update({"timestamp": CelType("google.protobuf.Timestamp"), "duration": CelType("google.protobuf.Duration")})


class Scope:
    """One decision's values: root variables, functions, let programs (computed once, on first use)."""

    __slots__ = ("fns", "lets", "local", "memo", "static", "vars")

    def __init__(
        self,
        variables: dict[str, Any],
        functions: Mapping[str, Callable[..., Any]],
        static: Mapping[str, Callable[..., Any]],
        lets: Mapping[str, PyProgram],
    ) -> None:
        self.vars = variables
        self.fns = functions  # bound to this decision (the history functions)
        self.static = static  # the spec's own
        self.lets = lets
        self.memo: dict[str, Any] = {}
        self.local: dict[str, Any] = {}  # macro variables

    def let(self, name: str) -> Any:
        value = self.memo.get(name, _NONE)
        if value is _NONE:
            program = self.lets.get(name)
            if program is None:
                raise Defer
            # A let's program reads no macro variable of the expression that reads it (it was compiled on its
            # own), and its own macros put back what they bind: it can share ``local``.
            try:
                value = program(self)
            except Defer:
                value = _FAILED
            self.memo[name] = value
        if value is _FAILED:
            raise Defer
        return value


# ---------------------------------------------------------------- values


def _int_ok(v: int) -> bool:
    return _I64_MIN <= v <= _I64_MAX


def _check_int(v: int) -> int:
    if _I64_MIN <= v <= _I64_MAX:
        return v
    raise Defer


def _aware(v: datetime) -> bool:
    return v.tzinfo is not None and v.utcoffset() is not None


def _eq(a: Any, b: Any) -> bool:
    """CEL's heterogeneous equality: numbers across int and double, lists and maps deeply, else same kind."""
    ta, tb = type(a), type(b)
    if ta is str or ta is bool:
        if tb is ta:
            return bool(a == b)
        return _kind_known(b) and False
    if a is None:
        return _kind_known(b) and b is None
    if ta is int or ta is float:
        if tb is int or tb is float:
            if (ta is int and not _int_ok(a)) or (tb is int and not _int_ok(b)):
                raise Defer  # the CEL package reads such ints as uint or double
            if ta is not tb and abs(a if ta is int else b) > _EXACT:
                raise Defer
            return bool(a == b)
        return _kind_known(b) and False
    if ta in _LISTS:
        if tb in _LISTS:
            return len(a) == len(b) and all(_eq(x, y) for x, y in zip(a, b, strict=True))
        return _kind_known(b) and False
    if isinstance(a, Mapping):
        if isinstance(b, Mapping):
            if not all(type(k) is str for k in a) or not all(type(k) is str for k in b):
                raise Defer
            return a.keys() == b.keys() and all(_eq(a[k], b[k]) for k in a)
        return _kind_known(b) and False
    if ta is datetime and tb is datetime:
        if not (_aware(a) and _aware(b)):
            raise Defer
        return bool(a == b)
    if ta is timedelta and tb is timedelta:
        return bool(a == b)
    if ta is CelType and tb is CelType:
        return bool(a.name == b.name)
    if _kind_known(a) and _kind_known(b):
        return False
    raise Defer


def _kind_known(v: Any) -> bool:
    t = type(v)
    if t in (str, bool, int, float, list, tuple, dict, timedelta, CelType) or v is None:
        return True
    if t is datetime:
        return _aware(v)
    if isinstance(v, Mapping):
        return True
    raise Defer


def _lt(a: Any, b: Any) -> bool:
    ta, tb = type(a), type(b)
    if (ta is int or ta is float) and (tb is int or tb is float):
        if (ta is int and not _int_ok(a)) or (tb is int and not _int_ok(b)):
            raise Defer
        if ta is not tb and abs(a if ta is int else b) > _EXACT:
            raise Defer
        if a != a or b != b:
            raise Defer  # NaN
        return bool(a < b)
    if ta is tb and ta in (str, bool, timedelta):
        return bool(a < b)
    if ta is datetime and tb is datetime and _aware(a) and _aware(b):
        return bool(a < b)
    raise Defer


def _add(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta is tb:
        if ta is int and _int_ok(a) and _int_ok(b):
            return _check_int(a + b)
        if ta is float or ta is str or ta is timedelta:
            return a + b
    if ta in _LISTS and tb in _LISTS:
        return [*a, *b]
    try:
        if ta is datetime and tb is timedelta and _aware(a):
            return a + b  # (duration + timestamp the package refuses)
    except OverflowError:
        raise Defer from None
    raise Defer


def _sub(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta is tb:
        if ta is int and _int_ok(a) and _int_ok(b):
            return _check_int(a - b)
        if ta is float or ta is timedelta:
            return a - b
        if ta is datetime and _aware(a) and _aware(b):
            return a - b
    if ta is datetime and tb is timedelta and _aware(a):
        try:
            return a - b
        except OverflowError:
            raise Defer from None
    raise Defer


def _mul(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta is tb:
        if ta is int and _int_ok(a) and _int_ok(b):
            return _check_int(a * b)
        if ta is float:
            return a * b
    raise Defer


def _div(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta is tb:
        if ta is int and b != 0 and _int_ok(a) and _int_ok(b):
            q = abs(a) // abs(b)
            return _check_int(q if (a < 0) == (b < 0) else -q)  # truncated toward zero
        if ta is float and b != 0.0:
            return a / b
    raise Defer


def _mod(a: Any, b: Any) -> Any:
    if type(a) is int and type(b) is int and b != 0 and _int_ok(a) and _int_ok(b):
        if a == _I64_MIN and b == -1:
            raise Defer  # the CEL package reports an overflow
        q = abs(a) // abs(b)
        q = q if (a < 0) == (b < 0) else -q
        return a - b * q  # the sign of the dividend, as in Rust
    raise Defer


def _neg(a: Any) -> Any:
    t = type(a)
    if t is int and _int_ok(a):
        return _check_int(-a)
    if t is float:
        return -a
    raise Defer


def _in(a: Any, coll: Any) -> bool:
    if type(coll) in _LISTS:
        return any(_eq(a, x) for x in coll)
    if isinstance(coll, Mapping):
        if type(a) is str:
            return a in coll
        raise Defer
    raise Defer


def _size(v: Any) -> int:
    t = type(v)
    if t is str:
        return len(v) if v.isascii() else len(v.encode("utf-8", "surrogatepass"))  # the package counts bytes
    if t in _LISTS or isinstance(v, Mapping):
        return len(v)
    raise Defer


def _string(v: Any) -> str:
    t = type(v)
    if t is str:
        return v  # type: ignore[no-any-return]
    if t is int and _int_ok(v):
        return str(v)
    if t is float and math.isfinite(v):
        text = repr(v)
        if "e" in text:
            raise Defer  # Rust writes no exponent; rare enough to leave to the package
        return text[:-2] if text.endswith(".0") else text
    raise Defer


_INT_TEXT = re.compile(r"[+-]?[0-9]+\Z")
_DOUBLE_TEXT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")


def _int(v: Any) -> int:
    t = type(v)
    if t is int:
        return _check_int(v)
    if t is float and math.isfinite(v) and abs(v) < 2.0**62:
        return int(v)
    if t is str and v.isascii() and _INT_TEXT.match(v):
        return _check_int(int(v))
    raise Defer


def _double(v: Any) -> float:
    t = type(v)
    if t is float:
        return v  # type: ignore[no-any-return]
    if t is int and abs(v) <= _EXACT:
        return float(v)
    if t is str and v.isascii() and _DOUBLE_TEXT.match(v):
        return float(v)
    raise Defer


def _type(v: Any) -> CelType:
    t = type(v)
    if t is bool:
        return _TYPES["bool"]
    if t is int:
        if not _int_ok(v):
            raise Defer
        return _TYPES["int"]
    name = {str: "string", float: "double", list: "list", tuple: "list", type(None): "null_type", CelType: "type"}.get(
        t
    )
    if name is None:
        if isinstance(v, Mapping):
            name = "map"
        else:
            raise Defer
    return _TYPES[name]


_DURATION = re.compile(r"(-?)((?:[0-9]+(?:h|m|s|ms))+)\Z")
_DURATION_PART = re.compile(r"([0-9]+)(ms|h|m|s)")
_UNIT_US = {"h": 3_600_000_000, "m": 60_000_000, "s": 1_000_000, "ms": 1_000}


def _duration(v: Any) -> timedelta:
    if type(v) is str:
        m = _DURATION.match(v)
        if m:
            us = sum(int(n) * _UNIT_US[u] for n, u in _DURATION_PART.findall(m.group(2)))
            if us < 2**53:
                return timedelta(microseconds=-us if m.group(1) else us)
    raise Defer


def _str_method(op: Callable[[str, str], bool]) -> Callable[[Any, Any], bool]:
    def method(s: Any, arg: Any) -> bool:
        if type(s) is str and type(arg) is str:
            return op(s, arg)
        raise Defer

    return method


_METHODS1: dict[str, Callable[[Any, Any], Any]] = {
    "contains": _str_method(lambda s, a: a in s),
    "startsWith": _str_method(str.startswith),
    "endsWith": _str_method(str.endswith),
}
_GLOBALS1: dict[str, Callable[[Any], Any]] = {
    "size": _size,
    "string": _string,
    "int": _int,
    "double": _double,
    "type": _type,
    "dyn": lambda v: v,
    "duration": _duration,
}


def _gt(a: Any, b: Any) -> bool:
    return _lt(b, a)


def _le(a: Any, b: Any) -> bool:
    return not _lt(b, a)


def _ge(a: Any, b: Any) -> bool:
    return not _lt(a, b)


def _ne(a: Any, b: Any) -> bool:
    return not _eq(a, b)


_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": _add,
    "-": _sub,
    "*": _mul,
    "/": _div,
    "%": _mod,
    "<": _lt,
    ">": _gt,
    "<=": _le,
    ">=": _ge,
    "==": _eq,
    "!=": _ne,
    "in": _in,
}


_SAFE = frozenset({bool, float})  # results with nothing inside to check


_NUMBER_TESTS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


def _number_test(
    left: PyProgram, value: float, test: Callable[[Any, Any], bool], op: Callable[[Any, Any], Any]
) -> PyProgram:
    """A comparison with a number literal: a double (not NaN, which the package will not order) or an int
    within 2**53 compares directly; anything else takes the general path."""

    def compare(s: Scope) -> Any:
        a = left(s)
        t = type(a)
        if (t is float and a == a) or (t is int and -_EXACT <= a <= _EXACT):
            return test(a, value)
        return op(a, value)

    return compare


def unmodelled(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` holds what the package reads otherwise than this module does: an int beyond 64 bits
    (the package makes it a uint or a double), text with a lone surrogate (the package cannot take it), a
    tuple (the package makes it a list, which fsa_guard's functions read otherwise) or a type value (the package
    hands it back as its name)."""
    t = type(value)
    if t is dict or t is list:
        items = value.values() if t is dict else value
    elif t is int:
        return not _I64_MIN <= value <= _I64_MAX
    elif t is str:
        return not value.isascii() and _SURROGATE.search(value) is not None
    elif t is tuple or t is CelType:
        return True
    elif isinstance(value, Mapping):
        items = value.values()
    else:
        return False
    for v in items:  # flat data (the usual args) without a call per value
        tv = type(v)
        if tv is str:
            if not v.isascii() and _SURROGATE.search(v) is not None:
                return True
        elif tv is int:
            if not _I64_MIN <= v <= _I64_MAX:
                return True
        elif tv is float or tv is bool or v is None:
            continue
        elif depth < 32 and unmodelled(v, depth + 1):
            return True
    return False


_SURROGATE = re.compile("[\ud800-\udfff]")


def _plain(v: Any) -> Any:
    """A checked value from outside (a function's result): JSON-like data, times, or Defer."""
    t = type(v)
    if t is bool or t is float or v is None:
        return v
    if unmodelled(v):
        raise Defer
    if t is str:
        return v
    if t is int:
        return _check_int(v)
    if t in _LISTS or isinstance(v, Mapping) or t is timedelta or (t is datetime and _aware(v)):
        return v
    raise Defer


# ---------------------------------------------------------------- lexing and parsing

_LEX = re.compile(
    r"""(?P<ws>\s+|//[^\n]*)
    |(?P<float>(?:[0-9]+\.[0-9]+(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+|\.[0-9]+(?:[eE][+-]?[0-9]+)?))(?![\w.])
    |(?P<hex>0[xX][0-9a-fA-F]+)(?![\w.])
    |(?P<int>[0-9]+)(?![\w.])
    |(?P<str>(?P<raw>[rR])?(?P<q>'''|\"\"\"|'|"))
    |(?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<op>==|!=|<=|>=|&&|\|\||[-+*/%<>!?:.,\[\]{}()])""",
    re.VERBOSE,
)
_ESCAPE = re.compile(
    r"""\\(?:([abfnrtv\\'"`?])|x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|([0-3][0-7]{2}))"""
)
_SIMPLE_ESC = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_KEYWORDS = {"true": True, "false": False, "null": None}
#: CEL's reserved words, which no name may be.
RESERVED = frozenset(
    {
        "as", "break", "const", "continue", "else", "false", "for", "function", "if", "import", "in", "let", "loop",
        "namespace", "null", "package", "return", "true", "var", "void", "while",
    }
)  # fmt: skip


def _unescape(body: str) -> str:
    out, pos = [], 0
    for m in _ESCAPE.finditer(body):
        if "\\" in body[pos : m.start()]:
            raise _Unsupported("escape")
        out.append(body[pos : m.start()])
        simple, hx, u4, u8, octal = m.groups()
        if simple:
            out.append(_SIMPLE_ESC.get(simple, simple))
        else:
            code = int(hx or u4 or u8, 16) if not octal else int(octal, 8)
            if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
                raise _Unsupported("escape")
            out.append(chr(code))
        pos = m.end()
    if "\\" in body[pos:]:
        raise _Unsupported("escape")
    out.append(body[pos:])
    return "".join(out)


def _tokens(src: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(src):
        m = _LEX.match(src, pos)
        if m is None:
            uint = re.match(r"(?:0[xX][0-9a-fA-F]+|[0-9]+)[uU]", src[pos:]) is not None
            raise _Unsupported("a uint literal (1u)" if uint else f"its syntax at {src[pos : pos + 12]!r}")
        kind = "str" if m.group("str") else m.lastgroup or ""
        pos = m.end()
        if kind == "ws":
            continue
        if kind == "str":
            quote = m.group("q")
            if len(quote) == 3:
                end = src.find(quote, pos) if m.group("raw") else _find_close(src, pos, quote)
            else:
                end = _find_close(src, pos, quote) if not m.group("raw") else src.find(quote, pos)
            if end < 0:
                raise _Unsupported("string")
            body = src[pos:end]
            if len(quote) == 1 and "\n" in body:
                raise _Unsupported("string")
            if len(quote) == 3:  # the package reads a line end written CR LF or CR as LF
                body = body.replace("\r\n", "\n").replace("\r", "\n")
            out.append(("lit", body if m.group("raw") else _unescape(body)))
            pos = end + len(quote)
        elif kind == "float":
            number = float(m.group(kind))
            if math.isinf(number):
                raise _Unsupported("float literal")
            out.append(("lit", number))
        elif kind in ("int", "hex"):
            value = int(m.group(kind), 0 if kind == "hex" else 10)
            if value > _I64_MAX:
                raise _Unsupported("int literal")
            out.append(("lit", value))
        elif kind == "ident":
            name = m.group(kind)
            if name.lower() in ("b", "br", "rb") and src[pos : pos + 1] in ("'", '"'):
                raise _Unsupported("a bytes literal (b'')")
            if name in _KEYWORDS:
                out.append(("lit", _KEYWORDS[name]))
            elif name == "in":
                out.append(("op", "in"))
            elif name in RESERVED:
                raise _Unsupported("reserved word")
            else:
                out.append(("ident", name))
        else:
            out.append(("op", m.group(kind)))
    out.append(("end", None))
    return out


def _find_close(src: str, pos: int, quote: str) -> int:
    i = pos
    while i < len(src):
        if src[i] == "\\":
            i += 2
            continue
        if src.startswith(quote, i):
            return i
        i += 1
    return -1


class _Parser:
    """Recursive descent over CEL's grammar; nodes are tuples ``(kind, ...)``."""

    def __init__(self, src: str) -> None:
        self.toks = _tokens(src)
        self.i = 0

    def peek(self) -> tuple[str, Any]:
        return self.toks[self.i]

    def take(self, op: str | None = None) -> tuple[str, Any]:
        tok = self.toks[self.i]
        if op is not None and tok != ("op", op):
            raise _Unsupported(f"expected {op!r}")
        self.i += 1
        return tok

    def at(self, op: str) -> bool:
        return self.toks[self.i] == ("op", op)

    def parse(self) -> tuple[Any, ...]:
        node = self.expr()
        if self.peek()[0] != "end":
            raise _Unsupported("trailing input")
        return node

    def expr(self) -> tuple[Any, ...]:
        cond = self.binary(0)
        if self.at("?"):
            self.take()
            a = self.binary(0)
            self.take(":")
            return ("cond", cond, a, self.expr())
        return cond

    _LEVELS = (("||",), ("&&",), ("==", "!=", "<", "<=", ">", ">=", "in"), ("+", "-"), ("*", "/", "%"))

    def binary(self, level: int) -> tuple[Any, ...]:
        if level == len(self._LEVELS):
            return self.unary()
        node = self.binary(level + 1)
        ops = self._LEVELS[level]
        while self.peek()[0] == "op" and self.peek()[1] in ops:
            op = self.take()[1]
            right = self.binary(level + 1)
            node = (
                ("or", node, right) if op == "||" else ("and", node, right) if op == "&&" else ("bin", op, node, right)
            )
        return node

    def unary(self) -> tuple[Any, ...]:
        for op, kind in (("!", "not"), ("-", "neg")):
            if self.at(op):  # CEL's grammar: a run of one operator before a member ("!-x" does not parse)
                n = 0
                while self.at(op):
                    self.take()
                    n += 1
                node = self.member()
                for _ in range(n):
                    node = (kind, node)
                return node
        return self.member()

    def member(self) -> tuple[Any, ...]:
        node = self.primary()
        while True:
            if self.at("."):
                self.take()
                kind, name = self.take()
                if kind != "ident":
                    raise _Unsupported("optional syntax (.?field)" if name == "?" else "its syntax")
                node = ("call", name, node, self.args(")")) if self.at("(") else ("select", node, name)
            elif self.at("["):
                self.take()
                if self.at("?"):
                    raise _Unsupported("optional syntax ([?...])")
                key = self.expr()
                self.take("]")
                node = ("index", node, key)
            else:
                return node

    def args(self, close: str) -> list[tuple[Any, ...]]:
        self.take()
        items: list[tuple[Any, ...]] = []
        while not self.at(close):
            items.append(self.expr())
            if not self.at(close):
                self.take(",")
        self.take(close)
        return items

    def primary(self) -> tuple[Any, ...]:
        kind, value = self.peek()
        if kind == "lit":
            self.take()
            return ("lit", value)
        if kind == "ident":
            self.take()
            if self.at("("):
                return ("call", value, None, self.args(")"))
            if self.at("{"):
                raise _Unsupported("message construction (Name{...})")
            return ("ident", value)
        if self.at("("):
            self.take()
            node = self.expr()
            self.take(")")
            return node
        if self.at("["):
            return ("list", self.args("]"))
        if self.at("{"):
            self.take()
            entries = []
            while not self.at("}"):
                if self.at("?"):
                    raise _Unsupported("optional syntax ({?...})")
                k = self.expr()
                self.take(":")
                entries.append((k, self.expr()))
                if not self.at("}"):
                    self.take(",")
            self.take("}")
            return ("map", entries)
        raise _Unsupported(f"unexpected {value!r}")


# ---------------------------------------------------------------- compiling to closures


class _Compiler:
    def __init__(
        self,
        lets: frozenset[str],
        roots: frozenset[str],
        functions: frozenset[str],
        bound_functions: frozenset[str],
        extensions: Mapping[str, Callable[..., Any]],
        regex: Callable[[str], Callable[[Any], bool] | None],
    ) -> None:
        self.lets = lets
        self.roots = roots
        self.functions = functions  # ours: Scope.static, or Scope.fns for those in bound_functions
        self.bound_functions = bound_functions
        self.extensions = extensions
        self.regex = regex

    def compile(self, node: tuple[Any, ...], bound: frozenset[str]) -> PyProgram:
        kind = node[0]
        program: PyProgram = getattr(self, "c_" + kind)(node, bound)
        if kind != "lit" and _constant(node):
            try:  # literals and operators alone: computed once, here (["example.com"], 19 * 60)
                value = program(Scope({}, {}, {}, {}))
            except Defer:
                return program  # it fails: each run defers, and the package reports it
            return lambda s: value
        return program

    def c_lit(self, node: tuple[Any, ...], bound: frozenset[str]) -> PyProgram:
        value = node[1]
        return lambda s: value

    def c_ident(self, node: tuple[Any, ...], bound: frozenset[str]) -> PyProgram:
        name = node[1]
        if name in bound:

            def local(s: Scope) -> Any:
                return s.local[name]

            return local
        if name in self.lets:

            def let(s: Scope) -> Any:
                value = s.memo.get(name, _NONE)
                return s.let(name) if value is _NONE or value is _FAILED else value

            return let
        if name in self.roots:

            def root(s: Scope) -> Any:
                value = s.vars.get(name, _NONE)
                if value is _NONE:
                    raise Defer
                return value

            return root
        if name in _TYPES:
            t = _TYPES[name]
            return lambda s: t
        raise _Unsupported(f"name {name}")

    def c_select(self, node: tuple[Any, ...], bound: frozenset[str]) -> PyProgram:
        fields: list[str] = []
        base = node
        while base[0] == "select":
            fields.insert(0, base[2])
            base = base[1]
        if base[0] == "ident" and base[1] in self.roots and base[1] not in bound and base[1] not in self.lets:
            return _path(base[1], tuple(fields))
        operand, field = self.compile(node[1], bound), node[2]

        def select(s: Scope) -> Any:
            m = operand(s)
            if type(m) is dict:
                try:
                    return m[field]
                except KeyError:
                    raise Defer from None
            if isinstance(m, Mapping) and field in m:
                return m[field]
            raise Defer

        return select

    def c_index(self, node: tuple[Any, ...], bound: frozenset[str]) -> PyProgram:
        operand, key = self.compile(node[1], bound), self.compile(node[2], bound)

        def index(s: Scope) -> Any:
            c, k = operand(s), key(s)
            tk = type(k)
            if type(c) in _LISTS:
                if tk is int and 0 <= k < len(c):
                    return c[k]
            elif tk is str and isinstance(c, Mapping):
                value = c.get(k, _NONE)
                if value is not _NONE:
                    return value
            raise Defer

        return index

    def c_list(self, node: tuple[Any, ...], bound: frozenset[str]) -> PyProgram:
        items = [self.compile(n, bound) for n in node[1]]
        return lambda s: [f(s) for f in items]

    def c_map(self, node: tuple[Any, ...], bound: frozenset[str]) -> PyProgram:
        entries = [(self.compile(k, bound), self.compile(v, bound)) for k, v in node[1]]

        def build(s: Scope) -> dict[str, Any]:
            out = {}
            for kf, vf in entries:
                k = kf(s)
                if type(k) is not str:
                    raise Defer
                out[k] = vf(s)
            return out

        return build

    def c_not(self, node: tuple[Any, ...], bound: frozenset[str]) -> PyProgram:
        operand = self.compile(node[1], bound)

        def not_(s: Scope) -> bool:
            v = operand(s)
            if v is True:
                return False
            if v is False:
                return True
            raise Defer

        return not_

    def c_neg(self, node: tuple[Any, ...], bound: frozenset[str]) -> PyProgram:
        if node[1][0] == "lit" and type(node[1][1]) in (int, float):
            value = _neg(node[1][1])
            return lambda s: value
        operand = self.compile(node[1], bound)
        return lambda s: _neg(operand(s))

    def c_and(self, node: tuple[Any, ...], bound: frozenset[str]) -> PyProgram:
        return self._logic(node, bound, False)

    def c_or(self, node: tuple[Any, ...], bound: frozenset[str]) -> PyProgram:
        return self._logic(node, bound, True)

    def _logic(self, node: tuple[Any, ...], bound: frozenset[str], decides: bool) -> PyProgram:
        left, right = self.compile(node[1], bound), self.compile(node[2], bound)
        deciding, other = decides, not decides

        def logic(s: Scope) -> bool:
            # Either side equal to `deciding` decides, even when the other errs; both `other`: `other`.
            try:
                a = left(s)
            except Defer:
                a = _FAILED
            if a is deciding:
                return decides
            b = right(s)  # a Defer here leaves it to the package, which may still absorb a's error
            if b is deciding:
                return decides
            if a is other and b is other:
                return not decides
            raise Defer

        return logic

    def c_cond(self, node: tuple[Any, ...], bound: frozenset[str]) -> PyProgram:
        c, a, b = (self.compile(n, bound) for n in node[1:])

        def cond(s: Scope) -> Any:
            v = c(s)
            if v is True:
                return a(s)
            if v is False:
                return b(s)
            raise Defer

        return cond

    def c_bin(self, node: tuple[Any, ...], bound: frozenset[str]) -> PyProgram:
        op, left = _BINARY[node[1]], self.compile(node[2], bound)
        if node[3][0] == "lit":
            value = node[3][1]
            fast = _NUMBER_TESTS.get(node[1]) if type(value) in (int, float) and abs(value) <= _EXACT else None
            if fast is not None:  # `amount > 500.0`: a number of either kind compares directly
                return _number_test(left, value, fast, op)
            return lambda s: op(left(s), value)
        right = self.compile(node[3], bound)
        return lambda s: op(left(s), right(s))

    # calls: macros, builtins, ours, extensions

    def c_call(self, node: tuple[Any, ...], bound: frozenset[str]) -> PyProgram:
        _, name, target, args = node
        if target is None:
            return self._global(name, args, bound)
        if (
            target[0] == "ident"
            and target[1] not in bound
            and target[1] not in self.lets
            and target[1] not in self.roots
        ):
            full = f"{target[1]}.{name}"  # a namespaced function: math.floor(x)
            if full in self.extensions:
                return _caller(self._args(args, bound), function=self.extensions[full])
            raise _Unsupported(f"the function {full}()")
        if name in _MACROS and args and args[0][0] == "ident":
            return _MACROS[name](self, target, args, bound)
        t = self.compile(target, bound)
        if name == "size" and not args:
            return lambda s: _size(t(s))
        if name in _METHODS1 and len(args) == 1:
            f, a = _METHODS1[name], self.compile(args[0], bound)
            return lambda s: f(t(s), a(s))
        if name == "matches" and len(args) == 1:
            return self._matches(t, args[0])
        if name in self.extensions and name not in _METHODS1:
            return _caller([(False, t), *self._args(args, bound)], function=self.extensions[name])
        raise _Unsupported(f"the method .{name}()")

    def _global(self, name: str, args: list[tuple[Any, ...]], bound: frozenset[str]) -> PyProgram:
        if name == "has":
            if len(args) != 1 or args[0][0] != "select":
                raise _Unsupported("has")
            operand, field = self.compile(args[0][1], bound), args[0][2]

            def has(s: Scope) -> bool:
                m = operand(s)
                if isinstance(m, Mapping):
                    return field in m
                raise Defer

            return has
        if name in _GLOBALS1 and len(args) == 1:
            f, a = _GLOBALS1[name], self.compile(args[0], bound)
            return lambda s: f(a(s))
        if name == "matches" and len(args) == 2:
            return self._matches(self.compile(args[0], bound), args[1])
        if name in self.functions:
            per_decision = name in self.bound_functions
            if per_decision and args and args[0] == ("ident", "history") and "history" not in bound | self.lets:
                args = [("lit", None), *args[1:]]  # a history function reads its index, not the variable
            return _caller(self._args(args, bound), name=name, per_decision=per_decision)
        if name in self.extensions and name not in _METHODS1:
            return _caller(self._args(args, bound), function=self.extensions[name])
        raise _Unsupported(f"the function {name}()")

    def _args(self, nodes: list[tuple[Any, ...]], bound: frozenset[str]) -> list[tuple[bool, Any]]:
        """Each argument as (True, its value) when it is a literal, else (False, its program)."""
        return [(True, n[1]) if n[0] == "lit" else (False, self.compile(n, bound)) for n in nodes]

    def _matches(self, text: PyProgram, pattern: tuple[Any, ...]) -> PyProgram:
        if pattern[0] != "lit" or type(pattern[1]) is not str:
            raise _Unsupported("matches() with a pattern that is not a literal")
        search = self.regex(pattern[1])
        if search is None:
            raise _Unsupported(f"matches() with a pattern Python's re reads differently: {pattern[1]!r}")

        def matches(s: Scope) -> bool:
            v = text(s)
            if type(v) is not str:
                raise Defer
            return search(v)

        return matches


def _path(root: str, fields: tuple[str, ...]) -> PyProgram:
    """``root.a.b...`` in one step. The root variables hold JSON-like data, where only a map can be indexed
    by a name: anything else (a list, a text) fails, and so does a missing key, as in the package."""
    if len(fields) == 2:
        f1, f2 = fields

        def path2(s: Scope) -> Any:
            try:
                return s.vars[root][f1][f2]
            except Exception:
                raise Defer from None

        return path2

    def path(s: Scope) -> Any:
        try:
            value = s.vars[root]
            for f in fields:
                value = value[f]
        except Exception:
            raise Defer from None
        return value

    return path


_OPERATORS = frozenset({"list", "map", "not", "neg", "and", "or", "cond", "bin"})


def _constant(node: tuple[Any, ...]) -> bool:
    """Whether ``node`` is made of literals and operators alone (no name, field or call)."""
    kind = node[0]
    if kind == "lit":
        return True
    if kind not in _OPERATORS:
        return False
    if kind == "map":
        return all(_constant(k) and _constant(v) for k, v in node[1])
    if kind == "list":
        return all(_constant(n) for n in node[1])
    if kind == "bin":
        return _constant(node[2]) and _constant(node[3])
    return all(_constant(n) for n in node[1:])


def _caller(
    args: list[tuple[bool, Any]],
    function: Callable[..., Any] | None = None,
    name: str = "",
    per_decision: bool = False,
) -> PyProgram:
    """A call with ``args`` (see ``_Compiler._args``) of ``function`` (an extension), or of fsa_guard's
    function ``name`` (from ``Scope.fns`` when ``per_decision``, else ``Scope.static``). A failure is left
    to the CEL package, and so is a call given a type value (the package hands over its name) and an extension
    given a map (the package hands it over in hash order). No tuple gets here: data holding one is left to the
    package whole (``unmodelled``), as is a result holding what this module does not model (``_plain``)."""
    fixed = [value if const else None for const, value in args]
    dynamic = [(i, value) for i, (const, value) in enumerate(args) if not const]
    extension = function is not None

    def call(s: Scope) -> Any:
        values = fixed.copy()
        for i, program in dynamic:
            v = values[i] = program(s)
            if type(v) is CelType:
                raise Defer  # the package hands a function the type's name
        if extension:
            if any(isinstance(v, Mapping) for v in values):
                raise Defer
            fn = function
        else:
            fn = (s.fns if per_decision else s.static)[name]
        try:
            result = fn(*values)  # type: ignore[misc]
        except Exception:
            raise Defer from None
        return result if type(result) in _SAFE else _plain(result)

    return call


def _macro(kind: str) -> Callable[[_Compiler, tuple[Any, ...], list[tuple[Any, ...]], frozenset[str]], PyProgram]:
    def build(c: _Compiler, target: tuple[Any, ...], args: list[tuple[Any, ...]], bound: frozenset[str]) -> PyProgram:
        var = args[0][1]
        if (kind == "map" and len(args) not in (2, 3)) or (kind != "map" and len(args) != 2):
            raise _Unsupported(f"{kind} arguments")
        coll = c.compile(target, bound)
        inner = bound | {var}
        body = [c.compile(a, inner) for a in args[1:]]
        return _MACRO_RUNNERS[kind](coll, var, body)

    return build


def _items(v: Any, ordered: bool) -> Any:
    if type(v) in _LISTS:
        return v
    if isinstance(v, Mapping) and not ordered:
        return list(v)  # the package iterates a map in hash order: only order-free macros take one
    raise Defer


def _quantifier(stop: bool) -> Callable[[PyProgram, str, list[PyProgram]], PyProgram]:
    """``exists`` (``stop`` True) or ``all`` (``stop`` False): over a list, the first element whose predicate
    is ``stop`` decides, as in the package; over a map (hash order there) every element is checked first."""
    go_on, decided = not stop, stop

    def build(coll: PyProgram, var: str, body: list[PyProgram]) -> PyProgram:
        (pred,) = body

        def quantify(s: Scope) -> bool:
            c = coll(s)
            in_order = type(c) in _LISTS
            items, loc = _items(c, False), s.local
            old = loc.get(var, _NONE)
            hit = False
            try:
                for x in items:
                    loc[var] = x
                    r = pred(s)
                    if r is stop:
                        if in_order:
                            return decided
                        hit = True
                    elif r is not go_on:
                        raise Defer
                return decided if hit else go_on
            finally:
                _restore(loc, var, old)

        return quantify

    return build


def _run_exists_one(coll: PyProgram, var: str, body: list[PyProgram]) -> PyProgram:
    (pred,) = body

    def exists_one(s: Scope) -> bool:
        items, loc = _items(coll(s), False), s.local
        old = loc.get(var, _NONE)
        n = 0
        try:
            for x in items:
                loc[var] = x
                r = pred(s)
                if r is True:
                    n += 1
                elif r is not False:
                    raise Defer
            return n == 1
        finally:
            _restore(loc, var, old)

    return exists_one


def _run_filter(coll: PyProgram, var: str, body: list[PyProgram]) -> PyProgram:
    (pred,) = body

    def filter_(s: Scope) -> list[Any]:
        items, loc = _items(coll(s), True), s.local
        old = loc.get(var, _NONE)
        out = []
        try:
            for x in items:
                loc[var] = x
                r = pred(s)
                if r is True:
                    out.append(x)
                elif r is not False:
                    raise Defer
            return out
        finally:
            _restore(loc, var, old)

    return filter_


def _run_map(coll: PyProgram, var: str, body: list[PyProgram]) -> PyProgram:
    pred, fn = (None, body[0]) if len(body) == 1 else body

    def map_(s: Scope) -> list[Any]:
        items, loc = _items(coll(s), True), s.local
        old = loc.get(var, _NONE)
        out = []
        try:
            for x in items:
                loc[var] = x
                if pred is not None:
                    r = pred(s)
                    if r is False:
                        continue
                    if r is not True:
                        raise Defer
                out.append(fn(s))
            return out
        finally:
            _restore(loc, var, old)

    return map_


def _restore(loc: dict[str, Any], var: str, old: Any) -> None:
    if old is _NONE:
        loc.pop(var, None)
    else:
        loc[var] = old


_MACRO_RUNNERS = {
    "exists": _quantifier(True),
    "all": _quantifier(False),
    "exists_one": _run_exists_one,
    "filter": _run_filter,
    "map": _run_map,
}
_MACROS = {name: _macro(name) for name in _MACRO_RUNNERS}


def compile_py(
    src: str,
    lets: frozenset[str],
    roots: frozenset[str],
    functions: frozenset[str],
    bound_functions: frozenset[str],
    extensions: Mapping[str, Callable[..., Any]],
    regex: Callable[[str], Callable[[Any], bool] | None],
) -> tuple[PyProgram | None, str]:
    """``src`` as a Python program over a :class:`Scope`, or (None, why) when it uses what this module does
    not model.

    ``lets`` and ``roots`` are the names it may read; ``functions`` are fsa_guard's own, called through
    ``Scope.static``, or ``Scope.fns`` for those in ``bound_functions``; ``extensions`` the CEL package's
    Python extension functions by name; ``regex`` gives a search function for a literal ``matches``
    pattern, or None where Python and the package read it apart.
    """
    try:
        tree = _Parser(src).parse()
        return _Compiler(lets, roots, functions, bound_functions, extensions, regex).compile(tree, frozenset()), ""
    except _Unsupported as exc:
        return None, str(exc)
    except RecursionError:
        return None, "its depth"
    except Defer:
        return None, "a constant that fails"  # -(least int): the package reports it
