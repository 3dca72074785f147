"""Worker processes for the multi-process tests (run as ``python tests/state/workers.py MODE ...``)."""

from __future__ import annotations

import json
import os
import random
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from fsa_guard import Denied, Guard, load_spec

SPEC = """
fsa_guard: 1
id: shared-budget
values:
  - id: thrift
    title: Spending within our means
    attends_to: [LIMITS we agreed on together]
budgets:
  - id: units
    tools: [spend]
    measure: double(action.args.amount)
    limit: 1000
    window: 1d
    serves: [thrift]
"""


def spend_run(spec_path: str, store: str, audit: str, seed: int, calls: int, out: str) -> None:
    """``calls`` parallel calls of a guarded tool spending 1-20 units; writes what ran and what was refused."""
    guard = Guard(load_spec(spec_path), store=store, audit=audit)
    ran: list[float] = []

    @guard.tool
    def spend(amount: float, call: str) -> str:
        ran.append(amount)
        return "ok"

    rng = random.Random(seed)
    amounts = [float(rng.randint(1, 20)) for _ in range(calls)]

    def one(i: int) -> dict[str, object]:
        try:
            spend(amount=amounts[i], call=f"{seed}-{i}")
            return {"amount": amounts[i], "ran": True}
        except Denied as exc:
            used = [f.message for f in exc.decision.findings]
            return {"amount": amounts[i], "ran": False, "findings": exc.decision.finding_ids(), "why": used}

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(calls)))
    Path(out).write_text(json.dumps({"results": results, "ran": ran}))


def crash_run(spec_path: str, audit: str, log: str) -> None:
    """Decide and run calls forever, noting each executed call id in ``log`` after it ran (killed from outside)."""
    guard = Guard(load_spec(spec_path), audit=audit)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)

    @guard.tool
    def spend(amount: float, call: str) -> str:
        os.write(fd, f"{call}\n".encode())
        return "ok"

    i = 0
    while True:
        spend(amount=0.0, call=f"{os.getpid()}-{i}")
        i += 1


if __name__ == "__main__":
    mode, *rest = sys.argv[1:]
    if mode == "spend":
        spend_run(rest[0], rest[1], rest[2], int(rest[3]), int(rest[4]), rest[5])
    elif mode == "crash":
        crash_run(rest[0], rest[1], rest[2])
