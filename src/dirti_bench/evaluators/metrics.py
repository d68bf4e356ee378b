"""Classification metrics, all from scikit-learn with ``y_true`` first and ``labels=``.

``labels=`` is always the full label space so a class with zero support still
appears (the study's report silently lost two classes).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
)

N_BOOTSTRAP = 1000
CI_LEVEL = 0.95
HEADLINE_METRICS = (
    "accuracy", "balanced_accuracy",
    "precision_macro", "recall_macro", "f1_macro",
    "precision_weighted", "recall_weighted", "f1_weighted",
)


def _balanced_accuracy(y_true, y_pred) -> float:
    with warnings.catch_warnings():
        # Predicting a class that has no true example is a scored error here, not a data problem.
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        return balanced_accuracy_score(y_true, y_pred)


def classification_metrics(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> dict:
    """Headline metrics, per-class table and confusion matrix (rows true, columns predicted)."""
    labels = list(labels)
    y_true, y_pred = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)
    metrics = {
        "accuracy": accuracy_score(y_true, y_pred),
        # balanced accuracy = macro recall over the classes present in y_true (sklearn's definition)
        "balanced_accuracy": _balanced_accuracy(y_true, y_pred),
    }
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=average, zero_division=0)
        metrics |= {f"precision_{average}": p, f"recall_{average}": r, f"f1_{average}": f}
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=None, zero_division=0)
    per_class = {
        label: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, label in enumerate(labels)
    }
    confusion = confusion_matrix(y_true, y_pred, labels=labels).tolist()
    return {"metrics": {k: float(v) for k, v in metrics.items()}, "per_class": per_class, "confusion": confusion}


def confusion_stack(true_idx: np.ndarray, pred_idx: np.ndarray, n_labels: int) -> np.ndarray:
    """Confusion matrices of many index draws at once: rows of ``true_idx``/``pred_idx`` -> (draws, L, L).

    One ``bincount`` over (draw, true, pred) codes replaces a scikit-learn call per draw.
    """
    true_idx, pred_idx = np.atleast_2d(true_idx), np.atleast_2d(pred_idx)
    draws = true_idx.shape[0]
    codes = (np.arange(draws)[:, None] * n_labels + true_idx) * n_labels + pred_idx
    return np.bincount(codes.ravel(), minlength=draws * n_labels * n_labels).reshape(draws, n_labels, n_labels)


def draw_counts(draws: np.ndarray, n: int) -> np.ndarray:
    """(draws, n): how many times each of ``n`` stimuli is in each row of index ``draws``."""
    n_draws = draws.shape[0]
    codes = (np.arange(n_draws)[:, None] * n + draws).ravel()
    return np.bincount(codes, minlength=n_draws * n).reshape(n_draws, n)


def resampled_confusions(counts: np.ndarray, true_idx: np.ndarray, pred_rows: np.ndarray, n_labels: int) -> np.ndarray:
    """Confusion matrices of each prediction row under each resampling draw: (rows, draws, L, L).

    A draw's confusion matrix is its stimuli's (true, pred) cells weighted by how often it drew
    them, so all of them are matrix products of the draw ``counts`` (``draw_counts``) with the
    rows' one-hot predictions, one true class at a time (a stimulus's true class fixes its matrix
    row, so only its predicted column needs a one-hot: L columns per prediction row, not L x L):
    the same integers as ``confusion_stack`` of the drawn indices, without building a
    (rows x draws x n) index array. float32 holds the counts and their sums exactly (each <= n).
    """
    pred_rows = np.atleast_2d(pred_rows)
    rows = pred_rows.shape[0]
    counts = counts.astype(np.float32, copy=False)
    cm = np.zeros((rows, len(counts), n_labels, n_labels), dtype=np.int64)
    for true in np.unique(true_idx):
        members = np.flatnonzero(true_idx == true)
        onehot = np.zeros((members.size, rows * n_labels), dtype=np.float32)
        onehot[np.arange(members.size)[:, None], np.arange(rows)[None, :] * n_labels + pred_rows[:, members].T] = 1
        drawn = counts[:, members] @ onehot  # (draws, rows x L): this true class's row of every matrix
        cm[:, :, true, :] = np.rint(drawn).astype(np.int64).reshape(len(counts), rows, n_labels).swapaxes(0, 1)
    return cm


def accuracy_from_confusion(cm: np.ndarray) -> np.ndarray:
    return np.trace(cm, axis1=-2, axis2=-1) / cm.sum(axis=(-2, -1))


def macro_f1_from_confusion(cm: np.ndarray) -> np.ndarray:
    """Macro F1 over every label (rows true, columns predicted), 0 where a class's F1 is undefined.

    F1 = 2TP / (2TP + FP + FN), scikit-learn's definition with ``zero_division=0``.
    """
    tp = np.diagonal(cm, axis1=-2, axis2=-1).astype(float)
    denom = cm.sum(axis=-1) + cm.sum(axis=-2)  # (TP + FN) + (TP + FP)
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return f1.mean(axis=-1)


def label_indices(values: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    position = {label: i for i, label in enumerate(labels)}
    try:
        return np.array([position[v] for v in values], dtype=np.int64)
    except KeyError as exc:
        raise ValueError(f"value {exc.args[0]!r} is not among the labels {list(labels)}") from None


def stratified_draws(strata: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n) row indices: each draw resamples every stratum with replacement to its own size."""
    blocks = []
    for value in np.unique(strata):
        members = np.flatnonzero(strata == value)
        blocks.append(members[rng.integers(0, len(members), size=(n_boot, len(members)))])
    return np.concatenate(blocks, axis=1) if blocks else np.zeros((n_boot, 0), dtype=np.int64)


def stratified_draw_counts(strata: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``draw_counts(stratified_draws(strata, n_boot, rng), n)`` as float32 (exact: counts <= n), built
    one stratum at a time from the same draws: ~n_boot x n x 4 bytes at peak instead of the int64 draws,
    their int64 counts and the float32 copy (~2 GB for 1000 draws of 100k stimuli)."""
    counts = np.zeros((n_boot, strata.size), dtype=np.float32)
    for value in np.unique(strata):
        members = np.flatnonzero(strata == value)
        local = rng.integers(0, len(members), size=(n_boot, len(members)))
        counts[:, members] = draw_counts(local, len(members))
    return counts


def stratified_confusions(true_idx: np.ndarray, pred_idx: np.ndarray, n_labels: int, n_boot: int,
                          rng: np.random.Generator) -> np.ndarray:
    """(n_boot, L, L) confusion matrices of ``stratified_draws``' resamples (the same draws from
    ``rng``), one true class at a time: a stratum's row of a draw's matrix counts the predicted
    labels of the members it drew. The integers of ``resampled_confusions``, in O(draws x n)
    integer work and one stratum's draws in memory instead of every draw's counts of every stimulus."""
    cm = np.zeros((n_boot, n_labels, n_labels), dtype=np.int64)
    offsets = np.arange(n_boot)[:, None] * n_labels
    for value in np.unique(true_idx):
        members = np.flatnonzero(true_idx == value)
        drawn = pred_idx[members][rng.integers(0, len(members), size=(n_boot, len(members)))]
        cm[:, value, :] = np.bincount((offsets + drawn).ravel(), minlength=n_boot * n_labels).reshape(n_boot, n_labels)
    return cm


def bootstrap_ci(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str],
    n_boot: int = N_BOOTSTRAP, seed: int = 0, level: float = CI_LEVEL,
) -> dict[str, list[float]]:
    """Percentile CIs for accuracy and macro F1 by stratified resampling of the stimuli.

    Resampling within each true class keeps the class mix of the test set, so
    every draw has the support the evaluation had. All draws are scored in one
    vectorised step (equal to scikit-learn's scores; see tests/test_evaluators.py).
    """
    labels = list(labels)
    true_idx, pred_idx = label_indices(y_true, labels), label_indices(y_pred, labels)
    if true_idx.size == 0:
        return {"accuracy": [None, None], "f1_macro": [None, None]}  # nothing to resample
    cm = stratified_confusions(true_idx, pred_idx, len(labels), n_boot, np.random.default_rng(seed))
    tail = (1 - level) / 2 * 100
    return {name: [float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))]
            for name, v in (("accuracy", accuracy_from_confusion(cm)), ("f1_macro", macro_f1_from_confusion(cm)))}


# ---------------------------------------------------------------- many classifiers on one label space

SWEEP_METRICS = ("accuracy", "balanced_accuracy", "f1_macro")


def balanced_accuracy_from_confusion(cm: np.ndarray) -> np.ndarray:
    """Mean recall over the classes with true examples: scikit-learn's ``balanced_accuracy_score``."""
    tp = np.diagonal(cm, axis1=-2, axis2=-1).astype(float)
    support = cm.sum(axis=-1)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    return recall.sum(axis=-1) / np.maximum((support > 0).sum(axis=-1), 1)


def _scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    return {"accuracy": accuracy_from_confusion(cm), "balanced_accuracy": balanced_accuracy_from_confusion(cm),
            "f1_macro": macro_f1_from_confusion(cm)}


def scores_of_rows(true_idx: np.ndarray, pred_rows: np.ndarray, n_labels: int) -> dict[str, np.ndarray]:
    """Accuracy, balanced accuracy and macro F1 of each row of ``pred_rows`` against ``true_idx``."""
    pred_rows = np.atleast_2d(np.asarray(pred_rows, dtype=np.int64))
    true_idx = np.broadcast_to(np.asarray(true_idx, dtype=np.int64), pred_rows.shape)
    return _scores(confusion_stack(true_idx, pred_rows, n_labels))


def resampled_scores(true_idx: np.ndarray, pred_rows: np.ndarray, n_labels: int, n_boot: int = N_BOOTSTRAP,
                     seed: int = 0) -> dict[str, np.ndarray]:
    """Accuracy, balanced accuracy and macro F1 of each row of ``pred_rows`` under each stratified
    bootstrap draw, {metric: (rows, n_boot)}: the draws of ``bootstrap_ci`` with the same seed, the same
    for every row, so differences between rows are paired."""
    true_idx = np.asarray(true_idx, dtype=np.int64)
    pred_rows = np.atleast_2d(np.asarray(pred_rows, dtype=np.int64))
    counts = stratified_draw_counts(true_idx, n_boot, np.random.default_rng(seed))
    return _scores(resampled_confusions(counts, true_idx, pred_rows, n_labels))


def score_rows(true_idx: np.ndarray, pred_rows: np.ndarray, n_labels: int, n_boot: int = N_BOOTSTRAP,
               seed: int = 0, level: float = CI_LEVEL, chunk: int = 16) -> tuple[dict, dict]:
    """Accuracy, balanced accuracy and macro F1 of many classifiers at once (one row of ``pred_rows``
    each, over the same stimuli and labels), with stratified percentile-bootstrap CIs.

    Every row is resampled with the same draws as ``bootstrap_ci`` with the same seed, so a single
    row's accuracy and macro-F1 CIs are ``bootstrap_ci``'s. Returns ({metric: (rows,)}, {metric: (rows, 2)}).
    """
    true_idx = np.asarray(true_idx, dtype=np.int64)
    pred_rows = np.atleast_2d(np.asarray(pred_rows, dtype=np.int64))
    rows = pred_rows.shape[0]
    point = scores_of_rows(true_idx, pred_rows, n_labels)
    if true_idx.size == 0:
        return point, {m: np.full((rows, 2), np.nan) for m in SWEEP_METRICS}
    counts = stratified_draw_counts(true_idx, n_boot, np.random.default_rng(seed))
    tail = (1 - level) / 2 * 100
    ci = {m: np.empty((rows, 2)) for m in SWEEP_METRICS}
    for start in range(0, rows, chunk):  # a chunk of rows at a time keeps the (rows, draws, L, L) counts small
        cm = resampled_confusions(counts, true_idx, pred_rows[start:start + chunk], n_labels)
        for metric, values in _scores(cm).items():
            ci[metric][start:start + len(cm)] = np.percentile(values, [tail, 100 - tail], axis=1).T
    return point, ci
