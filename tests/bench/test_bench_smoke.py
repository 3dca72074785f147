"""``python -m bench --quick`` runs every benchmark end to end and writes a report with every section.

The numbers of a quick run mean nothing; this checks that the instrument works, so that ``make bench`` does
not break unnoticed. The peers (cedarpy, invariant-ai) come with the ``bench`` extra: without them the
peers check is skipped with a message, and under CI (``CI`` set) it fails.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = (
    "## Machine",
    "## Summary",
    "## `decide` on the reference specs, per store",
    "## Scaling: specs of 10 to 10,000 norms",
    "## Side by side: fsa_guard, cedarpy, invariant-ai",
    "## LangChain middleware overhead",
    "## Memory",
    "## Profile of the hot path",
    "## Method",
)


def _bench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, object], Path]:
    out = tmp_path_factory.mktemp("bench")
    redis = os.environ.get("FSA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    proc = _bench("--quick", "--out", str(out), "--redis", redis)
    assert proc.returncode == 0, proc.stderr[-4000:]
    md = (out / "benchmarks.md").read_text(encoding="utf-8")
    data = json.loads((out / "benchmarks.json").read_text(encoding="utf-8"))
    return md, data, out


def test_every_section_is_written(quick: tuple[str, dict[str, object], Path]) -> None:
    md, _, out = quick
    for heading in SECTIONS:
        assert heading in md, f"missing section {heading!r}"
    assert "Failed:" not in md
    assert "AMD" in md or "Intel" in md or "cores" in md  # the machine is stated
    if importlib.util.find_spec("matplotlib") is not None:
        png = out / "benchmarks-scaling.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "![p50 per decision as norms grow](benchmarks-scaling.png)" in md


def test_reference_covers_every_store_with_the_same_outcomes(quick: tuple[str, dict[str, object], Path]) -> None:
    _, data, _ = quick
    ref = data["reference"]
    assert isinstance(ref, dict)
    stores = {(r["spec"], r["store"]) for r in ref["rows"]}
    assert {("alice", "memory"), ("alice", "sqlite"), ("personal-assistant", "memory")} <= stores
    assert ref["redis_skipped"] or ("alice", "redis") in stores
    assert ("alice", "memory, CEL package only") in stores  # Python and the CEL package, side by side
    assert all(r["same_outcomes_across_stores"] for r in ref["rows"])
    assert all(r["p50_us"] > 0 for r in ref["rows"])
    assert ref["hot"]["python"]["p50_us"] > 0 and ref["hot"]["cel_only"]["p50_us"] > 0


def test_the_middleware_is_measured_under_invoke_and_ainvoke(quick: tuple[str, dict[str, object], Path]) -> None:
    _, data, _ = quick
    mw = data["middleware"]
    assert isinstance(mw, dict)
    if "skipped" in mw:
        pytest.skip(mw["skipped"])
    assert set(mw["async"]["steps"]) == {"plain", "no-op hooks", "FSAGuardMiddleware"}
    assert all(s["p50_us"] > 0 for s in mw["async"]["steps"].values())
    # the step the target is stated on: ChatOpenAI over a mocked transport (langchain-openai is installed with
    # the LangChain integration, so it must run)
    assert set(mw["openai"]["steps"]) == {"plain", "no-op hooks", "FSAGuardMiddleware"}
    assert set(mw["openai"]["overhead"]) == {"no-op hooks", "FSAGuardMiddleware"}


def test_peers_agree_on_every_call(quick: tuple[str, dict[str, object], Path]) -> None:
    _, data, _ = quick
    peers = data["peers"]
    assert isinstance(peers, dict)
    missing = peers["missing"]
    if missing:
        message = f"{', '.join(missing)} not installed: pip install -e '.[bench]' to compare fsa_guard with its peers"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    assert peers["disagreements"] == []
    assert set(peers["agree"].values()) == {peers["actions"]}
    assert {"fsa_guard", "cedarpy (parsed once)", "invariant (analyze)"} <= set(peers["latency"])


def test_only_and_unknown_names() -> None:
    proc = _bench("--only", "nonsense", timeout=60)
    assert proc.returncode == 2
    assert "unknown benchmark nonsense" in proc.stderr


def test_the_instruction_count_script_runs_its_decisions() -> None:
    # the valgrind part takes minutes; its child, which valgrind watches, must work
    script = Path(__file__).resolve().parents[2] / "bench" / "instructions.py"
    for child in (["--child", "1"], ["--cold-child", "decide", "2"], ["--cold-child", "copy", "2"]):
        proc = subprocess.run([sys.executable, str(script), *child], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, (child, proc.stderr[-2000:])


def test_timed_targets_get_no_verdict_from_an_unsteady_machine(quick: tuple[str, dict[str, object], Path]) -> None:
    # the report of that run, rendered again as if the host's speed had held, or moved under it
    sys.path.insert(0, str(ROOT))
    from bench.report import summary_section

    _, data, _ = quick
    machine = dict(data["machine"])  # type: ignore[call-overload]

    def summary(start: list[float], end: list[float]) -> list[str]:
        return summary_section({**data, "machine": {**machine, "calibration_us": [start, end]}}).splitlines()

    steady = summary([133.0] * 10, [142.0] * 9 + [144.0])
    assert not any("not steady" in line or "unsteady" in line for line in steady)
    shaky = summary([170.0] * 9 + [220.0], [274.0] + [299.0] * 9)
    assert any(line.startswith("**This machine was not steady during the run**") for line in shaky)
    assert any("ranged from 170 to 299 µs (1.76×" in line for line in shaky)
    timed = [line for line in shaky if line.startswith(("| `decide`, reference layered spec", "| norms for other"))]
    assert len(timed) == 2 and all(line.endswith("(machine unsteady) |") for line in timed)
    agree = next(line for line in shaky if line.startswith("| decisions of the peers"))
    assert "unsteady" not in agree
