"""Layering: a later layer may add and tighten, never remove, replace or loosen. And the spec digest."""

from __future__ import annotations

from pathlib import Path

import pytest

from fsa_guard import Action, Guard, SpecError, load_spec

BASE = """
fsa_guard: 1
id: baseline
defaults:
  unknown_tool: escalate
let:
  big: action.args.amount > 100.0
values:
  - id: careful-money
    title: Careful stewardship of money
    attends_to:
      - MOMENTS when a purchase serves a lasting need rather than an impulse
norms:
  - id: big-payments
    description: Big payments need approval.
    tools: [pay, buy]
    when: big
    effect: escalate
    serves: [careful-money]
budgets:
  - id: daily-spend
    tools: [pay]
    measure: action.args.amount
    limit: 1000
    window: 1d
    on_exceed: escalate
"""


@pytest.fixture
def base(write_spec) -> Path:
    return write_spec(BASE, name="baseline.yaml")


def layer(write_spec, body: str) -> Path:
    return write_spec("fsa_guard: 1\nid: alice\nextends: [baseline.yaml]\n" + body.lstrip("\n"), name="alice.yaml")


def rejected(path: Path, base: Path, item_id: str) -> str:
    """Load ``path`` expecting exactly one layering problem; return its message."""
    with pytest.raises(SpecError) as info:
        load_spec(path)
    problems = [p for p in info.value.problems if p.severity == "error"]
    assert len(problems) == 1, [str(p) for p in problems]
    p = problems[0]
    assert p.code.startswith("layer-")
    assert p.file == str(path)  # reported where the offending layer wrote it ...
    assert p.line is not None and p.line >= 4
    assert str(base) in p.message  # ... naming the earlier file
    assert f"'{item_id}'" in p.message or item_id in p.key  # ... and the id
    return p.message


def test_adding_norms_values_and_budgets(write_spec, base):
    alice = layer(
        write_spec,
        """
values:
  - id: tenderness
    title: Tenderness with friends
    attends_to: [MOMENTS of care in what I write to friends]
norms:
  - id: no-crypto
    tools: [buy]
    when: action.args.item == "crypto"
    effect: deny
    serves: [careful-money, tenderness]
budgets:
  - id: messages
    tools: [send_message]
    limit: 20
    window: 1h
""",
    )
    spec = load_spec(alice)
    assert [n.id for n in spec.norms] == ["big-payments", "no-crypto"]
    assert [b.id for b in spec.budgets] == ["daily-spend", "messages"]
    assert set(spec.values) == {"careful-money", "tenderness"}
    assert spec.files == [str(base), str(alice)]
    guard = Guard(spec)
    assert guard.decide(Action("buy", {"item": "crypto", "amount": 5.0})).outcome == "deny"
    assert guard.decide(Action("pay", {"amount": 500.0})).outcome == "escalate"  # the base norm still holds


def test_layers_given_as_several_files_apply_left_to_right(write_spec, base):
    extra = write_spec(
        "fsa_guard: 1\nid: extra\nnorms:\n  - id: big-payments\n    tools: [pay, buy]\n    when: big\n"
        "    effect: deny\n    serves: [careful-money]\n",
        name="extra.yaml",
    )
    spec = load_spec(base, extra)
    assert spec.id == "extra"
    assert spec.files == [str(base), str(extra)]
    assert Guard(spec).decide(Action("pay", {"amount": 500.0})).outcome == "deny"


def test_strengthening_an_effect(write_spec, base):
    alice = layer(
        write_spec,
        """
norms:
  - id: big-payments
    tools: [pay, buy, purchase_*]
    when: big
    effect: deny
    serves: [careful-money]
""",
    )
    spec = load_spec(alice)
    assert [n.norm.effect for n in spec.norms] == ["deny"]
    guard = Guard(spec)
    assert guard.decide(Action("pay", {"amount": 500.0})).outcome == "deny"
    assert guard.decide(Action("purchase_tv", {"amount": 500.0})).outcome == "deny"  # a tool was added


def test_tightening_a_budget(write_spec, base):
    alice = layer(
        write_spec,
        """
budgets:
  - id: daily-spend
    tools: [pay, buy]
    measure: action.args.amount
    limit: 100
    window: 2d
    on_exceed: deny
""",
    )
    (budget,) = load_spec(alice).budgets
    assert budget.budget.limit == 100 and budget.window_s == 2 * 86400 and budget.budget.on_exceed == "deny"


def test_tightening_unknown_tool(write_spec, base):
    alice = layer(write_spec, "defaults:\n  unknown_tool: deny\n")
    spec = load_spec(alice)
    assert spec.unknown_tool == "deny"
    assert Guard(spec).decide(Action("rm_rf", {})).outcome == "deny"


def test_repeating_a_let_unchanged_is_fine(write_spec, base):
    alice = layer(write_spec, "let:\n  big: action.args.amount > 100.0\n")
    assert load_spec(alice).lets.keys() == {"big"}


NORM_CHANGES = {
    "loosen the effect": (
        "tools: [pay, buy]\n    when: big\n    effect: revise\n    revise: {amount: '100.0'}",
        "loosened from 'escalate' to 'revise'",
    ),
    "allow": ("tools: [pay, buy]\n    when: big\n    effect: allow", "loosened from 'escalate' to 'allow'"),
    "change when": ("tools: [pay, buy]\n    when: action.args.amount > 1000.0\n    effect: escalate", "condition"),
    "narrow tools": ("tools: [pay]\n    when: big\n    effect: escalate", "narrowed to fewer tools"),
}


@pytest.mark.parametrize("change", NORM_CHANGES)
def test_loosening_a_norm_is_rejected(write_spec, base, change):
    body, why = NORM_CHANGES[change]
    alice = layer(write_spec, f"norms:\n  - id: big-payments\n    {body}\n    serves: [careful-money]\n")
    message = rejected(alice, base, "big-payments")
    assert why in message


def test_detaching_a_norm_from_its_values_is_rejected(write_spec, base):
    alice = layer(write_spec, "norms:\n  - id: big-payments\n    tools: [pay, buy]\n    when: big\n    effect: deny\n")
    assert "detached" in rejected(alice, base, "big-payments")


BUDGET_CHANGES = {
    "raise the limit": ("limit: 5000\n    window: 1d\n    on_exceed: escalate", "raised from 1000 to 5000"),
    "shorten the window": ("limit: 1000\n    window: 1h\n    on_exceed: escalate", "shorter window"),
}


def test_a_norms_words_stay_unless_a_later_layer_strengthens_it(write_spec, base):
    """The words are what a person approving the call is shown: a later layer cannot soften them."""
    norm = "norms:\n  - id: big-payments\n    tools: [pay, buy]\n    when: big\n    serves: [careful-money]\n"
    alice = layer(write_spec, norm + "    effect: escalate\n    message: This is fine, go ahead\n")
    assert "given other words" in rejected(alice, base, "big-payments")
    alice = layer(write_spec, norm + "    effect: escalate\n")  # repeated without words: the earlier ones stay
    assert load_spec(alice).norms[0].norm.description == "Big payments need approval."
    alice = layer(write_spec, norm + "    effect: deny\n    description: Big payments are not for my agent.\n")
    assert load_spec(alice).norms[0].norm.description == "Big payments are not for my agent."


def test_detaching_a_budget_from_its_values_is_rejected(write_spec, base):
    budget = "budgets:\n  - id: daily-spend\n    tools: [pay]\n    measure: action.args.amount\n    limit: 100\n"
    alice = layer(write_spec, budget + "    window: 1d\n    on_exceed: escalate\n    serves: []\n")
    base.write_text(
        base.read_text().replace("    on_exceed: escalate\n", "    on_exceed: escalate\n    serves: [careful-money]\n")
    )
    assert "detached from the values it serves" in rejected(alice, base, "daily-spend")


@pytest.mark.parametrize("change", BUDGET_CHANGES)
def test_loosening_a_budget_is_rejected(write_spec, base, change):
    body, why = BUDGET_CHANGES[change]
    alice = layer(
        write_spec, f"budgets:\n  - id: daily-spend\n    tools: [pay]\n    measure: action.args.amount\n    {body}\n"
    )
    assert why in rejected(alice, base, "daily-spend")


def test_on_exceed_deny_cannot_become_escalate(write_spec):
    base = write_spec(
        "fsa_guard: 1\nbudgets:\n  - id: b\n    tools: [pay]\n    limit: 3\n    window: 1d\n    on_exceed: deny\n",
        name="baseline.yaml",
    )
    alice = layer(
        write_spec, "budgets:\n  - id: b\n    tools: [pay]\n    limit: 3\n    window: 1d\n    on_exceed: escalate\n"
    )
    assert "on_exceed" in rejected(alice, base, "b")


def test_relaxing_unknown_tool_is_rejected(write_spec, base):
    alice = layer(write_spec, "defaults:\n  unknown_tool: allow\n")
    message = rejected(alice, base, "unknown_tool")
    assert "'escalate'" in message and "'allow'" in message


def test_redefining_a_let_is_rejected(write_spec, base):
    alice = layer(write_spec, "let:\n  big: action.args.amount > 100000.0\n")
    rejected(alice, base, "big")


def test_replacing_a_value_card_is_rejected(write_spec, base):
    alice = layer(
        write_spec,
        "values:\n  - id: careful-money\n    title: Spend freely\n    attends_to: [MOMENTS of joy in buying things]\n",
    )
    rejected(alice, base, "careful-money")
    # repeated as it was, a card replaces nothing (as a repeated norm or let does not)
    alice.write_text(alice.read_text().split("values:")[0] + BASE[BASE.index("values:") : BASE.index("norms:")])
    assert [v.id for v in load_spec(alice).resolved.values] == ["careful-money"]


def test_a_rejected_layer_cannot_be_used(write_spec, base):
    alice = layer(write_spec, "norms:\n  - id: big-payments\n    tools: [pay, buy]\n    when: big\n    effect: allow\n")
    with pytest.raises(SpecError):
        Guard.from_files(alice)


# -- digest --------------------------------------------------------------------------------------------

SPEC_A = """
fsa_guard: 1
id: same
defaults:
  unknown_tool: deny
norms:
  - id: n
    tools: [pay]
    when: action.args.amount > 10.0
    effect: deny
budgets:
  - id: b
    tools: [pay]
    limit: 3
    window: 1h
"""

# The same content with keys in another order and other formatting.
SPEC_B = """
budgets:
- window: 1h
  limit: 3.0
  id: b
  tools: ["pay"]
norms:
- effect: deny
  when: "action.args.amount > 10.0"
  tools: [pay]
  id: n
defaults: {unknown_tool: deny}
id: same
fsa_guard: 1
"""


def test_digest_is_stable_across_file_names_and_key_order(write_spec):
    a = load_spec(write_spec(SPEC_A, name="one.yaml"))
    b = load_spec(write_spec(SPEC_B, name="sub/two.yaml"))
    again = load_spec(write_spec(SPEC_A, name="three.yaml"))
    assert a.digest.startswith("sha256:") and len(a.digest) == len("sha256:") + 64
    assert a.digest == b.digest == again.digest


def test_digest_changes_when_a_norm_changes(write_spec):
    a = load_spec(write_spec(SPEC_A, name="one.yaml"))
    b = load_spec(write_spec(SPEC_A.replace("> 10.0", "> 11.0"), name="two.yaml"))
    c = load_spec(write_spec(SPEC_A.replace("effect: deny", "effect: escalate"), name="three.yaml"))
    assert len({a.digest, b.digest, c.digest}) == 3


def test_digest_is_recorded_in_every_decision(write_spec):
    spec = load_spec(write_spec(SPEC_A))
    d = Guard(spec).decide(Action("pay", {"amount": 1.0}))
    assert d.spec_digest == spec.digest and d.spec_id == "same"


# -- what a later layer cannot reach: unknown tools and the time zone ------------------------------------


def test_a_later_layer_cannot_make_unknown_tools_known(write_spec) -> None:
    write_spec("fsa_guard: 1\nid: org\ndefaults: {unknown_tool: deny}\nnorms: []\n", name="org.yaml")
    person = write_spec(
        """
        fsa_guard: 1
        id: me
        extends: [org.yaml]
        values:
          - id: mine
            title: Everything I do
            attends_to: [MOMENTS of a, SIGNS of b, CHANCES of c]
            tools: ["*"]
        norms:
          - id: allow-shell
            tools: [run_shell]
            effect: allow
        """,
        name="me.yaml",
    )
    d = Guard.from_files(person).decide(Action("run_shell", {"cmd": "rm -rf /"}))
    assert d.outcome == "deny"
    assert d.finding_ids() == ["unknown-tool"]


def test_a_later_layer_that_sets_deny_by_default_counts_its_own_tools(write_spec) -> None:
    write_spec("fsa_guard: 1\nid: org\nnorms: []\n", name="org.yaml")
    person = write_spec(
        """
        fsa_guard: 1
        id: me
        extends: [org.yaml]
        defaults: {unknown_tool: deny}
        norms:
          - id: small-tips
            tools: [tip]
            when: action.args.amount > 20.0
            effect: deny
        """,
        name="me.yaml",
    )
    guard = Guard.from_files(person)
    assert guard.decide(Action("tip", {"amount": 5.0})).outcome == "allow"
    assert guard.decide(Action("other", {})).outcome == "deny"


def test_under_escalate_by_default_a_later_deny_norm_still_denies_an_unknown_tool(write_spec, base) -> None:
    alice = layer(
        write_spec,
        """
norms:
  - id: no-shell
    tools: [run_shell]
    effect: deny
""",
    )
    guard = Guard.from_files(alice)
    d = guard.decide(Action("run_shell", {}))
    assert d.outcome == "deny"
    assert d.finding_ids() == ["unknown-tool", "no-shell"]
    assert guard.decide(Action("other", {})).outcome == "escalate"


def test_a_later_layer_cannot_change_the_time_zone(write_spec) -> None:
    org = write_spec("fsa_guard: 1\nid: org\ndefaults: {timezone: America/New_York}\n", name="org.yaml")
    person = write_spec("fsa_guard: 1\nid: me\nextends: [org.yaml]\ndefaults: {timezone: Asia/Tokyo}\n", name="me.yaml")
    p = rejected(person, org, "timezone")
    assert "America/New_York" in p and "Asia/Tokyo" in p


def test_a_later_layer_may_set_the_time_zone_when_no_earlier_layer_did(write_spec) -> None:
    write_spec("fsa_guard: 1\nid: org\n", name="org.yaml")
    person = write_spec("fsa_guard: 1\nid: me\nextends: [org.yaml]\ndefaults: {timezone: Asia/Tokyo}\n", name="me.yaml")
    assert load_spec(person).zone.key == "Asia/Tokyo"


def test_a_later_layer_may_lower_max_revisions_but_not_raise_it(write_spec) -> None:
    """More rounds would let revisions run that the earlier layer wanted a person to see."""
    org = write_spec("fsa_guard: 1\nid: org\ndefaults: {max_revisions: 1}\n", name="org.yaml")
    person = write_spec("fsa_guard: 1\nid: me\nextends: [org.yaml]\ndefaults: {max_revisions: 3}\n", name="me.yaml")
    assert "cannot raise defaults.max_revisions from 1" in rejected(person, org, "max_revisions")
    person.write_text(person.read_text().replace("3", "0"))
    assert load_spec(person).max_revisions == 0
    write_spec("fsa_guard: 1\nid: org\n", name="org.yaml")  # no earlier layer chose: the default may rise
    person.write_text(person.read_text().replace("0", "5"))
    assert load_spec(person).max_revisions == 5


def test_a_later_layer_cannot_make_a_norm_skip_its_errors(write_spec) -> None:
    base = write_spec(
        "fsa_guard: 1\nid: org\nnorms:\n"
        "  - {id: big, tools: [pay], when: 'action.args.amount > 500.0', effect: deny}\n",
        name="org.yaml",
    )
    top = write_spec(
        "fsa_guard: 1\nid: me\nextends: [org.yaml]\nnorms:\n"
        "  - {id: big, tools: [pay], when: 'action.args.amount > 500.0', effect: deny, on_error: skip}\n",
        name="me.yaml",
    )
    assert "when its condition fails" in rejected(top, base, "big")


def test_making_unknown_tool_stricter_does_not_let_a_layer_add_tools(write_spec) -> None:
    write_spec("fsa_guard: 1\nid: org\ndefaults: {unknown_tool: escalate}\n", name="org.yaml")
    top = write_spec(
        """
        fsa_guard: 1
        id: me
        extends: [org.yaml]
        defaults: {unknown_tool: deny}
        values:
          - id: tidy
            title: A tidy disk
            attends_to: [FILES a, FOLDERS b, SPACES c]
            tools: ["delete_*"]
        """,
        name="me.yaml",
    )
    d = Guard.from_files(top).decide(Action("delete_everything", {"path": "/"}))
    assert d.outcome == "deny" and d.finding_ids() == ["unknown-tool"]
