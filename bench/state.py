"""Decisions per second with durable state: memory, SQLite and Redis stores, with 1, 2 and 4 processes.

    .venv/bin/python bench/state.py [--seconds 3] [--procs 1,2,4] [--backends memory,sqlite,sqlite+audit,...]

Each process decides (and reports as run) calls of one tool that spends a budget, for a fixed time; the
figure is all processes' decisions divided by the wall time. ``sqlite+audit`` also writes every decision and
outcome to a SQLite audit trail, ``sqlite+jsonl`` to one JSONL file that all processes share. Redis is the one
at 127.0.0.1:6379 (``--redis`` to change it).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SPEC = """
fsa_guard: 1
id: bench-state
values:
  - id: thrift
    title: Spending within our means
    attends_to: [LIMITS we agreed on]
budgets:
  - id: units
    tools: [spend]
    measure: double(action.args.amount)
    limit: 1.0e12
    window: 1d
    serves: [thrift]
"""


def _worker(spec: str, store: str, audit: str | None, seconds: float, start: float, q: mp.Queue) -> None:  # type: ignore[type-arg]
    from fsa_guard import Action, Guard, load_spec

    guard = Guard(load_spec(spec), store=store, audit=audit)
    action = Action("spend", {"amount": 1.0})
    while time.time() < start:
        time.sleep(0.001)
    n, end = 0, start + seconds
    while time.time() < end:
        d = guard.decide(action)
        guard.report(d, ok=True)
        n += 1
    q.put(n)


def run(backend: str, procs: int, seconds: float, tmp: Path, redis_url: str) -> float:
    spec = tmp / "spec.yaml"
    spec.write_text(SPEC)
    tag = uuid.uuid4().hex[:8]
    audit = None
    if backend == "memory":
        store = "memory://"
    elif backend.startswith("sqlite"):
        store = f"sqlite:///{tmp}/state-{tag}.db"
        if backend.endswith("+audit"):
            audit = f"sqlite:///{tmp}/audit-{tag}.db"
        elif backend.endswith("+jsonl"):
            audit = f"jsonl:///{tmp}/audit-{tag}.jsonl"
    else:
        store = f"{redis_url}?prefix=fsa-bench-{tag}"
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    start = time.time() + 2.0  # every process has imported and loaded the spec by then
    ps = [ctx.Process(target=_worker, args=(str(spec), store, audit, seconds, start, q)) for _ in range(procs)]
    for p in ps:
        p.start()
    total = sum(q.get() for _ in ps)
    for p in ps:
        p.join()
    return total / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--procs", default="1,2,4")
    ap.add_argument("--backends", default="memory,sqlite,sqlite+audit,sqlite+jsonl,redis")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = ap.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"CPython {platform.python_version()}; {args.seconds:g} s per run; decisions/s (all processes)"
    )
    procs = [int(p) for p in args.procs.split(",")]
    print(f"{'backend':14}" + "".join(f"{p:>10} proc" for p in procs))
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            rates = [run(backend, p, args.seconds, Path(tmp), args.redis) for p in procs]
            print(f"{backend:14}" + "".join(f"{r:15,.0f}" for r in rates))


if __name__ == "__main__":
    main()
