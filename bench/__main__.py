"""``python -m bench``: run the benchmarks and write docs/benchmarks.md, docs/benchmarks-scaling.png and
docs/benchmarks.json; ``--quick`` and ``--only`` write to build/bench/ unless ``--out`` says where. See
``bench/__init__.py``."""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._common import ROOT, busy_and_steal, calibration_us, cpu_times, machine

NAMES = ("reference", "scaling", "peers", "middleware", "memory", "profile")


def plan(quick: bool, n: int | None, redis_url: str) -> dict[str, Callable[[], dict[str, Any]]]:
    """What each benchmark runs with: full by default, a few samples of each with ``quick``."""
    from bench import hotpath, memory, middleware, peers, reference, scaling

    if quick:
        return {
            "reference": lambda: reference.run(n or 200, rounds=2, redis_url=redis_url),
            "scaling": lambda: scaling.run(
                n or 200, rounds=2, sizes=(10, 100), tools=(10, 100), same=(1, 10, 50), background=(100, 10)
            ),
            "peers": lambda: peers.run(100, rounds=1),
            "middleware": lambda: middleware.run(reps=10, rounds=2),
            "memory": lambda: memory.run(norms=1000, tools=10),
            "profile": lambda: hotpath.run(n or 1000),
        }
    return {
        "reference": lambda: reference.run(n or 5000, rounds=5, redis_url=redis_url),
        "scaling": lambda: scaling.run(n or 3000, rounds=5),
        "peers": lambda: peers.run(1000, rounds=5),
        "middleware": lambda: middleware.run(reps=100, rounds=10),
        "memory": lambda: memory.run(norms=10_000, tools=100),
        "profile": lambda: hotpath.run(n or 20_000),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="few samples of everything: a smoke run, not numbers to quote")
    ap.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help=f"run only these (repeat or comma-separate): {', '.join(NAMES)}",
    )
    ap.add_argument("--n", type=int, default=None, help="timed decisions per case (reference, scaling, profile)")
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where benchmarks.md, benchmarks.json and the plot go (default: docs/ for a full run; build/bench/ "
        "with --quick or --only, so that a partial run does not replace the published report)",
    )
    ap.add_argument(
        "--redis", default="redis://127.0.0.1:6379/0", help="the Redis for the redis store (skipped if down)"
    )
    args = ap.parse_args(argv)
    only = [x.strip() for item in args.only for x in item.split(",") if x.strip()] or list(NAMES)
    unknown = [x for x in only if x not in NAMES]
    if unknown:
        ap.error(f"unknown benchmark {', '.join(unknown)}: choose from {', '.join(NAMES)}")

    out = args.out or (ROOT / "build" / "bench" if args.quick or args.only else ROOT / "docs")
    started, counters = time.perf_counter(), cpu_times()
    results: dict[str, Any] = {"machine": machine()}
    calibration = [calibration_us()]
    jobs = plan(args.quick, args.n, args.redis)
    failed = []
    for name in NAMES:
        if name not in only:
            continue
        t0 = time.perf_counter()
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        try:
            results[name] = jobs[name]()
        except Exception as exc:  # one benchmark failing must not lose the others' numbers
            traceback.print_exc()
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            failed.append(name)
        print(f"bench: {name} done in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - started
    results["seconds"] = seconds
    results["machine"]["cpu_during_run"] = busy_and_steal(counters, cpu_times())
    results["machine"]["calibration_us"] = [*calibration, calibration_us()]

    from bench.report import render

    md = render(results, out, {"quick": args.quick, "only": only}, seconds)
    print(f"bench: wrote {md} in {seconds:.0f} s", file=sys.stderr)
    if failed:
        print(f"bench: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
