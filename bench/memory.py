"""Peak memory (RSS) of a process holding a spec: a fresh Python process per case.

    .venv/bin/python -m bench --only memory

Cases: a process that only imports fsa_guard (the baseline); one that loads the reference layered spec;
one that loads a 10,000-norm spec (10,000 norms over 100 tools, the scaling benchmark's generator); the
same after one decision on every tool, so that every tool's compiled plan exists. Peak RSS is the process's
high-water mark, ``VmHWM`` in /proc/self/status, and the RSS it still holds at the end, ``VmRSS`` (after a
garbage collection). ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` is recorded too but not used where
/proc is there: Linux carries the parent's high-water mark over ``fork`` + ``exec`` into it, so a child
of a big process reports the parent's peak.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench._common import ROOT
from bench.scaling import _dump, spec

_CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import fsa_guard
from fsa_guard import Action, Guard
out = {"import_s": time.perf_counter() - t0}
paths, tools = sys.argv[1:-1], int(sys.argv[-1])
if paths:
    t0 = time.perf_counter()
    guard = Guard.from_files(*paths, audit=False)
    out["load_s"] = time.perf_counter() - t0
    if tools:
        t0 = time.perf_counter()
        for t in ["probe"] + [f"tool_{i}" for i in range(tools)]:
            guard.decide(Action(t, {"recipient": "r-x", "amount": 10.0}))
        out["plans_s"] = time.perf_counter() - t0
import gc
gc.collect()
out["maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    with open("/proc/self/status") as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    out["hwm_kib"] = int(status["VmHWM"].split()[0])
    out["rss_kib"] = int(status["VmRSS"].split()[0])
except (OSError, KeyError, ValueError):
    pass
print(json.dumps(out))
"""


def _child(paths: list[str], decide_tools: int = 0) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, *paths, str(decide_tools)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the measuring process failed:\n{proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def run(norms: int = 10_000, tools: int = 100) -> dict[str, Any]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / f"synthetic-{norms}.yaml"
        _dump(spec(norms, tools), big)
        cases = [
            ("import fsa_guard only", [], 0),
            ("reference spec (alice over the enterprise baseline)", [str(ROOT / "policies/examples/alice.yaml")], 0),
            (f"{norms:,}-norm spec over {tools} tools, loaded", [str(big)], 0),
            (f"{norms:,}-norm spec, after a decision on each of its {tools + 1} tools", [str(big)], tools),
        ]
        for label, paths, decide_tools in cases:
            r = _child(paths, decide_tools)
            rss, peak = r.get("rss_kib"), r.get("hwm_kib", r["maxrss_kib"])
            rows.append({"case": label, "peak_rss_mib": peak / 1024, "rss_mib": rss / 1024 if rss else None, **r})
    base = rows[0]["peak_rss_mib"]
    for r in rows:
        r["over_baseline_mib"] = r["peak_rss_mib"] - base
    return {"rows": rows, "norms": norms, "tools": tools}
