"""The Python evaluator gives what the CEL package gives, or leaves the answer to it.

``verify.pycel`` evaluates spec expressions in Python to spare converting each decision's data into the
CEL package. Its one promise: where it answers, it answers what the package answers (same value, same
type); everywhere else — errors included — it defers. These tests hold it to that on hand-picked cases,
on thousands of generated expressions over generated data, and on every labelled case of the shipped
policies, deciding each one both ways.
"""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import cel
import pytest

from fsa_guard import Action, Call, Guard, load_spec
from fsa_guard.evaluate import load_scenarios
from fsa_guard.evaluate.scenarios import spend_before
from fsa_guard.verify import engine
from fsa_guard.verify.expr import _PY_EXTENSIONS, _py_regex, inline_get, inline_matches
from fsa_guard.verify.functions import STATIC_ARITY, static_functions
from fsa_guard.verify.pycel import Defer, Scope, compile_py

ROOT = Path(__file__).resolve().parents[2]
_DEFERRED = ("defer",)


STATIC = static_functions(UTC)
_FUNCTIONS = {**_PY_EXTENSIONS, **STATIC}


def _compile(src: str, names: frozenset[str]) -> Any:
    return compile_py(src, frozenset(), names, frozenset(STATIC_ARITY), frozenset(), _PY_EXTENSIONS, _py_regex)[0]


def run_both(src: str, variables: dict[str, Any]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """(what the CEL package gives, what Python gives): ("value", v), ("error", type) or ("defer",).

    The package runs the expression as the engine hands it over (``get`` and literal ``matches`` rewritten).
    """
    try:
        program = cel.compile(inline_matches(inline_get(src)))
        want: tuple[Any, ...] = ("value", program.execute(cel.Context(variables=variables, functions=_FUNCTIONS)))
    except Exception as exc:
        want = ("error", type(exc).__name__)
    py = _compile(src, frozenset(variables))
    if py is None:
        return want, ("unsupported",)
    try:
        got: tuple[Any, ...] = ("value", py(Scope(variables, {}, STATIC, {})))
    except Defer:
        got = _DEFERRED
    return want, got


def same(a: Any, b: Any) -> bool:
    """Equal and of the same CEL kind, all the way down (1 is not 1.0 nor true; -0.0 is not 0.0)."""
    if type(a) in (list, tuple) and type(b) in (list, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    return bool(a == b)


def agrees(src: str, variables: dict[str, Any]) -> tuple[bool, tuple[Any, ...], tuple[Any, ...]]:
    want, got = run_both(src, variables)
    ok = got in (_DEFERRED, ("unsupported",)) or (want[0] == "value" and same(want[1], got[1]))
    return ok, want, got


DATA = {
    "x": {
        "a": "1",
        "n": 3,
        "f": 3.0,
        "l": [1, 2],
        "z": [0, 1, 2],
        "s": "Héllo, World",
        "e": "",
        "d": {"a": [1, {"b": 2}]},
        "t": datetime(2024, 1, 1, tzinfo=UTC),
        "big": 2**60,
        "huge": 2**70,
        "nil": None,
        "yes": True,
        "words": ["a", "bb", "ccc"],
        "nan": float("nan"),
    }
}

# Each answered in Python, the same as the CEL package.
ANSWERED = [
    "1 == 1.0", "1 < 2.0", "true == 1", "null == 0", "[1] == [1.0]", '{"a": 1} == {"a": 1.0}', "1 != \"1\"",
    "7 / 2", "-7 / 2", "-7 % 3", "5 % -3", "-5 / 3", '"a" + "b"', "[1] + [2]", "2.0 * 3.0", "0.1 + 0.2",
    "x.a", 'x["a"]', "has(x.b)", "has(x.a)", "1 in [1.0]", '"a" in {"a": 1}', "[1, 2] in [[1, 2]]",
    "false && x.missing", "x.missing && false", "true || x.missing", "x.missing || true", "x.n && false",
    "x.l.exists(v, 10 / v > 1)", "x.l.all(v, 10 / v > 20)", "x.l.exists(v, v == 1 ? true : 1)",
    "x.l.filter(v, v > 1)", "x.l.map(v, v * 2)", "x.l.map(v, v > 1, v * 2)", "x.l.exists_one(v, v == 1)",
    '{"a": 1}.all(k, k == "a")', "[].all(v, v)",
    'size("héllo")', 'x.s.size()', "size(x.l)", "size(x.d)", "string(1.0)", "string(1.5)", "string(-0.0)",
    "string(2.5e15)", "string(100)", "int(2.7)", "int(-2.7)", 'int("+12")', 'int("-0")', 'double(".5")',
    'double("5.")', 'double("1e3")', "double(3)", "type(1) == int", 'type("a") == string', "type([]) == list",
    "type({}) == map", "type(null) == null_type", "type(1.0) == double", "type(true) == bool", "type(1) == 1",
    "type(x) == map", "x.l[0]", 'x.d["a"][1].b', '{"a": 1}.a', "!!true", "--1", "-x.f",
    r'"a\nb"', r"'it\'s'", r'r"a\nb"', '"""x"""', r'"\u00e9"', r'"\x41"', r'"\101"', "1e3", "0x10", ".5",
    'duration("1h30m")', 'duration("-2m")', 'duration("100ms")', 'x.t + duration("1h")', "x.t - x.t",
    "x.t < x.t", "x.t == x.t", '"abc".startsWith("ab")', '"abc".endsWith("bc")', '"abc".contains("")',
    '"aé" < "b"', "true < false", '" a ".trim()', '"a:b".split(":")', '"ABé".lowerAscii()',
    "[[1], [2]].flatten()", "math.floor(1.5)", '"abc".substring(1, 2)', "x.words.map(w, w.size())",
    'x.s.matches("^H.llo")', 'matches(x.s, "W[a-z]+")', "x.big + 1 > 0", "dyn(1) == 1.0", "x.nil == null",
    "x.yes ? 1 : 2", '{"a": 1, "a": 2}', 'get(x, "a", 0)', 'get(x, "zz", 0)', 'get(x.l, 1, 0)',
    'mentions("pay Sam now", "sam")', 'in_domain("https://a.example.com/x", ["example.com"])', 'host(x.s)',
    "x.e.size() == 0 || x.missing", '["a"].exists(a, a in ["a"])', "x.n > 2.5", "x.f <= 3", "x.n == 3.0",
    "x.nan == 1.0", "x.nan != 1.0", "x.big > 1", 'x.s.matches("d$")', r'"ab\n".matches("ab$")',
    '"a$".matches("a[$]")', r'"a$".matches("a\\$")',
]  # fmt: skip

# The CEL package fails each of these: Python must leave them to it.
DEFERRED = [
    "1 + 1.0", "1 / 0", "1 % 0", "9223372036854775807 + 1", "3 * 4611686018427387904", "x.c", 'x["c"]',
    "x.c == null", '"1" < 2', "[1, 2][5]", "[1, 2][-1]", "[1, 2][1.0]", "x.l[true]", '{"a": 1}["b"]', "!1",
    '-"a"', "1 ? 2 : 3", "1 && true", "true && 1", "false || 1", "(1 / 0 == 1) || false", "x.z.exists(v, 10 / v > 1)",
    "x.z.all(v, 10 / v > 20)", "x.l.exists(v, v)", "x.l.filter(v, 1)", "x.a.b", "x.n.a", '"abc".substring(5)',
    'int(" 12")', 'double(" 1")', 'double("1_0")', "int(1e30)", "1.5 % 1.0", '[1] + "a"', '"a" + 1', "1 in 1",
    '"x".startsWith(1)', 'duration("1d")', "x.nan > 1.0", "x.nan <= 1", "1.0 < x.nan",
    "(-9223372036854775807 - 1) / -1", "(-9223372036854775807 - 1) % -1",
]  # fmt: skip

# Outside what Python models, or read differently by Python's re: the whole expression stays with the package.
UNSUPPORTED = [
    "1u == 1", 'b"a" == b"a"', "x.?a", "timestamp(\"2024-01-01T00:00:00Z\")", "x.t.getHours()",
    '"ab".matches("(?m)b$")', "x.s.matches(x.a)", "google.protobuf.Int64Value{value: 1}", "bool(1)",
]  # fmt: skip


@pytest.mark.parametrize("src", ANSWERED)
def test_python_answers_what_the_cel_package_answers(src):
    want, got = run_both(src, DATA)
    assert got[0] == "value", f"{src!r}: Python left it to the package ({want})"
    assert want[0] == "value" and same(want[1], got[1]), f"{src!r}: package {want}, Python {got}"


@pytest.mark.parametrize("src", DEFERRED)
def test_what_the_cel_package_fails_python_leaves_to_it(src):
    want, got = run_both(src, DATA)
    assert want[0] == "error", f"{src!r}: the package gives {want}; move the case to ANSWERED"
    assert got == _DEFERRED, f"{src!r}: Python answered {got} where the package fails"


@pytest.mark.parametrize(
    "src",
    [
        "x.huge == 1",
        "x.huge > 1.0",
        "-(-9223372036854775807 - 1)",
        "size(x.huge)",
        "string(1e21)",
        "type(x.huge) == double",
    ],
)
def test_values_python_does_not_model_are_left_to_the_cel_package(src):
    # An int beyond 64 bits becomes a double in the package; it writes a double without an exponent, and
    # negating the least int gives it back.
    assert run_both(src, DATA)[1] == _DEFERRED


@pytest.mark.parametrize("src", UNSUPPORTED)
def test_what_python_does_not_model_is_not_compiled(src):
    assert _compile(src, frozenset(DATA)) is None


_SUM_12 = " + ".join(f"a{i}" for i in range(12))


def _alternating(depth: int, value: str) -> str:
    """``(x.n == 0 || (x.n == 1 && (x.n == 2 || ...)))``, ``depth`` operators nested on the right."""
    src = value
    for i in range(depth):
        src = f"(x.n == {i} {'&&' if i % 2 else '||'} {src})"
    return src


@pytest.mark.parametrize(
    "src",
    [
        _alternating(40, "true"),
        _alternating(40, "x.missing"),  # an error deep down, absorbed or not on the way up
        "".join(f"(x.n == {i} || " for i in range(40)) + "x.s" + ")" * 40,
        "".join(f"[1, 2].exists(a{i}, " for i in range(12)) + _SUM_12 + " > 23" + ")" * 12,
        "".join(f"[1, 2].all(a{i}, x.n > 0 && (" for i in range(12)) + _SUM_12 + " > 12" + "))" * 12,
        "[1, 2, 3]" + "".join(f".map(a{i}, a{i} + 1)" for i in range(30)) + ".filter(z, z > 32)",
    ],
    ids=["and-or-40", "and-or-40-error", "or-chain-40", "exists-12", "all-12", "map-30"],
)
def test_deeply_nested_expressions_run_in_python_and_agree(src):
    # Python compiles at most 20 blocks inside each other: deeper parts are generated as functions of their own,
    # handed the macro variables they read
    assert _compile(src, frozenset(DATA)) is not None
    want, got = run_both(src, DATA)
    assert (want == ("error", want[1]) and got == _DEFERRED) or (want[0] == "value" and same(want[1], got[1])), (
        f"package {want}, Python {got}"
    )


def test_text_in_an_expression_never_becomes_python_code():
    # Literals, keys and names reach the generated function as constants, never as source text.
    sneaky = "') or __import__('os').getpid() or ('"
    for src in [f'"{sneaky}" == x.s', f'{{"{sneaky}": 1}}["{sneaky}"] == 1', f'has(x.d) && x.d["{sneaky}"] == 1']:
        want, got = run_both(src, DATA)
        assert want[0] == got[0] or got == _DEFERRED, (src, want, got)
        if got[0] == "value":
            assert same(want[1], got[1]), (src, want, got)


def test_expressions_of_one_shape_share_their_code_and_keep_their_own_constants():
    # a spec written from a template compiles in a few shapes: each norm's literals are its function's own
    sources = [f'x.n > {limit} && x.s != "{text}"' for limit, text in [(1, "a"), (2, "Héllo, World"), (7, "b")]]
    programs = [_compile(src, frozenset(DATA)) for src in sources]
    assert programs[0].__code__ is programs[1].__code__ is programs[2].__code__
    for src in sources:
        want, got = run_both(src, DATA)
        assert want == got, (src, want, got)
    assert [run_both(src, DATA)[1][1] for src in sources] == [True, False, False]


# ---- generated expressions over generated data --------------------------------------------------------

_STRINGS = ["", "a", "ab", "A b", "é", "x@example.com", "12", "-3", "1.5", "1h", "true", "null", "the sky", "ñu\n"]
_INTS = [0, 1, -1, 2, 7, -7, 100, 2**31, 2**53, 2**53 + 1, 2**62, 2**63 - 1, -(2**63)]
_FLOATS = [0.0, -0.0, 0.5, 1.0, -2.5, 1e16, 1e-7, 3.0, float("inf"), float("nan"), 0.1]


def _value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 2 else 6)
    if kind == 0:
        return rng.choice(_STRINGS)
    if kind == 1:
        return rng.choice(_INTS)
    if kind == 2:
        return rng.choice(_FLOATS)
    if kind == 3:
        return rng.choice([True, False])
    if kind == 4:
        return None
    if kind == 5:
        return rng.choice(_STRINGS[:6])
    if kind in (6, 7):
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {k: _value(rng, depth + 1) for k in rng.sample(["a", "b", "c", "n"], rng.randrange(4))}


def _literal(rng: random.Random) -> str:
    kind = rng.randrange(6)
    if kind == 0:
        return json.dumps(rng.choice(_STRINGS), ensure_ascii=rng.random() < 0.5)
    if kind == 1:
        return str(rng.choice([0, 1, 2, 3, 10, 100, 9223372036854775807]))
    if kind == 2:
        return rng.choice(["0.0", "0.5", "1.0", "2.5", "1e3", "1e16"])
    if kind == 3:
        return rng.choice(["true", "false"])
    if kind == 4:
        return "null"
    return rng.choice(["[]", "[1, 2]", '["a", "b"]', '{"a": 1}', "[1, 2.0]", '[[1], ["x"]]'])


def _expr(rng: random.Random, depth: int, scope: list[str]) -> str:
    if depth <= 0 or rng.random() < 0.25:
        roll = rng.random()
        if roll < 0.35:
            return _literal(rng)
        if scope and roll < 0.55:
            return rng.choice(scope)
        return rng.choice(["x.a", "x.b", "x.c", "x.n", "x", "x.a.n", 'x["a"]', "x.b[0]", "y", "y[1]"])
    e = lambda: _expr(rng, depth - 1, scope)  # noqa: E731
    roll = rng.randrange(17)
    if roll == 15:
        return rng.choice(
            [
                f"{e()}.lowerAscii()",
                f"{e()}.split({e()})",
                f"{e()}.flatten()",
                f"{e()}.trim()",
                f"math.floor({e()})",
                f"max({e()})",
                f"{e()}.substring({e()})",
                f"{e()}.join({e()})",
            ]
        )
    if roll == 16:
        return rng.choice(
            [
                f"get({e()}, {e()}, {e()})",
                f"mentions({e()}, {e()})",
                f"host({e()})",
                f"in_domain({e()}, {e()})",
                f"glob({e()}, {e()})",
            ]
        )
    if roll == 0:
        return f"{rng.choice(['!', '-'])}{e()}"
    if roll in (1, 2, 3):
        op = rng.choice(["+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "in", "&&", "||"])
        return f"({e()} {op} {e()})"
    if roll == 4:
        return f"({e()} ? {e()} : {e()})"
    if roll == 5:
        fn = rng.choice(["size", "string", "int", "double", "dyn", "type"])
        inner = f"{fn}({e()})"
        return (
            f"({inner} == {rng.choice(['int', 'string', 'double', 'list', 'map', 'bool', 'null_type'])})"
            if fn == "type"
            else inner
        )
    if roll == 6:
        return f"has(x.{rng.choice('abcn')})"
    if roll == 7:
        return f"{e()}.{rng.choice(['contains', 'startsWith', 'endsWith'])}({e()})"
    if roll in (8, 9, 10):
        var = rng.choice(["v", "w"])
        macro = rng.choice(["exists", "all", "exists_one", "filter", "map", "map3"])
        body = _expr(rng, depth - 1, [*scope, var])
        if macro == "map3":
            return f"{e()}.map({var}, {_expr(rng, depth - 1, [*scope, var])}, {body})"
        return f"{e()}.{macro}({var}, {body})"
    if roll == 11:
        return f"{e()}[{e()}]"
    if roll == 12:
        return f"{e()}.size()"
    if roll == 13:
        return f"[{e()}, {e()}]"
    return f'{{"a": {e()}, "b": {e()}}}'


def test_generated_expressions_agree_with_the_cel_package(seed: int = 20261202):
    rng = random.Random(seed)
    answered = 0
    n = 12000
    for _ in range(n):
        src = _expr(rng, 4, [])
        variables = {"x": _value(rng), "y": _value(rng)}
        if rng.random() < 0.5:
            variables["x"] = {k: _value(rng, 1) for k in ("a", "b", "n")}
        ok, want, got = agrees(src, variables)
        assert ok, f"{src!r} over {variables!r}: the package gives {want}, Python {got}"
        answered += got[0] == "value"
    # Not vacuous: Python answers a good share itself (most of the rest are errors both ways).
    assert answered > n * 0.15, answered


# ---- the shipped policies, decided both ways ----------------------------------------------------------


def _scenario_sets() -> list[tuple[str, str]]:
    pairs = [
        ("policies/enterprise-baseline.yaml", "policies/scenarios/enterprise-baseline.jsonl"),
        ("policies/personal-assistant.yaml", "policies/scenarios/personal-assistant.jsonl"),
        ("policies/examples/alice.yaml", "policies/examples/scenarios/alice.jsonl"),
    ]
    pairs += [
        (f"policies/agentdojo/{s}.yaml", f"policies/agentdojo/scenarios/{s}.jsonl")
        for s in ("banking", "slack", "travel")
    ]
    return [p for p in pairs if (ROOT / p[1]).exists()]


def _comparable(decision: Any) -> dict[str, Any]:
    d = decision.to_dict()
    for key in ("timings", "decided_at", "record_id"):
        d.pop(key, None)
    return d


@pytest.mark.parametrize(("spec_file", "scenario_file"), _scenario_sets(), ids=lambda p: Path(p).stem)
def test_every_labelled_case_decides_the_same_in_python_and_on_the_cel_package(spec_file, scenario_file, monkeypatch):
    spec = load_spec(ROOT / spec_file)
    cases = load_scenarios(ROOT / scenario_file)
    assert cases
    python_plans = 0
    for case in cases:
        results = []
        for python in (True, False):
            monkeypatch.setattr(engine, "PYTHON_EVAL", python)
            guard = Guard(spec, audit=False)
            spend_before(guard.store, spec, case)
            results.append(_comparable(guard.decide(case.action)))
        assert results[0] == results[1], f"{case.where}: Python and the CEL package decide differently"
        python_plans += spec.plan(case.action.tool).py_lets is not None
    assert python_plans > len(cases) // 2  # most of the policy runs in Python


def test_a_plan_with_an_expression_python_does_not_model_runs_on_the_cel_package(make_guard):
    g = make_guard(
        """
        norms:
          - id: fast
            tools: [t]
            when: action.args.n > 5
            effect: deny
          - id: uint
            tools: [u]
            when: uint(action.args.n) > 5u
            effect: deny
        """
    )
    assert g.spec.plan("t").py_lets is not None
    assert g.spec.plan("u").py_lets is None
    assert g.decide(Action("t", {"n": 6})).outcome == "deny"
    assert g.decide(Action("u", {"n": 6})).outcome == "deny"
    assert g.decide(Action("u", {"n": 1})).outcome == "allow"


def test_an_error_python_defers_gets_the_cel_package_s_finding(make_guard, monkeypatch):
    spec = """
        norms:
          - id: big
            tools: [pay]
            when: action.args.amount > 100.0
            effect: escalate
        """
    found = []
    for python in (True, False):
        monkeypatch.setattr(engine, "PYTHON_EVAL", python)
        d = make_guard(spec).decide(Action("pay", {"to": "bob"}))
        assert d.outcome == "escalate"
        found.append([(f.id, f.effect, f.error) for f in d.findings])
    assert found[0] == found[1]
    assert "amount" in (found[0][0][2] or "")


def test_a_revision_from_python_does_not_share_the_proposed_args(make_guard):
    g = make_guard(
        """
        norms:
          - id: only-first
            tools: [send]
            when: size(action.args.to) > 1
            effect: revise
            revise: {to: "action.args.to.filter(r, r == action.args.to[0])", cc: "action.args.cc"}
        """
    )
    cc = ["c@x.org"]
    proposed = Action("send", {"to": ["a@x.org", "b@x.org"], "cc": cc})
    d = g.decide(proposed)
    assert d.outcome == "revise" and d.action.args["to"] == ["a@x.org"]
    d.action.args["cc"].append("evil@y.org")
    assert cc == ["c@x.org"]


def test_times_and_durations_cross_as_the_cel_package_reads_them(make_guard, monkeypatch):
    spec = """
        defaults: {timezone: Europe/Berlin}
        let:
          at: 'has(action.args.at) ? time(action.args.at) : now'
        norms:
          - id: evening
            tools: [post]
            when: hour(at) >= 19 || hour(at) < 7
            effect: revise
            revise: {at: 'local_date(at + duration("12h")) + "T08:30:00"'}
        """
    now = datetime(2025, 3, 4, 21, 15, tzinfo=timezone(timedelta(hours=1)))
    outs = []
    for python in (True, False):
        monkeypatch.setattr(engine, "PYTHON_EVAL", python)
        d = make_guard(spec).decide(Action("post", {"text": "hi"}, now=now))
        outs.append((d.outcome, dict(d.action.args)))
    assert outs[0] == outs[1] == ("revise", {"text": "hi", "at": "2025-03-05T08:30:00"})


def test_an_int_beyond_64_bits_is_read_as_the_cel_package_reads_it(make_guard, monkeypatch):
    # The package turns it into a double; Python leaves such a decision to the package.
    spec = """
        norms:
          - id: round
            tools: [pay]
            when: "true"
            effect: revise
            revise: {amount: "action.args.amount", note: 'mentions("1180591620717411303425", action.args.amount)'}
        """
    outs = []
    for python in (True, False):
        monkeypatch.setattr(engine, "PYTHON_EVAL", python)
        d = make_guard(spec).decide(Action("pay", {"amount": 2**70 + 1}))
        outs.append((d.outcome, dict(d.action.args)))
    assert outs[0] == outs[1]
    assert outs[0][1]["amount"] == float(2**70)


PATTERNS = ["ab$", "^a.*b$", "[$]", "a\\$", "[]$]b$", "^$", "b$|^a", "(?i)AB$", "x?$", "[^]a]$", "a\\\\$", "\\d+$"]
TEXTS = ["ab", "ab\n", "a$", "ab\nab", "", "\n", "AB", "a\\", "]", "12", "12\n", "xab"]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_an_end_anchor_reads_as_in_the_cel_package(pattern):
    search = _py_regex(pattern)
    assert search is not None, f"{pattern!r} should run in Python"
    for text in TEXTS:
        want = cel.evaluate("t.matches(p)", {"t": text, "p": pattern})
        assert search(text) is want, f"{text!r}.matches({pattern!r}): package {want}"


def test_a_let_first_computed_inside_a_macro_keeps_both_macro_variables_apart(make_guard, monkeypatch):
    spec = """
        let:
          shouted: 'action.args.words.map(w, w.upperAscii())'
        norms:
          - id: echo
            tools: [say]
            when: 'action.args.words.exists(w, w in shouted && w == "OK")'
            effect: deny
        """
    outs = []
    for python in (True, False):
        monkeypatch.setattr(engine, "PYTHON_EVAL", python)
        g = make_guard(spec)
        outs.append([g.decide(Action("say", {"words": ws})).outcome for ws in (["ok", "OK"], ["ok", "no"])])
    assert outs[0] == outs[1] == ["deny", "allow"]


def test_text_the_cel_package_cannot_take_is_decided_as_the_package_decides_it(make_guard, monkeypatch):
    # A lone surrogate (json.loads gives one for "\\ud800") cannot cross into the package: it fails closed.
    spec = """
        norms:
          - id: long
            tools: [say]
            when: size(action.args.text) > 100
            effect: deny
        """
    outs = []
    for python in (True, False):
        monkeypatch.setattr(engine, "PYTHON_EVAL", python)
        d = make_guard(spec).decide(Action("say", {"text": "hi \ud800"}))
        outs.append((d.outcome, [f.id for f in d.findings]))
    assert outs[0] == outs[1]
    assert outs[0][0] == "deny"


def test_a_plan_evaluated_in_python_builds_no_cel_program(make_guard, monkeypatch):
    # The one CEL program for a tool's norms is the costly part of a plan: built only when the package runs it.
    g = make_guard(
        """
        norms:
          - {id: a, tools: [t], when: action.args.n > 5, effect: deny}
          - {id: b, tools: [t], when: action.args.n < 0, effect: escalate}
        """
    )
    assert g.decide(Action("t", {"n": 6})).outcome == "deny"
    assert g.spec.plan("t")._batch == []
    monkeypatch.setattr(engine, "PYTHON_EVAL", False)
    assert g.decide(Action("t", {"n": -1})).outcome == "escalate"
    assert g.spec.plan("t")._batch != [] and g.spec.plan("t").batch is not None


# Cases where Python once decided otherwise than the CEL package: (when, action), decided both ways.
_ONCE_APART = [
    ('host(type(action.args.n)) == "int"', Action("t", {"n": 1})),  # a type value handed to a function
    ("!(duration('1h') + now > now)", Action("t", {})),  # duration + timestamp: the package refuses it
    ("action.args.text == '''a\r\nb'''", Action("t", {"text": "a\r\nb"})),  # a CR LF in a ''' literal
    ('get(action.args.items, 0, "") == "secret"', Action("t", {"items": ("secret", "x")})),  # a tuple
    (
        'seen(history, "t", "to", action.args.to)',
        Action("t", {"to": ("a@x.org", "b@x.org")}, history=[Call("t", {"to": ["a@x.org", "b@x.org"]})]),
    ),
    (  # outputs are outside data: an int beyond 64 bits, through a function and in the raw history
        'last_output(history, "balance").v - action.args.amount < 0',
        Action("t", {"amount": 10}, history=[Call("balance", {}, '{"v": 9223372036854775808}')]),
    ),
    (
        'history.exists(c, c.tool == "balance" && c.output.v - action.args.amount < 0)',
        Action("t", {"amount": 10}, history=[Call("balance", {}, '{"v": 9223372036854775808}')]),
    ),
    (  # ... and a lone surrogate
        'last_output(history, "read").text.contains("SECRET")',
        Action("t", {}, history=[Call("read", {}, '{"text": "\\ud800 SECRET"}')]),
    ),
    (
        'history.exists(c, c.tool == "read" && c.output.text.contains("SECRET"))',
        Action("t", {}, history=[Call("read", {}, '{"text": "\\ud800 SECRET"}')]),
    ),
    ('action.args.s.matches(("^\\\\w$"))', Action("t", {"s": "½"})),  # a pattern in parentheses
    ('matches(action.args.s, "^\\\\S+$" // no blanks\n)', Action("t", {"s": "ab\x1fcd"})),  # ... or a comment
    ('action.args.s.matches("^\\\\w+$")', Action("t", {"s": "a\u0301"})),  # \w beyond ASCII: a mark
    ('action.args.s.matches("(?i)^i$")', Action("t", {"s": "İ"})),  # case folding beyond ASCII
]


@pytest.mark.parametrize(("when", "action"), _ONCE_APART)
def test_python_and_the_cel_package_decide_alike(make_guard, monkeypatch, when, action):
    decided = []
    for python in (True, False):
        monkeypatch.setattr(engine, "PYTHON_EVAL", python)
        d = make_guard(f"norms:\n  - id: n\n    tools: [t]\n    when: {json.dumps(when)}\n    effect: deny\n").decide(
            action
        )
        decided.append([(f.id, f.effect, f.error) for f in d.findings])
    assert decided[0] == decided[1]


def test_a_type_value_revised_into_an_arg_is_its_name(make_guard, monkeypatch):
    spec = 'norms:\n  - {id: n, tools: [t], when: "true", effect: revise, revise: {kind: "type(action.args.n)"}}\n'
    for python in (True, False):
        monkeypatch.setattr(engine, "PYTHON_EVAL", python)
        d = make_guard(spec).decide(Action("t", {"n": 1}))
        assert (d.outcome, dict(d.action.args)) == ("revise", {"n": 1, "kind": "int"})


def test_a_let_is_not_read_by_a_macro_variable_of_its_name(make_guard, monkeypatch):
    spec = """
        let:
          limit: '100'
          over: 'action.args.amount > limit'
        norms:
          - {id: n, tools: [pay], when: 'action.args.items.exists(limit, over)', effect: deny}
    """
    for python in (True, False):
        monkeypatch.setattr(engine, "PYTHON_EVAL", python)
        g = make_guard(spec)
        outcomes = [g.decide(Action("pay", {"amount": a, "items": i})).outcome for a, i in ((50, [1]), (500, [1000]))]
        assert outcomes == ["allow", "deny"]


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("½", r"^\w$"),  # a fraction is a word character to Python's re, not to the package's engine
        ("a\u0301", r"^\w+$"),  # ... a combining mark the other way round
        ("x\u203fy", r"^\w+$"),
        ("a\x1fb", r"a\sb"),  # Python's \s takes the C0 separators
        ("İ", "(?i)^i$"),  # case folding beyond ASCII
        ("ı", "(?i)I"),
        ("é b", r"\bb\b"),
        ("plain ascii", r"^\w+\s\w+$"),
        ("Ärger", "(?i)^ä"),
    ],
)
def test_matches_with_a_literal_pattern_reads_text_as_the_cel_package_does(text, pattern):
    from fsa_guard.verify.functions import regex_search

    assert regex_search(text, pattern) == cel.evaluate("t.matches(p)", {"t": text, "p": pattern})
