"""``FSAGuardMiddleware``: every tool call of a ``langchain.agents.create_agent`` agent is decided by a guard.

    allow     the call runs; its success or failure is reported to the guard (budgets commit or release)
    revise    the changed call runs (another tool too, when the revision names one), and the model is told
              what changed
    deny      the call does not run; the model gets an error ToolMessage with the reason, and the run goes on
    escalate  a LangGraph ``interrupt()`` asks the person (approve / deny / edit); the graph is resumed with
              ``Command(resume=...)`` and the answer, verified again by the guard, decides. With an
              in-process approver on the guard (console, callback) the guard asks instead, and no interrupt
              is raised.

LangGraph runs a tool node again from the start when it is resumed, so the escalated decision is kept (per
middleware, by thread and tool call id) and the critic is not asked twice.
"""

from __future__ import annotations

import inspect
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

from langchain.agents.middleware import AgentMiddleware, AgentState, ModelRequest, ModelResponse
from langchain_core.messages import AIMessage, SystemMessage, ToolMessage
from langchain_core.tools import BaseTool
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.types import Command, interrupt
from typing_extensions import override

from fsa_guard import Action, ApprovalQueue, Decision, Guard

from .convert import (
    METADATA_KEY,
    answer_from_resume,
    is_resume,
    messages_of,
    read_messages,
    refusal_text,
    text_of,
    waiting_text,
    with_revision_note,
)

__all__ = ["APPROVAL_TYPE", "FSAGuardMiddleware", "approval_payload", "values_statement"]

#: The ``type`` of the interrupt payload the middleware raises for an escalated call.
APPROVAL_TYPE = "fsa_guard.approval"

_Key = tuple[str, str, str]  # (thread id, tool call id, the model turn that made the call)
_SyncHandler = Callable[[ToolCallRequest], ToolMessage | Command[Any]]
_AsyncHandler = Callable[[ToolCallRequest], Awaitable[ToolMessage | Command[Any]]]


class FSAGuardMiddleware(AgentMiddleware[AgentState[Any], Any, Any]):
    """Decides every tool call of a LangChain v1 agent with ``guard`` before it runs.

    ``create_agent(model, tools, middleware=[FSAGuardMiddleware(guard)], checkpointer=...)``: escalations
    pause the run with a LangGraph interrupt, so the agent needs a checkpointer and a thread id.

    - ``context``: ``(ToolCallRequest) -> mapping``, what the spec's ``context`` holds (a user id from
      ``request.runtime.context``, the person's contacts, ...); default ``{}``.
    - ``inject_values``: add a short statement of the person's active values to the system message.
    - ``on_decision``: called with every decision the guard returns (to log or show them); parallel tool
      calls are decided in parallel threads, so it may be called from several at once.
    - ``max_pending``: how many escalated decisions are kept for their resume; beyond that the oldest are
      forgotten (a resume then decides again, and the guard's critique cache spares the critic).
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> FSAGuardMiddleware:
        # the model hooks cost every model call ~0.2 ms in LangChain's machinery: a subclass has them
        chosen = _ValuesMiddleware if kwargs.get("inject_values") and cls is FSAGuardMiddleware else cls
        return super().__new__(chosen)

    def __init__(
        self,
        guard: Guard,
        *,
        context: Callable[[ToolCallRequest], Mapping[str, Any]] | None = None,
        inject_values: bool = False,
        on_decision: Callable[[Decision], None] | None = None,
        max_pending: int = 10_000,
    ) -> None:
        super().__init__()
        self.guard = guard
        self.context = context
        self.inject_values = inject_values
        self.on_decision = on_decision
        self.max_pending = max_pending
        self._pending: OrderedDict[_Key, Decision] = OrderedDict()
        self._lock = threading.Lock()

    # -- tools ---------------------------------------------------------------------------------------

    @override
    def wrap_tool_call(self, request: ToolCallRequest, handler: _SyncHandler) -> ToolMessage | Command[Any]:
        """Decide the call, then run it, run it revised, refuse it, or interrupt to ask the person."""
        action, key = self._read(request)
        decision = self._take_pending(key, action)
        if decision is None:
            decision = self._seen(self.guard.decide(action))
            self._keep_pending(key, decision)
        if self._interrupts(decision):
            value = interrupt(approval_payload(decision, key[1]))
            self._keep_answered(key, decision)
            approval_id = self._queued(value, decision)
            if approval_id is not None:  # the person answered through the queue (CLI, an app's own UI)
                decision = self._seen(self.guard.resume(approval_id))
            else:
                decision = self._seen(self.guard.answer(decision, answer_from_resume(value)))
            if decision.outcome == "escalate":
                return _not_run(request, decision, waiting_text(decision, again=True))
        ready = self._prepare(request, decision)
        if not isinstance(ready, ToolCallRequest):  # the ToolMessage of a call that does not run
            return ready
        try:
            result = handler(ready)
        except BaseException as exc:
            self.guard.report(decision, ok=False, error=f"{type(exc).__name__}: {exc}")
            raise
        return self._finish(decision, result)

    @override
    async def awrap_tool_call(self, request: ToolCallRequest, handler: _AsyncHandler) -> ToolMessage | Command[Any]:
        """:meth:`wrap_tool_call` for agents run with ``ainvoke`` / ``astream``."""
        action, key = self._read(request)
        decision = self._take_pending(key, action)
        if decision is None:
            decision = self._seen(await self.guard.adecide(action))
            self._keep_pending(key, decision)
        if self._interrupts(decision):
            value = interrupt(approval_payload(decision, key[1]))
            self._keep_answered(key, decision)
            approval_id = self._queued(value, decision)
            if approval_id is not None:
                decision = self._seen(await self.guard.aresume(approval_id))
            else:
                decision = self._seen(await self.guard.aanswer(decision, answer_from_resume(value)))
            if decision.outcome == "escalate":
                return _not_run(request, decision, waiting_text(decision, again=True))
        ready = self._prepare(request, decision)
        if not isinstance(ready, ToolCallRequest):  # the ToolMessage of a call that does not run
            return ready
        try:
            result = await handler(ready)
        except BaseException as exc:
            self.guard.report(decision, ok=False, error=f"{type(exc).__name__}: {exc}")
            raise
        return self._finish(decision, result)

    def _read(self, request: ToolCallRequest) -> tuple[Action, _Key]:
        """The call as an Action for the guard, and the key its escalation is kept under: (thread id, tool call
        id, the model turn that made the call). A replay of the same turn finds the key again; a later turn that
        reuses the id does not."""
        call = request.tool_call
        call_id = call.get("id")
        text, history, turn = read_messages(messages_of(request.state), call_id)
        context = dict(self.context(request)) if self.context is not None else {}
        action = Action(call["name"], call.get("args") or {}, text, tuple(history), context, id=call_id)
        config = getattr(request.runtime, "config", None) or {}
        configurable = config.get("configurable") or {} if type(config) is dict or isinstance(config, Mapping) else {}
        return action, (str(configurable.get("thread_id", "")), str(call_id or ""), turn if call_id else "")

    def _queued(self, value: Any, decision: Decision) -> str | None:
        """The approval to resume from the queue, when the resume value says so (``"resume"``); otherwise
        None, and the value is read as the person's answer (a ``"resume"`` without a queue is refused)."""
        if not is_resume(value) or not isinstance(self.guard.approver, ApprovalQueue):
            return None
        given = value.get("approval_id") if isinstance(value, Mapping) else None
        return str(given) if given else decision.approval_id

    def _interrupts(self, decision: Decision) -> bool:
        """Whether this escalation is asked with an interrupt: an in-process approver already asked."""
        approver = self.guard.approver
        return decision.outcome == "escalate" and (approver is None or isinstance(approver, ApprovalQueue))

    def _prepare(self, request: ToolCallRequest, decision: Decision) -> ToolCallRequest | ToolMessage:
        """The request to run (the revised one when the guard changed the call), or the ToolMessage that
        answers the call without running it."""
        if decision.outcome == "deny":
            return _not_run(request, decision, refusal_text(decision))
        if decision.outcome == "escalate":  # an in-process approver gave no usable answer
            return _not_run(request, decision, waiting_text(decision))
        call, run = request.tool_call, decision.action
        args = call.get("args") or {}
        if run.tool == call["name"] and (run.args is args or dict(run.args) == dict(args)):
            return request
        revised = request.override(tool_call={**call, "name": run.tool, "args": dict(run.args)})
        if run.tool == call["name"]:
            return revised
        tool = _find_tool(request, run.tool)
        if tool is None:
            why = f"the call was changed to {run.tool}, which this agent does not have"
            self.guard.report(decision, ok=False, error=why)
            return _not_run(request, decision, f"Refused by the guard: {why}. {decision.explain()}")
        return revised.override(tool=tool)

    def _finish(self, decision: Decision, result: ToolMessage | Command[Any]) -> ToolMessage | Command[Any]:
        """Report how the call went, and tell the model about a revision: in the tool's message, also where
        the tool answers with a Command that carries it."""
        if type(result) is ToolMessage or isinstance(result, ToolMessage):
            return self._told(decision, result)
        update = getattr(result, "update", None)  # a tool that updates the graph state itself
        messages = update.get("messages") if isinstance(update, Mapping) else None
        for i, message in enumerate(messages if isinstance(messages, list) else ()):
            if isinstance(message, ToolMessage) and message.tool_call_id == decision.proposed.id:
                told = [*messages[:i], self._told(decision, message), *messages[i + 1 :]]  # type: ignore[index]
                return replace(result, update={**update, "messages": told})  # type: ignore[dict-item]
        self.guard.report(decision, ok=True)
        return result

    def _told(self, decision: Decision, result: ToolMessage) -> ToolMessage:
        failed = result.status == "error"
        self.guard.report(decision, ok=not failed, error=text_of(result) if failed else None)
        metadata = {**result.response_metadata, METADATA_KEY: _note(decision, ran=True)}
        update: dict[str, Any] = {"response_metadata": metadata}
        if decision.outcome == "revise":
            update["content"] = with_revision_note(decision, result.content)
        return result.model_copy(update=update)

    def _seen(self, decision: Decision) -> Decision:
        if self.on_decision is not None:
            self.on_decision(decision)
        return decision

    # -- escalations kept for their resume -----------------------------------------------------------

    def _take_pending(self, key: _Key, action: Action) -> Decision | None:
        """The escalated decision of this call, kept from before the interrupt (the node runs again)."""
        if not key[1] or not self._pending:  # the usual case, without taking the lock
            return None
        with self._lock:
            decision = self._pending.get(key)
        if decision is None:
            return None
        if decision.proposed.tool != action.tool or dict(decision.proposed.args) != dict(action.args):
            return None  # another call under a reused id: decide it
        return decision

    def _keep_pending(self, key: _Key, decision: Decision) -> None:
        if self._interrupts(decision) and key[1]:
            self._keep(key, decision)

    def _keep(self, key: _Key, decision: Decision) -> None:
        with self._lock:
            self._pending[key] = decision
            self._pending.move_to_end(key)
            while len(self._pending) > self.max_pending:
                self._pending.popitem(last=False)

    def _keep_answered(self, key: _Key, decision: Decision) -> None:
        """Once answered, the escalation stays, slimmed to the call: a replay of the interrupted checkpoint (or
        a second worker resuming it) applies its resume value to this escalation again, which the guard refuses
        (an answer is used once), instead of to a new escalation that would run the call a second time."""
        if key[1]:
            call, proposed = decision.action, decision.proposed
            self._keep(
                key,
                replace(decision, action=Action(call.tool, call.args), proposed=Action(proposed.tool, proposed.args)),
            )

    def _with_values(self, request: ModelRequest[Any]) -> ModelRequest[Any]:
        statement = values_statement(self.guard)
        system = request.system_message
        if system is None:
            return request.override(system_message=SystemMessage(content=statement))
        content = system.content
        merged: str | list[str | dict[str, Any]] = (
            f"{content}\n\n{statement}" if isinstance(content, str) else [*content, {"type": "text", "text": statement}]
        )
        return request.override(system_message=SystemMessage(content=merged))


def values_statement(guard: Guard) -> str:
    """A short text for the system message: the person's active values, and that some calls need approval."""
    cards = list(guard.spec.values.values())  # endorsed values only: inferred ones stay inactive
    lines = ["You act for a person. Every tool call you make is checked against their values and rules."]
    if cards:
        lines[0] = "You act for a person. These are their values; every tool call you make is checked against them:"
    for card in cards:
        description = " ".join((card.description or "").split())
        lines.append(f"- {card.title}: {description}" if description else f"- {card.title}")
    lines.append(
        "Some calls need the person's approval first. A call the guard refuses or changes comes back with the "
        "reason: adapt to it rather than repeating the same call."
    )
    return "\n".join(lines)


def approval_payload(decision: Decision, tool_call_id: str) -> dict[str, Any]:
    """The interrupt value for an escalated call (JSON-ready).

    ``action`` is the call the answer applies to (after any revision the guard made before asking),
    ``proposed`` what the model asked for; ``allowed`` lists the answers the resume value may give.
    """
    return {
        "type": APPROVAL_TYPE,
        "tool_call_id": tool_call_id,
        "action": decision.action.to_dict(),
        "proposed": decision.proposed.to_dict(),
        "findings": [f.to_dict() for f in decision.findings],
        "explanation": decision.explain(),
        "allowed": ["approve", "deny", "edit"],
        "approval_id": decision.approval_id,
    }


def _find_tool(request: ToolCallRequest, name: str) -> BaseTool | None:
    for tool in getattr(request.runtime, "tools", None) or ():
        if isinstance(tool, BaseTool) and tool.name == name:
            return tool
    return None


def _note(decision: Decision, ran: bool) -> dict[str, Any]:
    """What the middleware notes on a ToolMessage: the outcome and the call that ran (or was proposed)."""
    call = (decision.action if ran else decision.proposed).to_dict()
    return {"outcome": decision.outcome, "ran": ran, **call, "record_id": decision.record_id}


def _not_run(request: ToolCallRequest, decision: Decision, text: str) -> ToolMessage:
    """An error ToolMessage for a call that did not run."""
    call = request.tool_call
    return ToolMessage(
        content=text,
        tool_call_id=call.get("id") or "",
        name=call["name"],
        status="error",
        response_metadata={METADATA_KEY: _note(decision, ran=False)},
    )


class _ValuesMiddleware(FSAGuardMiddleware):
    """:class:`FSAGuardMiddleware` with ``inject_values``: only then does it wrap model calls, since LangChain
    puts every model call of an agent through a middleware that has the hook, used or not."""

    @override
    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelResponse[Any] | AIMessage:
        """Tell the model the person's values before it proposes calls."""
        return handler(self._with_values(request))

    @override
    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any] | AIMessage:
        """:meth:`wrap_model_call` for async runs."""
        return await handler(self._with_values(request))


# LangChain runs every hook through LangSmith's `traceable`, which reads the hook's signature on every call (to
# see whether it takes a `run_tree`): a signature computed once here makes that a third of the work.
_HOOKS: tuple[Any, ...] = (
    FSAGuardMiddleware.wrap_tool_call,
    FSAGuardMiddleware.awrap_tool_call,
    _ValuesMiddleware.wrap_model_call,
    _ValuesMiddleware.awrap_model_call,
)
for _hook in _HOOKS:
    _hook.__signature__ = inspect.signature(_hook)
