"""Which layer carries the classes: the per-layer side of the classifier-per-layer scenarios
(``linear-probe-layers-<task>``, ``knn-layers-<task>``) and their controls.

On the outer stratified folds the headline uses, every layer's classifier is fitted on each training
fold and predicts its test fold: each layer's pooled out-of-fold predictions give its accuracy,
balanced accuracy and macro F1 with the suite's classification CI (stratified percentile bootstrap,
``metrics.bootstrap_ci``'s draws). Beside the nested choice (inner CV on each training fold alone,
layer_eval.py) stands the optimistic same-data "superlative" choice: the layer with the best
out-of-fold accuracy, picked on the scores it reports; ``superlative - nested`` (paired bootstrap,
the same draws for both) says how optimistic that choice is.

``layer_class_predictions.csv`` holds every prediction these numbers come from, ``kind``:

* ``layer``: one layer's out-of-fold predictions (the profile);
* ``nested``: the training-fold choice's predictions, each row's ``layer`` the one its fold chose;
* ``final``: the run's final embedding in the same classifier and folds (the model side of the pixel
  control's paired difference).

``layer_class_scores.csv`` holds each layer's scores; both recompute with ``class_scores_from_predictions``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .layerwise import percentile_ci
from .metrics import (
    N_BOOTSTRAP,
    SWEEP_METRICS,
    classification_metrics,
    resampled_scores,
    score_rows,
)

LAYER_CLASS_METRICS = SWEEP_METRICS  # accuracy, balanced_accuracy, f1_macro
CHOICE_METRIC = "accuracy"  # the headline classification measure: it ranks the layers (inner CV and superlative)
LAYER_CLASS_PREDICTION_COLUMNS = ["scenario", "weights", "kind", "layer", "depth", "stimulus", "fold", "y_true",
                                  "y_pred", "confidence"]
LAYER_CLASS_SCORE_COLUMNS = ["scenario", "weights", "layer", "depth",
                             *[c for m in LAYER_CLASS_METRICS for c in (m, f"{m}_ci_low", f"{m}_ci_high")],
                             "n_folds_chosen"]
CLASS_KINDS = ("layer", "nested", "final")
CI_METHOD = ("95% percentile bootstrap, {n} draws resampling the stimuli within each true class (stratified by "
             "class; the draws of the headline's CI), the same draws for every layer so differences are paired")


@dataclass
class ClassLayerProbe:
    """What the classifier-per-layer loop found; columns of every (L, n) array follow the label space's
    stimuli, predictions as class indices of that space."""

    names: list[str]
    depths: list[float]
    weights: str
    fold_of: np.ndarray  # (n,) outer fold of each stimulus
    pred: np.ndarray  # (L, n) each layer's out-of-fold predicted class
    confidence: np.ndarray  # (L, n) the predicted class's probability
    chosen: list[int]  # per outer fold: the layer chosen on its training part

    @property
    def nested_pred(self) -> np.ndarray:
        return self.pred[self.chosen_per_stimulus, np.arange(self.pred.shape[1])]

    @property
    def nested_confidence(self) -> np.ndarray:
        return self.confidence[self.chosen_per_stimulus, np.arange(self.pred.shape[1])]

    @property
    def chosen_per_stimulus(self) -> np.ndarray:
        return np.asarray(self.chosen)[self.fold_of]


def class_layer_profile(probe: ClassLayerProbe, y: np.ndarray, n_labels: int, n_boot: int = N_BOOTSTRAP,
                        seed: int = 0) -> list[dict]:
    """One row per layer: its out-of-fold accuracy, balanced accuracy and macro F1, each with the
    stratified bootstrap CI, and how many outer folds chose it."""
    point, ci = score_rows(y, probe.pred, n_labels, n_boot, seed)
    rows = []
    for i, name in enumerate(probe.names):
        row = {"layer": name, "depth": float(probe.depths[i])}
        for m in LAYER_CLASS_METRICS:
            row |= {m: float(point[m][i]), f"{m}_ci_low": float(ci[m][i, 0]), f"{m}_ci_high": float(ci[m][i, 1])}
        rows.append(row | {"n_folds_chosen": int(sum(c == i for c in probe.chosen))})
    return rows


def class_choice(probe: ClassLayerProbe, y: np.ndarray, n_labels: int, n_boot: int = N_BOOTSTRAP,
                 seed: int = 0) -> dict:
    """The superlative (same-data) layer beside the nested choice, and the gap with its paired CI."""
    draws = resampled_scores(y, np.vstack([probe.nested_pred[None], probe.pred]), n_labels, n_boot, seed)[CHOICE_METRIC]
    point = (probe.pred == np.asarray(y)[None]).mean(axis=1)
    best = int(np.argmax(point))  # ties: the shallowest layer
    nested = float((probe.nested_pred == y).mean())
    return {
        "superlative": {"layer": probe.names[best], "depth": float(probe.depths[best]), CHOICE_METRIC: float(point[best]),
                        "ci": percentile_ci(draws[best + 1]),
                        "rule": f"the layer with the best out-of-fold {CHOICE_METRIC}, chosen on the scores it reports"},
        "gap": {f"superlative_minus_nested_{CHOICE_METRIC}": float(point[best] - nested),
                "ci": percentile_ci(draws[best + 1] - draws[0]),
                "ci_method": "paired stratified percentile bootstrap over stimuli (the same draws for both choices)"},
        "nested_" + CHOICE_METRIC: nested,
    }


def class_predictions_frame(scenario_id: str, probe: ClassLayerProbe, ids, names, y: np.ndarray,
                            kinds=("layer", "nested")) -> pd.DataFrame:
    """Tidy rows of ``layer_class_predictions.csv`` for one probe: one per (kind, layer, stimulus)."""
    names = np.asarray(names, dtype=object)
    depths = np.asarray(probe.depths, float)
    layer_names = np.asarray(probe.names, dtype=object)

    def rows(kind, layer, depth, pred, conf):
        return pd.DataFrame({"scenario": scenario_id, "weights": probe.weights, "kind": kind, "layer": layer,
                             "depth": depth, "stimulus": list(ids), "fold": np.asarray(probe.fold_of, dtype=int),
                             "y_true": names[y], "y_pred": names[pred], "confidence": np.asarray(conf, float)})

    parts = []
    if "layer" in kinds:
        parts += [rows("layer", name, float(probe.depths[i]), probe.pred[i], probe.confidence[i])
                  for i, name in enumerate(probe.names)]
    if "nested" in kinds:
        chosen = probe.chosen_per_stimulus
        parts.append(rows("nested", layer_names[chosen], depths[chosen], probe.nested_pred, probe.nested_confidence))
    return pd.concat(parts, ignore_index=True)[LAYER_CLASS_PREDICTION_COLUMNS]


def final_predictions_frame(scenario_id: str, weights: str, fold_of, pred, confidence, ids, names,
                            y: np.ndarray) -> pd.DataFrame:
    """``kind`` final rows: the run's final embedding in the same classifier and folds."""
    names = np.asarray(names, dtype=object)
    return pd.DataFrame({"scenario": scenario_id, "weights": weights, "kind": "final", "layer": "final",
                         "depth": 1.0, "stimulus": list(ids), "fold": np.asarray(fold_of, dtype=int),
                         "y_true": names[y], "y_pred": names[pred],
                         "confidence": np.asarray(confidence, float)})[LAYER_CLASS_PREDICTION_COLUMNS]


def class_scores_frame(scenario_id: str, weights: str, rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"scenario": scenario_id, "weights": weights, **row} for row in rows])[LAYER_CLASS_SCORE_COLUMNS]


def class_scores_from_predictions(frame: pd.DataFrame, labels) -> pd.DataFrame:
    """Accuracy, balanced accuracy and macro F1 per (scenario, weights, kind, layer) recomputed from
    ``layer_class_predictions.csv`` rows with scikit-learn (``labels``: the scenario's label space, or
    scenario -> labels); nested rows group by (scenario, weights, kind) alone."""
    out = []
    frame = frame.assign(group_layer=np.where(frame["kind"] == "nested", "", frame["layer"]))
    for (sid, weights, kind, layer), part in frame.groupby(["scenario", "weights", "kind", "group_layer"], sort=False):
        scenario_labels = labels[sid] if isinstance(labels, dict) else labels
        scored = classification_metrics(part["y_true"].astype(str), part["y_pred"].astype(str), scenario_labels)
        out.append({"scenario": sid, "weights": weights, "kind": kind, "layer": layer or None,
                    **{m: scored["metrics"][m] for m in LAYER_CLASS_METRICS}})
    return pd.DataFrame(out)


def check_class_layer_result(result) -> None:
    """Every per-layer score of ``layer_class_scores`` and the headline recompute from ``layer_class_predictions``."""
    from ..errors import LabelConsistencyError

    recomputed = class_scores_from_predictions(result.layer_class_predictions, list(result.labels))
    by_layer = recomputed[recomputed["kind"] == "layer"].set_index(["weights", "layer"])
    for row in result.layer_class_scores.itertuples():
        for m in LAYER_CLASS_METRICS:
            value = by_layer[m].get((row.weights, row.layer), np.nan)
            if not np.isclose(getattr(row, m), value, rtol=1e-9, atol=1e-12):
                raise LabelConsistencyError(f"scenario {result.id}: layer {row.layer} ({row.weights}) {m} is "
                                            f"{getattr(row, m)}, but its predictions give {value}")
