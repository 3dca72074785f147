"""Property tests: random specs and random (often malformed) actions.

Whatever the spec and the action, ``decide`` returns a well-formed Decision and never raises; under a
deny-by-default spec with registered tool schemas, no action whose args break the schema is ever allowed.
"""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsa_guard import Action, Call, Decision, Guard, load_spec
from fsa_guard.verify import engine

TOOLS = ["pay", "tip", "send_email", "read_file", "purchase_book", "purchase_tv"]
TOOL_PATTERNS = [*TOOLS, "purchase_*", "send_*", "*", "read_?ile"]
ARGS = ["amount", "to", "text", "flag", "items"]
EFFECTS = ["allow", "revise", "critique", "escalate", "deny"]
OUTCOMES = {"allow", "deny", "revise", "escalate"}
SOURCES = {"norm", "budget", "schema", "critic", "human", "guard", "store", "audit"}

PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- random specs --------------------------------------------------------------------------------------

names = st.sampled_from(ARGS)
words = st.text(alphabet="abcXYZ 19_-", min_size=0, max_size=6).map(lambda s: json.dumps(s))
numbers = st.one_of(st.integers(-5, 1000).map(str), st.floats(-5, 1000, allow_nan=False).map(lambda f: repr(float(f))))

atoms = st.one_of(
    st.just("true"),
    st.just("false"),
    st.builds(lambda k, n: f"action.args.{k} > {n}", names, numbers),
    st.builds(lambda k, n: f"action.args.{k} <= {n}", names, numbers),
    st.builds(lambda k, w: f"action.args.{k} == {w}", names, words),
    st.builds(lambda k: f"has(action.args.{k})", names),
    st.builds(lambda k, n: f'get(action.args, "{k}", 0) < {n}', names, numbers),
    st.builds(lambda k: f"mentions(request, action.args.{k})", names),
    st.builds(lambda w: f"mentions(request, {w})", words),
    st.builds(lambda k: f"size(action.args.{k}) > 2", names),
    st.builds(lambda k: f'action.args.{k}.contains("a")', names),
    st.builds(lambda k: f'in_outputs(history, action.args.{k}, "read_*")', names),
    st.builds(lambda t, k, w: f'seen(history, "{t}", "{k}", {w})', st.sampled_from(TOOLS), names, words),
    st.builds(lambda t: f'count(history, "{t}") > 1', st.sampled_from(TOOL_PATTERNS)),
    st.builds(lambda t: f'last_output(history, "{t}") != null', st.sampled_from(TOOLS)),
    st.builds(lambda k: f"action.args.{k}", names),  # not a boolean for most args: a run-time error
    st.just("hour(now) >= 22"),
    st.just('history.exists(c, c.tool == "pay")'),
    st.just("state.budgets.size() > 0"),
)
conditions = st.recursive(
    atoms,
    lambda inner: st.one_of(
        st.builds(lambda a, b: f"({a}) && ({b})", inner, inner),
        st.builds(lambda a, b: f"({a}) || ({b})", inner, inner),
        st.builds(lambda a: f"!({a})", inner),
    ),
    max_leaves=4,
)
revise_exprs = st.one_of(
    st.none(),
    numbers,
    words,
    st.builds(lambda k: f"action.args.{k}", names),
    st.just("true"),
)


@st.composite
def norms(draw: st.DrawFn, i: int) -> dict[str, Any]:
    effect = draw(st.sampled_from(EFFECTS))
    norm: dict[str, Any] = {
        "id": f"n{i}",
        "tools": draw(st.lists(st.sampled_from(TOOL_PATTERNS), min_size=1, max_size=3, unique=True)),
        "when": draw(conditions),
        "effect": effect,
    }
    if effect == "revise":
        norm["revise"] = draw(st.dictionaries(names, revise_exprs, min_size=1, max_size=3))
    on_error = draw(st.sampled_from([None, "fire", "skip", "escalate"]))
    if on_error:
        norm["on_error"] = on_error
    if draw(st.booleans()):
        norm["serves"] = ["v"]
    return norm


@st.composite
def specs(draw: st.DrawFn, unknown_tool: str | None = None) -> dict[str, Any]:
    n = draw(st.integers(0, 6))
    spec: dict[str, Any] = {
        "fsa_guard": 1,
        "id": "random",
        "defaults": {
            "unknown_tool": unknown_tool or draw(st.sampled_from(["allow", "escalate", "deny"])),
            "timezone": draw(st.sampled_from(["UTC", "Europe/Berlin", "America/New_York"])),
            "max_revisions": draw(st.integers(0, 3)),
        },
        "values": [
            {
                "id": "v",
                "title": "Careful stewardship of money",
                "attends_to": ["CLARITY about who receives money"],
                "tools": draw(st.lists(st.sampled_from(TOOL_PATTERNS), max_size=2)),
                "critique": draw(st.booleans()),
            }
        ],
        "norms": [draw(norms(i)) for i in range(n)],
        "budgets": [
            {
                "id": f"b{i}",
                "tools": draw(st.lists(st.sampled_from(TOOL_PATTERNS), min_size=1, max_size=2, unique=True)),
                "measure": draw(st.sampled_from(["1", "action.args.amount", 'get(action.args, "amount", 1.0)'])),
                "limit": draw(st.integers(0, 500)),
                "window": draw(st.sampled_from(["30s", "1h", "1d"])),
                "on_exceed": draw(st.sampled_from(["deny", "escalate"])),
            }
            for i in range(draw(st.integers(0, 2)))
        ],
    }
    return spec


def build_guard(spec: dict[str, Any]) -> Guard:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "spec.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
        return Guard(load_spec(path), clock=lambda: datetime(2025, 1, 1, 23, 30, tzinfo=UTC))


# -- random actions ------------------------------------------------------------------------------------


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """Pick a strategy by weight (``st.one_of`` flattens nested choices, which skews the mix)."""
    table = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(0, len(table) - 1).flatmap(lambda i: table[i])


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["US13", "FR99", "alice", "a", "20", "", "!!!"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5) | names, inner, max_size=3)
    ),
    max_leaves=6,
)
odd_values = st.one_of(
    st.builds(set, st.lists(st.integers(), max_size=2)),
    st.builds(object),
    st.binary(max_size=4),
    st.builds(lambda: datetime(2025, 1, 1, tzinfo=UTC)),
    st.tuples(st.integers()),
)
arg_values = weighted((8, json_values), (1, odd_values))
typed_args = st.fixed_dictionaries(
    {},
    optional={
        "amount": st.floats(-10, 2000, allow_nan=False) | st.integers(-10, 2000),
        "to": st.sampled_from(["US13", "FR99", "alice", "bob@example.com"]),
        "text": st.text(max_size=8),
        "flag": st.booleans(),
        "items": st.lists(st.text(max_size=3), max_size=3),
    },
)
arg_maps = st.dictionaries(st.one_of(names, st.text(max_size=6)), arg_values, max_size=5)
bad_args = st.one_of(
    st.lists(st.integers(), max_size=3),
    st.text(max_size=5),
    st.none(),
    st.integers(),
    st.dictionaries(st.integers(), st.integers(), min_size=1, max_size=2),
)
outputs = st.one_of(
    st.none(),
    st.text(max_size=20),
    st.sampled_from(['{"iban": "FR99", "amount": 10}', "[1, 2, 3]", '"quoted"', "true", "{not json"]),
    json_values,
)
calls = st.builds(
    lambda tool, args, output, as_map: (
        {"tool": tool, "args": args, "output": output} if as_map else Call(tool, args, output)
    ),
    st.sampled_from([*TOOLS, "other"]),
    st.dictionaries(names, json_values, max_size=3),
    outputs,
    st.booleans(),
)


@st.composite
def actions(draw: st.DrawFn) -> Action:
    tool = draw(weighted((4, st.sampled_from(TOOLS)), (1, st.text(max_size=8))))
    args = draw(weighted((10, typed_args), (7, arg_maps), (3, bad_args)))
    return Action(
        tool=tool,
        args=args,
        request=draw(st.one_of(st.just(""), st.text(max_size=30), st.just("pay US13 20 euros"))),
        history=draw(st.lists(calls, max_size=4)),
        context=draw(st.dictionaries(st.text(max_size=5), json_values, max_size=2)),
        now=draw(
            st.one_of(
                st.none(),
                st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
                st.builds(lambda m: datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=m), st.integers(0, 5000)),
            )
        ),
    )


def check_well_formed(d: Decision, proposed: Action) -> None:
    assert isinstance(d, Decision)
    assert d.outcome in OUTCOMES
    assert d.proposed is proposed
    for f in d.findings:
        assert isinstance(f.id, str) and f.id
        assert f.source in SOURCES
        assert isinstance(f.message, str) and f.message
        assert f.effect in {"allow", "revise", "critique", "escalate", "deny", "info"}
    found = {f.effect for f in d.findings}
    if d.outcome == "deny":
        assert "deny" in found
    if d.outcome == "escalate":
        assert "escalate" in found
    if d.allowed:
        assert not found & {"deny", "escalate"}
        assert isinstance(d.action.args, dict) or hasattr(d.action.args, "keys")
    if d.outcome == "allow":
        assert d.action.tool == proposed.tool and dict(d.action.args) == dict(proposed.args)
    if d.outcome == "revise":
        assert dict(d.action.args) != dict(proposed.args)
    assert isinstance(d.explain(), str) and d.explain()
    assert set(d.timings) <= {"verify", "critique", "revise", "escalate", "record", "total"}


@PROPERTY_SETTINGS
@given(spec=specs(), batch=st.lists(actions(), min_size=1, max_size=4))
def test_decide_never_raises_and_is_well_formed(spec, batch):
    guard = build_guard(spec)
    for action in batch:
        d = guard.decide(action)
        check_well_formed(d, action)
        if d.allowed:
            guard.report(d, ok=True)


# -- deny-by-default with tool schemas -----------------------------------------------------------------

SCHEMAS: dict[str, dict[str, Any]] = {
    "pay": {
        "type": "object",
        "properties": {"to": {"type": "string"}, "amount": {"type": "number"}},
        "required": ["to", "amount"],
        "additionalProperties": False,
    },
    "tip": {
        "type": "object",
        "properties": {"amount": {"type": "number", "minimum": 0}},
        "required": ["amount"],
        "additionalProperties": False,
    },
    "send_email": {
        "type": "object",
        "properties": {"to": {"type": "string"}, "text": {"type": "string"}, "flag": {"type": "boolean"}},
        "required": ["to"],
        "additionalProperties": False,
    },
    "read_file": {
        "type": "object",
        "properties": {"items": {"type": "array", "items": {"type": "string"}}},
        "additionalProperties": False,
    },
}


def schema_ok(tool: str, args: Any) -> bool:
    if not isinstance(args, dict) or not all(isinstance(k, str) for k in args):
        return False
    try:
        return jsonschema.Draft202012Validator(SCHEMAS[tool]).is_valid(args)
    except Exception:
        return False


well_typed = st.one_of(
    st.builds(lambda to, a: {"to": to, "amount": a}, st.text(max_size=5), st.floats(-10, 2000, allow_nan=False)),
    st.builds(lambda a: {"amount": a}, st.integers(-10, 100)),
    st.builds(lambda to, t: {"to": to, "text": t}, st.text(max_size=5), st.text(max_size=5)),
    st.builds(lambda xs: {"items": xs}, st.lists(st.text(max_size=3), max_size=3)),
)


@PROPERTY_SETTINGS
@given(
    spec=specs(unknown_tool="deny"),
    batch=st.lists(
        st.one_of(actions(), st.builds(lambda t, a: Action(t, a), st.sampled_from(TOOLS), well_typed)),
        min_size=1,
        max_size=5,
    ),
)
def test_no_malformed_action_is_allowed_under_deny_by_default(spec, batch):
    guard = build_guard(spec)
    for tool, schema in SCHEMAS.items():
        guard.register_tool(tool, schema)
    for action in batch:
        d = guard.decide(action)
        check_well_formed(d, action)
        if d.allowed:
            guard.report(d, ok=True)
            # deny-by-default: only tools the spec names can run ...
            assert guard.spec.plan(d.action.tool).known, d.action.tool
            # ... and a tool with a schema only with args that match it, before and after any revision
            if action.tool in SCHEMAS:
                assert schema_ok(action.tool, action.args), action.args
                assert schema_ok(d.action.tool, dict(d.action.args)), d.action.args
        if action.tool in SCHEMAS and not schema_ok(action.tool, action.args):
            assert d.outcome == "deny"
            assert "malformed-action" in d.finding_ids()


def _comparable(d: Decision) -> dict[str, Any]:
    out = d.to_dict()
    # the explanation prints revised values, and the CEL package hands maps back in hash order
    for key in ("timings", "decided_at", "record_id", "explanation"):
        out.pop(key, None)
    return out


@PROPERTY_SETTINGS
@given(spec=specs(), batch=st.lists(actions(), min_size=1, max_size=4))
def test_python_and_the_cel_package_decide_alike(spec, batch):
    # fsa_guard evaluates expressions in Python where it can (verify/pycel.py); the CEL package must agree.
    decided = []
    for python in (True, False):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(engine, "PYTHON_EVAL", python)
            guard = build_guard(spec)
            decided.append([_comparable(guard.decide(action)) for action in batch])
    assert decided[0] == decided[1]
