"""A critic on the OpenAI Chat Completions API, or any server that speaks it (vLLM, Ollama, llama.cpp).

    critic = OpenAICritic(model="gpt-4o-mini")                        # OPENAI_API_KEY from the environment
    critic = OpenAICritic(model="qwen2.5", base_url="http://localhost:11434/v1", mode="json_object")

How the answer is forced into the rubric's shape (``mode``):

- ``json_schema`` (default): structured outputs with the strict schema;
- ``json_object``: JSON mode, with the schema spelt out in the prompt (for servers without
  ``json_schema``; llama.cpp's server answers that with HTTP 500);
- ``tool``: a forced call of a function whose parameters are the schema.

Every answer is read tolerantly and validated (:func:`~fsa_guard.critique.rubric.parse_verdict`).
Retries (tenacity) cover 429, 5xx, timeouts and connection errors, with exponential backoff and jitter
or the server's ``Retry-After``; other 4xx are not retried. The SDK's own retries are off, so one
deadline bounds the whole critique: no attempt starts, and no wait is begun, that would end after it.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Literal

import openai
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    wait_random_exponential,
)

from ..errors import CriticError
from ..spec.model import CriticSettings, parse_window
from .base import CritiqueRequest, CritiqueVerdict
from .rubric import SCHEMA, SCHEMA_NAME, build_messages, parse_verdict

if TYPE_CHECKING:
    import httpx2

__all__ = ["OpenAICritic", "critic_from_settings"]

Mode = Literal["json_schema", "json_object", "tool"]
_TOOL = "submit_critique"
_MAX_RETRY_AFTER = 60.0  # seconds; a longer Retry-After is capped (the deadline usually ends it first)


class OpenAICritic:
    """Judges actions with a chat model through the ``openai`` SDK (sync and async).

    ``model``, ``base_url`` and ``api_key`` default to the SDK's environment variables (``OPENAI_API_KEY``,
    ``OPENAI_BASE_URL``); with a ``base_url`` and no key at all, a placeholder key is sent, as local servers
    need none. ``max_tokens_param`` names the field that caps the answer (``max_tokens`` for servers that
    ignore ``max_completion_tokens``). ``timeout`` bounds one HTTP attempt, ``deadline`` the whole critique,
    ``retries`` the attempts after the first. ``http_client``/``async_http_client`` (``httpx2`` clients)
    and ``sleep``/``asleep`` are there for proxies and tests.
    """

    def __init__(
        self,
        model: str = "gpt-4o-mini",
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        mode: Mode = "json_schema",
        max_tokens: int = 1500,
        max_tokens_param: Literal["max_completion_tokens", "max_tokens"] = "max_completion_tokens",
        temperature: float | None = 0.0,
        timeout: float = 30.0,
        deadline: float = 60.0,
        retries: int = 3,
        http_client: httpx2.Client | None = None,
        async_http_client: httpx2.AsyncClient | None = None,
        sleep: Callable[[float], None] | None = None,
        asleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        if mode not in ("json_schema", "json_object", "tool"):
            raise ValueError(f"mode must be json_schema, json_object or tool, not {mode!r}")
        self.model = model
        self.base_url = base_url
        self.mode: Mode = mode
        self.max_tokens = max_tokens
        self.max_tokens_param = max_tokens_param
        self.temperature = temperature
        self.timeout = timeout
        self.deadline = deadline
        self.retries = retries
        self._api_key = api_key
        self._http_client = http_client
        self._async_http_client = async_http_client
        self._sleep = sleep or time.sleep
        self._asleep = asleep or asyncio.sleep
        self._client: openai.OpenAI | None = None
        self._aclient: openai.AsyncOpenAI | None = None

    @property
    def identity(self) -> str:
        """What distinguishes this critic's judgments (part of the critique cache's key)."""
        return f"openai:{self.base_url or os.environ.get('OPENAI_BASE_URL') or 'default'}:{self.model}:{self.mode}"

    # -- clients are made on first use, so a guard loads even where no key is set yet -----------------

    def _options(self) -> dict[str, Any]:
        key = self._api_key or os.environ.get("OPENAI_API_KEY")
        if not key and (self.base_url or os.environ.get("OPENAI_BASE_URL")):
            key = "no-key"  # local OpenAI-compatible servers ignore the key, but the SDK insists on one
        if not key:
            raise CriticError(
                "no API key for the critic: set OPENAI_API_KEY, or critic.base_url for a local server",
                kind="unavailable",
            )
        return {"api_key": key, "base_url": self.base_url, "max_retries": 0, "timeout": self.timeout}

    def _sync_client(self) -> openai.OpenAI:
        if self._client is None:
            self._client = openai.OpenAI(**self._options(), http_client=self._http_client)
        return self._client

    def _async_client(self) -> openai.AsyncOpenAI:
        if self._aclient is None:
            self._aclient = openai.AsyncOpenAI(**self._options(), http_client=self._async_http_client)
        return self._aclient

    def _params(self, request: CritiqueRequest) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.model,
            "messages": build_messages(request, with_schema=self.mode == "json_object"),
            self.max_tokens_param: self.max_tokens,
        }
        if self.temperature is not None:
            params["temperature"] = self.temperature
        if self.mode == "json_schema":
            params["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": SCHEMA_NAME, "schema": SCHEMA, "strict": True},
            }
        elif self.mode == "json_object":
            params["response_format"] = {"type": "json_object"}
        else:
            params["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": _TOOL,
                        "description": "Submit the critique of the proposed call.",
                        "parameters": SCHEMA,
                        "strict": True,
                    },
                }
            ]
            params["tool_choice"] = {"type": "function", "function": {"name": _TOOL}}
        return params

    # -- judging ----------------------------------------------------------------------------------------

    def critique(self, request: CritiqueRequest) -> CritiqueVerdict:
        """Judge ``request`` (blocking); raises :class:`CriticError` with its ``kind`` on any failure."""
        client = self._sync_client()
        params = self._params(request)
        run = _Run(self, request)
        retrying = Retrying(
            retry=retry_if_exception(_transient),
            wait=run.wait,
            stop=run.stop,
            sleep=self._sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    response = client.chat.completions.create(**params, timeout=run.attempt_timeout())
        except CriticError:
            raise
        except Exception as exc:
            raise run.failure(exc) from exc
        return run.read(response)

    async def acritique(self, request: CritiqueRequest) -> CritiqueVerdict:
        """Judge ``request`` without blocking the event loop; the deadline is enforced as a hard timeout."""
        client = self._async_client()
        params = self._params(request)
        run = _Run(self, request)
        retrying = AsyncRetrying(
            retry=retry_if_exception(_transient),
            wait=run.wait,
            stop=run.stop,
            sleep=self._asleep,
            reraise=True,
        )
        try:
            async with asyncio.timeout(run.left()):
                async for attempt in retrying:
                    with attempt:
                        response = await client.chat.completions.create(**params, timeout=run.attempt_timeout())
        except CriticError:
            raise
        except TimeoutError as exc:
            raise CriticError(
                f"the critic did not answer within its deadline ({run.budget:g}s)", kind="timeout", tokens=run.tokens
            ) from exc
        except Exception as exc:
            raise run.failure(exc) from exc
        return run.read(response)


class _Run:
    """One critique's attempts: its deadline, the waits between attempts, and how it ended."""

    def __init__(self, critic: OpenAICritic, request: CritiqueRequest) -> None:
        self.critic = critic
        own = time.monotonic() + critic.deadline
        self.deadline = own if request.deadline is None else min(own, request.deadline)
        self.budget = max(0.0, self.deadline - time.monotonic())
        self.attempts = 0
        self.out_of_time = False
        self.tokens: dict[str, int] = {}

    def left(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def attempt_timeout(self) -> float:
        left = self.left()
        if left <= 0:
            self.out_of_time = True
            raise CriticError(
                f"the critic did not answer within its deadline ({self.budget:g}s)", kind="timeout", tokens=self.tokens
            )
        self.attempts += 1
        return min(self.critic.timeout, left)

    def wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        after = _retry_after(exc)
        if after is not None:
            return after
        return float(_BACKOFF(state))

    def stop(self, state: RetryCallState) -> bool:
        if state.attempt_number > self.critic.retries:
            return True
        if time.monotonic() + (state.upcoming_sleep or 0.0) >= self.deadline:
            self.out_of_time = True  # waiting would end past the deadline: give up now
            return True
        return False

    def failure(self, exc: Exception) -> CriticError:
        """The CriticError for how the attempts ended."""
        what = _describe(exc)
        if self.out_of_time or (isinstance(exc, openai.APITimeoutError) and self.left() <= 0):
            return CriticError(
                f"the critic did not answer within its deadline ({self.budget:g}s); last: {what}",
                kind="timeout",
                tokens=self.tokens,
            )
        if _transient(exc):
            kind = "timeout" if isinstance(exc, openai.APITimeoutError) else "exhausted"
            return CriticError(
                f"the critic failed after {self.attempts} attempt(s): {what}", kind=kind, tokens=self.tokens
            )
        return CriticError(f"the critic failed: {what}", kind="error", tokens=self.tokens)

    def read(self, response: Any) -> CritiqueVerdict:
        usage = getattr(response, "usage", None)
        if usage is not None:
            for name, field in (
                ("prompt", "prompt_tokens"),
                ("completion", "completion_tokens"),
                ("total", "total_tokens"),
            ):
                n = getattr(usage, field, None)
                if isinstance(n, int):
                    self.tokens[name] = self.tokens.get(name, 0) + n
        choices = getattr(response, "choices", None) or []
        if not choices:
            raise CriticError("the critic's response has no choices", kind="invalid", tokens=self.tokens)
        choice = choices[0]
        message = choice.message
        refusal = getattr(message, "refusal", None)
        if refusal:
            raise CriticError(f"the model refused to judge: {refusal}", kind="refused", tokens=self.tokens)
        if choice.finish_reason == "content_filter":
            raise CriticError("the provider's content filter stopped the critique", kind="refused", tokens=self.tokens)
        text = _answer_text(message, prefer_tool=self.critic.mode == "tool")
        if not text and choice.finish_reason == "length":
            raise CriticError("the critique was cut off at max_tokens", kind="invalid", tokens=self.tokens)
        try:
            return parse_verdict(text, self.tokens)
        except CriticError as exc:
            if choice.finish_reason == "length":
                raise CriticError(
                    f"{exc} (the answer was cut off at max_tokens)", kind="invalid", tokens=self.tokens
                ) from None
            raise


_BACKOFF = wait_random_exponential(multiplier=0.5, max=8.0)  # exponential, with full jitter


def _transient(exc: BaseException) -> bool:
    """Worth another attempt: rate limits, server errors, timeouts and broken connections."""
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return True
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code == 429:
            # a spent quota or billing limit answers 429 too, and waiting does not refill it
            return getattr(exc, "code", None) not in _NOT_A_RATE_LIMIT
        return exc.status_code >= 500
    return False


_NOT_A_RATE_LIMIT = frozenset({"insufficient_quota", "billing_hard_limit_reached"})


def _retry_after(exc: BaseException | None) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms`` or ``retry-after``, seconds or an HTTP date)."""
    if not isinstance(exc, openai.APIStatusError):
        return None
    headers: Mapping[str, str] = exc.response.headers
    try:
        if "retry-after-ms" in headers:
            return min(_MAX_RETRY_AFTER, max(0.0, float(headers["retry-after-ms"]) / 1000))
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            seconds = float(value)
        except ValueError:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        return min(_MAX_RETRY_AFTER, max(0.0, seconds))
    except (ValueError, TypeError, OverflowError):
        return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, openai.APIStatusError):
        body = exc.body if isinstance(exc.body, dict) else None
        detail = (body or {}).get("message") if body else None
        return f"HTTP {exc.status_code}: {detail or exc.message}"
    if isinstance(exc, openai.APITimeoutError):
        return "the request timed out"
    if isinstance(exc, openai.APIConnectionError):
        return f"could not connect ({exc.__cause__ or exc})"
    return f"{type(exc).__name__}: {exc}"


def _answer_text(message: Any, prefer_tool: bool) -> str | None:
    """The answer's JSON text: the forced tool call's arguments or the message content, whichever came."""
    calls = getattr(message, "tool_calls", None) or []
    from_tool = None
    for call in calls:
        function = getattr(call, "function", None)
        if function is not None and getattr(function, "arguments", None):
            from_tool = str(function.arguments)
            break
    content = message.content if isinstance(message.content, str) and message.content.strip() else None
    return (from_tool or content) if prefer_tool else (content or from_tool)


def critic_from_settings(settings: CriticSettings) -> OpenAICritic:
    """The critic a spec's ``critic:`` section describes; raises :class:`CriticError` when its key is missing."""
    api_key = None
    if settings.api_key_env:
        api_key = os.environ.get(settings.api_key_env)
        if not api_key:
            raise CriticError(
                f"critic.api_key_env names {settings.api_key_env}, which is not set in the environment",
                kind="unavailable",
            )
    options: dict[str, Any] = {}
    for name in ("mode", "max_tokens", "max_tokens_param", "temperature", "retries"):
        value = getattr(settings, name)
        if value is not None:
            options[name] = value
    for name in ("timeout", "deadline"):
        value = getattr(settings, name)
        if value is not None:
            options[name] = parse_window(value)
    return OpenAICritic(settings.model or "gpt-4o-mini", base_url=settings.base_url, api_key=api_key, **options)
