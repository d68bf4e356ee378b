"""The threshold and template sweeps add no image forward: a warm ``dirti-bench run --demo`` with
every scenario stays within 1.5x of the same warm run without the sweep scenarios (both timed as
whole CLI runs, report included, best of alternating rounds); a perf test, off the default run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from dirti_bench.scenarios import REGISTRY

MAX_RATIO = 1.5
ROUNDS = 3  # alternating, best of each side: a shared machine's speed drifts over seconds


def _run(home, out, scenarios=None) -> float:
    env = {**os.environ, "DIRTI_BENCH_HOME": str(home), "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    args = [sys.executable, "-m", "dirti_bench.cli", "run", "--demo", "--no-progress", "--out", str(out)]
    if scenarios:
        args += ["--scenarios", *scenarios]
    start = time.perf_counter()
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr[-2000:]
    return elapsed


@pytest.mark.perf
def test_warm_demo_run_with_sweeps_stays_within_1_5x(tmp_path, benchmark):
    without = [sid for sid in REGISTRY if "sweep" not in sid]
    assert len(without) < len(REGISTRY)
    home = tmp_path / "home"
    _run(home, tmp_path / "cold")  # fills the embedding cache: every later run is warm
    timings = {"with sweeps": [], "without sweeps": []}
    for _ in range(ROUNDS):
        timings["without sweeps"].append(_run(home, tmp_path / "without", without))
        timings["with sweeps"].append(_run(home, tmp_path / "with"))
    best = {name: min(values) for name, values in timings.items()}
    ratio = best["with sweeps"] / best["without sweeps"]
    doc = json.loads((tmp_path / "with" / "results.json").read_text())
    assert doc["run"]["forward_calls"] == 0  # warm: no image or text forward at all
    benchmark.extra_info.update({"seconds": best, "ratio": ratio, "rounds": ROUNDS})
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)  # the timings above are the measurement
    print(f"warm demo run: {best['with sweeps']:.2f} s with the sweeps, {best['without sweeps']:.2f} s without "
          f"(ratio {ratio:.2f})")
    assert ratio <= MAX_RATIO, f"warm run with sweeps {ratio:.2f}x the run without them (target <= {MAX_RATIO}x)"
