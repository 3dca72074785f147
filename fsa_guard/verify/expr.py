"""Compile CEL expressions once, at load time, and check what the CEL package's compile step does not.

``cel.compile`` only parses. Here we also reject unknown variables, ``let`` names and functions, unknown
fields of ``action``, wrong argument counts for fsa_guard's own functions, and constant sub-expressions
that fail (``1 + "a"``), each with a did-you-mean hint.
"""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import cel
from cel.stdlib import EXTENSIONS

from ..errors import did_you_mean
from .functions import HISTORY_FUNCTIONS, STATIC_ARITY, _end_anchors, regex_search
from .pycel import RESERVED, PyProgram, compile_py

__all__ = ["ROOT_VARIABLES", "Compiled", "ExprError", "compile_batch", "compile_expr"]

#: The variables every expression may use.
ROOT_VARIABLES = ("action", "request", "history", "context", "state", "now")
ACTION_FIELDS = ("tool", "args")

# Functions and methods the Rust CEL runtime provides itself.
_BUILTIN_FUNCTIONS = frozenset(
    {
        "size", "has", "contains", "startsWith", "endsWith", "matches", "int", "uint", "double", "string",
        "bytes", "bool", "timestamp", "duration", "dyn", "type", "getFullYear", "getMonth", "getDayOfMonth",
        "getDayOfYear", "getDate", "getDayOfWeek", "getHours", "getMinutes", "getSeconds",
        "getMilliseconds", "of", "none", "hasValue", "value", "orValue", "or",
    }
)  # fmt: skip
# Identifiers that name namespaces or types rather than variables.
_NAMESPACES = frozenset({"math", "sets", "base64", "strings", "lists", "optional"})
_TYPE_NAMES = frozenset({"int", "uint", "double", "string", "bool", "bytes", "list", "map", "null_type", "type"})

EXTENSION_FUNCTIONS: dict[str, Any] = {name: fn for lib in EXTENSIONS.values() for name, fn in lib.items()}
_EXTENSION_LEAVES = frozenset(name.rsplit(".", 1)[-1] for name in EXTENSION_FUNCTIONS)

# CEL string literals: raw ones (r"...") have no escapes, so a backslash before their closing quote ends them;
# then // comments, which run to the end of the line. Both are blanked before names are looked for.
_STRING = re.compile(
    r"""(?:[bB]?[rR]|[rR][bB])(?:'''[\s\S]*?'''|\"\"\"[\s\S]*?\"\"\"|'[^'\n]*'|"[^"\n]*")"""
    r"""|[bB]?(?:'''(?:\\[\s\S]|[^\\])*?'''|\"\"\"(?:\\[\s\S]|[^\\])*?\"\"\"|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*")"""
    r"""|//[^\n]*"""
)
_MACRO_VAR = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_]\w*)\s*,")
_ROOT_MEMBER = re.compile(r"(?<![\w.])action\s*\.\s*([A-Za-z_]\w*)")
_CALL = re.compile(r"(\.\s*)?(?<![\w])([A-Za-z_]\w*)\s*\(")


class ExprError(ValueError):
    """An expression that cannot be compiled; ``hint`` suggests a fix."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True, slots=True)
class Compiled:
    """A compiled expression and the names it uses, for planning what each decision must bind."""

    source: str
    program: Any
    variables: frozenset[str]  # root variables used (action, history, ...)
    lets: frozenset[str]  # let names used
    functions: frozenset[str]  # fsa_guard and extension functions used (their registration names)
    raw_history: bool  # uses ``history`` other than as the first argument of a history function
    arg_keys: frozenset[str] | None = None  # the only action.args keys it can observe (None: any)
    context_keys: frozenset[str] | None = None  # the only context keys it can observe (None: any)
    state_keys: frozenset[str] | None = None  # "budgets.<id>" / "remembered.<id>" it reads (None: any)
    py: PyProgram | None = None  # the same expression evaluated in Python (see verify.pycel); None: CEL only
    py_missing: str = ""  # when py is None: what Python does not model ("the method .getHours()")


def _strip_strings(src: str) -> str:
    """``src`` with the inside of every string literal blanked, keeping every position where it was."""
    return _STRING.sub(_blank, src)


def _blank(m: re.Match[str]) -> str:
    text = m.group(0)
    if text.startswith("//"):
        return " " * len(text)
    return '"' + " " * (len(text) - 2) + '"'


def _call_args(bare: str, open_paren: int) -> tuple[list[tuple[int, int]], int] | None:
    """Spans of the top-level arguments of the call whose '(' is at ``open_paren``, and the ')' position."""
    depth, start, spans = 0, open_paren + 1, []
    for i in range(open_paren + 1, len(bare)):
        ch = bare[i]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                if bare[start:i].strip():
                    spans.append((start, i))
                return spans, i
            depth -= 1
        elif ch == "," and depth == 0:
            spans.append((start, i))
            start = i + 1
    return None


_GET = re.compile(r"(?<![\w.])get\s*\(")
_KEY_LITERAL = re.compile(r"""^\s*(["'])([A-Za-z_][A-Za-z0-9_]*)\1\s*$""")


def inline_get(src: str) -> str:
    """Rewrite ``get(action.args, "k", d)`` and ``get(context, "k", d)`` as native CEL.

    ``(has(action.args.k) ? action.args.k : d)`` means the same for these maps, and saves a call into Python
    that would first copy the whole map out of CEL.
    """
    bare = _strip_strings(src)
    m = _GET.search(bare)
    if m is None:
        return src
    parsed = _call_args(bare, m.end() - 1)
    if parsed is None:
        return src
    spans, close = parsed
    target = bare[spans[0][0] : spans[0][1]].strip() if spans else ""
    key = _KEY_LITERAL.match(src[spans[1][0] : spans[1][1]]) if len(spans) in (2, 3) else None
    if target not in ("action.args", "context") or key is None or key.group(2) in RESERVED:
        return src[: m.end()] + inline_get(src[m.end() :])
    field = f"{target}.{key.group(2)}"
    default = inline_get(src[spans[2][0] : spans[2][1]].strip()) if len(spans) == 3 else "null"
    return f"{src[: m.start()]}(has({field}) ? {field} : {default}){inline_get(src[close + 1 :])}"


_MATCHES = re.compile(r"(\.\s*)?(?<![\w])matches\s*\(")


# Where Python's re and CEL's regex engine read a pattern differently, or only one of them accepts it:
# POSIX classes, \Z, lookaround, backreferences, {,n}, possessive repeats; '$' under the m flag ('$' without
# it Python reads as the package does once written \Z: functions._end_anchors).
_UNSAFE_REGEX = re.compile(r"\(\?[a-zA-Z-]*x|\[\[:|\\[Zz]|\(\?[=!<>]|\\[1-9]|\{,|\(\?P|\*\+|\+\+|\?\+")
_MULTILINE = re.compile(r"\(\?[a-zA-Z-]*m")


def _same_in_both(pattern: str) -> bool:
    if _UNSAFE_REGEX.search(pattern) or ("$" in pattern and _MULTILINE.search(pattern)):
        return False
    try:
        cel.evaluate('"".matches(p)', {"p": pattern})  # CEL must accept it too, or its error has to stay
    except Exception:
        return False
    return True


def _py_regex(pattern: str) -> Any:
    """A search for ``pattern`` where Python's ``re`` reads it as the CEL package does, else None."""
    if not _same_in_both(pattern):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. "possible nested set": Python reads it another way
            re.compile(_end_anchors(pattern))
    except (re.error, Warning):
        return None
    return lambda text: regex_search(text, pattern)


def inline_matches(src: str) -> str:
    """Send ``matches()`` with a literal pattern to a cached Python regex.

    The CEL package compiles the pattern on every call (10-50 µs); ``re`` compiles it once. Only patterns
    that Python compiles the same way are moved; others keep CEL's own ``matches``.
    """
    bare = _strip_strings(src)
    out, last = [], 0
    for m in _MATCHES.finditer(bare):
        parsed = _call_args(bare, m.end() - 1)
        if parsed is None:
            continue
        spans = parsed[0]
        pattern_span = spans[0] if m.group(1) else (spans[1] if len(spans) == 2 else None)
        if pattern_span is None or (m.group(1) and len(spans) != 1):
            continue
        # the pattern as Python's evaluation sees it: without comments, and out of any parentheses
        literal = _code(src[pattern_span[0] : pattern_span[1]])
        while literal.startswith("(") and literal.endswith(")") and _STRING.fullmatch(literal[1:-1].strip()):
            literal = literal[1:-1].strip()
        if not _STRING.fullmatch(literal):
            continue
        try:
            pattern = ast.literal_eval(literal)
        except (ValueError, SyntaxError, TypeError):
            continue
        if not isinstance(pattern, str) or _py_regex(pattern) is None:
            continue
        name_at = bare.index("matches", m.start())
        out.append(src[last:name_at] + "fsa_matches")
        last = name_at + len("matches")
    return "".join(out) + src[last:]


_ROOT_USE = re.compile(r"(?<![\w.])(action|context)\b")
# A key is a field read, never a method call: action.args.exists(...) and context.size() see the whole map.
_ARG_KEY = re.compile(r"\s*\.\s*args\s*\.\s*([A-Za-z_]\w*)\b(?!\s*\()")
_TOOL_FIELD = re.compile(r"\s*\.\s*tool\b(?!\s*\()")
_CONTEXT_KEY = re.compile(r"\s*\.\s*([A-Za-z_]\w*)\b(?!\s*\()")


def _keys_used(bare: str, bound: set[str]) -> tuple[frozenset[str] | None, frozenset[str] | None]:
    """The ``action.args`` and ``context`` keys an expression can observe; None when it can see the whole map."""
    # a macro that binds the same name makes uses ambiguous in text: then the whole map is passed
    arg_keys: set[str] | None = None if "action" in bound else set()
    context_keys: set[str] | None = None if "context" in bound else set()
    for m in _ROOT_USE.finditer(bare):
        rest = bare[m.end() :]
        if m.group(1) == "action":
            if _TOOL_FIELD.match(rest):
                continue
            k = _ARG_KEY.match(rest)
            if k and arg_keys is not None:
                arg_keys.add(k.group(1))
            elif not k:
                arg_keys = None
        else:
            k = _CONTEXT_KEY.match(rest)
            if k and context_keys is not None:
                context_keys.add(k.group(1))
            elif not k:
                context_keys = None
    return (
        None if arg_keys is None else frozenset(arg_keys),
        None if context_keys is None else frozenset(context_keys),
    )


_STATE_USE = re.compile(r"(?<![\w.])state\b")
_STATE_KEY = re.compile(r"\s*\.\s*(budgets|remembered)\s*\.\s*([A-Za-z_][\w]*)\b(?!\s*\()")


def _state_keys(bare: str, bound: set[str]) -> frozenset[str] | None:
    """The state entries an expression reads, so a decision fetches only those from the store."""
    if "state" in bound:
        return None
    keys = set()
    for m in _STATE_USE.finditer(bare):
        k = _STATE_KEY.match(bare, m.end())
        if k is None:
            return None  # state read some other way (state.budgets[x], has(state...)): fetch it all
        keys.add(f"{k.group(1)}.{k.group(2)}")
    return frozenset(keys)


def compile_expr(src: str, let_names: Iterable[str] = ()) -> Compiled:
    """Compile ``src`` and check its references. Raises :class:`ExprError` with a hint."""
    try:
        program = cel.compile(src)
    except (ValueError, RuntimeError) as exc:
        message = str(exc).replace("Failed to parse expression", "CEL syntax error in")
        raise ExprError(message, "check the expression's syntax at the position marked") from None
    lets = frozenset(let_names)
    refs = program.references()
    bare = _strip_strings(src)
    bound = set(_MACRO_VAR.findall(bare))
    variables: set[str] = set()
    used_lets: set[str] = set()
    known_vars = (*ROOT_VARIABLES, *sorted(lets))
    for name in refs["variables"]:
        if name in ROOT_VARIABLES:
            variables.add(name)  # even when a macro also binds the name: some uses may still be the root
            continue
        if name in lets:
            used_lets.add(name)  # even when a macro also binds the name: other uses may be the let
        elif name in bound or name in _NAMESPACES or name in _TYPE_NAMES:
            continue
        else:
            raise ExprError(
                f"unknown name '{name}' in expression {src!r}",
                did_you_mean(name, known_vars)
                or f"the variables are {', '.join(ROOT_VARIABLES)} and let names; text is quoted: '\"{name}\"'",
            )
    for field in _ROOT_MEMBER.findall(bare):
        if field not in ACTION_FIELDS:
            raise ExprError(
                f"'action' has no field '{field}' (it has tool and args)",
                did_you_mean(field, ACTION_FIELDS) or f"for an argument write action.args.{field}",
            )
    ours = {**HISTORY_FUNCTIONS, **STATIC_ARITY}
    functions: set[str] = set()
    for name in refs["functions"]:
        if name[0] in "_@!-":  # operators (_+_, !_, -_ for negation) and macros
            continue
        if name in _EXTENSION_LEAVES:
            # registered even where the package has a builtin of that name (contains, bool): its builtin covers
            # text only and still comes first there; the extension covers lists, maps and sets.contains
            functions.update(full for full in EXTENSION_FUNCTIONS if full.rsplit(".", 1)[-1] == name)
        elif name in ours:
            functions.add(name)
        elif name not in _BUILTIN_FUNCTIONS:
            candidates = [*ours, *_BUILTIN_FUNCTIONS, *_EXTENSION_LEAVES]
            raise ExprError(
                f"unknown function '{name}' in expression {src!r}",
                did_you_mean(name, candidates) or "see README 'Functions in expressions' for what exists",
            )
    for m in _CALL.finditer(bare):
        method, name = m.group(1), m.group(2)
        if name not in ours or _preceded_by_namespace(bare, m.start()):
            continue
        parsed = _call_args(bare, m.end() - 1)
        n = (len(parsed[0]) if parsed else 0) + (1 if method else 0)
        lo, hi = ours[name]
        if not lo <= n <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}"
            hint = "history functions take history first" if name in HISTORY_FUNCTIONS else None
            raise ExprError(f"{name}() takes {want} arguments, got {n}", hint)
        if name in HISTORY_FUNCTIONS:
            span = parsed[0][0] if parsed and parsed[0] and not method else None
            if span is None or bare[slice(*span)].strip() != "history":
                # the function reads the run's history from its index: any other list would be silently replaced
                got = repr(src[slice(*span)].strip()) if span else f"a method call (write {name}(history, ...))"
                raise ExprError(
                    f"{name}() reads the whole history of the run: its first argument must be history, got {got}",
                    "to look at some calls only, narrow them with the tool and args arguments, or test your list "
                    "with a macro: asked.exists(c, mentions(c.output, action.args.recipient))",
                )
        if name in _ZONED and n == 2 and parsed:
            _check_zone(src[slice(*parsed[0][-1])].strip(), name)
    raw_history = "history" in variables and ("history" in bound or _uses_raw_history(bare))
    if not variables and not used_lets and not bound:
        _check_constant(program, src, functions)
    fast = inline_matches(inline_get(src))
    if fast != src:
        program = cel.compile(fast)
        bare = _strip_strings(fast)
        used = program.references()["functions"]
        if "get" not in used:
            functions.discard("get")
        if "fsa_matches" in used:
            functions.add("fsa_matches")
    arg_keys, context_keys = _keys_used(bare, bound)
    state_keys = _state_keys(bare, bound) if "state" in variables else frozenset()
    py, py_missing = compile_py(src, lets, _ROOTS, _OURS, _HISTORY, _PY_EXTENSIONS, _py_regex)
    return Compiled(
        source=src,
        program=program,
        variables=frozenset(variables),
        lets=frozenset(used_lets),
        functions=frozenset(functions),
        raw_history=raw_history,
        arg_keys=arg_keys,
        context_keys=context_keys,
        state_keys=state_keys,
        py=py,
        py_missing=py_missing,
    )


_ROOTS = frozenset(ROOT_VARIABLES)
_OURS = frozenset({*HISTORY_FUNCTIONS, *STATIC_ARITY})
_HISTORY = frozenset(HISTORY_FUNCTIONS)
# Extension functions as the CEL package reaches them: a name it implements itself is not registered.
_PY_EXTENSIONS = {n: f for n, f in EXTENSION_FUNCTIONS.items() if n.rsplit(".", 1)[-1] not in _BUILTIN_FUNCTIONS}


_ZONED = frozenset({"time", "hour", "minute_of_day", "weekday", "local_date", "day_start"})  # (t, zone)


def _check_zone(literal: str, function: str) -> None:
    """A time zone written as text must exist: a misspelt one would fail every decision."""
    if not _STRING.fullmatch(literal):
        return
    try:
        zone = ast.literal_eval(literal)
    except (ValueError, SyntaxError):
        return
    if not isinstance(zone, str):
        return
    try:
        ZoneInfo(zone)
    except (ValueError, ZoneInfoNotFoundError):
        hint = did_you_mean(zone, available_timezones()) or "an IANA name such as 'Europe/Berlin'"
        raise ExprError(f"{function}(): '{zone}' is not a time zone", hint) from None


def _preceded_by_namespace(text: str, start: int) -> bool:
    before = text[:start].rstrip()
    return before.endswith(".") and re.search(r"(math|sets|base64|strings|lists|optional)\s*\.$", before) is not None


_HISTORY_ARG = re.compile(r"(?<![\w.])(?:" + "|".join(HISTORY_FUNCTIONS) + r")\s*\(\s*history\s*(?=[,)])")


def _uses_raw_history(bare: str) -> bool:
    rest = _HISTORY_ARG.sub("(", bare)
    return re.search(r"(?<![\w.])history(?!\w)", rest) is not None


def _check_constant(program: Any, src: str, functions: Iterable[str]) -> None:
    """An expression without variables is evaluated now, so a type error shows at load time."""
    if set(functions) - set(EXTENSION_FUNCTIONS):
        return  # our own functions need a decision or a zone; their argument counts were checked above
    ctx = cel.Context(functions={n: EXTENSION_FUNCTIONS[n] for n in functions})
    try:
        program.execute(ctx)
    except Exception as exc:
        mixed = "No such overload" in str(exc)  # the usual cause: 1 + 1.0
        hint = "CEL does not mix int and double; write 1.0" if mixed else "fix the values it is given"
        raise ExprError(f"expression {src!r} always fails: {exc}", hint) from None


def _code(src: str) -> str:
    """``src`` without its ``//`` comments, so it can be written into a longer expression."""
    return _STRING.sub(lambda m: " " * len(m.group(0)) if m.group(0).startswith("//") else m.group(0), src).strip()


def _name_uses(text: str, name: str) -> list[tuple[int, int]] | None:
    """Where ``text`` reads the variable ``name``; None when a macro there binds the same name."""
    bare = _strip_strings(text)
    if name in _MACRO_VAR.findall(bare):
        return None
    spans = []
    for m in re.finditer(rf"(?<!\w){re.escape(name)}(?!\w)", bare):
        if bare[: m.start()].rstrip().endswith(".") or bare[m.end() :].lstrip().startswith("("):
            continue  # a field or a function of that name
        spans.append(m.span())
    return spans


def _write_in(text: str, spans: list[tuple[int, int]], value: str) -> str:
    for start, end in reversed(spans):
        text = f"{text[:start]}({value}){text[end:]}"
    return text


def compile_batch(items: Sequence[str], lets: Sequence[tuple[str, Compiled]]) -> Any:
    """One program whose value is the list of the values of ``items``, with the ``lets`` they use.

    Running one program instead of one per item, each asking Python for its lets, saves most of a
    decision's cost. A let read once is written in where it is read, so it is still computed only when
    reached; a let read more often is bound once around the list, as ``[value].map(name, ...)[0]``, and
    computed once (eagerly); a constant without calls is written in everywhere. ``lets`` come in dependency
    order. Raises :class:`ExprError` when the result does not compile.
    """
    holders = {"": "[" + ", ".join(f"({_code(s)})" for s in items) + "]"}
    bound: list[tuple[str, str]] = []
    for name, compiled in reversed(lets):  # a let's dependents are placed before the let itself
        src = _code(compiled.source)
        uses = {key: _name_uses(text, name) for key, text in holders.items()}
        count = sum(len(u) for u in uses.values() if u is not None)
        if count == 0 and None not in uses.values():
            continue  # read only by revisions, which run on their own
        constant = not (compiled.variables or compiled.lets or compiled.functions or _MACRO_VAR.search(src))
        # written in under a macro whose variable has the name of something it reads, it would read the variable
        reads = compiled.variables | compiled.lets
        captured = any(reads.intersection(_MACRO_VAR.findall(_strip_strings(holders[key]))) for key in uses)
        if None not in uses.values() and not captured and (count == 1 or constant):
            for key, spans in uses.items():
                if spans:
                    holders[key] = _write_in(holders[key], spans, src)
        else:
            holders[name] = src
            bound.append((name, src))
    text = holders[""]
    for name, _ in bound:  # innermost first: the first let in dependency order ends up outermost
        text = f"[{holders[name]}].map({name}, {text})[0]"
    try:
        return cel.compile(inline_matches(inline_get(text)))
    except (ValueError, RuntimeError) as exc:
        raise ExprError(f"the expressions of one tool do not combine: {exc}") from None
