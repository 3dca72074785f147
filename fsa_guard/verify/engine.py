"""Deterministic verification of one action: arg schema, unknown tools, norms, and budget measures.

Run-time failures never allow by accident. A norm whose ``when`` fails (missing key, wrong type, a value
that is not a boolean) follows its ``on_error``: by default ``deny`` and ``escalate`` norms fire, and
``allow``, ``revise`` and ``critique`` norms escalate; ``skip`` records the error and goes on. A ``revise``
expression that fails escalates. A budget whose ``when`` or ``measure`` fails resolves as its
``on_exceed``. Every such error is a finding with ``error`` set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import cel

from ..action import Action
from ..decision import Finding
from ..spec.compiled import CompiledBudget, CompiledNorm, CompiledSpec, ToolPlan
from ..store.base import Store
from .functions import HistoryIndex, _fixed_offset
from .schema import ArgsValidator

__all__ = ["Verdict", "verify"]


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

    def add(self, finding: Finding) -> None:
        """Record a finding and what it asks for."""
        self.findings.append(finding)
        if finding.effect == "deny":
            self.deny = True
        elif finding.effect == "escalate":
            self.escalate = True


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
) -> Verdict:
    """Verify ``action`` against ``spec``; never raises for bad input, it denies instead."""
    tool, args = action.tool, action.args
    if not isinstance(tool, str) or not tool:
        return _malformed(f"the action's tool must be a non-empty string, got {tool!r}")
    if not isinstance(args, Mapping) or not all(isinstance(k, str) for k in args):
        return _malformed(f"the args of {tool} must be a mapping with string keys, got {type(args).__name__}")
    if validator is not None:
        problem = validator.check(args)
        if problem:
            return _malformed(f"{tool}: {problem}")

    plan = spec.plan(tool)
    if not plan.known:
        v = Verdict()
        if spec.unknown_tool != "allow":
            v.add(
                Finding(
                    "guard",
                    "unknown-tool",
                    f"No value, norm or budget of the spec names the tool '{tool}', and the spec says unknown "
                    f"tools {'are denied' if spec.unknown_tool == 'deny' else 'need approval'}",
                    effect=spec.unknown_tool,
                )
            )
        return v

    try:
        ctx = _context(spec, plan, action, now, store)
    except (ValueError, TypeError) as exc:
        return _malformed(f"the args of {tool} cannot be read by the spec's expressions: {exc}")

    v = Verdict()
    let_errors = _eval_lets(plan, ctx)
    revisions: dict[str, tuple[str, Any]] = {}
    for norm in plan.norms:
        _check_norm(norm, ctx, let_errors, v, revisions)
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
        for budget in plan.budgets:
            _measure(budget, ctx, let_errors, v)
    return v


_REMOVE: Any = object()


def _context(spec: CompiledSpec, plan: ToolPlan, action: Action, now: datetime, store: Store | None) -> Any:
    names = plan.variables
    variables: dict[str, Any] = {}
    if "action" in names:
        variables["action"] = {"tool": action.tool, "args": dict(action.args)}
    if "request" in names:
        variables["request"] = action.request or ""
    if "context" in names:
        variables["context"] = dict(action.context)
    if "now" in names:
        variables["now"] = _fixed_offset(now)
    if "state" in names:
        variables["state"] = _state(spec, store, now)
    functions = dict(plan.functions)
    if "history" in names or plan.history_functions:
        index = HistoryIndex(action.history)
        # Converting the history for CEL is the costly part of a decision; do it only when an
        # expression reads it directly. History functions get the Python-side index instead.
        variables["history"] = index.as_cel() if plan.raw_history else 0
        functions.update(index.bound(plan.history_functions))
    return cel.Context(variables=variables, functions=functions)


def _state(spec: CompiledSpec, store: Store | None, now: datetime) -> dict[str, Any]:
    budgets: dict[str, Any] = {}
    ts = now.timestamp()
    for b in spec.budgets:
        used = store.usage(b.id, b.window_s, ts) if store is not None else 0.0
        budgets[b.id] = {"used": used, "limit": b.budget.limit, "remaining": max(0.0, b.budget.limit - used)}
    return {"budgets": budgets}


def _eval_lets(plan: ToolPlan, ctx: Any) -> dict[str, str]:
    errors: dict[str, str] = {}
    for name, compiled in plan.lets:
        failed = compiled.lets & errors.keys()
        if failed:
            errors[name] = f"depends on let '{sorted(failed)[0]}', which failed"
            continue
        try:
            ctx.add_variable(name, compiled.program.execute(ctx))
        except Exception as exc:
            errors[name] = _describe(exc)
    return errors


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"no key {exc.args[0]!r} (use has(...) or get(map, key, default) for optional keys)"
    text = str(exc)
    return text.split(". Check", 1)[0] if text else type(exc).__name__


def _run(compiled: Any, ctx: Any, let_errors: Mapping[str, str]) -> Any:
    failed = compiled.lets & let_errors.keys()
    if failed:
        name = sorted(failed)[0]
        raise _LetFailed(f"let '{name}' failed: {let_errors[name]}")
    return compiled.program.execute(ctx)


class _LetFailed(Exception):
    pass


def _check_norm(
    norm: CompiledNorm,
    ctx: Any,
    let_errors: Mapping[str, str],
    v: Verdict,
    revisions: dict[str, tuple[str, Any]],
) -> None:
    n = norm.norm
    error = None
    if norm.when is None:
        fired = True
    else:
        try:
            result = _run(norm.when, ctx, let_errors)
        except Exception as exc:
            result, error = None, _describe(exc)
        if error is None and not isinstance(result, bool):
            error = f"'when' must be true or false, got {result!r}"
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
        _revise(norm, ctx, let_errors, v, revisions, message, error)
        return
    v.add(Finding("norm", n.id, message, effect=n.effect, values=values, error=error))
    if n.effect == "critique":
        v.critique.append(n.id)
        v.critique_serves.extend(values)


def _revise(
    norm: CompiledNorm,
    ctx: Any,
    let_errors: Mapping[str, str],
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
            mine[arg] = _run(compiled, ctx, let_errors)
        except Exception as exc:
            why = f"revise.{arg} failed: {_describe(exc)}"
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


def _measure(budget: CompiledBudget, ctx: Any, let_errors: Mapping[str, str], v: Verdict) -> None:
    b = budget.budget
    try:
        if budget.when is not None:
            applies = _run(budget.when, ctx, let_errors)
            if not isinstance(applies, bool):
                raise TypeError(f"'when' must be true or false, got {applies!r}")
            if not applies:
                return
        amount = 1.0 if budget.measure is None else _run(budget.measure, ctx, let_errors)
        if isinstance(amount, bool) or not isinstance(amount, int | float) or amount != amount or amount < 0:
            raise TypeError(f"'measure' must be a number >= 0, got {amount!r}")
    except Exception as exc:
        error = exc.args[0] if isinstance(exc, _LetFailed | TypeError) and exc.args else _describe(exc)
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
