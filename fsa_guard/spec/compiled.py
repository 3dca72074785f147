"""Compile a resolved spec once: CEL programs, the tool index, and a cached plan per tool name.

``decide()`` never parses: it asks :meth:`CompiledSpec.plan` for the tool's plan (computed once per tool
name) and evaluates only the norms and budgets that can apply to that tool.
"""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ..errors import Problem, SpecError, did_you_mean
from ..verify.expr import EXTENSION_FUNCTIONS, Compiled, ExprError, compile_batch, compile_expr
from ..verify.functions import HISTORY_FUNCTIONS, static_functions
from ..verify.pycel import PyProgram, Scope
from .loader import ResolvedSpec, Source, load_layers, resolve
from .model import Budget, CriticSettings, EscalationSettings, Norm, Priority, Remember, ValueCard

__all__ = [
    "CompiledBudget",
    "CompiledNorm",
    "CompiledRemember",
    "CompiledSpec",
    "ToolPlan",
    "check_spec",
    "compile_spec",
    "load_spec",
]

_PLAN_CACHE_MAX = 4096


@dataclass(frozen=True, slots=True)
class CompiledNorm:
    """A norm with its compiled condition and revision."""

    norm: Norm
    when: Compiled | None  # None: always applies
    revise: tuple[tuple[str, Compiled | None], ...]
    on_error: str
    source: Source

    @property
    def id(self) -> str:
        """The norm's id."""
        return self.norm.id


@dataclass(frozen=True, slots=True)
class CompiledBudget:
    """A budget with its compiled condition and measure."""

    budget: Budget
    when: Compiled | None
    measure: Compiled | None  # None: counts 1 per call
    window_s: float
    source: Source

    @property
    def id(self) -> str:
        """The budget's id."""
        return self.budget.id


@dataclass(frozen=True, slots=True)
class CompiledRemember:
    """A remember rule with its compiled value and condition."""

    rule: Remember
    value: Compiled
    when: Compiled | None
    window_s: float | None
    source: Source

    @property
    def id(self) -> str:
        """The rule's id."""
        return self.rule.id


@dataclass(frozen=True, slots=True)
class ToolPlan:
    """Everything one tool's decisions need, computed once per tool name."""

    tool: str
    known: bool
    norms: tuple[CompiledNorm, ...]
    budgets: tuple[CompiledBudget, ...]
    critique_values: tuple[ValueCard, ...]
    remember: tuple[CompiledRemember, ...]
    lets: tuple[tuple[str, Compiled], ...]  # in dependency order
    variables: frozenset[str]
    functions: dict[str, Callable[..., Any]]  # static and extension functions to register
    history_functions: tuple[str, ...]
    raw_history: bool
    arg_keys: frozenset[str] | None  # the args keys any expression can observe (None: all)
    context_keys: frozenset[str] | None
    state_keys: frozenset[str] | None  # what `state` entries expressions read (None: all)
    # The let programs in Python when every expression of the plan has one (see verify.pycel); None: the
    # plan runs on the CEL package only.
    py_lets: dict[str, PyProgram] | None = None
    # With py_lets: the Python programs of the batch, in its order (see _py_batch).
    py_batch: tuple[PyProgram, ...] = ()
    _batch: list[Any] = field(default_factory=list)  # the batch program, once built

    @property
    def batch(self) -> Any:
        """One CEL program for every norm's `when` and each budget's `when` and `measure`, in that order
        (None: nothing to evaluate, or it did not combine); see verify.engine for how it is used. Built on
        first use: a plan evaluated in Python needs it only with ``FSA_GUARD_PYCEL=0``, and for a tool with
        thousands of norms it costs most of the plan."""
        if not self._batch:
            self._batch.append(_batch(self.norms, self.budgets, self.lets))  # a race builds it twice, alike
        return self._batch[0]


class CompiledSpec:
    """An immutable, compiled spec: what a :class:`~fsa_guard.Guard` evaluates."""

    def __init__(
        self,
        resolved: ResolvedSpec,
        norms: Sequence[CompiledNorm],
        budgets: Sequence[CompiledBudget],
        lets: dict[str, Compiled],
        remember: Sequence[CompiledRemember] = (),
    ) -> None:
        self.resolved = resolved
        self.id = resolved.id
        self.digest = resolved.digest()
        self.zone = ZoneInfo(resolved.timezone)
        self.unknown_tool = resolved.unknown_tool
        self.max_revisions = resolved.max_revisions
        self.values: dict[str, ValueCard] = {v.id: v for v in resolved.values if v.endorsed}
        self.inactive_values: dict[str, ValueCard] = {v.id: v for v in resolved.values if not v.endorsed}
        self.titles: dict[str, str] = {v.id: v.title for v in resolved.values}
        self.priorities: tuple[Priority, ...] = tuple(resolved.priorities)
        self.critic = CriticSettings(**resolved.critic)
        self.escalation = EscalationSettings(**resolved.escalation)
        self.norms = tuple(norms)
        #: deny norms a person's edit may run a call past (``human_overridable: true``)
        self.overridable = frozenset(n.norm.id for n in self.norms if n.norm.human_overridable)
        self.budgets = tuple(budgets)
        self.remember = tuple(remember)
        self.lets = lets
        #: the functions expressions may call that do not depend on a decision (extensions and the spec's own)
        self.static_functions = {**EXTENSION_FUNCTIONS, **static_functions(self.zone)}
        self._index = _ToolIndex(
            [(n.norm.tools, n) for n in self.norms],
            [(b.budget.tools, b) for b in self.budgets],
            [(v.tools, v) for v in self.values.values()],
            [(resolved.known_tools, True)],
            [(r.rule.tools, r) for r in self.remember],
        )
        self._plans: dict[str, ToolPlan] = {}
        self._lock = threading.Lock()

    @property
    def files(self) -> list[str]:
        """The spec files, in layer order."""
        return list(self.resolved.files)

    def plan(self, tool: str) -> ToolPlan:
        """The plan for ``tool``: cached, so the number of norms for other tools does not matter."""
        plan = self._plans.get(tool)
        if plan is None:
            plan = self._make_plan(tool)
            with self._lock:
                if len(self._plans) >= _PLAN_CACHE_MAX:
                    self._plans.clear()  # an agent inventing tool names must not grow memory without bound
                self._plans[tool] = plan
        return plan

    def _make_plan(self, tool: str) -> ToolPlan:
        norms = tuple(self._index.norms(tool))
        budgets = tuple(self._index.budgets(tool))
        values = self._index.values(tool)
        remember = tuple(self._index.remember(tool))
        exprs: list[Compiled] = [c for r in remember for c in (r.value, r.when) if c is not None]
        for n in norms:
            exprs.extend(c for c in (n.when, *(r for _, r in n.revise)) if c is not None)
        for b in budgets:
            exprs.extend(c for c in (b.when, b.measure) if c is not None)
        lets = self._lets_needed(exprs)
        exprs.extend(c for _, c in lets)
        functions = frozenset().union(*(c.functions for c in exprs)) if exprs else frozenset()
        python = all(c.py for c in exprs)
        return ToolPlan(
            tool=tool,
            known=bool(self._index.known(tool)),
            norms=norms,
            budgets=budgets,
            critique_values=tuple(v for v in values if v.critique),
            remember=remember,
            lets=lets,
            variables=frozenset().union(*(c.variables for c in exprs)) if exprs else frozenset(),
            functions={f: self.static_functions[f] for f in functions if f in self.static_functions},
            history_functions=tuple(sorted(f for f in functions if f in HISTORY_FUNCTIONS)),
            raw_history=any(c.raw_history for c in exprs),
            arg_keys=_union_keys(c.arg_keys for c in exprs),
            context_keys=_union_keys(c.context_keys for c in exprs),
            state_keys=_union_keys(c.state_keys for c in exprs),
            py_lets={name: c.py for name, c in lets if c.py} if python else None,
            py_batch=_py_batch(norms, budgets) if python else (),
        )

    def _lets_needed(self, exprs: Iterable[Compiled]) -> tuple[tuple[str, Compiled], ...]:
        order: list[str] = []
        seen: set[str] = set()

        def visit(name: str) -> None:
            if name in seen:
                return
            seen.add(name)
            for dep in sorted(self.lets[name].lets):
                visit(dep)
            order.append(name)

        for c in exprs:
            for name in sorted(c.lets):
                visit(name)
        return tuple((name, self.lets[name]) for name in order)

    def relevant_values(self, tool: str, serves: Iterable[str] = ()) -> list[ValueCard]:
        """Active values at stake for ``tool`` (by their ``tools`` globs) or served by the given norms."""
        out = {v.id: v for v in self._index.values(tool)}
        for vid in serves:
            if vid in self.values:
                out.setdefault(vid, self.values[vid])
        return list(out.values())

    def priorities_between(self, values: Iterable[ValueCard]) -> list[Priority]:
        """The person's priorities whose two values are both among ``values``."""
        ids = {v.id for v in values}
        return [p for p in self.priorities if p.prefer in ids and p.over in ids]


def _batch(
    norms: Sequence[CompiledNorm], budgets: Sequence[CompiledBudget], lets: Sequence[tuple[str, Compiled]]
) -> Any:
    items: list[str] = [n.when.source if n.when else "true" for n in norms]
    for b in budgets:
        items += [b.when.source if b.when else "true", b.measure.source if b.measure else "1.0"]
    if not items:
        return None
    try:
        return compile_batch(items, lets)
    except ExprError:
        return None  # each expression compiled on its own, so they still run one by one


def _union_keys(sets: Iterable[frozenset[str] | None]) -> frozenset[str] | None:
    out: set[str] = set()
    for keys in sets:
        if keys is None:
            return None
        out |= keys
    return frozenset(out)


class _ToolIndex:
    """Items by exact tool name, plus the glob patterns that must be matched once per new tool name."""

    def __init__(self, *kinds: Sequence[tuple[Sequence[str], Any]]) -> None:
        self._exact: list[dict[str, list[int]]] = []
        self._globs: list[list[tuple[str, int]]] = []
        self._items: list[list[Any]] = []
        for pairs in kinds:
            exact: dict[str, list[int]] = {}
            globs: list[tuple[str, int]] = []
            for i, (patterns, _) in enumerate(pairs):
                for pat in dict.fromkeys(patterns):
                    if any(ch in pat for ch in "*?["):
                        globs.append((pat, i))
                    else:
                        exact.setdefault(pat, []).append(i)
            self._exact.append(exact)
            self._globs.append(globs)
            self._items.append([item for _, item in pairs])

    def _match(self, k: int, tool: str) -> list[Any]:
        idx = set(self._exact[k].get(tool, ()))
        idx.update(i for pat, i in self._globs[k] if fnmatch.fnmatchcase(tool, pat))
        return [self._items[k][i] for i in sorted(idx)]

    def norms(self, tool: str) -> list[CompiledNorm]:
        return self._match(0, tool)

    def budgets(self, tool: str) -> list[CompiledBudget]:
        return self._match(1, tool)

    def values(self, tool: str) -> list[ValueCard]:
        return self._match(2, tool)

    def known(self, tool: str) -> list[bool]:
        return self._match(3, tool)

    def remember(self, tool: str) -> list[CompiledRemember]:
        return self._match(4, tool)


def compile_spec(resolved: ResolvedSpec) -> CompiledSpec:
    """Compile every expression of ``resolved``; raise :class:`SpecError` with all problems."""
    compiled, problems = _compile(resolved)
    if compiled is None:
        raise SpecError(problems)
    return compiled


def _compile(resolved: ResolvedSpec) -> tuple[CompiledSpec | None, list[Problem]]:
    problems: list[Problem] = []
    let_names = list(resolved.let)

    state_ids = {"budgets": [b.id for b in resolved.budgets], "remembered": [r.id for r in resolved.remember]}

    def comp(src: str, where: Source, key: str) -> Compiled | None:
        try:
            compiled = compile_expr(src, let_names)
            for entry in sorted(compiled.state_keys or ()):  # state.budgets.<id>, state.remembered.<id>
                kind, _, name = entry.partition(".")
                known = state_ids[kind]
                if name not in known:
                    hint = did_you_mean(name, known) or f"the spec's {kind}: {', '.join(known) or 'none'}"
                    raise ExprError(f"state.{kind} has no '{name}'", hint)
            return compiled
        except ExprError as exc:
            line = resolved.key_lines.get((where.file, key), where.line)
            problems.append(Problem(where.file, line, key, str(exc), code="cel", hint=exc.hint))
            return None

    lets: dict[str, Compiled] = {}
    for name, src in resolved.let.items():
        where = resolved.sources[("let", name)]
        c = comp(src, where, where.key)
        if c is not None:
            lets[name] = c
    problems.extend(_let_cycles(lets, resolved))

    norms: list[CompiledNorm] = []
    for n in resolved.norms:
        where = resolved.sources[("norms", n.id)]
        when = None if n.when.strip() == "true" else comp(n.when, where, f"{where.key}.when")
        revise: list[tuple[str, Compiled | None]] = []
        for arg, expr in (n.revise or {}).items():
            revise.append((arg, None if expr is None else comp(expr, where, f"{where.key}.revise.{arg}")))
        norms.append(CompiledNorm(n, when, tuple(revise), n.effective_on_error, where))

    budgets: list[CompiledBudget] = []
    for b in resolved.budgets:
        where = resolved.sources[("budgets", b.id)]
        when = None if b.when.strip() == "true" else comp(b.when, where, f"{where.key}.when")
        measure = None if b.measure.strip() == "1" else comp(b.measure, where, f"{where.key}.measure")
        budgets.append(CompiledBudget(b, when, measure, b.window_seconds, where))

    remember: list[CompiledRemember] = []
    for r in resolved.remember:
        where = resolved.sources[("remember", r.id)]
        value = comp(r.value, where, f"{where.key}.value")
        when = None if r.when.strip() == "true" else comp(r.when, where, f"{where.key}.when")
        if value is not None:
            remember.append(CompiledRemember(r, value, when, r.window_seconds, where))

    if problems:
        return None, problems
    return CompiledSpec(resolved, norms, budgets, lets, remember), problems


def _let_cycles(lets: dict[str, Compiled], resolved: ResolvedSpec) -> Iterable[Problem]:
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(name: str, path: tuple[str, ...]) -> Problem | None:
        if state.get(name) == 2 or name not in lets:
            return None
        if state.get(name) == 1:
            if name not in path:
                return None  # on a cycle that was already reported
            where = resolved.sources[("let", name)]
            cycle = " -> ".join((*path[path.index(name) :], name))
            return where.problem(f"let names refer to each other in a cycle: {cycle}", code="let-cycle")
        state[name] = 1
        for dep in sorted(lets[name].lets):
            p = visit(dep, (*path, name))
            if p:
                return p
        state[name] = 2
        return None

    for name in lets:
        p = visit(name, ())
        if p:
            yield p


def check_spec(*paths: str | Path) -> tuple[CompiledSpec | None, list[Problem]]:
    """Load, layer and compile spec files, returning every problem found instead of raising."""
    if not paths:
        return None, [Problem("<none>", None, "", "no spec file given", code="missing-file")]
    layers, problems = load_layers(paths)
    resolved, more = resolve(layers)
    if problems:  # a layer that failed to parse would make every id it defines look unknown
        more = [p for p in more if p.code != "unknown-value"]
    problems.extend(more)
    compiled, more = _compile(resolved)
    problems.extend(more)
    return (compiled if not problems else None), problems


def load_spec(*paths: str | Path) -> CompiledSpec:
    """Load, layer and compile spec files (later files layered over earlier ones).

    Raises :class:`~fsa_guard.SpecError` listing every problem, each with file, line and key.
    """
    compiled, problems = check_spec(*paths)
    if compiled is None:
        raise SpecError(problems)
    return compiled


def _py_batch(norms: Sequence[CompiledNorm], budgets: Sequence[CompiledBudget]) -> tuple[PyProgram, ...]:
    """The Python programs of the batch (every expression has one), in its order: each norm's `when`, then each
    budget's `when` and `measure`. An item without an expression has a program giving what it means (true, or a
    measure of 1): one flat tuple of functions, for a tool with thousands of norms to read in a row."""
    programs: list[PyProgram] = [_always_true if n.when is None else _py(n.when) for n in norms]
    for b in budgets:
        programs.append(_always_true if b.when is None else _py(b.when))
        programs.append(_measure_one if b.measure is None else _py(b.measure))
    return tuple(programs)


def _py(compiled: Compiled) -> PyProgram:
    assert compiled.py is not None  # a plan has py_batch only when every expression has its Python program
    return compiled.py


def _always_true(scope: Scope) -> bool:
    return True


def _measure_one(scope: Scope) -> float:
    return 1.0
