"""Label-set checks on a finished classification result (run by every benchmark case).

Each check targets one of the original study's mistakes: prompts in another
order than the truth ids, a report built as ``classification_report(pred,
truth)`` (its "support" counted predictions), and classes that silently
vanished from the report.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import LabelConsistencyError
from ..labels import LabelSpace, check_consistency
from ..results import PEARSON_R, SPEARMAN_RHO


def _fail(result, what: str) -> None:
    raise LabelConsistencyError(f"scenario {result.id}: {what}")


def check_result(result, space: LabelSpace, prompt_classes: Sequence[str] | None = None) -> None:
    """Raise unless ``result`` (a ScenarioResult) is consistent with the task's label ``space``.

    ``space`` is the space the scenario started from; an evaluator may have
    dropped classes from it (listed in ``dropped_classes``), never reordered it.
    """
    labels = list(result.labels)
    if prompt_classes is not None and list(prompt_classes) != labels:
        check_consistency(space, prompt_classes)  # names the first misplaced or missing class
        _fail(result, f"prompt classes {list(prompt_classes)} differ from the result's labels {labels}")
    dropped = list(result.dropped_classes)
    if set(labels) & set(dropped):
        _fail(result, f"classes {sorted(set(labels) & set(dropped))} are both labels and dropped")
    if set(labels) | set(dropped) != set(space.names) | set(space.dropped):
        _fail(result, f"labels + dropped classes {sorted(set(labels) | set(dropped))} do not cover the "
                      f"{space.task} classes {sorted(set(space.names) | set(space.dropped))}")
    if labels != [n for n in space.names if n in set(labels)]:
        _fail(result, f"labels {labels} are not in the {space.task} label-space order {space.names}")
    if list(result.per_class) != labels:
        _fail(result, f"per-class report lists {list(result.per_class)}, the label space {labels}")
    preds = result.predictions
    outside = sorted((set(preds["y_true"]) | set(preds["y_pred"])) - set(labels))
    if outside:
        _fail(result, f"predictions hold classes {outside} outside the label space {labels}")
    true_counts = preds["y_true"].value_counts().reindex(labels, fill_value=0).to_numpy()
    pred_counts = preds["y_pred"].value_counts().reindex(labels, fill_value=0).to_numpy()
    support = np.array([result.per_class[n]["support"] for n in labels])
    if not np.array_equal(support, true_counts):
        _fail(result, f"per-class support {support.tolist()} is not the true count per class "
                      f"{true_counts.tolist()} (a report called with predictions first counts predictions)")
    confusion = np.asarray(result.confusion)
    if confusion.shape != (len(labels), len(labels)):
        _fail(result, f"confusion matrix is {confusion.shape}, not square over the {len(labels)} labels")
    if not (np.array_equal(confusion.sum(axis=1), true_counts)
            and np.array_equal(confusion.sum(axis=0), pred_counts)):
        _fail(result, "confusion matrix rows/columns do not follow the label order (rows true, columns predicted)")
    if result.n != len(preds):
        _fail(result, f"n={result.n} but {len(preds)} predictions")


def _recomputed_alignment(preds) -> dict[str, float]:
    """Spearman/Pearson (zero-shot: one row per stimulus, no repeat) or, for the probe, per-repeat R²,
    Pearson's r, rho and RMSE averaged over repeats, and the intercept-only model's out-of-fold R²
    (each fold's training mean predicted for its test part), from the alignment_predictions rows alone."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import r2_score, root_mean_squared_error

    rating = preds["rating"].astype(float).to_numpy()
    score = preds["score"].astype(float).to_numpy()
    repeats = pd.Series(preds["repeat"]).reset_index(drop=True)
    if repeats.isna().all():
        with warnings.catch_warnings():  # constant scores: r is undefined (nan), as recorded
            warnings.simplefilter("ignore")
            return {SPEARMAN_RHO: float(spearmanr(rating, score).statistic),
                    PEARSON_R: float(pearsonr(rating, score).statistic)}
    folds = pd.Series(preds["fold"]).reset_index(drop=True).to_numpy()
    per = {"r2": [], PEARSON_R: [], SPEARMAN_RHO: [], "rmse": [], "r2_intercept_only": []}
    for repeat in sorted(repeats.dropna().unique()):
        rows = (repeats == repeat).to_numpy()
        t, p, fold = rating[rows], score[rows], folds[rows]
        per["r2"].append(r2_score(t, p))
        with warnings.catch_warnings():  # constant predictions: r is undefined (nan), as recorded
            warnings.simplefilter("ignore")
            per[PEARSON_R].append(pearsonr(t, p).statistic)
            per[SPEARMAN_RHO].append(spearmanr(t, p).statistic)
        per["rmse"].append(root_mean_squared_error(t, p))
        training_mean = {f: t[fold != f].mean() for f in np.unique(fold)}
        per["r2_intercept_only"].append(r2_score(t, [training_mean[f] for f in fold]))
    out = {name: float(np.mean(values)) for name, values in per.items()}
    return out | {"r2_gain_over_intercept_only": out["r2"] - out["r2_intercept_only"]}


def _check_close(result, name: str, recorded, value) -> None:
    if recorded is None or not np.isclose(recorded, value, rtol=1e-9, atol=1e-9, equal_nan=True):
        _fail(result, f"{name} is {recorded}, but its predictions give {value}")


def check_alignment_result(result) -> None:
    """Raise unless an alignment result's headline numbers follow from its own predictions (and
    its correlations over their noise ceilings from those and the recorded ceilings)."""
    from .rating_stats import CEILINGS

    preds = result.predictions
    if preds is None or not len(preds):
        _fail(result, "alignment result has no predictions to recompute its metrics from")
    if preds["stimulus"].nunique() != result.n:
        _fail(result, f"n={result.n} but predictions cover {preds['stimulus'].nunique()} stimuli")
    recomputed = _recomputed_alignment(preds)
    for name, value in recomputed.items():
        _check_close(result, name, result.metrics.get(name), value)
        low, high = result.ci.get(name, (None, None))
        if low is not None and high is not None and low > high:
            _fail(result, f"{name} CI [{low}, {high}] is not an interval")
    for name, ceiling in CEILINGS.items():
        if result.metrics.get(ceiling):
            _check_close(result, f"{name}_over_ceiling", result.metrics.get(f"{name}_over_ceiling"),
                         recomputed[name] / result.metrics[ceiling])


def check_sweep(result) -> None:
    """Raise unless every sweep point's predictions lie in its labels and give its n and accuracy."""
    preds = result.sweep_predictions
    if preds is None:
        _fail(result, "sweep result has no sweep predictions to recompute its points from")
    # A template sweep holds ~200 rows per stimulus: every row's point and class names become integer
    # codes once (pandas' hashing), and each point's row count, correct count and the classes it holds
    # are counted over those codes, instead of a sub-frame per point iterated name by name.
    point_of, point_names = pd.factorize(preds["point"])  # first-appearance order; -1: no point (as groupby)
    names = list(point_names)
    if set(names) != {p["point"] for p in result.sweep} or len(names) != len(result.sweep):
        _fail(result, f"sweep points {[p['point'] for p in result.sweep]} differ from the points of its "
                      f"predictions {names}")
    true, true_names = pd.factorize(preds["y_true"], use_na_sentinel=False)
    pred, pred_names = pd.factorize(preds["y_pred"], use_na_sentinel=False)
    classes = pd.Index(true_names).append(pd.Index(pred_names)).unique()  # both columns' names, one code each
    true, pred = classes.get_indexer(true_names)[true], classes.get_indexer(pred_names)[pred]
    if (point_of < 0).any():
        keep = point_of >= 0
        point_of, true, pred = point_of[keep], true[keep], pred[keep]
    n_rows = np.bincount(point_of, minlength=len(names))
    n_correct = np.bincount(point_of[true == pred], minlength=len(names))
    holds = np.zeros((len(names), len(classes)), dtype=bool)  # point x class: in its truth or predictions
    holds[point_of, true] = True
    holds[point_of, pred] = True
    index = {name: i for i, name in enumerate(names)}
    for point in result.sweep:
        i = index[point["point"]]
        outside = sorted(set(classes[holds[i]]) - set(point["labels"]))
        if outside:
            _fail(result, f"sweep point {point['point']!r} predicts classes {outside} outside its labels")
        n = int(n_rows[i])
        accuracy = float(n_correct[i] / n) if n else float("nan")
        if point["n"] != n or point["n_classes"] != len(point["labels"]) or not np.isclose(
                point["metrics"]["accuracy"], accuracy, rtol=1e-9, atol=1e-12, equal_nan=True):
            _fail(result, f"sweep point {point['point']!r} records n={point['n']}, accuracy "
                          f"{point['metrics']['accuracy']}, but its predictions give n={n}, accuracy {accuracy}")


def check_scenario_result(result, scenario, ctx) -> None:
    """The check every result passes before it is written, whichever path ran it."""
    if result.id != scenario.id or result.task != scenario.task:
        _fail(result, f"result is {result.id}/{result.task}, the scenario {scenario.id}/{scenario.task}")
    if scenario.is_classification:
        check_result(result, ctx.label_space(scenario), result.prompt_classes)
    else:
        check_alignment_result(result)
    if result.layer_scores is not None:
        from .layer_eval import check_layer_result

        check_layer_result(result)
    if result.sweep is not None:
        check_sweep(result)


def check_saved_run(doc: dict, predictions: pd.DataFrame | None, alignment: pd.DataFrame | None, where) -> None:
    """The run's consistency check applied when results are read back (``report``, comparisons):
    no duplicated prediction row, and each classification scenario's recorded n, labels and confusion
    matrix follow from its rows of predictions.csv.gz. A UserError (one line) names the first
    contradiction; results edited after the run are refused, not rendered."""
    from sklearn.metrics import confusion_matrix

    from ..errors import UserError

    def refuse(what: str) -> None:
        raise UserError(f"{where}: {what}; the results were changed after the run wrote them (re-run "
                        "'dirti-bench run' to regenerate them)")

    for name, frame, key in (("predictions.csv.gz", predictions, ["scenario", "stimulus"]),
                             ("alignment_predictions.csv", alignment, ["scenario", "stimulus", "repeat"])):
        if frame is None or not all(c in frame.columns for c in key):
            continue
        repeated = frame.duplicated(key, keep=False)
        if repeated.any():
            first = frame.loc[repeated].iloc[0]
            refuse(f"{name} holds {int(repeated.sum())} rows that repeat a stimulus of a scenario (e.g. "
                   f"{str(first['stimulus'])!r} of {str(first['scenario'])!r})")
    if predictions is None:
        return
    by_scenario = {str(sid): rows for sid, rows in predictions.groupby("scenario", sort=False)}
    for sid, entry in doc.get("scenarios", {}).items():
        rows = by_scenario.get(sid)
        if rows is None or not isinstance(entry, dict) or entry.get("confusion") is None:
            continue  # an alignment scenario, or one whose rows are missing (the report says so)
        labels = [str(label) for label in entry.get("labels") or []]
        y_true, y_pred = rows["y_true"].astype(str).to_numpy(), rows["y_pred"].astype(str).to_numpy()
        if entry.get("n") != len(rows):
            refuse(f"scenario {sid!r} records n={entry.get('n')!r} but predictions.csv.gz has {len(rows)} rows for it")
        outside = sorted((set(y_true) | set(y_pred)) - set(labels))
        if outside:
            refuse(f"scenario {sid!r}: its predictions hold classes {outside[:5]} outside its labels {labels}")
        recorded = np.asarray(entry["confusion"])
        if recorded.shape != (len(labels), len(labels)) or not np.array_equal(
                recorded, confusion_matrix(y_true, y_pred, labels=labels)):
            refuse(f"scenario {sid!r}: its labels and predictions contradict its confusion matrix")
