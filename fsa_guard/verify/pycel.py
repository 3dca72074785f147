"""CEL evaluated in Python, for the expressions specs are made of.

Handing a decision's data to the CEL package converts every value into Rust (about a microsecond per
string, since it tries bool, int, float and datetime first), and that conversion was most of what a
decision cost. This module parses CEL itself and compiles each expression to one Python function (see
:class:`_Emitter`) that reads the same data where it lies.

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

import functools
import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from types import CodeType, FunctionType
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

    __slots__ = ("fns", "lets", "memo", "static", "vars")

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

    def let(self, name: str) -> Any:
        value = self.memo.get(name, _NONE)
        if value is _NONE:
            program = self.lets.get(name)
            if program is None:
                raise Defer
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
    if ta is CelType and tb is CelType:  # `type(x) == list`: before the slow isinstance of an ABC below
        return bool(a.name == b.name)
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


_NUMBER_TESTS = frozenset({"<", "<=", ">", ">=", "==", "!="})  # ops that compare numbers directly


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


# ---------------------------------------------------------------- compiling to Python functions


class _Emitter:
    """Writes one expression as the body of a Python function over a :class:`Scope`.

    A tree of closures costs a Python call per node, and each node's function object, cells and code are
    memory a decision touches: inside an agent, between other work, that memory is out of the CPU's caches
    and the misses cost more than the calls. Here each node becomes a few statements of one function, its
    value in a local variable; an error is ``raise Defer``, exactly where the node would have raised it.
    ``&&`` and ``||`` chains are written flat (their terms one after the other), and a part nested deeper than
    Python compiles (20 blocks) is a function of its own. Every literal, key and name is a constant of the
    function, never source text, so expressions of the same shape share their compiled code.
    """

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
        self.lines: list[str] = []
        self.consts: list[Any] = []
        self.n = 0

    def program(self, node: tuple[Any, ...], fold: bool = True, bound: Mapping[str, str] | None = None) -> PyProgram:
        """``node`` as a function of a :class:`Scope` (``fold``: a constant computed once, here), and of the
        macro variables in ``bound`` (CEL name: Python name) when a part of an expression is written apart."""
        bound = bound or {}
        result = self.expr(node, dict(bound), 2, fold)
        # The constants are the function's defaults: read as locals, and held in one tuple per expression, where
        # cells would be one object each for a decision to fetch from memory.
        params = ["s", *bound.values(), *(f"_k{i}=None" for i in range(len(self.consts)))]
        lines = [f"def _program({', '.join(params)}):"]
        body = "\n".join(self.lines)
        if "_vars" in body:
            lines.append("  _vars = s.vars")
        if "_memo" in body:
            lines.append("  _memo = s.memo")
        code = _code("\n".join([*lines, body, f"  return {result}\n"]))
        if code is None:
            raise _Unsupported("its depth")
        made: PyProgram = FunctionType(code, globals(), "_program", tuple(self.consts))
        return made

    # -- writing

    def _tmp(self, prefix: str = "_t") -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def _line(self, ind: int, text: str) -> None:
        self.lines.append(" " * ind + text)

    def _const(self, value: Any) -> str:
        if value is None or value is True or value is False:
            return repr(value)
        self.consts.append(value)  # a default of the function: as fast as a literal, and safe after `is`
        return f"_k{len(self.consts) - 1}"

    def _is_const(self, expr: str) -> bool:
        """Whether ``expr`` (what a node wrote) is a constant that is neither a type value nor a map."""
        if expr in ("None", "True", "False"):
            return True
        if not expr.startswith("_k"):
            return False
        value = self.consts[int(expr[2:])]
        return type(value) is not CelType and not isinstance(value, Mapping)

    def _set(self, ind: int, value: str) -> str:
        t = self._tmp()
        self._line(ind, f"{t} = {value}")
        return t

    def _defer_if(self, ind: int, test: str) -> None:
        self._line(ind, f"if {test}:")
        self._line(ind + 1, "raise Defer")

    # -- nodes: each writes its statements at ``ind`` and returns an expression (a name or a constant)

    def expr(self, node: tuple[Any, ...], bound: dict[str, str], ind: int, fold: bool = True) -> str:
        kind = node[0]
        if ind > _DEEPEST and kind not in ("lit", "ident"):
            # Python compiles at most 20 blocks inside each other: a part nested this deep is a function of its own
            sub = _Emitter(*self._config())
            sub.n = self.n  # the names of its macro variables stay apart from those it is handed
            program = sub.program(node, fold, bound)
            self.n = sub.n
            return self._set(ind, f"{self._const(program)}({', '.join(['s', *bound.values()])})")
        if fold and kind != "lit" and _constant(node):
            try:  # literals and operators alone: computed once, here (["example.com"], 19 * 60)
                value = _Emitter(*self._config()).program(node, fold=False)(Scope({}, {}, {}, {}))
            except Defer:
                pass  # it fails: each run defers, and the package reports it
            else:
                return self._const(value)
        method: Callable[[tuple[Any, ...], dict[str, str], int], str] = getattr(self, "e_" + kind)
        return method(node, bound, ind)

    def _config(self) -> tuple[Any, ...]:
        return self.lets, self.roots, self.functions, self.bound_functions, self.extensions, self.regex

    def e_lit(self, node: tuple[Any, ...], bound: dict[str, str], ind: int) -> str:
        return self._const(node[1])

    def e_ident(self, node: tuple[Any, ...], bound: dict[str, str], ind: int) -> str:
        name = node[1]
        if name in bound:
            return bound[name]
        if name in self.lets:
            key = self._const(name)
            t = self._set(ind, f"_memo.get({key}, _NONE)")
            self._line(ind, f"if {t} is _NONE or {t} is _FAILED:")
            self._line(ind + 1, f"{t} = s.let({key})")
            return t
        if name in self.roots:
            t = self._set(ind, f"_vars.get({self._const(name)}, _NONE)")
            self._defer_if(ind, f"{t} is _NONE")
            return t
        if name in _TYPES:
            return self._const(_TYPES[name])
        raise _Unsupported(f"name {name}")

    def e_select(self, node: tuple[Any, ...], bound: dict[str, str], ind: int) -> str:
        fields: list[str] = []
        base = node
        while base[0] == "select":
            fields.insert(0, base[2])
            base = base[1]
        if base[0] == "ident" and base[1] in self.roots and base[1] not in bound and base[1] not in self.lets:
            # `root.a.b` in one step. The roots hold JSON-like data, where only a map can be indexed by a name:
            # anything else (a list, a text) fails, and so does a missing key, as in the package.
            t = self._tmp()
            self._line(ind, "try:")
            self._line(ind + 1, f"{t} = _vars[{self._const(base[1])}]" + "".join(f"[{self._const(f)}]" for f in fields))
            self._line(ind, "except Exception:")
            self._line(ind + 1, "raise Defer from None")
            return t
        operand = self.expr(node[1], bound, ind)
        return self._set(ind, f"_select({operand}, {self._const(node[2])})")

    def e_index(self, node: tuple[Any, ...], bound: dict[str, str], ind: int) -> str:
        operand = self.expr(node[1], bound, ind)
        key = self.expr(node[2], bound, ind)
        return self._set(ind, f"_index({operand}, {key})")

    def e_list(self, node: tuple[Any, ...], bound: dict[str, str], ind: int) -> str:
        items = [self.expr(n, bound, ind) for n in node[1]]
        return self._set(ind, f"[{', '.join(items)}]")

    def e_map(self, node: tuple[Any, ...], bound: dict[str, str], ind: int) -> str:
        t = self._set(ind, "{}")
        for k, v in node[1]:
            key = self.expr(k, bound, ind)
            self._defer_if(ind, f"type({key}) is not str")
            value = self.expr(v, bound, ind)
            self._line(ind, f"{t}[{key}] = {value}")
        return t

    def e_not(self, node: tuple[Any, ...], bound: dict[str, str], ind: int) -> str:
        return self.e_cond(("cond", node[1], ("lit", False), ("lit", True)), bound, ind)  # !x is x ? false : true

    def e_neg(self, node: tuple[Any, ...], bound: dict[str, str], ind: int) -> str:
        if node[1][0] == "lit" and type(node[1][1]) in (int, float):
            return self._const(_neg(node[1][1]))
        return self._set(ind, f"_neg({self.expr(node[1], bound, ind)})")

    def e_and(self, node: tuple[Any, ...], bound: dict[str, str], ind: int) -> str:
        return self._logic(node, bound, ind, False)

    def e_or(self, node: tuple[Any, ...], bound: dict[str, str], ind: int) -> str:
        return self._logic(node, bound, ind, True)

    def _logic(self, node: tuple[Any, ...], bound: dict[str, str], ind: int, decides: bool) -> str:
        """A chain of ``||`` (``decides`` True) or ``&&``, nested either way, as its terms in order: the first
        term equal to ``decides`` decides, even where others erred; all the other value: that; else an error.
        This is what the nested binary operators give, each absorbing the error of a side the other decides."""
        terms: list[tuple[Any, ...]] = []
        pending = [node]
        while pending:
            n = pending.pop()
            if n[0] == node[0]:
                pending += [n[2], n[1]]
            else:
                terms.append(n)
        done, failed = self._tmp(), self._tmp()
        self._line(ind, f"{done} = {failed} = False")
        for i, term in enumerate(terms):
            at = ind
            if i:
                self._line(ind, f"if not {done}:")
                at = ind + 1
            v = self._tmp()
            self._line(at, "try:")
            self._line(at + 1, f"{v} = {self.expr(term, bound, at + 1)}")
            self._line(at, "except Defer:")
            self._line(at + 1, f"{v} = _FAILED")
            self._line(at, f"if {v} is {decides}:")
            self._line(at + 1, f"{done} = True")
            self._line(at, f"elif {v} is not {not decides}:")
            self._line(at + 1, f"{failed} = True")
        t = self._tmp()
        self._line(ind, f"if {done}:")
        self._line(ind + 1, f"{t} = {decides}")
        self._line(ind, f"elif {failed}:")
        self._line(ind + 1, "raise Defer")
        self._line(ind, "else:")
        self._line(ind + 1, f"{t} = {not decides}")
        return t

    def e_cond(self, node: tuple[Any, ...], bound: dict[str, str], ind: int) -> str:
        c = self.expr(node[1], bound, ind)
        t = self._tmp()
        self._line(ind, f"if {c} is True:")
        self._line(ind + 1, f"{t} = {self.expr(node[2], bound, ind + 1)}")
        self._line(ind, f"elif {c} is False:")
        self._line(ind + 1, f"{t} = {self.expr(node[3], bound, ind + 1)}")
        self._line(ind, "else:")
        self._line(ind + 1, "raise Defer")
        return t

    def e_bin(self, node: tuple[Any, ...], bound: dict[str, str], ind: int) -> str:
        op = node[1]
        function = self._const(_BINARY[op])
        left = self.expr(node[2], bound, ind)
        right_node = node[3]
        if right_node[0] == "lit":
            value = right_node[1]
            right = self._const(value)
            if op in _NUMBER_TESTS and type(value) in (int, float) and abs(value) <= _EXACT:
                # `amount > 500.0`: a double (not NaN, which the package will not order) or an int within 2**53
                # compares directly; anything else takes the general path
                t = self._tmp()
                a = left if left.isidentifier() and left not in ("True", "False", "None") else self._set(ind, left)
                number = f"(type({a}) is float and {a} == {a}) or (type({a}) is int and -{_EXACT} <= {a} <= {_EXACT})"
                self._line(ind, f"if {number}:")
                self._line(ind + 1, f"{t} = {a} {op} {right}")
                self._line(ind, "else:")
                self._line(ind + 1, f"{t} = {function}({a}, {right})")
                return t
        else:
            right = self.expr(right_node, bound, ind)
        return self._set(ind, f"{function}({left}, {right})")

    # calls: macros, builtins, ours, extensions

    def e_call(self, node: tuple[Any, ...], bound: dict[str, str], ind: int) -> str:
        _, name, target, args = node
        if target is None:
            return self._global(name, args, bound, ind)
        if (
            target[0] == "ident"
            and target[1] not in bound
            and target[1] not in self.lets
            and target[1] not in self.roots
        ):
            full = f"{target[1]}.{name}"  # a namespaced function: math.floor(x)
            if full in self.extensions:
                return self._call(self._args(args, bound, ind), ind, function=self.extensions[full])
            raise _Unsupported(f"the function {full}()")
        if name in _MACROS and args and args[0][0] == "ident":
            return self._macro(name, target, args, bound, ind)
        t = self.expr(target, bound, ind)
        if name == "size" and not args:
            return self._set(ind, f"_size({t})")
        if name in _METHODS1 and len(args) == 1:
            return self._set(ind, f"{self._const(_METHODS1[name])}({t}, {self.expr(args[0], bound, ind)})")
        if name == "matches" and len(args) == 1:
            return self._matches(t, args[0], ind)
        if name in self.extensions and name not in _METHODS1:
            target_arg = (False, t)
            return self._call([target_arg, *self._args(args, bound, ind)], ind, function=self.extensions[name])
        raise _Unsupported(f"the method .{name}()")

    def _global(self, name: str, args: list[tuple[Any, ...]], bound: dict[str, str], ind: int) -> str:
        if name == "has":
            if len(args) != 1 or args[0][0] != "select":
                raise _Unsupported("has")
            m = self.expr(args[0][1], bound, ind)
            t = self._tmp()
            self._line(ind, f"if type({m}) is dict or isinstance({m}, Mapping):")
            self._line(ind + 1, f"{t} = {self._const(args[0][2])} in {m}")
            self._line(ind, "else:")
            self._line(ind + 1, "raise Defer")
            return t
        if name in _GLOBALS1 and len(args) == 1:
            v = self.expr(args[0], bound, ind)
            return v if name == "dyn" else self._set(ind, f"{self._const(_GLOBALS1[name])}({v})")
        if name == "matches" and len(args) == 2:
            return self._matches(self.expr(args[0], bound, ind), args[1], ind)
        if name in self.functions:
            per_decision = name in self.bound_functions
            raw = "history" in bound or "history" in self.lets
            if per_decision and args and args[0] == ("ident", "history") and not raw:
                args = [("lit", None), *args[1:]]  # a history function reads its index, not the variable
            scope = "s.fns" if per_decision else "s.static"
            return self._call(self._args(args, bound, ind), ind, function=f"{scope}[{self._const(name)}]")
        if name in self.extensions and name not in _METHODS1:
            return self._call(self._args(args, bound, ind), ind, function=self.extensions[name])
        raise _Unsupported(f"the function {name}()")

    def _args(self, nodes: list[tuple[Any, ...]], bound: dict[str, str], ind: int) -> list[tuple[bool, str]]:
        """Each argument as (True, a constant) or (False, its value; a type value is refused as soon as it is
        made: the package hands a function the type's name)."""
        out: list[tuple[bool, str]] = []
        for n in nodes:
            if n[0] == "lit":
                out.append((True, self._const(n[1])))
                continue
            v = self.expr(n, bound, ind)
            if not self._is_const(v):  # a constant was checked here, when it was computed
                self._defer_if(ind, f"type({v}) is CelType")
            out.append((self._is_const(v), v))
        return out

    def _call(self, args: list[tuple[bool, str]], ind: int, function: Any) -> str:
        """A call of an extension (``function`` a callable) or of fsa_guard's own (``function`` the text that
        finds it in the scope). A failure is left to the CEL package, and so is an extension given a map (the
        package hands it over in hash order). No tuple gets here: data holding one is left to the package whole
        (``unmodelled``), as is a result holding what this module does not model (``_plain``)."""
        if isinstance(function, str):
            fn = self._set(ind, function)
        else:
            fn = self._const(function)
            for literal, v in args:
                if not literal:
                    self._defer_if(ind, f"isinstance({v}, Mapping)")
        t = self._tmp()
        self._line(ind, "try:")
        self._line(ind + 1, f"{t} = {fn}({', '.join(v for _, v in args)})")
        self._line(ind, "except Exception:")
        self._line(ind + 1, "raise Defer from None")
        self._line(ind, f"if type({t}) is not bool and type({t}) is not float:")  # nothing inside to check
        self._line(ind + 1, f"{t} = _plain({t})")
        return t

    def _matches(self, text: str, pattern: tuple[Any, ...], ind: int) -> str:
        if pattern[0] != "lit" or type(pattern[1]) is not str:
            raise _Unsupported("matches() with a pattern that is not a literal")
        search = self.regex(pattern[1])
        if search is None:
            raise _Unsupported(f"matches() with a pattern Python's re reads differently: {pattern[1]!r}")
        self._defer_if(ind, f"type({text}) is not str")
        return self._set(ind, f"{self._const(search)}({text})")

    def _macro(
        self, kind: str, target: tuple[Any, ...], args: list[tuple[Any, ...]], bound: dict[str, str], ind: int
    ) -> str:
        """``exists`` and ``all`` stop at the first element of a list whose predicate decides, as in the package;
        over a map (hash order there) every element is checked first. ``filter`` and ``map`` refuse a map."""
        if (kind == "map" and len(args) not in (2, 3)) or (kind != "map" and len(args) != 2):
            raise _Unsupported(f"{kind} arguments")
        c = self.expr(target, bound, ind)
        var = self._tmp("_v")
        inner = {**bound, args[0][1]: var}
        items = self._set(ind, f"_items({c}, {kind in ('filter', 'map')})")
        t = self._tmp()
        if kind in ("exists", "all"):
            stop = kind == "exists"
            in_order, hit = self._tmp(), self._tmp()
            self._line(ind, f"{in_order} = type({c}) is list or type({c}) is tuple")
            self._line(ind, f"{hit} = False")
            self._line(ind, f"for {var} in {items}:")
            p = self.expr(args[1], inner, ind + 1)
            self._line(ind + 1, f"if {p} is {stop}:")
            self._line(ind + 2, f"{hit} = True")
            self._line(ind + 2, f"if {in_order}:")
            self._line(ind + 3, "break")
            self._line(ind + 1, f"elif {p} is not {not stop}:")
            self._line(ind + 2, "raise Defer")
            self._line(ind, f"{t} = {stop} if {hit} else {not stop}")
            return t
        if kind == "exists_one":
            self._line(ind, f"{t} = 0")
            self._each(var, items, args[1], inner, ind, f"{t} += 1")
            return self._set(ind, f"{t} == 1")
        self._line(ind, f"{t} = []")
        if kind == "filter":
            self._each(var, items, args[1], inner, ind, f"{t}.append({var})")
            return t
        self._line(ind, f"for {var} in {items}:")
        if len(args) == 3:
            p = self.expr(args[1], inner, ind + 1)
            self._line(ind + 1, f"if {p} is not True:")
            self._line(ind + 2, f"if {p} is False:")
            self._line(ind + 3, "continue")
            self._line(ind + 2, "raise Defer")
        self._line(ind + 1, f"{t}.append({self.expr(args[-1], inner, ind + 1)})")
        return t

    def _each(
        self, var: str, items: str, pred: tuple[Any, ...], inner: dict[str, str], ind: int, when_true: str
    ) -> None:
        """A loop over ``items`` that runs ``when_true`` where ``pred`` holds, and fails where it is not a bool."""
        self._line(ind, f"for {var} in {items}:")
        p = self.expr(pred, inner, ind + 1)
        self._line(ind + 1, f"if {p} is True:")
        self._line(ind + 2, when_true)
        self._line(ind + 1, f"elif {p} is not False:")
        self._line(ind + 2, "raise Defer")


@functools.lru_cache(maxsize=1024)
def _code(source: str) -> CodeType | None:
    """The code of the function ``source`` defines, or None where Python cannot compile it (blocks nested too
    deep). Every name, key and literal but true, false and null is a default of that function, so expressions of
    the same shape (specs written from a template) share their code, and a spec of thousands of norms is
    compiled in a few shapes."""
    try:
        module = compile(source, "<cel>", "exec")
    except (SyntaxError, RecursionError, MemoryError):
        return None
    return next(c for c in module.co_consts if isinstance(c, CodeType))


_DEEPEST = 16  # indentation of the generated code (each block adds at most 2) beyond which a part is written apart
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


def _select(m: Any, field: str) -> Any:
    if type(m) is dict:
        value = m.get(field, _NONE)
        if value is not _NONE:
            return value
    elif isinstance(m, Mapping) and field in m:
        return m[field]
    raise Defer


def _index(c: Any, k: Any) -> Any:
    tk = type(k)
    if type(c) in _LISTS:
        if tk is int and 0 <= k < len(c):
            return c[k]
    elif tk is str and isinstance(c, Mapping):
        value = c.get(k, _NONE)
        if value is not _NONE:
            return value
    raise Defer


def _items(v: Any, ordered: bool) -> Any:
    if type(v) in _LISTS:
        return v
    if isinstance(v, Mapping) and not ordered:
        return list(v)  # the package iterates a map in hash order: only order-free macros take one
    raise Defer


_MACROS = frozenset({"exists", "all", "exists_one", "filter", "map"})


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
        return _Emitter(lets, roots, functions, bound_functions, extensions, regex).program(tree), ""
    except _Unsupported as exc:
        return None, str(exc)
    except RecursionError:
        return None, "its depth"
    except Defer:
        return None, "a constant that fails"  # -(least int): the package reports it
