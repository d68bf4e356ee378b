"""Growth with n (perf tests, off the default run): a synthetic rated set of tiny files is loaded,
checked and hashed, and every scenario is evaluated on synthetic features, at each size of
``DIRTI_BENCH_PERF_SCALE`` (default ``1000,10000``; ``1000,10000,100000`` for the full check).
Each stage records its seconds and its peak RSS (sampled) in the benchmark's ``extra_info``.

Sizes of the evaluation test: ``DIRTI_BENCH_PERF_EVAL_SCALE`` (default ``3000,10000``; ``100000`` measures
the target itself, ~25 min). From 1k/3k rows the growth exponents come out too low (fixed costs still weigh):
that projection passed while the measured 100k run missed the target (docs/performance.md).

Targets (2 cores): 100k files load and hash in <= 120 s; every scenario on 100k rows of 512-d
features (8 categories, 3 ratings) in <= 15 min with peak RSS <= 8 GB. Loading below 100k is
extrapolated linearly from the largest measured size. Evaluation is projected stage by stage from its
CPU-seconds (robust on a shared machine, where wall time swings with the others' load): each stage
grows with its own exponent between the two largest sizes measured, at least 1 (linear) and at most 2
(KNN's brute-force search is quadratic), and the stages whose CV folds run in worker processes at 100k
(``fold_jobs``) are divided by the workers, assuming idle cores. With 100k among the sizes the
measured wall time is the figure.
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


def cpu_timed(fn, *args, **kwargs):
    """``timed`` plus this process's CPU-seconds (worker processes' are not included)."""
    start = time.process_time()
    value, seconds, peak = timed(fn, *args, **kwargs)
    return value, seconds, peak, time.process_time() - start


def stage_projection(cpu: dict[int, float], full: int) -> tuple[float, float]:
    """One stage's CPU-seconds at ``full`` rows from its two largest measured sizes, and the growth
    exponent used (measured, clipped to [1, 2])."""
    sizes = sorted(cpu)
    large = sizes[-1]
    exponent = 1.0
    if len(sizes) > 1 and cpu[sizes[-2]] > 0 and cpu[large] > 0:
        exponent = math.log(cpu[large] / cpu[sizes[-2]]) / math.log(large / sizes[-2])
    exponent = min(2.0, max(1.0, exponent))
    return cpu[large] * (full / large) ** exponent, exponent


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
EVAL_SIZES = [int(v) for v in os.environ.get("DIRTI_BENCH_PERF_EVAL_SCALE", "3000,10000").split(",")]


# Scenario kinds whose CV folds go to worker processes (``map_folds``) at large n.
FOLD_PARALLEL = ("linear-probe-cv", "knn-cv", "align-probe")


@pytest.mark.perf
def test_every_scenario_on_synthetic_features_time_and_memory_per_stage(benchmark):
    """Every registry scenario plus the set's own alignment scenarios on n rows of 512-d features
    (8 categories, 3 ratings with SD columns), per scenario wall and CPU seconds and peak RSS, and
    the 100k projection (module docstring)."""
    from dirti_bench.errors import ScenarioNotRunnable
    from dirti_bench.evaluators.common import fold_jobs
    from dirti_bench.pipeline import evaluate_scenario
    from dirti_bench.scenarios import REGISTRY, data_scenarios
    from synthetic import feature_context

    kinds = {}

    def run():
        out = {}
        for n in EVAL_SIZES:
            ctx = feature_context(n)
            stages = {}
            for scenario in [*REGISTRY.values(), *data_scenarios(ctx.stimuli)]:
                try:
                    _, seconds, peak, cpu = cpu_timed(evaluate_scenario, scenario, ctx)
                except ScenarioNotRunnable:
                    continue
                stages[scenario.id] = (seconds, peak, cpu)
                kinds[scenario.id] = scenario.evaluator
            out[n] = stages
        return out

    out = benchmark.pedantic(run, rounds=1, iterations=1)
    info = benchmark.extra_info
    for n, stages in out.items():
        info[f"eval_{n}_total_s"] = sum(s for s, _, _ in stages.values())
        info[f"eval_{n}_total_cpu_s"] = sum(c for _, _, c in stages.values())
        info[f"eval_{n}_peak_rss_mb"] = max(p for _, p, _ in stages.values()) / 2**20
        for sid, (seconds, peak, cpu) in stages.items():
            info[f"eval_{n}_{sid}_s"] = seconds
            info[f"eval_{n}_{sid}_cpu_s"] = cpu
            info[f"eval_{n}_{sid}_peak_rss_mb"] = peak / 2**20
    largest, small = max(EVAL_SIZES), min(EVAL_SIZES)
    if largest > small:
        info["eval_growth_exponent"] = (math.log(info[f"eval_{largest}_total_cpu_s"] / info[f"eval_{small}_total_cpu_s"])
                                        / math.log(largest / small))
    workers = fold_jobs(FULL)
    projected = 0.0
    for sid in out[largest]:
        cpu, exponent = stage_projection({n: out[n][sid][2] for n in EVAL_SIZES if sid in out[n]}, FULL)
        info[f"eval_100k_{sid}_cpu_s_projected"] = cpu
        info[f"eval_100k_{sid}_exponent"] = exponent
        projected += cpu / workers if kinds[sid] in FOLD_PARALLEL else cpu
    info["eval_100k_fold_workers"] = workers
    info["eval_100k_s_projected_linear_serial"] = info[f"eval_{largest}_total_cpu_s"] * FULL / largest
    info["eval_100k_s_projected"] = info[f"eval_{FULL}_total_s"] if FULL in out else projected
    info["load_average"] = os.getloadavg()[0]
    assert info[f"eval_{largest}_peak_rss_mb"] * 2**20 <= EVAL_TARGET_RSS
    if info["eval_100k_s_projected"] > EVAL_TARGET_S and os.environ.get("DIRTI_BENCH_PERF_STRICT") != "1":
        # a known open target, shown as XFAIL with its figure on every perf run instead of failing CI;
        # DIRTI_BENCH_PERF_STRICT=1 makes it a failure (the check of the day it is met)
        pytest.xfail(f"100k-row evaluation target not met yet: projected {info['eval_100k_s_projected']:.0f} s "
                     f"> {EVAL_TARGET_S} s ({workers} fold workers; serial linear lower bound "
                     f"{info['eval_100k_s_projected_linear_serial']:.0f} CPU-s)")
    assert info["eval_100k_s_projected"] <= EVAL_TARGET_S, {k: v for k, v in info.items() if "total" in k or "projected" in k}
