"""Scenario files: what a line holds, and errors that name the file, the line and the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fsa_guard import load_spec
from fsa_guard.evaluate import ScenarioError, load_scenarios, parse_scenario, parse_scenarios, run_scenarios

GOOD = {
    "id": "pay-the-bill",
    "action": {"tool": "send_money", "args": {"recipient": "DE89370400440532013000", "amount": 84.2}},
    "request": "pay the bill in bills/march.pdf",
    "history": [
        {"tool": "read_file", "args": {"path": "bills/march.pdf"}, "output": "pay DE89 3704 0044 0532 0130 00"}
    ],
    "context": {"user": "alice"},
    "now": "2025-03-04T14:30:00+01:00",
    "expected": "allow",
    "expected_findings": [],
    "tags": ["money"],
    "why": "the bill names the account",
}


def lines(*items: object) -> list[str]:
    return [item if isinstance(item, str) else json.dumps(item) for item in items]


def test_a_full_line_is_read_into_an_action_and_its_label() -> None:
    [s] = parse_scenarios(lines(GOOD), "s.jsonl")
    assert (s.id, s.expected, s.expected_findings, s.tags, s.why) == (
        "pay-the-bill",
        "allow",
        (),
        ("money",),
        "the bill names the account",
    )
    assert s.action.tool == "send_money" and s.action.args["amount"] == 84.2
    assert s.action.request == GOOD["request"] and s.action.context == {"user": "alice"}
    assert s.action.history[0].tool == "read_file"  # type: ignore[union-attr]
    assert s.action.now is not None and s.action.now.utcoffset() is not None
    assert s.where == "s.jsonl:1"
    assert parse_scenario(s.to_dict()).to_dict() == s.to_dict()  # what to_dict writes reads back the same


def test_only_action_and_expected_are_required_and_blank_lines_are_skipped() -> None:
    scenarios = parse_scenarios(["", json.dumps({"action": {"tool": "t"}, "expected": "deny"}), "  "], "f")
    assert [(s.id, s.expected, s.expected_findings, s.action.args) for s in scenarios] == [("line 2", "deny", None, {})]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        pytest.param('{"action": {"tool": "t"}, "expected": "allow"', "f.jsonl:2: not valid JSON", id="bad-json"),
        pytest.param('["allow"]', "f.jsonl:2: a scenario must be a JSON object", id="not-an-object"),
        pytest.param({"action": {"tool": "t"}}, "f.jsonl:2: expected: missing", id="no-expected"),
        pytest.param({"expected": "allow"}, "f.jsonl:2: action: missing", id="no-action"),
        pytest.param({"action": {"tool": "t"}, "expected": "permit"}, "f.jsonl:2: expected: expected one of", id="bad"),
        pytest.param(
            {"action": {"args": {}}, "expected": "deny"}, "f.jsonl:2: action.tool: expected a non-empty", id="t"
        ),
        pytest.param({"action": {"tool": "t", "args": []}, "expected": "deny"}, "f.jsonl:2: action.args:", id="args"),
        pytest.param({"action": {"tool": "t", "request": "x"}, "expected": "deny"}, "action.request: unknown", id="ar"),
        pytest.param(
            {"action": {"tool": "t"}, "expected": "deny", "expect": "x"}, "f.jsonl:2: expect: unknown", id="k"
        ),
        pytest.param({"action": {"tool": "t"}, "expected": "deny", "history": [{"args": {}}]}, "history[0]:", id="h"),
        pytest.param(
            {"action": {"tool": "t"}, "expected": "deny", "now": "tuesday"}, "f.jsonl:2: now: expected", id="n"
        ),
        pytest.param(
            {"action": {"tool": "t"}, "expected": "deny", "expected_findings": "a"}, "expected_findings", id="f"
        ),
        pytest.param(
            {"action": {"tool": "t"}, "expected": "deny", "used": {"b": "lots"}}, "f.jsonl:2: used.b:", id="u"
        ),
        pytest.param(
            '{"action": {"tool": "t"}, "expected": "deny", "used": {"b": NaN}}', "used.b: expected a finite", id="nan"
        ),
        pytest.param('{"action": {"tool": "t"}, "expected": "deny", "used": {"b": Infinity}}', "used.b:", id="inf"),
        pytest.param(
            {"action": {"tool": "t"}, "expected": "deny", "used": {"b": -5}},
            "used.b: expected a finite amount of 0 or more, not -5",
            id="neg",
        ),
        pytest.param(
            {"action": {"tool": "t"}, "expected": "deny", "used": [1]}, "f.jsonl:2: used: expected an object", id="ul"
        ),
        pytest.param(
            {"action": {"tool": "t"}, "expected": "deny", "now": 1741095000}, "f.jsonl:2: now: expected", id="num-now"
        ),
        pytest.param(
            '{"action": {"tool": "t", "args": {"amount": 5, "amount": 5000}}, "expected": "allow"}',
            'f.jsonl:2: not valid JSON: key "amount" is given twice in one object',
            id="duplicate-key",
        ),
        pytest.param("[" * 100_000 + "]" * 100_000, "f.jsonl:2: not valid JSON: nested too deeply", id="deep"),
        pytest.param(
            {"action": {"tool": "t"}, "expected": "deny", "history": [{"tool": "r", "args": ["x"]}]},
            "f.jsonl:2: history[0].args: expected an object",
            id="history-args",
        ),
        pytest.param(
            {"action": {"tool": "t"}, "expected": "deny", "history": [{"tool": "r", "outptu": "x"}]},
            "f.jsonl:2: history[0].outptu: unknown key",
            id="history-key",
        ),
        pytest.param(
            {"action": {"tool": "t"}, "expected": "deny", "history": [{"tool": ""}]}, "history[0]: expected", id="h0"
        ),
    ],
)
def test_a_bad_line_names_the_file_line_and_key(line: object, message: str) -> None:
    good = {"id": "first", "action": {"tool": "t"}, "expected": "allow"}
    with pytest.raises(ScenarioError) as caught:
        parse_scenarios(lines(good, line), "f.jsonl")  # type: ignore[arg-type]
    assert message in str(caught.value)
    assert caught.value.line == 2 and caught.value.file == "f.jsonl"


def test_only_a_newline_ends_a_line(tmp_path: Path) -> None:
    # json.dumps(ensure_ascii=False) leaves U+2028 and U+0085 as they are inside strings; str.splitlines would
    # cut the line there
    path = tmp_path / "s.jsonl"
    line = {"action": {"tool": "post", "args": {"text": "one\u2028two\x85three"}}, "expected": "allow"}
    path.write_text(json.dumps(line, ensure_ascii=False) + "\r\n\n" + json.dumps(line | {"id": "b"}), "utf-8")
    first, second = load_scenarios(path)
    assert first.action.args["text"] == "one\u2028two\x85three" and (first.where, second.where) == (
        f"{path}:1",
        f"{path}:3",
    )


def test_expected_args_tell_true_from_1(write_spec) -> None:  # type: ignore[no-untyped-def]
    spec = load_spec(
        write_spec(
            """
            fsa_guard: 1
            norms:
              - {id: quiet, tools: [post], when: "true", effect: revise, revise: {notify: "1"}}
            """
        )
    )
    line = {"action": {"tool": "post", "args": {"notify": True}}, "expected": "revise"}
    said = [
        line | {"id": "bool", "expected_args": {"notify": True}},
        line | {"id": "int", "expected_args": {"notify": 1}},
    ]
    said.append(line | {"id": "float", "expected_args": {"notify": 1.0}})
    results = run_scenarios(spec, parse_scenarios(lines(*said), "f"))
    assert [r.observation.args_ok for r in results] == [False, True, True]


def test_ids_are_unique_within_a_file() -> None:
    item = {"id": "same", "action": {"tool": "t"}, "expected": "allow"}
    with pytest.raises(ScenarioError, match=r"f:3: id: 'same' is used again \(first on line 1\)"):
        parse_scenarios(lines(item, "", item), "f")


def test_unreadable_and_empty_files_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read the scenario file"):
        load_scenarios(tmp_path / "missing.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(ScenarioError, match="no scenarios"):
        load_scenarios(empty)


def test_used_names_a_budget_the_spec_has(write_spec) -> None:  # type: ignore[no-untyped-def]
    spec = load_spec(
        write_spec(
            """
            fsa_guard: 1
            budgets:
              - {id: daily, tools: [pay], measure: "double(action.args.amount)", limit: 100, window: 1d}
            """
        )
    )
    line = {"action": {"tool": "pay", "args": {"amount": 30}}, "expected": "deny", "used": {"dialy": 80}}
    with pytest.raises(ScenarioError, match=r"used\.dialy: the spec has no budget 'dialy' \(budgets: daily\)"):
        run_scenarios(spec, parse_scenarios(lines(line), "f"))
    line["used"] = {"daily": 80}
    [result] = run_scenarios(spec, parse_scenarios(lines(line), "f"))
    assert result.observation.actual == "deny" and result.observation.findings == ("daily",)
