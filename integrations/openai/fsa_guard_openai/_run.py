"""Deciding and running the calls of one model turn, for both OpenAI APIs, sync and async.

The steps are written once, as generators that yield their questions to the outside world (decide this
action, apply this answer, run this tool, ask the model) — the pattern of ``fsa_guard.guard`` — and
:func:`drive` answers them synchronously, :func:`adrive` with ``await``.

Per call, in the model's order: a call to a tool that is not in the toolbox, or whose arguments are not a
JSON object, is refused without asking the guard (nothing ran, nothing is charged); any other call is
decided. Allowed calls run; revised calls run with the revised args and their result says what changed;
refused calls come back with the guard's explanation; escalated calls wait (``status == "pending"``). Every
call that ran is reported (``guard.report``), so budgets commit, or are released when the tool raised.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeAlias, TypeVar

from fsa_guard import Action, Answer, ApprovalError, ApprovalQueue, Call, Decision, Guard

from ._convert import DUPLICATE_ID, REFUSED, ProposedCall, as_output, changed_note, parse_arguments, with_result
from ._tools import Toolbox, Tools

__all__ = [
    "AnswerLike",
    "CallResult",
    "Question",
    "ToolResults",
    "aanswer_tool_calls",
    "adrive",
    "answer_steps",
    "answer_tool_calls",
    "coerce_answer",
    "coerce_answers",
    "conclude",
    "drive",
    "settle",
]

Status = Literal["ran", "failed", "refused", "pending"]
#: A person's answer: an :class:`~fsa_guard.Answer`, ``"approve"``, ``"deny"``, or a mapping
#: ``{"choice": "approve" | "deny" | "edit", "args": {...}, "by": ..., "note": ...}`` (``args`` alone means edit).
AnswerLike: TypeAlias = Answer | str | Mapping[str, Any]
# ("decide", Action) | ("answer", (Decision, Answer)) | ("resume", approval id) | ("run", (tool, args))
# | ("report", (Decision, ok, error)) | ("model", request kwargs)
Question: TypeAlias = tuple[str, Any]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CallResult:
    """What became of one proposed tool call.

    ``status``: ``ran`` (allowed or revised, and it returned), ``failed`` (it ran and raised), ``refused``
    (it did not run: the guard or a person said no, or the call was malformed), ``pending`` (it waits for a
    person). ``content`` is what the model is told; ``decision`` is the guard's (None for malformed calls,
    which the guard is not asked about); ``output`` is what the tool returned, or the exception it raised.
    """

    call_id: str
    tool: str
    arguments: str
    status: Status
    content: str = ""
    decision: Decision | None = None
    output: Any = None

    @property
    def approval_id(self) -> str | None:
        """The approval a person answers, when the guard's approver is an :class:`~fsa_guard.ApprovalQueue`."""
        return self.decision.approval_id if self.decision is not None else None

    @property
    def ran(self) -> bool:
        """True when the tool was run (``ran`` or ``failed``)."""
        return self.status in ("ran", "failed")

    def to_message(self) -> dict[str, Any]:
        """The Chat Completions ``tool`` message for this call."""
        return {"role": "tool", "tool_call_id": self.call_id, "content": self.content}

    def to_item(self) -> dict[str, Any]:
        """The Responses ``function_call_output`` item for this call."""
        return {"type": "function_call_output", "call_id": self.call_id, "output": self.content}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the tool's output is left out; the decision keeps its request, history and context)."""
        decision = None
        if self.decision is not None:
            decision = {
                **self.decision.to_dict(),
                "action": _action_dict(self.decision.action),
                "proposed": _action_dict(self.decision.proposed),
            }
        return {
            "call_id": self.call_id,
            "tool": self.tool,
            "arguments": self.arguments,
            "status": self.status,
            "content": self.content,
            "decision": decision,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CallResult:
        """Read back what :meth:`to_dict` wrote."""
        decision = None
        raw = data.get("decision")
        if isinstance(raw, Mapping):
            decision = replace(
                Decision.from_dict(raw), action=_action_of(raw["action"]), proposed=_action_of(raw["proposed"])
            )
        return cls(
            call_id=str(data["call_id"]),
            tool=str(data["tool"]),
            arguments=str(data.get("arguments") or ""),
            status=data["status"],
            content=str(data.get("content") or ""),
            decision=decision,
        )


@dataclass(frozen=True, slots=True)
class ToolResults:
    """The calls of one model turn, settled: results to send back, and the calls that wait for a person."""

    results: tuple[CallResult, ...]

    @property
    def settled(self) -> list[CallResult]:
        """The calls that have an answer for the model (all but the pending ones), in the model's order."""
        return [r for r in self.results if r.status != "pending"]

    @property
    def pending(self) -> list[CallResult]:
        """The calls that wait for a person's answer (see :func:`answer_tool_calls`)."""
        return [r for r in self.results if r.status == "pending"]

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The Chat Completions ``tool`` messages of the settled calls, ready to append."""
        return [r.to_message() for r in self.settled]

    @property
    def items(self) -> list[dict[str, Any]]:
        """The Responses ``function_call_output`` items of the settled calls, ready to append."""
        return [r.to_item() for r in self.settled]

    @property
    def decisions(self) -> list[Decision]:
        """The guard's decisions, in the model's order (malformed calls have none)."""
        return [r.decision for r in self.results if r.decision is not None]


# -- the steps ------------------------------------------------------------------------------------------------


def settle(
    calls: Sequence[ProposedCall],
    toolbox: Toolbox,
    request: str,
    history: Sequence[Call],
    context: Mapping[str, Any] | None,
) -> Generator[Question, Any, list[CallResult]]:
    """Decide and run the calls of one model turn, in the model's order. Each call's history holds the
    calls of this turn that ran before it."""
    seen = list(history)
    results: list[CallResult] = []
    ids: set[str] = set()
    for call in calls:
        if call.call_id in ids:  # an answer, a result or a resume could not tell the two apart
            results.append(_refused(call, f"{DUPLICATE_ID}{call.call_id!r}."))
            continue
        ids.add(call.call_id)
        if call.name not in toolbox:
            known = ", ".join(toolbox) or "none"
            results.append(_refused(call, f"there is no tool named {call.name!r} (the tools are: {known})."))
            continue
        args, error = parse_arguments(call.arguments)
        if args is None:
            why = f"the arguments were not valid JSON: {error}. Send the call again with a JSON object of arguments."
            results.append(_refused(call, why))
            continue
        action = Action(call.name, args, request, tuple(seen), dict(context or {}), id=call.call_id)
        decision = yield ("decide", action)
        results.append((yield from conclude(call, decision, toolbox, seen)))
    return results


def conclude(
    call: ProposedCall, decision: Decision, toolbox: Toolbox, history: list[Call]
) -> Generator[Question, Any, CallResult]:
    """Act on a decision: wait (escalate), refuse (deny), or run the decided call and report how it went."""
    if decision.outcome == "escalate":
        return CallResult(call.call_id, call.name, call.arguments, "pending", "", decision)
    if not decision.allowed:
        content = f"{REFUSED}{decision.explain()} The call did not run."
        return CallResult(call.call_id, call.name, call.arguments, "refused", content, decision)
    action = decision.action
    if action.tool not in toolbox:  # revised into a tool this loop cannot run: it does not run
        yield ("report", (decision, False, f"no tool named {action.tool!r} here"))
        return _refused(call, f"the call was changed to {action.tool!r}, which is not a tool here.", decision)
    ok, value = yield ("run", (action.tool, dict(action.args)))
    yield ("report", (decision, ok, None if ok else f"{type(value).__name__}: {value}"))
    output = output_text(value) if ok else f"Error: the tool raised {type(value).__name__}: {value}"
    content = as_output(output)
    if decision.outcome == "revise":
        content = with_result(changed_note(action.tool, action.args, decision.explain()), output)
    history.append(Call(action.tool, dict(action.args), output))
    return CallResult(call.call_id, call.name, call.arguments, "ran" if ok else "failed", content, decision, value)


def answer_steps(
    pending: Sequence[CallResult], answers: Mapping[str, Answer], toolbox: Toolbox
) -> Generator[Question, Any, list[CallResult]]:
    """Apply the person's answers to waiting calls (``guard.answer``, verified again), or, for calls without
    an answer that wait in an approval queue, the queue's answer (``guard.resume``); then act on them.
    Calls still unanswered stay pending, unchanged."""
    history: list[Call] = []
    results: list[CallResult] = []
    for waiting in pending:
        if waiting.decision is None or waiting.status != "pending":
            results.append(waiting)
            continue
        answer = answers.get(waiting.call_id)
        if answer is not None:
            decision = yield ("answer", (waiting.decision, answer))
        elif waiting.approval_id is not None:
            decision = yield ("resume", waiting.approval_id)
            if decision.outcome == "escalate":  # nobody answered yet: keep the call as it was asked
                results.append(waiting)
                continue
        else:
            results.append(waiting)
            continue
        call = ProposedCall(waiting.call_id, waiting.tool, waiting.arguments)
        results.append((yield from conclude(call, decision, toolbox, history)))
    return results


def _refused(call: ProposedCall, why: str, decision: Decision | None = None) -> CallResult:
    return CallResult(
        call.call_id, call.name, call.arguments, "refused", f"{REFUSED}{why} The call did not run.", decision
    )


def output_text(value: Any) -> str:
    """A tool's return value as the text the model reads: text as it is, anything else as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


# -- answers --------------------------------------------------------------------------------------------------


_CHOICES: dict[str, Literal["approve", "deny", "edit"]] = {"approve": "approve", "deny": "deny", "edit": "edit"}


def coerce_answer(value: AnswerLike, by: str = "unknown") -> Answer:
    """A person's answer as an :class:`~fsa_guard.Answer` (``by`` names them when the value does not)."""
    if isinstance(value, Answer):
        return value
    if isinstance(value, str):
        if value in ("approve", "deny"):
            return Answer(_CHOICES[value], by=by)
        raise ValueError(f"an answer is 'approve', 'deny' or a mapping with 'choice' and 'args', not {value!r}")
    if isinstance(value, Mapping):
        given = value.get("choice") or ("edit" if "args" in value else None)
        choice = _CHOICES.get(given) if isinstance(given, str) else None
        if choice is None:
            raise ValueError(f"an answer's choice is 'approve', 'deny' or 'edit', not {given!r}")
        args = value.get("args")
        if choice == "edit" and not isinstance(args, Mapping):
            raise ValueError("an 'edit' answer needs 'args': the whole args to run instead")
        return Answer(
            choice,
            args=dict(args) if isinstance(args, Mapping) else None,
            by=str(value.get("by") or by),
            note=str(value.get("note") or ""),
        )
    raise TypeError(f"an answer is an Answer, 'approve', 'deny' or a mapping, not {type(value).__name__}")


def coerce_answers(
    pending: Iterable[CallResult], answers: Mapping[str, AnswerLike] | None, by: str, guard: Guard
) -> dict[str, Answer]:
    """Check the answers against the waiting calls before anything runs: every key must name a waiting call,
    every value must read as an answer, and a queued call needs the guard's approval queue."""
    waiting = {r.call_id: r for r in pending if r.status == "pending"}
    unknown = [key for key in answers or {} if key not in waiting]
    if unknown:
        raise ValueError(
            f"no call waits under {', '.join(map(repr, unknown))}; waiting: {', '.join(waiting) or 'none'}"
        )
    queued = [r.call_id for r in waiting.values() if r.approval_id is not None]
    if queued and not isinstance(guard.approver, ApprovalQueue):
        raise ApprovalError(
            f"calls {', '.join(queued)} wait in an approval queue, and this guard has none: "
            "pass the guard that has the queue (approver=ApprovalQueue(...))"
        )
    return {key: coerce_answer(value, by) for key, value in (answers or {}).items()}


def answer_tool_calls(
    pending: ToolResults | Sequence[CallResult],
    answers: Mapping[str, AnswerLike] | None,
    tools: Tools,
    guard: Guard,
    *,
    by: str = "unknown",
) -> ToolResults:
    """Apply a person's answers (keyed by tool call id) to calls that wait, and run what they allow; a call
    without an answer that waits in the guard's approval queue takes the queue's answer. Works for both
    APIs: use ``.messages`` or ``.items`` of the result. Calls still unanswered are in ``.pending``."""
    waiting = pending.pending if isinstance(pending, ToolResults) else list(pending)
    toolbox = Toolbox.of(tools)
    toolbox.register(guard)
    checked = coerce_answers(waiting, answers, by, guard)
    return ToolResults(tuple(drive(answer_steps(waiting, checked, toolbox), guard, toolbox)))


async def aanswer_tool_calls(
    pending: ToolResults | Sequence[CallResult],
    answers: Mapping[str, AnswerLike] | None,
    tools: Tools,
    guard: Guard,
    *,
    by: str = "unknown",
) -> ToolResults:
    """:func:`answer_tool_calls`, awaiting the approval queue and async tools."""
    waiting = pending.pending if isinstance(pending, ToolResults) else list(pending)
    toolbox = Toolbox.of(tools)
    toolbox.register(guard)
    checked = coerce_answers(waiting, answers, by, guard)
    return ToolResults(tuple(await adrive(answer_steps(waiting, checked, toolbox), guard, toolbox)))


# -- drivers --------------------------------------------------------------------------------------------------


def drive(
    steps: Generator[Question, Any, T],
    guard: Guard,
    toolbox: Toolbox,
    create: Callable[[dict[str, Any]], Any] | None = None,
) -> T:
    """Run ``steps``, answering its questions synchronously."""
    try:
        question = next(steps)
        while True:
            question = steps.send(_answer(question, guard, toolbox, create))
    except StopIteration as stop:
        result: T = stop.value
        return result


async def adrive(
    steps: Generator[Question, Any, T],
    guard: Guard,
    toolbox: Toolbox,
    create: Callable[[dict[str, Any]], Any] | None = None,
) -> T:
    """Run ``steps``, awaiting the guard, async tools and the model (``create`` returns an awaitable)."""
    try:
        question = next(steps)
        while True:
            question = steps.send(await _aanswer(question, guard, toolbox, create))
    except StopIteration as stop:
        result: T = stop.value
        return result


def _answer(question: Question, guard: Guard, toolbox: Toolbox, create: Callable[..., Any] | None) -> Any:
    kind, payload = question
    if kind == "decide":
        return guard.decide(payload)
    if kind == "answer":
        return guard.answer(*payload)
    if kind == "resume":
        return guard.resume(payload)
    if kind == "report":
        decision, ok, error = payload
        guard.report(decision, ok=ok, error=error)
        return None
    if kind == "run":
        try:
            return True, toolbox.call(*payload)
        except Exception as exc:  # the tool's failure is the model's to hear about, and the budget's to release
            return False, exc
    if kind == "model" and create is not None:
        try:
            return True, create(payload)
        except Exception as exc:
            return False, exc
    raise RuntimeError(f"unexpected question {kind!r}")  # pragma: no cover


async def _aanswer(question: Question, guard: Guard, toolbox: Toolbox, create: Callable[..., Any] | None) -> Any:
    kind, payload = question
    if kind == "decide":
        return await guard.adecide(payload)
    if kind == "answer":
        return await guard.aanswer(*payload)
    if kind == "resume":
        return await guard.aresume(payload)
    if kind == "run":
        try:
            return True, await toolbox.acall(*payload)
        except Exception as exc:
            return False, exc
    if kind == "model" and create is not None:
        try:
            return True, await create(payload)
        except Exception as exc:
            return False, exc
    return _answer(question, guard, toolbox, None)


# -- serialization --------------------------------------------------------------------------------------------


def _action_dict(action: Action) -> dict[str, Any]:
    return {
        "tool": action.tool,
        "args": _json_ready(action.args),
        "request": action.request,
        "history": [
            {"tool": c.tool, "args": _json_ready(c.args), "output": _json_ready(c.output)}
            for c in map(Call.coerce, action.history)
        ],
        "context": _json_ready(action.context),
        "id": action.id,
    }


def _action_of(data: Mapping[str, Any]) -> Action:
    return Action(
        tool=str(data["tool"]),
        args=dict(data.get("args") or {}),
        request=str(data.get("request") or ""),
        history=tuple(Call.coerce(c) for c in data.get("history") or ()),
        context=dict(data.get("context") or {}),
        id=data.get("id"),
    )


def _json_ready(value: Any) -> Any:
    result: Any = json.loads(json.dumps(value, default=str))
    return result
