"""The layer-wise scenarios: ``align-layers`` (the nested best layer, with the superlative choice and
the gap beside it), ``align-pixels`` and ``align-random-init`` (controls.py).

Each is an alignment result: its headline predictions (one per stimulus, per seed for the
random-init control) go to alignment_predictions.csv and recompute like the alignment probe's; the
per-layer predictions go to layer_predictions.csv and the profile to layer_scores.csv.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..contracts import ScenarioResult
from ..errors import LabelConsistencyError
from .alignment import _ceiling, _predictions, _rated, _result, check_strata
from .controls import PIXEL_FEATURES, pixel_features, random_init_encoders
from .layerwise import (
    bootstrap_r,
    choice_summary,
    layer_predictions_frame,
    layer_probe,
    layer_profile,
    layer_scores_from_predictions,
    pearson,
    percentile_ci,
)
from .penalty import penalty_summary
from .rating_stats import (
    intercept_only_comparison,
    over_ceiling,
    regression_metrics,
    within_category_points,
)

LAYER_SCORE_COLUMNS = ["scenario", "weights", "layer", "depth", "pearson_r", "ci_low", "ci_high", "published_loo_r",
                       "published_alpha", "n_folds_chosen"]


def layers_for(ctx, mode: str, srp_seed: int = 0, encoder=None, reporter=None):
    """The layer features of ``encoder`` (default the run's) on the run's stimuli, kept on ``ctx``."""
    from ..encoding.layers import LayerSpec, extract_layers

    encoder = encoder or ctx.encoder
    clip = getattr(encoder, "encoder", encoder)
    key = (repr(getattr(clip, "identity", dict)()), mode, srp_seed)
    if key not in ctx.layers:
        stimuli = ctx.stimuli.stimuli
        ctx.layers[key] = extract_layers(encoder, [s.path for s in stimuli], [s.sha256 for s in stimuli],
                                         LayerSpec(mode, srp_seed), reporter)
    return ctx.layers[key]


def check_layers_runnable(scenario, ctx) -> None:
    check_strata(_rated(ctx, scenario)[4])


def _headline(scenario, ctx, rating, ids, cats, y, oof: np.ndarray, fold_of: np.ndarray):
    """Alignment metrics of out-of-fold predictions ``oof`` (rows: repeats or seeds), as the probe's."""
    opts = scenario.options
    metrics, ci = regression_metrics(y, oof, opts.n_boot, ctx.seed)
    versus, versus_ci = intercept_only_comparison(y, oof, fold_of, opts.n_boot, ctx.seed)
    per_cat, within = within_category_points(y, oof, cats)
    ceiling, ceiling_ci, ceiling_opts, note = _ceiling(ctx, scenario, rating, ids, ctx.seed)
    metrics |= versus | within | ceiling
    metrics |= over_ceiling(metrics, ceiling)
    repeats = oof.shape[0]
    predictions = _predictions(scenario.id, ids * repeats, cats * repeats, np.tile(y, repeats), oof.ravel(),
                               np.repeat(np.arange(repeats), len(y)), fold_of.ravel())
    return metrics, ci | versus_ci | ceiling_ci, ceiling_opts, {"within_category": per_cat, **note}, predictions


def _profile_frame(scenario_id: str, weights: str, rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"scenario": scenario_id, "weights": weights, **row} for row in rows])[LAYER_SCORE_COLUMNS]


def check_layer_result(result) -> None:
    """Every per-layer r of ``layer_scores`` recomputes from ``layer_predictions``."""
    if result.layer_scores is None:
        return
    recomputed = layer_scores_from_predictions(result.layer_predictions)
    cv = recomputed[recomputed["kind"] == "cv"].set_index(["weights", "layer"])["pearson_r"]
    loo = recomputed[recomputed["kind"] == "loo-all-data"].set_index(["weights", "layer"])["pearson_r"]
    for row in result.layer_scores.itertuples():
        for name, recorded, table in (("pearson_r", row.pearson_r, cv), ("published_loo_r", row.published_loo_r, loo)):
            value = table.get((row.weights, row.layer), np.nan)
            if not np.isclose(recorded, value, rtol=1e-9, atol=1e-9, equal_nan=True):
                raise LabelConsistencyError(f"scenario {result.id}: layer {row.layer} ({row.weights}) {name} is "
                                            f"{recorded}, but its predictions give {value}")


def _options(scenario, rating, probe, features, ceiling_opts) -> dict:
    opts = scenario.options
    return {**opts.to_dict(), "rating": rating, "folds_used": probe.folds_used, "model": "StandardScaler + RidgeCV",
            "alpha_rule": "RidgeCV closed-form leave-one-out predictions; the alpha with the best Pearson r",
            "layer_rule": "the layer with the best leave-one-out r on each training fold", "stratify": "category",
            **({"layers": features.describe()} if features is not None else {}), **ceiling_opts}


def _penalty(*probes) -> dict:
    """The alpha each outer fold's chosen layer took (per seed for the random-init control), summarised as
    the alignment probe's penalty is: the report and the validity flags (intercept-only) read it."""
    records = [r for probe in probes for r in probe.chosen_selections()]
    folds = [{"repeat": k, "fold": f} if len(probes) > 1 else {"fold": f}
             for k, probe in enumerate(probes) for f in range(probe.folds_used)]
    return penalty_summary("alpha", records, folds)


def evaluate_layers(scenario, ctx) -> ScenarioResult:
    opts = scenario.options
    rating, rows, y, ids, cats = _rated(ctx, scenario)
    features = layers_for(ctx, opts.mode, opts.srp_seed)
    probe = layer_probe([a[rows] for a in features.arrays], y, cats, opts.folds, opts.split_seed,
                        features.names, features.depths)
    metrics, ci, ceiling_opts, extra, predictions = _headline(scenario, ctx, rating, ids, cats, y,
                                                              probe.nested_oof[None], probe.fold_of[None])
    choice = choice_summary(probe, y, opts.n_boot, ctx.seed)
    metrics |= {"nested_modal_depth": choice["nested"]["modal_depth"],
                "superlative_r": choice["superlative"]["pearson_r"], "superlative_depth": choice["superlative"]["depth"],
                "superlative_minus_nested": choice["gap"]["superlative_minus_nested"],
                "published_loo_r": choice["published"]["loo_r"], "published_depth": choice["published"]["depth"]}
    ci |= {"superlative_r": choice["superlative"]["ci"], "superlative_minus_nested": choice["gap"]["ci"]}
    profile = layer_profile(probe, y, opts.n_boot, ctx.seed)
    extra |= {"layer_choice": choice, "layer_profile": profile, "penalty": _penalty(probe),
              "ci_method": "percentile bootstrap over stimuli (the per-layer and the paired choice CIs)"}
    result = _result(scenario, ctx, len(y), metrics, ci, _options(scenario, rating, probe, features, ceiling_opts),
                     extra, predictions)
    result.layer_predictions = layer_predictions_frame(scenario.id, features.weights, probe, ids, y)
    result.layer_scores = _profile_frame(scenario.id, features.weights, profile)
    check_layer_result(result)
    return result


def _final_embedding_oof(ctx, rows, y, cats, folds, split_seed) -> np.ndarray:
    """The model's final embedding in the same probe and folds (the model side of pixels vs model)."""
    probe = layer_probe([ctx.image_features[rows]], y, cats, folds, split_seed, ["final"], [1.0], published=False)
    return probe.nested_oof


def evaluate_pixels(scenario, ctx) -> ScenarioResult:
    opts = scenario.options
    rating, rows, y, ids, cats = _rated(ctx, scenario)
    stimuli = ctx.stimuli.stimuli
    X = pixel_features([stimuli[i].path for i in rows])
    probe = layer_probe([X], y, cats, opts.folds, opts.split_seed, ["pixels"], [0.0])
    metrics, ci, ceiling_opts, extra, predictions = _headline(scenario, ctx, rating, ids, cats, y,
                                                              probe.nested_oof[None], probe.fold_of[None])
    options = {**_options(scenario, rating, probe, None, ceiling_opts), "features": PIXEL_FEATURES,
               "n_features": int(X.shape[1])}
    if ctx.image_features.shape[1]:
        model_oof = _final_embedding_oof(ctx, rows, y, cats, opts.folds, opts.split_seed)
        draws = bootstrap_r(y, np.vstack([model_oof, probe.nested_oof]), opts.n_boot, ctx.seed)
        metrics["model_final_r"] = pearson(y, model_oof)
        metrics["model_minus_pixels_r"] = metrics["model_final_r"] - pearson(y, probe.nested_oof)
        ci["model_minus_pixels_r"] = percentile_ci(draws[:, 0] - draws[:, 1])
        extra["model_vs_pixels"] = ("the model's final embedding in the same ridge probe on the same folds; "
                                    "CI: paired percentile bootstrap over stimuli")
    profile = layer_profile(probe, y, opts.n_boot, ctx.seed)
    extra["penalty"] = _penalty(probe)
    result = _result(scenario, ctx, len(y), metrics, ci, options, extra, predictions)
    result.layer_predictions = layer_predictions_frame(scenario.id, "none (image statistics)", probe, ids, y)
    result.layer_scores = _profile_frame(scenario.id, "none (image statistics)", profile)
    check_layer_result(result)
    return result


def evaluate_random_init(scenario, ctx) -> ScenarioResult:
    opts = scenario.options
    rating, rows, y, ids, cats = _rated(ctx, scenario)
    trained = layers_for(ctx, opts.mode, opts.srp_seed)
    trained_probe = layer_probe([a[rows] for a in trained.arrays], y, cats, opts.folds, opts.split_seed,
                                trained.names, trained.depths, published=False)
    oofs, folds, frames, profiles, per_seed, probes = [], [], [], [], [], []
    for seed, encoder in zip(opts.seeds, random_init_encoders(ctx, opts.seeds), strict=True):
        features = layers_for(ctx, opts.mode, opts.srp_seed, encoder=encoder)
        probe = layer_probe([a[rows] for a in features.arrays], y, cats, opts.folds, opts.split_seed,
                            features.names, features.depths)
        choice = choice_summary(probe, y, opts.n_boot, ctx.seed)
        probes.append(probe)
        oofs.append(probe.nested_oof)
        folds.append(probe.fold_of)
        frames.append(layer_predictions_frame(scenario.id, features.weights, probe, ids, y))
        profile = layer_profile(probe, y, opts.n_boot, ctx.seed)
        profiles.append(_profile_frame(scenario.id, features.weights, profile))
        per_seed.append({"seed": int(seed), "weights": features.weights, "nested_r": choice["nested"]["pearson_r"],
                         "nested_modal_depth": choice["nested"]["modal_depth"],
                         "superlative_r": choice["superlative"]["pearson_r"],
                         "superlative_depth": choice["superlative"]["depth"]})
    oof, fold_of = np.vstack(oofs), np.vstack(folds)
    metrics, ci, ceiling_opts, extra, predictions = _headline(scenario, ctx, rating, ids, cats, y, oof, fold_of)
    nested = np.array([s["nested_r"] for s in per_seed])
    # paired over stimuli: the trained model's nested r minus the mean over seeds of each seed's nested r
    draws = bootstrap_r(y, np.vstack([trained_probe.nested_oof, oof]), opts.n_boot, ctx.seed)
    difference = draws[:, 0] - np.nanmean(draws[:, 1:], axis=1)
    trained_r = pearson(y, trained_probe.nested_oof)
    metrics |= {"band_min_r": float(np.nanmin(nested)), "band_max_r": float(np.nanmax(nested)),
                "trained_nested_r": trained_r, "trained_minus_random_r": float(trained_r - np.nanmean(nested))}
    ci["trained_minus_random_r"] = percentile_ci(difference)
    extra |= {"per_seed": per_seed, "trained_weights": trained.weights, "penalty": _penalty(*probes),
              "band": f"min and max of the nested r over {len(opts.seeds)} random-init seeds",
              "difference": "trained nested r - mean random-init nested r; CI: paired percentile bootstrap over stimuli"}
    clip = getattr(ctx.encoder, "encoder", ctx.encoder)
    if getattr(clip, "smoke_run", False):
        extra["note"] = "the run's own model has random weights: the trained side of this control is random too"
    result = _result(scenario, ctx, len(y), metrics, ci,
                     {**_options(scenario, rating, trained_probe, trained, ceiling_opts), "seeds": list(opts.seeds)},
                     extra, predictions)
    result.layer_predictions = pd.concat(frames, ignore_index=True)
    result.layer_scores = pd.concat(profiles, ignore_index=True)
    check_layer_result(result)
    return result


# ---------------------------------------------------------------- the logistic probe per layer

LAYER_INNER_FOLDS = 3  # inner stratified folds on each training fold that rank the layers


def check_classifier_layers_runnable(scenario, ctx) -> None:
    """ScenarioNotRunnable unless the outer CV can stratify the classes and every outer training part
    holds each class at least twice, so the layer can be chosen by an inner stratified split of it
    (labels only: before any image is encoded)."""
    from ..errors import ScenarioNotRunnable
    from .crossval import cv_space, cv_splits

    space, n_splits = cv_space(scenario, ctx)
    for train, _ in cv_splits(space.y_true, n_splits, scenario.options.split_seed):
        if np.unique(space.y_true[train], return_counts=True)[1].min() < 2:
            raise ScenarioNotRunnable(
                f"{scenario.id}: a class has fewer than 2 stimuli in an outer training fold, so no inner split "
                "can choose its layer; it needs at least 3 stimuli in every class")


def _choose_layer(model, arrays, y, train, seed: int) -> tuple[int, list[float]]:
    """The layer whose probe has the best mean inner-CV accuracy on the training part ``train`` alone
    (the test fold never enters the choice); ties go to the shallower layer."""
    from sklearn.base import clone
    from sklearn.model_selection import cross_val_score

    splits = _inner_splits(y[train], seed)  # the same inner parts for every layer: a paired comparison
    scores = [float(np.mean(cross_val_score(clone(model), X[train], y[train], cv=splits, scoring="accuracy")))
              for X in arrays]
    return int(np.argmax(scores)), scores


def _inner_splits(y_train, seed: int) -> list:
    import warnings

    from sklearn.model_selection import StratifiedKFold

    counts = np.unique(y_train, return_counts=True)[1]
    cv = StratifiedKFold(n_splits=max(2, min(LAYER_INNER_FOLDS, int(counts.min()))), shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # A class rarer than the inner folds sits in some validation parts only; those rows are the same
        # for every layer, so the comparison between layers stays paired (the count is recorded per fold).
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        return list(cv.split(np.zeros(len(y_train)), y_train))


def _class_layer_probe(arrays, names, depths, weights, y, splits, split_seed: int, model, inner_make,
                       after_fold=None):
    """Every layer's classifier on every outer fold (the profile) and the layer chosen by inner CV
    accuracy (``inner_make``'s model) on each training fold alone; ``after_fold(model, X_train, y_train,
    X_test)`` -> per-fold numbers to add up, on the chosen layer. Returns (ClassLayerProbe, per-fold
    records, added numbers)."""
    from sklearn.base import clone

    from .crossval import predict_with_confidence
    from .layer_classes import ClassLayerProbe

    n = len(y)
    fold_of = np.empty(n, dtype=int)
    pred, confidence = np.empty((len(arrays), n), dtype=int), np.empty((len(arrays), n))
    chosen, per_fold, added = [], [], {}
    for fold, (train, test) in enumerate(splits):
        seed = split_seed + fold
        best, scores = _choose_layer(inner_make(y[train], seed), arrays, y, train, seed)
        for i, X in enumerate(arrays):  # each layer fitted on the training fold: its out-of-fold predictions
            pred[i, test], confidence[i, test] = predict_with_confidence(clone(model).fit(X[train], y[train]), X[test])
        fold_of[test] = fold
        chosen.append(best)
        counts = np.unique(y[train], return_counts=True)[1]
        per_fold.append({"fold": fold, "layer": names[best], "depth": float(depths[best]),
                         "inner_accuracy": dict(zip(names, scores, strict=True)),
                         "classes_rarer_than_inner_folds": int((counts < LAYER_INNER_FOLDS).sum())})
        if after_fold is not None:
            for key, value in after_fold(model, arrays[best][train], y[train], arrays[best][test]).items():
                added[key] = added.get(key, 0) + value
    return ClassLayerProbe(list(names), [float(d) for d in depths], weights, fold_of, pred, confidence, chosen), \
        per_fold, added


def _layer_space(scenario, ctx):
    """The scenario's label space, its outer stratified folds and the rows of the run's stimuli it holds."""
    from .crossval import cv_space, cv_splits

    space, n_splits = cv_space(scenario, ctx)
    row_of = {s.id: i for i, s in enumerate(ctx.stimuli.stimuli)}
    rows = np.array([row_of[sid] for sid in space.stimulus_ids])
    splits = cv_splits(space.y_true, n_splits, scenario.options.split_seed)
    return space, n_splits, rows, splits


def _classifier_layers(scenario, ctx, make, inner_make, after_fold=None) -> ScenarioResult:
    """A classifier (``make(n_train)`` -> (unfitted model, options)) on every layer, the layer chosen by
    inner CV accuracy (``inner_make``'s model) on each outer training fold alone; the headline
    predictions are the chosen layer's. Beside it: every layer's out-of-fold scores, the superlative
    (same-data) layer and the gap (layer_classes.py)."""
    from .common import classification_result
    from .crossval import _fold_summary
    from .layer_classes import (
        CHOICE_METRIC,
        CI_METHOD,
        check_class_layer_result,
        class_choice,
        class_layer_profile,
        class_predictions_frame,
        class_scores_frame,
    )
    from .metrics import N_BOOTSTRAP

    opts = scenario.options
    space, n_splits, rows, splits = _layer_space(scenario, ctx)
    features = layers_for(ctx, opts.mode, opts.srp_seed)
    y = space.y_true
    model, model_opts = make(min(len(train) for train, _ in splits))
    probe, per_fold, added = _class_layer_probe([a[rows] for a in features.arrays], features.names, features.depths,
                                                features.weights, y, splits, opts.split_seed, model, inner_make,
                                                after_fold)
    y_pred, confidence, fold_of = probe.nested_pred, probe.nested_confidence, probe.fold_of
    chosen = [f["layer"] for f in per_fold]
    modal = max(dict.fromkeys(chosen), key=chosen.count)
    names = np.array(space.names, dtype=object)
    choice = class_choice(probe, y, len(space.names), N_BOOTSTRAP, ctx.seed)
    profile = class_layer_profile(probe, y, len(space.names), N_BOOTSTRAP, ctx.seed)
    nested = {"modal_layer": modal, "modal_depth": float(features.depths[features.names.index(modal)]),
              "folds_agreeing": chosen.count(modal), "folds": n_splits, "per_fold": per_fold,
              CHOICE_METRIC: choice.pop(f"nested_{CHOICE_METRIC}"),
              "rule": f"the layer with the best mean accuracy in {LAYER_INNER_FOLDS}-fold stratified inner CV on each "
                      "training fold"}
    extra = {"layer_choice": {"nested": nested, **choice}, "layer_profile": profile,
             "layer_ci_method": CI_METHOD.format(n=N_BOOTSTRAP)}
    result = classification_result(
        scenario, space, None, space.stimulus_ids, y, y_pred, confidence, folds=fold_of.tolist(), seed=ctx.seed,
        fold_metrics=_fold_summary(names[y], names[y_pred], fold_of, space.names, n_splits), extra=extra,
        options={"folds_effective": n_splits, "layers": features.describe(),
                 "layer_choice_rule": nested["rule"], **model_opts})
    sup, gap = choice["superlative"], choice["gap"]
    result.metrics |= {"nested_modal_depth": nested["modal_depth"], f"superlative_{CHOICE_METRIC}": sup[CHOICE_METRIC],
                       "superlative_depth": sup["depth"],
                       f"superlative_minus_nested_{CHOICE_METRIC}": gap[f"superlative_minus_nested_{CHOICE_METRIC}"]}
    result.ci |= {f"superlative_{CHOICE_METRIC}": sup["ci"], f"superlative_minus_nested_{CHOICE_METRIC}": gap["ci"]}
    result.layer_class_predictions = class_predictions_frame(scenario.id, probe, space.stimulus_ids, space.names, y)
    result.layer_class_scores = class_scores_frame(scenario.id, features.weights, profile)
    check_class_layer_result(result)
    return result, added


def evaluate_probe_layers(scenario, ctx) -> ScenarioResult:
    """``linear-probe-layers-<task>``: the linear probe's logistic regression on each layer, the layer
    chosen inside each training fold of the stratified CV (nested), predictions of the chosen layer only."""
    from .probe import probe_factory

    make = probe_factory(scenario)
    # C fixed or tuned: the same model ranks the layers on the inner folds
    inner = lambda y_train, seed: make(len(y_train))[0]  # noqa: E731

    return _classifier_layers(scenario, ctx, make, inner)[0]


def evaluate_knn_layers(scenario, ctx) -> ScenarioResult:
    """``knn-layers-<task>``: the KNN of knn-cv (scaler inside the pipeline, its tie rule, neighbours
    searched once per fold) on each layer, the layer chosen inside each training fold by inner CV accuracy;
    k is capped at the smallest inner training part for the choice (recorded), at the outer one for the
    predictions. Each result records its tied votes, counted on the chosen layer."""
    from .knn import _record_ties, knn_factory, tied_votes

    make = knn_factory(scenario)
    inner_k = []

    def inner(y_train, seed):
        smallest = min(len(tr) for tr, _ in _inner_splits(y_train, seed))
        model, model_opts = make(smallest)
        inner_k.append(model_opts["k_effective"])
        return model

    def ties(model, x_train, y_train, x_test):
        return {"tied_votes": tied_votes(model, x_train, y_train, x_test)}

    result, added = _classifier_layers(scenario, ctx, make, inner, ties)
    result.options["k_effective_inner"] = min(inner_k)
    _record_ties(result, int(added.get("tied_votes", 0)))
    return result


# ---------------------------------------------------------------- the classifiers' controls

PIXEL_WEIGHTS = "none (image statistics)"


def _oof_classifier(model, X, y, splits):
    """One classifier's pooled out-of-fold predictions, confidences and folds on the outer ``splits``."""
    from sklearn.base import clone

    from .crossval import predict_with_confidence

    pred, confidence, fold_of = np.empty(len(y), dtype=int), np.empty(len(y)), np.empty(len(y), dtype=int)
    for fold, (train, test) in enumerate(splits):
        pred[test], confidence[test] = predict_with_confidence(clone(model).fit(X[train], y[train]), X[test])
        fold_of[test] = fold
    return pred, confidence, fold_of


def _accuracy_difference(y, first, second, n_labels: int, seed: int) -> tuple[float, list[float]]:
    """accuracy(first) - accuracy(second) and its paired stratified percentile-bootstrap CI."""
    from .layer_classes import CHOICE_METRIC
    from .metrics import N_BOOTSTRAP, resampled_scores

    draws = resampled_scores(y, np.vstack([first, second]), n_labels, N_BOOTSTRAP, seed)[CHOICE_METRIC]
    return float(np.mean(first == y) - np.mean(second == y)), percentile_ci(draws[0] - draws[1])


def _classification_control(scenario, ctx, space, n_splits, pred, confidence, fold_of, options, extra):
    from .common import classification_result
    from .crossval import _fold_summary

    names = np.array(space.names, dtype=object)
    y = space.y_true
    return classification_result(
        scenario, space, None, space.stimulus_ids, y, pred, confidence, folds=fold_of.tolist(), seed=ctx.seed,
        fold_metrics=_fold_summary(names[y], names[pred], fold_of, space.names, n_splits), extra=extra,
        options={"folds_effective": n_splits, **options})


def evaluate_probe_pixels(scenario, ctx) -> ScenarioResult:
    """``linear-probe-pixels-<task>``: the logistic probe on low-level image statistics (no model) on the
    outer folds of the probe per layer; beside it the model's final embedding in the same probe and
    folds, and the paired difference model - pixels."""
    from ..encoding.layers import _weights_identity
    from .layer_classes import (
        ClassLayerProbe,
        check_class_layer_result,
        class_layer_profile,
        class_predictions_frame,
        class_scores_frame,
        final_predictions_frame,
    )
    from .metrics import N_BOOTSTRAP
    from .probe import probe_factory

    space, n_splits, rows, splits = _layer_space(scenario, ctx)
    y, n_labels = space.y_true, len(space.names)
    X = pixel_features([ctx.stimuli.stimuli[i].path for i in rows])
    model, model_opts = probe_factory(scenario)(min(len(train) for train, _ in splits))
    pred, confidence, fold_of = _oof_classifier(model, X, y, splits)
    probe = ClassLayerProbe(["pixels"], [0.0], PIXEL_WEIGHTS, fold_of, pred[None], confidence[None], [0] * n_splits)
    frames = [class_predictions_frame(scenario.id, probe, space.stimulus_ids, space.names, y, kinds=("layer",))]
    extra, added_metrics, added_ci = {}, {}, {}
    if ctx.image_features.shape[1]:
        final, final_confidence, _ = _oof_classifier(model, ctx.features_for(space), y, splits)
        difference, difference_ci = _accuracy_difference(y, final, pred, n_labels, ctx.seed)
        added_metrics = {"model_final_accuracy": float(np.mean(final == y)), "model_minus_pixels_accuracy": difference}
        added_ci = {"model_minus_pixels_accuracy": difference_ci}
        extra["model_vs_pixels"] = ("the model's final embedding in the same logistic probe on the same folds (rows "
                                    "of kind 'final' in layer_class_predictions.csv); CI: paired stratified "
                                    "percentile bootstrap over stimuli")
        clip = getattr(ctx.encoder, "encoder", ctx.encoder)
        frames.append(final_predictions_frame(scenario.id, _weights_identity(clip), fold_of, final, final_confidence,
                                              space.stimulus_ids, space.names, y))
    options = {"features": PIXEL_FEATURES, "n_features": int(X.shape[1]), **model_opts}
    result = _classification_control(scenario, ctx, space, n_splits, pred, confidence, fold_of, options, extra)
    result.metrics |= added_metrics
    result.ci |= added_ci
    result.layer_class_predictions = pd.concat(frames, ignore_index=True)
    result.layer_class_scores = class_scores_frame(scenario.id, PIXEL_WEIGHTS,
                                                   class_layer_profile(probe, y, n_labels, N_BOOTSTRAP, ctx.seed))
    check_class_layer_result(result)
    return result


def evaluate_probe_random_init(scenario, ctx) -> ScenarioResult:
    """``linear-probe-random-init-<task>``: the probe per layer (layer chosen inside each training fold) on
    the run's architecture with seeded random weights, once per seed: the band of nested accuracies over
    seeds, and the paired difference trained - random (the mean over seeds). The headline predictions
    are the first seed's; every seed's are in layer_class_predictions.csv."""
    from .layer_classes import (
        CHOICE_METRIC,
        check_class_layer_result,
        class_choice,
        class_layer_profile,
        class_predictions_frame,
        class_scores_frame,
    )
    from .metrics import N_BOOTSTRAP, resampled_scores
    from .probe import probe_factory

    opts = scenario.options
    space, n_splits, rows, splits = _layer_space(scenario, ctx)
    y, n_labels, ids = space.y_true, len(space.names), space.stimulus_ids
    make = probe_factory(scenario)
    model, model_opts = make(min(len(train) for train, _ in splits))
    inner = lambda y_train, seed: make(len(y_train))[0]  # noqa: E731

    def probe_of(features):
        return _class_layer_probe([a[rows] for a in features.arrays], features.names, features.depths,
                                  features.weights, y, splits, opts.split_seed, model, inner)

    trained = layers_for(ctx, opts.mode, opts.srp_seed)
    trained_probe = probe_of(trained)[0]
    frames = [class_predictions_frame(scenario.id, trained_probe, ids, space.names, y, kinds=("nested",))]
    probes, profiles, per_seed = [], [], []
    for seed, encoder in zip(opts.seeds, random_init_encoders(ctx, opts.seeds), strict=True):
        features = layers_for(ctx, opts.mode, opts.srp_seed, encoder=encoder)
        probe, per_fold, _ = probe_of(features)
        choice = class_choice(probe, y, n_labels, N_BOOTSTRAP, ctx.seed)
        probes.append(probe)
        frames.append(class_predictions_frame(scenario.id, probe, ids, space.names, y))
        profiles.append(class_scores_frame(scenario.id, features.weights,
                                           class_layer_profile(probe, y, n_labels, N_BOOTSTRAP, ctx.seed)))
        chosen = [f["depth"] for f in per_fold]
        per_seed.append({"seed": int(seed), "weights": features.weights,
                         f"nested_{CHOICE_METRIC}": choice[f"nested_{CHOICE_METRIC}"],
                         "nested_modal_depth": max(dict.fromkeys(chosen), key=chosen.count),
                         f"superlative_{CHOICE_METRIC}": choice["superlative"][CHOICE_METRIC],
                         "superlative_depth": choice["superlative"]["depth"]})
    nested = np.array([s[f"nested_{CHOICE_METRIC}"] for s in per_seed])
    trained_accuracy = float(np.mean(trained_probe.nested_pred == y))
    draws = resampled_scores(y, np.vstack([trained_probe.nested_pred] + [p.nested_pred for p in probes]), n_labels,
                             N_BOOTSTRAP, ctx.seed)[CHOICE_METRIC]
    extra = {"per_seed": per_seed, "trained_weights": trained.weights, "headline_seed": int(opts.seeds[0]),
             "band": f"min and max of the nested {CHOICE_METRIC} over {len(opts.seeds)} random-init seeds",
             "difference": f"trained nested {CHOICE_METRIC} - mean random-init nested {CHOICE_METRIC}; CI: paired "
                           "stratified percentile bootstrap over stimuli (rows of kind 'nested' in "
                           "layer_class_predictions.csv)"}
    clip = getattr(ctx.encoder, "encoder", ctx.encoder)
    if getattr(clip, "smoke_run", False):
        extra["note"] = "the run's own model has random weights: the trained side of this control is random too"
    first = probes[0]
    options = {"layers": trained.describe(), "seeds": list(opts.seeds), "headline": f"seed {opts.seeds[0]}'s nested "
               "choice (every seed's in layer_class_predictions.csv)",
               "layer_choice_rule": f"the layer with the best mean accuracy in {LAYER_INNER_FOLDS}-fold stratified inner "
                                    "CV on each training fold", **model_opts}
    result = _classification_control(scenario, ctx, space, n_splits, first.nested_pred, first.nested_confidence,
                                      first.fold_of, options, extra)
    result.metrics |= {f"band_min_{CHOICE_METRIC}": float(nested.min()), f"band_max_{CHOICE_METRIC}": float(nested.max()),
                       f"mean_random_{CHOICE_METRIC}": float(nested.mean()),
                       f"trained_nested_{CHOICE_METRIC}": trained_accuracy,
                       f"trained_minus_random_{CHOICE_METRIC}": float(trained_accuracy - nested.mean())}
    result.ci[f"trained_minus_random_{CHOICE_METRIC}"] = percentile_ci(draws[0] - draws[1:].mean(axis=0))
    result.layer_class_predictions = pd.concat(frames, ignore_index=True)
    result.layer_class_scores = pd.concat(profiles, ignore_index=True)
    check_class_layer_result(result)
    return result
