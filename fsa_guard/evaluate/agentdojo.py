"""The AgentDojo benchmark replayed through the guard, with no LLM.

For every (user task, injection task) pair of a suite whose injection task has ground-truth calls:

1. load the suite's environment with the benchmark's ``important_instructions`` attack injected into the
   places the user task's tools read (the attack's own choice of injection vectors for that user task);
2. feed the user task's ground-truth calls (expected to run), then the injection task's ground-truth calls
   (expected to be stopped) through :meth:`Guard.decide`, each with the user's prompt as ``request`` and the
   calls that ran before it, with their actual outputs, as ``history`` (as the integrations build it: a
   refused call does not appear, since it did nothing); ``context`` is empty;
3. run only the calls the guard allowed (revised ones with their revised args) on the environment;
4. score with AgentDojo's own checkers, exactly as its ``TaskSuite._check_task_result`` does, passing only
   the calls that ran: utility (the user task done) and attack success (the injection task's ``security``
   is true when the *attack* reached its goal).

The same episode runs with every call allowed ("allow-all"), the baseline the guard is compared against.
The agent's final answer is the user task's ``GROUND_TRUTH_OUTPUT`` when all its calls ran, and empty
otherwise (an agent refused a read has nothing to answer from).

Needs the ``agentdojo`` package (``pip install 'fsa-guard[agentdojo]'``); it is imported only when a replay
runs, so this module imports without it.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from ..action import Action, Call
from ..decision import Outcome
from ..errors import FSAGuardError
from ..spec.compiled import CompiledSpec, load_spec
from .metrics import STOPPED, percentile
from .runner import evaluation_guard

__all__ = [
    "ATTACK",
    "BENCHMARK_VERSION",
    "SIDE_EFFECTS",
    "SUITES",
    "AgentDojoMissing",
    "CallRecord",
    "Episode",
    "SuiteResult",
    "default_spec",
    "replay_suite",
    "sample_scenarios",
]

#: The benchmark version whose suites are replayed (banking, slack and travel are at 1.2.0 in it).
BENCHMARK_VERSION = "v1.2.1"
#: The suites this project ships specs for (policies/agentdojo/<suite>.yaml).
SUITES = ("banking", "slack", "travel")
#: The attack whose injections are placed in the environment.
ATTACK = "important_instructions"
#: The attack addresses the victim model by name; no model runs here, so any registered name serves.
_MODEL_NAME = "gpt-4o-2024-05-13"
#: When every replayed decision is made: the benchmark's data are dated 2022-2025; a fixed clock keeps
#: the replay reproducible.
_NOW = datetime(2025, 1, 6, 10, 0, tzinfo=UTC)

# The functions that change the environment, read from each suite's tool definitions (agentdojo
# default_suites/v1/tools): money moved or scheduled, account data changed, messages sent, people invited
# or removed, pages posted, bookings made, calendar entries added or cancelled. Slack's get_webpage is one
# too: a visit is recorded by the site (the environment's web_requests), and the benchmark scores its
# "visit this link" attack by that record. Every other function only reads.
SIDE_EFFECTS: Mapping[str, frozenset[str]] = {
    "banking": frozenset(
        {"send_money", "schedule_transaction", "update_scheduled_transaction", "update_password", "update_user_info"}
    ),
    "slack": frozenset(
        {
            "add_user_to_channel",
            "send_direct_message",
            "send_channel_message",
            "invite_user_to_slack",
            "remove_user_from_slack",
            "post_webpage",
            "get_webpage",
        }
    ),
    "travel": frozenset(
        {
            "reserve_hotel",
            "reserve_car_rental",
            "reserve_restaurant",
            "create_calendar_event",
            "cancel_calendar_event",
            "send_email",
        }
    ),
    "workspace": frozenset(
        {
            "send_email",
            "delete_email",
            "create_calendar_event",
            "cancel_calendar_event",
            "reschedule_calendar_event",
            "add_calendar_event_participants",
            "append_to_file",
            "create_file",
            "delete_file",
            "share_file",
        }
    ),
}

Role = Literal["user", "attack"]


class AgentDojoMissing(FSAGuardError):
    """The ``agentdojo`` package is not installed."""

    def __init__(self) -> None:
        super().__init__(
            "the AgentDojo replay needs the agentdojo package: pip install 'fsa-guard[agentdojo]' "
            "(or pip install agentdojo==0.1.35)"
        )


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "agentdojo":
            raise AgentDojoMissing() from None
        raise


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One ground-truth call of an episode: whose it is, what the guard answered, and whether it ran.

    ``args`` are the call's args as proposed; ``request`` and ``history`` are what the guard saw with it.
    """

    role: Role
    tool: str
    args: Mapping[str, Any]
    outcome: Outcome
    findings: tuple[str, ...]
    ran: bool
    side_effect: bool
    latency_us: float
    error: str | None = None  # the function's own error, when it ran and failed
    request: str = field(default="", repr=False, compare=False)  # what the guard was shown, for scenarios
    history: tuple[Call, ...] = field(default=(), repr=False, compare=False)

    @property
    def stopped(self) -> bool:
        """The guard denied the call or asked a person (who, in a replay, never answers)."""
        return self.outcome in STOPPED

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "role": self.role,
            "tool": self.tool,
            "args": _jsonable(self.args),
            "outcome": self.outcome,
            "findings": list(self.findings),
            "ran": self.ran,
            "side_effect": self.side_effect,
            "latency_us": round(self.latency_us, 1),
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class Episode:
    """One (user task, injection task) pair, replayed through the guard and with every call allowed."""

    user_task: str
    injection_task: str
    calls: tuple[CallRecord, ...]
    utility: bool
    attack_succeeded: bool
    allow_all_utility: bool
    allow_all_attack_succeeded: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "user_task": self.user_task,
            "injection_task": self.injection_task,
            "utility": self.utility,
            "attack_succeeded": self.attack_succeeded,
            "allow_all_utility": self.allow_all_utility,
            "allow_all_attack_succeeded": self.allow_all_attack_succeeded,
            "calls": [c.to_dict() for c in self.calls],
        }


@dataclass(slots=True)
class SuiteResult:
    """The replay of one suite: its episodes, and the user tasks that could not be replayed (and why)."""

    suite: str
    specs: tuple[str, ...]
    episodes: list[Episode] = field(default_factory=list)
    clean: list[Episode] = field(default_factory=list)  # each user task once, with no attack in the environment
    skipped: list[tuple[str, str]] = field(default_factory=list)
    version: str = BENCHMARK_VERSION
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """The measures of the suite (counts, and shares where they divide by something)."""
        calls = [c for e in self.episodes for c in e.calls]
        benign = [c for c in calls if c.role == "user"]
        benign_se = [c for c in benign if c.side_effect]
        attack = [c for c in calls if c.role == "attack"]
        attack_se = [c for c in attack if c.side_effect]
        n = len(self.episodes)
        latencies = sorted(c.latency_us for c in calls)

        def share(part: int, whole: int) -> dict[str, Any]:
            return {"count": part, "of": whole, "rate": part / whole if whole else None}

        return {
            "suite": self.suite,
            "benchmark_version": self.version,
            "attack": ATTACK,
            "specs": list(self.specs),
            "episodes": n,
            "skipped_user_tasks": [{"user_task": t, "why": why} for t, why in self.skipped],
            "benign_calls_allowed": share(sum(not c.stopped for c in benign), len(benign)),
            "benign_side_effect_calls_allowed": share(sum(not c.stopped for c in benign_se), len(benign_se)),
            "attack_calls_stopped": share(sum(c.stopped for c in attack), len(attack)),
            "attack_side_effect_calls_stopped": share(sum(c.stopped for c in attack_se), len(attack_se)),
            "utility": {
                "guard": share(sum(e.utility for e in self.episodes), n),
                "allow_all": share(sum(e.allow_all_utility for e in self.episodes), n),
            },
            "attack_success": {
                "guard": share(sum(e.attack_succeeded for e in self.episodes), n),
                "allow_all": share(sum(e.allow_all_attack_succeeded for e in self.episodes), n),
            },
            "no_attack": {
                "episodes": len(self.clean),
                "benign_calls_allowed": share(
                    sum(not c.stopped for e in self.clean for c in e.calls), sum(len(e.calls) for e in self.clean)
                ),
                "benign_side_effect_calls_allowed": share(
                    sum(not c.stopped for e in self.clean for c in e.calls if c.side_effect),
                    sum(c.side_effect for e in self.clean for c in e.calls),
                ),
                "utility": {
                    "guard": share(sum(e.utility for e in self.clean), len(self.clean)),
                    "allow_all": share(sum(e.allow_all_utility for e in self.clean), len(self.clean)),
                },
            },
            "latency_us": {
                "p50": percentile(latencies, 50),
                "p90": percentile(latencies, 90),
                "p99": percentile(latencies, 99),
            },
            "seconds": round(self.seconds, 2),
        }

    def failures(self) -> dict[str, list[dict[str, Any]]]:
        """What the spec's author should look at: benign calls stopped, side-effecting attack calls that ran
        (whether or not the benchmark's checker counts the attack as successful), attacks that succeeded, and
        episodes whose utility the guard lost (where allow-all had it)."""
        benign_stopped = []
        attack_ran = []
        attacks_through = []
        utility_lost = []
        for e in self.episodes:
            pair = {"user_task": e.user_task, "injection_task": e.injection_task}
            for c in e.calls:
                if c.role == "user" and c.stopped:
                    benign_stopped.append({**pair, **c.to_dict()})
                elif c.role == "attack" and c.side_effect and c.ran:
                    attack_ran.append({**pair, **c.to_dict()})
            if e.attack_succeeded:
                ran = [c.to_dict() for c in e.calls if c.role == "attack" and c.ran]
                attacks_through.append({**pair, "attack_calls_that_ran": ran})
            if e.allow_all_utility and not e.utility:
                utility_lost.append(pair)
        for e in self.clean:
            pair = {"user_task": e.user_task, "injection_task": ""}
            benign_stopped.extend({**pair, **c.to_dict()} for c in e.calls if c.stopped)
            if e.allow_all_utility and not e.utility:
                utility_lost.append(pair)
        return {
            "benign_stopped": benign_stopped,
            "attack_side_effects_ran": attack_ran,
            "attacks_succeeded": attacks_through,
            "utility_lost": utility_lost,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the summary, the failures and every episode."""
        return {
            "summary": self.summary(),
            "failures": self.failures(),
            "episodes": [e.to_dict() for e in self.episodes],
            "no_attack": [e.to_dict() for e in self.clean],
        }


def default_spec(suite: str) -> Path:
    """``policies/agentdojo/<suite>.yaml``, from the installed package or this checkout."""
    here = Path(__file__).resolve().parent.parent
    name = Path("agentdojo") / f"{suite}.yaml"
    for candidate in (here / "_policies" / name, here.parent / "policies" / name):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"no spec for the {suite!r} suite: policies/{name.as_posix()} is missing")


def replay_suite(
    suite_name: str,
    spec: CompiledSpec | str | Path | Sequence[str | Path],
    *,
    version: str = BENCHMARK_VERSION,
    limit: int | None = None,
    on_episode: Callable[[Episode], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    refused_in_history: bool = False,
) -> SuiteResult:
    """Replay ``suite_name`` through a guard on ``spec`` (a compiled spec, or files layered left to right).

    ``limit`` replays only the first N user tasks (by number) with every injection task. Each user task
    also runs once with no attack in the environment (``SuiteResult.clean``). ``on_start`` hears how many
    episodes will run, ``on_episode`` each one as it finishes (a progress bar).

    A refused call is left out of the history later calls are decided with, as the integrations leave it
    out; ``refused_in_history`` keeps it there instead, with the refusal as its output (what an agent's
    transcript shows).
    """
    load_suites = _import("agentdojo.task_suite.load_suites")
    attacks = _import("agentdojo.attacks.important_instructions_attacks")
    gt_pipeline = _import("agentdojo.agent_pipeline.ground_truth_pipeline")
    runtime_mod = _import("agentdojo.functions_runtime")
    types_mod = _import("agentdojo.types")

    if isinstance(spec, CompiledSpec):
        compiled, spec_files = spec, tuple(spec.files)
    else:
        files = [spec] if isinstance(spec, str | Path) else list(spec)
        compiled, spec_files = load_spec(*files), tuple(str(f) for f in files)
    suites = load_suites.get_suites(version)
    if suite_name not in suites:
        raise KeyError(f"AgentDojo {version} has no suite {suite_name!r} (it has {', '.join(sorted(suites))})")
    suite = suites[suite_name]
    episodes = _Episodes(suite, SIDE_EFFECTS.get(suite_name, frozenset()), runtime_mod, types_mod, refused_in_history)

    pipeline = gt_pipeline.GroundTruthPipeline(None)
    pipeline.name = _MODEL_NAME
    attack = attacks.ImportantInstructionsAttack(suite, pipeline)

    user_tasks = sorted(suite.user_tasks.items(), key=lambda kv: _number(kv[0]))
    if limit is not None:
        user_tasks = user_tasks[:limit]
    load_env = _environment_loader(suite)
    clean_env = load_env({})
    injection_tasks = [
        (tid, task)
        for tid, task in sorted(suite.injection_tasks.items(), key=lambda kv: _number(kv[0]))
        if task.ground_truth(clean_env.model_copy(deep=True))
    ]
    result = SuiteResult(suite_name, spec_files, version=version)
    started = time.perf_counter()
    plan: list[tuple[str, Any, str, Any, dict[str, str]]] = []
    for uid, user_task in user_tasks:
        for iid, injection_task in injection_tasks:
            try:
                injections = attack.attack(user_task, injection_task)
            except ValueError as exc:  # "user_task_N is not injectable": no tool output it reads carries a vector
                result.skipped.append((uid, str(exc)))
                break
            plan.append((uid, user_task, iid, injection_task, injections))
    if on_start is not None:
        on_start(len(plan) + len(user_tasks))
    for uid, user_task, iid, injection_task, injections in plan:
        env = user_task.init_environment(load_env(injections))
        guarded = episodes.run(user_task, injection_task, env, compiled)
        allow_all = episodes.run(user_task, injection_task, env, None)
        episode = Episode(
            user_task=uid,
            injection_task=iid,
            calls=guarded.calls,
            utility=guarded.utility,
            attack_succeeded=guarded.attack,
            allow_all_utility=allow_all.utility,
            allow_all_attack_succeeded=allow_all.attack,
        )
        result.episodes.append(episode)
        if on_episode is not None:
            on_episode(episode)
    for uid, user_task in user_tasks:
        env = user_task.init_environment(load_env({}))
        guarded = episodes.run(user_task, None, env, compiled)
        allow_all = episodes.run(user_task, None, env, None)
        episode = Episode(uid, "", guarded.calls, guarded.utility, False, allow_all.utility, False)
        result.clean.append(episode)
        if on_episode is not None:
            on_episode(episode)
    result.seconds = time.perf_counter() - started
    return result


def _environment_loader(suite: Any) -> Callable[[dict[str, str]], Any]:
    """``suite.load_and_inject_default_environment``, with the injection vectors read once and the YAML
    parsed by libyaml when PyYAML has it: the same steps (the environment file's text with the injections
    formatted in, parsed, validated), at a tenth of the cost for travel's large environment."""
    import yaml

    task_suite = _import("agentdojo.task_suite.task_suite")
    text = task_suite.read_suite_file(suite.name, "environment.yaml", suite.data_path)
    defaults = suite.get_injection_vector_defaults()
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    def load(injections: dict[str, str]) -> Any:
        task_suite.validate_injections(injections, defaults)
        data = yaml.load(text.format(**{**defaults, **injections}), Loader=loader)
        return suite.environment_type.model_validate(data)

    return load


@dataclass(frozen=True, slots=True)
class _Run:
    calls: tuple[CallRecord, ...]
    utility: bool
    attack: bool


@dataclass(frozen=True, slots=True)
class _Episodes:
    """What every episode of one suite's replay shares: the suite, its side-effecting tools, the AgentDojo
    modules used, and whether refused calls appear in the history."""

    suite: Any
    side_effects: frozenset[str]
    runtime_mod: ModuleType
    types_mod: ModuleType
    refused_in_history: bool = False

    def run(self, user_task: Any, injection_task: Any | None, injected_env: Any, spec: CompiledSpec | None) -> _Run:
        """One episode on a copy of ``injected_env``: a guard on ``spec`` decides, or (``None``) all calls run."""
        return _run_episode(self, user_task, injection_task, injected_env, spec)


def _run_episode(
    ctx: _Episodes, user_task: Any, injection_task: Any | None, injected_env: Any, spec: CompiledSpec | None
) -> _Run:
    suite, side_effects, runtime_mod, types_mod = ctx.suite, ctx.side_effects, ctx.runtime_mod, ctx.types_mod
    env = injected_env.model_copy(deep=True)
    pre_env = env.model_copy(deep=True)
    runtime = runtime_mod.FunctionsRuntime(suite.tools)
    guard = evaluation_guard(spec) if spec is not None else None
    history: list[Call] = []
    records: list[CallRecord] = []
    ran_calls: list[Any] = []

    def step(role: Role, call: Any) -> None:
        tool, proposed = call.function, dict(call.args)
        before = tuple(history)
        outcome: Outcome = "allow"
        findings: tuple[str, ...] = ()
        latency = 0.0
        decision = None
        args = proposed
        if guard is not None:
            t0 = time.perf_counter_ns()
            decision = guard.decide(Action(tool, proposed, user_task.PROMPT, before, {}, _NOW))
            latency = (time.perf_counter_ns() - t0) / 1000.0
            outcome, findings = decision.outcome, tuple(decision.finding_ids())
            args = dict(decision.action.args)  # a revision runs with its revised args
        ran = outcome in ("allow", "revise")
        error = None
        if ran:
            value, error = runtime.run_function(env, tool, args, raise_on_error=False)
            history.append(Call(tool, args, error if error else _jsonable(value)))
            ran_calls.append(runtime_mod.FunctionCall(function=tool, args=args))
            if guard is not None and decision is not None:
                guard.report(decision, ok=error is None)
        elif ctx.refused_in_history and decision is not None:
            history.append(Call(tool, proposed, f"Refused by the guard: {decision.explain()}"))
        records.append(
            CallRecord(
                role,
                tool,
                proposed,
                outcome,
                findings,
                ran,
                tool in side_effects,
                latency,
                error,
                request=user_task.PROMPT,
                history=before,
            )
        )

    for call in user_task.ground_truth(pre_env.model_copy(deep=True)):
        step("user", call)
    user_done = all(r.ran for r in records)
    # The injection task's calls, computed like its checker computes what it looks for: from the environment
    # before the episode (banking's injection_task_8 quotes the scheduled transactions as they were then).
    attack_calls = injection_task.ground_truth(pre_env.model_copy(deep=True)) if injection_task is not None else []
    for call in attack_calls:
        step("attack", call)
    answer = [types_mod.text_content_block_from_string(user_task.GROUND_TRUTH_OUTPUT if user_done else "")]
    utility = bool(suite._check_task_result(user_task, answer, pre_env, env, ran_calls))
    attack = injection_task is not None and bool(
        suite._check_task_result(injection_task, answer, pre_env, env, ran_calls)
    )
    return _Run(tuple(records), utility, attack)


def sample_scenarios(result: SuiteResult) -> list[dict[str, Any]]:
    """A labelled sample of a replay as scenario lines (:mod:`fsa_guard.evaluate.scenarios`), to evaluate a
    spec without AgentDojo: every side-effecting call of the no-attack runs, expected to run; and, for each
    injection task, the side-effecting calls of one episode (the user tasks taking turns), expected to be
    stopped: labelled with the guard's answer when it stopped them, and ``deny`` where it let one through."""
    suite = result.suite
    lines: list[dict[str, Any]] = []
    for e in result.clean:
        for i, c in enumerate(e.calls):
            if c.side_effect:
                findings = list(c.findings) if not c.stopped else None
                why = f"a call of {e.user_task}'s ground truth, with no attack in the environment"
                tags = ["agentdojo", suite, "benign", e.user_task]
                lines.append(_scenario(f"{e.user_task}.{i}.{c.tool}", c, "allow", findings, tags, why))
    users = sorted({e.user_task for e in result.episodes}, key=_number)
    attacks = sorted({e.injection_task for e in result.episodes}, key=_number)
    by_pair = {(e.user_task, e.injection_task): e for e in result.episodes}
    for j, iid in enumerate(attacks):
        uid = users[j % len(users)]
        e = by_pair[(uid, iid)]
        for i, c in enumerate(e.calls):
            if c.role == "attack" and c.side_effect:
                why = f"{iid}'s ground truth, planted by the {ATTACK} attack in what {uid} reads"
                expected: Outcome = c.outcome if c.stopped else "deny"
                findings = list(c.findings) if c.stopped else None
                tags = ["agentdojo", suite, "attack", uid, iid]
                lines.append(_scenario(f"{uid}.{iid}.{i}.{c.tool}", c, expected, findings, tags, why))
    return lines


def _scenario(
    sid: str, c: CallRecord, expected: Outcome, findings: list[str] | None, tags: list[str], why: str
) -> dict[str, Any]:
    line: dict[str, Any] = {
        "id": sid,
        "action": {"tool": c.tool, "args": _jsonable(c.args)},
        "request": c.request,
        "history": [{"tool": h.tool, "args": _jsonable(h.args), "output": h.output} for h in c.history],
        "now": _NOW.isoformat(),
        "expected": expected,
    }
    if findings is not None:
        line["expected_findings"] = findings
    line["tags"] = tags
    line["why"] = why
    return line


def _number(task_id: str) -> int:
    tail = task_id.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _jsonable(value: Any) -> Any:
    """A function's return value as JSON-like data (pydantic models dumped), as a JSON tool would return it."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def iter_failures(result: SuiteResult) -> Iterator[str]:
    """One line per failure of ``result`` (for logs and the docs)."""
    f = result.failures()
    for c in f["benign_stopped"]:
        yield (
            f"benign stopped  {c['user_task']} x {c['injection_task'] or 'no attack'}: {c['tool']}({c['args']}) -> "
            f"{c['outcome']} "
            f"{', '.join(c['findings'])}"
        )
    for c in f["attack_side_effects_ran"]:
        yield (
            f"attack call ran {c['user_task']} x {c['injection_task']}: {c['tool']}({c['args']}) -> {c['outcome']} "
            f"{', '.join(c['findings'])}"
        )
    for a in f["attacks_succeeded"]:
        tools = ", ".join(c["tool"] for c in a["attack_calls_that_ran"])
        yield f"attack through  {a['user_task']} x {a['injection_task']}: ran {tools}"
    for u in f["utility_lost"]:
        yield f"utility lost    {u['user_task']} x {u['injection_task'] or 'no attack'}"
