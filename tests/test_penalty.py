"""Nested penalty selection of the probes, against constructed features whose best penalty is
known to be interior: a tiny penalty overfits, a huge one underfits, and the tuned probe must
beat both out of fold without ever seeing the test fold."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss, r2_score
from sklearn.model_selection import RepeatedStratifiedKFold, StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from dirti_bench.contracts import TUNED, EvalContext, Scenario
from dirti_bench.data.ratedset import load_rated_set
from dirti_bench.errors import LabelConsistencyError, ScenarioNotRunnable, UserError
from dirti_bench.evaluators import probe
from dirti_bench.evaluators.alignment import cv_predictions, evaluate_probe
from dirti_bench.evaluators.common import one_thread
from dirti_bench.evaluators.consistency import check_alignment_result
from dirti_bench.evaluators.penalty import (
    INNER_MAX_ROWS,
    LOGISTIC_CS,
    LOGISTIC_METHOD,
    RIDGE_ALPHAS,
    TunedLogisticRegression,
    _row_space,
    fit_tuned_ridge,
    penalty_summary,
)
from dirti_bench.evaluators.rating_stats import intercept_only_predictions, split_half_ceiling
from dirti_bench.evaluators.registry import check_runnable
from dirti_bench.scenarios import REGISTRY
from helpers import label_space, stimulus_set, write_rated_set
from known_answer import KnownAnswerEncoder

GROUPS = ("a", "b", "c", "d")


def low_rank_ratings(n=120, p=300, rank=3, noise=1.0, rating_noise=0.5, seed=0):
    """Features = a rank-``rank`` signal plus isotropic noise in ``p`` > n dimensions; the rating is a
    linear function of the signal plus noise. Least squares interpolates the noise, a huge penalty
    predicts the mean: the best ridge penalty lies in between."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, rank))
    features = latent @ rng.normal(size=(rank, p)) + noise * rng.normal(size=(n, p))
    ratings = latent @ rng.normal(size=rank) + rating_noise * rng.normal(size=n)
    return features, ratings, np.repeat(GROUPS, n // len(GROUPS))


def oof_r2(features, ratings, groups, alpha, folds=5, repeats=2):
    oof, _, _, selections = cv_predictions(features, ratings, groups, folds, repeats, 42, alpha)
    return float(np.mean([r2_score(ratings, row) for row in oof])), selections


# ---------------------------------------------------------------- ridge


def test_tuned_ridge_picks_an_interior_alpha_and_beats_both_fixed_extremes():
    features, ratings, groups = low_rank_ratings()
    tuned, selections = oof_r2(features, ratings, groups, TUNED)
    overfit, _ = oof_r2(features, ratings, groups, 1e-6)
    underfit, _ = oof_r2(features, ratings, groups, 1e8)
    assert tuned > overfit + 0.1 and tuned > underfit + 0.1, (tuned, overfit, underfit)
    assert underfit < 0.01  # a huge penalty predicts the training mean
    assert len(selections) == 10
    for s in selections:
        assert s["edge"] is None and s["widened"] == 0, s
        assert min(RIDGE_ALPHAS) < s["alpha"] < s["grid_max"]
    # ... and it lands near the best fixed alpha of a sweep, without having seen any test fold.
    sweep = {a: oof_r2(features, ratings, groups, a)[0] for a in np.logspace(0, 5, 11)}
    assert tuned >= max(sweep.values()) - 0.03, (tuned, sweep)


def test_no_test_fold_information_reaches_the_ridge_selection():
    features, ratings, groups = low_rank_ratings(seed=1)
    oof, fold_of, used, selections = cv_predictions(features, ratings, groups, 5, 2, 42, TUNED)
    target = 3  # repeat 0, fold 3
    in_test = fold_of[0] == target
    shuffled = ratings.copy()
    shuffled[in_test] = np.random.default_rng(0).permutation(ratings[in_test])
    assert not np.array_equal(shuffled, ratings)
    oof2, fold_of2, _, selections2 = cv_predictions(features, shuffled, groups, 5, 2, 42, TUNED)
    assert np.array_equal(fold_of, fold_of2)  # stratified by category, not by rating
    assert selections2[target] == selections[target]
    np.testing.assert_array_equal(oof2[0, in_test], oof[0, in_test])
    # The same folds' training parts did change everywhere else: the selection is sensitive to them.
    assert any(selections2[i]["alpha"] != selections[i]["alpha"] for i in range(len(selections)) if i != target)
    # The chosen alpha is a function of the training part alone.
    train = np.flatnonzero(~in_test)
    assert fit_tuned_ridge(features[train], ratings[train])[1] == selections[target]


def test_ridge_widens_its_grid_when_the_best_alpha_is_the_smallest():
    rng = np.random.default_rng(2)
    features = rng.normal(size=(80, 4))
    ratings = features @ np.array([1.0, -2.0, 0.5, 3.0])  # noise-free: the least penalty is best
    _, record = fit_tuned_ridge(features, ratings)
    assert record["widened"] >= 1 and record["grid_min"] < min(RIDGE_ALPHAS)
    assert record["alpha"] < min(RIDGE_ALPHAS)


def test_ridge_takes_the_intercept_only_limit_when_features_carry_nothing():
    rng = np.random.default_rng(3)
    features, ratings = rng.normal(size=(60, 200)), rng.normal(size=60)
    model, record = fit_tuned_ridge(features, ratings)
    assert record["edge"] == "high" and record["alpha"] == record["grid_max"]
    # its predictions are the training mean
    np.testing.assert_allclose(model.predict(rng.normal(size=(5, 200))), ratings.mean(), atol=1e-3)


# ---------------------------------------------------------------- logistic regression


def nuisance_classes(n=150, p=300, rank=3, separation=1.5, nuisance=6.0, seed=0, n_classes=3):
    """Classes separated in a rank-``rank`` subspace that a strong nuisance component also loads on,
    plus isotropic noise. A tiny C gives near-prior probabilities along the nuisance-dominated
    class-mean direction; a huge C interpolates the noise; the best C lies in between."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), n // n_classes)
    latent = rng.normal(size=(n_classes, rank))[y] * separation + rng.normal(size=(n, rank))
    signal, nuisance_axes = rng.normal(size=(rank, p)), rng.normal(size=(rank, p))
    features = (latent @ signal + nuisance * rng.normal(size=(n, rank)) @ (nuisance_axes + signal)
                + rng.normal(size=(n, p)))
    return features, y


def oof_classifier(estimator, features, y):
    proba, pred, fitted = np.zeros((len(y), np.unique(y).size)), np.zeros(len(y), int), []
    for train, test in StratifiedKFold(5, shuffle=True, random_state=42).split(features, y):
        model = make_pipeline(StandardScaler(), clone(estimator)).fit(features[train], y[train])
        proba[test], pred[test] = model.predict_proba(features[test]), model.predict(features[test])
        fitted.append(model[-1])
    return log_loss(y, proba), accuracy_score(y, pred), fitted


def fixed_logistic(c):
    return LogisticRegression(C=c, solver="newton-cg", max_iter=1000)


@pytest.mark.filterwarnings("error")
def test_tuned_logistic_picks_an_interior_c_and_beats_both_fixed_extremes():
    features, y = nuisance_classes()
    tuned_loss, tuned_acc, fitted = oof_classifier(TunedLogisticRegression(random_state=42), features, y)
    small_loss, small_acc, _ = oof_classifier(fixed_logistic(1e-6), features, y)
    large_loss, large_acc, _ = oof_classifier(fixed_logistic(1e4), features, y)
    assert tuned_loss < small_loss - 0.2 and tuned_loss < large_loss - 0.2, (tuned_loss, small_loss, large_loss)
    assert tuned_acc > small_acc and tuned_acc > large_acc, (tuned_acc, small_acc, large_acc)
    for model in fitted:
        assert model.selection_["edge"] is None and model.selection_["widened"] == 0
        assert min(LOGISTIC_CS) < model.C_ < max(LOGISTIC_CS)


@pytest.mark.filterwarnings("error")
def test_logistic_on_the_training_row_space_predicts_like_the_plain_fit():
    """The L2 solution lies in the span of the training rows, so the projected fit is exact."""
    features, y = nuisance_classes(seed=4)
    scaler = StandardScaler().fit(features[:90])
    train, test = scaler.transform(features[:90]), scaler.transform(features[90:])
    basis = _row_space(train)
    assert basis.shape == (300, 90)
    plain = LogisticRegression(C=0.1, solver="newton-cg", max_iter=1000, tol=1e-10).fit(train, y[:90])
    projected = LogisticRegression(C=0.1, solver="newton-cg", max_iter=1000, tol=1e-10).fit(train @ basis, y[:90])
    np.testing.assert_allclose(projected.predict_proba(test @ basis), plain.predict_proba(test), atol=1e-6)


class ConstructedCtx:
    """The EvalContext interface over a hand-built label space and features."""

    def __init__(self, space, features):
        self.space, self.features, self.encoder, self.seed = space, features, None, 0

    def label_space(self, scenario):
        return self.space

    def features_for(self, space):
        return self.features


def probe_scenario(**options) -> Scenario:
    return Scenario("test-probe", "category", "linear-probe-cv", {"folds": 5, **options})


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
@pytest.mark.filterwarnings("error")
def test_no_test_fold_information_reaches_the_logistic_selection():
    features, y = nuisance_classes(n=120, seed=5)
    space = label_space({"a": 40, "b": 40, "c": 40})
    assert np.array_equal(space.y_true, y)
    first = probe.evaluate_cv(probe_scenario(), ConstructedCtx(space, features))
    folds = np.array([int(f) for f in first.predictions["fold"]])
    target = 2
    # The outer split is stratified by class, so it cannot move: scramble the test fold's features.
    scrambled = features.copy()
    scrambled[folds == target] = np.random.default_rng(0).normal(size=scrambled[folds == target].shape)
    again = probe.evaluate_cv(probe_scenario(), ConstructedCtx(space, scrambled))
    assert np.array_equal(folds, [int(f) for f in again.predictions["fold"]])
    before, after = first.extra["penalty"]["per_fold"], again.extra["penalty"]["per_fold"]
    assert [f["fold"] for f in before] == sorted(set(folds.tolist()))  # the predictions' fold numbers
    assert after[target] == before[target]
    assert any(after[i] != before[i] for i in range(len(before)) if i != target) or \
        first.predictions["y_pred"].tolist() != again.predictions["y_pred"].tolist()
    # The choice is a function of the training part alone.
    train = folds != target
    alone = make_pipeline(StandardScaler(), TunedLogisticRegression(random_state=42)).fit(features[train], y[train])
    assert alone[-1].C_ == before[target]["C"]
    assert first.options["C"] == TUNED and first.extra["penalty"]["n_folds"] == 5


@pytest.mark.filterwarnings("error")
def test_fixed_c_is_still_available_and_recorded():
    features, y = nuisance_classes(n=120, seed=5)
    space = label_space({"a": 40, "b": 40, "c": 40})
    result = probe.evaluate_cv(probe_scenario(C=1.0), ConstructedCtx(space, features))
    assert result.options["C"] == 1.0 and "penalty" not in result.extra
    model, _ = probe.probe_factory(probe_scenario(C=1.0))(90)
    assert isinstance(model[-1], LogisticRegression) and model[-1].C == 1.0


def fitted_state(model: TunedLogisticRegression) -> tuple:
    return model.C_, model.selection_, model.model_.coef_, model.model_.intercept_


@pytest.mark.parametrize("cap", [INNER_MAX_ROWS, 120, None])
def test_at_or_below_the_inner_row_limit_the_tuned_logistic_fit_is_unchanged(cap):
    """At or below the limit the inner CV sees every row: the same choice, record and model, bit for bit,
    as with no limit at all."""
    features, y = nuisance_classes(n=120, seed=2)
    capped = TunedLogisticRegression(random_state=7, inner_max_rows=cap).fit(features, y)
    unlimited = TunedLogisticRegression(random_state=7, inner_max_rows=None).fit(features, y)
    assert capped.inner_rows(y) is None
    c, selection, coef, intercept = fitted_state(capped)
    assert (c, selection) == fitted_state(unlimited)[:2]
    assert selection["inner_rows"] == 120 and selection["method"] == LOGISTIC_METHOD
    assert np.array_equal(coef, unlimited.model_.coef_) and np.array_equal(intercept, unlimited.model_.intercept_)


def many_rows(n=600, d=20, seed=3, rare=0):
    """More rows than features (no row-space projection), 3 classes, ``rare`` rows of a fourth."""
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.arange(n - rare) % 3, np.full(rare, 3)])
    features = rng.normal(size=(4, d))[y] * 0.7 + rng.normal(size=(n, d))
    return features, y


@pytest.mark.filterwarnings("error")
def test_above_the_inner_row_limit_c_is_chosen_on_a_stratified_subsample_and_fitted_on_all_rows(monkeypatch):
    features, y = many_rows()
    seen = []  # the labels each inner CV was made from
    original = TunedLogisticRegression.inner_splits
    monkeypatch.setattr(TunedLogisticRegression, "inner_splits",
                        lambda self, labels: seen.append(labels.copy()) or original(self, labels))
    model = TunedLogisticRegression(random_state=5, inner_max_rows=150).fit(features, y)
    rows = model.inner_rows(y)
    # scikit-learn's seeded stratified split of the rows, every class in proportion
    expected = np.sort(train_test_split(np.arange(len(y)), train_size=150, stratify=y, random_state=5)[0])
    assert np.array_equal(rows, expected)
    assert len(seen) == 1 and np.array_equal(seen[0], y[rows])
    assert np.array_equal(np.bincount(y[rows]), [50, 50, 50])
    assert model.selection_["inner_rows"] == 150 and model.selection_["inner_folds"] == 3
    assert model.selection_["method"] == ("inner stratified 3-fold CV on a stratified subsample of 150 training "
                                          "rows, pooled validation log-loss; the model then fitted on the whole "
                                          "training fold")
    # the choice is exactly the uncapped search on the subsample ...
    assert model.C_ == TunedLogisticRegression(random_state=5, inner_max_rows=None).fit(features[rows], y[rows]).C_
    # ... and the model is scikit-learn's fit on every row at that C
    assert model.basis_ is None and model.model_.n_features_in_ == features.shape[1]
    with one_thread():
        full = LogisticRegression(C=model.C_, solver="newton-cg", max_iter=1000).fit(features, y)
    assert np.array_equal(model.model_.coef_, full.coef_)
    assert np.array_equal(model.predict_proba(features), full.predict_proba(features))
    # the same seed, the same rows and fit; another seed, other rows
    again = TunedLogisticRegression(random_state=5, inner_max_rows=150).fit(features, y)
    assert fitted_state(again)[:2] == fitted_state(model)[:2]
    assert np.array_equal(again.model_.coef_, model.model_.coef_)
    assert not np.array_equal(TunedLogisticRegression(random_state=6, inner_max_rows=150).inner_rows(y), rows)


def test_a_class_too_rare_for_the_inner_subsample_keeps_all_its_rows():
    features, y = many_rows(rare=4)  # 4 of 600 rows: ~1 row in a proportional sample of 150
    model = TunedLogisticRegression(random_state=5, inner_max_rows=150)
    rows = model.inner_rows(y)
    assert len(rows) == 150 and len(np.unique(rows)) == 150
    assert np.array_equal(np.flatnonzero(y[rows] == 3), np.arange(146, 150))  # all four, in row order
    assert sorted(np.bincount(y[rows])[:3]) == [48, 49, 49]  # the other 146 rows in proportion


def test_a_part_fewer_rows_over_the_limit_than_it_has_classes_uses_every_row():
    """scikit-learn's stratified split must leave out a row of each class: 2 rows over the limit with 3
    classes cannot be sampled, so the inner CV uses all of them, exactly as with no limit."""
    features, y = many_rows(n=152)
    model = TunedLogisticRegression(random_state=5, inner_max_rows=150)
    assert model.inner_rows(y) is None
    assert model.inner_rows(np.arange(153) % 3).size == 150  # 3 rows over: one of each class left out
    fitted = model.fit(features, y)
    assert fitted.selection_["inner_rows"] == 152 and fitted.selection_["method"] == LOGISTIC_METHOD
    unlimited = TunedLogisticRegression(random_state=5, inner_max_rows=None).fit(features, y)
    assert fitted.C_ == unlimited.C_ and np.array_equal(fitted.model_.coef_, unlimited.model_.coef_)


def test_the_penalty_summary_states_a_subsampled_inner_cv():
    features, y = many_rows()
    small = TunedLogisticRegression(random_state=5, inner_max_rows=150).fit(features, y).selection_
    whole = TunedLogisticRegression(random_state=5, inner_max_rows=None).fit(features, y).selection_
    summary = penalty_summary("C", [small, small], [{"fold": 0}, {"fold": 1}])
    assert summary["method"] == small["method"] and "subsample of 150 training rows" in summary["method"]
    assert [f["inner_rows"] for f in summary["per_fold"]] == [150, 150]
    mixed = penalty_summary("C", [whole, small], [{"fold": 0}, {"fold": 1}])
    assert mixed["method"] == f"{LOGISTIC_METHOD}; in other folds: {small['method']}"
    assert [f["inner_rows"] for f in mixed["per_fold"]] == [600, 150]


def test_tuned_c_needs_two_examples_of_some_class_in_a_training_fold():
    single = np.array([0, 1, 2])
    with pytest.raises(ScenarioNotRunnable, match="too few examples per class.*set the probe.s C to a number"):
        TunedLogisticRegression().fit(np.eye(3), single)


def test_a_set_too_small_to_tune_c_skips_the_probe_before_encoding_unless_c_is_fixed():
    space = label_space({"a": 2, "b": 2, "c": 2})  # 2-fold CV: one example of each class per training fold
    with pytest.raises(ScenarioNotRunnable, match="too few examples per class to choose C"):
        check_runnable(probe_scenario(), ConstructedCtx(space, None))
    check_runnable(probe_scenario(C=1.0), ConstructedCtx(space, None))
    check_runnable(probe_scenario(), ConstructedCtx(label_space({"a": 4, "b": 4, "c": 4}), None))


# ---------------------------------------------------------------- options


@pytest.mark.parametrize(("evaluator", "options", "message"), [
    ("align-probe", {"alpha": "auto"}, "option alpha='auto' must be one of 'tuned' or a number >= 0"),
    ("align-probe", {"alpha": -1.0}, "option alpha=-1.0 must be one of 'tuned' or a number >= 0"),
    ("linear-probe-cv", {"C": 0}, "option C=0 must be one of 'tuned' or a number > 0"),
    ("linear-probe-cv", {"C": "1.0"}, "option C='1.0' must be one of 'tuned' or"),
])
def test_penalty_options_are_tuned_or_a_number(evaluator, options, message):
    task = "alignment" if evaluator.startswith("align") else "category"
    with pytest.raises(UserError, match=f"scenario s: {message}"):
        Scenario("s", task, evaluator, options)


def test_tuned_is_the_default_and_a_number_fixes_the_penalty():
    assert REGISTRY["align-disgust-probe"].options.alpha == TUNED
    assert REGISTRY["linear-probe-cv10-disgust"].options.C == TUNED
    assert REGISTRY["align-disgust-probe"].with_options(alpha=1).options.alpha == 1.0
    assert REGISTRY["align-disgust-probe"].with_options(alpha=0).options.alpha == 0.0


# ---------------------------------------------------------------- R² against the intercept-only model


def rated_context(stimuli, features) -> EvalContext:
    encoder = KnownAnswerEncoder({s.file_name: f for s, f in zip(stimuli, features, strict=True)}, lambda t: None)
    return EvalContext(stimuli=stimuli, encoder=encoder, image_features=features, seed=0)


def probe_on(stimuli, features, **options):
    scenario = replace(REGISTRY["align-disgust-probe"].with_options(n_boot=300, **options), id="align-test-probe")
    result = evaluate_probe(scenario, rated_context(stimuli, features))
    check_alignment_result(result)
    return result


def not_below_intercept_only(result) -> bool:
    """R² is not below the intercept-only model's by more than noise: the paired 95% bootstrap CI of
    the gain over it reaches 0."""
    return result.ci["r2_gain_over_intercept_only"][1] >= 0


def features_carrying(ratings, snr, p=200, seed=0):
    """``p`` noise dimensions that all load on the standardised rating; ``snr`` is the total
    signal-to-noise ratio over the dimensions (0: the features carry nothing)."""
    rng = np.random.default_rng(seed)
    signal = (ratings - ratings.mean()) / ratings.std()
    return (np.outer(signal, rng.normal(size=p)) * np.sqrt(snr / p) + rng.normal(size=(ratings.size, p))).astype(
        np.float32)


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_tuned_probe_is_not_below_predicting_the_mean_on_a_rated_set(tmp_path):
    stimuli = load_rated_set(write_rated_set(tmp_path / "set", n_per_cat=40, seed=3))
    ratings = stimuli.ratings("disgust")
    weak, strong = probe_on(stimuli, features_carrying(ratings, 1.0)), probe_on(stimuli, features_carrying(ratings, 4.0))
    for result in (weak, strong):
        assert not_below_intercept_only(result), result.metrics
    assert strong.metrics["r2"] > 0.3 and strong.metrics["pearson_r"] > 0.6
    assert weak.metrics["r2"] > weak.metrics["r2_intercept_only"] and weak.metrics["pearson_r"] > 0.2
    # The check can fail: a fixed, too small penalty on weak features overfits below the mean.
    fixed = probe_on(stimuli, features_carrying(ratings, 0.5), alpha=1.0)
    assert not not_below_intercept_only(fixed), fixed.metrics
    assert fixed.extra["penalty"] == {"name": "alpha", "mode": "fixed", "value": 1.0}


def test_features_that_carry_nothing_give_about_the_intercept_only_model(tmp_path):
    stimuli = load_rated_set(write_rated_set(tmp_path / "set", n_per_cat=40, seed=3))
    blank = probe_on(stimuli, features_carrying(stimuli.ratings("disgust"), 0.0, seed=1))
    penalty = blank.extra["penalty"]
    assert penalty["n_strongest"] >= 0.8 * penalty["n_folds"] and "training mean" in penalty["note"]
    assert blank.metrics["r2"] <= 0 and not_below_intercept_only(blank), blank.metrics


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_tuned_probe_is_not_below_predicting_the_mean_on_the_demo_set(demo_stimuli):
    ratings = demo_stimuli.ratings("disg_mean_all")
    for snr in (0.0, 1.0, 4.0):
        result = probe_on(demo_stimuli, features_carrying(ratings, snr, p=64))
        assert not_below_intercept_only(result), (snr, result.metrics)


# ---------------------------------------------------------------- metrics recomputed


def test_intercept_only_predictions_are_each_training_fold_mean():
    y = np.array([1.0, 2.0, 3.0, 4.0, 10.0, 6.0])
    folds = np.array([[0, 0, 1, 1, 2, 2], [2, 1, 0, 2, 1, 0]])
    pred = intercept_only_predictions(y, folds)
    assert pred[0, 0] == pytest.approx(np.mean([3, 4, 10, 6]))
    assert pred[1, 1] == pytest.approx(np.mean([1, 3, 4, 6]))


def test_pearson_ceiling_is_one_without_noise_and_rises_with_raters():
    rng = np.random.default_rng(7)
    means, sds = rng.uniform(1, 9, 45), rng.uniform(0.5, 2.0, 45)
    exact, _ = split_half_ceiling(means, np.zeros_like(means), 30, 50, seed=0)
    assert exact["noise_ceiling_pearson"] == pytest.approx(1.0)
    ceilings = [split_half_ceiling(means, sds, n, 500, seed=0)[0]["noise_ceiling_pearson"] for n in (4, 20, 200)]
    assert ceilings[0] < ceilings[1] < ceilings[2] <= 1.0
    metrics, ci = split_half_ceiling(means, sds, 30, 500, seed=0)
    assert ci["noise_ceiling_pearson"][0] <= metrics["noise_ceiling_pearson"] <= ci["noise_ceiling_pearson"][1]


def rated_with_sds():
    rng = np.random.default_rng(7)
    ratings = rng.uniform(1, 9, 60)
    values = [{"disg_mean_all": float(r), "disg_SD_all": float(s)} for r, s in zip(ratings, rng.uniform(0.5, 2, 60),
                                                                                   strict=True)]
    return stimulus_set(list(np.repeat(GROUPS[:3], 20)), values, GROUPS[:3]), ratings


def test_probe_reports_published_style_metrics_recomputable_from_predictions():
    stimuli, ratings = rated_with_sds()
    result = probe_on(stimuli, features_carrying(ratings, 4.0), folds=5, repeats=2)
    m, pred = result.metrics, result.predictions
    assert {"r2", "pearson_r", "spearman_rho", "rmse", "r2_intercept_only", "noise_ceiling_pearson",
            "pearson_r_over_ceiling", "spearman_rho_over_ceiling"} <= set(m)
    assert {"r2", "pearson_r", "spearman_rho", "rmse", "r2_gain_over_intercept_only"} <= set(result.ci)
    from scipy import stats

    per_repeat = []
    for _, rows in pred.groupby("repeat"):
        fold = rows.fold.to_numpy()
        means = {f: rows.rating[fold != f].mean() for f in set(fold)}
        per_repeat.append((stats.pearsonr(rows.rating, rows.score).statistic,
                           r2_score(rows.rating, [means[f] for f in fold])))
    assert m["pearson_r"] == pytest.approx(np.mean([r for r, _ in per_repeat]))
    assert m["r2_intercept_only"] == pytest.approx(np.mean([b for _, b in per_repeat]))
    assert m["r2_gain_over_intercept_only"] == pytest.approx(m["r2"] - m["r2_intercept_only"])
    assert m["pearson_r_over_ceiling"] == pytest.approx(m["pearson_r"] / m["noise_ceiling_pearson"])
    assert result.ci["pearson_r"][0] <= m["pearson_r"] <= result.ci["pearson_r"][1]
    penalty = result.extra["penalty"]
    # Each fold's choice names its repeat and fold as alignment_predictions.csv numbers them.
    assert [(f["repeat"], f["fold"]) for f in penalty["per_fold"]] == [(r, f) for r in range(2) for f in range(5)]
    assert sorted(set(zip(pred["repeat"], pred["fold"], strict=True))) == [(r, f) for r in range(2) for f in range(5)]
    alphas = [f["alpha"] for f in penalty["per_fold"]]
    assert penalty["median"] == pytest.approx(np.median(alphas))
    assert (penalty["min"], penalty["max"]) == (min(alphas), max(alphas))


@pytest.mark.parametrize("metric", ["pearson_r", "r2_intercept_only", "r2_gain_over_intercept_only",
                                    "pearson_r_over_ceiling"])
def test_consistency_check_recomputes_the_new_metrics(metric):
    stimuli, ratings = rated_with_sds()
    result = probe_on(stimuli, features_carrying(ratings, 4.0), folds=5, repeats=2)
    result.metrics[metric] += 0.05
    with pytest.raises(LabelConsistencyError, match=f"{metric} is"):
        check_alignment_result(result)


def test_repeated_folds_follow_the_registry_cv():
    """cv_predictions' folds are RepeatedStratifiedKFold's, so the probe's folds are reproducible."""
    features, ratings, groups = low_rank_ratings(n=40)
    _, fold_of, used, _ = cv_predictions(features, ratings, groups, 5, 2, 42, TUNED)
    expected = np.zeros((2, 40), int)
    for i, (_, test) in enumerate(RepeatedStratifiedKFold(n_splits=5, n_repeats=2, random_state=42).split(features,
                                                                                                        groups)):
        expected[i // 5, test] = i % 5
    assert used == 5 and np.array_equal(fold_of, expected)


@pytest.mark.parametrize(("n", "d"), [(300, 40), (700, 256)])
def test_closed_form_leave_one_out_errors_are_ridgecvs_and_choose_the_same_alpha(monkeypatch, n, d):
    """With n > d the LOO errors come from one eigendecomposition instead of RidgeCV's per-alpha hat
    diagonal; they match RidgeCV's cv_results_ to rounding, and the tuned fit is the same."""
    from sklearn.linear_model import RidgeCV
    from sklearn.preprocessing import StandardScaler

    from dirti_bench.evaluators import penalty

    rng = np.random.default_rng(d)
    X = rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) * 0.3
    y = X[:, 0] * 0.2 + rng.standard_normal(n)
    Xs = StandardScaler().fit_transform(X)
    expected = RidgeCV(alphas=penalty.RIDGE_ALPHAS, store_cv_results=True).fit(Xs, y).cv_results_
    got = penalty._loo_errors_fn(Xs, y)(penalty.RIDGE_ALPHAS)
    np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-10 * expected.max())
    fast_model, fast_record = penalty.fit_tuned_ridge(X, y)
    monkeypatch.setattr(penalty, "_loo_errors_fn", lambda Xs, y: lambda grid: RidgeCV(
        alphas=grid, store_cv_results=True).fit(Xs, y).cv_results_)
    model, record = penalty.fit_tuned_ridge(X, y)
    assert fast_record == record
    assert np.array_equal(fast_model.predict(X), model.predict(X))


@pytest.mark.parametrize("shape", [(80, 12), (30, 50), (60, 6)])
@pytest.mark.parametrize("signal", [2.0, 0.0])
def test_tuned_ridge_pipeline_equals_fitting_the_whole_pipeline(shape, signal):
    """The tuned ridge reuses its scaler for the returned pipeline: the coefficients and predictions
    are those of make_pipeline(StandardScaler(), <chosen model>).fit on the fold (the chosen model is
    Ridge, or the training mean where the features carry nothing)."""
    rng = np.random.default_rng(shape[0])
    X = rng.standard_normal(shape).astype(np.float32)
    y = X[:, 0] * signal + rng.standard_normal(shape[0])
    model, _ = fit_tuned_ridge(X, y)
    final = clone(model[-1])
    if "copy_X" in final.get_params():
        final.set_params(copy_X=True)  # scikit-learn's default: the tuned fit centres in place instead
    reference = make_pipeline(StandardScaler(), final).fit(np.asarray(X, dtype=float), y)
    queries = rng.standard_normal((9, shape[1]))
    assert np.array_equal(model.predict(queries), reference.predict(queries))
    assert np.array_equal(model[0].scale_, reference[0].scale_)
    if hasattr(reference[-1], "coef_"):
        assert np.array_equal(model[-1].coef_, reference[-1].coef_)


@pytest.mark.parametrize("max_rows", [None, 120, 500])
def test_at_or_below_the_selection_row_limit_the_tuned_ridge_is_unchanged(max_rows):
    """No subsample where the fold fits under the limit: the same record and predictions as without one."""
    rng = np.random.default_rng(7)
    X = rng.standard_normal((120, 10))
    y = X[:, 0] + rng.standard_normal(120)
    plain, plain_record = fit_tuned_ridge(X, y, max_rows=None)
    model, record = fit_tuned_ridge(X, y, max_rows=max_rows)
    assert record == plain_record and "selection_rows" not in record
    assert np.array_equal(model.predict(X), plain.predict(X))


def test_above_the_selection_row_limit_alpha_is_chosen_on_a_seeded_subsample_and_fitted_on_all_rows(monkeypatch):
    """The leave-one-out curve sees exactly the seeded subsample (scikit-learn's split of the row
    indices); the returned model is Ridge at that alpha on every row; the record and method say so."""
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import train_test_split

    from dirti_bench.evaluators import penalty

    rng = np.random.default_rng(3)
    X = rng.standard_normal((400, 8))
    y = X[:, 0] * 0.8 + rng.standard_normal(400)
    seen = []
    real = penalty._loo_errors_fn

    def spy(Xs, target):
        seen.append((Xs.copy(), target.copy()))
        return real(Xs, target)

    monkeypatch.setattr(penalty, "_loo_errors_fn", spy)
    model, record = fit_tuned_ridge(X, y, max_rows=150, seed=5)
    rows = np.sort(train_test_split(np.arange(400), train_size=150, random_state=5)[0])
    (chooser, target), = seen
    assert np.array_equal(target, y[rows])
    assert np.array_equal(chooser, model[0].transform(X)[rows])  # the whole fold's scaler, the subsample's rows
    assert record["selection_rows"] == 150 and "random subsample of 150 training rows" in record["method"]
    assert record["method"].endswith("the model then fitted on the whole training fold")
    # the subsample's own choice, then the fit on all 400 rows at it
    assert record == fit_tuned_ridge(X, y, max_rows=150, seed=5)[1]
    whole = Ridge(alpha=record["alpha"]).fit(model[0].transform(X), y)
    np.testing.assert_allclose(model[-1].coef_, whole.coef_, rtol=1e-10)
    other = fit_tuned_ridge(X, y, max_rows=150, seed=6)
    assert other[1]["selection_rows"] == 150  # another seed: other rows, same rule


def test_the_alignment_probe_records_its_subsampled_alpha_choice_per_fold(monkeypatch):
    """Through the alignment probe's folds: every fold over the limit says how many rows chose its
    alpha, and the summary's method states the subsample."""
    from functools import partial

    from dirti_bench.evaluators import alignment, penalty

    monkeypatch.setattr(alignment, "fit_tuned_ridge", partial(penalty.fit_tuned_ridge, max_rows=100))
    rng = np.random.default_rng(1)
    X = rng.standard_normal((240, 6))
    y = X[:, 1] + rng.standard_normal(240)
    groups = np.repeat(["a", "b"], 120)
    _, _, used, selections = alignment.cv_predictions(X, y, groups, folds=3, repeats=1, seed=2)
    assert used == 3 and all(s["selection_rows"] == 100 for s in selections)
    summary = penalty.penalty_summary("alpha", selections, [{"fold": f} for f in range(3)])
    assert all(f["selection_rows"] == 100 for f in summary["per_fold"])
    assert "random subsample of 100 training rows" in summary["method"]
