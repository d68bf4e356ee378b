"""Sweeps: the two arbitrary choices of the study, varied on the same images.

* ``evaluate_threshold_sweep``: the zero-shot disgust task at every threshold of
  ``thresholds`` (the label space is rebuilt at each: classes a threshold empties are
  dropped and listed). The headline is the scenario's own ``threshold`` (the study's 5.0).
* ``evaluate_template_sweep``: every template of an ensemble alone as a 1-prompt
  classifier, beside the study wording and the full ensemble. Picking the best template
  on the images it is scored on is optimistic, so the headline is a cross-validated
  selection: the best template on the training folds, scored on the held-out fold, with
  the out-of-fold predictions pooled. Its calibration (ECE, Brier, out-of-fold temperature:
  ``calibration.py``, as a zero-shot run) is of these pooled predictions: each image's logits
  from the template chosen without it.

A sweep encodes no image: it reuses the run's image features, and its prompts go through
the encoder's text cache. Each point's predictions become rows of sweep_predictions.csv.gz,
from which its numbers recompute with scikit-learn.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..contracts import Scenario, ZeroShotOptions, resolve_scoring
from ..encoding.vectors import l2_normalise
from ..errors import ScenarioNotRunnable, UserError
from ..labels import LabelSpace, check_consistency
from ..prompts import PLACEHOLDER, load_ensemble, study_prompts
from ..results import SWEEP_PREDICTION_COLUMNS
from .calibration import calibration, calibration_intervals
from .common import classification_result, dropped_reasons, runnable_space
from .metrics import SWEEP_METRICS, score_rows, scores_of_rows
from .zeroshot import class_embeddings, prompts_for, winning_probability, zero_shot_logits
from .zeroshot import evaluate as evaluate_zeroshot
from .zeroshot import texts as zeroshot_texts

STUDY_POINT = "study wording"
ENSEMBLE_POINT = "full ensemble"
RANKED_BY = ("accuracy", "f1_macro")  # the metrics templates and the study wording are ranked by


def point_name(threshold: float | str) -> str:
    """A threshold as a sweep point: ``3.0``, ``3.5``, ..., or the rule ``mean+1sd``."""
    return threshold if isinstance(threshold, str) else str(float(threshold))


def _frame(scenario_id: str, points, stimulus_ids, true_names, pred_names, folds=None) -> pd.DataFrame:
    n = len(stimulus_ids)
    return pd.DataFrame({"scenario": scenario_id, "point": np.repeat(np.asarray(points, dtype=object), n),
                         "stimulus": np.tile(np.asarray(stimulus_ids, dtype=object), len(points)),
                         "y_true": np.tile(np.asarray(true_names, dtype=object), len(points)),
                         "y_pred": np.asarray(pred_names, dtype=object).ravel(),
                         "fold": "" if folds is None else folds})[SWEEP_PREDICTION_COLUMNS]


def _scored_points(space: LabelSpace, pred_rows: np.ndarray, seed: int) -> list[dict]:
    """Metrics with 95% stratified-bootstrap CIs for each row of predictions over ``space``."""
    point, ci = score_rows(space.y_true, pred_rows, len(space), seed=seed)
    return [{"n": len(space.y_true), "n_classes": len(space), "labels": space.names,
             "metrics": {m: float(point[m][i]) for m in SWEEP_METRICS},
             "ci": {m: [float(ci[m][i, 0]), float(ci[m][i, 1])] for m in SWEEP_METRICS}}
            for i in range(len(pred_rows))]


# ---------------------------------------------------------------- threshold sweep

def _threshold_points(scenario, ctx):
    """Each threshold of the sweep with its label space and the prompts bound to it."""
    opts = scenario.options
    zeroshot = {key: getattr(opts, key) for key in ZeroShotOptions.keys()}
    for threshold in opts.thresholds:
        at = Scenario(scenario.id, scenario.task, "zeroshot", ZeroShotOptions(**{**zeroshot, "threshold": threshold}))
        space = ctx.label_space(at)
        yield threshold, space, prompts_for(at, space)


def threshold_sweep_texts(scenario, ctx) -> list[list[str]]:
    """What ``evaluate_threshold_sweep`` encodes: the headline's prompts, then each threshold's."""
    return zeroshot_texts(scenario, ctx) + [list(prompt_set.all_prompts())
                                            for _, _, prompt_set in _threshold_points(scenario, ctx)]


def evaluate_threshold_sweep(scenario, ctx):
    opts = scenario.options
    result = evaluate_zeroshot(scenario, ctx)  # the reference threshold: the headline
    points, frames, prompts = [], [], dict.fromkeys(result.prompts)
    for threshold, space, prompt_set in _threshold_points(scenario, ctx):
        check_consistency(space, prompt_set.classes)
        # argmax only: the same for any positive scale and any bias
        y_pred = zero_shot_logits(ctx.features_for(space), class_embeddings(ctx.encoder, prompt_set)).argmax(axis=1)
        name = point_name(threshold)
        (scored,) = _scored_points(space, y_pred[None], ctx.seed)
        points.append({"point": name, "threshold": space.threshold, "rule": space.threshold_rule,
                       "class_counts": space.support(), "dropped_classes": list(space.dropped),
                       "dropped_reasons": dropped_reasons(space), **scored})
        frames.append(_frame(scenario.id, [name], space.stimulus_ids, space.decode(space.y_true),
                             space.decode(y_pred)))
        prompts.update(dict.fromkeys(prompt_set.rows()))
    result.sweep = points
    result.sweep_predictions = pd.concat(frames, ignore_index=True)
    result.prompts = tuple(prompts)
    result.extra = {**result.extra, "sweep": "threshold", "reference_point": point_name(opts.threshold)}
    return result


# ---------------------------------------------------------------- template sweep

def _ranks(scores: np.ndarray, against: np.ndarray) -> np.ndarray:
    """1 + how many of ``against`` score strictly higher (ties share the better rank)."""
    return 1 + (against[None, :] > scores[:, None]).sum(axis=1)


def _template_predictions(ctx, space: LabelSpace, text: np.ndarray, n_templates: int, scoring):
    """(templates, n) predictions, their winning probabilities and the (templates, n, classes) logits,
    each template's class embeddings exactly as a 1-prompt zero-shot run."""
    x = ctx.features_for(space)
    by_class = text.reshape(len(space), n_templates, -1)  # bound prompts are class-major
    logits, predictions, confidence = None, [], []
    for t in range(n_templates):
        template_logits = zero_shot_logits(x, l2_normalise(by_class[:, t]), scoring.logit_scale, scoring.logit_bias)
        if logits is None:  # filled in place: a list of them stacked held every logit twice (1 GB at 100k rows)
            logits = np.empty((n_templates, *template_logits.shape), template_logits.dtype)
        logits[t] = template_logits
        predictions.append(template_logits.argmax(axis=1))
        confidence.append(winning_probability(template_logits, scoring.rule))
    return np.stack(predictions), np.stack(confidence), logits


def _cv_selection(y: np.ndarray, template_preds: np.ndarray, n_labels: int, opts) -> tuple:
    """Choose the best template on the training folds, predict the held-out fold with it."""
    from sklearn.model_selection import StratifiedKFold

    n_splits = cv_folds(y, n_labels, opts.folds)
    cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=opts.split_seed)
    with warnings.catch_warnings():  # a class smaller than the folds only means it misses some test folds
        warnings.simplefilter("ignore", UserWarning)
        splits = list(cv.split(np.zeros(len(y)), y))
    oof, fold_of, template_of = (np.empty(len(y), dtype=int) for _ in range(3))
    chosen = []
    for fold, (train, test) in enumerate(splits):
        train_scores = scores_of_rows(y[train], template_preds[:, train], n_labels)[opts.select_by]
        best = int(np.argmax(train_scores))  # the first best: the earlier template of the file
        oof[test], fold_of[test], template_of[test] = template_preds[best, test], fold, best
        chosen.append((fold, best, float(train_scores[best]), len(test)))
    return oof, fold_of, template_of, n_splits, chosen


def cv_folds(y: np.ndarray, n_labels: int, folds: int) -> int:
    """The folds of the cross-validated template choice: ``folds``, fewer where a class is smaller;
    ScenarioNotRunnable where the stimuli are too few for 2."""
    counts = np.bincount(y, minlength=n_labels)
    n_splits = max(2, min(folds, int(counts[counts > 0].min())))
    if n_splits > len(y):
        raise ScenarioNotRunnable(f"{len(y)} stimuli are too few for a cross-validated template choice")
    if counts.max() < n_splits:  # StratifiedKFold needs one class that fills every fold
        raise ScenarioNotRunnable(f"no class has {n_splits} or more stimuli for a {n_splits}-fold cross-validated "
                                  f"template choice (largest class: {int(counts.max())})")
    return n_splits


def _sweep_ensemble(scenario):
    """The scenario's ensemble; a per-class file has no templates to take one at a time."""
    ensemble = load_ensemble(scenario.options.ensemble)
    if ensemble.templates is None:
        raise UserError(f"scenario {scenario.id}: {ensemble.source} maps classes to prompts; a template sweep "
                        f"needs a list of templates with {PLACEHOLDER}")
    return ensemble


def check_template_sweep_runnable(scenario, ctx) -> None:
    """2+ classes, a template list that binds to them, and enough stimuli for the CV choice."""
    space = runnable_space(scenario, ctx)
    _sweep_ensemble(scenario).bind(space)
    cv_folds(space.y_true, len(space), scenario.options.folds)


def _template_sweep_prompts(scenario, ctx) -> tuple:
    """The label space, the ensemble, its templates bound to the space, and the study wording."""
    space = runnable_space(scenario, ctx)
    ensemble = _sweep_ensemble(scenario)
    return space, ensemble, ensemble.bind(space), study_prompts(space)


def template_sweep_texts(scenario, ctx) -> list[list[str]]:
    """What ``evaluate_template_sweep`` encodes: every template's prompts, the study wording, the ensemble."""
    _, _, bound, study = _template_sweep_prompts(scenario, ctx)
    return [list(bound.all_prompts()), list(study.all_prompts()), list(bound.all_prompts())]


def evaluate_template_sweep(scenario, ctx):
    opts = scenario.options
    space, ensemble, bound, study = _template_sweep_prompts(scenario, ctx)
    check_consistency(space, bound.classes)
    x = ctx.features_for(space)
    scoring = resolve_scoring(opts, ctx.encoder)
    every, every_confidence, every_logits = _template_predictions(
        ctx, space, ctx.encoder.encode_texts(bound.all_prompts()), len(ensemble.templates), scoring)
    templates = list(dict.fromkeys(ensemble.templates))  # a repeated template counts once
    first = [ensemble.templates.index(t) for t in templates]
    rows = np.concatenate([
        zero_shot_logits(x, class_embeddings(ctx.encoder, study)).argmax(axis=1)[None],
        zero_shot_logits(x, class_embeddings(ctx.encoder, bound)).argmax(axis=1)[None],
        every[first]])
    names = [STUDY_POINT, ENSEMBLE_POINT, *templates]
    scored = _scored_points(space, rows, ctx.seed)
    y = space.y_true
    # Ranks among the templates and the study wording (1 = best; ties share the better rank).
    ranked = [0, *range(2, len(rows))]
    ranks = {}
    for m in RANKED_BY:
        scores = np.array([scored[i]["metrics"][m] for i in ranked])
        ranks[m] = dict(zip(ranked, _ranks(scores, scores).tolist(), strict=True))
    points = []
    for i, (name, point) in enumerate(zip(names, scored, strict=True)):
        entry = {"point": name, "kind": ("study", "ensemble", "template")[min(i, 2)], **point}
        if i in ranks["accuracy"]:
            entry["rank"] = {m: ranks[m][i] for m in RANKED_BY}
        points.append(entry)
    template_scores = {m: np.array([p["metrics"][m] for p in scored[2:]]) for m in SWEEP_METRICS}

    oof, fold_of, template_of, n_splits, chosen = _cv_selection(y, rows[2:], len(space), opts)
    # each image's template by its position among all of them (gathered directly: no copy of every logit)
    chosen_template = np.asarray(first)[template_of]
    # how sure the chosen template was of each held-out image (its zero-shot probability, as a plain zero-shot run)
    confidence = every_confidence[chosen_template, np.arange(len(y))]
    # the headline's logits (each image by the template chosen without it): calibrated as a zero-shot run
    chosen_logits = every_logits[chosen_template, np.arange(len(y))]
    del every_logits
    calibrated, calibration_record, probability_rows = calibration(scenario.id, space.stimulus_ids, space.names, y,
                                                                   chosen_logits, scoring.rule)
    best_in_sample = int(np.argmax(template_scores[opts.select_by]))
    selection = [{"fold": fold, "template": templates[t], f"train_{opts.select_by}": score, "n_test": n_test}
                 for fold, t, score, n_test in chosen]
    result = classification_result(
        scenario, space, bound.classes, space.stimulus_ids, y, oof, confidence, folds=fold_of.tolist(), seed=ctx.seed,
        options={"prompt_set": f"{ensemble.name}: template chosen by {n_splits}-fold CV", "ensemble_name": ensemble.name,
                 "n_templates": len(templates), "folds_effective": n_splits,
                 "selected_templates": [s["template"] for s in selection], **scoring.to_dict()},
        extra={"sweep": "template", "selection": selection,
               "in_sample_best": {"template": templates[best_in_sample],
                                  **points[2 + best_in_sample]["metrics"]},
               "study_rank": points[0]["rank"], "n_ranked": len(templates) + 1,
               "distribution": {m: _quartiles(v) for m, v in template_scores.items()},
               "calibration": calibration_record},
    )
    result.metrics |= calibrated
    result.ci |= calibration_intervals(probability_rows, y, ctx.seed)
    result.probabilities = probability_rows
    result.sweep = points
    result.sweep_predictions = _frame(scenario.id, names, space.stimulus_ids, space.decode(y),
                                      [space.decode(r) for r in rows])
    result.prompts = tuple(dict.fromkeys(study.rows() + bound.rows()))
    return result


def _quartiles(values: np.ndarray) -> dict[str, float]:
    q = np.percentile(values, [0, 25, 50, 75, 100])
    return dict(zip(("min", "q1", "median", "q3", "max"), (float(v) for v in q), strict=True))
