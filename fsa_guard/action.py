"""What the agent proposes: an :class:`Action` (one tool call) and the :class:`Call` history before it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

__all__ = ["Action", "Call"]


@dataclass(frozen=True, slots=True)
class Call:
    """An earlier tool call of this run, with what it returned.

    ``output`` may be text or any JSON-like value; text that parses as JSON is seen parsed by the
    spec's expressions (see :meth:`parsed_output`).
    """

    tool: str
    args: Mapping[str, Any] = field(default_factory=dict)
    output: Any = None

    @classmethod
    def coerce(cls, item: Call | Mapping[str, Any]) -> Call:
        """Accept a ``Call`` or a plain ``{"tool", "args", "output"}`` mapping."""
        if isinstance(item, Call):
            return item
        if type(item) is dict or isinstance(item, Mapping):
            return cls(tool=item.get("tool", ""), args=item.get("args") or {}, output=item.get("output"))
        raise TypeError(f"history items must be Call or mapping with 'tool', got {type(item).__name__}")

    def parsed_output(self) -> Any:
        """The output, parsed as JSON when it is text that parses; otherwise as it is."""
        out = self.output
        if isinstance(out, str | bytes):
            text = out.decode("utf-8", "replace") if isinstance(out, bytes) else out
            stripped = text.strip()
            if stripped[:1] in ("{", "[", '"') or stripped in ("true", "false", "null"):
                try:
                    return json.loads(stripped)
                except ValueError:
                    return text
            return text
        return out


@dataclass(frozen=True, slots=True)
class Action:
    """One tool call an agent proposes, with what the guard needs to judge it.

    - ``tool``/``args``: the call.
    - ``request``: the person's request that started this run (may be empty).
    - ``history``: earlier calls of this run, oldest first (``Call`` or mappings).
    - ``context``: what the integration knows (user id, role, channel, ...).
    - ``now``: pins the clock for this action (replays, tests); otherwise the guard's clock is used.
    """

    tool: str
    args: Mapping[str, Any] = field(default_factory=dict)
    request: str = ""
    history: Sequence[Call | Mapping[str, Any]] = ()
    context: Mapping[str, Any] = field(default_factory=dict)
    now: datetime | None = None
    id: str | None = None

    def with_args(self, args: Mapping[str, Any], tool: str | None = None) -> Action:
        """A copy of this action with other args (and optionally another tool)."""
        return replace(self, args=dict(args), tool=tool or self.tool)

    def to_dict(self, full: bool = False) -> dict[str, Any]:
        """The call part of the action (tool and args), JSON-ready even when the action is malformed; with
        ``full``, also its request, history, context, pinned ``now`` and id, for :meth:`from_dict`."""
        args = self.args if type(self.args) is dict or isinstance(self.args, Mapping) else {"<malformed>": self.args}
        out: dict[str, Any] = {"tool": jsonable(self.tool), "args": jsonable(args)}
        if full:
            calls = (Call.coerce(h) for h in self.history)
            out["request"] = jsonable(self.request)
            out["history"] = [jsonable({"tool": c.tool, "args": c.args, "output": c.output}) for c in calls]
            out["context"] = jsonable(dict(self.context))
            out["now"] = self.now.isoformat() if isinstance(self.now, datetime) else None
            out["id"] = self.id
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Action:
        """Read back what :meth:`to_dict` wrote (values that were not JSON come back as their text)."""
        now = data.get("now")
        return cls(
            tool=str(data.get("tool", "")),
            args=dict(data.get("args") or {}),
            request=str(data.get("request") or ""),
            history=tuple(Call.coerce(c) for c in data.get("history") or ()),
            context=dict(data.get("context") or {}),
            now=datetime.fromisoformat(now) if isinstance(now, str) else None,
            id=data.get("id"),
        )


_KEPT = frozenset({str, int, bool, type(None)})  # kept as they are, without a call each


def jsonable(value: Any) -> Any:
    """``value`` as JSON-ready data: containers recursively, times as ISO text, anything else as its repr."""
    t = type(value)
    if t in _KEPT or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else repr(value)
    if t is dict or isinstance(value, Mapping):
        return {
            k if type(k) is str or isinstance(k, str) else repr(k): v if type(v) in _KEPT else jsonable(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [v if type(v) in _KEPT else jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return repr(value)
