"""The Guard: every proposed action goes verify → critique → revise → escalate → record → Decision.

Precedence, strongest first: a hard-norm deny (nothing overrides it) → escalate → critique (the critic's
verified verdict decides) → revise → allow. A revised action goes through verification again, at most
``defaults.max_revisions`` rounds, so a revision can never get past a deny. No decision is returned as
allow when its budget could not be reserved or its audit record could not be written.

The pipeline is written once, as a generator that yields its two questions to the outside world (ask the
critic, ask a person); :meth:`Guard.decide` answers them synchronously and :meth:`Guard.adecide` with
``await``. Everything else is plain, synchronous computation.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import json
import logging
import math
import os
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

from .action import Action, Call, jsonable
from .audit import open_audit
from .audit.base import AuditSink
from .critique.base import Critic, CritiqueRequest, CritiqueVerdict, check_verdict, policy_ids
from .critique.cache import CritiqueCache
from .decision import Answer, Decision, Finding, Outcome
from .errors import ApprovalError, AuditError, CriticError, Denied, EscalationRequired, StoreError
from .escalate.base import Approver
from .escalate.queue import Approval, ApprovalQueue
from .spec.compiled import CompiledBudget, CompiledSpec, ToolPlan, load_spec
from .spec.model import parse_window
from .store import open_store
from .store.base import Store
from .verify.engine import Verdict, not_json_like, verify
from .verify.schema import ArgsValidator, call_args, schema_from_signature

__all__ = ["STAGES", "CriticPolicy", "EscalationPolicy", "Guard", "Session", "current_session"]

#: The pipeline's stages, in order; ``Decision.timings`` uses these names (plus ``total``).
STAGES = ("verify", "critique", "revise", "escalate", "record")

F = TypeVar("F", bound=Callable[..., Any])
_log = logging.getLogger("fsa_guard")
_MAX_UNSENT = 10_000  # store writes kept for a retry while the store is down; beyond that the oldest are dropped
_RETRY = {"commit": "sent again later", "remember": "sent again later"}
_RESEND_EVERY_S = 5.0
_UNSENT = (
    "an earlier call's spending or remembered entity is not in the store yet (it could not be written when that "
    "call was reported, and is sent again before each call that reads the store)"
)

# ("critique", (CritiqueRequest, samples)) | ("ask", Decision) | ("wait", (approval id, seconds))
_Question = tuple[str, Any]
_Reply = tuple[bool, Any]  # (True, answer) | (False, exception); a critique's answer is a list of _Reply


@dataclass(slots=True)
class Session:
    """One agent run for ``@guard.tool`` functions: the person's request, context, and the calls so far."""

    request: str = ""
    context: Mapping[str, Any] = field(default_factory=dict)
    history: list[Call] = field(default_factory=list)


_SESSION: contextvars.ContextVar[Session | None] = contextvars.ContextVar("fsa_guard_session", default=None)


def current_session() -> Session | None:
    """The ``guard.session()`` the running code is inside of (this thread or task), or None."""
    return _SESSION.get()


class _SessionScope:
    def __init__(self, session: Session) -> None:
        self.session = session
        self._token: contextvars.Token[Session | None] | None = None

    def __enter__(self) -> Session:
        self._token = _SESSION.set(self.session)
        return self.session

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _SESSION.reset(self._token)

    async def __aenter__(self) -> Session:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__()


@dataclass(frozen=True, slots=True)
class CriticPolicy:
    """The spec's ``critic:`` settings that the guard applies, defaults filled in (times in seconds)."""

    on_error: Literal["escalate", "deny", "allow"] = "escalate"
    samples: int = 1
    cache_ttl: float = 900.0
    history: int = 5
    deadline: float = 60.0

    @classmethod
    def of(cls, spec: CompiledSpec) -> CriticPolicy:
        """The settings of ``spec``."""
        c = spec.critic
        return cls(
            on_error=c.on_error or "escalate",
            samples=c.samples or 1,
            cache_ttl=_seconds(c.cache_ttl, 900.0),
            history=5 if c.history is None else c.history,
            deadline=_seconds(c.deadline, 60.0),
        )


@dataclass(frozen=True, slots=True)
class EscalationPolicy:
    """The spec's ``escalation:`` settings that the guard applies (the timeout in seconds)."""

    timeout: float = 3600.0
    on_timeout: Literal["deny", "allow"] = "deny"

    @classmethod
    def of(cls, spec: CompiledSpec) -> EscalationPolicy:
        """The settings of ``spec``."""
        e = spec.escalation
        return cls(timeout=_seconds(e.timeout, 3600.0), on_timeout=e.on_timeout or "deny")


@dataclass(frozen=True, slots=True)
class _Late:
    """The reply to "ask" when the approver answered after ``escalation.timeout`` (or not at all)."""

    answer: Any = None


def _seconds(window: str | None, default: float) -> float:
    if window is None:
        return default
    number = window.strip()[:-1].strip()
    return 0.0 if float(number) == 0 else parse_window(window)


class Guard:
    """Decides every action an agent proposes against a compiled value spec.

    ``store`` holds budget state and ``audit`` records every decision; each is an object or a URL (see
    :func:`open_store`, :func:`open_audit`). Where neither is given, the environment (``FSA_GUARD_STORE``,
    ``FSA_GUARD_AUDIT``) decides, then the spec's ``storage:`` section, then ``state_dir`` (or
    ``FSA_GUARD_STATE_DIR``: ``state.db`` and ``audit.db`` there), and last an in-memory store with no audit;
    ``audit=False`` keeps no trail whatever the environment says. ``critic`` judges actions the spec marks
    for critique; ``approver`` answers escalations: an :class:`Approver` (a console, a callback) answers while
    ``decide`` waits, an :class:`ApprovalQueue` keeps them for a person to answer later, from any process (see
    :meth:`resume`). ``clock`` pins time; reservations never reported expire after ``reservation_ttl`` seconds.
    """

    def __init__(
        self,
        spec: CompiledSpec,
        *,
        store: Store | str | None = None,
        audit: AuditSink | str | Literal[False] | None = None,
        state_dir: str | Path | None = None,
        critic: Critic | None = None,
        approver: Approver | ApprovalQueue | None = None,
        clock: Callable[[], datetime] | None = None,
        reservation_ttl: float = 300.0,
    ) -> None:
        self.spec = spec
        state_dir = state_dir or os.environ.get("FSA_GUARD_STATE_DIR") or None
        # "is None", not falsiness: a store or sink of one's own may define __len__ and start empty
        if store is None or store == "":
            store = os.environ.get("FSA_GUARD_STORE") or spec.resolved.storage.get("store")
        if store is None:
            store = f"sqlite:///{Path(state_dir).expanduser().resolve() / 'state.db'}" if state_dir else "memory://"
        if audit is None or audit == "":  # False: no audit trail, whatever the environment or the spec say
            audit = os.environ.get("FSA_GUARD_AUDIT") or spec.resolved.storage.get("audit")
        if audit is None and state_dir:
            audit = f"sqlite:///{Path(state_dir).expanduser().resolve() / 'audit.db'}"
        self.store: Store = open_store(store) if isinstance(store, str) else store
        self.audit: AuditSink | None = (
            open_audit(audit) if isinstance(audit, str) else None if audit is None or audit is False else audit
        )
        self.critic_settings = CriticPolicy.of(spec)
        self._no_critic = (
            "no critic is configured: set critic.model in the spec (with OPENAI_API_KEY set, or critic.base_url "
            "for a local server), or pass critic= to the Guard"
        )
        if critic is None and (spec.critic.model or spec.critic.base_url):
            from .critique.openai import critic_from_settings  # the SDK is imported only when a spec asks for it

            try:
                critic = critic_from_settings(spec.critic)
            except CriticError as exc:
                self._no_critic = str(exc)
        _check_has(critic, "critic", ("critique", "acritique"), "fsa_guard.Critic")
        if not isinstance(approver, ApprovalQueue):
            _check_has(approver, "approver", ("ask", "aask"), "fsa_guard.Approver (or use CallbackApprover(fn))")
        self.critic = critic
        ttl = self.critic_settings.cache_ttl
        self._critique_cache = CritiqueCache(ttl) if ttl > 0 else None
        self.approver = approver
        self.escalation_settings = EscalationPolicy.of(spec)
        self.identity = f"{socket.gethostname()}:{os.getpid()}"  # who used an approval, in the queue
        self._answered: OrderedDict[str, None] = OrderedDict()  # escalations answered through answer()
        self._answered_lock = threading.Lock()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._validators: dict[str, ArgsValidator] = {}
        if isinstance(reservation_ttl, bool) or not isinstance(reservation_ttl, int | float):
            raise TypeError(f"reservation_ttl must be a number of seconds, got {reservation_ttl!r}")
        if not math.isfinite(reservation_ttl) or reservation_ttl <= 0:
            # 0 or less would hold no room for a call while it runs, so parallel calls could overspend a budget
            raise ValueError(f"reservation_ttl must be a finite number of seconds above 0, got {reservation_ttl!r}")
        self.reservation_ttl = float(reservation_ttl)
        # store writes report() could not make (a commit, a remembered entity), sent again (see _resend), so a
        # call that ran is not forgotten (and its budget overspent) because the store blipped once
        self._unsent: list[tuple[str, tuple[Any, ...]]] = []
        self._unsent_lock = threading.Lock()
        self._resend_after = 0.0  # time.monotonic() before which a failed resend is not tried again
        self._resend_lock = threading.Lock()  # one resend at a time; decisions that read the store wait for it
        self._resend_failures = 0
        self._unsent_error = ""

    @classmethod
    def from_files(cls, *paths: str | Path, **options: Any) -> Guard:
        """Load, layer and compile spec files (later over earlier) and build a guard. See ``Guard()``."""
        return cls(load_spec(*paths), **options)

    # -- tools -------------------------------------------------------------------------------------

    def register_tool(self, name: str, schema: Mapping[str, Any]) -> None:
        """Declare ``name``'s argument JSON Schema: calls whose args do not match are denied."""
        self._validators[name] = ArgsValidator(schema)

    @overload
    def tool(self, fn: F) -> F: ...
    @overload
    def tool(self, fn: None = None, *, name: str | None = None) -> Callable[[F], F]: ...
    def tool(self, fn: F | None = None, *, name: str | None = None) -> F | Callable[[F], F]:
        """Guard a sync or async function: each call is decided; allowed and revised calls run (with the
        revised args), others raise :class:`Denied` (:class:`EscalationRequired` for escalations).

        Calls made inside ``with guard.session(request=...)`` carry that request, context and the
        session's earlier calls as history.
        """
        if fn is None:
            return lambda f: self._wrap(f, name or f.__name__)
        return self._wrap(fn, name or fn.__name__)

    def session(
        self, request: str = "", context: Mapping[str, Any] | None = None, history: Sequence[Call] = ()
    ) -> _SessionScope:
        """A context manager (sync or async) scoping one agent run for ``@guard.tool`` functions."""
        return _SessionScope(Session(request, dict(context or {}), list(history)))

    def _wrap(self, fn: F, tool_name: str) -> F:
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise TypeError(
                f"guard.tool cannot guard the generator function {fn.__name__}: it runs while it is iterated, after "
                "the call returned, so its outcome could not be reported; guard a function that returns the result"
            )
        sig = inspect.signature(fn)
        params = list(sig.parameters.values())
        # A method guarded in its class body: the instance is who is called, not an argument of the call.
        method = bool(params) and params[0].name == "self" and params[0].kind in _POSITIONAL
        if method:
            sig = sig.replace(parameters=params[1:])
        self.register_tool(tool_name, schema_from_signature(fn, sig))
        var_positional = [n for n, p in sig.parameters.items() if p.kind is inspect.Parameter.VAR_POSITIONAL]

        def split(args: tuple[Any, ...]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
            """(the receiver, if any; the call's own positional args)"""
            return (args[:1], args[1:]) if method else ((), args)

        def action_for(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Action, Session | None]:
            try:
                call_args = dict(sig.bind(*args, **kwargs).arguments)
                for pname in var_positional:
                    if pname in call_args:
                        call_args[pname] = list(call_args[pname])
            except TypeError:
                # Unknown or missing arguments: still decide, so the caller gets a malformed-action Decision.
                call_args = {**dict(zip(sig.parameters, args, strict=False)), **kwargs}
            for pname, param in sig.parameters.items():
                if param.kind is inspect.Parameter.VAR_KEYWORD and isinstance(call_args.get(pname), dict):
                    call_args.update(call_args.pop(pname))
            s = _SESSION.get()
            if s is None:
                return Action(tool=tool_name, args=call_args), None
            return Action(tool_name, call_args, s.request, tuple(s.history), s.context), s

        def finish(decision: Decision, session: Session | None, ok: bool, output: Any) -> None:
            self.report(decision, ok=ok, error=None if ok else str(output))
            if session is not None:
                session.history.append(Call(decision.action.tool, dict(decision.action.args), output))

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                receiver, args = split(args)
                action, session = action_for(args, kwargs)
                decision = await self.adecide(action)
                _raise_unless_allowed(decision)
                try:
                    positional, keywords = call_args(sig, decision.action.args)
                    result = await fn(*receiver, *positional, **keywords)
                except BaseException as exc:
                    finish(decision, session, False, f"error: {exc}")
                    raise
                finish(decision, session, True, result)
                return result

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            receiver, args = split(args)
            action, session = action_for(args, kwargs)
            decision = self.decide(action)
            _raise_unless_allowed(decision)
            try:
                positional, keywords = call_args(sig, decision.action.args)
                result = fn(*receiver, *positional, **keywords)
            except BaseException as exc:
                finish(decision, session, False, f"error: {exc}")
                raise
            finish(decision, session, True, result)
            return result

        return wrapper  # type: ignore[return-value]

    # -- deciding ----------------------------------------------------------------------------------

    def decide(self, action: Action, *, wait: float | None = None) -> Decision:
        """Decide one action. Never raises for bad input or failing backends: those deny or escalate.

        With an :class:`ApprovalQueue` as approver, an escalation is queued and ``wait`` is how many seconds
        to wait for a person's answer (default: the queue's ``wait``); without one in time, the decision is
        ``escalate`` with its ``approval_id``, for :meth:`resume`.
        """
        gen = self._pipeline(action, wait)
        try:
            question = next(gen)
            while True:
                question = gen.send(self._answer(question))
        except StopIteration as stop:
            decision: Decision = stop.value
            return decision
        except Exception as exc:  # a bug must never turn into an allow, nor into an exception for the agent
            return self._failed(_as_action(action), exc)

    async def adecide(self, action: Action, *, wait: float | None = None) -> Decision:
        """Decide one action, awaiting the critic and the approver. See :meth:`decide`."""
        gen = self._pipeline(action, wait)
        try:
            question = next(gen)
            while True:
                question = gen.send(await self._aanswer(question))
        except StopIteration as stop:
            decision: Decision = stop.value
            return decision
        except Exception as exc:
            return self._failed(_as_action(action), exc)

    def resume(self, approval_id: str, *, wait: float = 0.0) -> Decision:
        """Finish a decision that waits in the :class:`ApprovalQueue`, in this process or any other: wait up
        to ``wait`` seconds for the answer, then apply it once (an edit is verified again; expiry follows
        ``escalation.on_timeout``). Still unanswered: the ``escalate`` decision again. An unknown approval,
        or one already used, denies. Raises :class:`~fsa_guard.ApprovalError` when the guard has no queue."""
        queue = self._queue()
        try:
            approval = queue.wait(approval_id, wait) if wait > 0 else queue.get(approval_id)
        except Exception as exc:
            return self._unusable(approval_id, exc)
        return self._conclude(approval)

    async def aresume(self, approval_id: str, *, wait: float = 0.0) -> Decision:
        """:meth:`resume`, waiting without blocking the event loop."""
        queue = self._queue()
        try:
            approval = await queue.async_wait(approval_id, wait) if wait > 0 else queue.get(approval_id)
        except Exception as exc:
            return self._unusable(approval_id, exc)
        return self._conclude(approval)

    def _queue(self) -> ApprovalQueue:
        if not isinstance(self.approver, ApprovalQueue):
            raise ApprovalError("this guard has no approval queue: pass approver=ApprovalQueue(store_url)")
        return self.approver

    def _answer(self, question: _Question) -> _Reply:
        kind, payload = question
        if kind == "critique":  # n samples, one after another, all within the request's deadline
            request, n = payload
            replies: list[_Reply] = []
            for _ in range(n):
                replies.append(self._critique_once(request))
                if not replies[-1][0]:
                    break  # one failed sample fails the critique: asking the others would only cost
            return True, replies
        try:
            if kind == "wait":
                return True, self._queue().wait(*payload)
            if self.approver is None or isinstance(self.approver, ApprovalQueue):  # the pipeline never asks then
                raise ApprovalError("no approver to ask")
            asked = time.monotonic()
            answer = self.approver.ask(payload)
            # a synchronous approver cannot be interrupted, but an answer after the timeout is not used
            return True, _Late(answer) if time.monotonic() - asked > self.escalation_settings.timeout else answer
        except Exception as exc:
            return False, exc

    async def _aanswer(self, question: _Question) -> _Reply:
        kind, payload = question
        if kind == "critique":  # n samples at once
            request, n = payload
            return True, list(await asyncio.gather(*(self._acritique_once(request) for _ in range(n))))
        try:
            if kind == "wait":
                return True, await self._queue().async_wait(*payload)
            if self.approver is None or isinstance(self.approver, ApprovalQueue):
                raise ApprovalError("no approver to ask")
            window = asyncio.timeout(self.escalation_settings.timeout)
            async with window:
                return True, await self.approver.aask(payload)
        except TimeoutError as exc:
            # our timeout, or a TimeoutError of the approver's own (a webhook that timed out: a failure)
            return (True, _Late()) if window.expired() else (False, exc)
        except Exception as exc:
            return False, exc

    def _critique_once(self, request: CritiqueRequest) -> _Reply:
        assert self.critic is not None  # the pipeline only asks when one is configured
        try:
            verdict = self.critic.critique(request)
        except Exception as exc:
            return False, exc
        if request.remaining() == 0.0:
            # a synchronous call cannot be interrupted, but a verdict that came too late is not used
            return False, self._late()
        return True, verdict

    async def _acritique_once(self, request: CritiqueRequest) -> _Reply:
        assert self.critic is not None
        try:
            # any critic, ours or not, gets no more than the decision's deadline
            return True, await asyncio.wait_for(self.critic.acritique(request), timeout=request.remaining())
        except TimeoutError:
            return False, self._late()
        except Exception as exc:
            return False, exc

    def _late(self) -> CriticError:
        return CriticError(f"no answer within the deadline ({self.critic_settings.deadline:g}s)", kind="timeout")

    def report(self, decision: Decision, ok: bool, error: str | None = None) -> None:
        """Tell the guard whether an allowed call ran (``ok``: budgets commit, remembered entities are noted)
        or failed (budgets are released). The outcome is appended to the audit trail after the decision.

        ``@guard.tool`` reports by itself; adapters that run tools themselves call this once per decision.
        """
        if self._unsent:
            self._resend()
        writes: list[tuple[str, tuple[Any, ...]]] = [
            ("commit" if ok else "release", (rid,)) for rid in decision.reservations
        ]
        if ok and decision.remember:
            ts = (decision.at or self._clock()).timestamp()
            writes += [("remember", (key, entity, ts)) for key, entity in decision.remember]
        for write in writes:
            self._write(write)
        if self.audit is not None and decision.record_id is not None:
            record = {
                "kind": "report",
                "time": datetime.now(UTC).isoformat(),
                "decision": decision.record_id,
                "tool": decision.action.tool,
                "ok": ok,
                "error": error,
            }
            try:
                self.audit.write(record)
            except Exception as exc:  # the call already ran; its decision record exists
                _log.warning("fsa_guard: could not record the outcome of %s: %s", decision.record_id, exc)

    def _write(self, write: tuple[str, tuple[Any, ...]], keep: bool = True) -> bool:
        """Make one store write of a report; one that fails is kept to be sent again (``keep``)."""
        what, args = write
        try:
            getattr(self.store, what)(*args)
        except Exception as exc:
            self._unsent_error = f"{type(exc).__name__}: {exc}"
            # a release that never arrives frees the room anyway when the reservation expires; a lost commit or
            # remembered entity would let the spending be forgotten, so those are retried
            if keep and what != "release":
                with self._unsent_lock:
                    self._unsent.append(write)
                    del self._unsent[:-_MAX_UNSENT]
                    self._resend_after = time.monotonic() + _RESEND_EVERY_S
            _log.warning("fsa_guard: could not %s %s (%s); %s", what, args[0], exc, _RETRY.get(what, "left to expire"))
            return False
        return True

    def _resend(self, now: bool = False) -> bool:
        """Send again the store writes a report could not make, oldest first, until one fails again. After a
        failure they wait a few seconds (a store that does not answer costs each try its timeout, and a decision
        that does not read the store should not pay it), unless ``now``: a decision that reads the store needs
        them there first, and waits for a resend under way. A write leaves the list only once it is in the store,
        so no decision sees the list empty while one is on its way. Returns whether none is left unsent."""
        if not now and time.monotonic() < self._resend_after:
            return not self._unsent
        failures = self._resend_failures
        # without `now`, never queue behind a resend under way; with it, wait for it, and take its failure as
        # this call's answer rather than paying the store's timeout again
        if not self._resend_lock.acquire(blocking=now):
            return not self._unsent
        try:
            if self._resend_failures != failures or (not now and time.monotonic() < self._resend_after):
                return not self._unsent
            while True:
                with self._unsent_lock:
                    if not self._unsent:
                        return True
                    write = self._unsent[0]
                if not self._write(write, keep=False):
                    self._resend_after = time.monotonic() + _RESEND_EVERY_S
                    self._resend_failures += 1
                    return False
                with self._unsent_lock:
                    if self._unsent and self._unsent[0] is write:
                        del self._unsent[0]
        finally:
            self._resend_lock.release()

    def _unsent_finding(self) -> Finding:
        count = len(self._unsent)
        return _store_down(StoreError(f"{_UNSENT} ({count} write(s) waiting; the store said {self._unsent_error})"))

    def _pipeline(self, proposed: Action, wait: float | None = None) -> Generator[_Question, _Reply, Decision]:
        timer = _Timer()
        findings: list[Finding] = []
        spend = _Spend()
        if not isinstance(proposed, Action):
            message = f"decide() takes an fsa_guard.Action(tool, args), got {type(proposed).__name__}"
            return self._malformed(message, _as_action(proposed), timer)
        if self._unsent and _reads_state(self.spec.plan(proposed.tool)) and not self._resend(now=True):
            # what earlier calls spent or noted is not in the store yet: this call cannot be measured against it
            # (a call revised into a tool with budgets is refused when it reserves, see _reserve)
            return self._record(
                self._decision("deny", proposed, proposed, [self._unsent_finding()], timer.done(), spend)
            )
        if self._unsent:
            self._resend()
        now = proposed.now if proposed.now is not None else self._clock()
        if not isinstance(now, datetime):
            return self._malformed(f"the action's now must be a datetime, got {now!r}", proposed, timer)
        if now.tzinfo is None:
            now = now.replace(tzinfo=self.spec.zone)

        current, outcome, verdict = yield from self._judge(proposed, now, findings, spend, timer)

        reservations: tuple[str, ...] = ()
        if outcome == "allow":
            outcome, reservations = self._reserve(verdict.charges, now, findings)
        if outcome == "escalate":
            if self._budgets_exceeded(verdict.charges, now, findings):
                outcome = "deny"  # no one's yes could make it run, so no one is asked
            elif isinstance(self.approver, ApprovalQueue):
                queued = self._submit(self.approver, current, proposed, findings, timer, spend, now)
                seconds = self.approver.wait_default if wait is None else wait
                if queued.outcome != "escalate" or queued.approval_id is None or seconds <= 0:
                    return queued
                ok, approval = yield ("wait", (queued.approval_id, seconds))
                return self._conclude(approval) if ok and not approval.pending else queued
            elif self.approver is not None:
                pending = self._decision("escalate", current, proposed, findings, timer.timings, spend, at=now)
                ok, answer = yield ("ask", pending)
                given = answer.answer if isinstance(answer, _Late) else answer
                if ok and isinstance(given, Answer):
                    spend.answer = given.stamped()
                if proposed.now is None:
                    # the person may have taken minutes: the call runs, and is charged, from now on
                    later = self._clock()
                    now = later.replace(tzinfo=self.spec.zone) if later.tzinfo is None else later
                outcome, current, reservations, verdict = self._apply_answer(
                    ok, answer, current, now, findings, tuple(pending.findings)
                )
            timer.lap("escalate")

        return self._finish(outcome, current, proposed, findings, timer, spend, reservations, now, verdict)

    def _finish(
        self,
        outcome: Outcome,
        current: Action,
        proposed: Action,
        findings: list[Finding],
        timer: _Timer,
        spend: _Spend,
        reservations: tuple[str, ...],
        now: datetime,
        verdict: Verdict,
    ) -> Decision:
        """The decision to run ``current`` (revise when it is not the proposed call), recorded and timed."""
        if outcome == "allow" and (current.tool != proposed.tool or not _same_args(current.args, proposed.args)):
            outcome = "revise"
        remember = tuple(verdict.remember) if outcome in ("allow", "revise") else ()
        decision = self._decision(
            outcome, current, proposed, findings, timer.timings, spend, reservations, now, remember
        )
        if self.audit is not None:
            decision = self._record(decision)
            timer.lap("record")
        timer.done()
        return decision

    def _judge(
        self, action: Action, now: datetime, findings: list[Finding], spend: _Spend, timer: _Timer
    ) -> Generator[_Question, _Reply, tuple[Action, Outcome, Verdict]]:
        """Verify, revise and critique until the outcome is settled. Returns the action judged last.

        Revisions are applied first and the revised call is verified again, so a deny on it still denies,
        and what a person or the critic is asked about is the call that would actually run. An escalate
        from any round still escalates (precedence: deny > escalate > critique > revise > allow).
        """
        current, rounds, escalated = action, 0, False
        while True:
            wants_critique: Verdict | None = None
            while True:
                verdict = self._verify(current, now)
                _merge(findings, verdict.findings)
                timer.lap("revise" if rounds else "verify")
                if verdict.deny:
                    return current, "deny", verdict
                escalated = escalated or verdict.escalate
                wants_critique = verdict if verdict.critique else wants_critique
                revision = verdict.revision
                if revision is None or _same_args(revision, current.args):
                    break
                rounds += 1
                if rounds > self.spec.max_revisions:
                    return current, self._revision_limit(findings), verdict
                current = current.with_args(revision)
            if escalated:
                return current, "escalate", verdict
            if wants_critique is None:
                return current, "allow", verdict
            result = yield from self._critique(current, wants_critique, findings, spend)
            timer.lap("critique")
            if result in ("deny", "escalate"):
                return current, result, verdict  # type: ignore[return-value]
            if not isinstance(result, dict) or _same_args({**current.args, **result}, current.args):
                return current, "allow", verdict
            rounds += 1  # the critic's revision is verified like any other
            if rounds > self.spec.max_revisions:
                return current, self._revision_limit(findings), verdict
            current = current.with_args({**current.args, **result})

    def _revision_limit(self, findings: list[Finding]) -> Outcome:
        message = f"The call was still being revised after {self.spec.max_revisions} rounds"
        findings.append(Finding("guard", "revision-limit", message, effect="escalate"))
        return "escalate"

    def _verify(self, action: Action, now: datetime, overridden: frozenset[str] = frozenset()) -> Verdict:
        validator = self._validators.get(action.tool) if isinstance(action.tool, str) else None
        return verify(self.spec, action, now, validator, self.store, overridden)

    def _critique(
        self, action: Action, verdict: Verdict, findings: list[Finding], spend: _Spend
    ) -> Generator[_Question, _Reply, str | dict[str, Any] | None]:
        """Ask the critic (or the cache). Returns 'deny' / 'escalate', revised args, or None to go on."""
        settings = self.critic_settings
        serves = tuple(dict.fromkeys(verdict.critique_serves))
        if self.critic is None:
            return self._critic_failed(findings, CriticError(self._no_critic, kind="unavailable"), serves)
        values = self.spec.relevant_values(action.tool, verdict.critique_serves)
        if not values:  # an empty values section would let any "allow" pass every check of the verdict
            why = (
                f"no active value is at stake for {action.tool} (the values the critique serves are missing or "
                "not endorsed yet), so there is nothing to judge the call against"
            )
            return self._critic_failed(findings, CriticError(why, kind="unavailable"), serves)
        request = CritiqueRequest(
            action=action,
            values=values,
            priorities=self.spec.priorities_between(values),
            asked_by=tuple(verdict.critique),
            spec_digest=self.spec.digest,
            history_limit=settings.history,
            deadline=time.monotonic() + settings.deadline,
        )
        key = self._critique_cache.key(request, _critic_identity(self.critic)) if self._critique_cache else None
        result = self._critique_cache.get(key) if self._critique_cache and key else None
        if result is not None:
            spend.cached = True
        else:
            _, replies = yield ("critique", (request, settings.samples))
            for _, answer in replies:  # every answer was paid for, whether it is used or not
                tokens = getattr(answer, "tokens", None) if isinstance(answer, CritiqueVerdict | CriticError) else None
                if isinstance(tokens, Mapping):
                    spend.add(tokens)
            results: list[CritiqueVerdict] = []
            for ok, answer in replies:
                if not ok:
                    return self._critic_failed(findings, answer, serves)
                problem = check_verdict(request, answer) or self._revision_problem(action, answer)
                if problem is not None:
                    error = CriticError(f"the critic's verdict failed the checks: {problem}", kind="unverified")
                    return self._critic_failed(findings, error, serves)
                results.append(answer)
            if len({_gist(r) for r in results}) > 1:
                said = ", ".join(r.verdict for r in results)
                findings.append(
                    Finding(
                        "critic",
                        "critic-disagree",
                        f"{len(results)} critiques of this call disagree ({said}), so it needs your approval",
                        effect="escalate",
                        values=tuple(dict.fromkeys(v for r in results for v in _cited(r, request))),
                    )
                )
                return "escalate"
            result = results[0]
            if self._critique_cache and key:
                self._critique_cache.put(key, result)
        effect = {"allow": "info"}.get(result.verdict, result.verdict)
        message = result.rationale or f"The critic's verdict: {result.verdict}"
        concerns = result.concerns()
        if concerns and result.verdict != "allow":
            message = f"{message.rstrip('.')}. At stake: {'; '.join(concerns)}"
        if result.verdict == "escalate" and result.question:
            message = f"{message.rstrip('.')} — {result.question}"
        if spend.cached:
            message += " (a cached critique)"
        findings.append(Finding("critic", "critique", message, effect=effect, values=_cited(result, request)))
        if result.verdict in ("deny", "escalate"):
            return str(result.verdict)
        if result.verdict == "revise":
            return dict(result.revised_args or {})
        return None

    def _revision_problem(self, action: Action, verdict: CritiqueVerdict) -> str | None:
        """Why the critic's revised args cannot be run as a call of this tool, or None."""
        if verdict.verdict != "revise" or not verdict.revised_args:
            return None
        merged = {**action.args, **verdict.revised_args}
        bad = not_json_like(merged)
        if bad:
            return f"its revised args are not tool-call data: {bad}"
        if _same_args(merged, action.args):  # what it found at risk would run unchanged
            return "its revision changes nothing in the call"
        validator = self._validators.get(action.tool)
        problem = validator.check(merged) if validator is not None else None
        return f"its revised args do not fit {action.tool}'s schema: {problem}" if problem else None

    def _critic_failed(self, findings: list[Finding], exc: Any, serves: tuple[str, ...]) -> str | None:
        """A failed critique ends as the spec's ``critic.on_error`` says: 'deny', 'escalate', or None (allow)."""
        kind = exc.kind if isinstance(exc, CriticError) else "error"
        on_error = self.critic_settings.on_error
        then = {
            "escalate": "so it needs your approval",
            "deny": "so the call is refused",
            "allow": "and the spec allows calls when the critic fails",
        }[on_error]
        what = exc if isinstance(exc, CriticError) else f"{type(exc).__name__}: {exc}"
        message = f"{_CRITIC_FAILURE[kind]}: {what}; {then}"
        findings.append(Finding("critic", f"critic-{kind}", message, effect=on_error, values=serves))
        return None if on_error == "allow" else on_error

    def _reserve(
        self,
        charges: Sequence[tuple[CompiledBudget, float]],
        now: datetime,
        findings: list[Finding],
        approved: frozenset[str] = frozenset(),
    ) -> tuple[Outcome, tuple[str, ...]]:
        """Reserve every budget charge, all or nothing.

        Every budget is checked, so an exceeded ``on_exceed: deny`` budget denies whatever the order. A
        person's approval lets a call past the ``on_exceed: escalate`` budgets it was given for (``approved``,
        budget ids the person saw exceeded), never past ``deny`` ones.
        """
        if not charges:
            return "allow", ()
        if self._unsent and not self._resend(now=True):
            findings.append(self._unsent_finding())
            return "deny", ()
        taken: list[str] = []
        exceeded: list[Finding] = []
        ts = now.timestamp()
        try:
            for budget, amount in charges:
                b = budget.budget
                force = b.id in approved and b.on_exceed == "escalate"
                r = self.store.reserve(b.id, amount, b.limit, budget.window_s, ts, self.reservation_ttl, force)
                if not r.ok:
                    exceeded.append(_budget_finding(budget, amount, r.used))
                elif r.id is not None:
                    taken.append(r.id)
        except Exception as exc:  # any failure of a store, ours or a user's, fails closed
            self._release(taken)
            findings.append(_store_down(exc))
            return "deny", ()
        if exceeded:
            self._release(taken)
            findings.extend(exceeded)
            return ("deny" if any(f.effect == "deny" for f in exceeded) else "escalate"), ()
        return "allow", tuple(taken)

    def _budgets_exceeded(
        self, charges: Sequence[tuple[CompiledBudget, float]], now: datetime, findings: list[Finding]
    ) -> bool:
        """Before a person is asked: add a finding for every budget the call would exceed, so an approval is
        given knowingly. True when an ``on_exceed: deny`` budget is among them (then nobody is asked)."""
        ts = now.timestamp()
        refused = False
        try:
            for budget, amount in charges:
                b = budget.budget
                used = self.store.usage(b.id, budget.window_s, ts)
                if used + amount > b.limit:
                    _merge(findings, [_budget_finding(budget, amount, used)])
                    refused = refused or b.on_exceed == "deny"
        except Exception as exc:  # any failure of a store, ours or a user's, fails closed
            findings.append(_store_down(exc))
            return True
        return refused

    def _release(self, reservation_ids: Sequence[str]) -> None:
        for rid in reservation_ids:
            try:
                self.store.release(rid)
            except Exception:
                continue  # an unreleased reservation expires by itself after reservation_ttl

    def _apply_answer(
        self, ok: bool, answer: Any, current: Action, now: datetime, findings: list[Finding], seen: Sequence[Finding]
    ) -> tuple[Outcome, Action, tuple[str, ...], Verdict]:
        """Apply a person's answer (or its absence) to the escalated call ``current``, whose findings the person
        was shown (``seen``). Returns the outcome, the call that would run, its reservations, and the last
        verification of that call."""
        late = ok and isinstance(answer, _Late)
        if late:
            answer = answer.answer
            if not (isinstance(answer, Answer) and answer.choice == "deny"):  # a late no still means no
                return self._timed_out(current, now, findings, seen)
        valid = (
            ok
            and isinstance(answer, Answer)
            and answer.choice in ("approve", "deny", "edit")
            and (answer.choice != "edit" or isinstance(answer.args, Mapping))
        )
        if not valid:
            why = answer if not ok else f"unexpected answer {answer!r}"
            findings.append(
                Finding("human", "approver-failed", f"No valid answer from the approver: {why}", "escalate")
            )
            return "escalate", current, (), Verdict()
        note = f" ({answer.note})" if answer.note else ""
        if answer.choice == "deny":
            findings.append(Finding("human", "human-denied", f"Denied by {answer.by}{note}", effect="deny"))
            return "deny", current, (), Verdict()
        if answer.choice == "edit":
            edited = current.with_args(dict(answer.args or {}))
            why = f"Edited and approved by {answer.by}{note}"
            return self._consent(edited, now, findings, seen, Finding("human", "human-edited", why), edited=True)
        why = f"Approved by {answer.by}{note}"
        return self._consent(current, now, findings, seen, Finding("human", "human-approved", why), edited=False)

    def _consent(
        self,
        action: Action,
        now: datetime,
        findings: list[Finding],
        seen: Sequence[Finding],
        consent: Finding,
        edited: bool,
    ) -> tuple[Outcome, Action, tuple[str, ...], Verdict]:
        """Run ``action`` past what the person consented to, and nothing more.

        The call is verified again, as it is now (the answer may come much later, under another spec): a hard
        deny still holds (a person's edit may pass ``human_overridable`` norms), revisions still apply, and a
        reason to ask that the person was not shown asks again, unless the person wrote the call (an edit) and
        the reason is not a rule that failed on it.
        Budgets go past their limit only where the person saw them exceeded (``on_exceed: escalate``).
        """
        if self._unsent and _reads_state(self.spec.plan(action.tool)) and not self._resend(now=True):
            # what earlier calls spent or noted is not in the store yet: the call cannot be verified against it
            findings.append(self._unsent_finding())
            return "deny", action, (), Verdict()
        rounds = 0
        while True:
            verdict = self._verify(action, now, self.spec.overridable if edited else frozenset())
            _merge(findings, verdict.findings)
            if verdict.deny:
                return "deny", action, (), verdict
            revision = verdict.revision
            if revision is None or _same_args(revision, action.args):
                break
            rounds += 1
            if rounds > self.spec.max_revisions:
                return self._revision_limit(findings), action, (), verdict
            action = action.with_args(revision)
        # A reason to ask counts as shown when the person saw the same finding, failed or not. An edit passes
        # what the person's own call raises, but not a rule the edited call broke: a budget that cannot measure
        # it could not charge it either.
        shown = {(f.id, f.error is None) for f in seen}
        unseen = [
            f
            for f in verdict.findings
            if f.effect == "escalate" and (f.id, f.error is None) not in shown and not (edited and f.error is None)
        ]
        if unseen:
            reasons = "; ".join(f.message.rstrip(".") for f in unseen)
            message = f"Since the person was asked, there is more to ask about: {reasons}"
            findings.append(Finding("guard", "changed-since-asked", message, "escalate"))
            return "escalate", action, (), verdict
        findings.append(consent)
        approved = frozenset(f.id for f in seen if f.source == "budget")
        outcome, reservations = self._reserve(verdict.charges, now, findings, approved)
        return outcome, action, reservations, verdict

    def _timed_out(
        self, current: Action, now: datetime, findings: list[Finding], seen: Sequence[Finding]
    ) -> tuple[Outcome, Action, tuple[str, ...], Verdict]:
        """Nobody answered within ``escalation.timeout``: ``on_timeout`` decides (allow: as if approved)."""
        settings = self.escalation_settings
        waited = f"Nobody answered within {settings.timeout:g}s"
        if settings.on_timeout == "deny":
            findings.append(Finding("human", "approval-expired", f"{waited}, so the call is refused", "deny"))
            return "deny", current, (), Verdict()
        consent = Finding("human", "approval-expired", f"{waited}, and the spec allows calls then", "allow")
        return self._consent(current, now, findings, seen, consent, edited=False)

    def _submit(
        self,
        queue: ApprovalQueue,
        current: Action,
        proposed: Action,
        findings: list[Finding],
        timer: _Timer,
        spend: _Spend,
        now: datetime,
    ) -> Decision:
        """Queue the escalation and record it: the ``escalate`` decision, with its approval id."""
        pending = self._decision("escalate", current, proposed, findings, timer.timings, spend, at=now)
        try:
            approval = queue.submit(pending, current, self.escalation_settings.timeout)
        except Exception as exc:  # no queue, no question: the call still waits, for whoever asks instead
            failed = Finding("human", "approver-failed", f"The approval could not be queued: {exc}", "escalate")
            pending = replace(pending, findings=(*pending.findings, failed))
        else:
            pending = replace(pending, approval_id=approval.id)
        timer.lap("escalate")
        if self.audit is not None:
            pending = self._record(pending)
            timer.lap("record")
            if pending.outcome != "escalate" and pending.approval_id is not None:
                # the question was not recorded, so it must not be answerable either
                with contextlib.suppress(Exception):
                    queue.answer(pending.approval_id, Answer("deny", by="fsa_guard", note="not recorded"))
        timer.done()
        return pending

    def _conclude(self, approval: Approval) -> Decision:
        """Apply a queued approval's answer (or expiry) once, in whichever process resumes it."""
        escalated = Decision.from_dict(approval.decision)
        if approval.pending:
            return escalated
        try:
            approval = self._queue().claim(approval.id, self.identity)
        except Exception as exc:
            return self._unusable(approval.id, exc, escalated)
        try:
            return self._apply_later(approval.action(), escalated, approval.answer, approval.id)
        except Exception as exc:  # claimed but not applicable: the call does not run
            return self._failed(escalated.proposed, exc)

    def answer(self, decision: Decision, answer: Answer) -> Decision:
        """Apply a person's answer to an ``escalate`` decision this guard returned, for integrations that ask
        in their own way (a LangGraph interrupt, a chat button). The answered call is verified again, so an
        edit cannot pass a hard deny. With an approval queue, the answer goes through it (once only).
        Raises :class:`~fsa_guard.ApprovalError` for a decision that is not an escalation."""
        return self._answer_escalation(decision, answer)

    async def aanswer(self, decision: Decision, answer: Answer) -> Decision:
        """:meth:`answer`, with its store and audit I/O off the event loop."""
        return await asyncio.to_thread(self._answer_escalation, decision, answer)

    def _answer_escalation(self, decision: Decision, answer: Answer) -> Decision:
        if decision.outcome != "escalate":
            raise ApprovalError(f"only an escalated decision can be answered; this one is {decision.outcome}")
        if decision.approval_id is not None:
            if not isinstance(self.approver, ApprovalQueue):
                raise ApprovalError(
                    f"this escalation waits in an approval queue ({decision.approval_id}): answer it there"
                )
            try:
                approval = self.approver.answer(decision.approval_id, answer)
            except Exception as exc:
                return self._unusable(decision.approval_id, exc, decision)
            return self._conclude(approval)
        key = _escalation_key(decision)
        with self._answered_lock:  # once only, as through a queue, whichever copy of the decision is answered
            if key in self._answered:
                return self._unusable("(in process)", ApprovalError("this escalation was already answered"), decision)
            self._answered[key] = None
            while len(self._answered) > 10_000:
                self._answered.popitem(last=False)
        stamped = answer.stamped()
        asked = decision.decided_at
        late = asked is not None and (datetime.now(UTC) - asked).total_seconds() > self.escalation_settings.timeout
        try:
            return self._apply_later(decision.action, decision, _Late(stamped) if late else stamped, None)
        except Exception as exc:
            return self._failed(decision.proposed, exc)

    def _apply_later(
        self, current: Action, escalated: Decision, answer: Answer | _Late | None, approval_id: str | None
    ) -> Decision:
        """The decision once a person answered ``escalated`` (or nobody did in time: None, or ``_Late``)."""
        timer = _Timer()
        # the call runs now: verified and charged at this time, unless the caller pinned the action's time
        now = current.now or self._clock()
        if now.tzinfo is None:
            now = now.replace(tzinfo=self.spec.zone)
        findings = list(escalated.findings)
        given = answer.answer if isinstance(answer, _Late) else answer
        spend = _Spend(tokens=dict(escalated.tokens), approval_id=approval_id, answer=given)
        if escalated.spec_digest != self.spec.digest:
            findings.append(
                Finding(
                    "guard",
                    "spec-changed",
                    "The spec changed since the person was asked; the call was verified again under the current one",
                )
            )
        # verified again in _consent: the answer came later, maybe to another process, maybe under another spec
        outcome, current, reservations, verdict = self._apply_answer(
            True, answer if answer is not None else _Late(), current, now, findings, escalated.findings
        )
        timer.lap("escalate")
        if outcome == "escalate" and isinstance(self.approver, ApprovalQueue):
            # there is more to ask (the call or the budgets changed since): a new question, for a new answer,
            # since the one answered has been used
            spend.approval_id = None
            return self._submit(self.approver, current, escalated.proposed, findings, timer, spend, now)
        return self._finish(outcome, current, escalated.proposed, findings, timer, spend, reservations, now, verdict)

    def _unusable(self, approval_id: str, exc: Exception, escalated: Decision | None = None) -> Decision:
        """An approval that cannot be used (unknown, already used, store down) denies."""
        action = escalated.action if escalated is not None else Action("(unknown)")
        proposed = escalated.proposed if escalated is not None else action
        finding = Finding("human", "approval-unusable", f"Approval {approval_id} cannot be used: {exc}", "deny")
        findings = [*(escalated.findings if escalated is not None else ()), finding]
        return self._record(self._decision("deny", action, proposed, findings, {}, _Spend(approval_id=approval_id)))

    def _malformed(self, message: str, action: Action, timer: _Timer) -> Decision:
        finding = Finding("schema", "malformed-action", message, "deny")
        return self._record(self._decision("deny", action, action, [finding], timer.done(), _Spend()))

    def _failed(self, action: Action, exc: Exception) -> Decision:
        finding = Finding(
            "guard",
            "internal-error",
            f"The guard failed while deciding ({type(exc).__name__}: {exc}), so the call is refused",
            effect="deny",
            error=type(exc).__name__,
        )
        return self._record(self._decision("deny", action, action, [finding], {}, _Spend()))

    def _decision(
        self,
        outcome: Outcome,
        current: Action,
        proposed: Action,
        findings: list[Finding],
        timings: dict[str, float],
        spend: _Spend,
        reservations: tuple[str, ...] = (),
        at: datetime | None = None,
        remember: tuple[tuple[str, str], ...] = (),
    ) -> Decision:
        titles = self.spec.titles
        cited = {v for f in findings for v in f.values if v in titles} if findings else ()
        return Decision(
            outcome=outcome,
            action=current,
            proposed=proposed,
            findings=tuple(findings),
            spec_id=self.spec.id,
            spec_digest=self.spec.digest,
            timings=timings,
            tokens=dict(spend.tokens),
            critique_cached=spend.cached,
            approval_id=spend.approval_id,
            answer=spend.answer,
            value_titles={v: titles[v] for v in cited},
            decided_at=datetime.now(UTC),
            reservations=reservations,
            at=at,
            remember=remember,
        )

    def _record(self, decision: Decision) -> Decision:
        """``decision`` as recorded in the audit trail (as it is, without one); denied when it cannot be."""
        if self.audit is None:
            return decision
        try:
            record = {"kind": "decision", **decision.to_dict(), "time": datetime.now(UTC).isoformat()}
            record_id = self.audit.write(record)
        except Exception as exc:  # any failure to record must fail closed
            self._release(decision.reservations)
            finding = Finding(
                "audit",
                "audit-unavailable",
                f"The decision could not be recorded, so the call is refused: {exc}",
                "deny",
            )
            if not isinstance(exc, AuditError):
                finding = replace(finding, error=type(exc).__name__)
            return replace(
                decision,
                outcome="deny",
                action=decision.proposed,
                findings=(*decision.findings, finding),
                reservations=(),
                remember=(),
            )
        return replace(decision, record_id=record_id) if isinstance(record_id, str) else decision


@dataclass(slots=True)
class _Spend:
    """What one decision drew on besides the spec: the critic's tokens (and whether a cached critique answered),
    and the person's answer."""

    tokens: dict[str, int] = field(default_factory=dict)
    cached: bool = False
    answer: Answer | None = None  # the person's answer, when one decided
    approval_id: str | None = None

    def add(self, tokens: Mapping[str, Any]) -> None:
        for k, n in tokens.items():
            if isinstance(n, int) and not isinstance(n, bool):
                self.tokens[k] = self.tokens.get(k, 0) + n


_CRITIC_FAILURE = {
    "unavailable": "No critic could judge this call against your values",
    "timeout": "The critic did not answer in time",
    "exhausted": "The critic kept failing until its retries ran out",
    "error": "The critic failed",
    "invalid": "The critic's answer could not be read",
    "refused": "The critic refused to judge this call",
    "unverified": "The critic's verdict could not be trusted",
}


def _critic_identity(critic: Critic) -> str:
    identity = getattr(critic, "identity", None)
    return identity if isinstance(identity, str) else f"{type(critic).__module__}.{type(critic).__qualname__}"


def _gist(verdict: CritiqueVerdict) -> str:
    """What two critiques must share to agree: the verdict, and for a revision the new args."""
    args = json.dumps(jsonable(verdict.revised_args or {}), sort_keys=True) if verdict.verdict == "revise" else ""
    return f"{verdict.verdict}:{args}"


def _cited(verdict: CritiqueVerdict, request: CritiqueRequest) -> tuple[str, ...]:
    """The values a verdict cites, and those whose policies it found at risk."""
    owners = {pid: card.id for pid, (card, _) in policy_ids(request.values).items()}
    at_risk = [owners[j.policy] for j in verdict.judgments if j.judgment == "at_risk" and j.policy in owners]
    return tuple(dict.fromkeys([*verdict.values, *at_risk]))


class _Timer:
    """Seconds per pipeline stage (``STAGES``), plus ``total``."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._started = self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + now - self._last
        self._last = now

    def done(self) -> dict[str, float]:
        self.timings["total"] = time.perf_counter() - self._started
        return self.timings


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _check_has(given: object, role: str, methods: tuple[str, ...], kind: str) -> None:
    """Refuse, when the guard is built, a critic or approver that ``decide`` or ``adecide`` could not call."""
    missing = [m for m in methods if not callable(getattr(given, m, None))]
    if given is not None and missing:
        raise TypeError(f"the {role} {type(given).__name__} has no {' or '.join(missing)}(): it must be a {kind}")


def _as_action(given: Any) -> Action:
    """``given`` when it is an Action; else an Action saying what was given, so that the deny can be explained,
    serialised and recorded like any other."""
    if isinstance(given, Action):
        return given
    try:
        shown = repr(given)[:500]
    except Exception:  # a repr that fails must not turn the deny into an exception
        shown = "(no repr)"
    return Action("(not an action)", {"given": f"{type(given).__name__}: {shown}"})


def _escalation_key(decision: Decision) -> str:
    """What identifies one escalation in all its copies (``to_dict``/``from_dict``, ``replace``): its audit
    record, or else when and under which spec it was decided, for which call."""
    if decision.record_id is not None:
        return decision.record_id
    at = decision.decided_at.isoformat() if decision.decided_at is not None else None
    parts = [decision.spec_digest, at, decision.proposed.to_dict(), decision.action.to_dict()]
    return json.dumps(parts, sort_keys=True, default=repr)


def _same_args(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Equal as tool-call data: 1 and 1.0 are the same number, but true is not 1 (Python's == says it is)."""
    if a is b:
        return True
    if dict(a) != dict(b):
        return False  # Python's == is looser than ours, so unequal here is unequal for us too
    return bool(_typed(dict(a)) == _typed(dict(b)))


def _typed(value: Any) -> Any:
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, Mapping):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_typed(v) for v in value]
    return value


def _merge(findings: list[Finding], new: Sequence[Finding]) -> None:
    """Add findings not already there: a norm that fires again on a revised call is one reason, not two."""
    findings.extend(f for f in new if f not in findings)


def _budget_finding(budget: CompiledBudget, amount: float, used: float) -> Finding:
    b = budget.budget
    what = (b.description or f"Budget {b.id!r}").rstrip(".")
    return Finding(
        "budget",
        b.id,
        f"{what}: {used:g} used of {b.limit:g} per {b.window}; this call needs {amount:g}",
        effect=b.on_exceed,
        values=tuple(b.serves),
    )


def _reads_state(plan: ToolPlan) -> bool:
    """Whether a decision on the plan's tool reads the store (budgets, remembered entities, ``state``)."""
    return bool(plan.budgets or plan.remember or plan.state_keys is None or plan.state_keys)


def _store_down(exc: Exception) -> Finding:
    return Finding("store", "store-unavailable", f"Budget state could not be checked: {exc}", effect="deny")


def _raise_unless_allowed(decision: Decision) -> None:
    if decision.outcome == "escalate":
        raise EscalationRequired(decision)
    if not decision.allowed:
        raise Denied(decision)
