"""Supervised evaluation on raw image features: a stratified holdout split or stratified K-fold CV.

The study fitted its KNN on a 2-D UMAP projection, fitted the scaler separately
on train and test, and declared a KFold it never used. Here the model is a
scikit-learn Pipeline (scaler fitted on the training part only) on the raw
features, and classes too small to stratify are handled by an explicit policy
instead of a scikit-learn error.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold, train_test_split

from ..errors import ScenarioNotRunnable
from ..labels import LabelSpace
from .common import classification_result, map_folds, runnable_space
from .metrics import HEADLINE_METRICS, classification_metrics
from .penalty import penalty_summary

# model factory: smallest training-set size -> (estimator, options to record)
ModelFactory = Callable[[int], tuple[object, dict]]


def stratifiable_space(scenario, space: LabelSpace, folds: int) -> tuple[LabelSpace, int]:
    """The space and the number of splits for which every class can be stratified over ``folds``.

    ``reduce-folds``: drop classes with < 2 examples, then use min(folds, smallest class) splits.
    ``drop``: drop classes with < ``folds`` examples and keep ``folds`` splits.
    """
    policy = scenario.options.small_class_policy
    counts = space.support()
    if policy == "reduce-folds":
        space = space.without([n for n, c in counts.items() if c < 2],
                              "fewer than 2 examples: cannot be in both the training and the test part")
    else:
        space = space.without([n for n, c in counts.items() if c < folds],
                              f"fewer than {folds} examples for {folds} stratified parts (small_class_policy=drop)")
    if len(space) < 2:
        need = 2 if policy == "reduce-folds" else folds
        raise ScenarioNotRunnable(f"fewer than 2 {space.task} classes have {need} or more examples to stratify "
                                  f"(support {counts})")
    return space, min(folds, min(space.support().values()))


def _fold_summary(true_names, pred_names, fold_of, labels, n_splits: int) -> dict:
    """Headline metrics per fold, and their mean and sample SD (ddof=1) over folds."""
    per_fold = []
    for fold in range(n_splits):
        rows = fold_of == fold
        scored = classification_metrics(true_names[rows], pred_names[rows], labels)["metrics"]
        per_fold.append({"fold": fold, "n": int(rows.sum()), **scored})
    values = {m: np.array([f[m] for f in per_fold]) for m in HEADLINE_METRICS}
    return {"n_splits": n_splits, "per_fold": per_fold,
            "mean": {m: float(v.mean()) for m, v in values.items()},
            "sd": {m: float(v.std(ddof=1)) for m, v in values.items()}, "sd_ddof": 1}


def predict_with_confidence(model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fitted model's own predictions (KNN's tie rule included) and each one's probability
    (KNN: the predicted class's vote share; the probe: its predicted probability)."""
    y_pred = model.predict(x)
    proba = model.predict_proba(x)
    column = np.searchsorted(np.asarray(model.classes_), y_pred)
    return y_pred, proba[np.arange(len(y_pred)), column]


def holdout_space(scenario, ctx) -> LabelSpace:
    """The space a stratified holdout split can hold on both sides, or ScenarioNotRunnable."""
    space, _ = stratifiable_space(scenario, runnable_space(scenario, ctx), 2)
    n, n_classes = len(space.stimulus_ids), len(space)
    n_test = math.ceil(scenario.options.test_size * n)
    if n_test < n_classes or n - n_test < n_classes:
        raise ScenarioNotRunnable(f"a stratified {n - n_test}/{n_test} split of {n} stimuli cannot hold all "
                                  f"{n_classes} classes on both sides")
    return space


def cv_space(scenario, ctx) -> tuple[LabelSpace, int]:
    return stratifiable_space(scenario, runnable_space(scenario, ctx), scenario.options.folds)


def cv_splits(y: np.ndarray, n_splits: int, seed: int) -> list:
    """The (train, test) parts of the stratified K-fold CV: they depend on the labels alone, so a
    runnable check can make them before any image is encoded."""
    cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return list(cv.split(np.zeros(len(y)), y))


def holdout(scenario, ctx, make_model: ModelFactory, ties: list | None = None):
    """The study protocol done right: one stratified split (default 70/30, seed 42). ``ties``: a list
    that receives the fitted model's count of tied votes among its predictions, for models that count
    them (KNN), as ``cross_validated``'s ``fold_ties`` does per fold."""
    test_size, seed = scenario.options.test_size, scenario.options.split_seed
    space = holdout_space(scenario, ctx)
    rows = np.arange(len(space.stimulus_ids))
    train, test = train_test_split(rows, test_size=test_size, random_state=seed, stratify=space.y_true)
    test = np.sort(test)  # predictions in stimulus-set order
    model, model_opts = make_model(len(train))
    x = ctx.features_for(space)
    model.fit(x[train], space.y_true[train])
    y_pred, confidence = predict_with_confidence(model, x[test])
    if ties is not None and getattr(model[-1], "tied_votes_", None) is not None:
        ties.append(model[-1].tied_votes_)
    return classification_result(
        scenario, space, None, [space.stimulus_ids[i] for i in test], space.y_true[test], y_pred,
        confidence, seed=ctx.seed, options={"n_train": len(train), "n_test": len(test), **model_opts},
    )


def _fit_fold(model, x, y, train, test):
    """One fold: a fresh model fitted on its training part, its predictions, any penalty choice and any
    count of tied votes among its predictions (KNN)."""
    fitted = clone(model).fit(x[train], y[train])
    pred, conf = predict_with_confidence(fitted, x[test])
    return pred, conf, getattr(fitted[-1], "selection_", None), getattr(fitted[-1], "tied_votes_", None)


def cross_validated(scenario, ctx, make_model: ModelFactory, fold_ties: list | None = None):
    """Stratified K-fold CV: per-fold metrics plus pooled out-of-fold predictions. ``fold_ties``: a list
    that receives each fold's count of tied votes, for models that count them (KNN)."""
    seed = scenario.options.split_seed
    space, n_splits = cv_space(scenario, ctx)
    x, y = ctx.features_for(space), space.y_true
    splits = cv_splits(y, n_splits, seed)
    smallest_train = min(len(train) for train, _ in splits)
    model, model_opts = make_model(smallest_train)
    # One fresh model per fold, fitted on its training part only, predicting and scoring from that fit
    # (cross_val_predict does the same but discards the fitted models, and with them any penalty a
    # model chose on its training part).
    fold_of, y_pred, confidence = np.empty(len(y), dtype=int), np.empty(len(y), dtype=int), np.empty(len(y))
    selections = []
    # Tuned probes (a penalty chosen per fold) and KNN (a quadratic neighbour search per fold, whose tied
    # votes the fold counts itself) may run their folds in worker processes.
    fits = map_folds(_fit_fold, [(model, x, y, train, test) for train, test in splits], rows=len(y))
    for fold, ((_, test), (pred, conf, selection, ties)) in enumerate(zip(splits, fits, strict=True)):
        y_pred[test], confidence[test] = pred, conf
        fold_of[test] = fold
        if selection is not None:
            selections.append(selection)
        if ties is not None and fold_ties is not None:
            fold_ties.append(ties)
    names = np.array(space.names, dtype=object)
    summary = _fold_summary(names[y], names[y_pred], fold_of, space.names, n_splits)
    extra = {"penalty": penalty_summary("C", selections, [{"fold": f} for f in range(n_splits)])} if selections else None
    return classification_result(
        scenario, space, None, space.stimulus_ids, y, y_pred, confidence, folds=fold_of.tolist(),
        seed=ctx.seed, fold_metrics=summary, extra=extra,
        options={"folds_effective": n_splits, "smallest_train_size": smallest_train, **model_opts},
    )
