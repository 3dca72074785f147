"""An agent and the person who answers it in different processes, through SQLite and through Redis."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_queue import SPEC

from fsa_guard.audit import open_audit
from fsa_guard.audit.base import AuditReader, verify_sink

AGENT = Path(__file__).with_name("agent.py")


def cli(*args: str, store: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FSA_GUARD_STORE": store}
    return subprocess.run(
        [sys.executable, "-m", "fsa_guard", "approvals", *args], capture_output=True, text=True, env=env, timeout=60
    )


def pending_id(store: str, timeout: float = 30) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        listed = cli("list", "--json", store=store)
        if "there is no store" in listed.stderr:
            time.sleep(0.1)  # the agent has not opened it yet
            continue
        assert listed.returncode == 0, listed.stderr
        if listed.stdout.strip():
            return str(json.loads(listed.stdout.splitlines()[0])["id"])
        time.sleep(0.1)
    raise AssertionError("no approval was queued")


@pytest.fixture(params=["sqlite", "redis"])
def urls(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state.db", f"sqlite:///{tmp_path}/audit.db"
    redis_url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")
    return f"{redis_url}?prefix={prefix}", f"jsonl:///{tmp_path}/audit.jsonl"


def start_agent(tmp_path: Path, store: str, audit: str, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    out = tmp_path / f"out-{time.monotonic_ns()}.json"
    cmd = [sys.executable, str(AGENT), args[0], str(spec), store, audit, *args[1:], str(out)]
    return subprocess.Popen(cmd), out


def records(audit: str) -> list[dict]:
    sink = open_audit(audit)
    assert isinstance(sink, AuditReader)
    assert all(r.ok for r in verify_sink(sink))
    return [r for s in sink.streams() for r in sink.read(s)]


def test_the_agent_waits_while_a_person_answers_from_another_process(tmp_path, urls):
    store, audit = urls
    agent, out = start_agent(tmp_path, store, audit, "decide", "30")
    approval_id = pending_id(store)
    shown = cli("show", approval_id, store=store)
    assert shown.returncode == 0 and "big-asks-me" in shown.stdout and "landlord" in shown.stdout
    answered = cli("approve", approval_id, "--by", "alice", "--note", "rent", "--audit", audit, store=store)
    assert answered.returncode == 0, answered.stderr
    assert agent.wait(timeout=60) == 0
    decision = json.loads(out.read_text())
    assert decision["outcome"] == "allow" and decision["answer"]["by"] == "alice"
    kinds = [(r["kind"], r.get("outcome") or r.get("choice")) for r in records(audit)]
    assert kinds == [("decision", "escalate"), ("answer", "approve"), ("decision", "allow"), ("report", None)]


def test_two_people_answer_at_once_one_wins_the_other_is_told(tmp_path, urls):
    store, audit = urls
    agent, out = start_agent(tmp_path, store, audit, "decide", "0")
    assert agent.wait(timeout=60) == 0
    approval_id = json.loads(out.read_text())["approval_id"]
    env = {**os.environ, "FSA_GUARD_STORE": store}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "fsa_guard", "approvals", choice, approval_id, "--by", who],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for choice, who in (("approve", "alice"), ("deny", "bob"), ("approve", "carol"), ("deny", "dan"))
    ]
    results = [(p.wait(timeout=60), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 1, 1, 1]
    assert all("already answered" in text for code, text in results if code == 1)


def test_the_agent_crashes_while_waiting_and_the_approval_lives_on(tmp_path, urls):
    store, audit = urls
    agent, _ = start_agent(tmp_path, store, audit, "decide", "120")
    approval_id = pending_id(store)
    os.kill(agent.pid, signal.SIGKILL)
    agent.wait(timeout=30)
    answered = cli("edit", approval_id, "--set", "amount=850", "--by", "alice", "--audit", audit, store=store)
    assert answered.returncode == 0, answered.stderr
    shown = json.loads(cli("show", approval_id, "--json", store=store).stdout)
    assert shown["status"] == "edit" and shown["answer"]["args"]["amount"] == 850 and shown["claimed"] is None
    resumer, out = start_agent(tmp_path, store, audit, "resume", approval_id, "0")
    assert resumer.wait(timeout=60) == 0
    decision = json.loads(out.read_text())
    assert decision["outcome"] == "revise" and decision["action"]["args"]["amount"] == 850
    kinds = [(r["kind"], r.get("outcome") or r.get("choice")) for r in records(audit)]
    assert kinds == [("decision", "escalate"), ("answer", "edit"), ("decision", "revise"), ("report", None)]
    again = cli("approve", approval_id, store=store)
    assert again.returncode == 1 and "already answered" in again.stderr
