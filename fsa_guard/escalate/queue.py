"""A durable approval queue: escalated calls wait in a store until a person answers, from any process.

The guard submits each escalation it cannot settle at once as a pending :class:`Approval`; a person answers
it later (``fsa-guard approvals``, an app's own UI through :meth:`ApprovalQueue.answer`), and the guard that
waits for it, or any guard that later resumes it, applies the answer once. An approval nobody answers expires
after the spec's ``escalation.timeout``; what that means is the spec's ``escalation.on_timeout`` (deny unless
written otherwise). Every change of state is atomic in the store, so two answers to one approval cannot both
win, and two guards cannot both run the call.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..action import Action
from ..decision import Answer, Decision
from ..errors import ApprovalError
from ..store import open_store
from ..store.base import ApprovalRow, ApprovalStore
from ..verify.engine import not_json_like

__all__ = ["Approval", "ApprovalQueue"]

_ANSWERS = ("approve", "deny", "edit")


@dataclass(frozen=True, slots=True)
class Approval:
    """One escalation in the queue, as a person or a guard sees it.

    ``status`` is ``pending``, ``approve``, ``deny``, ``edit`` or ``expired`` (a pending approval past its
    ``expires`` reads as expired). ``decision`` is the escalated decision (``Decision.to_dict()``);
    ``claimed`` is when a guard used the outcome, which happens once.
    """

    id: str
    status: str
    decision: Mapping[str, Any]
    created: datetime
    expires: datetime
    answer: Answer | None = None
    claimed: datetime | None = None
    claimed_by: str | None = None
    _request: Mapping[str, Any] | None = None

    @property
    def pending(self) -> bool:
        """True while a person can still answer it."""
        return self.status == "pending"

    @property
    def tool(self) -> str:
        """The tool of the call waiting for approval."""
        return str(self.decision.get("action", {}).get("tool", ""))

    def action(self) -> Action:
        """The call that waits, with its request, history and context (and ``now`` when the caller pinned it)."""
        raw = self._request.get("action", {}) if self._request else {}
        return Action.from_dict({"tool": self.tool, **raw})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``fsa-guard approvals show --json`` prints)."""
        return {
            "id": self.id,
            "status": self.status,
            "tool": self.tool,
            "created": self.created.isoformat(),
            "expires": self.expires.isoformat(),
            "answer": self.answer.to_dict() if self.answer is not None else None,
            "claimed": self.claimed.isoformat() if self.claimed is not None else None,
            "claimed_by": self.claimed_by,
            "decision": dict(self.decision),
        }


class ApprovalQueue:
    """Approvals kept in a store (``memory://``, ``sqlite:///path``, ``redis://...``), so that a person can
    answer them from another process, later.

    Pass it to a guard as ``Guard(spec, approver=queue)``: ``guard.decide(action, wait=s)`` then waits up
    to ``s`` seconds for an answer (``wait`` here is the default, 0: return at once with outcome
    ``escalate`` and ``decision.approval_id``), and ``guard.resume(approval_id)`` finishes the decision
    later, in any process. ``poll`` is how often a waiting guard looks for the answer.
    """

    def __init__(
        self,
        store: ApprovalStore | str,
        *,
        wait: float = 0.0,
        poll: float = 0.25,
        clock: Callable[[], float] = time.time,
    ) -> None:
        opened = open_store(store) if isinstance(store, str) else store
        if not isinstance(opened, ApprovalStore):
            raise TypeError(f"{type(opened).__name__} keeps no approvals: use memory://, sqlite:///... or redis://...")
        self.store: ApprovalStore = opened
        self.wait_default = wait
        self.poll = poll
        self._clock = clock

    # -- the guard's side ----------------------------------------------------------------------------

    def submit(self, decision: Decision, action: Action, timeout: float) -> Approval:
        """Queue the escalated ``decision`` of ``action`` (the call that would run); it expires after
        ``timeout`` seconds. The approval's id is set in the returned decision copy by the guard."""
        try:  # the call must come back exactly as it was asked about: no repr strings for NaN or objects
            json.dumps(dict(action.args), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ApprovalError(f"the call's args cannot be queued exactly as JSON: {exc}") from exc
        now = self._clock()
        request = {"decision": decision.to_dict(), "action": action.to_dict(full=True)}  # ``now`` only when pinned
        for _ in range(3):  # a taken id is astronomically rare; try another
            approval_id = "ap_" + secrets.token_hex(8)
            request["decision"]["approval_id"] = approval_id
            row = ApprovalRow(approval_id, now, now + timeout, "pending", json.dumps(request, ensure_ascii=False))
            try:
                self.store.approval_add(row)
            except Exception:
                if self.store.approval_get(approval_id) is None:
                    raise
                continue
            return self._read(row)
        raise ApprovalError("could not find a free approval id")

    def claim(self, approval_id: str, by: str) -> Approval:
        """Take a settled approval for use (once). A pending one past its expiry is settled as expired first.
        Raises :class:`~fsa_guard.ApprovalError` when it is unknown, still pending, or already used."""
        approval = self.get(approval_id)
        if approval.status == "expired" and approval.answer is None:
            self.store.approval_settle(approval_id, "expired", None, self._clock())
        ok, row = self.store.approval_claim(approval_id, self._clock(), by)
        if ok and row is not None:
            return self._read(row)
        current = self.get(approval_id)
        if current.pending:
            raise ApprovalError(f"approval {approval_id} has no answer yet")
        when = current.claimed.isoformat(timespec="seconds") if current.claimed else "?"
        raise ApprovalError(f"approval {approval_id} was already used by {current.claimed_by} at {when}")

    def wait(self, approval_id: str, seconds: float) -> Approval:
        """The approval once it is answered or expired, or as it is after ``seconds``."""
        deadline = time.monotonic() + seconds
        while True:
            approval = self.get(approval_id)
            left = deadline - time.monotonic()
            if not approval.pending or left <= 0:
                return approval
            time.sleep(min(self.poll, left, max(0.0, approval.expires.timestamp() - self._clock()) + 0.001))

    async def async_wait(self, approval_id: str, seconds: float) -> Approval:
        """:meth:`wait`, without blocking the event loop."""
        deadline = time.monotonic() + seconds
        while True:
            approval = await asyncio.to_thread(self.get, approval_id)
            left = deadline - time.monotonic()
            if not approval.pending or left <= 0:
                return approval
            await asyncio.sleep(min(self.poll, left, max(0.0, approval.expires.timestamp() - self._clock()) + 0.001))

    # -- the person's side ---------------------------------------------------------------------------

    def get(self, approval_id: str) -> Approval:
        """The approval. Raises :class:`~fsa_guard.ApprovalError` when there is none with this id."""
        row = self.store.approval_get(approval_id)
        if row is None:
            raise ApprovalError(f"no approval with id {approval_id!r}: `fsa-guard approvals list` shows them")
        return self._read(row)

    def list(self, status: str | None = None, limit: int = 100) -> list[Approval]:
        """Approvals, newest first; ``status`` as :attr:`Approval.status` reads (``pending`` leaves out
        expired ones, ``expired`` includes pending ones past their time)."""
        if status is None:
            rows = self.store.approval_list(None, limit)
        elif status in ("pending", "expired"):
            rows = self.store.approval_list("pending", limit * 4) + (
                self.store.approval_list("expired", limit) if status == "expired" else []
            )
        else:
            rows = self.store.approval_list(status, limit)
        out = [self._read(r) for r in rows]
        if status is not None:
            out = [a for a in out if a.status == status]
        return sorted(out, key=lambda a: a.created, reverse=True)[:limit]

    def answer(self, approval_id: str, answer: Answer) -> Approval:
        """Record a person's answer. Raises :class:`~fsa_guard.ApprovalError` when the approval is unknown,
        already answered, or expired, or the answer is malformed; then nothing changes."""
        if answer.choice not in _ANSWERS:
            raise ApprovalError(f"an answer is approve, deny or edit, not {answer.choice!r}")
        if answer.choice == "edit" and not isinstance(answer.args, Mapping):
            raise ApprovalError("an edit needs the call's new args (a JSON object)")
        if answer.args is not None:
            bad = not_json_like(answer.args)
            if bad is not None:
                raise ApprovalError(f"the edited args must be JSON data: {bad}")
        text = json.dumps(answer.stamped().to_dict(), ensure_ascii=False, allow_nan=False)
        ok, row = self.store.approval_settle(approval_id, answer.choice, text, self._clock())
        if ok and row is not None:
            return self._read(row)
        if row is None:
            raise ApprovalError(f"no approval with id {approval_id!r}: `fsa-guard approvals list` shows them")
        current = self._read(row)
        if current.answer is not None:
            by = current.answer
            when = by.at.isoformat(timespec="seconds") if by.at else "?"
            raise ApprovalError(f"approval {approval_id} was already answered: {by.choice} by {by.by} at {when}")
        raise ApprovalError(
            f"approval {approval_id} expired at {current.expires.isoformat(timespec='seconds')}; nobody can answer "
            "it now"
        )

    def approve(self, approval_id: str, by: str, note: str = "") -> Approval:
        """Answer approve."""
        return self.answer(approval_id, Answer("approve", by=by, note=note))

    def deny(self, approval_id: str, by: str, note: str = "") -> Approval:
        """Answer deny."""
        return self.answer(approval_id, Answer("deny", by=by, note=note))

    def edit(self, approval_id: str, args: Mapping[str, Any], by: str, note: str = "") -> Approval:
        """Answer with changed args (the whole args of the call); the guard verifies them again."""
        return self.answer(approval_id, Answer("edit", args=dict(args), by=by, note=note))

    def close(self) -> None:
        """Close the store's connections."""
        close = getattr(self.store, "close", None)
        if callable(close):
            close()

    def _read(self, row: ApprovalRow) -> Approval:
        try:
            request = json.loads(row.request)
            answer = Answer.from_dict(json.loads(row.answer)) if row.answer else None
        except (ValueError, KeyError, TypeError) as exc:
            raise ApprovalError(f"approval {row.id} is damaged in the store: {exc}") from exc
        status = row.status
        if status == "pending" and self._clock() >= row.expires:
            status = "expired"
        return Approval(
            id=row.id,
            status=status,
            decision=request.get("decision", {}),
            created=_time(row.created),
            expires=_time(row.expires),
            answer=answer,
            claimed=_time(row.claimed) if row.claimed is not None else None,
            claimed_by=row.claimed_by,
            _request=request,
        )


def _time(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
