"""Classification metrics, all from scikit-learn with ``y_true`` first and ``labels=``.

``labels=`` is always the full label space so a class with zero support still
appears (the study's report silently lost two classes).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)
from sklearn.utils import resample

N_BOOTSTRAP = 1000
CI_LEVEL = 0.95
HEADLINE_METRICS = (
    "accuracy", "balanced_accuracy",
    "precision_macro", "recall_macro", "f1_macro",
    "precision_weighted", "recall_weighted", "f1_weighted",
)


def classification_metrics(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> dict:
    """Headline metrics, per-class table and confusion matrix (rows true, columns predicted)."""
    labels = list(labels)
    y_true, y_pred = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)
    metrics = {
        "accuracy": accuracy_score(y_true, y_pred),
        # balanced accuracy = macro recall over the classes present in y_true (sklearn's definition)
        "balanced_accuracy": balanced_accuracy_score(y_true, y_pred),
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


def bootstrap_ci(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str],
    n_boot: int = N_BOOTSTRAP, seed: int = 0, level: float = CI_LEVEL,
) -> dict[str, list[float]]:
    """Percentile CIs for accuracy and macro F1 by stratified resampling of the stimuli.

    Resampling within each true class keeps the class mix of the test set, so
    every draw has the support the evaluation had.
    """
    y_true, y_pred = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)
    rng = np.random.RandomState(seed)
    idx = np.arange(len(y_true))
    acc, f1 = np.empty(n_boot), np.empty(n_boot)
    for b in range(n_boot):
        draw = resample(idx, replace=True, stratify=y_true, random_state=rng)
        acc[b] = accuracy_score(y_true[draw], y_pred[draw])
        f1[b] = f1_score(y_true[draw], y_pred[draw], labels=list(labels), average="macro", zero_division=0)
    tail = (1 - level) / 2 * 100
    return {name: [float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))]
            for name, v in (("accuracy", acc), ("f1_macro", f1))}
