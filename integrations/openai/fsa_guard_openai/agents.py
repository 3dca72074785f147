"""OpenAI Agents SDK: tools whose every call the guard decides, with escalations through the SDK's own
approval flow (``needs_approval``, ``result.interruptions``, ``RunState``).

    from agents import Agent, Runner
    from fsa_guard_openai.agents import AgentGuard

    ag = AgentGuard(guard)
    agent = Agent(name="assistant", tools=[ag.tool(send_email), ag.tool(pay_bill)])
    result = await Runner.run(agent, "pay the March bill")
    while result.interruptions:                      # calls the guard escalated wait for the person
        state = result.to_state()
        for item in result.interruptions:
            print(ag.decision(item).explain())       # what is asked, and why
            ag.approve(state, item, by="alice")      # or ag.reject(...), or approve(..., args={...}) to edit
        result = await Runner.run(agent, state)

How each outcome plays out in a tool made by :meth:`AgentGuard.tool`:

- **allow**: the tool runs; the guard hears whether it raised (``guard.report``), so budgets commit or release.
- **deny**: the tool's input guardrail rejects the call (``reject_content``) with the guard's explanation,
  which the model reads as the call's result and can adapt to.
- **escalate**: ``needs_approval`` says yes, so the SDK interrupts the run; the person's answer through
  ``RunState`` (or :meth:`AgentGuard.approve` / :meth:`AgentGuard.reject`, which also say who answered) is
  applied with ``guard.answer``, which verifies the call again before it runs.
- **revise**: the SDK's guardrails cannot change a call's args, so the tool itself runs the *revised* call
  (the guard's decision is what the tool executes), and its output starts with a note saying what changed
  and why (:data:`~fsa_guard_openai.CHANGED`), so neither the model nor the person is misled.

Each call is decided once (in ``needs_approval``; the guardrail and the tool reuse that decision), so the
critic is not asked twice. The decisions wait in memory, in this :class:`AgentGuard`: a run resumed in another
process decides its approved calls again, and with an :class:`~fsa_guard.ApprovalQueue` takes the queue's
answer. Malformed arguments (not a JSON object) are refused without asking the guard; note that the SDK
itself asks for approval before any policy sees a call whose arguments do not parse, unless the run sets
``RunConfig(tool_execution=ToolExecutionConfig(pre_approval_tool_input_guardrails=True))``, in which case
the refusal comes at once.

For tools you keep as they are, :func:`fsa_guard_input_guardrail` gives a guardrail to add to them; having
no hold on the call, it turns a revision into a rejection that carries the suggested args, and an
escalation into a rejection that says a person must approve.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, TypeAlias

from agents import FunctionTool, RunContextWrapper, RunState, ToolGuardrailFunctionOutput, ToolInputGuardrail
from agents.function_schema import function_schema
from agents.items import ToolApprovalItem
from agents.tool_context import ToolContext
from agents.tool_guardrails import ToolInputGuardrailData

from fsa_guard import Action, Answer, Call, Decision, Guard

from ._convert import (
    REFUSED,
    as_output,
    changed_note,
    parse_arguments,
    responses_history,
    responses_request,
    with_result,
)
from ._run import output_text

__all__ = ["AgentGuard", "ContextOf", "fsa_guard_input_guardrail", "guarded_function_tool"]

#: What goes into each action's ``context``: a mapping, or a function of the SDK's run context.
ContextOf: TypeAlias = Mapping[str, Any] | Callable[[RunContextWrapper[Any]], Mapping[str, Any]] | None

_NeedsApproval: TypeAlias = Callable[[RunContextWrapper[Any], dict[str, Any], str], Awaitable[bool]]
_Run: TypeAlias = Callable[[ToolContext[Any], Mapping[str, Any]], Awaitable[Any]]
_KEEP = 10_000  # decisions and histories held at most, oldest dropped first


class AgentGuard:
    """A :class:`~fsa_guard.Guard` bound to the Agents SDK: guarded tools, an input guardrail, and the answers a
    person gives through ``RunState``. It holds each call's decision from ``needs_approval`` until the call
    ran, and each run's calls (for the history of later calls).

    ``context`` fills each action's context (a mapping, or a function of the run context); ``by`` names who
    answered when an approval comes through ``RunState.approve`` without :meth:`approve`; ``on_decision`` is
    called with every decision the guard makes or applies an answer to (for a log, a UI).
    """

    def __init__(
        self,
        guard: Guard,
        *,
        context: ContextOf = None,
        by: str = "agents-sdk",
        on_decision: Callable[[Decision], None] | None = None,
    ) -> None:
        self.guard = guard
        self.by = by
        self.on_decision = on_decision
        self._context = context
        self._decisions: OrderedDict[str, Decision] = OrderedDict()  # call id -> its latest decision
        self._asked: set[str] = set()  # call ids the SDK was told need approval
        self._runs: dict[int, list[Call]] = {}  # id(run usage) -> the calls that ran in that run
        self._run_of_call: OrderedDict[str, list[Call]] = OrderedDict()  # call id -> its run's calls

    @classmethod
    def of(cls, guard: Guard) -> AgentGuard:
        """The AgentGuard shared by everything built from ``guard`` with the module's functions."""
        shared = _SHARED.get(guard)
        if shared is None:
            shared = _SHARED[guard] = cls(guard)
        return shared

    # -- building tools -------------------------------------------------------------------------------------

    def tool(
        self,
        fn: Callable[..., Any] | FunctionTool,
        *,
        name: str | None = None,
        description: str | None = None,
        strict_json_schema: bool = True,
        **options: Any,
    ) -> FunctionTool:
        """A ``FunctionTool`` whose every call is decided by the guard (see the module's docstring).

        ``fn`` is a sync or async function (its schema and description come from its signature and
        docstring, as with ``@function_tool``; a first parameter typed ``RunContextWrapper`` or
        ``ToolContext`` receives the context) or an existing ``FunctionTool``, wrapped as it is (its own
        error handling then decides what a failure looks like, and a failure it turns into text counts as a
        call that ran). ``options`` go to ``FunctionTool`` (``is_enabled``, ``timeout_seconds``, ...).
        """
        if isinstance(fn, FunctionTool):
            return self._wrap_tool(fn, name=name, description=description, **options)
        schema = function_schema(fn, name_override=name, description_override=description, strict_json_schema=False)
        self.guard.register_tool(schema.name, schema.params_json_schema)
        model_schema = schema
        if strict_json_schema:
            model_schema = function_schema(
                fn, name_override=name, description_override=description, strict_json_schema=True
            )
        is_async = inspect.iscoroutinefunction(fn)

        async def run(ctx: ToolContext[Any], args: Mapping[str, Any]) -> Any:
            positional, keywords = schema.to_call_args(schema.params_pydantic_model(**args))
            if schema.takes_context:
                positional = [ctx, *positional]
            if is_async:
                return await fn(*positional, **keywords)
            return await asyncio.to_thread(fn, *positional, **keywords)

        return FunctionTool(
            name=schema.name,
            description=schema.description or "",
            params_json_schema=model_schema.params_json_schema,
            on_invoke_tool=self._invoker(run, reports_errors=True),
            strict_json_schema=strict_json_schema,
            tool_input_guardrails=[self.input_guardrail(wrapped=True)],
            needs_approval=self._needs_approval(schema.name),
            **options,
        )

    def _wrap_tool(
        self, tool: FunctionTool, *, name: str | None, description: str | None, **options: Any
    ) -> FunctionTool:
        original = tool.on_invoke_tool
        tool_name = name or tool.name
        self.guard.register_tool(tool_name, tool.params_json_schema)

        async def run(ctx: ToolContext[Any], args: Mapping[str, Any]) -> Any:
            return await original(ctx, json.dumps(dict(args)))

        guardrails = [*(tool.tool_input_guardrails or []), self.input_guardrail(wrapped=True)]
        return dataclasses.replace(
            tool,
            name=tool_name,
            description=description or tool.description,
            on_invoke_tool=self._invoker(run, reports_errors=False),
            tool_input_guardrails=guardrails,
            needs_approval=self._needs_approval(tool_name, also=tool.needs_approval),
            **options,
        )

    def input_guardrail(self, *, wrapped: bool = False) -> ToolInputGuardrail[Any]:
        """A tool input guardrail deciding each call: allow → allow, deny → ``reject_content`` with the
        explanation. On a tool you did not build with :meth:`tool` (``wrapped=False``), which the guard cannot
        change or hold: a revision becomes a rejection that carries the suggested args, an escalation a
        rejection saying a person must approve (unless the call was approved through the SDK), and an
        allowed call is reported as run when the guardrail lets it through (so budgets commit then)."""

        async def fsa_guard(data: ToolInputGuardrailData) -> ToolGuardrailFunctionOutput:
            ctx = data.context
            decision = await self._settled(ctx)
            if decision is None:
                return ToolGuardrailFunctionOutput.reject_content(_malformed(ctx.tool_arguments))
            info = decision.to_dict()
            if decision.outcome == "escalate":
                if wrapped and ctx.is_tool_approved(ctx.tool_name, ctx.tool_call_id) is None:
                    return ToolGuardrailFunctionOutput.allow(info)  # before approval: the SDK asks next
                self._forget(ctx.tool_call_id)
                why = "This call needs a person's approval, and it was not approved through the run's approvals."
                return ToolGuardrailFunctionOutput.reject_content(_refusal(decision, why), info)
            if not decision.allowed:
                self._forget(ctx.tool_call_id)
                return ToolGuardrailFunctionOutput.reject_content(_refusal(decision), info)
            if wrapped:
                return ToolGuardrailFunctionOutput.allow(info)
            self._forget(ctx.tool_call_id)
            if decision.outcome == "revise":
                self.guard.report(decision, ok=False, error="not run: a guardrail cannot change a call's args")
                return ToolGuardrailFunctionOutput.reject_content(_suggestion(decision), info)
            self.guard.report(decision, ok=True)
            self._history(ctx, ctx.tool_call_id).append(Call(ctx.tool_name, dict(decision.action.args)))
            return ToolGuardrailFunctionOutput.allow(info)

        return ToolInputGuardrail(guardrail_function=fsa_guard, name="fsa_guard")

    # -- answering ------------------------------------------------------------------------------------------

    def decision(self, item: ToolApprovalItem | str) -> Decision | None:
        """The guard's decision behind an interruption (or a call id): ``explain()`` says what is asked and why.
        None for calls this AgentGuard did not decide."""
        return self._decisions.get(_call_id(item))

    def approve(
        self,
        state: RunState[Any, Any],
        item: ToolApprovalItem,
        *,
        by: str | None = None,
        note: str = "",
        args: Mapping[str, Any] | None = None,
    ) -> Decision | None:
        """A person approves an interrupted call (``args``: they edit it to these args). The guard applies the
        answer now, verifying the call again: when it still may run, the call is approved in ``state``;
        otherwise (an edit that breaks a hard rule, say) it is rejected there, with the reason. Returns the
        guard's decision (None for a call this AgentGuard did not decide: it is simply approved)."""
        choice: Literal["approve", "edit"] = "edit" if args is not None else "approve"
        answer = Answer(choice, args=dict(args) if args is not None else None, by=by or self.by, note=note)
        decision = self._apply(_call_id(item), answer)
        if decision is not None and not decision.allowed:
            self._forget(_call_id(item))
            state.reject(item, rejection_message=_refusal(decision))
        else:
            state.approve(item)
        return decision

    def reject(
        self, state: RunState[Any, Any], item: ToolApprovalItem, *, by: str | None = None, note: str = ""
    ) -> Decision | None:
        """A person rejects an interrupted call: the guard records the answer, and ``state`` rejects the call with
        the guard's explanation as the message the model reads. Returns the guard's decision."""
        decision = self._apply(_call_id(item), Answer("deny", by=by or self.by, note=note))
        self._forget(_call_id(item))
        if decision is None:
            state.reject(item)
        else:
            state.reject(item, rejection_message=_refusal(decision))
        return decision

    # -- the steps ------------------------------------------------------------------------------------------

    def _needs_approval(self, tool_name: str, also: Any = False) -> _NeedsApproval:
        async def needs_approval(ctx: RunContextWrapper[Any], params: dict[str, Any], call_id: str) -> bool:
            decision = await self._decide(ctx, tool_name, params, call_id)
            if decision.outcome == "escalate":
                self._asked.add(call_id)
                return True
            if callable(also):  # the tool's own approval policy still applies to what the guard lets through
                result = also(ctx, params, call_id)
                return bool(await result if inspect.isawaitable(result) else result)
            return bool(also)

        return needs_approval

    async def _decide(self, ctx: RunContextWrapper[Any], tool: str, args: Mapping[str, Any], call_id: str) -> Decision:
        """The call's decision: the one already made for it, or a new one."""
        known = self._decisions.get(call_id)
        # the same id with another call (servers that number calls per turn reuse ids): decided anew
        if known is not None and known.proposed.tool == tool and dict(known.proposed.args) == dict(args):
            return known
        turn_input = list(ctx.turn_input or ())
        history = [*responses_history(turn_input), *self._history(ctx, call_id)]
        request = responses_request(turn_input)
        action = Action(tool, dict(args), request, tuple(history), self._context_of(ctx), id=call_id)
        decision = await self.guard.adecide(action)
        self._keep(call_id, decision)
        return decision

    async def _settled(self, ctx: ToolContext[Any]) -> Decision | None:
        """The call's decision once an approval given through the SDK is applied; None for malformed args."""
        args, _ = parse_arguments(ctx.tool_arguments)
        if args is None:
            return None
        call_id = ctx.tool_call_id
        decision = await self._decide(ctx, ctx.tool_name, args, call_id)
        if decision.outcome == "escalate" and ctx.is_tool_approved(ctx.tool_name, call_id) is True:
            if decision.approval_id is not None:  # a queue: an answer given there comes first
                answered = await self.guard.aresume(decision.approval_id)
                if answered.outcome != "escalate":
                    self._keep(call_id, answered)
                    return answered
            note = "approved through the Agents SDK's RunState"
            if call_id not in self._asked:
                note += " (for the tool as a whole, or in another process: this call was not asked about here)"
            decision = await self.guard.aanswer(decision, Answer("approve", by=self.by, note=note))
            self._keep(call_id, decision)
        return decision

    def _apply(self, call_id: str, answer: Answer) -> Decision | None:
        """Apply a person's answer to the call's escalation (an answer given first in a queue wins)."""
        decision = self._decisions.get(call_id)
        if decision is None or decision.outcome != "escalate":
            return decision
        if decision.approval_id is not None:
            answered = self.guard.resume(decision.approval_id)
            if answered.outcome != "escalate":
                self._keep(call_id, answered)
                return answered
        return self._answer(call_id, decision, answer)

    def _answer(self, call_id: str, decision: Decision, answer: Answer) -> Decision:
        answered = self.guard.answer(decision, answer)  # verified again: an edit cannot pass a hard deny
        self._keep(call_id, answered)
        return answered

    def _invoker(self, run: _Run, *, reports_errors: bool) -> Callable[[ToolContext[Any], str], Awaitable[Any]]:
        async def on_invoke_tool(ctx: ToolContext[Any], raw: str) -> Any:
            decision = await self._settled(ctx)
            if decision is None:
                return _malformed(raw)
            self._forget(ctx.tool_call_id)
            if not decision.allowed:  # the guardrail refused it already; nothing runs without an allow
                return _refusal(decision)
            action = decision.action
            try:
                result = await run(ctx, action.args)
            except Exception as exc:
                self.guard.report(decision, ok=False, error=f"{type(exc).__name__}: {exc}")
                if not reports_errors:
                    raise
                output = f"Error: the tool raised {type(exc).__name__}: {exc}"
                self._history(ctx, ctx.tool_call_id).append(Call(action.tool, dict(action.args), output))
                return _with_note(decision, output)
            self.guard.report(decision, ok=True)
            self._history(ctx, ctx.tool_call_id).append(Call(action.tool, dict(action.args), output_text(result)))
            return _with_note(decision, result)

        return on_invoke_tool

    # -- memory ---------------------------------------------------------------------------------------------

    def _context_of(self, ctx: RunContextWrapper[Any]) -> dict[str, Any]:
        if self._context is None:
            return {}
        if callable(self._context):
            return dict(self._context(ctx))
        return dict(self._context)

    def _history(self, ctx: RunContextWrapper[Any], call_id: str) -> list[Call]:
        """The calls that ran earlier in this run. A run is known by its usage counter, which every tool call of
        one ``Runner.run`` shares; a run resumed from a ``RunState`` takes over the calls of the run its
        approved call came from."""
        key = id(ctx.usage)
        calls = self._runs.get(key)
        if calls is None:
            calls = self._run_of_call.get(call_id)
            if calls is None:
                calls = []
            self._runs[key] = calls
            weakref.finalize(ctx.usage, self._runs.pop, key, None)
        self._run_of_call[call_id] = calls
        while len(self._run_of_call) > _KEEP:
            self._run_of_call.popitem(last=False)
        return calls

    def _keep(self, call_id: str, decision: Decision) -> None:
        if self.on_decision is not None:
            self.on_decision(decision)
        self._decisions[call_id] = decision
        self._decisions.move_to_end(call_id)
        while len(self._decisions) > _KEEP:
            dropped, _ = self._decisions.popitem(last=False)
            self._asked.discard(dropped)

    def _forget(self, call_id: str) -> None:
        self._decisions.pop(call_id, None)
        self._asked.discard(call_id)


_SHARED: weakref.WeakKeyDictionary[Guard, AgentGuard] = weakref.WeakKeyDictionary()


def guarded_function_tool(
    fn: Callable[..., Any] | FunctionTool,
    guard: Guard,
    *,
    name: str | None = None,
    description: str | None = None,
    strict_json_schema: bool = True,
    **options: Any,
) -> FunctionTool:
    """``AgentGuard.of(guard).tool(fn, ...)``: a ``FunctionTool`` whose every call the guard decides."""
    return AgentGuard.of(guard).tool(
        fn, name=name, description=description, strict_json_schema=strict_json_schema, **options
    )


def fsa_guard_input_guardrail(guard: Guard) -> ToolInputGuardrail[Any]:
    """A tool input guardrail for tools you keep as they are: ``AgentGuard.of(guard).input_guardrail()``."""
    return AgentGuard.of(guard).input_guardrail()


def _call_id(item: ToolApprovalItem | str) -> str:
    if isinstance(item, str):
        return item
    call_id = getattr(item.raw_item, "call_id", None)
    if call_id is None and isinstance(item.raw_item, Mapping):
        call_id = item.raw_item.get("call_id")
    return str(call_id)


def _refusal(decision: Decision, why: str = "") -> str:
    return f"{REFUSED}{decision.explain()}{' ' + why if why else ''} The call did not run."


def _suggestion(decision: Decision) -> str:
    action = decision.action
    args = json.dumps(dict(action.args), default=str, ensure_ascii=False)
    return (
        f"{REFUSED}the guard allows this call only as changed: {action.tool} with {args}. {decision.explain()} "
        "Call it again with those args if they still serve the request. The call did not run."
    )


def _malformed(raw: str) -> str:
    _, error = parse_arguments(raw)
    return (
        f"{REFUSED}the arguments were not valid JSON: {error}. Send the call again with a JSON object of "
        "arguments. The call did not run."
    )


def _as_output(result: Any) -> Any:
    """``result`` with its text as :func:`as_output` writes it, so text that starts like a note of ours is not
    read back as one: a string, or the first text part of what the SDK turns into a list of input parts (a
    ``ToolOutputText``, a ``{"type": "text", "text": ...}`` dict, or a list of those), or the text of anything
    else the SDK turns into ``str(result)``."""
    if isinstance(result, str):
        return as_output(result)
    if isinstance(result, list | tuple):
        for i, part in enumerate(result):
            if _text_part(part) is not None:
                return [*result[:i], _as_output(part), *result[i + 1 :]]
        return result
    text = _text_part(result)
    if text is None:
        # anything else the SDK hands the model as str(result) (a Path, an exception, a UserString, ...), and a
        # mapping or a model as its JSON or repr, which start with neither note
        shown = str(result)
        escaped = as_output(shown)
        return escaped if escaped != shown else result
    escaped = as_output(text)
    if escaped == text:
        return result
    if isinstance(result, Mapping):
        return {**result, "text": escaped}
    return result.model_copy(update={"text": escaped})


def _text_part(part: Any) -> str | None:
    """The text of a text part of a tool's output (a ``ToolOutputText`` or a text dict), else None."""
    kind = part.get("type") if isinstance(part, Mapping) else getattr(part, "type", None)
    text = part.get("text") if isinstance(part, Mapping) else getattr(part, "text", None)
    has_copy = isinstance(part, Mapping) or hasattr(part, "model_copy")
    return text if kind in ("text", "input_text") and isinstance(text, str) and has_copy else None


def _with_note(decision: Decision, result: Any) -> Any:
    if decision.outcome != "revise":
        return _as_output(result)
    action = decision.action
    return with_result(changed_note(action.tool, action.args, decision.explain()), output_text(result))
