"""The value spec file format, as pydantic models. These key names are the contract; keys may be added."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "EFFECT_STRENGTH",
    "ON_ERROR_STRENGTH",
    "UNKNOWN_TOOL_STRENGTH",
    "Budget",
    "CriticSettings",
    "Defaults",
    "EscalationSettings",
    "Norm",
    "Priority",
    "Remember",
    "SpecFile",
    "Storage",
    "ValueCard",
    "parse_window",
]

Effect = Literal["allow", "revise", "critique", "escalate", "deny"]
#: allow < revise < critique < escalate < deny: a later layer may only move a norm rightwards.
EFFECT_STRENGTH: dict[str, int] = {"allow": 0, "revise": 1, "critique": 2, "escalate": 3, "deny": 4}
UNKNOWN_TOOL_STRENGTH: dict[str, int] = {"allow": 0, "escalate": 1, "deny": 2}

Id = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$",
        max_length=128,
        description="An id: letters, digits, '-', '_' or '.', starting with a letter or digit.",
    ),
]
Glob = Annotated[str, Field(min_length=1, description="A tool name or a glob such as 'purchase_*'.")]
Expr = Annotated[str, Field(min_length=1, description="A CEL expression.")]

_WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_LONGEST_WINDOW = 36500 * 86400.0
_LONGEST_ANY = 365000 * 86400.0


def parse_window(text: str) -> float:
    """Seconds in a window like ``30s``, ``15m``, ``1h`` or ``1d``."""
    m = _WINDOW.match(text)
    if not m:
        raise ValueError(f"'{text}' is not a window: write a number and a unit s, m, h or d, e.g. '1d'")
    seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    if seconds <= 0:
        raise ValueError("a window must be longer than zero")
    if seconds > _LONGEST_ANY:  # beyond it, times computed from it leave what clocks and dates can hold
        raise ValueError(f"'{text}' is longer than a window or timeout can be (at most 365000d)")
    return seconds


def _state_window(text: str) -> None:
    seconds = parse_window(text)
    # a rolling window of a fraction of a second counts almost no earlier call, so its limit would never hold
    if seconds < 1:
        raise ValueError(f"'{text}' is too short for a rolling window: give at least 1s")
    if seconds > _LONGEST_WINDOW:  # the stores keep entries (and Redis keys) that long
        raise ValueError(f"'{text}' is longer than a rolling window can be (at most 36500d, a hundred years)")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Defaults(_Strict):
    """What happens when no rule speaks."""

    unknown_tool: Literal["allow", "escalate", "deny"] | None = Field(
        None, description="Decision for a tool no value, norm or budget names. deny = deny-by-default."
    )
    timezone: str | None = Field(None, description="IANA zone for zone-less times in args and history.")
    max_revisions: int | None = Field(
        None, ge=0, le=10, description="How many revise rounds run before the guard escalates (default 2)."
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"'{v}' is not an IANA time zone such as 'UTC' or 'Europe/Berlin'") from None
        return v


class ValueCard(_Strict):
    """Something the person cares about for its own sake, with what they attend to when living by it."""

    id: Id
    title: str = Field(min_length=1, description="A few words the person would use.")
    description: str = Field("", description="One or two sentences in the person's voice.")
    attends_to: list[str] = Field(
        min_length=1, description="3-6 attentional policies: an ALL-CAPS plural noun plus a qualifier."
    )
    tools: list[Glob] = Field(default_factory=list, description="Where this value is at stake (globs).")
    critique: bool = Field(False, description="Ask the critic about calls to these tools.")
    endorsed: bool = Field(True, description="False for an inferred value: loaded, inactive until endorsed.")


class Norm(_Strict):
    """A machine-checked rule over actions."""

    id: Id
    description: str = Field("", description="What the rule says, in the person's words.")
    tools: list[Glob] = Field(min_length=1, description="Tools (globs) the norm applies to.")
    when: Expr = Field("true", description="CEL condition; the norm fires when it holds.")
    effect: Effect
    revise: dict[str, Expr | None] | None = Field(
        None, description="For effect revise: arg name -> CEL expression of its new value (null removes it)."
    )
    serves: list[Id] = Field(default_factory=list, description="Ids of the values this norm protects.")
    on_error: Literal["fire", "skip", "escalate"] | None = Field(
        None,
        description="When `when` fails at run time. Default: deny/escalate norms fire, the others escalate.",
    )
    message: str | None = Field(None, description="What to tell the agent and the person when it fires.")
    human_overridable: bool = Field(
        False,
        description="For effect deny: a person who edits an escalated call may run it past this norm. The agent "
        "never can.",
    )

    @property
    def effective_on_error(self) -> str:
        """``on_error``, or its default: deny and escalate norms fire, the others escalate."""
        return self.on_error or ("fire" if self.effect in ("deny", "escalate") else "escalate")

    def effect_on_error(self) -> str:
        """The effect this norm has when its condition fails at run time."""
        policy = self.effective_on_error
        return self.effect if policy == "fire" else ("escalate" if policy == "escalate" else "allow")

    @model_validator(mode="after")
    def _revise_matches_effect(self) -> Norm:
        if self.effect == "revise" and not self.revise:
            raise ValueError("a norm with effect 'revise' needs a 'revise' map of arg -> CEL expression")
        if self.revise is not None and self.effect != "revise":
            raise ValueError(f"'revise' is only used with effect 'revise' (this norm's effect is {self.effect!r})")
        if self.human_overridable and self.effect != "deny":
            raise ValueError(
                f"'human_overridable' is only used with effect 'deny' (this norm's effect is {self.effect!r}); "
                "a person's approval already answers the other effects"
            )
        return self


class Budget(_Strict):
    """A limit on a measure summed over a rolling window (money per day, messages per hour, ...)."""

    id: Id
    description: str = ""
    tools: list[Glob] = Field(min_length=1)
    when: Expr = Field("true", description="CEL condition: only calls where it holds count.")
    measure: Expr = Field("1", description="CEL expression of what a call uses; 1 counts calls.")
    limit: float = Field(ge=0)
    window: str = Field(description="Rolling window: s, m, h or d, e.g. '1d'.")
    on_exceed: Literal["deny", "escalate"] = "deny"
    serves: list[Id] = Field(default_factory=list)

    @field_validator("window")
    @classmethod
    def _window(cls, v: str) -> str:
        _state_window(v)
        return v

    @property
    def window_seconds(self) -> float:
        """The window in seconds."""
        return parse_window(self.window)


class Remember(_Strict):
    """Something a call that ran acted on, kept for later decisions: ``state.remembered.<id>`` lists them."""

    id: Id
    description: str = ""
    tools: list[Glob] = Field(min_length=1)
    value: Expr = Field(description="CEL expression of what to remember, e.g. action.args.recipient.")
    when: Expr = Field("true", description="CEL condition: only calls where it holds are remembered.")
    window: str | None = Field(
        None, description="Only entities noted within this window are listed (all time if unset)."
    )
    serves: list[Id] = Field(default_factory=list)

    @field_validator("window")
    @classmethod
    def _window(cls, v: str | None) -> str | None:
        if v is not None:
            _state_window(v)
        return v

    @property
    def window_seconds(self) -> float | None:
        """The window in seconds, or None for all time."""
        return None if self.window is None else parse_window(self.window)


_STORAGE_URL = re.compile(r"^[a-z][a-z0-9+.-]*://")


class Storage(_Strict):
    """Where budget state and the audit trail live, by URL (overridden by Guard arguments and environment)."""

    store: str | None = Field(None, description="memory://, sqlite:///path or redis://host:port/db")
    audit: str | None = Field(None, description="memory://, sqlite:///path, jsonl:///path or postgresql://host/db")

    @field_validator("store", "audit")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not _STORAGE_URL.match(v):
            raise ValueError(f"'{v}' is not a URL: write e.g. sqlite:///state.db (relative to this file)")
        return v


ON_ERROR_STRENGTH: dict[str, int] = {"allow": 0, "escalate": 1, "deny": 2}


class CriticSettings(_Strict):
    """The LLM critic: where it runs, how it answers, and what a failure of it means.

    The key itself never goes in a spec: name the environment variable that holds it (``api_key_env``),
    or leave it to the SDK's ``OPENAI_API_KEY``.
    """

    model: str | None = Field(None, description="Chat model name, e.g. gpt-4o-mini (default) or qwen2.5.")
    base_url: str | None = Field(None, description="An OpenAI-compatible server, e.g. http://localhost:11434/v1.")
    api_key_env: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Environment variable holding the API key."
    )
    mode: Literal["json_schema", "json_object", "tool"] | None = Field(
        None, description="How the answer's shape is forced: json_schema (default), json_object or tool."
    )
    max_tokens: int | None = Field(None, ge=64, le=100_000, description="Cap on the answer's tokens (1500).")
    max_tokens_param: Literal["max_completion_tokens", "max_tokens"] | None = Field(
        None, description="The request field for that cap; max_tokens for llama.cpp and older servers."
    )
    temperature: float | None = Field(None, ge=0, le=2, description="Sampling temperature (0).")
    timeout: str | None = Field(None, description="Limit on one HTTP attempt, e.g. '30s'.")
    deadline: str | None = Field(None, description="Limit on a whole critique with its retries, e.g. '60s'.")
    retries: int | None = Field(None, ge=0, le=10, description="Attempts after the first on 429, 5xx, timeouts (3).")
    on_error: Literal["escalate", "deny", "allow"] | None = Field(
        None,
        description="When the critic is missing, times out, fails, refuses or gives an unverifiable verdict. "
        "Default escalate; allow only when written here.",
    )
    samples: int | None = Field(None, ge=1, le=9, description="Critiques per call; they must agree, or it escalates.")
    cache_ttl: str | None = Field(None, description="How long a verified critique is reused, e.g. '15m'; '0s' never.")
    history: int | None = Field(None, ge=0, le=50, description="How many of the latest calls the critic sees (5).")

    @field_validator("timeout", "deadline")
    @classmethod
    def _positive_window(cls, v: str | None) -> str | None:
        if v is not None:
            parse_window(v)
        return v

    @field_validator("cache_ttl")
    @classmethod
    def _ttl(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"\s*0+(\.0*)?\s*[smhd]\s*", v):
            parse_window(v)
        return v


class EscalationSettings(_Strict):
    """How long a question to a person stays open, and what silence means."""

    timeout: str | None = Field(None, description="How long an approval waits for an answer, e.g. '10m' (1h).")
    on_timeout: Literal["deny", "allow"] | None = Field(
        None, description="The answer when nobody answered in time: deny (default); allow only when written here."
    )

    @field_validator("timeout")
    @classmethod
    def _positive_window(cls, v: str | None) -> str | None:
        if v is not None:
            parse_window(v)
        return v


class Priority(_Strict):
    """In this context, the person holds ``prefer`` to be wiser than ``over``."""

    context: str = Field(min_length=1)
    prefer: Id
    over: Id

    @model_validator(mode="after")
    def _two_values(self) -> Priority:
        if self.prefer == self.over:
            raise ValueError(f"a priority weighs two values; this one prefers '{self.prefer}' over itself")
        return self


class SpecFile(_Strict):
    """One value spec file (one layer)."""

    fsa_guard: Literal[1] = Field(description="Format version; 1.")

    @field_validator("fsa_guard", mode="before")
    @classmethod
    def _version_is_a_number(cls, v: Any) -> Any:
        if type(v) is not int:  # true and 1.0 equal 1 in Python, but they are not the version number
            raise ValueError(f"fsa_guard must be the number 1, got {v!r}")
        return v

    id: Id | None = Field(None, description="Name of this spec; defaults to the file name.")
    description: str = ""
    extends: list[str] = Field(default_factory=list, description="Specs beneath this one, relative paths.")
    defaults: Defaults = Field(default_factory=Defaults)
    let: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], Expr] = Field(
        default_factory=dict, description="Named CEL expressions, usable in every expression."
    )
    values: list[ValueCard] = Field(default_factory=list)
    norms: list[Norm] = Field(default_factory=list)
    budgets: list[Budget] = Field(default_factory=list)
    remember: list[Remember] = Field(default_factory=list)
    priorities: list[Priority] = Field(default_factory=list)
    storage: Storage = Field(default_factory=Storage)
    critic: CriticSettings = Field(default_factory=CriticSettings)
    escalation: EscalationSettings = Field(default_factory=EscalationSettings)

    @field_validator("let")
    @classmethod
    def _let_names_are_free(cls, v: dict[str, str]) -> dict[str, str]:
        taken = sorted(set(v) & _RESERVED_NAMES)
        if taken:
            raise ValueError(
                f"let name(s) {', '.join(taken)} would hide a variable or CEL keyword of that name; choose another"
            )
        return v


_RESERVED_NAMES = frozenset(
    {"action", "request", "history", "context", "state", "now", "true", "false", "null", "in", "int", "uint"}
    | {"double", "string", "bool", "bytes", "list", "map", "type", "dyn", "math", "sets", "strings", "optional"}
)
