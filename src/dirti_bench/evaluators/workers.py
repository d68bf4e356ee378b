"""Scenarios that read only the image features, evaluated in worker processes beside the main one.

On a large set (``fold_jobs``: from ``PARALLEL_FOLDS_FROM_ROWS`` stimuli, or as ``DIRTI_BENCH_JOBS``
says) a run's features-only scenarios (``EvaluatorSpec.features_only``: the logistic probe, KNN and
the ridge alignment probe) go to ``fold_jobs(rows)`` worker processes while the main process runs
the others, which need the text encoder and never leave it. Each worker receives the context once,
when it starts, without the encoder and the layer features; inside it a scenario's own folds run
one after another (no pool inside a pool) on one thread. Every scenario is seeded and independent
of the others, so the results are those of one process, bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import replace

from ..contracts import EvalContext, Scenario, ScenarioResult, evaluator_spec
from .common import JOBS_ENV, fold_jobs, one_thread
from .consistency import check_scenario_result

# Worker scenarios start longest first, so no long one starts last and becomes the tail while the
# other worker idles (longest-processing-time-first). Ranks from 100k-row measurements (CPU-seconds
# of one scenario, docs/performance.md): 10-fold KNN ~220, the ridge alignment probe ~170, the tuned
# logistic probe ~140 (its inner C search on a subsample), the KNN split ~50. An evaluator not ranked
# here (a plugin's) has an unknown cost and starts first.
COST_RANK = {"knn-cv": 1, "align-probe": 2, "linear-probe-cv": 3, "knn-split": 4}
# What a worker sets before it imports anything: its scenarios' folds serially, BLAS on one thread.
WORKER_ENV = {JOBS_ENV: "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def features_only(scenario: Scenario) -> bool:
    return evaluator_spec(scenario.evaluator).features_only


def evaluation_workers(scenarios: Sequence[Scenario], rows: int) -> int:
    """Worker processes ``pipeline.evaluate`` starts for ``scenarios`` on ``rows`` stimuli: 0 (every
    scenario in the main process) unless ``fold_jobs(rows)`` allows more than one process and some
    scenario is features-only; then ``fold_jobs(rows)``, at most one per such scenario."""
    jobs = fold_jobs(rows)
    outsourced = sum(features_only(s) for s in scenarios)
    return 0 if jobs <= 1 or not outsourced else min(jobs, outsourced)


def longest_first(scenarios: Sequence[Scenario]) -> list[int]:
    """Positions of the features-only ``scenarios``, in the order the workers should take them."""
    picked = [i for i, s in enumerate(scenarios) if features_only(s)]
    return sorted(picked, key=lambda i: COST_RANK.get(scenarios[i].evaluator, 0))  # stable: run order within a rank


class FeaturesOnlyEncoder:
    """The encoder's place in a worker's context: the model stays in the main process, so any use of
    it (an evaluator marked features-only that is not) fails with a line that says so."""

    def __getattr__(self, name: str):
        if name.startswith("__"):  # pickling and copying probe dunders; those stay ordinary misses
            raise AttributeError(name)
        raise RuntimeError(f"encoder.{name} was used in a worker process, which holds only the image features: "
                           "an evaluator that needs the encoder must not be registered with features_only=True")


_context: EvalContext | None = None  # a worker's context, received once when it starts


def _receive(ctx: EvalContext) -> None:
    global _context
    _context = ctx


def _evaluate(evaluate, scenario: Scenario) -> ScenarioResult:
    """``pipeline.evaluate_scenario`` in a worker: the evaluator arrives by reference (a plugin's too,
    its module imported here), and its result is checked before it is sent back."""
    with one_thread():
        result = evaluate(scenario, _context)
    check_scenario_result(result, scenario, _context)
    return result


class FeatureWorkers:
    """``workers`` processes holding ``ctx`` without its encoder and layer features; use as a context
    manager: on leaving, the workers are joined, or killed when an error (or Ctrl-C) left the block,
    so none outlives it."""

    def __init__(self, ctx: EvalContext, workers: int):
        from joblib.externals.loky.process_executor import ProcessPoolExecutor

        # Sent once per worker as it starts (loky pickles the initializer's arguments into its start):
        # at 100k rows the features are ~200 MB (0.1 s to pickle) and the stimuli ~20 MB (~1.7 s to
        # pickle and load), which per scenario would be paid again for each.
        shipped = replace(ctx, encoder=FeaturesOnlyEncoder(), layers={})
        self._pool = ProcessPoolExecutor(max_workers=workers, initializer=_receive, initargs=(shipped,),
                                         env=dict(WORKER_ENV))

    def submit(self, scenario: Scenario) -> Future:
        return self._pool.submit(_evaluate, evaluator_spec(scenario.evaluator).evaluate, scenario)

    def __enter__(self) -> FeatureWorkers:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._pool.shutdown(wait=True, kill_workers=exc_type is not None)
