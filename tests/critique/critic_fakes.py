"""Shared pieces for critic tests: a spec that asks for judgment, and Chat Completions responses shaped
exactly as OpenAI sends them (mocked at the HTTP transport with pytest-httpx2, the respx mocker for the
httpx2 client that openai 3.x uses)."""

from __future__ import annotations

import json
from typing import Any

BASE_URL = "http://critic.test/v1"
COMPLETIONS = f"{BASE_URL}/chat/completions"

SPEC = """\
fsa_guard: 1
id: critic-test
values:
  - id: honesty
    title: Honest communication
    description: I say what I mean, and I do not leave people with a false picture.
    attends_to:
      - CLAIMS that the person can stand behind when asked how they know
      - MOMENTS when a kind omission would leave someone with a false picture
      - WORDING that lets the reader see what is certain and what is a guess
    tools: [send_email]
    critique: true
  - id: kindness
    title: Warmth towards the people I write to
    description: My messages leave people feeling respected, even when the news is hard.
    attends_to:
      - FEELINGS of the reader when they open the message
      - CHANCES to acknowledge what the other person has done
      - WORDS that could land as blame when they are read alone
    tools: [send_email]
  - id: frugality
    title: Careful stewardship of money
    attends_to:
      - PURCHASES that serve a lasting need rather than an impulse
      - MOMENTS when a cheaper option does the same job
      - COMMITMENTS that keep costing after today
norms:
  - id: no-mail-to-rivals
    description: Nothing is sent to our competitor.
    tools: [send_email]
    when: 'string(action.args.to).endsWith("@rival.example")'
    effect: deny
    serves: [honesty]
  - id: weigh-big-payments
    description: Payments above 100 are weighed against my values.
    tools: [pay]
    when: action.args.amount > 100.0
    effect: critique
    serves: [frugality]
  - id: cap-payments
    description: No payment above 1000.
    tools: [pay]
    when: action.args.amount > 1000.0
    effect: deny
    serves: [frugality]
priorities:
  - context: condolence and other messages about a loss
    prefer: kindness
    over: honesty
critic:
  model: gpt-4o-mini
  base_url: http://critic.test/v1
  retries: 2
  deadline: 20s
"""

EMAIL_POLICIES = [f"{v}#{i}" for v in ("honesty", "kindness") for i in (1, 2, 3)]
PAY_POLICIES = [f"frugality#{i}" for i in (1, 2, 3)]


def answer(
    verdict: str = "allow",
    policies: list[str] | None = None,
    *,
    at_risk: tuple[str, ...] = (),
    values: list[str] | None = None,
    revised_args: dict[str, Any] | None = None,
    question: str | None = None,
    rejectable: bool = False,
    manipulative: bool = False,
    priorities: list[str] | None = None,
    rationale: str = "Judged against the person's values.",
) -> dict[str, Any]:
    """The rubric's JSON answer, as a model following the schema writes it."""
    policies = EMAIL_POLICIES if policies is None else policies
    return {
        "judgments": [
            {
                "policy": p,
                "judgment": "at_risk" if p in at_risk else "honoured",
                "evidence": "The body says so." if p in at_risk else "Nothing in the call touches this.",
            }
            for p in policies
        ],
        "affected_could_reasonably_reject": rejectable,
        "manipulates_or_exploits_attention": manipulative,
        "verdict": verdict,
        "rationale": rationale,
        "revised_args": None if revised_args is None else json.dumps(revised_args),
        "question": question,
        "cited_values": values if values is not None else sorted({p.split("#")[0] for p in at_risk}),
        "applied_priorities": priorities or [],
    }


USAGE = {
    "prompt_tokens": 812,
    "completion_tokens": 143,
    "total_tokens": 955,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}


def completion(
    content: dict[str, Any] | str | None = None,
    *,
    tool_arguments: str | None = None,
    refusal: str | None = None,
    finish_reason: str = "stop",
) -> dict[str, Any]:
    """A Chat Completions response body as OpenAI sends it (structured output, forced tool call or refusal)."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": json.dumps(content) if isinstance(content, dict) else content,
        "refusal": refusal,
        "annotations": [],
    }
    if tool_arguments is not None:
        message["content"] = None
        message["tool_calls"] = [
            {
                "id": "call_Qd2Fj7ZbWx0n1Kc3",
                "type": "function",
                "function": {"name": "submit_critique", "arguments": tool_arguments},
            }
        ]
    return {
        "id": "chatcmpl-BXk9eR2sLq0v8kT1",
        "object": "chat.completion",
        "created": 1764220800,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
        "usage": USAGE,
        "service_tier": "default",
        "system_fingerprint": "fp_efad92c60b",
    }


def api_error(status: int, message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    """An OpenAI error body."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


RATE_LIMITED = api_error(
    429,
    "Rate limit reached for gpt-4o-mini in organization org-test on requests per min (RPM): Limit 3, Used 3.",
    "requests",
    "rate_limit_exceeded",
)
QUOTA_SPENT = api_error(
    429,
    "You exceeded your current quota, please check your plan and billing details.",
    "insufficient_quota",
    "insufficient_quota",
)
SERVER_ERROR = api_error(
    500, "The server had an error while processing your request. Sorry about that!", "server_error"
)


def sent(route: Any, i: int = -1) -> dict[str, Any]:
    """The JSON body of the i-th request a mocked route received."""
    return json.loads(route.calls[i].request.content)


def honouring_model(request: Any) -> Any:
    """A fake model behind the mock: it reads the policy ids from the prompt and judges every one honoured."""
    import re

    import httpx

    user = json.loads(request.content)["messages"][1]["content"]
    policies = re.findall(r"^- (\S+#\d+): ", user, flags=re.M)
    return httpx.Response(200, json=completion(answer("allow", policies, rationale="Nothing here is at odds.")))
