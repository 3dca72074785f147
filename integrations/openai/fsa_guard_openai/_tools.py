"""The Python functions a model may call: by name, with the JSON Schema of their args, in both API formats."""

from __future__ import annotations

import asyncio
import inspect
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeAlias

from fsa_guard import Guard
from fsa_guard.verify.schema import call_args, schema_from_signature

__all__ = ["Toolbox", "Tools", "chat_tools", "response_tools"]


class Toolbox:
    """The functions a model may call, each under its name, with the JSON Schema of its args derived from its
    signature (as ``@guard.tool`` does) and its description from the docstring's first paragraph.

    ``tools`` is a mapping of name to function, or functions (each under its ``__name__``). Functions may be
    sync or async. ``schemas`` overrides the derived schema of a tool by name.
    """

    def __init__(
        self,
        tools: Mapping[str, Callable[..., Any]] | Iterable[Callable[..., Any]],
        *,
        schemas: Mapping[str, Mapping[str, Any]] | None = None,
        descriptions: Mapping[str, str] | None = None,
    ) -> None:
        named = dict(tools) if isinstance(tools, Mapping) else {_name_of(fn): fn for fn in tools}
        self.functions: dict[str, Callable[..., Any]] = {}
        self.schemas: dict[str, dict[str, Any]] = {}
        self.descriptions: dict[str, str] = {}
        for name, fn in named.items():
            if not isinstance(name, str) or not name:
                raise TypeError(f"a tool's name must be a non-empty string, got {name!r}")
            if not callable(fn):
                raise TypeError(f"tool {name!r} is not callable: {fn!r}")
            self.functions[name] = fn
            given = (schemas or {}).get(name)
            self.schemas[name] = dict(given) if given is not None else schema_from_signature(fn)
            doc = (descriptions or {}).get(name) or inspect.getdoc(fn) or ""
            self.descriptions[name] = doc.split("\n\n", 1)[0].strip()
        self._registered: weakref.WeakSet[Guard] = weakref.WeakSet()

    @classmethod
    def of(cls, tools: Tools) -> Toolbox:
        """``tools`` as a Toolbox (a Toolbox is returned as it is)."""
        return tools if isinstance(tools, Toolbox) else cls(tools)

    def __contains__(self, name: object) -> bool:
        return name in self.functions

    def __iter__(self) -> Iterator[str]:
        return iter(self.functions)

    def __len__(self) -> int:
        return len(self.functions)

    def register(self, guard: Guard) -> None:
        """Declare every tool's schema to ``guard`` (once per guard), so calls whose args do not match are
        denied as ``malformed-action`` before they run."""
        if guard in self._registered:
            return
        for name, schema in self.schemas.items():
            guard.register_tool(name, schema)
        self._registered.add(guard)

    def chat_tools(self, *, strict: bool | None = None) -> list[dict[str, Any]]:
        """The ``tools=[...]`` of a Chat Completions request. ``strict=True`` asks for strict schema adherence,
        which OpenAI allows only for schemas where every parameter is required."""
        out: list[dict[str, Any]] = []
        for name in self.functions:
            function: dict[str, Any] = {"name": name, "parameters": self.schemas[name]}
            if self.descriptions[name]:
                function["description"] = self.descriptions[name]
            if strict is not None:
                function["strict"] = strict
            out.append({"type": "function", "function": function})
        return out

    def response_tools(self, *, strict: bool = False) -> list[dict[str, Any]]:
        """The ``tools=[...]`` of a Responses request (not strict unless asked: see :meth:`chat_tools`)."""
        out: list[dict[str, Any]] = []
        for name in self.functions:
            tool: dict[str, Any] = {
                "type": "function",
                "name": name,
                "parameters": self.schemas[name],
                "strict": strict,
            }
            if self.descriptions[name]:
                tool["description"] = self.descriptions[name]
            out.append(tool)
        return out

    def call(self, name: str, args: Mapping[str, Any]) -> Any:
        """Run tool ``name`` with ``args`` (an async tool is run to completion; not inside a running loop)."""
        fn = self.functions[name]
        positional, keywords = _call_args(fn, args)
        result = fn(*positional, **keywords)
        if inspect.isawaitable(result):
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return asyncio.run(_wait(result))
            if inspect.iscoroutine(result):
                result.close()
            raise RuntimeError(
                f"{name} is async and an event loop is running here: use the async loop (arun_tool_loop) instead"
            )
        return result

    async def acall(self, name: str, args: Mapping[str, Any]) -> Any:
        """Run tool ``name`` with ``args``, awaiting it when it is async (a sync tool runs in this thread)."""
        fn = self.functions[name]
        positional, keywords = _call_args(fn, args)
        result = fn(*positional, **keywords)
        if inspect.isawaitable(result):
            return await result
        return result


Tools: TypeAlias = Toolbox | Mapping[str, Callable[..., Any]] | Iterable[Callable[..., Any]]


def chat_tools(tools: Tools, *, strict: bool | None = None) -> list[dict[str, Any]]:
    """The Chat Completions ``tools=[...]`` for a mapping or list of functions (see :class:`Toolbox`)."""
    return Toolbox.of(tools).chat_tools(strict=strict)


def response_tools(tools: Tools, *, strict: bool = False) -> list[dict[str, Any]]:
    """The Responses ``tools=[...]`` for a mapping or list of functions (see :class:`Toolbox`)."""
    return Toolbox.of(tools).response_tools(strict=strict)


async def _wait(awaitable: Any) -> Any:
    return await awaitable


def _name_of(fn: Callable[..., Any]) -> str:
    name = getattr(fn, "__name__", None)
    if not isinstance(name, str) or name == "<lambda>":
        raise TypeError(f"cannot name tool {fn!r}: pass a mapping of name to function instead")
    return name


def _call_args(fn: Callable[..., Any], args: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """Positional and keyword arguments to call ``fn`` with a call's args (as ``@guard.tool`` does)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return [], dict(args)
    return call_args(sig, args)
