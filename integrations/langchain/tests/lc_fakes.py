"""Shared pieces of the LangChain integration's tests: a small value spec, tools that record the args they ran
with, and a scripted OpenAI model: Chat Completions responses shaped exactly as OpenAI sends them, served by
pytest-httpx2 (the respx mocker for the httpx2 client that openai 3.x uses)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import httpx
from langchain_core.tools import BaseTool, ToolException, tool

API = "https://api.openai.com/v1/chat/completions"
CRITIC_BASE_URL = "http://critic.test/v1"
CRITIC_API = f"{CRITIC_BASE_URL}/chat/completions"

USAGE = {
    "prompt_tokens": 412,
    "completion_tokens": 37,
    "total_tokens": 449,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}

ToolCallSpec = tuple[str, str, dict[str, Any]]  # (call id, tool name, args)


def completion(content: str | None = None, tool_calls: Sequence[ToolCallSpec] = ()) -> dict[str, Any]:
    """A Chat Completions response body: the model's text, or the tool calls it proposes."""
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
    if tool_calls:
        message["tool_calls"] = [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
            for call_id, name, args in tool_calls
        ]
    return {
        "id": "chatcmpl-CfT3kq8ZrW1xY2v9",
        "object": "chat.completion",
        "created": 1764220800,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if tool_calls else "stop",
            }
        ],
        "usage": USAGE,
        "service_tier": "default",
        "system_fingerprint": "fp_efad92c60b",
    }


def calls(*tool_calls: ToolCallSpec) -> httpx.Response:
    """The model proposes these tool calls (in one turn)."""
    return httpx.Response(200, json=completion(None, tool_calls))


def says(text: str) -> httpx.Response:
    """The model answers with text and ends the run."""
    return httpx.Response(200, json=completion(text))


def sent(route: Any, i: int = -1) -> dict[str, Any]:
    """The JSON body of the i-th request a mocked route received."""
    body: dict[str, Any] = json.loads(route.calls[i].request.content)
    return body


def tool_messages(body: dict[str, Any]) -> dict[str, str]:
    """The tool results a request sent to the model, by tool call id."""
    return {m["tool_call_id"]: m["content"] for m in body["messages"] if m["role"] == "tool"}


def critic_answer(verdict: str, policies: Sequence[str], *, question: str | None = None) -> httpx.Response:
    """The critic's rubric answer (structured output) judging every policy honoured."""
    content = {
        "judgments": [
            {"policy": p, "judgment": "honoured", "evidence": "Nothing in the call touches this."} for p in policies
        ],
        "affected_could_reasonably_reject": False,
        "manipulates_or_exploits_attention": False,
        "verdict": verdict,
        "rationale": "A new subscription is a lasting commitment; the person should weigh it.",
        "revised_args": None,
        "question": question,
        "cited_values": [],
        "applied_priorities": [],
    }
    return httpx.Response(200, json=completion(json.dumps(content)))


SPEC = """
fsa_guard: 1
id: lc-test
defaults:
  unknown_tool: allow
values:
  - id: careful-money
    title: Careful stewardship of money
    description: I spend on what lasts, and I like to know where money goes.
    attends_to:
      - MOMENTS when a purchase serves a lasting need rather than an impulse
      - CLARITY about who receives money and why
      - ROOM to say no before anything irreversible happens
    tools: [send_money, tip, subscribe]
  - id: guessed-thrift
    title: Thrift above all
    description: Inferred from my purchases; I have not said so.
    attends_to: [BARGAINS that save money today]
    endorsed: false
norms:
  - id: no-rivals
    description: No money goes to a rival.
    tools: [send_money]
    when: action.args.recipient.startsWith("rival")
    effect: deny
    serves: [careful-money]
  - id: big-payments-ask-me
    description: A payment over 500 waits for my yes.
    tools: [send_money]
    when: action.args.amount > 500.0
    effect: escalate
    serves: [careful-money]
  - id: cap-tips
    description: Tips are at most 20.
    tools: [tip]
    when: action.args.amount > 20.0
    effect: revise
    revise: {amount: "20.0"}
    serves: [careful-money]
budgets:
  - id: daily-spend
    description: At most 1000 a day.
    tools: [send_money]
    measure: action.args.amount
    limit: 1000
    window: 1d
    on_exceed: deny
    serves: [careful-money]
"""

THREAD = {"configurable": {"thread_id": "thread-1"}}


class Ledger:
    """Tools that record the args they actually ran with."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def ran(self, tool_name: str | None = None) -> list[dict[str, Any]]:
        return [args for name, args in self.calls if tool_name is None or name == tool_name]

    def tools(self) -> list[BaseTool]:
        calls = self.calls

        @tool
        def send_money(recipient: str, amount: float) -> str:
            """Send money to a recipient (an account or a payee's name)."""
            calls.append(("send_money", {"recipient": recipient, "amount": amount}))
            if recipient == "broken":
                raise ToolException("the bank refused the transfer")
            if recipient == "crash":
                raise RuntimeError("the bank client crashed")
            return json.dumps({"status": "sent", "recipient": recipient, "amount": amount})

        send_money.handle_tool_error = True

        @tool
        def tip(amount: float) -> str:
            """Tip the courier."""
            calls.append(("tip", {"amount": amount}))
            return f"tipped {amount:g}"

        @tool
        def list_payees() -> str:
            """List the person's saved payees."""
            calls.append(("list_payees", {}))
            return json.dumps(["LANDLORD-DE44", "GRANDMA-AT61"])

        @tool
        def subscribe(service: str, amount: float) -> str:
            """Subscribe to a service for a monthly amount."""
            calls.append(("subscribe", {"service": service, "amount": amount}))
            return f"subscribed to {service}"

        return [send_money, tip, list_payees, subscribe]


def ask(text: str) -> dict[str, Any]:
    """The person's message that starts a run."""
    return {"messages": [{"role": "user", "content": text}]}
