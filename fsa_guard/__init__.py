"""fsa_guard: put a person's values between an AI agent and the world.

Load a value spec, wrap an agent's tools, and every proposed action is verified against the person's
norms and budgets (and, where the spec asks, judged against their values cards) before it runs::

    from fsa_guard import Guard, Action
    guard = Guard.from_files("policies/enterprise-baseline.yaml", "alice.yaml")
    decision = guard.decide(Action(tool="send_money", args={"recipient": "US13", "amount": 250.0}))
    decision.outcome, decision.explain()
"""

import typing as _typing

from .action import Action, Call
from .audit import open_audit
from .audit.base import AuditReader, AuditSink, ChainReport, verify_sink
from .audit.memory import MemoryAuditSink
from .critique.base import Critic, CritiqueRequest, CritiqueVerdict, PolicyJudgment, check_verdict, policy_ids
from .critique.cache import CritiqueCache
from .decision import Decision, Finding, Outcome
from .errors import (
    ApprovalError,
    AuditError,
    CriticError,
    Denied,
    EscalationRequired,
    FSAGuardError,
    Problem,
    SpecError,
    StoreError,
)
from .escalate.base import Answer, Approver, CallbackApprover
from .escalate.console import ConsoleApprover
from .escalate.queue import Approval, ApprovalQueue
from .guard import STAGES, CriticPolicy, EscalationPolicy, Guard, Session, current_session
from .spec.compiled import CompiledSpec, check_spec, load_spec
from .spec.lint import lint_spec
from .store import open_store
from .store.base import ApprovalStore, Reservation, Store
from .store.memory import MemoryStore

if _typing.TYPE_CHECKING:
    from .critique.openai import OpenAICritic

__version__ = "0.1.0"

# Public names imported on first use: the openai SDK takes a third of a second to import, so only a
# program that uses the OpenAI critic pays for it.
_LAZY = {"OpenAICritic": ".critique.openai"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'fsa_guard' has no attribute {name!r}")


__all__ = [
    "STAGES",
    "Action",
    "Answer",
    "Approval",
    "ApprovalError",
    "ApprovalQueue",
    "ApprovalStore",
    "Approver",
    "AuditError",
    "AuditReader",
    "AuditSink",
    "Call",
    "CallbackApprover",
    "ChainReport",
    "CompiledSpec",
    "ConsoleApprover",
    "Critic",
    "CriticError",
    "CriticPolicy",
    "CritiqueCache",
    "CritiqueRequest",
    "CritiqueVerdict",
    "Decision",
    "Denied",
    "EscalationPolicy",
    "EscalationRequired",
    "FSAGuardError",
    "Finding",
    "Guard",
    "MemoryAuditSink",
    "MemoryStore",
    "OpenAICritic",
    "Outcome",
    "PolicyJudgment",
    "Problem",
    "Reservation",
    "Session",
    "SpecError",
    "Store",
    "StoreError",
    "__version__",
    "check_spec",
    "check_verdict",
    "current_session",
    "lint_spec",
    "load_spec",
    "open_audit",
    "open_store",
    "policy_ids",
    "verify_sink",
]
