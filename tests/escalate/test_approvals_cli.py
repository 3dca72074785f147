"""``fsa-guard approvals``: list, show and answer queued escalations from the command line."""

from __future__ import annotations

import json

from test_queue import BIG, guard_for
from typer.testing import CliRunner

from fsa_guard.cli import app


def run(*args: str, store: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["approvals", *args, "--store", store])
    return result.exit_code, result.stdout, result.stderr


def test_list_show_and_edit(tmp_path):
    store = f"sqlite:///{tmp_path}/state.db"
    guard = guard_for(tmp_path)
    d = guard.decide(BIG)
    code, out, _ = run("list", store=store)
    assert code == 0 and d.approval_id in out and "send_money" in out and "pending" in out
    code, out, _ = run("show", d.approval_id, "--json", store=store)
    shown = json.loads(out)
    assert shown["status"] == "pending" and shown["decision"]["findings"][0]["id"] == "big-asks-me"
    # a typo in a number is refused, not sent as text (which would spend the approval on a call that fails)
    code, _, err = run("edit", d.approval_id, "--set", "amount=65O.5", store=store)
    assert code == 2 and "amount is a number (900.0), and '65O.5' is not JSON" in " ".join(err.split())
    assert guard.approver.get(d.approval_id).pending
    code, out, _ = run("edit", d.approval_id, "--set", "amount=650.5", "--set", "memo=rent march", store=store)
    assert code == 0, out
    answer = guard.approver.get(d.approval_id).answer
    assert answer.args == {"recipient": "landlord", "amount": 650.5, "memo": "rent march"}
    assert run("list", store=store)[1].strip() == "no pending approvals"
    edited = run("list", "--status", "edit", store=store)[1]
    assert d.approval_id in edited and '"amount": 650.5' in edited  # what runs shows, not only what was asked
    assert '"memo": "rent march"' in run("show", d.approval_id, store=store)[1]


def test_an_answer_that_cannot_be_recorded_is_not_given(tmp_path):
    store = f"sqlite:///{tmp_path}/state.db"
    guard = guard_for(tmp_path)
    d = guard.decide(BIG)
    code, _, err = run("deny", d.approval_id, "--audit", "bogus://nowhere", store=store)
    assert code == 2 and "bogus" in err
    assert guard.approver.get(d.approval_id).pending  # nothing was answered
    code, _, _ = run("deny", d.approval_id, "--audit", f"jsonl:///{tmp_path}/audit.jsonl", store=store)
    assert code == 0
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(r["kind"], r["choice"], r["approval_id"]) for r in records] == [("answer", "deny", d.approval_id)]


def test_bad_input_is_named(tmp_path):
    store = f"sqlite:///{tmp_path}/state.db"
    guard_for(tmp_path).decide(BIG)
    assert run("approve", "ap_missing", store=store)[0] == 2
    code, _, err = run("edit", "ap_missing", store=store)
    assert code == 2 and "--args" in err
    code, _, err = run("edit", "ap_x", "--args", '{"amount": 1, "amount": 9000}', store=store)
    assert code == 2 and 'key "amount" is given twice' in err
    code, _, err = run("edit", "ap_x", "--args", '{"amount": ', store=store)
    assert code == 2 and "--args is not JSON: line 1 column 12" in err
    code, _, err = run("list", store=f"sqlite:///{tmp_path}/[/x]/state.db")  # markup-like text is shown as is
    assert code == 2 and "[/x]/state.db" in err
    code, _, err = run("list", "--status", "maybe", store=store)
    assert code == 2 and "--status" in err
    code, _, err = run("list", store="postgresql://x/y")
    assert code == 2
