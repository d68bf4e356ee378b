"""Nested penalty selection for the linear probes: the penalty is chosen on the training part of
each outer CV fold only, and the choice is recorded.

A fixed penalty on hundreds of standardised features measures the penalty as much as the
representation: too small and the probe fits noise (out-of-fold R² far below zero), too large
and it predicts the mean. Published probe results (CLIP's linear probes, CLIP_benchmark,
cross-validated ridge alignment with human ratings) choose it by cross-validation, and so do
these probes unless a scenario fixes it.

* Ridge (alignment probe): ``RidgeCV``'s closed-form leave-one-out error over a log grid on
  the standardised training fold (no inner loop: one decomposition per fit scores every grid
  value), then the one-standard-error rule, whose strongest end is the intercept-only model.
* Logistic regression (classification probe): inner stratified K-fold CV on the training fold,
  scored by the pooled validation log-loss, walking the grid from the strongest penalty up with
  warm starts. From a training fold of more than ``INNER_MAX_ROWS`` rows the inner CV runs on a
  seeded stratified subsample of that many of its rows; the model is then fitted on the whole
  training fold at the chosen C.

Where the best value lands on an edge of the grid, the grid is widened on that side and the fit
repeated (at most ``MAX_WIDENINGS`` times; ridge's grid reaches its strong end, the training
mean, by construction); every widening and any choice still on an edge is recorded, so a report
can say so.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ..errors import ScenarioNotRunnable
from .common import one_thread

# Ridge alpha on standardised features: from far below any eigenvalue of a training gram matrix
# (the least-penalised, minimum-norm limit) to far above it (every coefficient shrunk to ~0,
# i.e. the training mean), 4 values per decade.
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-3, 8, 45))
# Logistic C (inverse penalty), one value per decade: the selection is coarser than ridge's
# because every value costs real fits.
LOGISTIC_CS = tuple(float(c) for c in np.logspace(-4, 2, 7))
WIDEN_DECADES = 3  # added on the side of an edge choice, per widening
MAX_WIDENINGS = 2
INNER_FOLDS = 3  # inner stratified folds for the logistic probe's C
MAX_ITER = 1000
# The inner fits only rank the C values: stopping Newton-CG at a gradient of 1e-3 (the final fit
# uses scikit-learn's 1e-4) moves their validation loss by ~1%, far less than the gaps between C
# values a decade apart, and saves a third of the work. Looser, a warm-started fit at the next C
# can stop without moving at all, and large C values would all look alike.
INNER_TOL = 1e-3
# The inner CV that chooses C uses at most this many rows of a training fold (a seeded stratified
# subsample; the model is still fitted on the whole fold). Its 21 inner fits cost ~50 CPU-s at 20,000
# rows of 512-d features and grow linearly with n; at 20,000 rows the pooled validation log-loss
# rests on 20,000 examples, which already separates C values a decade apart (the grid's spacing)
# by far more than a fresh sample would move it, so more rows buy cost, not a better choice.
# DIRTI-sized sets (hundreds of rows) never reach it. C weighs the summed loss, so a C chosen on the
# subsample penalises the whole-fold fit less per row than on the subsample (docs: Methodology, Probes).
INNER_MAX_ROWS = 20_000
# Same L2-penalised multinomial objective as lbfgs, but Newton-CG converges in ~15 iterations on
# 512-d CLIP features where lbfgs needs hundreds of iterations for the same optimum.
SOLVER = "newton-cg"


def _edge(chosen: float, grid) -> str | None:
    return "low" if chosen <= min(grid) else "high" if chosen >= max(grid) else None


def _widen(grid: tuple[float, ...], edge: str, per_decade: float) -> tuple[float, ...]:
    """``WIDEN_DECADES`` more decades on the ``edge`` side, at the grid's own spacing."""
    steps = int(round(WIDEN_DECADES * per_decade))
    factor = 10.0 ** (1.0 / per_decade)
    if edge == "low":
        return tuple(min(grid) / factor ** np.arange(steps, 0, -1)) + tuple(grid)
    return tuple(grid) + tuple(max(grid) * factor ** np.arange(1, steps + 1))


def _per_decade(grid) -> float:
    return (len(grid) - 1) / np.log10(max(grid) / min(grid)) if len(grid) > 1 else 1.0


def selection_record(name: str, chosen: float, grid, edge: str | None, widened: int, method: str) -> dict:
    return {name: float(chosen), "edge": edge, "widened": int(widened),
            "grid_min": float(min(grid)), "grid_max": float(max(grid)), "method": method}


# ---------------------------------------------------------------- ridge

RIDGE_METHOD = ("RidgeCV leave-one-out error on the training fold, one-standard-error rule: the largest alpha "
                "within one paired standard error of the best")
# At alpha >= this multiple of trace(X'X) (standardised X) every coefficient is shrunk at least that
# many times over: the fit is the training mean, so no larger alpha can differ.
INTERCEPT_LIMIT = 100.0
# The leave-one-out curve that chooses alpha uses at most this many rows of a training fold (a seeded
# random subsample; the model is still fitted on the whole fold), the limit of the logistic probe's
# inner CV. At 100k rows the curve (an O(n d^2) decomposition and an (n, alphas) error table per fold)
# was most of the alignment probe's time and memory (three ratings x 30 folds); 20,000 paired
# leave-one-out errors already give the one-standard-error rule a small standard error. DIRTI-sized
# sets never reach it. As with C, an alpha chosen on the subsample penalises the whole-fold fit less
# per row (docs: Methodology, Probes).
SELECTION_MAX_ROWS = INNER_MAX_ROWS


def subsampled_ridge_method(rows: int) -> str:
    """The method text of an alpha chosen on a random subsample of the training fold."""
    return (RIDGE_METHOD.replace("on the training fold", f"on a random subsample of {rows:,} training rows")
            + "; the model then fitted on the whole training fold")


def selection_subsample(n: int, max_rows: int | None, seed: int) -> np.ndarray | None:
    """The rows (ascending) of an ``n``-row training fold whose leave-one-out errors choose alpha: a
    seeded random ``max_rows`` of them, or None (all) at or below the limit."""
    if max_rows is None or n <= max_rows:
        return None
    return np.sort(train_test_split(np.arange(n), train_size=max_rows, random_state=seed)[0])


def fit_tuned_ridge(X: np.ndarray, y: np.ndarray, alphas=RIDGE_ALPHAS, max_rows: int | None = SELECTION_MAX_ROWS,
                    seed: int = 0):
    """``StandardScaler + Ridge`` fitted on (X, y) alone, alpha chosen by RidgeCV's closed-form
    leave-one-out error. Returns the fitted pipeline and the selection record. Above ``max_rows``
    rows the errors are those of a random subsample of that many (seeded by ``seed``; recorded as
    ``selection_rows``), the fit still on every row.

    The grid's top always reaches the intercept-only limit (``INTERCEPT_LIMIT``), so a choice
    there is a finding, not an artefact of the grid; where the best alpha is the grid's
    smallest, the grid is widened downwards (at most ``MAX_WIDENINGS`` times).

    The minimum of a leave-one-out curve over dozens of alphas is itself noisy: with weak
    features and a few dozen examples it often sits at an alpha that fits noise, and the probe
    then scores far below predicting the mean. So the one-standard-error rule (Hastie,
    Tibshirani & Friedman, The Elements of Statistical Learning, 7.10) takes the largest alpha
    whose leave-one-out error is within one standard error of the best; the standard error is
    that of the paired per-example difference, since every alpha is scored on the same
    examples. Where no alpha beats the intercept-only limit by more than that, the probe
    predicts the training mean.
    """
    with one_thread():  # float64: float32 features leave small-alpha solves ill-conditioned
        return _fit_tuned_ridge(np.asarray(X, dtype=float), np.asarray(y, dtype=float), alphas,
                                selection_subsample(len(y), max_rows, seed))


def _loo_errors_fn(Xs: np.ndarray, y: np.ndarray):
    """``grid -> (n, alphas)`` squared leave-one-out errors of ridge with an intercept on ``Xs``:
    ``RidgeCV(alphas=grid, store_cv_results=True).fit(Xs, y).cv_results_``.

    With more examples than features scikit-learn's GCV (``gcv_mode='eigen'``) recomputes the hat
    matrix's diagonal per alpha at O(n d^2) each: ~60 alphas made a 100k-row fold take minutes.
    Here the same closed form (Hastie et al. 7.10; scikit-learn's own derivation) from one
    eigendecomposition of the centred Gram matrix: with ``Q = Xc V``, the fitted values and the
    hat diagonal for every alpha are two matrix products, O(n d^2) once plus O(n d) per alpha.
    The values agree with RidgeCV's to rounding (tests/test_penalty.py), and they only choose the
    alpha: the model is then fitted by scikit-learn's Ridge as before. With fewer examples than
    features RidgeCV (its SVD mode) is used as it is."""
    n, d = Xs.shape
    if n <= d:
        return lambda grid: RidgeCV(alphas=grid, store_cv_results=True).fit(Xs, y).cv_results_
    Xc = Xs - Xs.mean(axis=0)
    yc = y - y.mean()
    eigenvalues, V = np.linalg.eigh(Xc.T @ Xc)
    eigenvalues = np.clip(eigenvalues, 0.0, None)  # rounding can leave a null direction at -1e-12
    Q = Xc @ V
    del Xc
    z = Q.T @ yc
    Q2 = Q ** 2

    def loo(grid) -> np.ndarray:
        shrink = 1.0 / (eigenvalues[:, None] + np.asarray(grid, dtype=float)[None, :])  # (d, alphas)
        fitted = Q @ (z[:, None] * shrink)  # centred fitted values
        hat = Q2 @ shrink + 1.0 / n  # the intercept's share of the hat diagonal, unpenalised
        return ((yc[:, None] - fitted) / (1.0 - hat)) ** 2

    return loo


def _fit_tuned_ridge(X: np.ndarray, y: np.ndarray, alphas, rows: np.ndarray | None = None):
    """``rows``: the subsample whose leave-one-out errors choose alpha (None: every row)."""
    from sklearn.dummy import DummyRegressor
    from sklearn.linear_model import Ridge

    grid, widened = tuple(alphas), 0
    per_decade = _per_decade(grid)
    scaler = StandardScaler().fit(X)  # fitted once: the returned pipeline's own scaler
    Xs = scaler.transform(X)
    del X  # only the scaled copy is read from here on (at 90k x 512, ~370 MB less held)
    chooser, target = (Xs, y) if rows is None else (Xs[rows], y[rows])
    limit = INTERCEPT_LIMIT * max(float(np.sum(chooser ** 2)), 1.0)
    while max(grid) < limit:
        grid = _widen(grid, "high", per_decade)
    loo_errors = _loo_errors_fn(chooser, target)
    del chooser
    while True:
        loo = loo_errors(grid)  # (n, alphas) squared leave-one-out errors
        best = int(np.argmin(loo.mean(axis=0)))
        if best > 0 or widened == MAX_WIDENINGS:
            break
        grid, widened = _widen(grid, "low", per_decade), widened + 1
    del loo_errors  # its decomposition of the chooser rows
    excess = loo - loo[:, [best]]  # per example: each alpha's error minus the best alpha's
    standard_error = excess.std(axis=0, ddof=1) / np.sqrt(target.size)
    chosen = grid[int(np.flatnonzero(excess.mean(axis=0) <= standard_error).max())]
    del loo, excess
    edge = _edge(chosen, grid)
    if edge == "high":  # the intercept-only limit: exactly the training mean
        model = DummyRegressor(strategy="mean")
    else:  # at the least-penalised edge the normal equations are ill-conditioned; an SVD solves them stably
        # copy_X=False: Ridge centres the scaled copy in place (nothing reads it afterwards) instead
        # of copying it first; the same arithmetic on the same values
        model = Ridge(alpha=chosen, solver="svd" if edge == "low" else "auto", copy_X=False)
    # What make_pipeline(StandardScaler(), model).fit(X, y) fits (its scaler's fit_transform is this
    # scaler's fit and transform), without fitting the scaler on the whole fold a second time.
    record = selection_record("alpha", chosen, grid, edge, widened,
                              RIDGE_METHOD if rows is None else subsampled_ridge_method(len(rows)))
    if rows is not None:
        record["selection_rows"] = len(rows)
    return make_pipeline(scaler, model.fit(Xs, y)), record


# ---------------------------------------------------------------- logistic regression

LOGISTIC_METHOD = f"inner stratified {INNER_FOLDS}-fold CV on the training fold, pooled validation log-loss"


def subsampled_method(inner_rows: int) -> str:
    """The method text of a C chosen on a stratified subsample of the training fold."""
    return (f"inner stratified {INNER_FOLDS}-fold CV on a stratified subsample of {inner_rows:,} training rows, "
            "pooled validation log-loss; the model then fitted on the whole training fold")


def _row_space(X: np.ndarray) -> np.ndarray | None:
    """An orthonormal basis of a space holding the row space of ``X``, when ``X`` has fewer rows
    than columns.

    An L2-penalised linear model's weights lie in the span of its training rows (the gradient
    of the data term is a combination of them), so fitting on ``X @ basis`` gives the same
    predictions in fewer dimensions, which is much faster for n < d. A basis direction outside
    the row space carries no training signal, so its weight stays 0.
    """
    n, d = X.shape
    if n >= d:
        return None
    return np.linalg.qr(X.T)[0]


def _project(X: np.ndarray, basis: np.ndarray | None) -> np.ndarray:
    return X if basis is None else X @ basis


class TunedLogisticRegression(ClassifierMixin, BaseEstimator):
    """Multinomial L2 logistic regression whose C is chosen by inner stratified CV on the data it
    is fitted on (put a ``StandardScaler`` before it). ``C_`` and ``selection_`` record the choice.

    The inner CV walks ``Cs`` from the strongest penalty up, each inner model warm-started from
    the previous C, and takes the minimum of the pooled validation log-loss; ties go to the
    stronger penalty. From more than ``inner_max_rows`` rows (None: no limit) the inner CV runs on
    a seeded stratified subsample of that many (``inner_rows``); the model is fitted on all rows.
    """

    def __init__(self, Cs=LOGISTIC_CS, inner_folds: int = INNER_FOLDS, random_state: int = 0,
                 solver: str = SOLVER, max_iter: int = MAX_ITER, inner_max_rows: int | None = INNER_MAX_ROWS):
        self.Cs = Cs
        self.inner_folds = inner_folds
        self.random_state = random_state
        self.solver = solver
        self.max_iter = max_iter
        self.inner_max_rows = inner_max_rows

    def _model(self, **params) -> LogisticRegression:
        return LogisticRegression(solver=self.solver, max_iter=self.max_iter, **params)

    def inner_rows(self, y: np.ndarray) -> np.ndarray | None:
        """The rows of training labels ``y`` that choose C (ascending), or None for all of them.

        Above ``inner_max_rows``: a stratified sample of that many rows, seeded by ``random_state``.
        A class too rare to be sure of ``inner_folds`` rows in a proportional sample keeps all of its
        rows (so every class is in the inner CV) and the other classes share the rest of the budget.
        Where a stratified sample cannot leave out a row of every class (a part fewer rows over the
        limit than it has classes), every row is used.
        """
        cap = self.inner_max_rows
        if cap is None or len(y) <= cap:
            return None
        ids, counts = np.unique(y, return_inverse=True, return_counts=True)[1:]
        rare = (counts * cap / len(y) < self.inner_folds)[ids]
        kept, rest = np.flatnonzero(rare), np.flatnonzero(~rare)
        budget, classes = cap - kept.size, np.unique(ids[rest]).size
        # A stratified sample must take, and leave out, at least one row of each class: else the
        # inner CV uses every row (the rare-class budget is spent, or the part is < classes over the limit).
        if budget < classes or rest.size - budget < classes:
            return None
        sampled = rest if budget >= rest.size else train_test_split(
            rest, train_size=budget, stratify=y[rest], random_state=self.random_state)[0]
        return np.sort(np.concatenate([kept, sampled]))

    def inner_splits(self, y: np.ndarray) -> list:
        """The inner (train, validation) splits of training labels ``y``, or ScenarioNotRunnable where
        none holds two classes to fit (a data limit: the run skips the scenario with this reason)."""
        counts = np.unique(y, return_counts=True)[1]
        folds = min(self.inner_folds, int(counts.max()))
        splits = []
        if folds >= 2 and counts.size >= 2:
            cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=self.random_state)
            with warnings.catch_warnings():
                # A class rarer than the inner folds sits in some validation parts only; its validation
                # examples then score the same (poorly) at every C, which shifts no choice.
                warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
                # A part with a single class has nothing to fit (only when nearly every class is a singleton).
                splits = [(train, val) for train, val in cv.split(np.zeros(len(y)), y)
                          if np.unique(y[train]).size > 1]
        if not splits:
            raise ScenarioNotRunnable("a training fold holds too few examples per class to choose C by inner "
                                      "cross-validation; set the probe's C to a number (e.g. C=1.0) or use more "
                                      "stimuli")
        return splits

    def _inner_parts(self, X, y, splits) -> list:
        """Projected inner training and validation parts, each with its warm-started model."""
        parts = []
        for train, val in splits:
            basis = _row_space(X[train])
            parts.append([_project(X[train], basis), y[train], _project(X[val], basis), y[val],
                          self._model(warm_start=True, tol=INNER_TOL)])
        return parts

    def _losses(self, parts, labels, Cs, losses: dict) -> None:
        """Pooled inner validation log-loss for ascending ``Cs`` into ``losses``, each inner model
        warm-started from its previous fit. The whole grid is walked: the loss need not be unimodal
        in C (it can rise off the prior and fall again once the model learns to ignore nuisance
        directions), and the warm-started fits at large C are the cheap ones."""
        y_val = np.concatenate([part[3] for part in parts])
        for c in sorted(Cs):
            probas = []
            for x_train, y_train, x_val, _, model in parts:
                model.set_params(C=c).fit(x_train, y_train)
                proba = np.zeros((len(x_val), labels.size))
                proba[:, np.searchsorted(labels, model.classes_)] = model.predict_proba(x_val)
                probas.append(proba)
            # One call on the pooled validation parts (the loss is a sum over examples).
            losses[c] = log_loss(y_val, np.vstack(probas), labels=labels, normalize=False)

    def fit(self, X, y):
        with one_thread():
            return self._fit(np.asarray(X, dtype=float), np.asarray(y))

    def _fit(self, X, y):
        rows = self.inner_rows(y)
        X_inner, y_inner = (X, y) if rows is None else (X[rows], y[rows])
        labels, splits = np.unique(y), self.inner_splits(y_inner)
        grid, widened, losses = tuple(self.Cs), 0, {}
        per_decade = _per_decade(grid)
        with warnings.catch_warnings():
            # Separable inner parts at large C: newton-cg stops at max_iter on a loss that is
            # already flat; its predictions are what is scored.
            warnings.filterwarnings("ignore", message=".*(converge|line search).*")
            parts = self._inner_parts(X_inner, y_inner, splits)
            del X_inner  # the subsample's copy: only the projected parts are read from here on
            self._losses(parts, labels, grid, losses)
            while True:
                chosen = min(losses, key=lambda c: (losses[c], c))
                edge = _edge(chosen, grid)
                if edge is None or widened == MAX_WIDENINGS:
                    break
                wider = _widen(grid, edge, per_decade)
                if edge == "low":  # a new path from a stronger penalty: start cold
                    parts = self._inner_parts(X if rows is None else X[rows], y_inner, splits)
                self._losses(parts, labels, sorted(set(wider) - set(grid)), losses)
                grid, widened = wider, widened + 1
            self.basis_ = _row_space(X)
            self.model_ = self._model(C=chosen).fit(_project(X, self.basis_), y)
        self.C_ = float(chosen)
        self.classes_ = self.model_.classes_
        method = LOGISTIC_METHOD if rows is None else subsampled_method(len(rows))
        self.selection_ = selection_record("C", chosen, grid, edge, widened, method)
        self.selection_["inner_folds"] = len(splits)
        self.selection_["inner_rows"] = len(y_inner)
        return self

    def predict(self, X):
        return self.model_.predict(_project(np.asarray(X, dtype=float), self.basis_))

    def predict_proba(self, X):
        return self.model_.predict_proba(_project(np.asarray(X, dtype=float), self.basis_))


# ---------------------------------------------------------------- summary

# The penalty side where a probe predicts only the mean (ridge) or the class prior (logistic).
STRONGEST = {"alpha": "high", "C": "low"}


def penalty_summary(name: str, records: list[dict], folds: list[dict]) -> dict:
    """Per-fold choices and their median and range, the edge counts and a note for the report.
    ``folds``: each record's fold as integer keys ({"fold": f}, or {"repeat": r, "fold": f}), the
    same numbers as the fold (and repeat) columns of the predictions files."""
    values = np.array([r[name] for r in records], dtype=float)
    edges = [r["edge"] for r in records]
    strong = STRONGEST[name]
    weak = "low" if strong == "high" else "high"
    widened = sum(1 for r in records if r["widened"])
    # One method text, or each distinct one (the logistic probe's differs where some training folds
    # are above its inner-CV row limit and some are not)
    method = "; in other folds: ".join(dict.fromkeys(r["method"] for r in records))
    summary = {"name": name, "mode": "tuned", "method": method,
               "median": float(np.median(values)), "min": float(values.min()), "max": float(values.max()),
               "n_folds": len(records), "n_widened": widened,
               "n_strongest": edges.count(strong), "n_weakest": edges.count(weak),
               "per_fold": [{**fold, name: r[name], "edge": r["edge"], "widened": r["widened"],
                             "grid_min": r["grid_min"], "grid_max": r["grid_max"],
                             **{key: r[key] for key in ("inner_rows", "selection_rows") if key in r}}
                            for fold, r in zip(folds, records, strict=True)]}
    notes = []
    if widened:
        notes.append(f"the grid was widened in {widened} of {len(records)} folds because the best value was on its edge")
    if edges.count(strong):
        what = "the training mean (intercept only)" if name == "alpha" else "the class prior"
        notes.append(f"{edges.count(strong)} of {len(records)} folds took the strongest penalty, i.e. predict "
                     f"{what}: their training data gave no evidence that the features predict more")
    if edges.count(weak):
        notes.append(f"{edges.count(weak)} of {len(records)} folds took the weakest penalty even after widening: "
                     "there the penalty hardly matters (noise-free or separable training data)")
    if notes:
        summary["note"] = "; ".join(notes)
    return summary


def fixed_penalty(name: str, value: float) -> dict:
    return {"name": name, "mode": "fixed", "value": float(value)}
