"""Labelled scenarios: one proposed call, its context and the outcome a person expects, one per JSONL line.

A line holds one JSON object::

    {"id": "pay-the-bill-i-asked-for",                       # unique in the file (default: "line N")
     "action": {"tool": "send_money", "args": {"recipient": "DE89...", "amount": 84.2}},
     "request": "Please pay the electricity bill in ...",     # the person's request (default "")
     "history": [{"tool": "read_file", "args": {...}, "output": "..."}],   # earlier calls, oldest first
     "context": {"contacts": [...]},                          # what the integration knows (default {})
     "now": "2025-03-04T14:30:00+01:00",                      # pins the clock (default: the guard's clock)
     "expected": "allow",                                     # allow | deny | revise | escalate
     "expected_findings": ["..."],                            # optional: the finding ids, in any order
     "expected_args": {...},                                  # optional: the args that run (revise, escalate)
     "used": {"daily-spend": 950.0},                          # optional: budget use before this call
     "tags": ["injection"], "why": "what the case shows"}     # optional

Blank lines are skipped. Every problem names the file, the line and the key (:class:`ScenarioError`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from .. import _json
from ..action import Action, Call
from ..decision import Outcome
from ..errors import ScenarioError

__all__ = ["OUTCOMES", "Scenario", "load_scenarios", "parse_scenario", "parse_scenarios"]

#: The four outcomes, in the order tables show them.
OUTCOMES: tuple[Outcome, ...] = ("allow", "revise", "escalate", "deny")

_KEYS = frozenset(
    {
        "id",
        "action",
        "request",
        "history",
        "context",
        "now",
        "expected",
        "expected_findings",
        "expected_args",
        "used",
        "tags",
        "why",
    }
)


@dataclass(frozen=True, slots=True)
class Scenario:
    """One labelled call: the :class:`Action` to decide and what a person expects the guard to answer.

    ``expected_findings`` and ``expected_args`` are ``None`` when the line does not say; ``used`` is the
    budget use (by budget id) to record before the call; ``where`` is ``file:line``.
    """

    id: str
    action: Action
    expected: Outcome
    expected_findings: tuple[str, ...] | None = None
    expected_args: Mapping[str, Any] | None = None
    used: Mapping[str, float] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    why: str = ""
    where: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The scenario as one JSONL line's object (what :func:`parse_scenario` reads back)."""
        a = self.action
        out: dict[str, Any] = {"id": self.id, "action": {"tool": a.tool, "args": dict(a.args)}}
        if a.request:
            out["request"] = a.request
        if a.history:
            out["history"] = [
                {"tool": c.tool, "args": dict(c.args), "output": c.output} for c in map(Call.coerce, a.history)
            ]
        if a.context:
            out["context"] = dict(a.context)
        if a.now is not None:
            out["now"] = a.now.isoformat()
        out["expected"] = self.expected
        if self.expected_findings is not None:
            out["expected_findings"] = list(self.expected_findings)
        if self.expected_args is not None:
            out["expected_args"] = dict(self.expected_args)
        if self.used:
            out["used"] = dict(self.used)
        if self.tags:
            out["tags"] = list(self.tags)
        if self.why:
            out["why"] = self.why
        return out


def load_scenarios(path: str | Path) -> list[Scenario]:
    """Read a JSONL file of scenarios; raises :class:`ScenarioError` naming the file, line and key."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(str(p), None, "", f"cannot read the scenario file: {exc}") from None
    # only "\n" ends a JSONL line: U+2028 and the like may stand unescaped inside a JSON string
    return parse_scenarios(text.split("\n"), str(p))


def parse_scenarios(lines: Iterable[str], file: str = "<scenarios>") -> list[Scenario]:
    """Parse JSONL lines (blank ones skipped); ids must be unique."""
    scenarios: list[Scenario] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = _json.loads(line)
        except json.JSONDecodeError as exc:
            raise ScenarioError(file, number, "", f"not valid JSON (column {exc.colno}): {exc.msg}") from None
        except ValueError as exc:
            raise ScenarioError(file, number, "", f"not valid JSON: {exc}") from None
        scenario = parse_scenario(data, file, number)
        if scenario.id in first_line:
            raise ScenarioError(
                file, number, "id", f"{scenario.id!r} is used again (first on line {first_line[scenario.id]})"
            )
        first_line[scenario.id] = number
        scenarios.append(scenario)
    if not scenarios:
        raise ScenarioError(file, None, "", "no scenarios: the file holds no JSON lines")
    return scenarios


def parse_scenario(data: Any, file: str = "<scenario>", line: int | None = None) -> Scenario:
    """One scenario from a decoded JSON object; raises :class:`ScenarioError` naming the key at fault."""

    def fail(key: str, message: str) -> ScenarioError:
        return ScenarioError(file, line, key, message)

    if not isinstance(data, dict):
        raise fail("", "a scenario must be a JSON object with 'action' and 'expected'")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise fail(unknown[0], f"unknown key; allowed: {', '.join(sorted(_KEYS))}")
    for key in ("action", "expected"):
        if key not in data:
            raise fail(key, "missing")
    action = data["action"]
    if not isinstance(action, dict):
        raise fail("action", "expected an object with 'tool' and 'args'")
    extra = sorted(set(action) - {"tool", "args"})
    if extra:
        raise fail(f"action.{extra[0]}", "unknown key; an action holds 'tool' and 'args' (the rest goes beside it)")
    tool = action.get("tool")
    if not isinstance(tool, str) or not tool:
        raise fail("action.tool", "expected a non-empty string")
    args = action.get("args", {})
    if not isinstance(args, dict):
        raise fail("action.args", "expected an object")
    expected = data["expected"]
    if expected not in OUTCOMES:
        raise fail("expected", f"expected one of allow, deny, revise, escalate, not {expected!r}")
    sid = data.get("id", f"line {line}" if line else "scenario")
    if not isinstance(sid, str) or not sid:
        raise fail("id", "expected a non-empty string")
    request = data.get("request", "")
    if not isinstance(request, str):
        raise fail("request", "expected a string")
    history = data.get("history", [])
    if not isinstance(history, list):
        raise fail("history", "expected a list of objects with 'tool', 'args' and 'output'")
    calls = []
    for i, h in enumerate(history):
        problem = history_item_problem(h)
        if problem:
            raise fail(f"history[{i}]{problem[0]}", problem[1])
        calls.append(Call.coerce(h))
    context = data.get("context", {})
    if not isinstance(context, dict):
        raise fail("context", "expected an object")
    now = None
    if data.get("now") is not None:
        now = parse_now(data["now"])
        if now is None:
            raise fail("now", NOW_EXPECTED)
    findings = data.get("expected_findings")
    if findings is not None and (not isinstance(findings, list) or not all(isinstance(f, str) for f in findings)):
        raise fail("expected_findings", "expected a list of finding ids")
    expected_args = data.get("expected_args")
    if expected_args is not None and not isinstance(expected_args, dict):
        raise fail("expected_args", "expected an object: the args that run")
    used = data.get("used", {})
    if not isinstance(used, dict):
        raise fail("used", "expected an object of budget id -> amount used before the call")
    for budget_id, amount in used.items():
        if isinstance(amount, bool) or not isinstance(amount, int | float) or not math.isfinite(amount) or amount < 0:
            raise fail(f"used.{budget_id}", f"expected a finite amount of 0 or more, not {json.dumps(amount)}")
    tags = data.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise fail("tags", "expected a list of strings")
    why = data.get("why", "")
    if not isinstance(why, str):
        raise fail("why", "expected a string")
    return Scenario(
        id=sid,
        action=Action(tool, args, request, tuple(calls), context, now, id=sid),
        expected=cast(Outcome, expected),
        expected_findings=None if findings is None else tuple(findings),
        expected_args=expected_args,
        used={k: float(v) for k, v in used.items()},
        tags=tuple(tags),
        why=why,
        where=f"{file}:{line}" if line else file,
    )


#: What ``now`` must look like, for the error that names it.
NOW_EXPECTED = "expected an ISO 8601 time such as 2026-03-01T09:30:00+01:00 (a string)"


def parse_now(value: Any) -> datetime | None:
    """An ISO 8601 time given as a string (a trailing Z is UTC), or None when ``value`` is not one."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def history_item_problem(item: Any) -> tuple[str, str] | None:
    """What is wrong with one JSON history item (the key under it at fault, and what was expected), or None."""
    if not isinstance(item, dict) or not isinstance(item.get("tool"), str) or not item["tool"]:
        return "", "expected an object with 'tool' (a non-empty string), 'args' and 'output'"
    unknown = sorted(set(item) - {"tool", "args", "output"})
    if unknown:
        return f".{unknown[0]}", "unknown key; a history item holds 'tool', 'args' and 'output'"
    if not isinstance(item.get("args", {}), dict):
        return ".args", "expected an object"
    return None


def spend_before(store: Any, spec: Any, scenario: Scenario) -> None:
    """Record ``scenario.used`` in ``store`` a minute before the scenario's time, as if earlier calls ran.

    Raises :class:`ScenarioError` for a budget id the spec does not have.
    """
    if not scenario.used:
        return
    budgets = {b.id: b for b in spec.budgets}
    at = scenario.action.now or datetime.now().astimezone()
    earlier = (at - timedelta(minutes=1)).timestamp()
    for budget_id, amount in scenario.used.items():
        b = budgets.get(budget_id)
        if b is None:
            raise ScenarioError(
                scenario.where, None, f"used.{budget_id}", f"the spec has no budget {budget_id!r} ({_known(budgets)})"
            )
        r = store.reserve(budget_id, float(amount), b.budget.limit, b.window_s, earlier, 3600.0, force=True)
        if r.id is not None:
            store.commit(r.id)


def _known(names: Sequence[str] | Mapping[str, Any]) -> str:
    listed = sorted(names)
    return "budgets: " + ", ".join(listed) if listed else "it has none"
