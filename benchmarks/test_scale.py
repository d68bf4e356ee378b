"""Growth with n (perf tests, off the default run): a synthetic rated set of tiny files is loaded,
checked and hashed, and every scenario is evaluated on synthetic features, at each size of
``DIRTI_BENCH_PERF_SCALE`` (default ``1000,10000``; ``1000,10000,100000`` for the full check).
Each stage records its seconds and its peak RSS (sampled) in the benchmark's ``extra_info``.

Sizes of the evaluation test: ``DIRTI_BENCH_PERF_EVAL_SCALE`` (default ``1000,3000``).

Targets (issue "From 300 photos to the large affective sets", 2 cores): 100k files load and hash
in <= 120 s; every scenario on 100k rows of 512-d features (8 categories, 3 ratings) in <= 15 min
with peak RSS <= 8 GB. Sizes below 100k are extrapolated linearly from the largest measured size
(loading is linear; for evaluation a linear projection is a lower bound, and the growth exponent
between the sizes is recorded to show by how much), so a busy shared machine can check the trend
without running the full size.
"""

from __future__ import annotations

import math
import os
import threading
import time

import pytest

from dirti_bench.data.ratedset import load_rated_set
from synthetic import make_rated_set

SIZES = [int(v) for v in os.environ.get("DIRTI_BENCH_PERF_SCALE", "1000,10000").split(",")]
FULL = 100_000
LOAD_TARGET_S = 120.0


class PeakRSS:
    """Peak resident memory of this process while the block runs (sampled every 20 ms from
    /proc/self/statm; ru_maxrss cannot be reset between stages)."""

    def __init__(self, interval: float = 0.02):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    @staticmethod
    def now() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.now())
            self._stop.wait(self.interval)

    def __enter__(self):
        self.peak = self.now()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.now())


def timed(fn, *args, **kwargs):
    with PeakRSS() as rss:
        start = time.perf_counter()
        value = fn(*args, **kwargs)
        seconds = time.perf_counter() - start
    return value, seconds, rss.peak


@pytest.fixture(scope="module")
def rated_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("scale")
    return {n: make_rated_set(root / f"rated{n}", n) for n in SIZES}


@pytest.mark.perf
def test_rated_set_loads_and_hashes_in_linear_time(benchmark, rated_sets):
    def run():
        return {n: timed(load_rated_set, rated_sets[n]) for n in SIZES}

    out = benchmark.pedantic(run, rounds=1, iterations=1)
    for n, (stimuli, seconds, peak) in out.items():
        assert len(stimuli) == n
        benchmark.extra_info[f"load_{n}_s"] = seconds
        benchmark.extra_info[f"load_{n}_peak_rss_mb"] = peak / 2**20
    largest = max(SIZES)
    projected = out[largest][1] * FULL / largest
    benchmark.extra_info.update({"load_100k_s_projected": projected, "load_average": os.getloadavg()[0]})
    if len(SIZES) > 1:
        small = min(SIZES)
        benchmark.extra_info["load_growth_exponent"] = (
            math.log(out[largest][1] / out[small][1]) / math.log(largest / small))
    assert projected <= LOAD_TARGET_S, benchmark.extra_info


EVAL_TARGET_S = 15 * 60  # every scenario at 100k rows, 2 cores
EVAL_TARGET_RSS = 8 * 2**30
EVAL_SIZES = [int(v) for v in os.environ.get("DIRTI_BENCH_PERF_EVAL_SCALE", "1000,3000").split(",")]


@pytest.mark.perf
def test_every_scenario_on_synthetic_features_time_and_memory_per_stage(benchmark):
    """Every registry scenario plus the set's own alignment scenarios on n rows of 512-d features
    (8 categories, 3 ratings with SD columns), per scenario seconds and peak RSS. The 100k figure is
    extrapolated linearly from the largest size measured (a lower bound where a stage grows faster:
    ``eval_growth_exponent`` says by how much)."""
    from dirti_bench.errors import ScenarioNotRunnable
    from dirti_bench.pipeline import evaluate_scenario
    from dirti_bench.scenarios import REGISTRY, data_scenarios
    from synthetic import feature_context

    def run():
        out = {}
        for n in EVAL_SIZES:
            ctx = feature_context(n)
            stages = {}
            for scenario in [*REGISTRY.values(), *data_scenarios(ctx.stimuli)]:
                try:
                    _, seconds, peak = timed(evaluate_scenario, scenario, ctx)
                except ScenarioNotRunnable:
                    continue
                stages[scenario.id] = (seconds, peak)
            out[n] = stages
        return out

    out = benchmark.pedantic(run, rounds=1, iterations=1)
    info = benchmark.extra_info
    for n, stages in out.items():
        info[f"eval_{n}_total_s"] = sum(s for s, _ in stages.values())
        info[f"eval_{n}_peak_rss_mb"] = max(p for _, p in stages.values()) / 2**20
        for sid, (seconds, peak) in stages.items():
            info[f"eval_{n}_{sid}_s"] = seconds
            info[f"eval_{n}_{sid}_peak_rss_mb"] = peak / 2**20
    largest, small = max(EVAL_SIZES), min(EVAL_SIZES)
    if largest > small:
        info["eval_growth_exponent"] = (math.log(info[f"eval_{largest}_total_s"] / info[f"eval_{small}_total_s"])
                                        / math.log(largest / small))
    info["eval_100k_s_projected"] = info[f"eval_{largest}_total_s"] * FULL / largest
    info["load_average"] = os.getloadavg()[0]
    assert info[f"eval_{largest}_peak_rss_mb"] * 2**20 <= EVAL_TARGET_RSS
    if info["eval_100k_s_projected"] > EVAL_TARGET_S and os.environ.get("DIRTI_BENCH_PERF_STRICT") != "1":
        # a known open target, shown as XFAIL with its figure on every perf run instead of failing CI;
        # DIRTI_BENCH_PERF_STRICT=1 makes it a failure (the check of the day it is met)
        pytest.xfail(f"100k-row evaluation target not met yet: projected {info['eval_100k_s_projected']:.0f} s "
                     f"> {EVAL_TARGET_S} s (growth exponent {info.get('eval_growth_exponent', float('nan')):.2f})")
    assert info["eval_100k_s_projected"] <= EVAL_TARGET_S, {k: v for k, v in info.items() if "total" in k}
