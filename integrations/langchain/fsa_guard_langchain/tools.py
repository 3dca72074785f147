"""``guard_tools()``: plain LangChain tools that ask the guard before they run, for agents built without
``create_agent`` middleware (LangGraph's ``ToolNode``, a hand-written loop, a chain that calls tools).

Each wrapped tool keeps its name, description and argument schema. A call the guard allows runs; a
revised call runs with the revised args (on the tool the revision names, when it is one of the wrapped
tools), and its output ends with a note saying what the guard changed, so the model does not take the call
for the one it wrote; a refused call returns the refusal as the tool's output, so the model can adapt and the
run goes on; an escalated call returns a text saying it needs the person's approval (or, with
``raise_on_escalate=True``, raises :class:`fsa_guard.EscalationRequired` for your own code to ask). Every call
that ran is reported.

Calls made inside ``with guard.session(request=...)`` carry that request and context, and the session's
earlier calls as history, exactly as ``@guard.tool`` functions do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, get_args

from langchain_core.callbacks import AsyncCallbackManagerForToolRun, CallbackManagerForToolRun
from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig, patch_config
from langchain_core.tools import BaseTool, InjectedToolCallId, ToolException
from langchain_core.tools import tool as make_tool
from langchain_core.tools.base import get_all_basemodel_annotations
from pydantic import BaseModel, ConfigDict
from typing_extensions import override

import fsa_guard.guard
from fsa_guard import Action, Call, Decision, EscalationRequired, Guard

from .convert import refusal_text, text_of, waiting_text, with_revision_note

__all__ = ["GuardedTool", "guard_tools"]


def guard_tools(
    tools: Sequence[BaseTool | Callable[..., Any]],
    guard: Guard,
    *,
    raise_on_escalate: bool = False,
) -> list[BaseTool]:
    """Wrap LangChain tools (or plain functions, made into tools) so that ``guard`` decides every call.

    Refusals and escalations come back as the tool's output text; with ``raise_on_escalate`` an
    escalation raises :class:`fsa_guard.EscalationRequired` instead (it carries the decision).
    """
    inner = [t if isinstance(t, BaseTool) else make_tool(t) for t in tools]
    by_name = {t.name: t for t in inner}
    return [GuardedTool.wrap(t, guard, by_name, raise_on_escalate) for t in inner]


class GuardedTool(BaseTool):
    """A LangChain tool that asks a guard before it runs its inner tool (see :func:`guard_tools`)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    inner: BaseTool
    guard: Guard
    siblings: Mapping[str, BaseTool]  # the wrapped tools by name, for a revision that changes the tool
    raise_on_escalate: bool = False

    @classmethod
    def wrap(
        cls, inner: BaseTool, guard: Guard, siblings: Mapping[str, BaseTool], raise_on_escalate: bool = False
    ) -> GuardedTool:
        """Wrap ``inner``, keeping its name, description, argument schema and output format."""
        return cls(
            name=inner.name,
            description=inner.description,
            args_schema=inner.args_schema,
            return_direct=inner.return_direct,
            response_format=inner.response_format,
            handle_validation_error=inner.handle_validation_error,
            handle_tool_error=_pass_on_handled,
            tags=inner.tags,
            metadata=inner.metadata,
            inner=inner,
            guard=guard,
            siblings=siblings,
            raise_on_escalate=raise_on_escalate,
        )

    @override
    def _run(
        self,
        *args: Any,
        config: RunnableConfig,
        run_manager: CallbackManagerForToolRun | None = None,
        **kwargs: Any,
    ) -> Any:
        action, session, injected = self._action(args, kwargs)
        decision = self.guard.decide(action)
        refused = self._refused(decision)
        if refused is not None:
            return self._output(refused, None)
        target = self._target(decision)
        child = patch_config(config, callbacks=run_manager.get_child() if run_manager else None)
        try:
            result = target.invoke(self._tool_call(decision, injected), config=child)
        except BaseException as exc:
            self._report(decision, session, False, f"error: {type(exc).__name__}: {exc}")
            raise
        return self._finish(decision, session, result)

    @override
    async def _arun(
        self,
        *args: Any,
        config: RunnableConfig,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
        **kwargs: Any,
    ) -> Any:
        action, session, injected = self._action(args, kwargs)
        decision = await self.guard.adecide(action)
        refused = self._refused(decision)
        if refused is not None:
            return self._output(refused, None)
        target = self._target(decision)
        child = patch_config(config, callbacks=run_manager.get_child() if run_manager else None)
        try:
            result = await target.ainvoke(self._tool_call(decision, injected), config=child)
        except BaseException as exc:
            self._report(decision, session, False, f"error: {type(exc).__name__}: {exc}")
            raise
        return self._finish(decision, session, result)

    def _action(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Action, Any, dict[str, Any]]:
        """The call as the model made it, and the args LangChain injected (a tool call id, the runtime, the
        state), which are no part of it: they are passed on to the tool as they came."""
        visible = _model_args(self.inner)
        injected = {k: v for k, v in kwargs.items() if visible is not None and k not in visible}
        shown = {k: _plain(v) for k, v in kwargs.items() if k not in injected}
        call_args = {"__arg1": args[0]} if args and not kwargs else shown
        session = _current_session(self.guard)
        if session is None:
            return Action(self.name, call_args), None, injected
        action = Action(self.name, call_args, session.request, tuple(session.history), session.context)
        return action, session, injected

    def _tool_call(self, decision: Decision, injected: Mapping[str, Any]) -> dict[str, Any]:
        """The decided call as a LangChain ToolCall, so the tool answers with a ToolMessage; under the id of
        the model's call when the tool reads it (a tool that returns a Command answers that id)."""
        own = decision.action.tool == self.name  # injected args are the inner tool's, not a sibling's
        args = {**decision.action.args, **(injected if own else {})}
        call_id = _call_id(self.inner, injected) if own else None
        return {"type": "tool_call", "name": decision.action.tool, "args": args, "id": call_id or "fsa_guard"}

    def _refused(self, decision: Decision) -> str | None:
        """The output for a call that does not run, or None when it runs."""
        if decision.outcome == "escalate":
            if self.raise_on_escalate:
                raise EscalationRequired(decision)
            return waiting_text(decision)
        if decision.outcome == "deny":
            return refusal_text(decision)
        if decision.action.tool not in self.siblings:
            why = f"the call was changed to {decision.action.tool}, which is not among the guarded tools"
            self.guard.report(decision, ok=False, error=why)
            return f"Refused by the guard: {why}. {decision.explain()}"
        return None

    def _target(self, decision: Decision) -> BaseTool:
        return self.inner if decision.action.tool == self.name else self.siblings[decision.action.tool]

    def _finish(self, decision: Decision, session: Any, result: Any) -> Any:
        if not isinstance(result, ToolMessage):  # a tool that returned a Command, or another object
            self._report(decision, session, True, result)
            return result
        if result.status == "error":  # the inner tool handled its own error into its output
            self._report(decision, session, False, text_of(result))
            raise _Handled(text_of(result))
        self._report(decision, session, True, result.content)
        return self._output(with_revision_note(decision, result.content), result.artifact)

    def _report(self, decision: Decision, session: Any, ok: bool, output: Any) -> None:
        self.guard.report(decision, ok=ok, error=None if ok else str(output))
        if session is not None:
            session.history.append(Call(decision.action.tool, dict(decision.action.args), output))

    def _output(self, content: Any, artifact: Any) -> Any:
        return (content, artifact) if self.response_format == "content_and_artifact" else content


class _Handled(ToolException):
    """An error the inner tool already turned into its output: the wrapper returns that output as it is."""


def _pass_on_handled(error: ToolException) -> str:
    """The wrapper's ``handle_tool_error``: errors the inner tool handled come out as it wrote them; any
    other error propagates, as it did from the inner tool."""
    if isinstance(error, _Handled):
        return str(error)
    raise error


def _model_args(tool: BaseTool) -> set[str] | None:
    """The args the model sends (the tool's schema without LangChain's injected args); None when unknown."""
    schema = tool.tool_call_schema
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return set(schema.model_fields)
    properties = schema.get("properties") if isinstance(schema, Mapping) else None
    return set(properties) if isinstance(properties, Mapping) else None


def _call_id(tool: BaseTool, injected: Mapping[str, Any]) -> str | None:
    """The model's call id, where LangChain handed it to the tool: a ToolRuntime, or an InjectedToolCallId arg."""
    for value in injected.values():
        if isinstance(getattr(value, "tool_call_id", None), str):
            return str(value.tool_call_id)
    schema = tool.args_schema
    hints = get_all_basemodel_annotations(schema) if isinstance(schema, type) and issubclass(schema, BaseModel) else {}
    for name, value in injected.items():
        marks = get_args(hints.get(name))[1:]
        if isinstance(value, str) and any(m is InjectedToolCallId or isinstance(m, InjectedToolCallId) for m in marks):
            return value
    return None


def _plain(value: Any) -> Any:
    """Validated tool input as JSON-like data: pydantic models become mappings."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _current_session(guard: Guard) -> Any:
    """The ``guard.session()`` this call runs in, if any."""
    return fsa_guard.current_session()
