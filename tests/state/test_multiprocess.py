"""Budgets across processes, and an audit trail that survives a killed worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from workers import SPEC

from fsa_guard.audit.base import verify_sink
from fsa_guard.audit.sqlite import SQLiteAuditSink

WORKERS = Path(__file__).with_name("workers.py")
LIMIT = 1000.0


def _spend_in_processes(tmp_path: Path, store: str, audit: str, processes: int = 8, calls: int = 200) -> list[dict]:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    procs = []
    for p in range(processes):
        out = tmp_path / f"out{p}.json"
        cmd = [sys.executable, str(WORKERS), "spend", str(spec), store, audit, str(p), str(calls), str(out)]
        procs.append((subprocess.Popen(cmd), out))
    results = []
    for proc, out in procs:
        assert proc.wait(timeout=240) == 0
        results.append(json.loads(out.read_text()))
    return results


def _check_budget(results: list[dict]) -> None:
    ran = [a for r in results for a in r["ran"]]
    calls = [c for r in results for c in r["results"]]
    assert len(calls) == 8 * 200
    executed = sum(ran)
    assert executed <= LIMIT, f"overspent: {executed} > {LIMIT}"
    assert sorted(ran) == sorted(c["amount"] for c in calls if c["ran"])
    refused = [c for c in calls if not c["ran"]]
    assert refused, "the calls ask for far more than the budget: some must be refused"
    for c in refused:
        assert c["findings"] == ["units"], c
        # spending only grows, so a refused call would also overspend what finally ran
        assert executed + c["amount"] > LIMIT, c
    assert executed > LIMIT - 20  # and the budget was used up, not refused early


def test_sqlite_budget_holds_across_8_processes(tmp_path: Path) -> None:
    results = _spend_in_processes(tmp_path, f"sqlite:///{tmp_path}/state.db", f"sqlite:///{tmp_path}/audit.db")
    _check_budget(results)
    sink = SQLiteAuditSink(tmp_path / "audit.db")
    (report,) = verify_sink(sink)
    assert report.ok and report.records == 8 * 200 + sum(len(r["ran"]) for r in results)  # decisions + reports


def test_redis_budget_holds_across_8_processes(tmp_path: Path, redis_url: str, redis_prefix: str) -> None:
    results = _spend_in_processes(tmp_path, f"{redis_url}?prefix={redis_prefix}", f"jsonl:///{tmp_path}/audit.jsonl")
    _check_budget(results)
    from fsa_guard.audit.jsonl import JSONLAuditSink

    (report,) = verify_sink(JSONLAuditSink(tmp_path / "audit.jsonl"))
    assert report.ok, str(report)


@pytest.mark.parametrize("scheme", ["sqlite", "jsonl"])
def test_a_worker_killed_mid_run_leaves_a_valid_chain_with_every_executed_call(tmp_path: Path, scheme: str) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    trail = tmp_path / f"audit.{scheme}"
    url = f"{scheme}:///{trail}"
    log = tmp_path / "ran.log"
    procs = [subprocess.Popen([sys.executable, str(WORKERS), "crash", str(spec), url, str(log)]) for _ in range(2)]
    deadline = time.time() + 30
    while (not log.exists() or len(log.read_text().splitlines()) < 300) and time.time() < deadline:
        time.sleep(0.05)
    for p in procs:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    executed = set(log.read_text().split())
    assert len(executed) >= 300
    if scheme == "sqlite":
        sink = SQLiteAuditSink(trail)
    else:
        from fsa_guard.audit.jsonl import JSONLAuditSink

        sink = JSONLAuditSink(trail)
    (report,) = verify_sink(sink)
    assert report.ok, str(report)
    recorded = {
        r["proposed"]["args"]["call"]
        for r in sink.read("default")
        if r.get("kind") == "decision" and r["outcome"] == "allow"
    }
    assert executed <= recorded  # every call that ran was decided and recorded first
