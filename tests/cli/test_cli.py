"""The fsa-guard command line: check, lint, schema, demo, exit codes and error messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from fsa_guard.cli import app

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
SPEC = str(CORPUS / "spec.yaml")
runner = CliRunner()


def test_check_table_output_shows_outcome_findings_and_explanation() -> None:
    action = {"tool": "tip", "args": {"amount": 35.0}}
    result = runner.invoke(app, ["check", SPEC, "--action", json.dumps(action)])
    assert result.exit_code == 0
    assert "REVISE" in result.stdout
    assert "cap-tips" in result.stdout
    assert "Careful stewardship of money" in result.stdout  # the explanation cites the value by title


def test_check_reads_action_from_file_and_stdin(tmp_path: Path) -> None:
    action = {"tool": "delete_account", "args": {}}
    path = tmp_path / "action.json"
    path.write_text(json.dumps(action))
    from_file = runner.invoke(app, ["check", SPEC, "--action", f"@{path}", "--json"])
    from_stdin = runner.invoke(app, ["check", SPEC, "--action", "-", "--json"], input=json.dumps(action))
    for result in (from_file, from_stdin):
        assert result.exit_code == 1
        assert json.loads(result.stdout)["findings"][0]["id"] == "unknown-tool"


def test_check_list_of_actions_shares_budget_state() -> None:
    pay = {"tool": "send_money", "args": {"recipient": "DE1", "amount": 400.0}, "request": "pay DE1"}
    result = runner.invoke(app, ["check", SPEC, "--action", json.dumps([pay, pay, pay]), "--json"])
    outcomes = [d["outcome"] for d in json.loads(result.stdout)]
    assert outcomes == ["allow", "allow", "deny"]  # 1200 > the daily limit of 1000
    assert result.exit_code == 1


@pytest.mark.parametrize("scheme", ["sqlite", "redis"])
def test_check_with_a_store_decides_on_its_budgets_and_leaves_them_as_they_were(
    tmp_path: Path, scheme: str, request: pytest.FixtureRequest
) -> None:
    from fsa_guard import Action, Guard

    if scheme == "sqlite":
        store = f"sqlite:///{tmp_path}/state.db"
    else:  # a key prefix of this test's own, deleted afterwards
        store = f"{request.getfixturevalue('redis_url')}?prefix={request.getfixturevalue('redis_prefix')}"
    pay = {"tool": "send_money", "args": {"recipient": "DE1", "amount": 400.0}, "request": "pay DE1"}
    guard = Guard.from_files(SPEC, store=store, audit=False)
    spent = guard.decide(Action("send_money", pay["args"], request=pay["request"]))
    guard.report(spent, ok=True)  # 400 of the daily 1000 spent for real

    fresh = runner.invoke(app, ["check", SPEC, "--action", json.dumps([pay, pay]), "--json"])
    assert [d["outcome"] for d in json.loads(fresh.stdout)] == ["allow", "allow"]  # a fresh store: a dry run
    real = runner.invoke(app, ["check", SPEC, "--store", store, "--action", json.dumps([pay, pay]), "--json"])
    assert [d["outcome"] for d in json.loads(real.stdout)] == ["allow", "deny"] and real.exit_code == 1
    # nothing stayed reserved: the store still holds the one real payment, so one more fits and a second does not
    again = guard.decide(Action("send_money", pay["args"], request=pay["request"]))
    assert again.outcome == "allow"
    guard.report(again, ok=True)
    assert guard.decide(Action("send_money", pay["args"], request=pay["request"])).outcome == "deny"
    guard.store.close()


def test_check_refuses_a_store_that_is_not_there(tmp_path: Path) -> None:
    pay = {"tool": "send_money", "args": {"recipient": "DE1", "amount": 400.0}}
    result = runner.invoke(app, ["check", SPEC, "--store", f"sqlite:///{tmp_path}/stat.db", "-a", json.dumps(pay)])
    assert result.exit_code == 2 and "there is no store at" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_invalid_action_json_exits_2_with_position() -> None:
    result = runner.invoke(app, ["check", SPEC, "--action", '{"tool": "tip",'])
    assert result.exit_code == 2
    assert "--action:1:" in result.stderr and "not valid JSON" in result.stderr
    assert "Traceback" not in result.output


def test_action_with_wrong_shape_exits_2_naming_the_key() -> None:
    result = runner.invoke(app, ["check", SPEC, "--action", '{"tool": "tip", "args": [1]}'])
    assert result.exit_code == 2
    assert "--action.args: expected an object" in result.stderr
    result = runner.invoke(app, ["check", SPEC, "--action", '{"tool": "tip", "argz": {}}'])
    assert result.exit_code == 2
    assert "unknown key(s) argz" in result.stderr


def test_check_refuses_what_it_cannot_read_exactly() -> None:
    cases = {
        # the later amount would silently win
        '{"tool": "tip", "args": {"amount": 5, "amount": 5000}}': 'key "amount" is given twice in one object',
        "[" * 100_000 + "]" * 100_000: "nested too deeply",
        '{"tool": "tip", "history": [{"tool": "read", "args": "x"}]}': "--action.history[0].args: expected an object",
        '{"tool": "tip", "history": [{"tool": "read", "ouput": "x"}]}': "--action.history[0].ouput: unknown key",
        '{"tool": "tip", "now": 1741095000}': "--action.now: expected an ISO 8601 time",
        '{"tool": "tip", "id": 7}': "--action.id: expected a non-empty string",
    }
    for text, message in cases.items():
        result = runner.invoke(app, ["check", SPEC, "--action", text])
        assert result.exit_code == 2, (text[:40], result.output)
        assert message in " ".join(result.stderr.split()), result.stderr
        assert "Traceback" not in result.output


def test_check_prints_tool_names_and_paths_as_they_are(tmp_path: Path) -> None:
    # rich markup in a tool name or a path is shown, not interpreted (a "[/x]" would crash the table)
    for tool in ("[/x]", "[bold]tip[/bold]", "x\\[conceal]hidden", "C:\\tools\\"):
        result = runner.invoke(app, ["check", SPEC, "--action", json.dumps({"tool": tool})])
        assert result.exit_code == 1, result.output
        assert f"'{tool}' is not a tool the spec knows" in " ".join(result.stdout.split())
        assert tool + "\\" not in result.stdout  # a backslash at the end is not doubled
    missing = tmp_path / "[red]gone.json"
    result = runner.invoke(app, ["check", SPEC, "--action", f"@{missing}"])
    assert result.exit_code == 2 and f"cannot read action file {missing}" in " ".join(result.stderr.split())


def test_invalid_spec_exits_2_with_file_line_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("fsa_guard: 1\nnorms:\n  - id: x\n    tools: [t]\n    effect: forbid\n")
    result = runner.invoke(app, ["check", str(bad), "--action", '{"tool": "t"}'])
    assert result.exit_code == 2
    assert f"{bad}:5: norms[0].effect" in result.stderr
    assert "Traceback" not in result.output


def test_missing_spec_file_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", str(tmp_path / "nope.yaml"), "--action", '{"tool": "t"}'])
    assert result.exit_code == 2
    assert "spec file not found" in result.stderr


def test_lint_clean_spec_exits_0() -> None:
    result = runner.invoke(app, ["lint", SPEC])
    assert result.exit_code == 0, result.stdout
    assert "no problems" in result.stdout


def test_lint_reports_errors_and_warnings_with_lines(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "fsa_guard: 1\n"
        "values:\n"
        "  - id: v\n"
        "    title: Family values\n"
        "    attends_to: [being good]\n"
        "    tools: [t]\n"
        "norms:\n"
        "  - id: n\n"
        "    tools: [t]\n"
        "    when: 'action.args.x > '\n"
        "    effect: deny\n"
    )
    result = runner.invoke(app, ["lint", str(spec), "--json"])
    assert result.exit_code == 1
    problems = json.loads(result.stdout)
    errors = [p for p in problems if p["severity"] == "error"]
    assert [(p["line"], p["key"], p["code"]) for p in errors] == [(10, "norms[0].when", "cel")]
    codes = {p["code"] for p in problems if p["severity"] == "warning"}
    assert {"slogan", "policy-form", "policy-count", "vague", "no-serves"} <= codes


def test_lint_missing_file_exits_2(tmp_path: Path) -> None:
    assert runner.invoke(app, ["lint", str(tmp_path / "missing.yaml")]).exit_code == 2


def test_schema_is_valid_json_schema_that_accepts_the_corpus_spec() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(yaml.safe_load(Path(SPEC).read_text()), schema)
    bad = {"fsa_guard": 1, "norms": [{"id": "x", "tools": ["t"], "effect": "forbid"}]}
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(bad))


def test_console_script_help_documents_exit_codes() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "from fsa_guard.cli import main; main()", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0
    assert "Exit codes" in out.stdout


def test_an_empty_list_of_actions_is_bad_input() -> None:
    result = runner.invoke(app, ["check", SPEC, "--action", "[]"])
    assert result.exit_code == 2
    assert "empty" in result.stderr


def test_a_list_of_actions_spends_budgets_as_if_each_allowed_call_ran() -> None:
    pay = {"tool": "send_money", "args": {"recipient": "DE1", "amount": 600.0}, "request": "pay DE1"}
    later = {**pay, "args": {"recipient": "DE1", "amount": 450.0}}
    actions = [{**pay, "now": "2026-03-02T09:00:00Z"}, {**later, "now": "2026-03-02T11:00:00Z"}]
    result = runner.invoke(app, ["check", SPEC, "--action", json.dumps(actions), "--json"])
    assert [d["outcome"] for d in json.loads(result.stdout)] == ["escalate", "allow"]
    small = {**pay, "args": {"recipient": "DE1", "amount": 400.0}}
    actions = [{**small, "now": f"2026-03-02T{hour:02d}:00:00Z"} for hour in (9, 10, 11, 12)]
    result = runner.invoke(app, ["check", SPEC, "--action", json.dumps(actions), "--json"])
    assert [d["outcome"] for d in json.loads(result.stdout)] == ["allow", "allow", "deny", "deny"]


def test_lint_warns_about_a_let_nobody_uses(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "fsa_guard: 1\nlet:\n  used: action.args.x > 1\n  spare: '1'\n"
        "norms:\n  - {id: n, tools: [t], when: used, effect: deny}\n"
    )
    problems = json.loads(runner.invoke(app, ["lint", str(spec), "--json"]).stdout)
    assert [(p["line"], p["code"]) for p in problems if p["code"] == "let-unused"] == [(4, "let-unused")]


def test_lint_says_which_expressions_run_on_the_cel_package_alone(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "fsa_guard: 1\nlet:\n  late: now.getHours() >= 22\n  big: action.args.n > 5\n"
        "norms:\n  - id: n\n    tools: [t]\n    when: late && big\n    effect: deny\n"
        "  - id: m\n    tools: [t]\n    effect: revise\n    revise: {n: 'uint(action.args.n) + 1u'}\n"
    )
    result = runner.invoke(app, ["lint", str(spec), "--json"])
    assert result.exit_code == 0  # a warning: the spec works, only slower
    slow = [(p["line"], p["key"], p["message"]) for p in json.loads(result.stdout) if p["code"] == "cel-only"]
    assert [(line, key) for line, key, _ in slow] == [(3, "let.late"), (13, "norms[1].revise.n")]
    assert "getHours" in slow[0][2] and "uint literal" in slow[1][2]


def test_lint_warns_of_a_revision_that_misses_the_arg_its_condition_reads(tmp_path):
    """revise: {amout: ...} adds an arg and leaves amount as it was: the revised call still meets the condition."""
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "fsa_guard: 1\nlet:\n  big: action.args.amount > 20.0\nnorms:\n  - id: cap\n    tools: [tip]\n    when: big\n"
        "    effect: revise\n    revise:\n      amout: '20.0'\n      note: '\"capped\"'\n"
    )
    problems = json.loads(runner.invoke(app, ["lint", str(spec), "--json"]).stdout)
    found = [(p["line"], p["key"], p["hint"]) for p in problems if p["code"] == "revise-unread"]
    assert found == [(10, "norms[0].revise.amout", "did you mean 'amount'?")]  # read through the let


def test_lint_warns_of_tool_globs_that_do_not_do_what_they_seem(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "fsa_guard: 1\nid: s\ndefaults:\n  unknown_tool: deny\n"
        "values:\n  - id: v\n    title: V\n    attends_to: [MOMENTS that matter to me]\n    tools: ['*']\n"
        "norms:\n  - id: n\n    tools: [read_file, 'purchase_.*']\n    effect: escalate\n"
    )
    result = runner.invoke(app, ["lint", str(spec), "--json"])
    assert result.exit_code == 0
    found = [(p["line"], p["key"], p["code"]) for p in json.loads(result.stdout) if p["code"].startswith("glob-")]
    assert found == [(9, "values[0].tools[0]", "glob-knows-every-tool"), (12, "norms[0].tools[1]", "glob-regex")]
    # under unknown_tool: allow, naming every tool takes nothing away
    spec.write_text(spec.read_text().replace("deny", "allow"))
    codes = [p["code"] for p in json.loads(runner.invoke(app, ["lint", str(spec), "--json"]).stdout)]
    assert "glob-knows-every-tool" not in codes and "glob-regex" in codes
