"""Which layer carries the rating: a ridge probe on every layer, the layer chosen inside each
training fold, beside the published same-data ("superlative") choice.

Per layer, as in the published method (Conwell et al., PNAS 2025; ColinConwell/AffectExMachina
``mapping_methods.gcv_ridge_regression``): ``RidgeCV`` over a grid of alphas with the closed-form
leave-one-out (generalised cross-validation) predictions, layers ranked by the Pearson r of those
leave-one-out predictions. The features are standardised first (on the training part only). The
published rule takes the alpha with the best leave-one-out r; r is blind to the predictions' scale,
so that alpha is often tiny and the predictions far off in scale (R^2 well below predicting the
mean). The probes here take the alpha by leave-one-out squared error with the one-standard-error
rule (the alignment probe's, ``penalty.fit_tuned_ridge``); the ``published`` column keeps the
published rule.

* ``nested``: stratified k-fold (by category). Inside each training fold every layer's leave-one-out
  r on that training fold alone ranks the layers; the best layer's ridge, refitted on the whole
  training fold at its alpha, predicts the test fold. The test fold's ratings never reach the
  choice, so the pooled out-of-fold predictions are an honest score of "take the best layer".
* per layer: the same folds, every layer's own out-of-fold predictions: the layer profile.
* ``superlative``: the layer with the best out-of-fold r, chosen by looking at those scores
  (the published choice: the best layer on the data it is scored on). Its r is optimistic by
  construction; the gap ``superlative - nested`` says by how much.
* ``published``: each layer's leave-one-out r on all stimuli at once (alpha and layer both chosen
  on the data they are scored on), the published number itself.

Every number recomputes from ``layer_predictions.csv`` (``layer_scores_from_predictions``) and the
nested predictions in ``alignment_predictions.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .common import one_thread
from .penalty import RIDGE_ALPHAS

LAYER_PREDICTION_COLUMNS = ["scenario", "weights", "layer", "depth", "kind", "stimulus", "fold", "rating",
                            "prediction"]
KINDS = ("cv", "loo-all-data")  # per-layer out-of-fold predictions; the published all-data leave-one-out


def pearson(x, y) -> float:
    from scipy.stats import pearsonr

    x, y = np.asarray(x, float), np.asarray(y, float)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(pearsonr(x, y).statistic)


def _pearson_columns(y: np.ndarray, preds: np.ndarray) -> np.ndarray:
    """Pearson r of ``y`` with each column of ``preds`` (n, m); nan for a constant column."""
    yc = y - y.mean()
    pc = preds - preds.mean(axis=0)
    denom = np.sqrt((yc ** 2).sum() * (pc ** 2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (yc @ pc) / denom
    return np.where(denom > 0, r, np.nan)


@dataclass
class GcvFit:
    alpha: float
    loo_r: float  # Pearson r of the leave-one-out predictions at ``alpha``
    loo: np.ndarray  # (n,) leave-one-out predictions at ``alpha``
    model: object  # fitted: predict(X)
    edge: str | None = None  # 'high': the intercept-only limit (predicts the training mean)
    selection: dict | None = None  # penalty.selection_record of the one-SE rule


ALPHA_RULES = {
    "one-se": ("RidgeCV leave-one-out squared error, one-standard-error rule (the alignment probe's, "
               "evaluators/penalty.py): calibrated predictions"),
    "pearson": ("RidgeCV leave-one-out predictions, the alpha with the best Pearson r (the published rule; "
                "blind to the predictions' scale)"),
}


def _loo_predictions(Xs: np.ndarray, y: np.ndarray, alphas) -> np.ndarray:
    """(n, len(alphas)) closed-form leave-one-out predictions of ridge on standardised ``Xs``."""
    from sklearn.linear_model import RidgeCV

    # scoring given: cv_results_ holds the leave-one-out predictions, not squared errors
    loo = RidgeCV(alphas=list(alphas), store_cv_results=True, scoring="explained_variance").fit(Xs, y).cv_results_
    return loo.reshape(len(y), len(alphas))


def gcv_ridge(X: np.ndarray, y: np.ndarray, alphas=RIDGE_ALPHAS, rule: str = "one-se") -> GcvFit:
    """StandardScaler + ridge with its alpha chosen from the closed-form leave-one-out predictions on
    (X, y) alone (``rule``: ``ALPHA_RULES``), refitted on all of (X, y); and the Pearson r of the
    leave-one-out predictions at that alpha, which ranks the layers."""
    from sklearn.linear_model import Ridge
    from sklearn.preprocessing import StandardScaler

    from .penalty import fit_tuned_ridge

    X, y = np.asarray(X, float), np.asarray(y, float)
    if rule == "one-se":
        model, selection = fit_tuned_ridge(X, y, alphas)
        if selection["edge"] == "high":  # the training mean, left out one at a time
            loo = (y.sum() - y) / (y.size - 1)
        else:
            loo = _loo_predictions(StandardScaler().fit_transform(X), y, [selection["alpha"]])[:, 0]
        return GcvFit(float(selection["alpha"]), pearson(y, loo), loo, model, selection["edge"], selection)
    scaler = StandardScaler().fit(X)
    Xs = scaler.transform(X)
    loo = _loo_predictions(Xs, y, alphas)
    r = _pearson_columns(y, loo)
    best = int(np.nanargmax(r)) if np.isfinite(r).any() else len(alphas) - 1  # no signal: strongest penalty
    ridge = Ridge(alpha=alphas[best]).fit(Xs, y)
    return GcvFit(float(alphas[best]), float(r[best]), loo[:, best], _Scaled(scaler, ridge))


class _Scaled:
    def __init__(self, scaler, ridge):
        self.scaler, self.ridge = scaler, ridge

    def predict(self, X):
        return self.ridge.predict(self.scaler.transform(X))


def _predict(fit: GcvFit, X: np.ndarray) -> np.ndarray:
    return np.asarray(fit.model.predict(np.asarray(X, float)), float)


@dataclass
class LayerProbe:
    """What ``layer_probe`` found; rows of every array follow the stimuli."""

    names: list[str]
    depths: list[float]
    fold_of: np.ndarray  # (n,) outer fold of each stimulus
    per_layer_oof: np.ndarray  # (L, n) each layer's out-of-fold predictions
    nested_oof: np.ndarray  # (n,) the training-fold choice's out-of-fold predictions
    chosen: list[int]  # per outer fold: the layer index chosen on its training part
    train_scores: np.ndarray  # (folds, L) each layer's leave-one-out r on each training fold
    alphas: np.ndarray  # (folds, L) the alpha each layer took on each training fold
    published_loo: np.ndarray  # (L, n) leave-one-out predictions on all stimuli (published method)
    published_alphas: list[float]
    folds_used: int
    selections: list[list[dict | None]] | None = None  # (folds, L) each fit's penalty selection record

    def chosen_selections(self) -> list[dict]:
        """Per outer fold, the penalty selection of the layer it chose (for penalty.penalty_summary)."""
        return [self.selections[f][c] for f, c in enumerate(self.chosen)]

    def per_layer_r(self, y) -> np.ndarray:
        return _pearson_columns(np.asarray(y, float), self.per_layer_oof.T)

    def published_r(self, y) -> np.ndarray:
        return _pearson_columns(np.asarray(y, float), self.published_loo.T)


def outer_folds(groups, folds: int, seed: int) -> tuple[list, int]:
    from sklearn.model_selection import StratifiedKFold

    from .alignment import check_strata

    used = min(folds, check_strata(groups))
    cv = StratifiedKFold(n_splits=used, shuffle=True, random_state=seed)
    return list(cv.split(np.zeros(len(groups)), np.asarray(groups, dtype=object))), used


def layer_probe(layers: list[np.ndarray], y, groups, folds: int = 10, seed: int = 0, names=None, depths=None,
                alphas=RIDGE_ALPHAS, published: bool = True) -> LayerProbe:
    """The nested layer choice and the per-layer profile on the same stratified folds (see module doc)."""
    with one_thread():
        return _layer_probe(layers, np.asarray(y, float), groups, folds, seed, names, depths, tuple(alphas), published)


def _layer_probe(layers, y, groups, folds, seed, names, depths, alphas, published) -> LayerProbe:
    n_layers, n = len(layers), len(y)
    names = list(names) if names is not None else [f"layer{i}" for i in range(n_layers)]
    depths = list(depths) if depths is not None else [(i + 1) / n_layers for i in range(n_layers)]
    splits, used = outer_folds(groups, folds, seed)
    per_layer = np.full((n_layers, n), np.nan)
    nested = np.full(n, np.nan)
    fold_of = np.zeros(n, dtype=int)
    train_scores = np.full((used, n_layers), np.nan)
    chosen_alphas = np.full((used, n_layers), np.nan)
    chosen, selections = [], []
    for f, (train, test) in enumerate(splits):
        fold_of[test] = f
        fits = []
        for i, X in enumerate(layers):
            fit = gcv_ridge(X[train], y[train], alphas)
            fits.append(fit)
            train_scores[f, i], chosen_alphas[f, i] = fit.loo_r, fit.alpha
            per_layer[i, test] = _predict(fit, X[test])
        selections.append([fit.selection for fit in fits])
        scores = np.where(np.isfinite(train_scores[f]), train_scores[f], -np.inf)  # nan: constant predictions
        best = int(np.argmax(scores))  # ties: the shallowest layer
        chosen.append(best)
        nested[test] = per_layer[best, test]
    loo, loo_alphas = np.full((n_layers, n), np.nan), []
    if published:
        for i, X in enumerate(layers):
            fit = gcv_ridge(X, y, alphas, rule="pearson")  # the published number, as published
            loo[i], _ = fit.loo, loo_alphas.append(fit.alpha)
    return LayerProbe(names, depths, fold_of, per_layer, nested, chosen, train_scores, chosen_alphas, loo,
                      loo_alphas, used, selections)


# ---------------------------------------------------------------- scores and their files

def bootstrap_r(y, preds: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, m) Pearson r of ``y`` with each row of ``preds`` (m, n) on resampled stimuli (the same
    draws for every row, so differences between rows are paired)."""
    y, preds = np.asarray(y, float), np.atleast_2d(np.asarray(preds, float))
    rng = np.random.default_rng([seed, 26])
    idx = rng.integers(0, y.size, size=(n_boot, y.size))
    out = np.empty((n_boot, preds.shape[0]))
    for b in range(n_boot):
        out[b] = _pearson_columns(y[idx[b]], preds[:, idx[b]].T)
    return out


def percentile_ci(draws: np.ndarray) -> list[float]:
    finite = draws[np.isfinite(draws)]
    if not finite.size:
        return [float("nan"), float("nan")]
    low, high = np.percentile(finite, [2.5, 97.5])
    return [float(low), float(high)]


def layer_profile(probe: LayerProbe, y, n_boot: int, seed: int) -> list[dict]:
    """One row per layer: out-of-fold r with its bootstrap CI, the published all-data leave-one-out r,
    and how many outer folds chose the layer."""
    y = np.asarray(y, float)
    r = probe.per_layer_r(y)
    draws = bootstrap_r(y, probe.per_layer_oof, n_boot, seed)
    published = probe.published_r(y)
    rows = []
    for i, name in enumerate(probe.names):
        low, high = percentile_ci(draws[:, i])
        rows.append({"layer": name, "depth": float(probe.depths[i]), "pearson_r": float(r[i]), "ci_low": low,
                     "ci_high": high, "published_loo_r": float(published[i]),
                     "published_alpha": float(probe.published_alphas[i]) if probe.published_alphas else None,
                     "n_folds_chosen": int(sum(c == i for c in probe.chosen))})
    return rows


def choice_summary(probe: LayerProbe, y, n_boot: int, seed: int) -> dict:
    """The nested choice, the superlative (same-data) choice, the published choice and the gap."""
    y = np.asarray(y, float)
    r = probe.per_layer_r(y)
    best = int(np.nanargmax(r)) if np.isfinite(r).any() else 0
    nested_r = pearson(y, probe.nested_oof)
    draws = bootstrap_r(y, np.vstack([probe.nested_oof, probe.per_layer_oof[best]]), n_boot, seed)
    published = probe.published_r(y)
    pub = int(np.nanargmax(published)) if np.isfinite(published).any() else 0
    counts = np.bincount(probe.chosen, minlength=len(probe.names))
    modal = int(np.argmax(counts))
    return {
        "nested": {"pearson_r": nested_r, "ci": percentile_ci(draws[:, 0]),
                   "per_fold": [{"fold": f, "layer": probe.names[c], "depth": float(probe.depths[c]),
                                 "train_loo_r": float(probe.train_scores[f, c]), "alpha": float(probe.alphas[f, c])}
                                for f, c in enumerate(probe.chosen)],
                   "modal_layer": probe.names[modal], "modal_depth": float(probe.depths[modal]),
                   "folds_agreeing": int(counts[modal]), "folds": int(probe.folds_used)},
        "superlative": {"layer": probe.names[best], "depth": float(probe.depths[best]), "pearson_r": float(r[best]),
                        "ci": percentile_ci(draws[:, 1]),
                        "rule": "the layer with the best out-of-fold r, chosen on the scores it reports"},
        "gap": {"superlative_minus_nested": float(r[best] - nested_r), "ci": percentile_ci(draws[:, 1] - draws[:, 0]),
                "ci_method": "paired percentile bootstrap over stimuli"},
        "published": {"layer": probe.names[pub], "depth": float(probe.depths[pub]),
                      "loo_r": float(published[pub]),
                      "rule": "RidgeCV leave-one-out r on all stimuli; alpha and layer both chosen on it"},
    }


def layer_predictions_frame(scenario_id: str, weights: str, probe: LayerProbe, ids, y) -> pd.DataFrame:
    """The tidy per-layer predictions: one row per (layer, kind, stimulus)."""
    parts = []
    for i, name in enumerate(probe.names):
        for kind, preds, folds in (("cv", probe.per_layer_oof[i], probe.fold_of),
                                   ("loo-all-data", probe.published_loo[i], np.full(len(y), -1))):
            if kind == "loo-all-data" and not np.isfinite(preds).all():
                continue
            parts.append(pd.DataFrame({"scenario": scenario_id, "weights": weights, "layer": name,
                                       "depth": float(probe.depths[i]), "kind": kind, "stimulus": list(ids),
                                       "fold": np.asarray(folds, dtype=int), "rating": np.asarray(y, float),
                                       "prediction": np.asarray(preds, float)}))
    return pd.concat(parts, ignore_index=True)[LAYER_PREDICTION_COLUMNS]


def layer_scores_from_predictions(frame: pd.DataFrame) -> pd.DataFrame:
    """Pearson r per (scenario, weights, layer, kind) recomputed from ``layer_predictions.csv`` rows
    with scipy: what the layer profiles and choices must match."""
    rows = []
    for (sid, weights, layer, kind), part in frame.groupby(["scenario", "weights", "layer", "kind"], sort=False):
        rows.append({"scenario": sid, "weights": weights, "layer": layer, "kind": kind,
                     "depth": float(part["depth"].iloc[0]),
                     "pearson_r": pearson(part["rating"], part["prediction"])})
    return pd.DataFrame(rows)
