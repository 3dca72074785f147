"""Instructions per ``decide`` on the reference spec, counted by valgrind: a measure that does not move with
the load on a shared machine, for comparing two versions of the code (or Python against the CEL package).

    .venv/bin/python bench/instructions.py [--rounds 20]

Each path (expressions in Python, and ``FSA_GUARD_PYCEL=0``: everything on the CEL package) runs twice under
``valgrind --tool=callgrind``: once deciding the 47 labelled calls of ``alice`` over the enterprise baseline
``--rounds`` times after one warm-up round, once with the warm-up round alone; the difference over the
number of timed decisions is the count per decision. Takes about a minute per path.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def _child(rounds: int) -> None:
    sys.path.insert(0, str(ROOT))
    from bench.reference import SPECS, load_actions
    from fsa_guard import Guard, load_spec
    from fsa_guard.store.memory import MemoryStore

    spec_files, scenario_files = SPECS["alice"]
    guard = Guard(load_spec(*(ROOT / f for f in spec_files)), store=MemoryStore(), audit=False)
    actions = load_actions(scenario_files)
    for _ in range(rounds + 1):  # the first round builds every tool's plan
        for action in actions:
            guard.report(guard.decide(action), ok=False)


def _count(rounds: int, python: bool) -> int:
    env = {**os.environ, "PYTHONHASHSEED": "0", "FSA_GUARD_PYCEL": "1" if python else "0"}
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__]
    out = subprocess.run([*cmd, "--child", str(rounds)], env=env, capture_output=True, text=True, check=True)
    m = _COLLECTED.search(out.stderr)
    if m is None:
        raise RuntimeError(f"valgrind printed no count: {out.stderr[-2000:]}")
    return int(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        _child(args.child)
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    sys.path.insert(0, str(ROOT))
    from bench.reference import SPECS, load_actions

    decisions = args.rounds * len(load_actions(SPECS["alice"][1]))
    for name, python in (("expressions in Python", True), ("CEL package only", False)):
        per = (_count(args.rounds, python) - _count(0, python)) / decisions
        print(f"{name:24} {per:10,.0f} instructions per decision ({decisions} decisions)")


if __name__ == "__main__":
    main()
