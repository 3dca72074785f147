"""The guarded tool loop, for both OpenAI APIs: ask the model, settle its tool calls, send the results back,
until the model stops calling tools, a call waits for a person, or the step limit is reached.

The loop keeps the whole conversation (Chat Completions messages, or the Responses input items), so the
request, the history and the state of a paused loop are all in it. A paused loop resumes with the person's
answers (:func:`resume_tool_loop`), in this process, or in another one from :meth:`ToolLoopResult.to_dict`
with the guard's :class:`~fsa_guard.ApprovalQueue` (see :meth:`ToolLoopResult.from_dict`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from fsa_guard import Answer, Call, Decision, FSAGuardError, Guard

from ._convert import ProposedCall
from ._run import AnswerLike, CallResult, Question, adrive, answer_steps, coerce_answers, drive, settle
from ._tools import Toolbox, Tools

__all__ = ["Api", "ToolLoopError", "ToolLoopResult", "aresume_tool_loop", "resume_tool_loop", "run_loop"]

Stopped = Literal["done", "escalated", "max_steps"]


class Api(Protocol):
    """How the loop talks to one of OpenAI's APIs (``chat`` or ``responses``)."""

    @property
    def name(self) -> Literal["chat", "responses"]:
        """Which API: ``chat`` or ``responses``."""
        ...

    @property
    def owned(self) -> frozenset[str]:
        """The request parameters the loop sets itself."""
        ...

    def request(self, loop: ToolLoopResult) -> dict[str, Any]:
        """The keyword arguments of the next ``create`` call."""
        ...

    def create(self, client: Any) -> Callable[..., Any]:
        """The client's ``create`` method for this API."""
        ...

    def absorb(self, messages: list[Any], response: Any) -> list[ProposedCall]:
        """Append the model's turn to the conversation; return the tool calls it proposes."""
        ...

    def request_text(self, messages: Sequence[Any]) -> str:
        """The person's request in the conversation."""
        ...

    def history(self, messages: Sequence[Any]) -> list[Call]:
        """The calls that ran earlier in the conversation."""
        ...

    def entry(self, result: CallResult) -> dict[str, Any]:
        """The message or item that carries a call's result."""
        ...

    def output_text(self, response: Any) -> str:
        """The text of the model's answer."""
        ...


class ToolLoopError(FSAGuardError):
    """The model call failed during a tool loop. ``state`` is the loop so far: the calls that ran are in it,
    and :func:`resume_tool_loop` (no answers needed) asks the model again from there."""

    def __init__(self, message: str, state: ToolLoopResult) -> None:
        super().__init__(message)
        self.state = state


@dataclass
class ToolLoopResult:
    """Where a tool loop stopped, and everything needed to go on.

    ``stopped``: ``done`` (the model answered without calling tools), ``escalated`` (calls wait for a person:
    ``pending``), or ``max_steps`` (the model was asked ``max_steps`` times). ``messages`` is the whole
    conversation: the Chat Completions messages, or for the Responses API the input items. ``results`` are
    the calls settled by this loop, in order; ``steps`` counts model calls; ``response`` is the last one.
    """

    api: Literal["chat", "responses"]
    model: str
    messages: list[Any]
    max_steps: int = 10
    steps: int = 0
    stopped: Stopped = "done"
    pending: list[CallResult] = field(default_factory=list)
    results: list[CallResult] = field(default_factory=list)
    response: Any = None
    context: Mapping[str, Any] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    client: Any = field(default=None, repr=False)
    guard: Guard | None = field(default=None, repr=False)
    toolbox: Toolbox | None = field(default=None, repr=False)

    @property
    def output_text(self) -> str:
        """The text of the model's last answer (``""`` when the loop did not finish)."""
        if self.stopped != "done" or self.response is None:
            return ""
        return _api(self.api).output_text(self.response)

    @property
    def decisions(self) -> list[Decision]:
        """The guard's decisions for the settled calls, in order."""
        return [r.decision for r in self.results if r.decision is not None]

    def resume(
        self, answers: Mapping[str, AnswerLike] | None = None, *, by: str = "unknown", max_steps: int | None = None
    ) -> ToolLoopResult:
        """:func:`resume_tool_loop` on this loop."""
        return resume_tool_loop(self, answers, by=by, max_steps=max_steps)

    async def aresume(
        self, answers: Mapping[str, AnswerLike] | None = None, *, by: str = "unknown", max_steps: int | None = None
    ) -> ToolLoopResult:
        """:func:`aresume_tool_loop` on this loop."""
        return await aresume_tool_loop(self, answers, by=by, max_steps=max_steps)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the conversation, the waiting calls (with their decisions), and the settings.
        The client, the guard, the tools and the last response are not in it."""
        return {
            "api": self.api,
            "model": self.model,
            "messages": _json_ready(self.messages),
            "max_steps": self.max_steps,
            "steps": self.steps,
            "stopped": self.stopped,
            "pending": [r.to_dict() for r in self.pending],
            "context": _json_ready(self.context),
            "options": _json_ready(self.options),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, client: Any, guard: Guard, tools: Tools) -> ToolLoopResult:
        """Read back what :meth:`to_dict` wrote, to resume with ``client``, ``guard`` and ``tools``.

        With the guard's :class:`~fsa_guard.ApprovalQueue`, a waiting call is answered once only, in whichever
        process resumes it. Without one, the answer is applied to the decision as it was written, and nothing
        stops a second process from resuming the same loop: resume each saved loop once.
        """
        return cls(
            api=data["api"],
            model=str(data["model"]),
            messages=list(data["messages"]),
            max_steps=int(data.get("max_steps", 10)),
            steps=int(data.get("steps", 0)),
            stopped=data.get("stopped", "escalated"),
            pending=[CallResult.from_dict(r) for r in data.get("pending") or ()],
            context=data.get("context"),
            options=dict(data.get("options") or {}),
            client=client,
            guard=guard,
            toolbox=Toolbox.of(tools),
        )

    def _copy(self) -> ToolLoopResult:
        twin = copy.copy(self)
        twin.messages = list(self.messages)
        twin.pending = list(self.pending)
        twin.results = list(self.results)
        return twin

    def _add(self, results: Sequence[CallResult]) -> None:
        entry = _api(self.api).entry
        for result in results:
            if result.status == "pending":
                self.pending.append(result)
            else:
                self.messages.append(entry(result))
                self.results.append(result)


# -- the steps ------------------------------------------------------------------------------------------------


def run_loop(loop: ToolLoopResult, api: Api) -> Generator[Question, Any, ToolLoopResult]:
    """Ask the model and settle its calls until it stops calling tools, a call waits, or steps run out."""
    assert loop.toolbox is not None  # set by every entry point
    while loop.steps < loop.max_steps:
        ok, response = yield ("model", api.request(loop))
        if not ok:
            raise ToolLoopError(f"the model call failed: {type(response).__name__}: {response}", loop) from response
        loop.steps += 1
        loop.response = response
        calls = api.absorb(loop.messages, response)
        if not calls:
            loop.stopped = "done"
            return loop
        request, history = api.request_text(loop.messages), api.history(loop.messages)
        loop._add((yield from settle(calls, loop.toolbox, request, history, loop.context)))
        if loop.pending:
            loop.stopped = "escalated"
            return loop
    loop.stopped = "max_steps"
    return loop


def _resume_steps(loop: ToolLoopResult, answers: Mapping[str, Answer]) -> Generator[Question, Any, ToolLoopResult]:
    assert loop.toolbox is not None
    waiting, loop.pending = loop.pending, []
    loop._add((yield from answer_steps(waiting, answers, loop.toolbox)))
    if loop.pending:
        loop.stopped = "escalated"
        return loop
    return (yield from run_loop(loop, _api(loop.api)))


def _prepared(
    state: ToolLoopResult, answers: Mapping[str, AnswerLike] | None, by: str, max_steps: int | None
) -> tuple[ToolLoopResult, dict[str, Answer], Guard, Toolbox]:
    if state.guard is None or state.toolbox is None or state.client is None:
        raise ValueError("this loop has no client, guard or tools: read it with ToolLoopResult.from_dict(...)")
    state.toolbox.register(state.guard)  # a loop read back from a dict meets its guard here
    loop = state._copy()
    if max_steps is not None:
        loop.max_steps = max_steps
    return loop, coerce_answers(loop.pending, answers, by, state.guard), state.guard, state.toolbox


def resume_tool_loop(
    state: ToolLoopResult,
    answers: Mapping[str, AnswerLike] | None = None,
    *,
    by: str = "unknown",
    max_steps: int | None = None,
) -> ToolLoopResult:
    """Go on with a paused loop (Chat Completions or Responses): apply the person's answers to its waiting
    calls, keyed by tool call id, run what they allow, and continue the loop. Sync.

    An answer is ``"approve"``, ``"deny"``, ``{"choice": "edit", "args": {...}}`` (``by`` and ``note`` may be
    in the mapping) or an :class:`~fsa_guard.Answer`; ``by`` names who answered. Each is applied with
    ``guard.answer``, which verifies the call again, so an edit cannot pass a hard deny. A call without an
    answer that waits in the guard's approval queue takes the queue's answer (``guard.resume``); one that
    nobody answered yet keeps the loop paused. ``max_steps`` raises the loop's step limit. The state passed
    in is left as it was; a loop that failed with :class:`ToolLoopError` resumes from ``error.state``.
    """
    loop, checked, guard, toolbox = _prepared(state, answers, by, max_steps)
    api = _api(loop.api)
    return drive(_resume_steps(loop, checked), guard, toolbox, lambda kw: api.create(loop.client)(**kw))


async def aresume_tool_loop(
    state: ToolLoopResult,
    answers: Mapping[str, AnswerLike] | None = None,
    *,
    by: str = "unknown",
    max_steps: int | None = None,
) -> ToolLoopResult:
    """:func:`resume_tool_loop` with an async client (``AsyncOpenAI``), awaiting the guard and async tools."""
    loop, checked, guard, toolbox = _prepared(state, answers, by, max_steps)
    api = _api(loop.api)
    create: Callable[..., Awaitable[Any]] = lambda kw: api.create(loop.client)(**kw)  # noqa: E731
    return await adrive(_resume_steps(loop, checked), guard, toolbox, create)


def start(
    api: Api,
    client: Any,
    model: str,
    messages: list[Any],
    tools: Tools,
    guard: Guard,
    *,
    max_steps: int,
    context: Mapping[str, Any] | None,
    options: Mapping[str, Any],
) -> ToolLoopResult:
    """A new loop, its tools declared to the guard; refuses request options the loop sets itself."""
    clash = sorted(set(options) & api.owned)
    if clash:
        raise ValueError(
            f"the tool loop sets {', '.join(clash)} itself; leave {'it' if len(clash) == 1 else 'them'} out"
        )
    if max_steps < 0:
        raise ValueError(f"max_steps must be 0 or more, not {max_steps}")
    toolbox = Toolbox.of(tools)
    toolbox.register(guard)
    return ToolLoopResult(
        api=api.name,
        model=model,
        messages=messages,
        max_steps=max_steps,
        context=context,
        options=dict(options),
        client=client,
        guard=guard,
        toolbox=toolbox,
    )


def _api(name: str) -> Api:
    if name == "chat":
        from .chat import CHAT

        return CHAT
    if name == "responses":
        from .responses import RESPONSES

        return RESPONSES
    raise ValueError(f"unknown API {name!r}: 'chat' or 'responses'")


def _json_ready(value: Any) -> Any:
    result: Any = json.loads(json.dumps(value, default=_dump))
    return result


def _dump(value: Any) -> Any:
    to_dict = getattr(value, "to_dict", None)  # the SDK's own objects, when appended to the messages as they are
    if callable(to_dict):
        return to_dict()
    return str(value)
