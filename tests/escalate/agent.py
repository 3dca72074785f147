"""An agent process for the approval tests: decide (waiting for a person) or resume, print the decision.

python agent.py decide SPEC STORE AUDIT WAIT OUT
python agent.py resume SPEC STORE AUDIT APPROVAL_ID WAIT OUT
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from fsa_guard import Action, ApprovalQueue, Guard, load_spec


def main() -> None:
    mode, spec, store, audit = sys.argv[1:5]
    guard = Guard(load_spec(spec), store=store, audit=audit, approver=ApprovalQueue(store, poll=0.05))
    if mode == "decide":
        wait, out = float(sys.argv[5]), sys.argv[6]
        action = Action(
            "send_money",
            {"recipient": "landlord", "amount": 900.0, "memo": "rent"},
            request="pay the rent",
            history=({"tool": "read_email", "args": {"subject": "rent"}, "output": "900 to landlord"},),
            now=datetime(2026, 3, 2, 10, 0, tzinfo=UTC),
        )
        decision = guard.decide(action, wait=wait)
    else:
        approval_id, wait, out = sys.argv[5], float(sys.argv[6]), sys.argv[7]
        decision = guard.resume(approval_id, wait=wait)
    if decision.allowed:
        guard.report(decision, ok=True)
    Path(out).write_text(json.dumps(decision.to_dict()))


if __name__ == "__main__":
    main()
