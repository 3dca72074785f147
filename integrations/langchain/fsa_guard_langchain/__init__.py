"""fsa_guard for LangChain v1 agents: put a person's values between the agent and its tools.

    from langchain.agents import create_agent
    from langgraph.checkpoint.memory import InMemorySaver
    from fsa_guard import Guard
    from fsa_guard_langchain import FSAGuardMiddleware

    guard = Guard.from_files("policies/personal-assistant.yaml")
    agent = create_agent(model, tools, middleware=[FSAGuardMiddleware(guard)], checkpointer=InMemorySaver())

Every tool call the model proposes is decided before it runs: allowed calls run, revised calls run changed,
refused calls come back to the model as an error with the reason, and escalated calls pause the run with a
LangGraph interrupt until the person answers (``Command(resume="approve" | "deny" | {"choice": "edit",
"args": {...}})``). For other agent styles, :func:`guard_tools` wraps plain LangChain tools.
"""

from .convert import METADATA_KEY, answer_from_resume, history_from_messages, read_messages, request_from_messages
from .middleware import APPROVAL_TYPE, FSAGuardMiddleware, approval_payload, values_statement
from .tools import GuardedTool, guard_tools

__version__ = "0.1.0"

__all__ = [
    "APPROVAL_TYPE",
    "METADATA_KEY",
    "FSAGuardMiddleware",
    "GuardedTool",
    "__version__",
    "answer_from_resume",
    "approval_payload",
    "guard_tools",
    "history_from_messages",
    "read_messages",
    "request_from_messages",
    "values_statement",
]
