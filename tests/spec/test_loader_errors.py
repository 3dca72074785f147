"""Every kind of loader error is reported with the file, line and key where it is, collected together."""

from __future__ import annotations

from pathlib import Path

import pytest

from fsa_guard import Problem, SpecError, check_spec, load_spec


def problems_of(*paths: Path) -> list[Problem]:
    with pytest.raises(SpecError) as info:
        load_spec(*paths)
    problems = info.value.problems
    assert problems, "a SpecError must say what is wrong"
    assert str(info.value)  # the message lists the problems
    return problems


def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


def where(p: Problem) -> tuple[str, int | None, str]:
    return (p.file, p.line, p.key)


NORM_HEAD = """\
fsa_guard: 1
norms:
  - id: n
    tools: [pay]
    effect: deny
"""


def test_valid_spec_loads(write_spec):
    path = write_spec(NORM_HEAD + "    when: action.args.amount > 10.0\n")
    spec = load_spec(path)
    assert [n.id for n in spec.norms] == ["n"]
    compiled, problems = check_spec(path)
    assert compiled is not None and problems == []


def test_yaml_syntax_error(write_spec):
    path = write_spec(
        """
        fsa_guard: 1
        norms:
          - id: n
            tools: [pay
        """
    )
    p = only(problems_of(path))
    assert p.file == str(path)
    assert p.code == "yaml"
    assert "YAML syntax error" in p.message
    assert p.line == 4  # the unclosed flow list runs into the end of the file: its last line


def test_yaml_syntax_error_line_in_the_middle(write_spec):
    path = write_spec(
        """
        fsa_guard: 1
        id: a
        description: "unterminated
        norms: []
        """
    )
    p = only(problems_of(path))
    assert p.code == "yaml" and p.file == str(path)
    assert p.line is not None and p.line >= 3


def test_duplicate_yaml_key(write_spec):
    path = write_spec(
        """
        fsa_guard: 1
        norms:
          - id: n
            tools: [pay]
            effect: deny
            effect: allow
        """
    )
    p = only(problems_of(path))
    assert where(p) == (str(path), 6, "norms[0].effect")
    assert "duplicate key 'effect'" in p.message


def test_unknown_top_level_key_with_hint(write_spec):
    path = write_spec("fsa_guard: 1\nid: a\nnrms: []\n")
    p = only(problems_of(path))
    assert where(p) == (str(path), 3, "nrms")
    assert p.message == "unknown key 'nrms'"
    assert p.hint == "did you mean 'norms'?"


def test_unknown_key_inside_a_norm_with_hint(write_spec):
    path = write_spec(NORM_HEAD + "    whn: action.args.amount > 1.0\n")
    p = only(problems_of(path))
    assert where(p) == (str(path), 6, "norms[0].whn")
    assert p.hint == "did you mean 'when'?"


@pytest.mark.parametrize(
    ("body", "key", "hint"),
    [
        ("critic:\n  on_eror: deny\n", "critic.on_eror", "did you mean 'on_error'?"),
        ("escalation:\n  timout: 10m\n", "escalation.timout", "did you mean 'timeout'?"),
        ("storage:\n  stor: sqlite:///x.db\n", "storage.stor", "did you mean 'store'?"),
        (
            "remember:\n  - {id: p, tools: [t], value: action.tool, wndow: 1d}\n",
            "remember[0].wndow",
            "did you mean 'window'?",
        ),
    ],
)
def test_unknown_key_in_a_section_is_hinted_from_that_section(write_spec, body, key, hint):
    path = write_spec("fsa_guard: 1\n" + body)
    p = only(problems_of(path))
    assert (p.key, p.hint) == (key, hint)


@pytest.mark.parametrize(
    ("body", "line", "hint"),
    [
        ("norms:\n\t- id: n\n", 3, "YAML indents with spaces, not tabs"),
        ("norms:\n  - id: n\n    tools: [t]\n    when: !paid_before\n", 5, "quote an expression that starts with '!'"),
        ("norms:\n  - id: n\n    tools: [*]\n", 4, "quote a glob that starts with '*'"),
        ('norms:\n  - id: n\n    tools: [t]\n    when: "a" in context.roles\n', 5, "starts with a quote whole"),
        ("id: a\n---\nid: b\n", 3, "a spec is one YAML document"),
    ],
    ids=["tab", "bang", "star", "quote", "documents"],
)
def test_a_yaml_mistake_says_how_to_fix_it(write_spec, body, line, hint):
    path = write_spec("fsa_guard: 1\n" + body)
    p = only(problems_of(path))
    assert (p.code, p.line) == ("yaml", line) and p.hint is not None and hint in p.hint


def test_an_expression_written_as_a_number_or_bare_text_says_how_to_quote_it(write_spec):
    head = "norms:\n  - id: n\n    tools: [t]\n    effect: revise\n    revise: "
    p = only(problems_of(write_spec("fsa_guard: 1\n" + head + "{amount: 20}\n")))
    assert p.key == "norms[0].revise.amount" and p.hint is not None and "write '20'" in p.hint
    p = only(problems_of(write_spec("fsa_guard: 1\n" + head + "{note: capped}\n")))
    assert p.key == "norms[0].revise.note" and p.hint is not None and """text is quoted: '"capped"'""" in p.hint


@pytest.mark.parametrize("version", ["true", "1.0", "'1'"])
def test_the_version_is_the_number_one(write_spec, version):
    p = only(problems_of(write_spec(f"fsa_guard: {version}\nid: s\n")))
    assert p.key == "fsa_guard" and ("must be the number 1" in p.message or "Input should be 1" in p.message)


def test_unknown_key_without_close_match_lists_allowed_keys(write_spec):
    path = write_spec(NORM_HEAD + "    zzzzzz: 1\n")
    p = only(problems_of(path))
    assert where(p) == (str(path), 6, "norms[0].zzzzzz")
    assert p.hint is not None and "allowed keys" in p.hint and "when" in p.hint


def test_wrong_type(write_spec):
    path = write_spec(
        """
        fsa_guard: 1
        norms:
          - id: n
            tools: pay
            effect: deny
        """
    )
    p = only(problems_of(path))
    assert where(p) == (str(path), 4, "norms[0].tools")
    assert "list" in p.message


def test_wrong_type_of_budget_limit(write_spec):
    path = write_spec(
        """
        fsa_guard: 1
        budgets:
          - id: b
            tools: [pay]
            limit: lots
            window: 1d
        """
    )
    p = only(problems_of(path))
    assert where(p) == (str(path), 5, "budgets[0].limit")


def test_missing_required_key(write_spec):
    path = write_spec(
        """
        fsa_guard: 1
        norms:
          - id: n
            tools: [pay]
        """
    )
    p = only(problems_of(path))
    assert where(p) == (str(path), 3, "norms[0]")
    assert p.message == "missing required key 'effect'"


def test_missing_format_version(write_spec):
    path = write_spec("id: a\nnorms: []\n")
    p = only(problems_of(path))
    assert p.file == str(path)
    assert "fsa_guard" in p.message


def test_bad_effect_value(write_spec):
    path = write_spec(
        """
        fsa_guard: 1
        norms:
          - id: n
            tools: [pay]
            effect: block
        """
    )
    p = only(problems_of(path))
    assert where(p) == (str(path), 5, "norms[0].effect")
    assert "'deny'" in p.message and "block" in p.message


@pytest.mark.parametrize("window", ["1w", "0s", "soon", "-1h", "0.0001s", "0.5s", "36501d", "1" * 400 + "d"])
def test_bad_window(write_spec, window):
    path = write_spec(
        f"""
        fsa_guard: 1
        budgets:
          - id: b
            tools: [pay]
            limit: 3
            window: "{window}"
        """
    )
    p = only(problems_of(path))
    assert where(p) == (str(path), 6, "budgets[0].window")
    # where it is wrong, it says what to write instead
    if window.endswith("s") and window[0] == "0" and window != "0s":
        assert "give at least 1s" in p.message
    elif window.endswith("d") and window[0] != "-":
        assert "at most 36500" in p.message


def test_only_rolling_windows_are_capped_at_a_hundred_years(write_spec):
    path = write_spec("fsa_guard: 1\nescalation:\n  timeout: 40000d\n")
    assert load_spec(path).escalation.timeout == "40000d"
    # but no timeout so long that the times computed from it leave what dates can hold
    p = only(problems_of(write_spec("fsa_guard: 1\nescalation:\n  timeout: 1000000000d\n")))
    assert p.key == "escalation.timeout" and "at most 365000d" in p.message


def test_remembered_entities_need_a_window_of_a_second_or_more(write_spec):
    path = write_spec(
        """
        fsa_guard: 1
        remember:
          - {id: payees, tools: [pay], value: "action.args.to", window: 0.2s}
          - {id: payees-1s, tools: [pay], value: "action.args.to", window: 1s}
        """
    )
    p = only(problems_of(path))
    assert where(p) == (str(path), 3, "remember[0].window") and "at least 1s" in p.message


def test_bad_timezone(write_spec):
    path = write_spec(
        """
        fsa_guard: 1
        defaults:
          unknown_tool: deny
          timezone: Mars/Olympus
        """
    )
    p = only(problems_of(path))
    assert where(p) == (str(path), 4, "defaults.timezone")
    assert "IANA" in p.message


def test_effect_revise_without_revise_map(write_spec):
    path = write_spec(
        """
        fsa_guard: 1
        norms:
          - id: n
            tools: [tip]
            effect: revise
        """
    )
    p = only(problems_of(path))
    assert where(p) == (str(path), 3, "norms[0]")
    assert "needs a 'revise' map" in p.message


def test_revise_map_without_effect_revise(write_spec):
    path = write_spec(NORM_HEAD + "    revise: {amount: '20.0'}\n")
    p = only(problems_of(path))
    assert where(p) == (str(path), 3, "norms[0]")
    assert "only used with effect 'revise'" in p.message


# -- CEL ---------------------------------------------------------------------------------------------


def cel_problem(write_spec, when: str, prefix: str = "") -> tuple[Path, Problem]:
    """A spec whose only norm has ``when``; the `when` line is line 6 plus the lines of ``prefix``."""
    path = write_spec("fsa_guard: 1\n" + prefix + NORM_HEAD.split("\n", 1)[1] + f"    when: '{when}'\n")
    p = only(problems_of(path))
    assert p.code == "cel"
    return path, p


def test_cel_syntax_error(write_spec):
    path, p = cel_problem(write_spec, "action.args.amount >")
    assert where(p) == (str(path), 6, "norms[0].when")
    assert "syntax" in p.message.lower()


def test_unknown_variable_with_hint(write_spec):
    path, p = cel_problem(write_spec, "actoin.args.amount > 1.0")
    assert where(p) == (str(path), 6, "norms[0].when")
    assert "actoin" in p.message
    assert p.hint == "did you mean 'action'?"


def test_unknown_let_name_with_hint(write_spec):
    prefix = "let:\n  big_payment: action.args.amount > 100.0\n"
    path, p = cel_problem(write_spec, "big_paymnet", prefix)
    assert where(p) == (str(path), 8, "norms[0].when")
    assert "big_paymnet" in p.message
    assert p.hint == "did you mean 'big_payment'?"


def test_unknown_function_with_hint(write_spec):
    path, p = cel_problem(write_spec, 'mention(request, "x")')
    assert where(p) == (str(path), 6, "norms[0].when")
    assert "unknown function 'mention'" in p.message
    assert p.hint == "did you mean 'mentions'?"


def test_unknown_action_field(write_spec):
    path, p = cel_problem(write_spec, "action.amount > 500.0")
    assert where(p) == (str(path), 6, "norms[0].when")
    assert "'action' has no field 'amount'" in p.message
    assert p.hint is not None and "action.args.amount" in p.hint


@pytest.mark.parametrize(
    "expr",
    [
        'seen(history, "send_money", "recipient")',
        'count(history, "a", "b")',
        "last_output(history)",
        'in_outputs(history, "x", "y", {}, "z")',
    ],
)
def test_wrong_argument_count_for_history_function(write_spec, expr):
    path, p = cel_problem(write_spec, expr)
    assert where(p) == (str(path), 6, "norms[0].when")
    assert "arguments" in p.message
    assert p.hint == "history functions take history first"


@pytest.mark.parametrize(
    ("expr", "got"),
    [
        ('!in_outputs(calls(history, "read_email").filter(c, c.args.x == 1), action.args.to)', "'calls(history, "),
        ('count([{"tool": "x", "args": {}}], "x") == 1', '\'[{"tool": "x", "args": {}}]\''),
        ('count(context.h, "x") == 1', "'context.h'"),
        ('history.count("x") > 0', "a method call (write count(history, ...))"),
    ],
)
def test_a_history_function_given_another_list_is_refused(write_spec, expr, got):
    # it reads the run's whole history whatever it is given: a narrowed list would be silently widened (fail open)
    path, p = cel_problem(write_spec, expr)
    assert where(p) == (str(path), 6, "norms[0].when")
    assert "its first argument must be history, got " + got in p.message
    assert p.hint is not None and "exists(c, mentions(c.output" in p.hint


@pytest.mark.parametrize(
    ("expr", "message", "hint"),
    [
        (
            'hour(now, "Europe/Berln") >= 22',
            "hour(): 'Europe/Berln' is not a time zone",
            "did you mean 'Europe/Berlin'?",
        ),
        ('weekday(now, "Mars/Olympus") > 5', "weekday(): 'Mars/Olympus' is not a time zone", "an IANA name"),
        ("state.budgets.dayly.used > 1.0", "state.budgets has no 'dayly'", "the spec's budgets: none"),
        ("size(state.remembered.payess) > 1", "state.remembered has no 'payess'", "the spec's remembered: none"),
    ],
)
def test_what_would_fail_every_decision_fails_to_load(write_spec, expr, message, hint):
    """A misspelt time zone, budget or remember rule is known when the spec loads: it would fail every call."""
    path, p = cel_problem(write_spec, expr)
    assert where(p) == (str(path), 6, "norms[0].when")
    assert message in p.message and p.hint is not None and hint in p.hint


@pytest.mark.parametrize(
    ("expr", "mixed"),
    [('1 + "a" == 2', True), ("1 + 1.0 > 1.0", True), ('int("abc") > 1', False), ("1 / 0 > 1", False)],
)
def test_constant_type_error(write_spec, expr, mixed):
    path, p = cel_problem(write_spec, expr)
    assert where(p) == (str(path), 6, "norms[0].when")
    assert "always fails" in p.message
    assert (p.hint == "CEL does not mix int and double; write 1.0") is mixed  # the hint only where it helps


def test_cel_errors_in_revise_and_budget_expressions_point_at_their_lines(write_spec):
    path = write_spec(
        """
        fsa_guard: 1
        norms:
          - id: cap
            tools: [tip]
            when: "true"
            effect: revise
            revise:
              amount: "actoin.args.amount"
        budgets:
          - id: b
            tools: [tip]
            limit: 3
            window: 1d
            measure: "action.args.amount +"
        """
    )
    problems = problems_of(path)
    assert [where(p) for p in problems] == [
        (str(path), 8, "norms[0].revise.amount"),
        (str(path), 14, "budgets[0].measure"),
    ]


def test_error_in_a_let_points_at_the_let(write_spec):
    path = write_spec(
        """
        fsa_guard: 1
        let:
          ok: action.args.amount > 1.0
          bad: reqest == ""
        norms:
          - id: n
            tools: [pay]
            when: ok
            effect: deny
        """
    )
    p = only(problems_of(path))
    assert where(p) == (str(path), 4, "let.bad")
    assert p.hint == "did you mean 'request'?"


def test_let_cycle(write_spec):
    path = write_spec(
        """
        fsa_guard: 1
        let:
          a: b && true
          b: c || false
          c: a
        norms:
          - id: n
            tools: [pay]
            when: a
            effect: deny
        """
    )
    p = only(problems_of(path))
    assert p.code == "let-cycle"
    assert p.file == str(path)
    assert p.key.startswith("let.")
    assert p.line in (3, 4, 5)
    assert "a -> b -> c -> a" in p.message


def test_let_that_names_itself(write_spec):
    path = write_spec("fsa_guard: 1\nlet:\n  a: a || true\n")
    p = only(problems_of(path))
    assert where(p) == (str(path), 3, "let.a")
    assert p.code == "let-cycle"


# -- references and ids ------------------------------------------------------------------------------

VALUE = """\
values:
  - id: careful-money
    title: Careful stewardship of money
    attends_to: [MOMENTS when a purchase serves a lasting need]
"""


def test_unknown_value_id_in_serves(write_spec):
    path = write_spec(
        "fsa_guard: 1\n"
        + VALUE
        + """\
norms:
  - id: n
    tools: [pay]
    effect: deny
    serves:
      - careful-mony
"""
    )
    p = only(problems_of(path))
    assert where(p) == (str(path), 11, "norms[0].serves[0]")
    assert p.code == "unknown-value"
    assert p.hint == "did you mean 'careful-money'?"


def test_unknown_value_id_in_budget_serves(write_spec):
    path = write_spec(
        "fsa_guard: 1\n"
        + VALUE
        + """\
budgets:
  - id: b
    tools: [pay]
    limit: 3
    window: 1d
    serves: [careful-money, speaking]
"""
    )
    p = only(problems_of(path))
    assert where(p) == (str(path), 11, "budgets[0].serves[1]")


def test_unknown_value_id_in_priorities(write_spec):
    path = write_spec(
        "fsa_guard: 1\n"
        + VALUE
        + """\
priorities:
  - context: paying friends
    prefer: careful-money
    over: tenderness
"""
    )
    p = only(problems_of(path))
    assert where(p) == (str(path), 9, "priorities[0].over")
    assert p.code == "unknown-value"


def test_a_priority_of_a_value_over_itself(write_spec):
    """It would settle nothing, yet it would let the critic pass a conflict of that value with itself."""
    path = write_spec(
        "fsa_guard: 1\n" + VALUE + "priorities:\n  - {context: x, prefer: careful-money, over: careful-money}\n"
    )
    p = only(problems_of(path))
    assert where(p)[:2] == (str(path), 7) and "prefers 'careful-money' over itself" in p.message


@pytest.mark.parametrize("effect", ["deny", "revise"])
def test_duplicate_norm_id(write_spec, effect):
    # also in a file that fails validation (a revise norm without its map): one run of lint shows both
    path = write_spec(
        f"""
        fsa_guard: 1
        norms:
          - id: n
            tools: [pay]
            effect: deny
          - id: n
            tools: [tip]
            effect: {effect}
        """
    )
    problems = problems_of(path)
    assert [p.code for p in problems] == ["duplicate-id"] if effect == "deny" else ["value_error", "duplicate-id"]
    p = problems[-1]
    assert where(p) == (str(path), 6, "norms[1].id")
    assert p.code == "duplicate-id" and "(first at line 3)" in p.message


def test_an_id_or_let_name_says_what_it_may_hold(write_spec, tmp_path):
    p = only(problems_of(write_spec("fsa_guard: 1\nid: alicé\n")))
    assert p.key == "id" and "an id is ASCII letters, digits" in p.message and "alicé" in p.message
    p = only(problems_of(write_spec("fsa_guard: 1\nlet:\n  2big: 'true'\n")))
    assert "a name is ASCII letters, digits or '_'" in p.message
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("fsa_guard: 1\nid: caf\xe9\n".encode("latin-1"))
    p = only(problems_of(latin))
    assert p.hint == "save it as UTF-8"


@pytest.mark.parametrize("section", ["values", "budgets"])
def test_duplicate_value_and_budget_ids(write_spec, section):
    item = {
        "values": "  - id: x\n    title: T\n    attends_to: [MOMENTS of care]\n",
        "budgets": "  - id: x\n    tools: [pay]\n    limit: 1\n    window: 1d\n",
    }[section]
    path = write_spec(f"fsa_guard: 1\n{section}:\n{item}{item}")
    p = only(problems_of(path))
    assert where(p) == (str(path), 3 + item.count("\n"), f"{section}[1].id")
    assert p.code == "duplicate-id"


# -- extends -----------------------------------------------------------------------------------------


def test_missing_file_in_extends_is_reported_at_the_extends_line(write_spec):
    write_spec("fsa_guard: 1\nid: base\n", name="base.yaml")
    path = write_spec(
        """
        fsa_guard: 1
        id: alice
        extends:
          - base.yaml
          - enterprise-baseline.yaml
        """
    )
    p = only(problems_of(path))
    assert where(p) == (str(path), 5, "extends[1]")
    assert p.code == "missing-file"
    assert "enterprise-baseline.yaml" in p.message


def test_extends_names_files_not_urls_and_reads_a_home_path(write_spec, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    write_spec("fsa_guard: 1\nid: base\n", name="base.yaml")
    path = write_spec("fsa_guard: 1\nid: me\nextends: [https://example.com/base.yaml]\n")
    p = only(problems_of(path))
    assert where(p) == (str(path), 3, "extends[0]") and "not URLs" in p.message
    path.write_text(f"fsa_guard: 1\nid: me\nextends: ['~/{(tmp_path / 'base.yaml').relative_to(tmp_path)}']\n")
    assert load_spec(path).id == "me"


def test_a_json_spec_as_json_dumps_writes_it_loads(tmp_path):
    """json.dumps escapes a character beyond the BMP as a surrogate pair, which YAML alone refuses."""
    import json

    norm = {"id": "n", "description": "Smile \U0001f600", "tools": ["t"], "effect": "deny"}
    spec = {"fsa_guard": 1, "id": "e", "norms": [norm]}
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    assert "\\ud83d\\ude00" in path.read_text()
    assert load_spec(path).norms[0].norm.description == "Smile \U0001f600"


def test_missing_file_given_directly(tmp_path):
    p = only(problems_of(tmp_path / "nope.yaml"))
    assert p.code == "missing-file"
    assert "nope.yaml" in p.file


def test_extends_cycle(write_spec):
    a = write_spec("fsa_guard: 1\nid: a\nextends: [b.yaml]\n", name="a.yaml")
    b = write_spec("fsa_guard: 1\nid: b\nextends:\n  - a.yaml\n", name="b.yaml")
    p = only(problems_of(a))
    assert where(p) == (str(b), 4, "extends[0]")
    assert p.code == "extends-cycle"
    assert "a.yaml -> b.yaml -> a.yaml" in p.message


def test_problems_in_an_extended_file_name_that_file(write_spec):
    base = write_spec("fsa_guard: 1\nid: base\nnorms:\n  - id: n\n    tools: [x]\n    effect: nope\n", name="base.yaml")
    alice = write_spec("fsa_guard: 1\nid: alice\nextends: [base.yaml]\n", name="alice.yaml")
    p = only(problems_of(alice))
    assert where(p) == (str(base), 6, "norms[0].effect")


# -- collected together ------------------------------------------------------------------------------


def test_several_problems_in_one_file_are_all_reported_sorted_by_line(write_spec):
    path = write_spec(
        """
        fsa_guard: 1
        nrms: []
        defaults:
          timezone: Nowhere/Else
        norms:
          - id: a
            tools: pay
            effect: block
        budgets:
          - id: b
            tools: [pay]
            limit: 3
            window: 1w
        """
    )
    problems = problems_of(path)
    assert [(p.line, p.key) for p in problems] == [
        (2, "nrms"),
        (4, "defaults.timezone"),
        (7, "norms[0].tools"),
        (8, "norms[0].effect"),
        (13, "budgets[0].window"),
    ]
    assert all(p.file == str(path) for p in problems)


def test_several_cel_problems_are_all_reported(write_spec):
    path = write_spec(
        """
        fsa_guard: 1
        norms:
          - id: a
            tools: [pay]
            effect: deny
            when: actoin.args.x > 1
          - id: b
            tools: [pay]
            effect: deny
            when: action.amount > 1
        """
    )
    problems = problems_of(path)
    assert [(p.line, p.key) for p in problems] == [(6, "norms[0].when"), (10, "norms[1].when")]


def test_problems_across_files_are_reported_together(write_spec):
    write_spec("fsa_guard: 1\nid: base\nnrms: []\n", name="base.yaml")
    alice = write_spec(
        """
        fsa_guard: 1
        id: alice
        extends: [base.yaml]
        norms:
          - id: n
            tools: [pay]
            effect: deny
            when: actoin.args.x > 1
        """,
        name="alice.yaml",
    )
    problems = problems_of(alice)
    assert sorted((Path(p.file).name, p.line, p.key) for p in problems) == [
        ("alice.yaml", 8, "norms[0].when"),
        ("base.yaml", 3, "nrms"),
    ]


def test_check_spec_returns_problems_instead_of_raising(write_spec):
    path = write_spec("fsa_guard: 1\nnrms: []\n")
    compiled, problems = check_spec(path)
    assert compiled is None
    assert [(p.line, p.key) for p in problems] == [(2, "nrms")]


def test_problem_text_and_dict(write_spec):
    path = write_spec("fsa_guard: 1\nnrms: []\n")
    p = only(problems_of(path))
    assert str(p) == f"{path}:2: nrms: unknown key 'nrms' (did you mean 'norms'?)"
    d = p.to_dict()
    assert d["file"] == str(path) and d["line"] == 2 and d["key"] == "nrms" and d["severity"] == "error"


def test_yaml_alias_bomb_is_refused_quickly(write_spec):
    levels = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdefg", "bcdefgh", strict=True):
        levels.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 10) + "]")
    path = write_spec("\n".join(["fsa_guard: 1", *levels]) + "\n")
    p = only(problems_of(path))
    assert p.code == "yaml"
    assert "expands to more than" in p.message


def test_yaml_merge_keys_may_override_merged_values(write_spec):
    path = write_spec(
        """
        fsa_guard: 1
        norms:
          - &base {id: a, tools: [t], effect: deny, when: "action.args.x > 1"}
          - <<: *base
            id: b
        """
    )
    assert [n.id for n in load_spec(path).norms] == ["a", "b"]


def test_a_bad_key_does_not_hide_cel_errors_in_the_same_file(write_spec):
    path = write_spec(
        """
        fsa_guard: 1
        norms:
          - id: a
            tools: [t]
            when: action.args.x >
            effect: deny
          - id: b
            tools: [t]
            effect: forbid
        """
    )
    found = sorted((p.line, p.key, p.code) for p in problems_of(path))
    assert (5, "norms[0].when", "cel") in found
    assert any(key == "norms[1].effect" for _, key, _ in found)
