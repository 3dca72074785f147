"""Instructions per ``decide`` on the reference spec, counted by valgrind: a measure that does not move with
the load on a shared machine, for comparing two versions of the code (or Python against the CEL package).

    .venv/bin/python bench/instructions.py [--rounds 20]

Each path (expressions in Python, and ``FSA_GUARD_PYCEL=0``: everything on the CEL package) runs twice under
``valgrind --tool=callgrind``: once deciding the labelled calls of ``alice`` over the enterprise baseline
``--rounds`` times after one warm-up round, once with the warm-up round alone; the difference over the
number of timed decisions is the count per decision. Takes about a minute per path.

    .venv/bin/python bench/instructions.py --agent [--steps 40]

The LangChain step of ``bench/middleware.py`` (``ChatOpenAI`` mocked at the transport) under
``valgrind --tool=cachegrind`` with its cache simulation, the last level set to a 512 KiB L2 (the EPYC's):
instructions and simulated cache misses per step for the plain agent, the agent with a no-op tool hook, and the
agent with FSAGuardMiddleware. Inside an agent a decision runs with cold caches, so its misses weigh as much as
its instructions; these counts do not move with the load on a shared host, where the timed share does. Takes a
few minutes.

    .venv/bin/python bench/instructions.py --cold [--decisions 60]

What one cold decision fetches: the bench's ``send_email`` on the reference spec, decided after copying 6 MiB
(which empties the simulated 512 KiB level, as an agent's step does between two tool calls), minus the copies
alone. The lines missed beyond L2 (instructions and data) are what a decision pays for inside an agent, far more
than its instructions; a change that touches fewer objects shows here. The counts vary by a few percent from
run to run (the D1 misses by up to a tenth), with where objects land in memory. About a minute.
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


_CACHEGRIND = re.compile(r"==\d+== (I\s+refs|I1\s+misses|LLi misses|D1\s+misses|LLd misses|LL misses):\s+([\d,]+)")
_AGENTS = ("plain", "no-op hooks", "FSAGuardMiddleware")
_WARM_STEPS = 10


def _agent_child(variant: str, steps: int) -> None:
    os.environ["LANGSMITH_TRACING"] = "false"
    sys.path.insert(0, str(ROOT))
    from bench.middleware import build

    built = build()
    agent = built["openai_agents"][variant]
    for _ in range(steps):
        agent.invoke(built["input"])


def _cachegrind(*child: str) -> subprocess.Popen[str]:
    """This script's ``child`` run under cachegrind, its last level simulated as the EPYC's 512 KiB L2."""
    cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=yes", "--LL=524288,8,64", "--cachegrind-out-file=/dev/null"]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    return subprocess.Popen(
        [*cmd, sys.executable, __file__, *child], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def _read_counts(run: subprocess.Popen[str]) -> dict[str, int]:
    _, err = run.communicate()
    counts = {" ".join(k.split()): int(v.replace(",", "")) for k, v in _CACHEGRIND.findall(err)}
    if run.returncode or len(counts) != 6:
        raise RuntimeError(f"cachegrind gave no counts: {err[-2000:]}")
    return counts


def agent(steps: int) -> None:
    """Per step: each variant run for ``_WARM_STEPS`` steps and for ``_WARM_STEPS + steps``, two at a time."""
    per: dict[str, dict[str, float]] = {}
    for variant in _AGENTS:
        short = _cachegrind("--agent-child", variant, str(_WARM_STEPS))
        long = _cachegrind("--agent-child", variant, str(_WARM_STEPS + steps))
        a, b = _read_counts(short), _read_counts(long)
        per[variant] = {k: (b[k] - a[k]) / steps for k in a}
    plain = per["plain"]
    print(_row("per step", ["instructions", "I1 misses", "D1 misses", "L2 misses"]))
    for variant, c in per.items():
        print(_row(variant, [f"{c[k]:,.0f}" for k in _KEYS]))
        if variant != "plain":
            print(_row("  over plain", [f"{100 * (c[k] - plain[k]) / plain[k]:+.1f} %" for k in _KEYS]))


_KEYS = ("I refs", "I1 misses", "D1 misses", "LL misses")


def _cold_child(decide: bool, decisions: int) -> None:
    sys.path.insert(0, str(ROOT))
    import gc

    from bench.middleware import ARGS, REQUEST
    from fsa_guard import Action, Guard

    guard = Guard.from_files(ROOT / "policies/examples/alice.yaml", store="memory://", audit=False)
    action = Action("send_email", ARGS, request=REQUEST)
    source, target = memoryview(bytearray(b"x" * (3 << 20))), memoryview(bytearray(3 << 20))
    for _ in range(50):
        guard.decide(action)
    gc.disable()  # a collection would fall on some decisions and not others
    for _ in range(decisions):
        target[:] = source  # no allocation: the copy alone pushes the decision out of the caches
        if decide:
            guard.decide(action)


def cold(decisions: int) -> None:
    """Per cold decision: (decisions after copies) - (copies alone), each over (``decisions`` - none)."""
    counts: dict[tuple[bool, int], dict[str, int]] = {}
    for decide in (True, False):
        child = ("--cold-child", "decide" if decide else "copy")
        runs = {n: _cachegrind(*child, str(n)) for n in (0, decisions)}
        for n, run in runs.items():
            counts[decide, n] = _read_counts(run)
    keys = ("I refs", "I1 misses", "LLi misses", "D1 misses", "LLd misses")
    print(_row("per cold decision", ["instructions", "I1 misses", "L2 misses, I", "D1 misses", "L2 misses, D"]))
    per = [
        (counts[True, decisions][k] - counts[True, 0][k] - counts[False, decisions][k] + counts[False, 0][k])
        / decisions
        for k in keys
    ]
    print(_row("send_email", [f"{c:,.0f}" for c in per]))


def _row(label: str, cells: list[str]) -> str:
    return f"{label:22}" + "".join(f"{cell:>14}" for cell in cells)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--agent", action="store_true", help="the LangChain step under cachegrind instead")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--agent-child", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--cold", action="store_true", help="what one decision fetches beyond L2 when its caches are cold")
    ap.add_argument("--decisions", type=int, default=60)
    ap.add_argument("--cold-child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        _child(args.child)
        return
    if args.agent_child is not None:
        _agent_child(args.agent_child[0], int(args.agent_child[1]))
        return
    if args.cold_child is not None:
        _cold_child(args.cold_child[0] == "decide", int(args.cold_child[1]))
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    if args.agent:
        agent(args.steps)
        return
    if args.cold:
        cold(args.decisions)
        return
    sys.path.insert(0, str(ROOT))
    from bench.reference import SPECS, load_actions

    decisions = args.rounds * len(load_actions(SPECS["alice"][1]))
    for name, python in (("expressions in Python", True), ("CEL package only", False)):
        per = (_count(args.rounds, python) - _count(0, python)) / decisions
        print(f"{name:24} {per:10,.0f} instructions per decision ({decisions} decisions)")


if __name__ == "__main__":
    main()
