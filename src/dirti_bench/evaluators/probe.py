"""Linear probe: logistic regression on standardised raw image features, as in CLIP_benchmark.

By default C is chosen inside each training fold by inner stratified CV (``penalty.py``), as
CLIP_benchmark and the CLIP paper choose their probes' weight decay on a validation split; a
number for the ``C`` option fixes it instead.
"""

from __future__ import annotations

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ..contracts import TUNED
from .crossval import cross_validated, cv_space, cv_splits
from .penalty import INNER_FOLDS, LOGISTIC_CS, MAX_ITER, SOLVER, TunedLogisticRegression


def probe_factory(scenario):
    c, seed = scenario.options.C, scenario.options.split_seed

    def make(n_train: int):
        if c == TUNED:
            model = make_pipeline(StandardScaler(), TunedLogisticRegression(random_state=seed))
            return model, {"C": TUNED, "C_grid_initial": [min(LOGISTIC_CS), max(LOGISTIC_CS)], "inner_folds": INNER_FOLDS,
                           "solver": SOLVER, "max_iter": MAX_ITER,
                           "model": "StandardScaler -> LogisticRegression"}
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, solver=SOLVER, max_iter=MAX_ITER))
        return model, {"C": c, "solver": SOLVER, "max_iter": MAX_ITER, "model": "StandardScaler -> LogisticRegression"}

    return make


def evaluate_cv(scenario, ctx):
    return cross_validated(scenario, ctx, probe_factory(scenario))


def check_runnable(scenario, ctx) -> None:
    """ScenarioNotRunnable unless the CV can stratify the classes and, for a tuned C, every training
    fold can be split again to choose it (labels only: before any image is encoded)."""
    space, n_splits = cv_space(scenario, ctx)
    if scenario.options.C == TUNED:
        seed = scenario.options.split_seed
        model = TunedLogisticRegression(random_state=seed)
        for train, _ in cv_splits(space.y_true, n_splits, seed):
            y_train = space.y_true[train]
            rows = model.inner_rows(y_train)  # the rows that choose C (a subsample of a large fold)
            model.inner_splits(y_train if rows is None else y_train[rows])
