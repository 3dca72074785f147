"""fsa_guard for the OpenAI SDKs: put a person's values between the model and its tools.

    from openai import OpenAI
    from fsa_guard import Guard
    from fsa_guard_openai import run_tool_loop

    guard = Guard.from_files("policies/personal-assistant.yaml")
    result = run_tool_loop(OpenAI(), "gpt-4o-mini", messages, [send_email, pay_bill], guard)
    while result.stopped == "escalated":                         # calls that wait for the person
        result = result.resume({r.call_id: "approve" for r in result.pending}, by="alice")
    print(result.output_text)

Every tool call the model proposes is decided before it runs: allowed calls run, revised calls run changed
(their result says how and why), refused calls come back to the model with the reason so it can adapt, and
escalated calls wait for a person. Chat Completions: :func:`run_tool_loop` / :func:`guard_tool_calls`;
Responses: :func:`run_response_loop` / :func:`guard_function_calls`; async twins start with ``a``. The
OpenAI Agents SDK has its own module, :mod:`fsa_guard_openai.agents` (``pip install fsa-guard-openai[agents]``).
"""

from ._convert import (
    CHANGED,
    RAN,
    REFUSED,
    chat_history,
    chat_request,
    parse_arguments,
    responses_history,
    responses_request,
)
from ._loop import ToolLoopError, ToolLoopResult, aresume_tool_loop, resume_tool_loop
from ._run import AnswerLike, CallResult, ToolResults, aanswer_tool_calls, answer_tool_calls, coerce_answer
from ._tools import Toolbox, Tools, chat_tools, response_tools
from .chat import aguard_tool_calls, arun_tool_loop, guard_tool_calls, run_tool_loop
from .responses import aguard_function_calls, arun_response_loop, guard_function_calls, run_response_loop

__version__ = "0.1.0"

__all__ = [
    "CHANGED",
    "RAN",
    "REFUSED",
    "AnswerLike",
    "CallResult",
    "ToolLoopError",
    "ToolLoopResult",
    "ToolResults",
    "Toolbox",
    "Tools",
    "__version__",
    "aanswer_tool_calls",
    "aguard_function_calls",
    "aguard_tool_calls",
    "answer_tool_calls",
    "aresume_tool_loop",
    "arun_response_loop",
    "arun_tool_loop",
    "chat_history",
    "chat_request",
    "chat_tools",
    "coerce_answer",
    "guard_function_calls",
    "guard_tool_calls",
    "parse_arguments",
    "response_tools",
    "responses_history",
    "responses_request",
    "resume_tool_loop",
    "run_response_loop",
    "run_tool_loop",
]
