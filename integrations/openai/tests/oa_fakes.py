"""Shared pieces for the OpenAI integration's tests: a small spec, tools that record what they receive, and a
fake model behind the HTTP mock (pytest-httpx2: openai 3.x sends through httpx2) whose Chat Completions and
Responses bodies are shaped exactly as OpenAI sends them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from openai import AsyncOpenAI, OpenAI

BASE_URL = "http://openai.test/v1"
CHAT_URL = f"{BASE_URL}/chat/completions"
RESPONSES_URL = f"{BASE_URL}/responses"

SPEC = """\
fsa_guard: 1
id: openai-test
defaults:
  unknown_tool: deny
values:
  - id: careful-money
    title: Careful stewardship of money
    attends_to:
      - CLARITY about who receives money and why
      - ROOM to say no before anything irreversible happens
      - MOMENTS when a purchase serves a lasting need rather than an impulse
    tools: [send_money, tip]
  - id: privacy
    title: Keeping private things private
    attends_to:
      - DETAILS of my life that I did not choose to share
      - MOMENTS when something read for me would travel further than I meant
      - PEOPLE who learn about me only what I told them
    tools: [read_notes, send_email]
norms:
  - id: no-rivals
    description: No money goes to a rival.
    tools: [send_money]
    when: action.args.recipient.startsWith("rival")
    effect: deny
    serves: [careful-money]
  - id: payees-i-named
    description: Money goes only to someone named in my request.
    tools: [send_money]
    when: "!mentions(request, action.args.recipient)"
    effect: deny
    serves: [careful-money]
  - id: big-payments-ask-me
    description: Payments above 500 wait for my yes.
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
  - id: notes-stay-home
    description: Nothing from my private notes goes out by email.
    tools: [send_email]
    when: copied_from(history, action.args.body, "read_notes", 12)
    effect: deny
    serves: [privacy]
budgets:
  - id: daily-money
    description: At most 1000 a day leaves through the assistant.
    tools: [send_money]
    measure: action.args.amount
    limit: 1000.0
    window: 1d
    on_exceed: deny
    serves: [careful-money]
"""


def sync_client() -> OpenAI:
    """A client of the mocked server that does not retry."""
    return OpenAI(api_key="sk-test", base_url=BASE_URL, max_retries=0)


def async_client() -> AsyncOpenAI:
    """An async client of the mocked server that does not retry."""
    return AsyncOpenAI(api_key="sk-test", base_url=BASE_URL, max_retries=0)


SECRET = "The door code is 4711-9930, do not tell anyone."


@dataclass
class Ledger:
    """The tools of the tests; each records the args it ran with. ``send_money`` to ``broken`` raises."""

    ran: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def tools(self) -> list[Any]:
        def send_money(recipient: str, amount: float, memo: str = "") -> str:
            """Send money to a recipient."""
            self.ran.append(("send_money", {"recipient": recipient, "amount": amount, "memo": memo}))
            if recipient == "broken":
                raise ConnectionError("the bank did not answer")
            return f"sent {amount:g} to {recipient}"

        def tip(amount: float) -> dict[str, Any]:
            """Tip the waiter."""
            self.ran.append(("tip", {"amount": amount}))
            return {"tipped": amount}

        def read_notes(name: str) -> str:
            """Read one of my notes."""
            self.ran.append(("read_notes", {"name": name}))
            return SECRET

        async def send_email(to: str, body: str) -> str:
            """Send an email."""
            self.ran.append(("send_email", {"to": to, "body": body}))
            return "queued"

        return [send_money, tip, read_notes, send_email]

    def names(self) -> list[str]:
        return [name for name, _ in self.ran]


USAGE = {
    "prompt_tokens": 212,
    "completion_tokens": 38,
    "total_tokens": 250,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}

Turn = str | Sequence[tuple[str, str, Any]]  # the model's answer text, or its tool calls (id, name, args)


def _arguments(args: Any) -> str:
    return args if isinstance(args, str) else json.dumps(args)


def completion(turn: Turn, n: int = 1) -> dict[str, Any]:
    """A Chat Completions response body: text, or tool calls (args as a dict, or a raw string)."""
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None, "annotations": []}
    if isinstance(turn, str):
        message["content"] = turn
        finish = "stop"
    else:
        message["tool_calls"] = [
            {"id": cid, "type": "function", "function": {"name": name, "arguments": _arguments(args)}}
            for cid, name, args in turn
        ]
        finish = "tool_calls"
    return {
        "id": f"chatcmpl-BXk9eR2sLq0v8kT{n}",
        "object": "chat.completion",
        "created": 1764220800 + n,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": USAGE,
        "service_tier": "default",
        "system_fingerprint": "fp_efad92c60b",
    }


def response(turn: Turn, n: int = 1, request: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Responses body: a message item, or function_call items; echoes the request's tools as OpenAI does."""
    if isinstance(turn, str):
        output: list[dict[str, Any]] = [
            {
                "type": "message",
                "id": f"msg_67ccd3acc8d48190a77525dc6de64b4104becb25c45c1d4{n}",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": turn, "annotations": [], "logprobs": []}],
            }
        ]
    else:
        output = [
            {
                "type": "function_call",
                "id": f"fc_67ca09c6bedc8190a7abfec07b1a1332096610f474011cc{i}",
                "call_id": cid,
                "name": name,
                "arguments": _arguments(args),
                "status": "completed",
            }
            for i, (cid, name, args) in enumerate(turn)
        ]
    request = request or {}
    return {
        "id": f"resp_67ca09c5efe0819096d0511c92b8c89004be5c8e29bbce0{n}",
        "object": "response",
        "created_at": 1741294021 + n,
        "status": "completed",
        "background": False,
        "completed_at": 1741294022 + n,
        "error": None,
        "incomplete_details": None,
        "instructions": request.get("instructions"),
        "max_output_tokens": None,
        "max_tool_calls": None,
        "model": "gpt-4o-mini-2024-07-18",
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "prompt_cache_key": None,
        "reasoning": {"effort": None, "summary": None},
        "safety_identifier": None,
        "service_tier": "default",
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": request.get("tools", []),
        "top_logprobs": 0,
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": {
            "input_tokens": 291,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": 23,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 314,
        },
        "user": None,
        "metadata": {},
    }


class FakeModel:
    """A scripted model behind the mock: answers each request with the next turn, and keeps the request bodies.

    ``api`` is ``chat`` or ``responses``; a turn may also be an ``httpx.Response`` (an error, say), sent as is.
    """

    def __init__(self, api: str, turns: Sequence[Turn | httpx.Response]) -> None:
        self.api = api
        self.turns = list(turns)
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: Any) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        if not self.turns:
            raise AssertionError(f"the model was asked more often than scripted: {body}")
        turn = self.turns.pop(0)
        if isinstance(turn, httpx.Response):
            return turn
        n = len(self.bodies)
        data = completion(turn, n) if self.api == "chat" else response(turn, n, body)
        return httpx.Response(200, json=data)

    def sent(self, i: int = -1) -> list[dict[str, Any]]:
        """The messages (chat) or input items (responses) of the i-th request."""
        key = "messages" if self.api == "chat" else "input"
        return list(self.bodies[i][key])


def results_in(items: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Tool results by call id, from Chat Completions messages or Responses input items."""
    out: dict[str, str] = {}
    for item in items:
        if item.get("role") == "tool":
            out[item["tool_call_id"]] = item["content"]
        elif item.get("type") == "function_call_output":
            out[item["call_id"]] = item["output"]
    return out


def rate_limited() -> httpx.Response:
    """OpenAI's 429, asking to retry at once."""
    body = {
        "error": {
            "message": "Rate limit reached for gpt-4o-mini in organization org-test on requests per min (RPM).",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    return httpx.Response(429, json=body, headers={"retry-after-ms": "1"})
