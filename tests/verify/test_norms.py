"""Norm evaluation: effects, precedence, revision, run-time errors, lets, tools, and the CEL function library."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from fsa_guard import Action, Call, Decision
from fsa_guard.verify.functions import HistoryIndex


def effects(d: Decision) -> list[tuple[str, str]]:
    return [(f.id, f.effect) for f in d.findings]


def one_norm(make_guard, when: str, effect: str = "deny", extra: str = "", tools: str = "[t]", head: str = ""):
    """A guard with one norm ``n`` on tool ``t``."""
    return make_guard(
        head + f"norms:\n  - id: n\n    tools: {tools}\n    when: {when!r}\n    effect: {effect}\n" + extra
    )


def holds(make_guard, when: str, action: Action, head: str = "") -> bool:
    """Whether ``when`` holds for ``action`` (a deny norm fires without error)."""
    d = one_norm(make_guard, when, head=head).decide(action)
    errors = [f.error for f in d.findings if f.error]
    assert not errors, errors
    return d.outcome == "deny"


# -- each effect ---------------------------------------------------------------------------------------


def test_deny(make_guard):
    g = make_guard(
        """
        values:
          - id: careful-money
            title: Careful stewardship of money
            attends_to: [CLARITY about who receives money and why]
        norms:
          - id: no-big
            description: No payments above 100.
            tools: [pay]
            when: action.args.amount > 100.0
            effect: deny
            serves: [careful-money]
        """
    )
    d = g.decide(Action("pay", {"amount": 150.0}))
    assert d.outcome == "deny" and not d.allowed
    (f,) = d.findings
    assert (f.source, f.id, f.effect, f.values, f.error) == ("norm", "no-big", "deny", ("careful-money",), None)
    assert f.message == "No payments above 100."
    ok = g.decide(Action("pay", {"amount": 50.0}))
    assert ok.outcome == "allow" and ok.allowed and ok.findings == ()
    assert ok.action.args == {"amount": 50.0}


def test_message_overrides_description(make_guard):
    g = one_norm(make_guard, "true", extra="    description: d\n    message: Ask me first.\n")
    assert g.decide(Action("t", {})).findings[0].message == "Ask me first."


def test_escalate(make_guard):
    g = one_norm(make_guard, "action.args.amount > 500.0", "escalate")
    d = g.decide(Action("t", {"amount": 600.0}))
    assert d.outcome == "escalate" and not d.allowed
    assert effects(d) == [("n", "escalate")]
    assert g.decide(Action("t", {"amount": 6.0})).outcome == "allow"


def test_revise_replaces_and_removes_args(make_guard):
    g = one_norm(
        make_guard,
        "action.args.amount > 20.0",
        "revise",
        "    revise:\n      amount: '20.0'\n      note: null\n      capped: 'true'\n",
        tools="[tip]",
    )
    proposed = Action("tip", {"amount": 35.0, "note": "thanks!", "to": "Ana"})
    d = g.decide(proposed)
    assert d.outcome == "revise" and d.allowed
    assert dict(d.action.args) == {"amount": 20.0, "to": "Ana", "capped": True}
    assert d.proposed is proposed and d.action.tool == "tip"
    assert ("n", "revise") in effects(d)
    assert "removed note" in d.explain() and "amount from 35.0 to 20.0" in d.explain()


def test_revise_expression_can_use_the_action(make_guard):
    g = one_norm(
        make_guard,
        "action.args.to.endsWith('@corp.example')",
        "revise",
        "    revise:\n      cc: 'action.args.to'\n      to: '\"review@corp.example\"'\n",
    )
    d = g.decide(Action("t", {"to": "bob@corp.example"}))
    assert d.outcome == "revise"
    # the revised action is verified again: it still matches, and revising it again changes nothing new
    assert dict(d.action.args) == {"to": "review@corp.example", "cc": "review@corp.example"}


def test_revision_that_changes_nothing_is_an_allow(make_guard):
    g = one_norm(make_guard, "true", "revise", "    revise: {amount: '20.0'}\n")
    d = g.decide(Action("t", {"amount": 20.0}))
    assert d.outcome == "allow"
    assert dict(d.action.args) == {"amount": 20.0}


def test_critique_without_a_critic_escalates(make_guard):
    g = make_guard(
        """
        values:
          - id: speaking
            title: Speaking for me with care
            attends_to: [WORDS that sound like me]
        norms:
          - id: judge-posts
            tools: [post]
            effect: critique
            serves: [speaking]
        """
    )
    d = g.decide(Action("post", {"text": "hi"}))
    assert d.outcome == "escalate"
    ids = d.finding_ids()
    assert "judge-posts" in ids
    (f,) = [f for f in d.findings if f.id == "critic-unavailable"]
    assert f.source == "critic" and f.effect == "escalate" and f.values == ("speaking",)


def test_value_marked_for_critique_without_critic_escalates(make_guard):
    g = make_guard(
        """
        values:
          - id: careful-money
            title: Careful stewardship of money
            attends_to: [MOMENTS when a purchase serves a lasting need]
            tools: [purchase_*]
            critique: true
          - id: inferred
            title: An inferred value
            attends_to: [THINGS I never endorsed]
            tools: [read_*]
            critique: true
            endorsed: false
        """
    )
    assert g.decide(Action("purchase_book", {})).outcome == "escalate"
    assert "critic-unavailable" in g.decide(Action("purchase_book", {})).finding_ids()
    # an inferred value stays inactive until endorsed
    assert g.decide(Action("read_mail", {})).outcome == "allow"


def test_allow_norm_that_fires_allows(make_guard):
    g = one_norm(make_guard, "true", "allow", head="defaults:\n  unknown_tool: deny\n")
    d = g.decide(Action("t", {}))
    assert d.outcome == "allow"
    assert effects(d) == [("n", "allow")]


# -- precedence ----------------------------------------------------------------------------------------

LADDER = """
norms:
  - id: d
    tools: [pay]
    when: action.args.amount > 100.0
    effect: deny
  - id: e
    tools: [pay]
    when: action.args.amount > 50.0
    effect: escalate
  - id: r
    tools: [pay]
    when: action.args.amount > 10.0
    effect: revise
    revise: {amount: '10.0'}
"""


@pytest.mark.parametrize(
    ("amount", "outcome"),
    [(200.0, "deny"), (70.0, "escalate"), (20.0, "revise"), (5.0, "allow")],
)
def test_deny_beats_escalate_beats_revise(make_guard, amount, outcome):
    d = make_guard(LADDER).decide(Action("pay", {"amount": amount}))
    assert d.outcome == outcome
    if outcome == "deny":
        assert dict(d.action.args) == {"amount": amount}
    if outcome == "escalate":
        # the person is asked about the call that would run: the revision is applied, the escalation stays
        assert dict(d.action.args) == {"amount": 10.0}
        assert d.finding_ids() == ["e", "r"]


def test_deny_beats_critique(make_guard):
    g = make_guard(
        """
        norms:
          - id: c
            tools: [t]
            effect: critique
          - id: d
            tools: [t]
            effect: deny
        """
    )
    d = g.decide(Action("t", {}))
    assert d.outcome == "deny"
    assert "critic-unavailable" not in d.finding_ids()


def test_a_revision_that_would_hit_a_deny_ends_denied(make_guard):
    g = make_guard(
        """
        norms:
          - id: raise
            tools: [pay]
            when: action.args.amount > 10.0
            effect: revise
            revise: {amount: '200.0'}
          - id: no-big
            tools: [pay]
            when: action.args.amount > 100.0
            effect: deny
        """
    )
    d = g.decide(Action("pay", {"amount": 20.0}))
    assert d.outcome == "deny"
    assert "no-big" in d.finding_ids()
    assert not d.allowed


def test_revision_rounds_are_bounded(make_guard):
    g = one_norm(make_guard, "true", "revise", "    revise: {amount: 'action.args.amount + 1.0'}\n")
    d = g.decide(Action("t", {"amount": 1.0}))
    assert d.outcome == "escalate"
    assert d.findings[-1].id == "revision-limit" and d.findings[-1].effect == "escalate"
    assert "n" in d.finding_ids()
    assert dict(d.action.args) == {"amount": 3.0}  # the default: two revise rounds after the first pass


def test_max_revisions_setting(make_guard):
    revise = "    revise: {amount: 'action.args.amount + 1.0'}\n"
    g = one_norm(make_guard, "true", "revise", revise, head="defaults:\n  max_revisions: 0\n")
    d = g.decide(Action("t", {"amount": 1.0}))
    assert d.outcome == "escalate" and d.finding_ids() == ["n", "revision-limit"]


def test_conflicting_revisions_escalate(make_guard):
    g = make_guard(
        """
        norms:
          - id: r1
            tools: [t]
            effect: revise
            revise: {amount: '1.0'}
          - id: r2
            tools: [t]
            effect: revise
            revise: {amount: '2.0'}
        """
    )
    d = g.decide(Action("t", {"amount": 5.0}))
    assert d.outcome == "escalate"
    (f,) = [f for f in d.findings if f.effect == "escalate"]
    assert f.id == "r2" and "r1" in f.message and f.error


def test_agreeing_revisions_combine(make_guard):
    g = make_guard(
        """
        norms:
          - id: r1
            tools: [t]
            effect: revise
            revise: {amount: '1.0', a: '"x"'}
          - id: r2
            tools: [t]
            effect: revise
            revise: {amount: '1.0', b: '"y"'}
        """
    )
    d = g.decide(Action("t", {"amount": 5.0}))
    assert d.outcome == "revise"
    assert dict(d.action.args) == {"amount": 1.0, "a": "x", "b": "y"}


# -- run-time errors -----------------------------------------------------------------------------------

MISSING = "action.args.missing > 1"


@pytest.mark.parametrize(
    ("effect", "outcome", "finding_effect"),
    [
        ("deny", "deny", "deny"),
        ("escalate", "escalate", "escalate"),
        ("revise", "escalate", "escalate"),
        ("critique", "escalate", "escalate"),
        ("allow", "escalate", "escalate"),
    ],
)
def test_runtime_error_default_per_effect(make_guard, effect, outcome, finding_effect):
    extra = "    revise: {x: '1'}\n" if effect == "revise" else ""
    d = one_norm(make_guard, MISSING, effect, extra).decide(Action("t", {"x": 5}))
    assert d.outcome == outcome
    assert d.outcome != "allow"
    (f,) = d.findings
    assert (f.id, f.effect) == ("n", finding_effect)
    assert f.error is not None and "missing" in f.error
    assert "condition failed" in f.message


@pytest.mark.parametrize("effect", ["deny", "escalate", "revise", "critique", "allow"])
def test_on_error_skip_records_and_goes_on(make_guard, effect):
    extra = ("    revise: {x: '1'}\n" if effect == "revise" else "") + "    on_error: skip\n"
    d = one_norm(make_guard, MISSING, effect, extra).decide(Action("t", {"x": 5}))
    assert d.outcome == "allow"
    (f,) = d.findings
    assert f.effect == "info" and f.error is not None


@pytest.mark.parametrize("effect", ["deny", "escalate", "revise", "critique", "allow"])
def test_on_error_escalate(make_guard, effect):
    extra = ("    revise: {x: '1'}\n" if effect == "revise" else "") + "    on_error: escalate\n"
    d = one_norm(make_guard, MISSING, effect, extra).decide(Action("t", {"x": 5}))
    assert d.outcome == "escalate"
    (f,) = d.findings
    assert f.effect == "escalate" and f.error is not None


@pytest.mark.parametrize(
    ("effect", "outcome"),
    [("deny", "deny"), ("escalate", "escalate"), ("critique", "escalate"), ("revise", "revise"), ("allow", "allow")],
)
def test_on_error_fire_acts_as_if_the_condition_held(make_guard, effect, outcome):
    extra = ("    revise: {x: '1'}\n" if effect == "revise" else "") + "    on_error: fire\n"
    d = one_norm(make_guard, MISSING, effect, extra).decide(Action("t", {"x": 5}))
    assert d.outcome == outcome
    assert d.findings[0].error is not None and d.findings[0].effect == effect
    if outcome == "revise":
        assert dict(d.action.args) == {"x": 1}


def test_when_that_is_not_a_boolean_is_an_error(make_guard):
    d = one_norm(make_guard, "action.args.x", "escalate").decide(Action("t", {"x": 5}))
    assert d.outcome == "escalate"
    assert "true or false" in (d.findings[0].error or "")


@pytest.mark.parametrize(
    "args",
    [{"amount": "lots"}, {"amount": None}, {"amount": [1]}, {"amount": {"a": 1}}, {}],
)
def test_wrong_types_never_allow(make_guard, args):
    g = make_guard(
        """
        norms:
          - id: cap
            tools: [pay]
            when: action.args.amount > 100.0
            effect: escalate
        """
    )
    d = g.decide(Action("pay", args))
    assert d.outcome == "escalate"
    assert d.findings[0].error


def test_a_failing_revise_expression_escalates(make_guard):
    d = one_norm(make_guard, "true", "revise", "    revise: {x: 'action.args.nope'}\n").decide(Action("t", {"x": 1}))
    assert d.outcome == "escalate"
    (f,) = d.findings
    assert f.effect == "escalate" and f.error is not None and "revise.x" in f.error
    assert dict(d.action.args) == {"x": 1}


def test_string_where_a_map_was_expected(make_guard):
    d = one_norm(make_guard, 'action.args.meta.owner == "me"').decide(Action("t", {"meta": "text"}))
    assert d.outcome == "deny" and d.findings[0].error


# -- lets ----------------------------------------------------------------------------------------------

LETS = """
let:
  n_reads: count(history, "read_*")
  unused: count(history, "other")
norms:
  - id: a
    tools: [t]
    when: n_reads > 1
    effect: escalate
  - id: b
    tools: [t]
    when: n_reads > 2
    effect: deny
  - id: c
    tools: [u]
    effect: escalate
"""


def test_a_let_used_by_two_norms_is_evaluated_once(make_guard, monkeypatch):
    g = make_guard(LETS)
    calls: list[str] = []
    original = HistoryIndex.count

    def counting(self, h, tool):
        calls.append(tool)
        return original(self, h, tool)

    monkeypatch.setattr(HistoryIndex, "count", counting)
    history = [Call("read_a", {}, ""), Call("read_b", {}, ""), Call("read_c", {}, "")]
    d = g.decide(Action("t", {}, history=history))
    assert d.outcome == "deny" and {"a", "b"} <= set(d.finding_ids())
    assert calls == ["read_*"]  # once, and the unused let never
    calls.clear()
    assert g.decide(Action("u", {}, history=history)).outcome == "escalate"
    assert calls == []  # tool u's norms use no let
    d = g.decide(Action("t", {}, history=history[:2]))
    assert d.outcome == "escalate" and d.finding_ids() == ["a"]


def test_lets_can_use_lets(make_guard):
    g = make_guard(
        """
        let:
          amount: get(action.args, "amount", 0.0)
          big: amount > 100.0
        norms:
          - id: n
            tools: [t]
            when: big
            effect: deny
        """
    )
    assert g.decide(Action("t", {"amount": 500.0})).outcome == "deny"
    assert g.decide(Action("t", {})).outcome == "allow"


def test_let_failure_propagates_to_dependent_norms_only(make_guard):
    g = make_guard(
        """
        let:
          bad: action.args.nope > 1
          worse: bad && true
          good: action.args.x > 1
        norms:
          - id: uses-bad
            tools: [t]
            when: bad
            effect: escalate
          - id: uses-worse
            tools: [t]
            when: worse
            effect: allow
            on_error: skip
          - id: uses-good
            tools: [t]
            when: good
            effect: deny
        """
    )
    d = g.decide(Action("t", {"x": 0}))
    assert d.outcome == "escalate"
    by_id = {f.id: f for f in d.findings}
    assert set(by_id) == {"uses-bad", "uses-worse"}
    assert "let 'bad' failed" in (by_id["uses-bad"].error or "")
    assert "bad" in (by_id["uses-worse"].error or "") and by_id["uses-worse"].effect == "info"
    # the norm on the healthy let still decides
    assert g.decide(Action("t", {"x": 5})).outcome == "deny"


def test_lets_are_computed_lazily_once_and_only_when_reached(make_guard):
    # CEL's || and && absorb an error when the other side decides, and a let behind a false && is never
    # computed at all: neither fails the norm.
    g = make_guard(
        """
        let:
          bad: action.args.nope > 1
        norms:
          - id: short-circuit
            tools: [t]
            when: action.args.x > 100 && bad
            effect: escalate
          - id: absorbed
            tools: [t]
            when: bad || action.args.x == 0
            effect: deny
        """
    )
    d = g.decide(Action("t", {"x": 0}))
    assert d.outcome == "deny"
    assert d.finding_ids() == ["absorbed"]
    assert d.findings[0].error is None
    # x = 5: 'short-circuit' never reaches the let; 'absorbed' does (error || false is an error) and fails closed
    d = g.decide(Action("t", {"x": 5}))
    assert d.finding_ids() == ["absorbed"]
    assert "let 'bad' failed" in (d.findings[0].error or "")
    assert d.outcome == "deny"
    d = g.decide(Action("t", {"x": 500}))  # now the let is reached behind the &&, and fails that norm too
    assert d.finding_ids() == ["short-circuit", "absorbed"]
    assert all("let 'bad' failed" in (f.error or "") for f in d.findings)


def test_a_let_whose_value_is_null_is_usable(make_guard):
    g = make_guard(
        """
        let:
          last: last_output(history, "read")
        norms:
          - id: nothing-read
            tools: [t]
            when: last == null && last == null
            effect: deny
        """
    )
    assert g.decide(Action("t", {})).outcome == "deny"
    assert g.decide(Action("t", {}, history=[{"tool": "read", "args": {}, "output": "x"}])).outcome == "allow"


# -- tools ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("default", "outcome"), [("allow", "allow"), ("escalate", "escalate"), ("deny", "deny")])
def test_unknown_tool(make_guard, default, outcome):
    g = one_norm(make_guard, "true", head=f"defaults:\n  unknown_tool: {default}\n")
    d = g.decide(Action("delete_everything", {"path": "/"}))
    assert d.outcome == outcome
    if default == "allow":
        assert d.findings == ()
    else:
        (f,) = d.findings
        assert (f.source, f.id, f.effect) == ("guard", "unknown-tool", default)
        assert "delete_everything" in f.message


def test_unknown_tool_defaults_to_allow(make_guard):
    assert one_norm(make_guard, "true").decide(Action("other", {})).outcome == "allow"


def test_known_tool_with_silent_norms_is_allowed(make_guard):
    g = make_guard(
        """
        defaults:
          unknown_tool: deny
        values:
          - id: v
            title: T
            attends_to: [MOMENTS of x]
            tools: [read_*]
        norms:
          - id: n
            tools: [pay]
            when: action.args.amount > 100.0
            effect: deny
        budgets:
          - id: b
            tools: [send]
            limit: 10
            window: 1h
        """
    )
    assert g.decide(Action("pay", {"amount": 1.0})).outcome == "allow"
    assert g.decide(Action("read_file", {})).outcome == "allow"  # named by a value
    assert g.decide(Action("send", {})).outcome == "allow"  # named by a budget
    assert g.decide(Action("other", {})).outcome == "deny"


@pytest.mark.parametrize(
    ("tool", "matches"),
    [
        ("purchase_book", True),
        ("purchase_", True),
        ("purchase", False),
        ("Purchase_book", False),
        ("x1", True),
        ("x12", False),
        ("send_money", True),
        ("send_money2", False),
    ],
)
def test_tool_globs(make_guard, tool, matches):
    g = one_norm(make_guard, "true", tools="['purchase_*', 'x?', send_money]")
    assert (g.decide(Action(tool, {})).outcome == "deny") is matches


def test_norms_for_other_tools_are_not_evaluated(make_guard):
    g = make_guard(
        """
        norms:
          - id: broken-for-others
            tools: [other]
            when: action.args.nope > 1
            effect: deny
          - id: mine
            tools: [t]
            when: action.args.x > 1
            effect: deny
        """
    )
    d = g.decide(Action("t", {"x": 0}))
    assert d.outcome == "allow" and d.findings == ()
    plan = g.spec.plan("t")
    assert [n.id for n in plan.norms] == ["mine"]


# -- now -----------------------------------------------------------------------------------------------

NIGHT = "defaults:\n  timezone: Europe/Berlin\n"


def test_now_is_pinned_per_action_and_per_guard(make_guard):
    g = one_norm(make_guard, "hour(now) >= 22", head=NIGHT)  # 22:00 or later in Berlin (UTC+1 in January)
    late = datetime(2025, 1, 15, 21, 30, tzinfo=UTC)
    early = datetime(2025, 1, 15, 20, 30, tzinfo=UTC)
    assert g.decide(Action("t", {}, now=late)).outcome == "deny"
    assert g.decide(Action("t", {}, now=early)).outcome == "allow"
    spec = NIGHT + "norms:\n  - id: n\n    tools: [t]\n    when: hour(now) >= 22\n    effect: deny\n"
    g_late = make_guard(spec, clock=lambda: late)
    assert g_late.decide(Action("t", {})).outcome == "deny"
    assert g_late.decide(Action("t", {}, now=early)).outcome == "allow"  # the action's pin wins


def test_zone_less_now_is_read_in_the_spec_zone(make_guard):
    g = one_norm(make_guard, "hour(now) == 22", head=NIGHT)
    assert g.decide(Action("t", {}, now=datetime(2025, 1, 15, 22, 30))).outcome == "deny"


def test_now_in_a_named_zone(make_guard):
    from zoneinfo import ZoneInfo

    g = one_norm(make_guard, 'now > time("2025-01-15 12:00")', head=NIGHT)
    berlin = ZoneInfo("Europe/Berlin")
    assert g.decide(Action("t", {}, now=datetime(2025, 1, 15, 12, 30, tzinfo=berlin))).outcome == "deny"
    assert g.decide(Action("t", {}, now=datetime(2025, 1, 15, 11, 30, tzinfo=berlin))).outcome == "allow"
    assert not any(f.error for f in g.decide(Action("t", {}, now=datetime(2025, 1, 15, tzinfo=berlin))).findings)


def test_now_can_be_compared_with_timestamps(make_guard):
    g = one_norm(make_guard, 'now - timestamp("2025-01-01T00:00:00Z") > duration("24h")')
    assert g.decide(Action("t", {}, now=datetime(2025, 1, 3, tzinfo=UTC))).outcome == "deny"
    assert g.decide(Action("t", {}, now=datetime(2025, 1, 1, 12, tzinfo=UTC))).outcome == "allow"


# -- time functions ------------------------------------------------------------------------------------

NY = "defaults:\n  timezone: America/New_York\n"
NOON_UTC = datetime(2025, 6, 1, 14, 0, tzinfo=UTC)  # 10:00 in New York (EDT)


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ('time("2025-06-01 09:30") < now', True),  # 09:30 New York is before 10:00 New York
        ('time("2025-06-01 10:30") < now', False),
        ('time("2025-06-01T13:30Z") < now', True),  # a zone in the text wins
        ('time("2025-06-01T10:30+00:00") < now', True),
        ('time("2025-06-01 15:30", "Europe/Berlin") < now', True),  # 13:30 UTC
        ("hour(now) == 10", True),
        ('hour(now, "UTC") == 14', True),
        ('hour("2025-06-01 23:15") == 23', True),
        ('hour("2025-06-01T23:15Z") == 19', True),
        ('minute_of_day("2025-06-01 01:30") == 90', True),
        ("weekday(now) == 7", True),  # 2025-06-01 is a Sunday
        ('local_date(now) == "2025-06-01"', True),
        ('local_date("2025-06-02T02:00Z") == "2025-06-01"', True),
        ('days_between("2025-06-01", "2025-06-11") == 10', True),
        ("day_start(now) < now", True),
        ('day_start(now) == time("2025-06-01")', True),
        ('time("2025-06-02") - time("2025-06-01") == duration("24h")', True),
        ('hours(time("2025-06-01 12:00") - time("2025-06-01 09:00")) == 3.0', True),
    ],
)
def test_time_functions_read_zone_less_times_in_the_spec_zone(make_guard, when, expected):
    assert holds(make_guard, when, Action("t", {}, now=NOON_UTC), head=NY) is expected


def test_time_of_an_arg(make_guard):
    g = one_norm(make_guard, "time(action.args.at) < now", head=NY)
    assert g.decide(Action("t", {"at": "2025-06-01 09:59"}, now=NOON_UTC)).outcome == "deny"
    assert g.decide(Action("t", {"at": "2025-06-01 10:01"}, now=NOON_UTC)).outcome == "allow"
    bad = g.decide(Action("t", {"at": "next tuesday"}, now=NOON_UTC))
    assert bad.outcome == "deny" and bad.findings[0].error


def test_quiet_hours_norm(make_guard):
    g = one_norm(make_guard, "hour(now) >= 22 || hour(now) < 7", tools="[notify]", head=NIGHT)
    at = lambda h: datetime(2025, 7, 1, h, 0, tzinfo=UTC)  # Berlin is UTC+2 in July  # noqa: E731
    assert [g.decide(Action("notify", {}, now=at(h))).outcome for h in (4, 5, 19, 20)] == [
        "deny",
        "allow",
        "allow",
        "deny",
    ]


# -- history functions ---------------------------------------------------------------------------------

HISTORY = [
    {"tool": "read_bill", "args": {"id": "b1"}, "output": '{"iban": "DE12 3456", "amount": 40.5}'},
    {"tool": "read_bill", "args": {"id": "b2"}, "output": '{"iban": "FR99", "amount": 10, "tags": ["x"]}'},
    Call("send_money", {"recipient": "Bob", "amount": 5.0}, "ok"),
    Call("search_web", {"q": "weather"}, "Some TEXT with Account NL01 in it"),
    Call("read_mail", {"folder": "inbox"}, [{"from": "eve@example.com", "subject": "Pay now"}]),
]


def act(**kw) -> Action:
    return Action("t", kw.pop("args", {"to": "Alice Smith"}), request="Please pay Alice Smith 20 EUR", history=HISTORY)


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ('seen(history, "send_money", "recipient", "bob")', True),  # text ignores case
        ('seen(history, "send_money", "recipient", "carol")', False),
        ('seen(history, "send_money", "amount", 5.0)', True),
        ('seen(history, "send_money", "amount", 5)', True),
        ('seen(history, "send_*", "recipient", "Bob")', True),
        ('seen(history, "read_bill", "recipient", "Bob")', False),
        ('last_output(history, "read_bill").iban == "FR99"', True),  # the latest, parsed JSON
        ('last_output(history, "read_bill", {"id": "b1"}).iban == "DE12 3456"', True),
        ('last_output(history, "read_bill", {"id": "b9"}) == null', True),
        ('last_output(history, "nope") == null', True),
        ('last_output(history, "send_money") == "ok"', True),  # text that is not JSON stays text
        ('last_output(history, "read_mail")[0].from == "eve@example.com"', True),  # structured outputs
        ('size(outputs(history, "read_bill")) == 2', True),
        ('outputs(history, "read_bill")[0].amount == 40.5', True),  # oldest first
        ('outputs(history, "read_bill").exists(o, o.amount == 10)', True),
        ('size(outputs(history, "read_bill", {"id": "b2"})) == 1', True),
        ('outputs(history, "read_*")[1].tags == ["x"]', True),
        ('in_outputs(history, "de123456")', True),  # ignores case and spaces
        ('in_outputs(history, "NL01")', True),
        ('in_outputs(history, "nl01", "search_*")', True),
        ('in_outputs(history, "nl01", "read_bill")', False),
        ('in_outputs(history, "GB00")', False),
        ('in_outputs(history, "")', False),
        ('in_outputs(history, "eve@example.com", "read_mail")', True),
        ('count(history, "read_*") == 3', True),
        ('count(history, "*") == 5', True),
        ('count(history, "delete") == 0', True),
        ('calls(history, "send_money")[0].args.amount == 5.0', True),
        ('calls(history, "read_bill")[1].output.iban == "FR99"', True),
        ('size(calls(history, "read_*")) == 3', True),
        ('arg_values(history, "read_bill", "id") == ["b1", "b2"]', True),
        ('arg_values(history, "read_bill", "nope") == []', True),
        ('"US13" in arg_values(history, "send_money", "recipient")', False),
    ],
)
def test_history_functions(make_guard, when, expected):
    assert holds(make_guard, when, act()) is expected


def test_history_functions_on_an_empty_history(make_guard):
    for when, expected in [
        ('seen(history, "a", "b", "c")', False),
        ('last_output(history, "a") == null', True),
        ('count(history, "*") == 0', True),
        ('in_outputs(history, "x")', False),
    ]:
        assert holds(make_guard, when, Action("t", {})) is expected, when


def test_data_flow_norm_over_request_and_history(make_guard):
    g = make_guard(
        """
        norms:
          - id: known-payee
            tools: [send_money]
            when: >-
              !mentions(request, action.args.recipient)
              && !in_outputs(history, action.args.recipient, "read_bill")
            effect: deny
        """
    )

    def pay(to: str) -> str:
        return g.decide(
            Action("send_money", {"recipient": to}, request="pay the bill from my landlord", history=HISTORY)
        ).outcome

    assert pay("FR99") == "allow"  # in the bill the person asked to pay
    assert pay("DE 12 3456") == "allow"
    assert pay("landlord") == "allow"  # named in the request
    assert pay("NL01") == "deny"  # only in a web page: an injected account
    assert pay("GB00") == "deny"


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ('history.exists(c, c.tool == "search_web")', True),
        ('history.exists(c, c.tool == "delete")', False),
        ("history.size() == 5", True),
        ("size(history) == 5", True),
        ("history[0].output.amount == 40.5", True),  # JSON outputs are parsed for raw history too
        ('history[2].output == "ok"', True),
        ('size(history.filter(c, c.tool == "read_bill")) == 2', True),
        ('history.all(c, c.tool != "")', True),
        ('history.map(c, c.tool)[3] == "search_web"', True),
    ],
)
def test_raw_history_expressions(make_guard, when, expected):
    assert holds(make_guard, when, act()) is expected


def test_raw_history_and_functions_together(make_guard):
    assert holds(make_guard, 'history.size() == count(history, "*")', act())


def test_history_accepts_calls_and_mappings(make_guard):
    g = one_norm(make_guard, 'seen(history, "a", "k", 1) && seen(history, "b", "k", 2)')
    mixed = [Call("a", {"k": 1}, None), {"tool": "b", "args": {"k": 2}}]
    assert g.decide(Action("t", {}, history=mixed)).outcome == "deny"


# -- other functions -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ('mentions(request, "ALICE  smith")', True),
        ('mentions(request, "alicesmith")', True),
        ("mentions(request, action.args.to)", True),
        ('mentions(request, "bob")', False),
        ('mentions(request, "")', False),
        ("mentions(request, 20)", True),
        ('mentions("", "x")', False),
        ('get(action.args, "missing", 7) == 7', True),
        ('get(action.args, "to", "x") == "Alice Smith"', True),
        ('get(action.args, "missing") == null', True),
        ("get([1, 2], 1, 0) == 2", True),
        ("get([1, 2], 5, 0) == 0", True),
        ('get("not a map", "k", 3) == 3', True),
        ('glob(action.tool, "t*")', True),
        ('glob(action.tool, "x*")', False),
        ('action.tool == "t"', True),
        ('request.contains("Alice")', True),
        ("max([1, 5, 3]) == 5", True),
        ("math.greatest(1, 5) == 5", True),
        ("has(action.args.to) && !has(action.args.cc)", True),
        # extensions named like a builtin: the builtin covers text, the extension lists and maps
        ('["secret", "x"].contains("secret")', True),
        ('["secret", "x"].contains("public")', False),
        ('{"a": 1}.contains("a")', True),
        ('action.args.to.contains("Smith")', True),
        ('sets.contains(["secret", "x"], ["secret"])', True),
        ('sets.contains(["x"], ["secret", "x"])', False),
        ('bool("true") && !bool("False")', True),
    ],
)
def test_other_functions(make_guard, when, expected):
    assert holds(make_guard, when, act()) is expected


def test_context_variable(make_guard):
    g = one_norm(make_guard, 'get(context, "role", "") != "admin"')
    assert g.decide(Action("t", {}, context={"role": "admin"})).outcome == "allow"
    assert g.decide(Action("t", {}, context={"role": "intern"})).outcome == "deny"
    assert g.decide(Action("t", {})).outcome == "deny"


def test_state_budgets_usage(make_guard):
    g = make_guard(
        """
        norms:
          - id: slow-down
            tools: [send]
            when: state.budgets["msgs"].used >= 2.0
            effect: escalate
          - id: remaining
            tools: [check]
            when: state.budgets["msgs"].remaining == 3.0 && state.budgets["msgs"].limit == 5.0
            effect: deny
        budgets:
          - id: msgs
            tools: [send]
            limit: 5
            window: 1h
        """
    )
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    outcomes = []
    for i in range(3):
        d = g.decide(Action("send", {}, now=t0 + timedelta(minutes=i)))
        outcomes.append(d.outcome)
        g.report(d, ok=True)
    assert outcomes == ["allow", "allow", "escalate"]
    assert g.decide(Action("check", {}, now=t0 + timedelta(minutes=5))).outcome == "deny"
    # an hour later the window has moved on
    assert g.decide(Action("send", {}, now=t0 + timedelta(minutes=62))).outcome == "allow"


# -- malformed actions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "action",
    [
        Action("t", ["amount", 5]),  # type: ignore[arg-type]
        Action("t", "amount=5"),  # type: ignore[arg-type]
        Action("t", None),  # type: ignore[arg-type]
        Action("t", {1: 2}),  # type: ignore[dict-item]
        Action(5, {}),  # type: ignore[arg-type]
        Action(None, {}),  # type: ignore[arg-type]
        Action("", {}),
        Action("t", {"amount": {1, 2}}),
        Action("t", {"amount": object()}),
        Action("t", {"nested": {"deep": [1, {2, 3}]}}),
    ],
    ids=repr,
)
def test_malformed_actions_are_denied(make_guard, action):
    g = one_norm(make_guard, "get(action.args, 'amount', 0) == 1000", "escalate")
    d = g.decide(action)
    assert d.outcome == "deny"
    (f,) = d.findings
    assert (f.source, f.id, f.effect) == ("schema", "malformed-action", "deny")


@pytest.mark.parametrize("history", [[42], 0, 7, None, False])
def test_malformed_history_is_denied(make_guard, history):
    # (an empty history is indexed once for all decisions: what is not a list or tuple must not pass for empty)
    g = one_norm(make_guard, 'count(history, "x") > 5', "escalate")
    d = g.decide(Action("t", {}, history=history))  # type: ignore[arg-type]
    assert d.outcome == "deny" and d.finding_ids() == ["malformed-action"]


def test_decisions_without_history_and_with_it_take_turns(make_guard):
    g = one_norm(make_guard, 'count(history, "read_*") > 1', "escalate")
    read = Call("read_file", {"path": "a"}, "x")
    for history in ([], (), [read, read], [], [read], ()):
        expected = "escalate" if len(history) > 1 else "allow"
        assert g.decide(Action("t", {}, history=history)).outcome == expected, history


def test_ints_and_doubles_compare(make_guard):
    g = one_norm(make_guard, "action.args.amount > 100.0")
    assert g.decide(Action("t", {"amount": 500})).outcome == "deny"
    assert g.decide(Action("t", {"amount": 5})).outcome == "allow"


def test_offset_zone_datetime_in_args(make_guard):
    g = one_norm(make_guard, "action.args.at < now")
    at = datetime(2025, 1, 1, tzinfo=timezone(timedelta(hours=5)))
    assert g.decide(Action("t", {"at": at}, now=datetime(2025, 1, 1, tzinfo=UTC))).outcome == "deny"


def test_a_let_built_on_a_null_let(make_guard):
    g = make_guard(
        """
        let:
          invoice: last_output(history, "get_invoice")
          amount: 'invoice == null ? -1.0 : double(invoice.amount)'
        norms:
          - id: amount-matches
            tools: [pay]
            when: action.args.amount != amount
            effect: escalate
        """
    )
    assert g.decide(Action("pay", {"amount": 5.0})).outcome == "escalate"
    paid = Action("pay", {"amount": 5.0}, history=[{"tool": "get_invoice", "args": {}, "output": {"amount": 5.0}}])
    d = g.decide(paid)
    assert d.outcome == "allow", d.explain()


def test_map_methods_on_args_and_context_see_the_whole_map(make_guard):
    g = make_guard(
        """
        norms:
          - id: no-secret-args
            tools: [post]
            when: 'action.args.exists(k, k.startsWith("secret"))'
            effect: deny
          - id: few-args
            tools: [post]
            when: action.args.size() > 3
            effect: deny
          - id: untrusted-context
            tools: [upload]
            when: 'context.exists(k, k == "untrusted")'
            effect: deny
        """
    )
    assert g.decide(Action("post", {"url": "x", "secret_token": "t"})).finding_ids() == ["no-secret-args"]
    assert g.decide(Action("post", {"a": 1, "b": 2, "c": 3, "d": 4})).finding_ids() == ["few-args"]
    assert g.decide(Action("upload", {}, context={"untrusted": True})).outcome == "deny"
    assert g.decide(Action("post", {"url": "x"})).outcome == "allow"


@pytest.mark.parametrize(
    ("when", "args", "outcome"),
    [
        # a raw string ending in a backslash still ends at its quote: `secret` is seen
        (
            'action.args.path.startsWith(r"C:\\Windows\\") || has(action.args.secret)',
            {"path": "D:/x", "secret": 1},
            "deny",
        ),
        # a macro variable named like a root variable does not hide the root's other uses
        (
            'history.exists(action, action.tool == "read") && get(action.args, "attachment", "") != ""',
            {"attachment": "secrets.txt"},
            "deny",
        ),
        # a comment mentioning a macro does not either
        ("// history.exists(action, ...)\nhas(action.args.secret)", {"secret": 1}, "deny"),
        # patterns that Python's re reads differently keep CEL's own matches
        ('action.args.text.matches("[[:cntrl:]]")', {"text": "ok\x1b[2J"}, "deny"),
        ('action.args.text.matches("^[a-z]+$")', {"text": "abc\n"}, "allow"),
    ],
)
def test_text_rewrites_keep_cel_meaning(make_guard, when, args, outcome):
    g = make_guard(
        f"""
norms:
  - id: n
    tools: [t]
    when: {json.dumps(when)}
    effect: deny
  - id: other
    tools: [t]
    when: action.args.path == "x"
    effect: escalate
    on_error: skip
"""
    )
    d = g.decide(Action("t", args, history=[{"tool": "read", "args": {}, "output": "k"}]))
    assert d.outcome == outcome, d.explain()


def test_a_revision_that_only_changes_a_number_s_spelling_is_no_change_but_true_is_not_1(make_guard):
    g = make_guard(
        """
        norms:
          - {id: to-int, tools: [a], when: 'true', effect: revise, revise: {n: 'int(action.args.n)'}}
          - {id: to-bool, tools: [b], when: 'true', effect: revise, revise: {n: 'true'}}
        """
    )
    assert g.decide(Action("a", {"n": 0.0})).outcome == "allow"  # 0 and 0.0 are the same number
    d = g.decide(Action("b", {"n": 1}))
    assert d.outcome == "revise" and d.action.args["n"] is True


@pytest.mark.parametrize("python", [True, False], ids=["python", "cel-package"])
def test_a_negated_expression_loads_and_decides(make_guard, monkeypatch, python):
    # unary minus is CEL's '-_' operator: it was once taken for an unknown function and refused at load
    from fsa_guard.verify import engine

    monkeypatch.setattr(engine, "PYTHON_EVAL", python)
    g = make_guard(
        """
        norms:
          - id: big
            tools: [t]
            when: -action.args.amount < -500.0
            effect: deny
        """
    )
    assert [g.decide(Action("t", {"amount": a})).outcome for a in (100.0, 600.0)] == ["allow", "deny"]
