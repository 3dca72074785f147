"""Render the results of ``python -m bench`` as ``benchmarks.md`` (tables) and ``benchmarks-scaling.png``.

Every benchmark module returns plain data; this module is the only one that formats it. Sections whose
benchmark did not run (``--only``) are left out; a benchmark that failed shows its error.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

PLOT = "benchmarks-scaling.png"

#: What the profile showed and what was done about it. Kept by hand: the generated numbers around it change
#: with every run, this paragraph only when someone acts on a profile.
PROFILE_NOTES = """\
What the profiles show (this one, and cProfile, line_profiler and callgrind runs of the reference calls):

- Before: most of a decision went into handing values to the CEL package, which converts every string,
  list and map it is given (about 1 µs a string: it tries bool, int, float and datetime first), and into
  the Python callbacks it makes for fsa_guard's functions. Its own evaluation was a small share.
- Changed because of it: fsa_guard now evaluates the expressions itself (`fsa_guard/verify/pycel.py`,
  each expression compiled to one Python function over the data as it lies) and leaves to the package
  only what it does not model (errors included); the summary compares both in one run. Also: parsed text
  outputs and local times are cached across decisions, tool-name globs are compiled once, and a history index
  answers a repeated glob lookup from memory.
- Now: about a third of a decision is the expressions, a third fsa_guard's functions (the history lookups
  `in_outputs`, `output_field` and `copied_from`, which turn structured outputs into text with
  `json.dumps`; the time functions), and a third the pipeline around them (`verify`'s set-up, the per-norm
  loop `_check_norm`, `_pipeline`, `_decision`).
- The cost per norm that applies (the scaling curve) is the norm's expression and the loop that checks its
  result. Inside a LangChain agent, `decide` runs on a worker thread LangGraph starts for each step, with
  cold caches: its median there is several times its median in a hot loop (table above), and so is that of
  the middleware's own code. There the cost follows the memory a decision touches more than the work it
  does, so each expression became one generated function instead of a tree of closures (a function object,
  cells and a call per node), and the middleware reads the run's messages in one pass, finding what each
  message is once per message class rather than through pydantic's `isinstance` (which goes through
  `ABCMeta`) several times per message.

Changed because of it, in the benchmark: calls are timed one by one after a warm-up, contenders take turns
in small chunks, `gc.freeze()` follows the set-up (a collection walking a 10,000-norm spec lands in no one
contender's samples), and the LangChain step is also run with a no-op middleware and with the guard's
decision stubbed, to tell LangChain's cost, the middleware's and the decision's apart."""


def _f(x: Any, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(header) - 1)
    marks = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(_f(c) if not isinstance(c, str) else c for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _ok(flag: bool | None) -> str:
    return "–" if flag is None else ("yes" if flag else "**no**")


# -- sections ---------------------------------------------------------------------------------------


def machine_section(m: Mapping[str, Any], args: Mapping[str, Any], seconds: float) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v) or "–"
    absent = ", ".join(k for k, v in m["versions"].items() if not v)
    mode = "quick smoke run (`--quick`): too few samples to quote" if args.get("quick") else "full run"
    rows = [
        ("CPU", m["cpu"]),
        ("cores", str(m["cores"])),
        ("Python", m["python"]),
        ("OS", m["os"]),
        ("load average (1 min) at start", _f(m["load_1m_at_start"], 2)),
        (
            "CPU during the run",
            "–"
            if not m.get("cpu_during_run")
            else f"{m['cpu_during_run']['busy_pct']:.0f} % busy (all cores), "
            f"{m['cpu_during_run']['steal_pct']:.1f} % stolen by the hypervisor",
        ),
        ("speed check: summing 10,000 ints, µs (median of 10 batches, fastest–slowest)", _calibration(m)),
        ("versions", versions),
        ("not installed", absent or "–"),
        ("run", f"{mode}, {m['date']}, {seconds:,.0f} s in all"),
    ]
    return "## Machine\n\n" + _table(["", ""], rows, "ll")


def _calibration(m: Mapping[str, Any]) -> str:
    cal = m.get("calibration_us")
    if not cal:
        return "–"
    parts = []
    for when, batches in zip(("at the start", "at the end"), cal, strict=False):
        parts.append(f"{when} {statistics.median(batches):.0f} ({batches[0]:.0f}–{batches[-1]:.0f})")
    return ", ".join(parts)


#: The slowest over the fastest speed-check batch of a run beyond which its timings decide no target: a steady
#: host keeps them within a few percent (133–144 µs), one with busy neighbours spreads them by a third or more.
UNSTEADY = 1.2


def unsteady(m: Mapping[str, Any]) -> str | None:
    """How far the machine's own speed moved during the run, when too far for its timings to decide a target;
    None when it held steady (or was not checked)."""
    batches = [b for check in m.get("calibration_us") or () for b in check]
    if not batches or max(batches) <= UNSTEADY * min(batches):
        return None
    return (
        f"the speed check ranged from {min(batches):.0f} to {max(batches):.0f} µs "
        f"({max(batches) / min(batches):.2f}×, more than {UNSTEADY:g}×)"
    )


def summary_section(results: Mapping[str, Any]) -> str:
    rows: list[tuple[str, str, str, str]] = []
    moved = unsteady(results.get("machine") or {})

    def timed(flag: bool) -> str:  # a target stated in time, judged only on a steady machine
        return _ok(flag) + (" (machine unsteady)" if moved else "")

    ref = results.get("reference")
    if _ran(ref):
        hot = ref.get("hot") or {}
        if hot.get("python", {}).get("p50_us"):
            py, cel_only = hot["python"], hot.get("cel_only") or {}
            rows.append(
                (
                    "`decide`, reference layered spec, one guard in a hot loop (`bench/decide.py`)",
                    "p50 ≤ 50 µs",
                    f"p50 {_f(py['p50_us'])} µs, p99 {_f(py['p99_us'])} µs",
                    timed(py["p50_us"] <= 50.0),
                )
            )
            if cel_only.get("p50_us"):
                rows.append(
                    (
                        "the same, every expression on the CEL package (`FSA_GUARD_PYCEL=0`)",
                        "–",
                        f"p50 {_f(cel_only['p50_us'])} µs; evaluating in Python takes "
                        f"{py['p50_us'] / cel_only['p50_us']:.2f} of that",
                        "–",
                    )
                )
        alice = {r["store"]: r for r in ref["rows"] if r["spec"] == "alice"}
        if "memory" in alice:
            r, cel_row = alice["memory"], alice.get("memory, CEL package only")
            ratio = f"; on the CEL package only: {_f(cel_row['p50_us'])} µs" if cel_row else ""
            rows.append(
                (
                    "the same, budgets reserved, four guards taking turns (colder caches)",
                    "–",
                    f"p50 {_f(r['p50_us'])} µs, p99 {_f(r['p99_us'])} µs{ratio}",
                    "–",
                )
            )
    sc = results.get("scaling")
    if _ran(sc):
        worst = max(sc["flatness"].values())
        rows.append(
            (
                "norms for other tools grow 10 → 10,000",
                "nearly flat",
                f"p50 at the most norms / at the fewest: {worst:.2f} at worst",
                timed(worst <= 1.25),
            )
        )
        fit, lin = sc["same_fit"], linear_verdict(sc)
        rows.append(
            (
                "norms on the decided tool grow",
                "at most linear",
                f"{fit['per_norm_us']:.2f} µs per norm, R² {fit['r2']:.3f}; growth exponent "
                f"{sc.get('same_exponent', math.nan):.2f} at the top",
                timed(lin),
            )
        )
    peers = results.get("peers")
    if _ran(peers):
        n_dis = len(peers["disagreements"])
        rows.append(
            (
                "decisions of the peers on the same calls",
                "all agree",
                f"{n_dis} disagreements of {peers['actions']:,}",
                _ok(n_dis == 0),
            )
        )
        cedar = peers["fsa_over"].get("cedarpy (parsed once)")
        if cedar is not None:
            rows.append(
                (
                    "fsa_guard p50 / cedarpy p50 (policy set parsed once)",
                    "≤ 0.5",
                    f"{cedar:.2f}",
                    timed(cedar <= 0.5),
                )
            )
    mw = results.get("middleware")
    if _ran(mw) and "skipped" not in mw:

        def share(over: Mapping[str, Any]) -> str:
            o, noop = over["FSAGuardMiddleware"], over["no-op hooks"]
            return (
                f"{o['paired_us']:+.0f} µs, {o['paired_pct']:.1f} % (a middleware with the same hooks doing "
                f"nothing: {noop['paired_us']:+.0f} µs, {noop['paired_pct']:.1f} %)"
            )

        oa = mw.get("openai")
        if oa:
            rows.append(
                (
                    "FSAGuardMiddleware on a `create_agent` step, `ChatOpenAI` mocked at the HTTP transport",
                    "≤ 5 % of the step",
                    share(oa["overhead"]),
                    timed(oa["overhead"]["FSAGuardMiddleware"]["paired_pct"] <= 5.0),
                )
            )
        rows.append(
            (
                "the same step with a scripted `BaseChatModel` (no client, no HTTP: the worst case)",
                "–" if oa else "≤ 5 % of the step",
                share(mw["overhead"]),
                "–" if oa else timed(mw["overhead"]["FSAGuardMiddleware"]["paired_pct"] <= 5.0),
            )
        )
    mem = results.get("memory")
    if _ran(mem):
        big = mem["rows"][2]
        rows.append(
            (
                f"peak RSS, process holding the {mem['norms']:,}-norm spec",
                "–",
                f"{big['peak_rss_mib']:.0f} MiB ({big['over_baseline_mib']:+.0f} MiB over importing fsa_guard)",
                "–",
            )
        )
    if not rows:
        return ""
    table = _table(["what", "target", "measured", "met"], rows, "llll")
    if moved:
        table += (
            f"\n\n**This machine was not steady during the run**: {moved}, so other work on the host changed its "
            "speed under the measurements. The timed rows above are not a verdict; rerun `make bench` on a quiet "
            "machine. The agreement of the peers does not depend on it."
        )
    return "## Summary\n\n" + table


def _calls(ref: Mapping[str, Any], spec: str) -> str:
    """How many labelled calls the run decided on ``spec`` (its scenario files grow)."""
    return next((f"{r['actions']:,}" for r in ref.get("rows", ()) if r.get("spec") == spec), "all")


def reference_section(ref: Mapping[str, Any]) -> str:
    out = [
        "## `decide` on the reference specs, per store",
        "",
        "`alice`: `policies/examples/alice.yaml` layered over `policies/enterprise-baseline.yaml` (a person's layer "
        f"over the enterprise baseline), its {_calls(ref, 'alice')} labelled calls round robin. `personal-assistant`: "
        f"`policies/personal-assistant.yaml`, its {_calls(ref, 'personal-assistant')} labelled calls. Budgets really "
        "reserve in the store; each "
        "reservation is released after the timed `decide`, untimed. Stores take turns, "
        f"{ref['rounds']} rounds. Redis: {ref['redis']}. `memory, CEL package only` is the memory store with "
        "every expression evaluated by the CEL package (`FSA_GUARD_PYCEL=0`) instead of in Python.",
        "",
    ]
    hot = ref.get("hot") or {}
    if hot.get("python", {}).get("p50_us") and hot.get("cel_only", {}).get("p50_us"):
        py, cel_only = hot["python"], hot["cel_only"]
        out += [
            f"One guard on `alice` in a hot loop, budgets never filling (`bench/decide.py`, the measure the target "
            f"is stated in): p50 {_f(py['p50_us'])} µs (p99 {_f(py['p99_us'])}) evaluating in Python, "
            f"{_f(cel_only['p50_us'])} µs (p99 {_f(cel_only['p99_us'])}) on the CEL package only.",
            "",
        ]
    rows = [
        (
            f"`{r['spec']}`",
            r["store"],
            r["actions"],
            r["norms"],
            r["budgets"],
            r["p50_us"],
            r["p99_us"],
            r["n"],
            "yes" if r["same_outcomes_across_stores"] else "**no**",
        )
        for r in ref["rows"]
    ]
    out.append(
        _table(
            ["spec", "store", "calls", "norms", "budgets", "p50 µs", "p99 µs", "timed", "same outcomes"],
            rows,
            "llrrrrrrl",
        )
    )
    if ref.get("alice_by_tool"):
        out += [
            "",
            "Per tool, `alice`, memory store (a tool's labelled calls round robin; norms that apply to it):",
            "",
        ]
        rows = [(f"`{t}`", v["actions"], v["norms"], v["p50_us"], v["p99_us"]) for t, v in ref["alice_by_tool"].items()]
        out.append(_table(["tool", "calls", "norms", "p50 µs", "p99 µs"], rows))
    return "\n".join(out)


#: The growth exponent up to which the cost counts as linear (noise on a shared machine moves it by ±0.05).
LINEAR_UP_TO = 1.1


def linear_verdict(sc: Mapping[str, Any]) -> bool:
    """At most linear: between the two largest points, the cost above the smallest point grows with an
    exponent of at most :data:`LINEAR_UP_TO` (1 is linear), and a line fits (R² ≥ 0.95)."""
    alpha = sc.get("same_exponent", math.nan)
    return bool(sc["same_fit"]["r2"] >= 0.95 and not alpha > LINEAR_UP_TO)


def scaling_section(sc: Mapping[str, Any], plot: str | None) -> str:
    pts = sc["points"]
    other = [p for p in pts if p["curve"] == "other"]
    tools = sorted({p["tools"] for p in other})
    sizes = sorted({p["norms"] for p in other})
    bg = sc["background"]
    out = [
        "## Scaling: specs of 10 to 10,000 norms",
        "",
        'The decided call is `probe(recipient="r-x", amount=10.0)`; every norm is silent on it, so every norm that '
        "applies is evaluated (the worst case). **Norms for other tools**: the spec holds N norms spread over T other "
        "tools, and `probe` keeps the same 5 norms. **Norms on the decided tool**: `probe` holds k norms, over a "
        f"background of {bg['norms']:,} norms on {bg['tools']} other tools. Every point is a spec file loaded with "
        f"`Guard.from_files`; the points take turns, {sc['rounds']} rounds, {sc['per_point']:,} timed decisions each.",
        "",
        "p50 µs of a decision on `probe` (p99 in brackets), norms for other tools:",
        "",
    ]
    by = {(p["norms"], p["tools"]): p for p in other}
    rows = []
    for s in sizes:
        rows.append([f"{s:,}"] + [f"{by[(s, t)]['p50_us']:.1f} ({by[(s, t)]['p99_us']:.0f})" for t in tools])
    out.append(_table(["norms N"] + [f"over {t:,} tools" for t in tools], rows))
    flat = ", ".join(f"{t:,} tools {sc['flatness'][t]:.2f}" for t in tools)
    out += ["", f"p50 at N = {sizes[-1]:,} over p50 at N = {sizes[0]:,}: {flat}.", ""]
    out += ["Load time (parse, layer, validate, compile) and the first decision on `probe` (builds its plan):", ""]
    rows = [
        [f"{s:,}"] + [f"{by[(s, t)]['load_s']:.2f} s / {by[(s, t)]['first_decision_us'] / 1000:.1f} ms" for t in tools]
        for s in sizes
    ]
    out.append(_table(["norms N"] + [f"over {t:,} tools" for t in tools], rows))
    same = sorted((p for p in pts if p["curve"] == "same"), key=lambda p: p["norms"])
    fit = sc["same_fit"]
    out += ["", "Norms on the decided tool:", ""]
    rows = [
        (
            f"{p['norms']:,}",
            p["p50_us"],
            p["p99_us"],
            fit["intercept_us"] + fit["per_norm_us"] * p["norms"],
            p["load_s"],
            p["first_decision_us"] / 1000,
        )
        for p in same
    ]
    out.append(_table(["norms k on `probe`", "p50 µs", "p99 µs", "line fit µs", "load s", "first decision ms"], rows))
    marg = "; ".join(f"{m['from']:,} → {m['to']:,}: {m['per_norm_us']:.2f} µs" for m in sc["same_marginal"])
    alpha = sc.get("same_exponent", math.nan)
    verdict = f"growth exponent between the two largest points α = {alpha:.2f} (1 is linear, 2 quadratic): " + (
        "at most linear" if linear_verdict(sc) else "**faster than linear** at the top of the range"
    )
    out += [
        "",
        f"Least squares: p50 ≈ {fit['intercept_us']:.1f} µs + {fit['per_norm_us']:.3f} µs × k, R² {fit['r2']:.4f}. "
        f"Cost per added norm between points: {marg}. Verdict: {verdict}.",
    ]
    if plot:
        out += ["", f"![p50 per decision as norms grow]({plot})"]
    return "\n".join(out)


def peers_section(p: Mapping[str, Any]) -> str:
    mix = ", ".join(f"{t} {c}" for t, c in p["by_tool"].items())
    out = [
        "## Side by side: fsa_guard, cedarpy, invariant-ai",
        "",
        f"One policy, written for each engine (bench/peers.py keeps the versions next to each other), and "
        f"{p['actions']:,} calls generated with a fixed seed ({mix}); "
        f"{p['denied']:,} of them should be denied. A plain Python function states the policy a fourth time as the "
        "oracle. All engines refuse tools the policy does not name.",
        "",
        _table(["rule", "tool", "denies"], [(f"`{r['id']}`", f"`{r['tool']}`", r["says"]) for r in p["rules"]], "lll"),
        "",
    ]
    if p["missing"]:
        out += [f"Not installed, left out: {', '.join(p['missing'])} (`pip install -e '.[bench]'`).", ""]
    out += ["**Agreement** (each engine's answer against the oracle, on every call):", ""]
    out.append(
        _table(
            ["engine", "same answer as the oracle"],
            [(f"{k}", f"{v:,} / {p['actions']:,}") for k, v in p["agree"].items()],
        )
    )
    out += ["", "Disagreements:", ""]
    if p["disagreements"]:
        rows = [
            (
                d["i"],
                f"`{d['tool']}`",
                f"`{json.dumps(d['args'])[:80]}`",
                d["expected"],
                ", ".join(f"{k}: {v}" for k, v in d["got"].items()),
            )
            for d in p["disagreements"][:50]
        ]
        out.append(_table(["#", "tool", "args", "oracle", "engines that differ"], rows, "rllll"))
    else:
        out.append("none: every engine reached the oracle's decision on every call.")
    if p.get("notes"):
        out += ["", "Writing the rules for each engine:", ""] + [f"- {n}" for n in p["notes"]]
    if p.get("excluded_rules"):
        out += [
            "",
            f"Rules left out for all engines (one could not express them exactly): {', '.join(p['excluded_rules'])}.",
        ]
    lat = p["latency"]
    fsa = lat["fsa_guard"]["p50_us"]
    out += [
        "",
        f"**Latency** per decision, µs; the engines take turns every {p.get('chunk', p['actions'])} calls, "
        f"{p['rounds']} passes over all {p['actions']:,} calls:",
        "",
    ]
    rows = []
    for name, s in lat.items():
        rel = "1" if name == "fsa_guard" else f"{p['fsa_over'][name]:.2f}"
        times = "–" if name == "fsa_guard" else f"{s['p50_us'] / fsa:.1f}×"
        rows.append((name, s["p50_us"], s["p99_us"], s["mean_us"], rel, times))
    out.append(_table(["engine", "p50", "p99", "mean", "fsa_guard p50 / its p50", "its p50 / fsa_guard p50"], rows))
    out += [
        "",
        "- *cedarpy (parsed once)*: `cedarpy.is_authorized(request, PolicySet, Entities)`, the policy set and the "
        "(empty) entity set parsed once with `PolicySet.from_str` / `Entities.from_json_str`; the request's context "
        "is the call's args, which cedarpy turns into JSON per call.",
        '- *cedarpy (policy text per call)*: `is_authorized(request, policy_text, "[]")` as its README shows; '
        "Cedar parses the policies on every call.",
        "- *invariant (analyze)*: `LocalPolicy.from_string(...)` once, then `policy.analyze(trace)` per call with a "
        "trace of the user's message and the assistant's tool call; `analyze` runs `asyncio.run` each time. "
        "*a_analyze, one loop*: the same, awaited on one event loop kept for the run.",
        "- *plain Python (floor)*: the oracle: what the rules cost with no engine, no explanation, no audit data.",
        "- fsa_guard's `decide` returns more than allow/deny: the findings with the ids and values they serve, the "
        "spec digest, per-stage timings.",
        "",
        "<details><summary>The policy as each engine reads it</summary>",
        "",
        "Cedar:",
        "",
        "```cedar",
        p["policies"]["cedar"].rstrip(),
        "```",
        "",
        "Invariant:",
        "",
        "```",
        p["policies"]["invariant"].rstrip(),
        "```",
        "",
        "fsa_guard:",
        "",
        "```yaml",
        p["policies"]["fsa_guard"].rstrip(),
        "```",
        "",
        "</details>",
    ]
    return "\n".join(out)


def _step_rows(steps: Mapping[str, Any], over: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """One row per agent variant: its step p50 and p99, and its overhead over ``plain`` ("–" for plain)."""
    return [
        (
            name,
            s["p50_us"],
            s["p99_us"],
            "–" if name not in over else f"{over[name]['paired_us']:+.0f}",
            "–" if name not in over else f"{over[name]['paired_pct']:.1f} %",
        )
        for name, s in steps.items()
    ]


def middleware_section(mw: Mapping[str, Any]) -> str:
    if "skipped" in mw:
        return f"## LangChain middleware overhead\n\nSkipped: {mw['skipped']}."
    steps, over = mw["steps"], mw["overhead"]
    out = [
        "## LangChain middleware overhead",
        "",
        "One step of a `langchain.agents.create_agent` agent: the model proposes an internal `send_email`, the "
        "tool runs, the model answers. The guard uses the reference layered spec, which allows the call. Variants "
        f"take turns, {mw['rounds']} rounds, {mw['reps']:,} steps each. Overhead: the median over rounds of "
        "(variant's median − plain's median) of that round.",
        "",
    ]
    oa = mw.get("openai")
    if oa:
        rows = _step_rows(oa["steps"], oa["overhead"])
        out += [
            "The model is `ChatOpenAI` (langchain-openai) with its HTTP mocked at the transport, as this project "
            "mocks a model everywhere else: an `httpx.MockTransport` answers at once with OpenAI's exact "
            "chat-completion JSON (tool call, usage), so the client builds each request and parses each response, "
            "and no time goes to the network. The target is stated on this step.",
            "",
            _table(["agent, ChatOpenAI", "step p50 µs", "step p99 µs", "overhead µs", "overhead"], rows),
            "",
        ]
    out += [
        "With a scripted `BaseChatModel` instead (no client, no HTTP, answers at once) the step is all framework "
        "and no model: the worst case for the guard's share.",
        "",
    ]
    out.append(_table(["agent", "step p50 µs", "step p99 µs", "overhead µs", "overhead"], _step_rows(steps, over)))
    hot, inside = mw["decide_hot_loop"], mw["decide_inside_agent"]
    bd = mw.get("breakdown")
    if bd:
        out += [
            "",
            f"Where FSAGuardMiddleware's overhead comes from (medians of per-round differences): LangChain's "
            f"hooks {bd['langchain_hooks_us']:+.0f} µs (no-op hooks − plain); the middleware's own code "
            f"{bd['middleware_code_us']:+.0f} µs (decision stubbed − no-op hooks); the decision "
            f"{bd['decision_us']:+.0f} µs (FSAGuardMiddleware − decision stubbed), of which the `decide` call "
            f"itself is {inside['p50_us']:.0f} µs at the median, the rest the step around it running slower after "
            f"it. `inject_values=True` (model hooks, and the values in the system message) adds "
            f"{bd['model_hook_us']:+.0f} µs (inject_values − FSAGuardMiddleware).",
        ]
    out += [
        "",
        f"`guard.decide` on that call: p50 {hot['p50_us']:.1f} µs in a hot loop; p50 {inside['p50_us']:.1f} µs inside "
        "the agent, where LangGraph runs the tool node on a worker thread it starts for the step (cold caches). "
        "*no-op hooks* is a middleware whose `wrap_tool_call` only calls on: what LangChain "
        "charges for the hook FSAGuardMiddleware registers. *inject_values* is FSAGuardMiddleware with "
        "`inject_values=True`: only then does it have model hooks, so only then does LangChain wrap the model call "
        "through it. *decision stubbed* is FSAGuardMiddleware around a guard whose `decide` "
        "returns at once the decision the real one reaches: the middleware's own code without the decision. "
        "Against a real model call (hundreds of ms), the same microseconds are "
        "well under 1 % of a step.",
    ]
    aio = mw.get("async")
    if aio:
        rows = _step_rows(aio["steps"], aio["overhead"])
        out += [
            "",
            "The same step run with `ainvoke` (one event loop, variants taking turns every 5 steps). There the sync "
            "tool runs on an executor thread, and LangChain's async path for a tool hook costs far more than the sync "
            "one: the *no-op hooks* row is what any middleware with `awrap_tool_call` pays.",
            "",
            _table(["agent, ainvoke", "step p50 µs", "step p99 µs", "overhead µs", "overhead"], rows),
        ]
    return "\n".join(out)


def memory_section(mem: Mapping[str, Any]) -> str:
    rows = [
        (r["case"], r["peak_rss_mib"], r["over_baseline_mib"], r.get("rss_mib"), r.get("load_s")) for r in mem["rows"]
    ]
    return "\n".join(
        [
            "## Memory",
            "",
            "A fresh Python process per case. Peak RSS is its high-water mark (`VmHWM`; `ru_maxrss` would "
            "carry over the high-water mark of the benchmark process that started it), held RSS is `VmRSS` at "
            "the end, after a garbage collection. Loading parses the YAML with line numbers (for error "
            "messages), so the peak is reached while loading.",
            "",
            _table(["process", "peak RSS MiB", "over baseline MiB", "held RSS MiB", "load s"], rows),
        ]
    )


def profile_section(pr: Mapping[str, Any]) -> str:
    stages = ", ".join(
        f"{k} {v['mean']:.1f} µs"
        + (f" (in {v['share_of_decisions']:.0%} of decisions)" if v["share_of_decisions"] < 1 else "")
        for k, v in pr["stages_us"].items()
    )
    out = [
        "## Profile of the hot path",
        "",
        f"`decide` on `{pr['spec']}`, its {pr['actions']} labelled calls round robin, {pr['decisions']:,} decisions "
        f"under {pr['tool']} (profiling slows each decision down; shares are what counts). Mean time per stage, "
        f"as the decisions record it (profiled): {stages}.",
        "",
        "Functions by own time (share of the profiled time):",
        "",
        "```",
        pr["flat"],
        "```",
    ]
    if pr.get("tree"):
        out += ["", "Top of the call tree:", "", "```", pr["tree"], "```"]
    out += ["", PROFILE_NOTES]
    return "\n".join(out)


def method_section() -> str:
    return "\n".join(
        [
            "## Method",
            "",
            "- Every call is timed on its own with `time.perf_counter_ns`, after a warm-up pass; tables give the "
            "median (p50) and the 99th percentile (p99) of all samples, in µs.",
            "- Contenders (stores, engines, agents, points of a curve) take turns in rounds, in a rotating order, "
            "so drift on the machine falls on all of them; ratios are of medians taken in the same run.",
            "- A speed check (10 batches summing 10,000 ints) runs at the start and at the end. Where its slowest "
            f"batch took more than {UNSTEADY:g}× its fastest, other work on the host moved the machine's speed under "
            "the run: the summary marks the verdicts of its timed targets *(machine unsteady)*, and they do not count; "
            "rerun on a quiet host.",
            "- After set-up, `gc.collect()` then `gc.freeze()`: objects built while loading (10,000 norms) stay out "
            "of the collections that happen during timing.",
            "- The guards keep no audit trail (`audit=False`): writing the trail is a stage of its own, measured by "
            "`bench/state.py` (`sqlite+audit`).",
            "- Rerun: `make bench`, or `python -m bench [--quick] "
            "[--only reference,scaling,peers,middleware,memory,profile] [--n N] [--out DIR]`. The raw numbers are in "
            "`benchmarks.json` beside this file.",
        ]
    )


# -- the plot --------------------------------------------------------------------------------------------


def plot(sc: Mapping[str, Any], path: Path) -> str | None:
    """Two panels: p50 against norms (log-log, every curve), and the decided tool's own norms (linear, with the
    fitted line). None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    pts = sc["points"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for t in sorted({p["tools"] for p in pts if p["curve"] == "other"}):
        line = sorted((p for p in pts if p["curve"] == "other" and p["tools"] == t), key=lambda p: p["norms"])
        ax1.plot(
            [p["norms"] for p in line],
            [p["p50_us"] for p in line],
            marker="o",
            label=f"norms for other tools ({t:,} tools)",
        )
    same = sorted((p for p in pts if p["curve"] == "same"), key=lambda p: p["norms"])
    ax1.plot(
        [p["norms"] for p in same],
        [p["p50_us"] for p in same],
        marker="s",
        color="black",
        label="norms on the decided tool",
    )
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xlabel("number of norms")
    ax1.set_ylabel("p50 per decision (µs)")
    ax1.set_title("Cost per decision as the spec grows")
    ax1.grid(True, which="both", alpha=0.3)
    ax1.legend(fontsize=8)
    fit = sc["same_fit"]
    xs = [p["norms"] for p in same]
    ax2.errorbar(
        xs,
        [p["p50_us"] for p in same],
        yerr=[[0] * len(same), [p["p99_us"] - p["p50_us"] for p in same]],
        fmt="s",
        color="black",
        capsize=3,
        label="p50 (bar up to p99)",
    )
    ax2.plot(
        [0, max(xs)],
        [fit["intercept_us"], fit["intercept_us"] + fit["per_norm_us"] * max(xs)],
        "--",
        label=f"{fit['intercept_us']:.0f} µs + {fit['per_norm_us']:.2f} µs × k",
    )
    ax2.set_xlabel("norms k on the decided tool")
    ax2.set_ylabel("µs per decision")
    ax2.set_title("Norms that apply to the decided tool")
    ax2.grid(True, alpha=0.3)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


# -- the document ----------------------------------------------------------------------------------------


def _ran(section: Any) -> bool:
    return isinstance(section, Mapping) and "error" not in section


def render(results: Mapping[str, Any], out_dir: Path, args: Mapping[str, Any], seconds: float) -> Path:
    """Write benchmarks.md, benchmarks.json and (with scaling results) the PNG into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = [
        "# Benchmarks",
        "",
        "Generated by `python -m bench` (`make bench`); do not edit by hand, rerun it. What a guard costs on every "
        "tool call: `decide` on the reference specs with each store, the cost curve as specs grow, fsa_guard "
        "next to cedarpy and invariant-ai on one policy, the LangChain middleware's share of an agent step, memory, "
        "and a profile of the hot path.",
        "",
        machine_section(results["machine"], args, seconds),
    ]
    summary = summary_section(results)
    if summary:
        parts += ["", summary]
    sections: dict[str, Callable[[Mapping[str, Any]], str]] = {
        "reference": reference_section,
        "scaling": lambda data: scaling_section(data, plot(data, out_dir / PLOT)),
        "peers": peers_section,
        "middleware": middleware_section,
        "memory": memory_section,
        "profile": profile_section,
    }
    for name, section in sections.items():
        if name not in results:
            continue
        data = results[name]
        parts += ["", section(data) if _ran(data) else f"## {name}\n\nFailed: `{data['error']}`"]
    parts += ["", method_section(), ""]
    md = out_dir / "benchmarks.md"
    md.write_text("\n".join(parts), encoding="utf-8")
    (out_dir / "benchmarks.json").write_text(json.dumps(results, indent=1, default=str) + "\n", encoding="utf-8")
    return md
