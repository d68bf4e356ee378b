"""Known answers for the classifiers per layer: every layer's out-of-fold scores, the superlative
(same-data) choice beside the nested one, and the pixel and random-init controls of the classes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from dirti_bench.contracts import EvalContext
from dirti_bench.encoding.layers import LayerFeatures
from dirti_bench.evaluators.layer_classes import LAYER_CLASS_METRICS
from dirti_bench.evaluators.metrics import bootstrap_ci, draw_counts, stratified_draws
from helpers import assert_legend_outside_the_data

NAMES, DEPTHS = ["block01", "block02", "block03", "pooled"], [0.25, 0.5, 0.75, 1.0]


def constructed_layers(n, classes, signal_layer=1, strength=3.0, width=12, seed=0, corrupt=()):
    """Noise in every layer; ``signal_layer`` also carries the class (one-hot x ``strength``); rows in
    ``corrupt`` get fresh noise in every layer."""
    rng = np.random.default_rng(seed)
    arrays = [rng.normal(size=(n, width)).astype(np.float32) for _ in NAMES]
    if signal_layer is not None:
        arrays[signal_layer][:, :classes.max() + 1] += strength * np.eye(classes.max() + 1)[classes]
    for a in arrays:
        a[list(corrupt)] = rng.normal(size=(len(corrupt), width))
    return arrays


class TowerDouble:
    """An encoder double with an identity and seeded random-init siblings (their layers: ``ctx.layers``)."""

    def __init__(self, weights):
        self.weights = weights

    def identity(self):
        return {"weights": self.weights}

    def random_init(self, seed):
        return TowerDouble(f"random:seed={seed}")


def layered_ctx(stimuli, signal_layer=1, strength=3.0, corrupt_rows=(), final_signal=True, seeds=(1, 2)):
    """The demo stimuli with constructed layers: the category lives in ``signal_layer`` only; the
    random-init siblings' layers are noise; the final embedding carries the category (or not)."""
    cats = sorted({s.category for s in stimuli.stimuli})
    classes = np.array([cats.index(s.category) for s in stimuli.stimuli])
    n = len(classes)
    encoder = TowerDouble("sha256:trained")
    final = np.eye(len(cats))[classes].astype(np.float32) if final_signal else \
        np.random.default_rng(9).normal(size=(n, len(cats))).astype(np.float32)
    ctx = EvalContext(stimuli, encoder, final, seed=0)
    ctx.layers[(repr(encoder.identity()), "token", 0)] = LayerFeatures(
        NAMES, DEPTHS, constructed_layers(n, classes, signal_layer, strength, corrupt=corrupt_rows), "token",
        "class token", weights="sha256:trained")
    for seed in seeds:
        weights = f"random:seed={seed}"
        ctx.layers[(repr({"weights": weights}), "token", 0)] = LayerFeatures(
            NAMES, DEPTHS, constructed_layers(n, classes, None, seed=100 + seed), "token", "class token", weights=weights)
    return ctx


def probe_scenario(task="category", **options):
    from dirti_bench.scenarios import probe_layer_scenarios

    scenario = next(s for s in probe_layer_scenarios() if s.task == task)
    return scenario.with_options(**options) if options else scenario


def sklearn_scores(part: pd.DataFrame, labels) -> dict:
    return {"accuracy": accuracy_score(part["y_true"], part["y_pred"]),
            "balanced_accuracy": balanced_accuracy_score(part["y_true"], part["y_pred"]),
            "f1_macro": f1_score(part["y_true"], part["y_pred"], labels=labels, average="macro", zero_division=0)}


def by_stimulus(frame: pd.DataFrame, column: str) -> pd.Series:
    """``column`` by stimulus id as text (a saved file reads integer-like ids back as numbers)."""
    return frame.assign(stimulus=frame["stimulus"].astype(str)).set_index("stimulus")[column].sort_index()


def saved(result, tmp_path):
    """The result's layer files as the run writes them, read back."""
    from dirti_bench.results import (
        LAYER_CLASS_PREDICTIONS_FILE,
        LAYER_CLASS_SCORES_FILE,
        layer_frames,
    )

    frames = layer_frames([result])
    for name, frame in frames.items():
        frame.to_csv(tmp_path / name, index=False)
    return pd.read_csv(tmp_path / LAYER_CLASS_PREDICTIONS_FILE), pd.read_csv(tmp_path / LAYER_CLASS_SCORES_FILE)


@pytest.fixture(scope="module")
def signal_result(demo_master):
    from dirti_bench.data.dirti import load_dirti
    from dirti_bench.pipeline import evaluate_scenario

    stimuli = load_dirti(demo_master)
    return stimuli, evaluate_scenario(probe_scenario(), layered_ctx(stimuli))


@pytest.fixture(scope="module")
def control_results(signal_result):
    """The category task's pixel and random-init (seeds 1, 2) controls on the constructed layers."""
    from dirti_bench.pipeline import evaluate_scenario
    from dirti_bench.scenarios import classifier_control_scenarios

    stimuli, _ = signal_result
    ctx = layered_ctx(stimuli)
    pixels, random_init = [s for s in classifier_control_scenarios(["pixels", "random-init"]) if s.task == "category"]
    assert (pixels.id, random_init.id) == ("linear-probe-pixels-baseline", "linear-probe-random-init-baseline")
    return evaluate_scenario(pixels, ctx), evaluate_scenario(random_init.with_options(seeds=[1, 2]), ctx)


def test_every_layers_out_of_fold_score_finds_the_signal_layer_and_both_choices_name_it(signal_result):
    _, result = signal_result
    scores = result.layer_class_scores.set_index("layer")
    assert scores["accuracy"].idxmax() == "block02"
    assert scores.loc["block02", "accuracy"] >= 0.85
    assert (scores.drop("block02")["accuracy"] <= 0.4).all()  # chance is 1/6
    assert scores.loc["block02", "n_folds_chosen"] == result.options["folds_effective"]
    choice = result.extra["layer_choice"]
    assert choice["superlative"]["layer"] == "block02" and choice["superlative"]["depth"] == 0.5
    assert choice["nested"]["accuracy"] == pytest.approx(result.metrics["accuracy"])
    # the same layer in every fold: the same predictions, a gap of exactly 0 with a zero-width interval
    assert result.metrics["superlative_minus_nested_accuracy"] == 0.0
    assert result.ci["superlative_minus_nested_accuracy"] == [0.0, 0.0]
    for m in LAYER_CLASS_METRICS:
        assert (scores[f"{m}_ci_low"] <= scores[m]).all() and (scores[m] <= scores[f"{m}_ci_high"]).all()


def test_every_per_layer_score_and_choice_recomputes_from_the_saved_predictions(signal_result, tmp_path):
    _, result = signal_result
    predictions, scores = saved(result, tmp_path)
    labels = list(result.labels)
    layer_rows = predictions[predictions["kind"] == "layer"]
    assert set(layer_rows["layer"]) == set(NAMES)
    for row in scores.itertuples():
        part = layer_rows[layer_rows["layer"] == row.layer]
        assert len(part) == result.n and part["fold"].nunique() == result.options["folds_effective"]
        for metric, value in sklearn_scores(part, labels).items():
            assert getattr(row, metric) == pytest.approx(value, abs=1e-12), (row.layer, metric)
        # its CI is the suite's classification CI: bootstrap_ci on the same predictions, the same draws
        expected = bootstrap_ci(part["y_true"], part["y_pred"], labels, seed=0)
        assert [row.accuracy_ci_low, row.accuracy_ci_high] == pytest.approx(expected["accuracy"])
        assert [row.f1_macro_ci_low, row.f1_macro_ci_high] == pytest.approx(expected["f1_macro"])
    nested = predictions[predictions["kind"] == "nested"]
    assert sklearn_scores(nested, labels)["accuracy"] == pytest.approx(result.metrics["accuracy"])
    assert by_stimulus(nested, "y_pred").equals(by_stimulus(result.predictions, "y_pred"))
    per_fold = {f["fold"]: f["layer"] for f in result.extra["layer_choice"]["nested"]["per_fold"]}
    assert (nested["layer"] == nested["fold"].map(per_fold)).all()
    best = scores.loc[scores["accuracy"].idxmax()]
    assert result.metrics["superlative_accuracy"] == pytest.approx(best["accuracy"])
    assert result.metrics["superlative_minus_nested_accuracy"] == pytest.approx(
        best["accuracy"] - sklearn_scores(nested, labels)["accuracy"])


def _probe(stimuli, strength, seed, corrupt=(), permute_fold=None):
    """The classifier-per-layer loop on constructed layers, on the outer folds of the category task."""
    from dirti_bench.evaluators.crossval import cv_splits
    from dirti_bench.evaluators.layer_eval import _class_layer_probe
    from dirti_bench.evaluators.probe import probe_factory

    cats = sorted({s.category for s in stimuli.stimuli})
    y = np.array([cats.index(s.category) for s in stimuli.stimuli])
    splits = cv_splits(y, 5, seed)
    labels_seen = y.copy()
    if permute_fold is not None:
        test = splits[permute_fold][1]
        labels_seen[test] = np.random.default_rng(seed).permutation(labels_seen[test])
    arrays = constructed_layers(len(y), y, 2, strength, seed=seed, corrupt=corrupt)
    make = probe_factory(probe_scenario())
    model = make(len(y))[0]
    probe, per_fold, _ = _class_layer_probe(arrays, NAMES, DEPTHS, "w", labels_seen, splits, seed, model,
                                            lambda y_train, s: make(len(y_train))[0])
    return y, probe, per_fold, splits


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_superlative_is_not_below_nested_on_a_weak_signal(signal_result, seed):
    """A weak signal in block03: folds may choose differently, and the layer picked on its own scores is
    never below the choice made on training folds alone."""
    from dirti_bench.evaluators.layer_classes import class_choice

    stimuli, _ = signal_result
    y, probe, _, _ = _probe(stimuli, 0.9, seed)
    choice = class_choice(probe, y, 6, n_boot=200, seed=seed)
    assert choice["superlative"]["accuracy"] >= choice["nested_accuracy"]
    assert choice["gap"]["superlative_minus_nested_accuracy"] >= 0


def test_shuffling_a_test_folds_labels_does_not_change_its_training_fold_choice(signal_result):
    stimuli, _ = signal_result
    _, probe, per_fold, _ = _probe(stimuli, 1.2, 0)
    _, shuffled, shuffled_folds, _ = _probe(stimuli, 1.2, 0, permute_fold=0)
    assert shuffled.chosen[0] == probe.chosen[0]
    assert shuffled_folds[0]["inner_accuracy"] == per_fold[0]["inner_accuracy"]
    # the other folds train on the shuffled rows: their inner scores do move (the shuffle reached the data)
    assert any(shuffled_folds[f]["inner_accuracy"] != per_fold[f]["inner_accuracy"] for f in range(1, 5))


def test_the_gap_ci_is_the_paired_stratified_bootstrap_of_both_choices(signal_result):
    """Recomputed by hand: the same stratified draws for the nested and the superlative predictions,
    accuracy_score on each draw, the percentile interval of the differences."""
    from dirti_bench.evaluators.layer_classes import class_choice

    stimuli, _ = signal_result
    for seed in range(6):  # a case where the two choices differ
        y, probe, _, _ = _probe(stimuli, 0.9, seed)
        if (probe.nested_pred != probe.pred[int(np.argmax((probe.pred == y).mean(axis=1)))]).any():
            break
    else:
        pytest.fail("no constructed case where the nested and the superlative choice differ")
    choice = class_choice(probe, y, 6, n_boot=300, seed=4)
    best = probe.names.index(choice["superlative"]["layer"])
    draws = stratified_draws(y, 300, np.random.default_rng(4))
    assert draw_counts(draws, len(y)).sum(axis=1).tolist() == [len(y)] * 300
    gaps = [accuracy_score(y[d], probe.pred[best][d]) - accuracy_score(y[d], probe.nested_pred[d]) for d in draws]
    assert choice["gap"]["ci"] == pytest.approx(list(np.percentile(gaps, [2.5, 97.5])))


def test_random_init_band_and_paired_difference_recompute_from_their_predictions(control_results, tmp_path):
    result = control_results[1]
    predictions, scores = saved(result, tmp_path)
    labels = list(result.labels)
    nested = predictions[predictions["kind"] == "nested"]
    by_weights = {w: sklearn_scores(part, labels)["accuracy"] for w, part in nested.groupby("weights")}
    assert set(by_weights) == {"sha256:trained", "random:seed=1", "random:seed=2"}
    m = result.metrics
    assert m["trained_nested_accuracy"] == pytest.approx(by_weights["sha256:trained"])
    assert m["band_min_accuracy"] == pytest.approx(min(by_weights["random:seed=1"], by_weights["random:seed=2"]))
    assert m["band_max_accuracy"] == pytest.approx(max(by_weights["random:seed=1"], by_weights["random:seed=2"]))
    assert m["accuracy"] == pytest.approx(by_weights["random:seed=1"])  # the headline: the first seed's choice
    assert m["trained_minus_random_accuracy"] == pytest.approx(
        by_weights["sha256:trained"] - (by_weights["random:seed=1"] + by_weights["random:seed=2"]) / 2)
    assert m["band_max_accuracy"] <= 0.45  # noise layers: near chance (1/6)
    assert result.ci["trained_minus_random_accuracy"][0] > 0.2  # the trained model's signal layer, paired
    assert set(scores["weights"]) == {"random:seed=1", "random:seed=2"}
    layer_rows = predictions[predictions["kind"] == "layer"]
    for row in scores.itertuples():
        part = layer_rows[(layer_rows["weights"] == row.weights) & (layer_rows["layer"] == row.layer)]
        assert row.accuracy == pytest.approx(sklearn_scores(part, labels)["accuracy"])


def test_pixel_baseline_classifier_and_model_minus_pixels_recompute_from_their_predictions(signal_result,
                                                                                           control_results, tmp_path):
    result = control_results[0]
    predictions, scores = saved(result, tmp_path)
    labels = list(result.labels)
    pixels = predictions[predictions["kind"] == "layer"]
    final = predictions[predictions["kind"] == "final"]
    assert set(pixels["weights"]) == {"none (image statistics)"} and set(final["weights"]) == {"sha256:trained"}
    assert result.options["n_features"] == 99
    assert result.metrics["accuracy"] == pytest.approx(sklearn_scores(pixels, labels)["accuracy"])
    assert scores["accuracy"].tolist() == pytest.approx([result.metrics["accuracy"]])
    assert result.metrics["model_final_accuracy"] == pytest.approx(sklearn_scores(final, labels)["accuracy"]) == 1.0
    assert result.metrics["model_minus_pixels_accuracy"] == pytest.approx(
        result.metrics["model_final_accuracy"] - result.metrics["accuracy"])
    low, high = result.ci["model_minus_pixels_accuracy"]
    assert low <= result.metrics["model_minus_pixels_accuracy"] <= high
    # the same outer folds as the probe per layer
    _, layered = signal_result
    assert by_stimulus(pixels, "fold").astype(int).equals(by_stimulus(layered.predictions, "fold").astype(int))


def test_the_task_figure_and_report_rows_show_both_choices_the_controls_and_name_the_run(signal_result,
                                                                                          control_results, tmp_path):
    from dirti_bench.reporting.layer_figures import (
        _class_outcome_from_result,
        class_layer_profile_figure,
        class_layer_summary_rows,
        group_by_task,
        write_class_layer_profiles,
    )

    _, layered = signal_result
    controls = list(control_results)
    results = [layered, *controls]
    run = {"model": "ViT-B-32", "pretrained": "openai", "weights_sha256": "ab" * 32, "dataset": "dirti-demo-seed0"}
    by_kind = group_by_task(_class_outcome_from_result(r) for r in results)["category"]
    assert set(by_kind) == {"probe", "pixels", "random-init"}
    fig = class_layer_profile_figure(by_kind, "category", run)
    title = fig.axes[0].get_title()
    for part in ("linear-probe-layers-baseline", "linear-probe-random-init-baseline", "ViT-B-32", "openai",
                 "dirti-demo-seed0"):
        assert part in title, part
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(t.startswith("logistic probe superlative (same-data) block02") for t in legend)
    assert any(t.startswith("logistic probe nested choice acc=") for t in legend)
    assert any(t.startswith("random init (logistic probe), 2 seeds") for t in legend)
    assert any(t.startswith("pixel statistics (logistic probe) acc=") for t in legend)
    assert_legend_outside_the_data(fig)
    (row,) = class_layer_summary_rows(by_kind, "category")
    assert row["nested layer (depth, folds agreeing)"].startswith("block02 (0.50, ")
    assert row["superlative layer (depth): acc. [95% CI]"].startswith("block02 (0.50): ")
    assert row["superlative - nested [95% CI]"] == "0.000 [0.000, 0.000] (zero width)"  # both choices alike on every stimulus
    random_init = controls[1]
    assert row["random-init nested acc. band (seeds)"].startswith(f"{random_init.metrics['band_min_accuracy']:.3f} to ")
    assert row["model - random-init [95% CI]"].startswith(f"{random_init.metrics['trained_minus_random_accuracy']:.3f} [")
    assert row["pixels acc. [95% CI]"].startswith(f"{controls[0].metrics['accuracy']:.3f} [")
    (path,) = write_class_layer_profiles(results, tmp_path, run)
    assert path.name == "layer_profile_task-category.png" and path.read_bytes()[:4] == b"\x89PNG"
