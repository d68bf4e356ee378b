"""Growth with n (perf tests, off the default run): a synthetic rated set of tiny files is loaded,
checked and hashed, and every scenario is evaluated on synthetic features, at each size of
``DIRTI_BENCH_PERF_SCALE`` (default ``1000,10000``; ``1000,10000,100000`` for the full check).
Each stage records its seconds and its peak RSS (sampled) in the benchmark's ``extra_info``.

Sizes of the evaluation test: ``DIRTI_BENCH_PERF_EVAL_SCALE`` (default ``3000,10000``; ``100000`` measures
the target itself, ~15-20 min on 2 quiet cores). From 1k/3k rows the growth exponents come out too low
(fixed costs still weigh): that projection passed while the measured 100k run missed the target
(docs/performance.md).

Targets (2 cores): 100k files load and hash in <= 120 s; every scenario on 100k rows of 512-d
features (8 categories, 3 ratings) in <= 15 min with peak RSS <= 8 GB. Loading below 100k is
extrapolated linearly from the largest measured size.

Evaluation is measured two ways. Below ``PARALLEL_FOLDS_FROM_ROWS`` (20,000) rows, stage by stage in
one process (``DIRTI_BENCH_JOBS=1``: a stage's CPU-seconds are all its CPU; wall and peak RSS per
stage). From 20,000 rows, as a run does it: ONE ``pipeline.evaluate`` over every scenario, its
features-only scenarios in worker processes beside the main process (``evaluators/workers.py``), its
wall time, the CPU of the whole process tree and the peak of the tree's summed RSS (main + workers,
sampled from /proc); ``DIRTI_BENCH_PERF_EVAL_STAGES=1`` adds the stage-by-stage pass at those sizes too
(twice the time). E.g. ``DIRTI_BENCH_PERF_EVAL_SCALE=3000,25000`` checks the measured path in minutes.

The 100k figure: with 100,000 among the sizes, the measured wall of that one evaluate. Otherwise
projected from the stages' CPU-seconds (robust on a shared machine, where wall time swings with the
others' load): each stage grows with its own exponent between the two largest sizes measured, at least
1 (linear) and at most 2 (KNN's brute-force search is quadratic); with M the main process's stages
(those needing the text encoder), W the features-only stages in ``w = fold_jobs(100000)`` workers and
c = 2 idle cores,

    wall = max((M + W) / c, M, W / min(w, c), the largest single stage)

(all the CPU spread over the cores; neither lane faster than its own processes allow; no stage splits
across processes). Without stage sizes, the largest measured whole run scaled linearly (a lower bound).
"""

from __future__ import annotations

import math
import os
import threading
import time

import pytest

from dirti_bench.data.ratedset import load_rated_set
from dirti_bench.evaluators.penalty import INNER_MAX_ROWS
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
EVAL_CORES = 2  # the target's machine
EVAL_SIZES = [int(v) for v in os.environ.get("DIRTI_BENCH_PERF_EVAL_SCALE", "3000,10000").split(",")]
# per-stage serial pass at the sizes measured whole too (from PARALLEL_FOLDS_FROM_ROWS): doubles their time
EVAL_STAGES_EVERYWHERE = os.environ.get("DIRTI_BENCH_PERF_EVAL_STAGES") == "1"


def process_tree(root: int) -> set[int]:
    """``root`` and every process descended from it (parents read from /proc/<pid>/stat)."""
    parents = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as fh:
                    parents[int(entry.name)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except OSError:  # ended meanwhile
                continue
    tree, grown = {root}, True
    while grown:
        found = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= found
        grown = bool(found)
    return tree


class TreeRSS(PeakRSS):
    """Peak of the summed resident memory of this process and its descendants (the evaluation's
    worker processes), sampled every 100 ms; pages shared between them count in each (an upper bound)."""

    def __init__(self, interval: float = 0.1):
        super().__init__(interval)

    @staticmethod
    def now() -> int:
        total = 0
        for pid in process_tree(os.getpid()):
            try:
                with open(f"/proc/{pid}/statm") as fh:
                    total += int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            except OSError:
                continue
        return total


def measured_run(scenarios, ctx) -> tuple[float, int, float]:
    """One ``pipeline.evaluate`` over every scenario as a run does it (features-only scenarios in worker
    processes from PARALLEL_FOLDS_FROM_ROWS rows): wall seconds, peak RSS of the process tree, and the
    CPU-seconds of this process and its finished children (the workers, joined when evaluate returns)."""
    from dirti_bench.pipeline import evaluate

    before, cpu = os.times(), time.process_time()
    with TreeRSS() as rss:
        start = time.perf_counter()
        evaluate(scenarios, ctx, skipped={})
        seconds = time.perf_counter() - start
    after = os.times()
    children = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return seconds, rss.peak, time.process_time() - cpu + children


def projected_wall(main_lane: float, worker_lane: float, largest: float, workers: int,
                   cores: int = EVAL_CORES) -> float:
    """Wall seconds of one evaluation whose features-only stages (``worker_lane`` CPU-seconds) run in
    ``workers`` processes beside the main process's stages (``main_lane``) on ``cores`` idle cores: no
    less than all the CPU spread over the cores, the main lane, the worker lane over the workers it
    has, and the largest single stage (a stage never splits across processes)."""
    if workers < 1:
        return main_lane + worker_lane
    return max((main_lane + worker_lane) / cores, main_lane, worker_lane / min(workers, cores), largest)


@pytest.mark.perf
def test_every_scenario_on_synthetic_features_time_and_memory_per_stage(benchmark, monkeypatch):
    """Every registry scenario plus the set's own alignment scenarios on n rows of 512-d features
    (8 categories, 3 ratings with SD columns): per scenario wall and CPU seconds and peak RSS
    measured serially, the whole run measured as a run does it from PARALLEL_FOLDS_FROM_ROWS rows,
    and the 100k figure (module docstring)."""
    from dirti_bench.errors import ScenarioNotRunnable
    from dirti_bench.evaluators.common import JOBS_ENV, PARALLEL_FOLDS_FROM_ROWS
    from dirti_bench.evaluators.workers import evaluation_workers, features_only
    from dirti_bench.pipeline import evaluate_scenario
    from dirti_bench.scenarios import REGISTRY, data_scenarios
    from synthetic import feature_context

    kinds = {}
    whole = {n for n in EVAL_SIZES if n >= PARALLEL_FOLDS_FROM_ROWS}
    staged = [n for n in EVAL_SIZES if n not in whole or EVAL_STAGES_EVERYWHERE]

    def stages_of(scenarios, ctx) -> dict:
        stages = {}
        with monkeypatch.context() as serial:  # each stage's CPU is all of it: no fold or scenario workers
            serial.setenv(JOBS_ENV, "1")
            for scenario in scenarios:
                try:
                    _, seconds, peak, cpu = cpu_timed(evaluate_scenario, scenario, ctx)
                except ScenarioNotRunnable:
                    continue
                stages[scenario.id] = (seconds, peak, cpu)
                kinds[scenario.id] = features_only(scenario)
        return stages

    def run():
        out, runs = {}, {}
        for n in EVAL_SIZES:
            ctx = feature_context(n)
            scenarios = [*REGISTRY.values(), *data_scenarios(ctx.stimuli)]
            if n in whole:
                runs[n] = (*measured_run(scenarios, ctx), evaluation_workers(scenarios, n))
            if n in staged:
                out[n] = stages_of(scenarios, ctx)
        return out, runs

    out, runs = benchmark.pedantic(run, rounds=1, iterations=1)
    info = benchmark.extra_info
    for n, stages in out.items():
        info[f"eval_{n}_total_s"] = sum(s for s, _, _ in stages.values())
        info[f"eval_{n}_total_cpu_s"] = sum(c for _, _, c in stages.values())
        info[f"eval_{n}_peak_rss_mb"] = max(p for _, p, _ in stages.values()) / 2**20
        for sid, (seconds, peak, cpu) in stages.items():
            info[f"eval_{n}_{sid}_s"] = seconds
            info[f"eval_{n}_{sid}_cpu_s"] = cpu
            info[f"eval_{n}_{sid}_peak_rss_mb"] = peak / 2**20
    for n, (seconds, peak, cpu, workers) in runs.items():
        info[f"eval_{n}_run_s"] = seconds  # one evaluate, worker processes beside the main one
        info[f"eval_{n}_run_cpu_s"] = cpu
        info[f"eval_{n}_run_peak_rss_mb"] = peak / 2**20  # main + workers
        info[f"eval_{n}_run_workers"] = workers
        info[f"eval_{n}_peak_rss_mb"] = max(info.get(f"eval_{n}_peak_rss_mb", 0), peak / 2**20)
    workers = evaluation_workers([*REGISTRY.values()], FULL)
    info["eval_100k_workers"] = workers
    if out:
        largest, small = max(out), min(out)
        if largest > small:
            info["eval_growth_exponent"] = (math.log(info[f"eval_{largest}_total_cpu_s"] / info[f"eval_{small}_total_cpu_s"])
                                            / math.log(largest / small))
        lanes = {True: 0.0, False: 0.0}
        biggest = 0.0
        for sid in out[largest]:
            cpu, exponent = stage_projection({n: out[n][sid][2] for n in out if sid in out[n]}, FULL)
            info[f"eval_100k_{sid}_cpu_s_projected"] = cpu
            info[f"eval_100k_{sid}_exponent"] = exponent
            lanes[kinds[sid]] += cpu
            biggest = max(biggest, cpu)
        info["eval_100k_main_lane_cpu_s_projected"] = lanes[False]
        info["eval_100k_worker_lane_cpu_s_projected"] = lanes[True]
        info["eval_100k_s_projected_stages"] = projected_wall(lanes[False], lanes[True], biggest, workers)
        info["eval_100k_s_projected_linear_serial"] = info[f"eval_{largest}_total_cpu_s"] * FULL / largest
    if FULL in runs:
        figure, how = info[f"eval_{FULL}_run_s"], "measured"
    elif out:
        figure, how = info["eval_100k_s_projected_stages"], "projected per stage"
    else:  # only whole runs below 100k: linear from the largest, a lower bound (no stage grows slower)
        n = max(runs)
        figure, how = info[f"eval_{n}_run_s"] * FULL / n, f"linear from the {n}-row run"
    info["eval_100k_s_projected"] = figure
    info["eval_100k_figure"] = how
    info["load_average"] = os.getloadavg()[0]
    peak_at = max(EVAL_SIZES)
    assert info[f"eval_{peak_at}_peak_rss_mb"] * 2**20 <= EVAL_TARGET_RSS
    if how != "measured" and figure > EVAL_TARGET_S and os.environ.get("DIRTI_BENCH_PERF_STRICT") != "1":
        # Projected from sizes where each probe still chooses its penalty on every training row: from
        # INNER_MAX_ROWS training rows that choice runs on a subsample of that many and stops growing, which
        # stage-by-stage growth below it cannot see (the logistic probe: 625 CPU-s projected from 3k/10k
        # rows, 138 measured at 100k). So a projection over the target is an upper estimate, shown as XFAIL
        # with its figure; the target itself is measured (DIRTI_BENCH_PERF_EVAL_SCALE=100000) and asserted.
        pytest.xfail(f"{how} from {sorted(EVAL_SIZES)} rows: {figure:.0f} s > {EVAL_TARGET_S} s, an upper estimate "
                     f"(below {INNER_MAX_ROWS:,} training rows the probes' penalty choice has not reached its "
                     "subsample limit); measure the target with DIRTI_BENCH_PERF_EVAL_SCALE=100000 "
                     "(docs/performance.md)")
    assert figure <= EVAL_TARGET_S, {k: v for k, v in info.items() if "total" in k or "projected" in k or "run" in k}
