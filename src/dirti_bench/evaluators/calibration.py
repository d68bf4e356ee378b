"""Zero-shot probabilities by the model's own rule, and whether they can be trusted (calibration).

* Probabilities: ``scale * cos + bias`` per class, then a softmax across classes (contrastive CLIP)
  or a sigmoid per class (SigLIP: each class is a yes/no question, so they need not sum to 1).
* Expected calibration error of the top-label confidence, over ``ECE_BINS`` bins of equal mass:
  the images sorted by confidence (stable sort, ties keep their order) and split into bins of equal
  count (``np.array_split``: sizes differ by at most one). Equal-mass bins, because zero-shot
  confidences crowd into a narrow range where equal-width bins would leave most bins empty.
* Brier score: the sum over classes of scikit-learn's one-vs-rest ``brier_score_loss`` (for a
  softmax this is the usual multi-class Brier score, 0 perfect, 2 worst).
* Temperature: one number T dividing the logits, fitted by minimising scikit-learn's log loss on the
  CV training folds only, applied to the held-out fold: out-of-fold calibrated probabilities
  (Guo et al. 2017; one temperature per model transfers across prompts, LeVine et al. 2023).

* Intervals (``calibration_intervals``): 95% percentile bootstrap CIs of ECE and Brier, raw and
  calibrated, over the draws of the accuracy CI (``metrics.stratified_draws``: 1000 draws of the
  stimuli resampled within each true class, the run's seed). A draw is a multiset of stimuli, taken
  in stimulus order before the stable sort by confidence, so its equal-mass bins are well defined;
  the fitted temperatures are held fixed (not refitted per draw).

Everything is recomputable from probabilities.csv.gz (one row per stimulus and class).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..contracts import DEFAULT_SPLIT_SEED
from ..results import PROBABILITY_COLUMNS
from .metrics import CI_LEVEL, N_BOOTSTRAP, stratified_draws

ECE_BINS = 10
CALIBRATION_FOLDS = 10
BINNING = (f"equal-mass: images sorted by top-label confidence and split into {ECE_BINS} bins of equal "
           "count (sizes differ by at most one)")
INTERVALS = (f"{CI_LEVEL:.0%} percentile bootstrap, {N_BOOTSTRAP} draws, stratified by class (the accuracy "
             "CI's draws and seed); temperatures held fixed")
DRAW_CHUNK = 100  # draws scored at once: (chunk x n) arrays, so memory does not grow with the draws
# log T is searched in this range: T from 1/50 to 50 covers any usable zero-shot scale
LOG_T_BOUNDS = (-np.log(50.0), np.log(50.0))


def probabilities(logits: np.ndarray, rule: str) -> np.ndarray:
    """Class probabilities (float64: near-ties stay apart) by the model's rule."""
    from scipy.special import expit, softmax

    logits = np.asarray(logits, dtype=np.float64)
    if rule == "sigmoid":
        return expit(logits)
    return softmax(logits, axis=1)


def equal_mass_bins(confidence: np.ndarray, n_bins: int = ECE_BINS) -> list[np.ndarray]:
    """Row indices of each bin: sorted by confidence, split into ``n_bins`` parts of equal count."""
    order = np.argsort(np.asarray(confidence, dtype=np.float64), kind="stable")
    return [b for b in np.array_split(order, min(n_bins, len(order))) if len(b)]


def reliability_table(confidence: np.ndarray, correct: np.ndarray, n_bins: int = ECE_BINS) -> list[dict]:
    """Per equal-mass bin: its size, mean confidence, accuracy (the reliability diagram's points)."""
    confidence, correct = np.asarray(confidence, dtype=np.float64), np.asarray(correct, dtype=float)
    return [{"bin": i, "n": int(len(b)), "confidence_low": float(confidence[b].min()),
             "confidence_high": float(confidence[b].max()), "mean_confidence": float(confidence[b].mean()),
             "accuracy": float(correct[b].mean())} for i, b in enumerate(equal_mass_bins(confidence, n_bins))]


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """Sum over equal-mass bins of (bin share) x |accuracy - mean confidence|."""
    table = reliability_table(confidence, correct, n_bins)
    n = sum(row["n"] for row in table)
    return float(sum(row["n"] / n * abs(row["accuracy"] - row["mean_confidence"]) for row in table))


def brier_score(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Sum over classes of the one-vs-rest Brier score (scikit-learn's ``brier_score_loss``)."""
    from sklearn.metrics import brier_score_loss

    y_true = np.asarray(y_true)
    return float(sum(brier_score_loss((y_true == k).astype(int), probs[:, k], pos_label=1)
                     for k in range(probs.shape[1])))


def _log_loss(y: np.ndarray, logits: np.ndarray, rule: str, temperature: float) -> float:
    from sklearn.metrics import log_loss

    probs = probabilities(logits / temperature, rule)
    k = logits.shape[1]
    if rule == "sigmoid":  # every (image, class) cell is its own yes/no question
        return float(log_loss((y[:, None] == np.arange(k)).ravel().astype(int), probs.ravel(), labels=[0, 1]))
    return float(log_loss(y, probs, labels=list(range(k))))


def _log_loss_of_temperature(y: np.ndarray, logits: np.ndarray, rule: str):
    """``T -> _log_loss(y, logits, rule, T)``, the same floats: scikit-learn's ``log_loss`` checks the
    labels and one-hot encodes them on every call (most of its time, and the same for every T), so
    that is done once here, by scikit-learn's own validation, and each T runs only its loss step.
    Falls back to ``_log_loss`` where this scikit-learn lacks those steps."""
    try:
        from sklearn.metrics._classification import _log_loss as loss_step
        from sklearn.metrics._classification import (
            _validate_multiclass_probabilistic_prediction as validate,
        )
    except ImportError:  # pragma: no cover - another scikit-learn layout
        return lambda temperature: _log_loss(y, logits, rule, temperature)
    k = logits.shape[1]
    if rule == "sigmoid":
        y_true, labels = (y[:, None] == np.arange(k)).ravel().astype(int), [0, 1]
    else:
        y_true, labels = y, list(range(k))
    onehot = None

    def loss(temperature: float) -> float:
        nonlocal onehot
        probs = probabilities(logits / temperature, rule)
        probs = probs.ravel() if rule == "sigmoid" else probs
        if onehot is None:  # the first call: scikit-learn's own checks, as log_loss makes them
            onehot, validated = validate(y_true, probs, None, labels)
            return float(loss_step(onehot, validated))
        if probs.ndim == 1:  # log_loss's binary columns: P(0), P(1)
            probs = np.concatenate([1 - probs[:, None], probs[:, None]], axis=1)
        return float(loss_step(onehot, probs))

    return loss


def fit_temperature(logits: np.ndarray, y: np.ndarray, rule: str) -> float:
    """The temperature minimising the log loss of ``logits / T`` on these rows (and only these)."""
    from scipy.optimize import minimize_scalar

    loss = _log_loss_of_temperature(y, logits, rule)
    best = minimize_scalar(lambda log_t: loss(float(np.exp(log_t))),
                           bounds=LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-4})
    return float(np.exp(best.x))


def calibration_folds(y: np.ndarray, n_classes: int, folds: int = CALIBRATION_FOLDS) -> int:
    """``folds``, fewer where the smallest present class is smaller (at least 2)."""
    counts = np.bincount(y, minlength=n_classes)
    return max(2, min(folds, int(counts[counts > 0].min()), len(y)))


def out_of_fold_calibration(logits: np.ndarray, y: np.ndarray, rule: str, folds: int = CALIBRATION_FOLDS,
                            seed: int = DEFAULT_SPLIT_SEED) -> tuple[np.ndarray, np.ndarray, list[float], int]:
    """Calibrated probabilities of each image from a temperature fitted on the other folds; the fold
    of each image; each fold's temperature; the number of folds used."""
    from sklearn.model_selection import StratifiedKFold

    n_splits = calibration_folds(y, logits.shape[1], folds)
    cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    calibrated = np.empty_like(logits, dtype=np.float64)
    fold_of = np.empty(len(y), dtype=int)
    temperatures = []
    with warnings.catch_warnings():  # a class smaller than the folds only misses some test folds
        warnings.simplefilter("ignore", UserWarning)
        splits = list(cv.split(np.zeros(len(y)), y))
    for fold, (train, test) in enumerate(splits):
        t = fit_temperature(logits[train], y[train], rule)
        calibrated[test] = probabilities(logits[test] / t, rule)
        fold_of[test] = fold
        temperatures.append(t)
    return calibrated, fold_of, temperatures, n_splits


def calibration(scenario_id: str, stimulus_ids, class_names, y: np.ndarray, logits: np.ndarray, rule: str,
                seed: int = DEFAULT_SPLIT_SEED) -> tuple[dict, dict, pd.DataFrame]:
    """Metrics (raw and out-of-fold calibrated ECE and Brier), the record of how they were drawn,
    and the probabilities.csv.gz rows."""
    probs = probabilities(logits, rule)
    y_pred = logits.argmax(axis=1)
    correct = y_pred == y
    counts = np.bincount(y, minlength=logits.shape[1])
    if counts.max() < 2:  # no class fills two folds: no temperature can be fitted out of fold, so say so
        return _uncalibrated(scenario_id, stimulus_ids, class_names, y, logits, probs, correct)
    calibrated, fold_of, temperatures, used = out_of_fold_calibration(logits, y, rule, seed=seed)
    # the temperature is positive, so the calibrated argmax is the raw one: only confidence moves
    metrics = {"ece": expected_calibration_error(probs.max(axis=1), correct),
               "brier": brier_score(y, probs),
               "ece_calibrated": expected_calibration_error(calibrated.max(axis=1), correct),
               "brier_calibrated": brier_score(y, calibrated)}
    record = {"binning": BINNING, "ece_bins": ECE_BINS, "confidence": "top-label probability",
              "brier": "sum over classes of one-vs-rest brier_score_loss", "intervals": INTERVALS,
              "temperature": {"fitted_on": "CV training folds only (log loss); applied to the held-out fold",
                              "folds": used, "split_seed": seed, "stratify": "true class",
                              "per_fold": temperatures, "median": float(np.median(temperatures)),
                              "search_bounds": [float(np.exp(b)) for b in LOG_T_BOUNDS]},
              "reliability": reliability_table(probs.max(axis=1), correct),
              "reliability_calibrated": reliability_table(calibrated.max(axis=1), correct)}
    n, k = logits.shape
    frame = pd.DataFrame({"scenario": scenario_id, "stimulus": np.repeat(np.asarray(list(stimulus_ids),
                                                                                    dtype=object), k),
                          "class": np.tile(np.asarray(list(class_names), dtype=object), n),
                          "logit": logits.astype(np.float64).ravel(), "probability": probs.ravel(),
                          "calibrated_probability": calibrated.ravel(),
                          "calibration_fold": np.repeat(fold_of, k)})[PROBABILITY_COLUMNS]
    return metrics, record, frame


UNDEFINED_CALIBRATION = ("undefined: no class has 2 stimuli, so no temperature can be fitted on other folds "
                         "(calibrated ECE and Brier are left empty)")


def _uncalibrated(scenario_id, stimulus_ids, class_names, y, logits, probs, correct):
    """``calibration``'s output where the set is too small for an out-of-fold temperature: the raw
    ECE and Brier, the calibrated ones stated undefined (NaN, recorded as such), no fold."""
    metrics = {"ece": expected_calibration_error(probs.max(axis=1), correct), "brier": brier_score(y, probs),
               "ece_calibrated": float("nan"), "brier_calibrated": float("nan")}
    record = {"binning": BINNING, "ece_bins": ECE_BINS, "confidence": "top-label probability",
              "brier": "sum over classes of one-vs-rest brier_score_loss", "intervals": INTERVALS,
              "temperature": {"undefined": UNDEFINED_CALIBRATION},
              "reliability": reliability_table(probs.max(axis=1), correct), "reliability_calibrated": []}
    n, k = logits.shape
    frame = pd.DataFrame({"scenario": scenario_id, "stimulus": np.repeat(np.asarray(list(stimulus_ids),
                                                                                    dtype=object), k),
                          "class": np.tile(np.asarray(list(class_names), dtype=object), n),
                          "logit": logits.astype(np.float64).ravel(), "probability": probs.ravel(),
                          "calibrated_probability": np.nan,
                          "calibration_fold": pd.array([pd.NA] * (n * k), dtype="Int64")})[PROBABILITY_COLUMNS]
    return metrics, record, frame


def sorted_rows(values: np.ndarray, bound: int) -> np.ndarray:
    """``np.sort(values, axis=1)`` for non-negative integers below ``bound``, by counting instead of
    sorting (O(rows x (n + bound)), not n log n per row): the same array, since sorted integers are
    determined by how often each value occurs."""
    rows, size = values.shape
    counts = np.bincount((values + bound * np.arange(rows)[:, None]).ravel(), minlength=rows * bound)
    return np.repeat(np.tile(np.arange(bound, dtype=values.dtype), rows), counts).reshape(rows, size)


def ece_of_draws(confidence: np.ndarray, correct: np.ndarray, draws: np.ndarray, n_bins: int = ECE_BINS) -> np.ndarray:
    """``expected_calibration_error`` of each row of index ``draws`` (each row the same length), the
    drawn stimuli taken in stimulus order (``np.sort``) before the stable sort by confidence.

    One stable sort of all stimuli gives each its rank; a draw sorted by rank is then sorted by
    confidence with ties in stimulus order, and its equal-mass bins are fixed slices (every draw has
    the same size), summed with ``np.add.reduceat``: |sum correct - sum confidence| / n per bin.
    """
    confidence, correct = np.asarray(confidence, dtype=np.float64), np.asarray(correct, dtype=np.float64)
    order = np.argsort(confidence, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    size = draws.shape[1]
    starts = np.array([b[0] for b in np.array_split(np.arange(size), min(n_bins, size)) if len(b)])
    out = np.empty(len(draws))
    for start in range(0, len(draws), DRAW_CHUNK):
        rows = order[sorted_rows(rank[draws[start:start + DRAW_CHUNK]], len(order))]
        gap = np.add.reduceat(correct[rows], starts, axis=1) - np.add.reduceat(confidence[rows], starts, axis=1)
        out[start:start + len(rows)] = np.abs(gap).sum(axis=1) / size
    return out


def calibration_intervals(frame: pd.DataFrame, y: np.ndarray, seed: int, n_boot: int = N_BOOTSTRAP,
                          level: float = CI_LEVEL) -> dict[str, list[float]]:
    """Percentile-bootstrap CIs of ``ece``, ``brier`` and their calibrated twins from one scenario's
    probabilities.csv.gz rows (``calibration``'s frame: stimulus-major, the classes in label order)
    and the true class index of each stimulus, resampled with ``bootstrap_ci``'s stratified draws
    (same ``seed``: the same draws). A metric without a finite value gets no interval."""
    y = np.asarray(y)
    n = len(y)
    if n == 0:
        return {}
    draws = stratified_draws(y, n_boot, np.random.default_rng(seed))
    onehot = np.eye(len(frame) // n)[y]
    # the temperature is positive: the calibrated argmax is the raw one, the logits' (as ``calibration``)
    correct = frame["logit"].to_numpy(dtype=np.float64).reshape(n, -1).argmax(axis=1) == y
    tail = (1 - level) / 2 * 100
    out = {}
    for suffix, column in (("", "probability"), ("_calibrated", "calibrated_probability")):
        probs = frame[column].to_numpy(dtype=np.float64).reshape(n, -1)
        if not np.isfinite(probs).all():
            continue  # calibration undefined on this set (stated in the record)
        per_stimulus_brier = ((probs - onehot) ** 2).sum(axis=1)
        brier = np.concatenate([per_stimulus_brier[draws[i:i + DRAW_CHUNK]].mean(axis=1)
                                for i in range(0, n_boot, DRAW_CHUNK)])
        for name, values in ((f"ece{suffix}", ece_of_draws(probs.max(axis=1), correct, draws)),
                             (f"brier{suffix}", brier)):
            out[name] = [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]
    return out
