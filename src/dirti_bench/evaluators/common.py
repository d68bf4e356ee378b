"""Shared pieces of the evaluators: the finishing step (ids -> names -> metrics, CIs and the
predictions table) and the one-thread limit their numerics run under."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import pandas as pd

from ..contracts import ScenarioResult
from ..errors import ScenarioNotRunnable
from ..labels import LabelSpace, check_consistency
from ..results import CLASSIFICATION_RESULT_COLUMNS
from .metrics import bootstrap_ci, classification_metrics

_limited = 0  # nesting depth of one_thread: only the outermost call sets the limit
# Worker processes of an evaluation: the features-only scenarios beside the main process
# (evaluators/workers.py) and the tuned probes' outer folds where a probe runs in the main process
# (each scenario and fold is independent and seeded, so the results are the same for any number).
# Unset: 1, as several people often share a machine and a worker's ~1.5 s start costs more than it
# saves on a few thousand rows; from PARALLEL_FOLDS_FROM_ROWS rows, where one fold's fit takes many
# seconds, 2 where the process may use 2 cores.
JOBS_ENV = "DIRTI_BENCH_JOBS"
PARALLEL_FOLDS_FROM_ROWS = 20_000
DEFAULT_LARGE_JOBS = 2


def fold_jobs(rows: int = 0) -> int:
    """Processes for independent work on ``rows`` examples (a run's features-only scenarios, a probe's
    CV folds): ``DIRTI_BENCH_JOBS`` where set, else 1, or ``DEFAULT_LARGE_JOBS`` (at most the usable
    cores) from ``PARALLEL_FOLDS_FROM_ROWS`` rows. Worker processes of a run set it to 1 in theirs."""
    import os

    from ..errors import UserError

    raw = os.environ.get(JOBS_ENV, "").strip()
    if not raw:
        if rows < PARALLEL_FOLDS_FROM_ROWS:
            return 1
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return max(1, min(DEFAULT_LARGE_JOBS, cores))
    if not raw.isdigit() or int(raw) < 1:
        raise UserError(f"{JOBS_ENV}={raw!r} is not a positive whole number; set it to the number of worker "
                        "processes for scenarios, CV folds and figures (e.g. 2), or unset it")
    return int(raw)


def map_folds(fit_fold, folds: Sequence, rows: int = 0) -> list:
    """``[fit_fold(*fold) for fold in folds]``, in ``fold_jobs(rows)`` worker processes when more than one
    (joblib's loky workers, one BLAS thread each); the results come back in fold order. Inside a run's
    scenario worker (``evaluators.workers``) ``fold_jobs`` is 1: its folds run there, one after another."""
    jobs = min(fold_jobs(rows), len(folds))
    if jobs <= 1:
        return [fit_fold(*fold) for fold in folds]
    from joblib import Parallel, delayed

    return Parallel(n_jobs=jobs, backend="loky", inner_max_num_threads=1)(delayed(fit_fold)(*fold) for fold in folds)


@contextmanager
def one_thread() -> Iterator[None]:
    """Evaluators' numerics (BLAS, scikit-learn's OpenMP loops) on one thread. Their matrices have
    a few hundred rows, where more threads cost more in synchronisation than they save, and
    multi-threaded BLAS stalls badly (10x and worse) when other processes share the cores."""
    global _limited
    if _limited:
        yield
        return
    from threadpoolctl import threadpool_limits

    _limited += 1
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        _limited -= 1


def runnable_space(scenario, ctx) -> LabelSpace:
    """The scenario's label space, or ScenarioNotRunnable where the data has no rating for it
    (``ctx.label_space``) or gives it fewer than 2 classes."""
    space = ctx.label_space(scenario)
    if len(space) < 2:
        only = f" ({space.names[0]!r})" if space.names else ""
        what = "category" if space.task == "category" else f"{space.task} class"
        raise ScenarioNotRunnable(f"only one {what}{only} in the data; a classification needs at least 2")
    return space


def dropped_reasons(space: LabelSpace) -> dict[str, str]:
    """Why each dropped class left the space; build_label_space only drops classes without stimuli."""
    reasons = dict(space.drop_reasons)
    return {name: reasons.get(name, "no stimulus carries this class") for name in space.dropped}


def classification_result(
    scenario, space: LabelSpace, prompt_classes: Sequence[str] | None,
    stimulus_ids: Sequence[str], y_true: np.ndarray, y_pred: np.ndarray, confidence: np.ndarray,
    folds: Sequence | None = None, seed: int = 0, options: dict | None = None,
    fold_metrics: dict | None = None, extra: dict | None = None,
) -> ScenarioResult:
    """Validate against the label space, then score with scikit-learn.

    ``confidence``: the predicted class's probability per stimulus (how sure the model was).
    """
    check_consistency(space, space.names if prompt_classes is None else prompt_classes, y_true, y_pred)
    labels = space.names
    true_names, pred_names = space.decode(y_true), space.decode(y_pred)
    scored = classification_metrics(true_names, pred_names, labels)
    predictions = pd.DataFrame({
        "scenario": scenario.id, "stimulus": list(stimulus_ids), "y_true": true_names, "y_pred": pred_names,
        "confidence": np.asarray(confidence, dtype=float),
        "fold": [None] * len(true_names) if folds is None else [int(f) for f in folds],
    })[CLASSIFICATION_RESULT_COLUMNS]
    return ScenarioResult(
        id=scenario.id, task=space.task, labels=labels, n=len(true_names),
        metrics=scored["metrics"], per_class=scored["per_class"], confusion=scored["confusion"],
        dropped_classes=list(space.dropped),
        # The space's own rule last: it states the threshold actually used (none for categories).
        options={**scenario.options.to_dict(), **space.options(), "dropped_reasons": dropped_reasons(space),
                 **(options or {})},
        ci=bootstrap_ci(true_names, pred_names, labels, seed=seed), folds=fold_metrics,
        extra={"display_order": space.display_order(), **(extra or {})}, predictions=predictions,
        prompt_classes=None if prompt_classes is None else tuple(prompt_classes),
    )
