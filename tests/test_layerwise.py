"""Known-answer tests of the layer-wise probe: the signal lives in one intermediate layer."""

from __future__ import annotations

import numpy as np
import pytest

from dirti_bench.evaluators.layerwise import (
    choice_summary,
    gcv_ridge,
    layer_predictions_frame,
    layer_probe,
    layer_profile,
    layer_scores_from_predictions,
    pearson,
)

SIGNAL_LAYER = 2


def constructed(n_per_group=20, groups=6, n_layers=5, width=16, seed=0):
    """Ratings, categories and ``n_layers`` feature sets; only layer SIGNAL_LAYER carries the ratings."""
    rng = np.random.default_rng(seed)
    n = n_per_group * groups
    y = rng.normal(5, 1.5, n)
    cats = np.repeat([f"c{g}" for g in range(groups)], n_per_group)
    layers = [rng.normal(size=(n, width)) for _ in range(n_layers)]
    layers[SIGNAL_LAYER][:, 0] = y + rng.normal(0, 0.3, n)
    layers[SIGNAL_LAYER][:, 1] = -y + rng.normal(0, 0.3, n)
    return y, cats, layers


def test_nested_choice_finds_the_signal_layer_out_of_fold():
    y, cats, layers = constructed()
    probe = layer_probe(layers, y, cats, folds=5, seed=1)
    assert probe.chosen == [SIGNAL_LAYER] * probe.folds_used
    assert pearson(y, probe.nested_oof) > 0.9
    r = probe.per_layer_r(y)
    assert int(np.argmax(r)) == SIGNAL_LAYER
    assert np.all(np.abs(np.delete(r, SIGNAL_LAYER)) < 0.35)  # noise layers predict nothing out of fold


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_superlative_is_never_below_nested(seed):
    y, cats, layers = constructed(seed=seed)
    probe = layer_probe(layers, y, cats, folds=5, seed=seed)
    summary = choice_summary(probe, y, n_boot=50, seed=0)
    assert summary["superlative"]["pearson_r"] >= summary["nested"]["pearson_r"] - 1e-12
    assert summary["gap"]["superlative_minus_nested"] >= -1e-12


def test_nested_choice_claims_nothing_when_no_layer_carries_signal():
    """Pure noise: the nested score's CI covers 0 (the choice cannot borrow from the test folds)."""
    rng = np.random.default_rng(5)
    y = rng.normal(size=90)
    cats = np.repeat(["a", "b", "c"], 30)
    layers = [rng.normal(size=(90, 8)) for _ in range(8)]
    probe = layer_probe(layers, y, cats, folds=5, seed=0, published=False)
    summary = choice_summary(probe, y, n_boot=200, seed=0)
    low, high = summary["nested"]["ci"]
    assert low < 0 < high


def test_shuffling_a_test_folds_ratings_keeps_its_training_fold_choice():
    y, cats, layers = constructed(seed=3)
    # weaken the signal so that the choice is not trivially the same whatever the data
    layers[SIGNAL_LAYER][:, :2] += np.random.default_rng(9).normal(0, 2.0, (len(y), 2))
    layers[4][:, 0] = y + np.random.default_rng(8).normal(0, 2.5, len(y))
    probe = layer_probe(layers, y, cats, folds=5, seed=4, published=False)
    rng = np.random.default_rng(0)
    for fold in range(probe.folds_used):
        test = np.flatnonzero(probe.fold_of == fold)
        shuffled = y.copy()
        shuffled[test] = rng.permutation(y[test])[::-1] * 3 - 7  # anything at all in the test fold
        again = layer_probe(layers, shuffled, cats, folds=5, seed=4, published=False)
        assert np.array_equal(again.fold_of, probe.fold_of)
        assert again.chosen[fold] == probe.chosen[fold]
        assert np.allclose(again.train_scores[fold], probe.train_scores[fold])


def test_gcv_ridge_loo_predictions_match_explicit_leave_one_out():
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import LeaveOneOut, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y, _, layers = constructed(n_per_group=8)
    X = layers[SIGNAL_LAYER]
    fit = gcv_ridge(X, y, rule="pearson")
    # RidgeCV standardised once on all rows; the explicit LOO scaler is fitted on the same rows too
    Xs = StandardScaler().fit_transform(X)
    explicit = cross_val_predict(Ridge(alpha=fit.alpha), Xs, y, cv=LeaveOneOut())
    assert np.allclose(fit.loo, explicit, atol=1e-6)
    assert fit.loo_r == pytest.approx(pearson(y, explicit), abs=1e-6)
    del make_pipeline
    tuned = gcv_ridge(X, y)  # the one-SE rule: its leave-one-out predictions at its own alpha
    explicit = cross_val_predict(Ridge(alpha=tuned.alpha), Xs, y, cv=LeaveOneOut())
    assert np.allclose(tuned.loo, explicit, atol=1e-6)


def test_the_one_se_alpha_keeps_predictions_calibrated_where_the_published_rule_does_not():
    """Weak signal: the best-r alpha is blind to scale; the probe's alpha keeps R^2 near the mean's."""
    from sklearn.metrics import r2_score

    published_r2, tuned_r2 = [], []
    for seed in range(4):
        rng = np.random.default_rng(seed)
        y = rng.normal(5, 1.5, 60)
        X = rng.normal(size=(60, 200))
        X[:, 0] += 0.3 * (y - 5)
        published, tuned = gcv_ridge(X, y, rule="pearson"), gcv_ridge(X, y)
        published_r2.append(r2_score(y, published.loo))
        tuned_r2.append(r2_score(y, tuned.loo))
    assert min(tuned_r2) > -0.1
    assert np.mean(published_r2) < np.mean(tuned_r2)


def test_profile_and_choices_recompute_from_the_predictions_file(tmp_path):
    import pandas as pd

    y, cats, layers = constructed()
    probe = layer_probe(layers, y, cats, folds=5, seed=1, names=[f"b{i}" for i in range(5)])
    ids = [f"s{i}" for i in range(len(y))]
    frame = layer_predictions_frame("layers-x", "random:seed=0", probe, ids, y)
    path = tmp_path / "layer_predictions.csv"
    frame.to_csv(path, index=False)
    scores = layer_scores_from_predictions(pd.read_csv(path))
    profile = layer_profile(probe, y, n_boot=20, seed=0)
    for row in profile:
        cv = scores[(scores.layer == row["layer"]) & (scores.kind == "cv")]["pearson_r"].item()
        loo = scores[(scores.layer == row["layer"]) & (scores.kind == "loo-all-data")]["pearson_r"].item()
        assert cv == pytest.approx(row["pearson_r"], abs=1e-9)
        assert loo == pytest.approx(row["published_loo_r"], abs=1e-9)
        assert row["ci_low"] <= row["pearson_r"] <= row["ci_high"]
    summary = choice_summary(probe, y, n_boot=20, seed=0)
    best = scores[scores.kind == "cv"].sort_values("pearson_r").iloc[-1]
    assert best["layer"] == summary["superlative"]["layer"]


def test_chosen_layers_penalties_are_recorded_per_fold():
    y, cats, layers = constructed()
    probe = layer_probe(layers, y, cats, folds=5, seed=1, published=False)
    records = probe.chosen_selections()
    assert len(records) == probe.folds_used
    assert [r["alpha"] for r in records] == [probe.alphas[f, c] for f, c in enumerate(probe.chosen)]
    assert all(r["edge"] != "high" for r in records)  # the signal layer is never shrunk to the mean


def test_the_rating_layer_profile_keeps_its_legend_off_the_published_line():
    """With r near the top of the plot the legend once covered the dashed published line: it sits under
    the axes, clear of the data and the axis label."""
    import pandas as pd

    from dirti_bench.reporting.layer_figures import LayerOutcome, layer_profile_figure
    from helpers import assert_legend_outside_the_data

    depth = np.linspace(0.1, 1.0, 8)
    r = 0.2 + 0.7 * depth
    scores = pd.DataFrame({"depth": depth, "pearson_r": r, "ci_low": r - 0.05, "ci_high": r + 0.05,
                           "published_loo_r": r + 0.02})
    choice = {"superlative": {"depth": 1.0, "pearson_r": float(r[-1])},
              "nested": {"pearson_r": 0.85, "modal_depth": 1.0, "folds_agreeing": 5, "folds": 5, "ci": [0.8, 0.9]}}
    layers = LayerOutcome("layers-disgust", {"layers": {"mode": "token"}}, {"layer_choice": choice, "penalty": {}},
                          {"pearson_r": 0.85}, {}, scores)
    fig = layer_profile_figure({"layers": layers}, "disg_mean_all", {"model": "m", "dataset": "d"})
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "all-data leave-one-out r (published)" in texts
    assert_legend_outside_the_data(fig)


def test_layer_intervals_of_zero_width_say_so_wherever_they_are_shown():
    """Legends, table cells and sentences of the layer profiles mark a zero-width interval, as every
    other interval the suite shows: [1.000, 1.000] alone reads as certainty."""
    from dirti_bench.reporting.layer_figures import _ci

    assert _ci((1.0, 1.0)) == " [1.000, 1.000] (zero width)"
    assert _ci((0.2, 0.4)) == " [0.200, 0.400]"
    assert _ci(None) == ""
