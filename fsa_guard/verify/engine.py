"""Deterministic verification of one action: arg schema, unknown tools, norms, and budget measures.

Run-time failures never allow by accident. A norm whose ``when`` fails (missing key, wrong type, a value
that is not a boolean) follows its ``on_error``: by default ``deny`` and ``escalate`` norms fire, and
``allow``, ``revise`` and ``critique`` norms escalate; ``skip`` records the error and goes on. A ``revise``
expression that fails escalates. A budget whose ``when`` or ``measure`` fails resolves as its
``on_exceed``. Every such error is a finding with ``error`` set.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import cel

from ..action import Action
from ..decision import Finding
from ..errors import StoreError
from ..spec.compiled import CompiledBudget, CompiledNorm, CompiledRemember, CompiledSpec, ToolPlan
from ..store.base import Store
from .expr import Compiled
from .functions import HistoryIndex, _fixed_offset, history_functions
from .pycel import Scope, unmodelled
from .schema import ArgsValidator

__all__ = ["PYTHON_EVAL", "Verdict", "remember_key", "verify"]

# A function that fails becomes a finding with its error. Without this, and without a handler of the
# application's, the package's warning about it would also be printed on stderr (twice: batch, then alone).
logging.getLogger("cel").addHandler(logging.NullHandler())

#: Evaluate expressions in Python where ``verify.pycel`` can (the default), else always on the CEL package.
#: ``FSA_GUARD_PYCEL=0`` in the environment turns it off, to rule it out when a decision looks wrong.
PYTHON_EVAL = os.environ.get("FSA_GUARD_PYCEL", "1") != "0"


@dataclass(slots=True)
class Verdict:
    """The outcome of one verification pass over one action."""

    findings: list[Finding] = field(default_factory=list)
    deny: bool = False
    escalate: bool = False
    critique: list[str] = field(default_factory=list)  # what asks for judgment: norm ids, "value:<id>"
    critique_serves: list[str] = field(default_factory=list)
    revision: dict[str, Any] | None = None
    charges: list[tuple[CompiledBudget, float]] = field(default_factory=list)
    remember: list[tuple[str, str]] = field(default_factory=list)  # (store key, entity as canonical JSON)

    def add(self, finding: Finding) -> None:
        """Record a finding and what it asks for."""
        self.findings.append(finding)
        if finding.effect == "deny":
            self.deny = True
        elif finding.effect == "escalate":
            self.escalate = True


def _override(v: Verdict, overridden: frozenset[str]) -> None:
    """Lift a deny that only ``overridden`` norms raised. A norm whose condition failed is not lifted: the
    person could not have known what it would have said."""
    denying = [f for f in v.findings if f.effect == "deny"]
    if all(f.source == "norm" and f.id in overridden and f.error is None for f in denying):
        v.findings = [
            replace(f, effect="info", message=f"{f.message.rstrip('.')} (overridden by a person's edit)")
            if f.effect == "deny"
            else f
            for f in v.findings
        ]
        v.deny = False


def _malformed(message: str) -> Verdict:
    v = Verdict()
    v.add(Finding("schema", "malformed-action", message, effect="deny"))
    return v


def verify(
    spec: CompiledSpec,
    action: Action,
    now: datetime,
    validator: ArgsValidator | None = None,
    store: Store | None = None,
    overridden: frozenset[str] = frozenset(),
) -> Verdict:
    """Verify ``action`` against ``spec``; never raises for bad input, it denies instead.

    ``overridden``: ids of ``human_overridable`` deny norms a person chose to run the call past (an edit).
    They still report, but deny only when another reason denies too.
    """
    tool, args = action.tool, action.args
    if not isinstance(tool, str) or not tool or not tool.isprintable() or tool != tool.strip():
        # "send_money " is no tool the spec names, yet a runner that trims names would dispatch it
        return _malformed(
            f"the action's tool must be a non-empty name without controls or spaces around it, got {tool!r}"
        )
    if type(args) is not dict and not isinstance(args, Mapping):
        return _malformed(f"the args of {tool} must be a mapping with string keys, got {type(args).__name__}")
    bad = not_json_like(args)
    if bad is not None:
        return _malformed(f"the args of {tool} must be JSON-like data: {bad}")
    if type(action.context) is not dict and not isinstance(action.context, Mapping):
        return _malformed(f"the context of {tool} must be a mapping, got {type(action.context).__name__}")
    if validator is not None:
        problem = validator.check(args)
        if problem:
            return _malformed(f"{tool}: {problem}")

    plan = spec.plan(tool)
    v = Verdict()
    if not plan.known and spec.unknown_tool != "allow":
        rule = "are denied" if spec.unknown_tool == "deny" else "need approval"
        message = (
            f"'{tool}' is not a tool the spec knows (no value, norm or budget of the layers that set "
            f"unknown_tool names it), and unknown tools {rule}"
        )
        v.add(Finding("guard", "unknown-tool", message, effect=spec.unknown_tool))
        if v.deny:
            return v
        # escalate-by-default: norms of later layers still apply, so one of them can still deny
    if not plan.norms and not plan.budgets and not plan.remember:
        v.critique.extend(f"value:{card.id}" for card in plan.critique_values)
        return v

    env: _Env | _PyEnv | None
    try:
        env = _PyEnv.create(spec, plan, action, now, store) if plan.py_lets is not None and PYTHON_EVAL else None
        if env is None:
            env = _Env(_context(spec, plan, action, now, store), plan)
    except StoreError as exc:
        v.add(Finding("store", "store-unavailable", f"Budget state could not be read: {exc}", effect="deny"))
        return v
    except (ValueError, TypeError, OverflowError) as exc:
        return _malformed(f"the action cannot be read by the spec's expressions: {exc}")

    batch = env.batch()
    revisions: dict[str, tuple[str, Any]] = {}
    norms = plan.norms
    if batch is None:
        for norm in norms:
            _check_norm(norm, env, v, revisions)
    else:
        # Only a norm whose condition is not false is looked at: on most calls most norms do not apply, and a
        # tool with thousands of them would otherwise pay a call (and a cache miss) for each.
        for i in [i for i, result in enumerate(batch[: len(norms)]) if result is not False]:
            _check_norm(norms[i], env, v, revisions, batch[i])
    if overridden and v.deny:
        _override(v, overridden)
    if revisions and not v.deny:
        v.revision = {**args}
        for arg, (_, value) in revisions.items():
            if value is _REMOVE:
                v.revision.pop(arg, None)
            else:
                v.revision[arg] = value
    for name in plan.critique_values:
        v.critique.append(f"value:{name.id}")
    if not v.deny:
        k = len(plan.norms)
        for j, budget in enumerate(plan.budgets):
            known = None if batch is None else (batch[k + 2 * j], batch[k + 2 * j + 1])
            _measure(budget, env, v, None if known is None or _UNSET in known else known)
        for noting in plan.remember:
            _note(noting, env, v)
    return v


def _note(rule: CompiledRemember, env: _Env | _PyEnv, v: Verdict) -> None:
    """What ``rule`` would remember if the call runs. A failure escalates: a limit on what is remembered (say,
    distinct recipients a week) would otherwise undercount."""
    try:
        if rule.when is not None:
            applies = env.run(rule.when)
            if not isinstance(applies, bool):
                raise _BadValue(f"'when' must be true or false, got {_shown(applies)}")
            if not applies:
                return
        value = _as_arg(env.run(rule.value))
        v.remember.append((remember_key(rule.id), json.dumps(value, sort_keys=True, separators=(",", ":"))))
    except Exception as exc:
        error = exc.args[0] if isinstance(exc, _BadValue) and exc.args else env.describe(exc)
        message = f"Remember rule '{rule.id}' could not read this call: {error}"
        v.add(Finding("guard", rule.id, message, effect="escalate", values=tuple(rule.rule.serves), error=str(error)))


_REMOVE: Any = object()
_UNSET: Any = object()


def _as_arg(value: Any) -> Any:
    """A revised value as tool-call data: times become ISO text, durations seconds; other kinds are refused."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    bad = not_json_like(value, "the new value")
    if bad:
        raise TypeError(bad)
    return _copy(value)


def _copy(value: Any) -> Any:
    """A fresh copy of JSON-like data: a revision evaluated in Python may hand back a part of the old args."""
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(v) for v in value]
    return value


_PLAIN = (str, int, bool, type(None))  # scalars that are always JSON; a float must also be finite


def not_json_like(value: Any, path: str = "args", depth: int = 0) -> str | None:
    """Where ``value`` stops being JSON-like data (what tool calls carry), or None when it is. NaN and the
    infinities are not: a budget cannot charge them, and no audit record or tool call can carry them."""
    if isinstance(value, _PLAIN):
        return None
    if isinstance(value, float):
        return None if value - value == 0.0 else f"{path} is {value!r}, not a finite number"
    if depth > 32:
        return f"{path} is nested too deeply"
    # Every call checks its args: the path of a part is only spelled out once that part is found bad.
    if type(value) is dict or isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                return f"{path} has a key that is not text: {k!r}"
            if not isinstance(v, _PLAIN) and not (type(v) is float and v - v == 0.0):
                bad = not_json_like(v, f"{path}.{k}", depth + 1)
                if bad:
                    return bad
        return None
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            if not isinstance(v, _PLAIN) and not (type(v) is float and v - v == 0.0):
                bad = not_json_like(v, f"{path}[{i}]", depth + 1)
                if bad:
                    return bad
        return None
    return f"{path} is a {type(value).__name__}"


def _shown(value: Any) -> str:
    """``repr(value)`` with map keys in sorted order: the CEL package hands maps back in hash order."""
    return repr(_key_sorted(value))


def _key_sorted(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _key_sorted(v) for k, v in sorted(value.items(), key=lambda kv: repr(kv[0]))}
    if isinstance(value, list | tuple):
        return [_key_sorted(v) for v in value]
    return value


class _BadValue(Exception):
    """An expression ran but gave a value of the wrong kind."""


def _context(spec: CompiledSpec, plan: ToolPlan, action: Action, now: datetime, store: Store | None) -> Any:
    """The decision's values as a context of the CEL package."""
    variables, functions = _bindings(spec, plan, action, now, store, for_cel=True)
    return cel.Context(variables=variables, functions=dict(functions))


def _bindings(
    spec: CompiledSpec, plan: ToolPlan, action: Action, now: datetime, store: Store | None, for_cel: bool
) -> tuple[dict[str, Any], Mapping[str, Any]]:
    """The variables and functions the plan's expressions read."""
    names = plan.variables
    variables: dict[str, Any] = {}
    if "action" in names:
        args = action.args
        keys = plan.arg_keys
        # Converting values for CEL is most of its cost: pass it only the keys the expressions can see.
        if for_cel:
            args = dict(args) if keys is None else {k: args[k] for k in keys if k in args}
        variables["action"] = {"tool": action.tool, "args": args}
    if "request" in names:
        variables["request"] = action.request or ""
    if "context" in names:
        ckeys = plan.context_keys
        given = action.context
        variables["context"] = dict(given) if ckeys is None else {k: given[k] for k in ckeys if k in given}
    if "now" in names:
        variables["now"] = _fixed_offset(now)
    if "state" in names:
        variables["state"] = _state(spec, plan, store, now)
    # The CEL package needs every function registered; Python finds the spec's own in spec.static_functions.
    functions: Mapping[str, Any] = dict(plan.functions) if for_cel else {}
    if "history" in names or plan.history_functions:
        # Converting the history for CEL is costly; do it only when an expression reads it directly.
        # History functions get the Python-side index instead.
        bound: Mapping[str, Any]
        if plan.raw_history:
            index = HistoryIndex(action.history)
            variables["history"] = index.as_cel()
            bound = index.bound(plan.history_functions)
        else:
            variables["history"] = 0
            bound = history_functions(action.history, plan.history_functions)
        functions = {**functions, **bound} if for_cel else bound
    return variables, functions


def _state(spec: CompiledSpec, plan: ToolPlan, store: Store | None, now: datetime) -> dict[str, Any]:
    """What ``state`` holds for this decision: only the entries the plan's expressions read. Any failure of
    the store (a custom one may raise anything) is a :class:`StoreError`, not a fault of the action."""
    try:
        return _read_state(spec, plan, store, now)
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(f"the store's answer could not be read: {type(exc).__name__}: {exc}") from exc


def _read_state(spec: CompiledSpec, plan: ToolPlan, store: Store | None, now: datetime) -> dict[str, Any]:
    wanted = plan.state_keys
    budgets: dict[str, Any] = {}
    ts = now.timestamp()
    for b in spec.budgets:
        if wanted is not None and f"budgets.{b.id}" not in wanted:
            continue
        used = store.usage(b.id, b.window_s, ts) if store is not None else 0.0
        budgets[b.id] = {"used": used, "limit": b.budget.limit, "remaining": max(0.0, b.budget.limit - used)}
    remembered: dict[str, Any] = {}
    for r in spec.remember:
        if wanted is not None and f"remembered.{r.id}" not in wanted:
            continue
        found = store.recall(remember_key(r.id), r.window_s, ts) if store is not None else []
        remembered[r.id] = [json.loads(e) for e in found]
    return {"budgets": budgets, "remembered": remembered}


def remember_key(rule_id: str) -> str:
    """The store key of a remember rule's entities (apart from budget keys, which are budget ids)."""
    return f"remember:{rule_id}"


_UNDEFINED = re.compile(r"Undefined variable or function: '(\w+)'")


class _Env:
    """One decision's CEL context, with ``let`` names computed lazily: on first use, once.

    First :meth:`batch` runs the plan's one program for all norms and budgets, where lets are written in
    or bound once (see ``compile_batch``); that is the usual path. When it fails, nothing tells which
    expression failed, so each one is run on its own as described below, to name the failure and follow
    that norm's ``on_error``. Revisions always run on their own.

    The CEL package asks a variable resolver before its own variables. The first use of a let runs its
    program and adds the value to the context, where later runs read it as a plain variable. The run that
    asked cannot see that variable yet: a scalar value is handed to it directly; a list, map or null is not
    (converting a structure on every use costs more than running again), so that run gives up and runs
    once more, computing nothing else meanwhile. CEL expressions have no side effects, so running again is
    safe, and every retry adds a let, so it ends. A let that no run reaches — say, behind
    ``cheap && expensive`` — is never computed; a failing let fails only the expressions that reach it.
    """

    __slots__ = ("ctx", "doomed", "errors", "fresh", "pending", "plan", "resolving")

    def __init__(self, ctx: Any, plan: ToolPlan) -> None:
        self.ctx = ctx
        self.plan = plan
        self.pending = dict(plan.lets)
        self.errors: dict[str, str] = {}
        self.fresh: dict[str, Any] = {}  # scalar lets computed during the current run
        self.doomed = False  # the current run met a let it cannot see and will run again
        self.resolving = False

    def batch(self) -> list[Any] | None:
        """The values of every norm's ``when`` and each budget's ``when`` and ``measure``, or None on failure."""
        plan = self.plan
        if plan.batch is None:
            return None
        try:
            out = plan.batch.execute(self.ctx)
        except Exception:
            return None
        return out if isinstance(out, list) and len(out) == len(plan.norms) + 2 * len(plan.budgets) else None

    def _resolve(self, name: str) -> Any:
        if name in self.fresh:
            return self.fresh[name]
        if self.doomed:
            return None  # this run is repeated anyway: compute nothing more in it
        compiled = self.pending.pop(name, None)
        if compiled is None:
            return None  # not a let, or computed by an earlier run: the context's variables answer
        try:
            value = self._execute(compiled)
        except Exception as exc:  # the resolver must not raise: the CEL package would print and swallow it
            self.errors[name] = self.describe(exc)
            return None
        self.ctx.add_variable(name, value)
        if value is None or isinstance(value, list | dict):
            self.doomed = True
            return None
        self.fresh[name] = value
        return value

    def _execute(self, compiled: Any) -> Any:
        while True:
            self.doomed = False
            left = len(self.pending)
            try:
                value = compiled.program.execute(self.ctx)
            except Exception:
                if len(self.pending) == left:
                    raise  # no let was computed on the way: a real error
                continue
            self.doomed = False
            return value

    def run(self, compiled: Any) -> Any:
        """Execute ``compiled`` in this decision's context."""
        if not self.resolving and self.pending:
            self.resolving = True
            self.ctx.set_variable_resolver(self._resolve)
        try:
            return self._execute(compiled)
        finally:
            self.fresh.clear()

    def describe(self, exc: BaseException) -> str:
        """A short message for a run-time error, naming the let that failed when one did."""
        if isinstance(exc, KeyError):
            return f"no key {exc.args[0]!r} (use has(...) or get(map, key, default) for optional keys)"
        text = str(exc)
        m = _UNDEFINED.search(text)
        if m and m.group(1) in self.errors:
            return f"let '{m.group(1)}' failed: {self.errors[m.group(1)]}"
        return text.split(". Check", 1)[0] if text else type(exc).__name__


class _PyEnv:
    """One decision's expressions evaluated in Python (see ``verify.pycel``), with no conversion of its values.

    What Python defers — every error, and whatever ``pycel`` does not model — runs on the CEL package in an
    :class:`_Env` made on first need, so values, errors and their messages are the package's own.
    """

    __slots__ = ("_cel", "action", "now", "plan", "scope", "spec", "store")

    def __init__(
        self, spec: CompiledSpec, plan: ToolPlan, action: Action, now: datetime, store: Store | None, scope: Scope
    ) -> None:
        self.spec, self.plan, self.action, self.now, self.store = spec, plan, action, now, store
        self.scope = scope
        self._cel: _Env | None = None

    @classmethod
    def create(
        cls, spec: CompiledSpec, plan: ToolPlan, action: Action, now: datetime, store: Store | None
    ) -> _PyEnv | None:
        """The Python environment, or None where only the CEL package reads the values as it would."""
        variables, functions = _bindings(spec, plan, action, now, store, for_cel=False)
        if "context" in variables and (
            not_json_like(variables["context"]) is not None or unmodelled(variables["context"])
        ):
            return None  # times, objects the package refuses, ints beyond 64 bits: its conversion decides
        if ("action" in variables and unmodelled(action.args)) or unmodelled(variables.get("request", "")):
            return None
        if plan.raw_history and unmodelled(variables["history"]):  # outputs are outside data too
            return None
        return cls(
            spec, plan, action, now, store, Scope(variables, functions, spec.static_functions, plan.py_lets or {})
        )

    def cel(self) -> _Env:
        if self._cel is None:
            self._cel = _Env(_context(self.spec, self.plan, self.action, self.now, self.store), self.plan)
        return self._cel

    def batch(self) -> list[Any] | None:
        """Like :meth:`_Env.batch`; an item Python defers is ``_UNSET``, to be run on its own."""
        plan, scope = self.plan, self.scope
        if len(plan.py_batch) != len(plan.norms) + 2 * len(plan.budgets):
            return None  # a plan put together some other way: every norm is checked on its own, none skipped
        out: list[Any] = []
        for program in plan.py_batch:  # _try, written out: this loop runs every norm of the tool
            try:
                value = program(scope)
            except Exception:
                out.append(_UNSET)
                continue
            out.append(value if value is True or value is False or not unmodelled(value) else _UNSET)
        return out

    def _try(self, compiled: Compiled) -> Any:
        try:
            value = compiled.py(self.scope)  # type: ignore[misc]
        except Exception:  # Defer, or anything unforeseen (deep recursion): the package answers
            return _UNSET
        return value if value is True or value is False or not unmodelled(value) else _UNSET

    def run(self, compiled: Compiled) -> Any:
        """Evaluate ``compiled``: in Python, or on the CEL package where Python defers."""
        if compiled.py is not None:
            value = self._try(compiled)
            if value is not _UNSET:
                return value
        return self.cel().run(compiled)

    def describe(self, exc: BaseException) -> str:
        return self.cel().describe(exc)


def _check_norm(
    norm: CompiledNorm, env: _Env | _PyEnv, v: Verdict, revisions: dict[str, tuple[str, Any]], result: Any = _UNSET
) -> None:
    """Apply ``norm``; ``result`` is its condition's value when the batch computed it."""
    if result is False and norm.when is not None:
        return  # the usual case: a norm that does not apply
    n = norm.norm
    error = None
    if norm.when is None:
        fired = True
    else:
        if result is _UNSET:
            try:
                result = env.run(norm.when)
            except Exception as exc:
                result, error = None, env.describe(exc)
        if error is None and not isinstance(result, bool):
            error = f"'when' must be true or false, got {_shown(result)}"
        fired = result is True
    message = n.message or n.description or f"Norm '{n.id}' applies"
    values = tuple(n.serves)
    if error is not None:
        policy = norm.on_error
        text = f"{message} — its condition failed: {error}"
        if policy == "skip":
            v.add(Finding("norm", n.id, text, effect="info", values=values, error=error))
            return
        if policy == "escalate":
            v.add(Finding("norm", n.id, text, effect="escalate", values=values, error=error))
            return
        fired = True  # "fire": act as if the condition held
        message = text
    if not fired:
        return
    if n.effect == "revise":
        _revise(norm, env, v, revisions, message, error)
        return
    v.add(Finding("norm", n.id, message, effect=n.effect, values=values, error=error))
    if n.effect == "critique":
        v.critique.append(n.id)
        v.critique_serves.extend(values)


def _revise(
    norm: CompiledNorm,
    env: _Env | _PyEnv,
    v: Verdict,
    revisions: dict[str, tuple[str, Any]],
    message: str,
    error: str | None,
) -> None:
    n = norm.norm
    values = tuple(n.serves)
    mine: dict[str, Any] = {}
    for arg, compiled in norm.revise:
        if compiled is None:
            mine[arg] = _REMOVE
            continue
        try:
            mine[arg] = _as_arg(env.run(compiled))
        except Exception as exc:
            why = f"revise.{arg} failed: {env.describe(exc)}"
            v.add(Finding("norm", n.id, f"{message} — {why}", effect="escalate", values=values, error=why))
            return
    for arg, value in mine.items():
        other = revisions.get(arg)
        if other is not None and other[1] is not value and other[1] != value:
            why = f"norms '{other[0]}' and '{n.id}' revise '{arg}' differently"
            v.add(Finding("norm", n.id, f"Conflicting revisions: {why}", effect="escalate", values=values, error=why))
            return
    for arg, value in mine.items():
        revisions[arg] = (n.id, value)
    v.add(Finding("norm", n.id, message, effect="revise", values=values, error=error))


def _measure(budget: CompiledBudget, env: _Env | _PyEnv, v: Verdict, known: tuple[Any, Any] | None = None) -> None:
    """Charge ``budget``; ``known`` is its (when, measure) values when the batch computed them."""
    b = budget.budget
    try:
        if budget.when is not None:
            applies = env.run(budget.when) if known is None else known[0]
            if not isinstance(applies, bool):
                raise _BadValue(f"'when' must be true or false, got {_shown(applies)}")
            if not applies:
                return
        if known is None:
            known = (None, 1.0 if budget.measure is None else env.run(budget.measure))
        amount = known[1]
        if isinstance(amount, bool) or not isinstance(amount, int | float) or not 0 <= amount < math.inf:
            raise _BadValue(f"'measure' must be a finite number >= 0, got {_shown(amount)}")
    except Exception as exc:
        error = exc.args[0] if isinstance(exc, _BadValue) and exc.args else env.describe(exc)
        v.add(
            Finding(
                "budget",
                b.id,
                f"Budget '{b.id}' could not measure this call: {error}",
                effect=b.on_exceed,
                values=tuple(b.serves),
                error=str(error),
            )
        )
        return
    v.charges.append((budget, float(amount)))
