"""What the spec's ``critic:`` section decides: failures (on_error), samples, the cache, where the critic
runs, and how layers may change it. HTTP to the provider is mocked with pytest-httpx2."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from critic_fakes import COMPLETIONS, PAY_POLICIES, SPEC, answer, completion, sent

from fsa_guard import Action, Call, Guard, SpecError, load_spec
from fsa_guard.critique.openai import OpenAICritic

EMAIL = Action("send_email", {"to": "sam@example.com", "subject": "Q3", "body": "On target."}, request="Tell Sam")
PAY = Action("pay", {"to": "shop", "amount": 250.0})


def spec_with(tmp_path, critic: str, extends: str | None = None):
    text = SPEC.replace(
        "critic:\n  model: gpt-4o-mini\n  base_url: http://critic.test/v1\n  retries: 2\n  deadline: 20s\n",
        critic,
    )
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


# -- on_error ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("on_error", "outcome", "effect"),
    [
        (None, "escalate", "escalate"),
        ("escalate", "escalate", "escalate"),
        ("deny", "deny", "deny"),
        ("allow", "allow", "allow"),
    ],
)
def test_without_a_critic_on_error_decides(tmp_path, on_error, outcome, effect):
    path = spec_with(tmp_path, f"critic:\n  on_error: {on_error}\n" if on_error else "")
    guard = Guard(load_spec(path))
    assert guard.critic is None
    d = guard.decide(PAY)
    assert d.outcome == outcome
    assert d.finding_ids() == ["weigh-big-payments", "critic-unavailable"]
    assert d.findings[1].effect == effect and d.findings[1].values == ("frugality",)
    assert "set critic.model in the spec" in d.findings[1].message


def test_on_error_covers_a_failing_critic_too(tmp_path, httpx2_mock):
    httpx2_mock.post(COMPLETIONS).respond(200, json=completion("not json at all"))
    path = spec_with(tmp_path, "critic:\n  model: m\n  base_url: http://critic.test/v1\n  on_error: deny\n")
    d = Guard(load_spec(path)).decide(PAY)
    assert d.outcome == "deny" and d.finding_ids() == ["weigh-big-payments", "critic-invalid"]
    assert "so the call is refused" in d.findings[1].message


def test_a_hard_deny_never_asks_the_critic_even_when_failures_allow(tmp_path):
    path = spec_with(tmp_path, "critic:\n  on_error: allow\n")
    d = Guard(load_spec(path)).decide(Action("pay", {"to": "shop", "amount": 5000.0}))
    assert d.outcome == "deny" and "cap-payments" in d.finding_ids()
    assert not any(f.source == "critic" for f in d.findings)


# -- where the critic runs ---------------------------------------------------------------------------------


def test_the_spec_configures_an_openai_compatible_server(tmp_path, httpx2_mock, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    route = httpx2_mock.post("http://localhost:8080/v1/chat/completions").respond(
        200, json=completion(answer("allow", PAY_POLICIES))
    )
    path = spec_with(
        tmp_path,
        "critic:\n  model: qwen2.5-7b-instruct\n  base_url: http://localhost:8080/v1\n  mode: json_object\n"
        "  max_tokens_param: max_tokens\n  max_tokens: 600\n  timeout: 45s\n  retries: 1\n",
    )
    guard = Guard(load_spec(path))
    assert isinstance(guard.critic, OpenAICritic)
    assert guard.critic.timeout == 45.0 and guard.critic.retries == 1
    assert guard.decide(PAY).outcome == "allow"
    body = sent(route)
    assert body["model"] == "qwen2.5-7b-instruct" and body["max_tokens"] == 600
    assert body["response_format"] == {"type": "json_object"}
    assert route.calls[0].request.headers["authorization"] == "Bearer no-key"  # local servers need none


def test_the_key_comes_from_the_variable_the_spec_names(tmp_path, httpx2_mock, monkeypatch):
    monkeypatch.setenv("TEAM_CRITIC_KEY", "sk-team")
    route = httpx2_mock.post("https://api.openai.com/v1/chat/completions").respond(
        200, json=completion(answer("allow", PAY_POLICIES))
    )
    path = spec_with(tmp_path, "critic:\n  model: gpt-4o-mini\n  api_key_env: TEAM_CRITIC_KEY\n")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert Guard(load_spec(path)).decide(PAY).outcome == "allow"
    assert route.calls[0].request.headers["authorization"] == "Bearer sk-team"


def test_the_sdk_environment_variables_work(tmp_path, httpx2_mock, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://vllm.test/v1")
    route = httpx2_mock.post("http://vllm.test/v1/chat/completions").respond(
        200, json=completion(answer("allow", PAY_POLICIES))
    )
    path = spec_with(tmp_path, "critic:\n  model: meta-llama/Llama-3.1-8B-Instruct\n")
    assert Guard(load_spec(path)).decide(PAY).outcome == "allow"
    assert route.calls[0].request.headers["authorization"] == "Bearer sk-env"


def test_a_missing_key_makes_the_critic_unavailable(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("NOT_SET_KEY", raising=False)
    named = spec_with(tmp_path, "critic:\n  model: gpt-4o-mini\n  api_key_env: NOT_SET_KEY\n")
    d = Guard(load_spec(named)).decide(PAY)
    assert d.outcome == "escalate" and d.finding_ids()[-1] == "critic-unavailable"
    assert "NOT_SET_KEY, which is not set" in d.findings[-1].message
    plain = spec_with(tmp_path, "critic:\n  model: gpt-4o-mini\n")
    d = Guard(load_spec(plain)).decide(PAY)
    assert d.finding_ids()[-1] == "critic-unavailable" and "OPENAI_API_KEY" in d.findings[-1].message


def test_a_critic_passed_in_code_wins_over_the_spec(make_guard, httpx2_mock):
    route = httpx2_mock.post(COMPLETIONS).respond(200, json=completion(answer("allow", PAY_POLICIES)))
    guard = make_guard()
    assert guard.critic.identity.endswith("gpt-4o-mini:json_schema")
    assert guard.decide(PAY).outcome == "allow" and route.call_count == 1


def test_a_verdict_that_arrives_after_the_deadline_is_not_used(spec_path):
    import dataclasses
    import time

    from fsa_guard import CritiqueVerdict

    class SlowCritic:
        """A synchronous critic of the user's own that cannot be interrupted."""

        def critique(self, request):
            time.sleep(0.2)
            return CritiqueVerdict("allow", "fine")

        async def acritique(self, request):
            return self.critique(request)

    guard = Guard(load_spec(spec_path), critic=SlowCritic())
    guard.critic_settings = dataclasses.replace(guard.critic_settings, deadline=0.05)
    d = guard.decide(PAY)
    assert d.outcome == "escalate" and d.finding_ids()[-1] == "critic-timeout"
    assert "deadline" in d.explain()


# -- samples -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_samples_that_disagree_escalate(make_guard, httpx2_mock, use_async):
    route = httpx2_mock.post(COMPLETIONS)
    route.side_effect = [
        httpx.Response(200, json=completion(answer("allow", PAY_POLICIES))),
        httpx.Response(200, json=completion(answer("deny", PAY_POLICIES, at_risk=("frugality#1",)))),
        httpx.Response(200, json=completion(answer("allow", PAY_POLICIES))),
    ]
    guard = make_guard("  samples: 3\n")
    d = asyncio.run(guard.adecide(PAY)) if use_async else guard.decide(PAY)
    assert d.outcome == "escalate" and d.finding_ids()[-1] == "critic-disagree"
    assert route.call_count == 3
    assert d.tokens["total"] == 3 * 955


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_every_answered_sample_is_counted_and_a_failed_one_ends_the_asking(make_guard, httpx2_mock, use_async):
    route = httpx2_mock.post(COMPLETIONS)
    route.side_effect = [
        httpx.Response(200, json=completion(answer("deny", PAY_POLICIES, at_risk=("frugality#1",)))),
        httpx.Response(401, json={"error": {"message": "Incorrect API key", "type": "invalid_request_error"}}),
        httpx.Response(200, json=completion(answer("allow", PAY_POLICIES))),
    ]
    d = (
        asyncio.run(make_guard("  samples: 3\n").adecide(PAY))
        if use_async
        else make_guard("  samples: 3\n").decide(PAY)
    )
    assert d.outcome == "escalate" and d.finding_ids()[-1] == "critic-error"
    # the sync path asks one after another and stops at the failure; the async one asked all three at once
    assert route.call_count == (3 if use_async else 2)
    assert d.tokens["total"] == (2 if use_async else 1) * 955  # each paid answer, used or not


def test_a_critique_with_no_active_value_at_stake_fails_closed(tmp_path, httpx2_mock):
    # no route: were the critic asked, the unmocked request would fail as critic-error
    path = spec_with(tmp_path, "critic:\n  model: m\n  base_url: http://critic.test/v1\n")
    text = path.read_text().replace("  - id: frugality\n", "  - id: frugality\n    endorsed: false\n")
    path.write_text(text)
    d = Guard(load_spec(path)).decide(PAY)
    # with nothing to judge against, an "allow" would pass every check: the critic is not asked
    assert d.outcome == "escalate" and d.finding_ids() == ["weigh-big-payments", "critic-unavailable"]
    assert "no active value is at stake for pay" in d.findings[1].message


def test_samples_that_agree_decide(make_guard, httpx2_mock):
    route = httpx2_mock.post(COMPLETIONS).respond(200, json=completion(answer("allow", PAY_POLICIES)))
    d = make_guard("  samples: 2\n").decide(PAY)
    assert d.outcome == "allow" and route.call_count == 2


# -- the cache ---------------------------------------------------------------------------------------------


def test_a_verified_critique_is_reused_and_marked(make_guard, httpx2_mock):
    route = httpx2_mock.post(COMPLETIONS).respond(200, json=completion(answer("allow", PAY_POLICIES)))
    guard = make_guard()
    first, second = guard.decide(PAY), guard.decide(PAY)
    assert route.call_count == 1
    assert not first.critique_cached and first.tokens["total"] == 955
    assert second.critique_cached and second.tokens == {} and second.outcome == "allow"
    assert second.to_dict()["critique_cached"] is True
    assert "cached" in second.findings[-1].message


def test_the_cache_key_holds_the_call_and_its_context(make_guard, httpx2_mock):
    route = httpx2_mock.post(COMPLETIONS).respond(200, json=completion(answer("allow", PAY_POLICIES)))
    guard = make_guard()
    variants = [
        PAY,
        Action("pay", {"to": "shop", "amount": 251.0}),
        Action("pay", {"to": "shop", "amount": 250.0}, request="buy the gift"),
        Action("pay", {"to": "shop", "amount": 250.0}, history=[Call("search", {"q": "gift"}, "3 results")]),
        Action("pay", {"to": "shop", "amount": 250.0}, context={"user": "bob"}),
    ]
    for action in variants:
        guard.decide(action)
    assert route.call_count == len(variants)
    for action in variants:
        assert guard.decide(action).critique_cached
    assert route.call_count == len(variants)


def test_failures_are_not_cached_and_a_zero_ttl_turns_the_cache_off(make_guard, httpx2_mock):
    route = httpx2_mock.post(COMPLETIONS)
    route.side_effect = [
        httpx.Response(200, json=completion("garbage")),
        httpx.Response(200, json=completion(answer("allow", PAY_POLICIES))),
        httpx.Response(200, json=completion(answer("allow", PAY_POLICIES))),
    ]
    guard = make_guard("  cache_ttl: 0s\n")
    assert guard.decide(PAY).outcome == "escalate"
    assert guard.decide(PAY).outcome == "allow"
    assert not guard.decide(PAY).critique_cached
    assert route.call_count == 3


def test_the_cache_expires_after_its_ttl():
    from fsa_guard.critique.base import CritiqueRequest, CritiqueVerdict
    from fsa_guard.critique.cache import CritiqueCache

    now = [0.0]
    cache = CritiqueCache(ttl=60, clock=lambda: now[0])
    key = cache.key(CritiqueRequest(action=PAY, values=()), "critic")
    cache.put(key, CritiqueVerdict("allow", "ok"))
    now[0] = 59.0
    assert cache.get(key) is not None
    now[0] = 60.0
    assert cache.get(key) is None


# -- layering ----------------------------------------------------------------------------------------------


def layered(tmp_path, base: str, person: str):
    (tmp_path / "base.yaml").write_text(SPEC.split("critic:")[0] + base)
    (tmp_path / "person.yaml").write_text(f"fsa_guard: 1\nextends: [base.yaml]\n{person}")
    return tmp_path / "person.yaml"


@pytest.mark.parametrize(
    ("base", "person", "error"),
    [
        ("", "critic:\n  on_error: allow\n", "cannot relax critic.on_error from 'escalate'"),
        ("critic:\n  on_error: deny\n", "critic:\n  on_error: escalate\n", "cannot relax critic.on_error"),
        ("critic:\n  base_url: http://in.house/v1\n", "critic:\n  base_url: http://mine/v1\n", "cannot change"),
        ("critic:\n  samples: 3\n", "critic:\n  samples: 1\n", "cannot lower critic.samples"),
    ],
)
def test_a_later_layer_cannot_loosen_or_move_the_critic(tmp_path, base, person, error):
    with pytest.raises(SpecError) as info:
        load_spec(layered(tmp_path, base, person))
    assert error in str(info.value) and "person.yaml" in str(info.value)


def test_a_later_layer_may_tighten_the_critic(tmp_path):
    spec = load_spec(
        layered(
            tmp_path,
            "critic:\n  on_error: escalate\n  samples: 1\n",
            "critic:\n  on_error: deny\n  samples: 3\n  model: gpt-4o\n",
        )
    )
    assert (spec.critic.on_error, spec.critic.samples, spec.critic.model) == ("deny", 3, "gpt-4o")
    assert Guard(spec).critic_settings.samples == 3


def test_critic_settings_are_part_of_the_digest(tmp_path):
    a = load_spec(spec_with(tmp_path, "critic:\n  on_error: escalate\n")).digest
    b = load_spec(spec_with(tmp_path, "critic:\n  on_error: deny\n")).digest
    assert a != b


@pytest.mark.parametrize(
    ("critic", "key"),
    [
        ("critic:\n  api_key: sk-123\n", "critic.api_key"),
        ("critic:\n  mode: xml\n", "critic.mode"),
        ("critic:\n  deadline: soon\n", "critic.deadline"),
        ("critic:\n  samples: 0\n", "critic.samples"),
        ("critic:\n  on_error: ignore\n", "critic.on_error"),
    ],
)
def test_bad_critic_settings_name_the_line_and_key(tmp_path, critic, key):
    with pytest.raises(SpecError) as info:
        load_spec(spec_with(tmp_path, critic))
    problem = info.value.problems[0]
    assert problem.key.startswith(key) and problem.line is not None


# -- the demo with a critic --------------------------------------------------------------------------------


def test_the_demo_explains_how_to_enable_a_critic_and_uses_one_when_given(httpx2_mock, monkeypatch):
    import io

    from critic_fakes import honouring_model
    from rich.console import Console

    from fsa_guard.demo import run_demo

    offline = io.StringIO()
    decisions = run_demo(Console(file=offline, width=200))
    subscribe = next(d for d in decisions if d.proposed.tool == "subscribe")
    assert subscribe.outcome == "escalate" and "critic-unavailable" in subscribe.finding_ids()
    assert "fsa-guard demo --critic-model gpt-4o-mini" in offline.getvalue()

    route = httpx2_mock.post("http://localhost:11434/v1/chat/completions").mock(side_effect=honouring_model)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    judged = io.StringIO()
    critic = OpenAICritic("qwen2.5", base_url="http://localhost:11434/v1", mode="json_object")
    decisions = run_demo(Console(file=judged, width=200), critic=critic)
    subscribe = next(d for d in decisions if d.proposed.tool == "subscribe")
    assert route.call_count >= 1
    assert "critic-unavailable" not in subscribe.finding_ids() and "critique" in subscribe.finding_ids()
    assert subscribe.tokens["total"] == 955
    assert "the critic judged" in judged.getvalue()


def test_the_linter_warns_when_the_critic_fails_open(tmp_path):
    from fsa_guard import lint_spec

    problems = lint_spec(spec_with(tmp_path, "critic:\n  on_error: allow\n"))
    warning = next(p for p in problems if p.code == "critic-fails-open")
    assert warning.severity == "warning" and warning.key == "critic.on_error" and warning.line is not None
    assert not [p for p in lint_spec(spec_with(tmp_path, "critic:\n  on_error: deny\n")) if p.code.startswith("critic")]
