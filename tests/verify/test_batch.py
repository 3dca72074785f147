"""One program per tool: lets written in or bound once, and the one-by-one path when the program fails."""

from __future__ import annotations

import pytest

from fsa_guard import Action, Call
from fsa_guard.verify.functions import HistoryIndex


@pytest.fixture
def counted(monkeypatch) -> list[str]:
    """The tool patterns ``count(history, ...)`` was called with, in order."""
    calls: list[str] = []
    original = HistoryIndex.count

    def counting(self, h, tool):
        calls.append(tool)
        return original(self, h, tool)

    monkeypatch.setattr(HistoryIndex, "count", counting)
    return calls


def test_a_let_read_once_is_still_computed_only_when_reached(make_guard, counted):
    g = make_guard(
        """
        let:
          reads: count(history, "read_*")
        norms:
          - id: n
            tools: [t]
            when: action.args.x > 1 && reads > 0
            effect: deny
        """
    )
    assert g.spec.plan("t").batch is not None
    history = [Call("read_a", {}, "")]
    assert g.decide(Action("t", {"x": 0}, history=history)).outcome == "allow"
    assert counted == []
    assert g.decide(Action("t", {"x": 5}, history=history)).outcome == "deny"
    assert counted == ["read_*"]


def test_a_let_read_by_several_norms_and_lets_is_computed_once(make_guard, counted):
    g = make_guard(
        """
        let:
          reads: count(history, "read_*")
          many: reads > 2
        norms:
          - id: a
            tools: [t]
            when: reads > 0
            effect: escalate
          - id: b
            tools: [t]
            when: many || reads == 7
            effect: deny
        budgets:
          - id: per-read
            tools: [t]
            measure: double(reads)
            limit: 100
            window: 1h
        """
    )
    history = [Call("read_a", {}, "")] * 3
    d = g.decide(Action("t", {}, history=history))
    assert d.outcome == "deny" and d.finding_ids() == ["a", "b"]
    assert counted == ["read_*"]


@pytest.mark.parametrize(
    ("let", "when", "args", "fires"),
    [
        # a let named like an argument: action.args.url is a field, not the let
        ("url: \"has(action.args.url) ? action.args.url : ''\"", "url.startsWith('http:')", {"url": "http://a"}, True),
        ("url: \"has(action.args.url) ? action.args.url : ''\"", "url.startsWith('http:')", {}, False),
        # a macro that binds the let's name shadows it there and only there
        ('x: "5"', "[1, 2].exists(x, x == 2) && x == 5", {}, True),
        ('x: "5"', "[1, 2].all(x, x < 5) && x == 4", {}, False),
        # a comment in a let does not swallow the rest of the program
        ('limit: "3 // the most we take\\n"', "action.args.n > limit", {"n": 4}, True),
        # a string that happens to contain the let's name is left alone
        ("name: '\"bob\"'", "action.args.who == name && 'name' != name", {"who": "bob"}, True),
        # a let and a function of the same name
        ('size: "2"', "size(action.args.items) > size", {"items": [1, 2, 3]}, True),
    ],
)
def test_lets_are_written_in_where_they_are_read(make_guard, let, when, args, fires):
    g = make_guard(f"let:\n  {let}\nnorms:\n  - id: n\n    tools: [t]\n    when: {when!r}\n    effect: deny\n")
    assert g.spec.plan("t").batch is not None
    d = g.decide(Action("t", args))
    assert [f.error for f in d.findings] == ([None] if fires else [])
    assert d.outcome == ("deny" if fires else "allow")


def test_when_the_program_fails_each_norm_runs_on_its_own(make_guard):
    # one norm fails at run time: the others still decide, and the failure follows that norm's on_error
    g = make_guard(
        """
        let:
          big: action.args.amount > 100.0
        norms:
          - id: broken
            tools: [t]
            when: action.args.missing > 1
            effect: escalate
            on_error: skip
          - id: big
            tools: [t]
            when: big
            effect: deny
          - id: also-big
            tools: [t]
            when: big && true
            effect: deny
        """
    )
    d = g.decide(Action("t", {"amount": 500.0}))
    assert d.outcome == "deny"
    by_id = {f.id: f for f in d.findings}
    assert set(by_id) == {"broken", "big", "also-big"}
    assert by_id["broken"].effect == "info" and "missing" in (by_id["broken"].error or "")
    assert by_id["big"].error is None
    assert g.decide(Action("t", {"amount": 5.0})).outcome == "allow"


def test_a_norm_that_is_not_boolean_is_named_on_the_one_program_path(make_guard):
    g = make_guard(
        """
        norms:
          - id: number
            tools: [t]
            when: action.args.n + 1
            effect: allow
          - id: fine
            tools: [t]
            when: action.args.n > 1
            effect: escalate
        """
    )
    d = g.decide(Action("t", {"n": 5}))
    by_id = {f.id: f for f in d.findings}
    assert "must be true or false" in (by_id["number"].error or "")
    assert by_id["fine"].effect == "escalate" and by_id["fine"].error is None
    assert d.outcome == "escalate"


def test_a_plan_whose_python_batch_does_not_match_its_norms_skips_none_of_them(make_guard, monkeypatch):
    # a plan put together outside the compiler (dataclasses.replace, as tests do): the Python batch no longer
    # lines up with the norms, so each norm is checked on its own instead of being read as false
    import dataclasses

    g = make_guard(
        """
        norms:
          - id: small
            tools: [t]
            when: action.args.amount > 1.0
            effect: escalate
          - id: big
            tools: [t]
            when: action.args.amount > 100.0
            effect: deny
        budgets:
          - id: spend
            tools: [t]
            measure: action.args.amount
            limit: 1000.0
            window: 1d
        """
    )
    original = g.spec.plan
    assert len(original("t").py_batch) == 4  # two norms, the budget's when and measure
    for stale in ((), original("t").py_batch[1:]):
        monkeypatch.setattr(g.spec, "plan", lambda tool, s=stale: dataclasses.replace(original(tool), py_batch=s))
        d = g.decide(Action("t", {"amount": 500.0}))
        assert (d.outcome, sorted(d.finding_ids())) == ("deny", ["big", "small"]), stale
