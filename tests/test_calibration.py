"""Calibration of zero-shot confidences: ECE over equal-mass bins, Brier score, and a temperature
fitted on the CV training folds only; everything recomputed from probabilities.csv.gz."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss

from dirti_bench.evaluators import calibration as cal
from dirti_bench.results import PROBABILITIES_FILE, PROBABILITY_COLUMNS, write_results
from test_scoring import zeroshot_run


def reference_ece(confidence, correct, n_bins=10) -> float:
    """Written out plainly: sort by confidence, cut into n_bins runs of (nearly) equal count, the
    first len % n_bins runs one longer; weight each |accuracy - confidence| by its share."""
    order = sorted(range(len(confidence)), key=lambda i: confidence[i])
    n = len(order)
    size, extra = divmod(n, n_bins)
    total, start = 0.0, 0
    for b in range(n_bins):
        stop = start + size + (1 if b < extra else 0)
        rows = order[start:stop]
        if rows:
            acc = sum(correct[i] for i in rows) / len(rows)
            conf = sum(confidence[i] for i in rows) / len(rows)
            total += len(rows) / n * abs(acc - conf)
        start = stop
    return total


def read_probabilities(path, result) -> pd.DataFrame:
    """probabilities.csv.gz as written (float32 precision), its probability columns replaced by the
    float64 values the metrics were computed from, recomputed exactly from the float32 logits by the
    recorded rule and each fold's temperature; the written columns must be those values in float32."""
    probs = pd.read_csv(path, dtype={"logit": np.float32})
    assert list(probs.columns) == PROBABILITY_COLUMNS
    rule, k = result.options["probability_rule"], len(result.labels)
    logits = probs["logit"].to_numpy().reshape(-1, k)
    raw = cal.probabilities(logits, rule)
    folds = probs["calibration_fold"].to_numpy().reshape(-1, k)[:, 0]
    calibrated = np.full_like(raw, np.nan)
    for fold, t in enumerate(result.extra["calibration"]["temperature"]["per_fold"]):
        calibrated[folds == fold] = cal.probabilities(logits[folds == fold] / t, rule)
    for column, exact in (("probability", raw), ("calibrated_probability", calibrated)):
        written = probs[column].to_numpy().reshape(-1, k).astype(np.float32)
        np.testing.assert_array_equal(written, exact.astype(np.float32))
        probs[column] = exact.ravel()
    return probs


def test_probabilities_are_written_at_float32_precision(tmp_path):
    """float64's 17-digit text made this file half a 10k-image run's output: every value is written
    as the shortest text of its float32 (logits computed in float32 lose nothing)."""
    result, _ = zeroshot_run("softmax", 14.3, None)
    write_results(tmp_path, {"model": "known-answer"}, [result])
    text = pd.read_csv(tmp_path / PROBABILITIES_FILE, dtype=str)
    for column in ("logit", "probability", "calibrated_probability"):
        assert all(str(np.float32(v)) == v for v in text[column]), column
    exact = result.probabilities["logit"].to_numpy()
    np.testing.assert_array_equal(text["logit"].astype(np.float32).astype(np.float64), exact)


@pytest.mark.parametrize(("rule", "scale", "bias"), [("softmax", 14.3, None), ("sigmoid", 10.0, -4.0)])
def test_ece_and_brier_intervals_recompute_from_probabilities_csv(tmp_path, rule, scale, bias):
    """95% percentile bootstrap, 1000 draws, stratified by class, the run's seed: the accuracy CI's own
    draws (checked by recomputing it from predictions.csv.gz), each draw's ECE and Brier scored here by
    the plain reference on that draw's rows of probabilities.csv.gz, taken in stimulus order."""
    result, _ = zeroshot_run(rule, scale, bias)
    write_results(tmp_path, {"model": "known-answer"}, [result])
    probs = read_probabilities(tmp_path / PROBABILITIES_FILE, result)
    stimuli, labels = list(dict.fromkeys(probs["stimulus"])), list(result.labels)
    assert list(dict.fromkeys(probs["class"])) == labels
    truth = result.predictions.set_index("stimulus").loc[stimuli]
    y = np.array([labels.index(c) for c in truth["y_true"]])
    rng, blocks = np.random.default_rng(0), []  # the run's seed is 0
    for k in np.unique(y):  # each true class resampled to its own size, classes in label order
        members = np.flatnonzero(y == k)
        blocks.append(members[rng.integers(0, len(members), size=(1000, len(members)))])
    draws = np.concatenate(blocks, axis=1)
    hit = (truth["y_true"] == truth["y_pred"]).to_numpy()
    accuracy = [hit[d].mean() for d in draws]
    assert result.ci["accuracy"] == pytest.approx(np.percentile(accuracy, [2.5, 97.5]).tolist(), abs=1e-12)
    onehot = np.eye(len(labels))[y]
    for column, suffix in (("probability", ""), ("calibrated_probability", "_calibrated")):
        wide = probs[column].to_numpy().reshape(len(stimuli), len(labels))
        correct = (wide.argmax(axis=1) == y).astype(int)
        ece, brier = [], []
        for d in draws:
            rows = np.sort(d)
            ece.append(reference_ece(wide[rows].max(axis=1).tolist(), correct[rows].tolist()))
            brier.append(((wide[rows] - onehot[rows]) ** 2).sum(axis=1).mean())
        for name, values in ((f"ece{suffix}", ece), (f"brier{suffix}", brier)):
            low, high = np.percentile(values, [2.5, 97.5])
            assert result.ci[name] == pytest.approx([low, high], abs=1e-12), name
    assert result.extra["calibration"]["intervals"].startswith("95% percentile bootstrap, 1000 draws, stratified by class")


def test_ece_known_answers():
    assert cal.expected_calibration_error(np.full(20, 1.0), np.r_[np.ones(10), np.zeros(10)]) == 0.5
    assert cal.expected_calibration_error(np.full(20, 0.5), np.tile([1, 0], 10)) == 0.0
    # bins of equal mass: 25 images in 10 bins hold 3,3,3,3,3,2,2,2,2,2
    assert [row["n"] for row in cal.reliability_table(np.linspace(0, 1, 25), np.ones(25))] == [3] * 5 + [2] * 5


@pytest.mark.parametrize(("rule", "scale", "bias"), [("softmax", 14.3, None), ("sigmoid", 10.0, -4.0)])
def test_ece_and_brier_recompute_from_probabilities_csv(tmp_path, rule, scale, bias):
    result, _ = zeroshot_run(rule, scale, bias)
    write_results(tmp_path, {"model": "known-answer"}, [result])
    probs = read_probabilities(tmp_path / PROBABILITIES_FILE, result)
    truth = result.predictions.set_index("stimulus")["y_true"]
    probs["is_true"] = (probs["class"] == probs["stimulus"].map(truth)).astype(int)
    for column, suffix in (("probability", ""), ("calibrated_probability", "_calibrated")):
        wide = probs.pivot(index="stimulus", columns="class", values=column)
        onehot = probs.pivot(index="stimulus", columns="class", values="is_true")
        top = wide.idxmax(axis=1)
        correct = (top == truth.reindex(wide.index)).astype(int).tolist()
        ece = reference_ece(wide.max(axis=1).tolist(), correct)
        assert result.metrics[f"ece{suffix}"] == pytest.approx(ece, abs=1e-9)
        # Brier: the multi-class sum written out, and scikit-learn's one-vs-rest, agree with the result
        brier = float(((wide - onehot) ** 2).sum(axis=1).mean())
        ovr = sum(brier_score_loss(onehot[c], wide[c]) for c in wide.columns)
        assert result.metrics[f"brier{suffix}"] == pytest.approx(brier, abs=1e-9) == pytest.approx(ovr, abs=1e-9)
    # predictions.csv.gz's confidence is the raw top probability of the same file
    conf = probs.groupby("stimulus")["probability"].max()
    np.testing.assert_allclose(result.predictions.set_index("stimulus")["confidence"].loc[conf.index], conf)
    record = result.extra["calibration"]
    assert record["ece_bins"] == 10 and "equal-mass" in record["binning"]
    assert len(record["temperature"]["per_fold"]) == record["temperature"]["folds"]


def constructed_logits(n=60, k=3, seed=1):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), n // k)
    logits = 8.0 * (np.eye(k)[y] + 0.8 * rng.standard_normal((n, k)))  # overconfident: T > 1 helps
    return logits, y


@pytest.mark.parametrize("rule", ["softmax", "sigmoid"])
def test_temperature_fitting_never_sees_the_test_fold(rule):
    logits, y = constructed_logits()
    _, fold_of, temps, used = cal.out_of_fold_calibration(logits, y, rule, folds=5, seed=3)
    rng = np.random.default_rng(0)
    for fold in range(used):
        test = np.flatnonzero(fold_of == fold)
        shuffled = logits.copy()
        shuffled[test] = rng.permuted(logits[test], axis=1) * 3  # scramble the held-out rows
        calibrated, fold_again, temps_again, _ = cal.out_of_fold_calibration(shuffled, y, rule, folds=5, seed=3)
        assert np.array_equal(fold_again, fold_of)
        assert temps_again[fold] == temps[fold]  # its own temperature did not move
        np.testing.assert_allclose(calibrated[test], cal.probabilities(shuffled[test] / temps[fold], rule))
        # the control: the same rows are training rows of every other fold, whose temperature moves
        assert all(temps_again[f] != temps[f] for f in range(used) if f != fold)


def test_temperature_lowers_the_log_loss_of_overconfident_logits():
    from sklearn.metrics import log_loss

    logits, y = constructed_logits(n=300)
    t = cal.fit_temperature(logits, y, "softmax")
    assert t > 1.5
    raw = log_loss(y, cal.probabilities(logits, "softmax"), labels=[0, 1, 2])
    assert log_loss(y, cal.probabilities(logits / t, "softmax"), labels=[0, 1, 2]) < raw


def test_a_template_sweep_headline_is_calibrated_from_the_chosen_templates_logits(tmp_path):
    """The sweep's headline (each image scored by the template chosen on folds without it) gets ECE and
    Brier, raw and temperature-calibrated, recomputed here from probabilities.csv.gz; its logits are the
    chosen template's own 1-prompt zero-shot logits."""
    from dirti_bench.contracts import Scenario
    from dirti_bench.evaluators import zeroshot
    from test_sweeps import TEMPLATES, known_answer_ctx, template_sweep

    ctx = known_answer_ctx(n_per_class=10, noise=0.9)
    result = template_sweep(tmp_path, ctx, split_seed=7, folds=5)
    write_results(tmp_path / "res", {"model": "known-answer"}, [result])
    probs = read_probabilities(tmp_path / "res" / PROBABILITIES_FILE, result)
    assert set(probs["scenario"]) == {result.id}
    chosen_by_fold = {s["fold"]: s["template"] for s in result.extra["selection"]}
    heldout = result.predictions.set_index("stimulus")
    alone = {t: zeroshot.evaluate(Scenario("t", "category", "zeroshot", {"template": t}), ctx).probabilities
             for t in set(chosen_by_fold.values()) | set(TEMPLATES[:1])}
    logits = probs.pivot(index="stimulus", columns="class", values="logit")
    for stimulus, fold in heldout["fold"].items():
        own = alone[chosen_by_fold[fold]]
        expected = own[own["stimulus"] == stimulus].set_index("class")["logit"]
        np.testing.assert_allclose(logits.loc[stimulus, expected.index], expected, rtol=1e-6)
    truth = heldout["y_true"]
    probs["is_true"] = (probs["class"] == probs["stimulus"].map(truth)).astype(int)
    for column, suffix in (("probability", ""), ("calibrated_probability", "_calibrated")):
        wide = probs.pivot(index="stimulus", columns="class", values=column)
        onehot = probs.pivot(index="stimulus", columns="class", values="is_true")
        correct = (wide.idxmax(axis=1) == truth.reindex(wide.index)).astype(int).tolist()
        assert result.metrics[f"ece{suffix}"] == pytest.approx(reference_ece(wide.max(axis=1).tolist(), correct),
                                                               abs=1e-9)
        assert result.metrics[f"brier{suffix}"] == pytest.approx(float(((wide - onehot) ** 2).sum(axis=1).mean()),
                                                                 abs=1e-9)
    # the raw top probability is the headline's confidence column
    np.testing.assert_allclose(probs.groupby("stimulus")["probability"].max().loc[heldout.index],
                               heldout["confidence"], rtol=1e-6)
    assert result.extra["calibration"]["temperature"]["folds"] == len(result.extra["calibration"]["temperature"]["per_fold"])


@pytest.mark.parametrize("rule", ["softmax", "sigmoid"])
@pytest.mark.parametrize("k", [2, 5])
def test_temperature_loss_without_repeated_label_checks_equals_log_loss(rule, k):
    """The temperature search's loss (labels checked and one-hot encoded once) gives scikit-learn's
    log_loss to the last bit at every T, so the fitted temperature is the one a log_loss call per T
    finds."""
    from scipy.optimize import minimize_scalar

    rng = np.random.default_rng(k)
    logits, y = rng.normal(0, 3, (90, k)), rng.integers(0, k, 90)
    loss = cal._log_loss_of_temperature(y, logits, rule)
    for t in (0.02, 0.7, 1.0, 3.3, 50.0, 1.0):
        assert loss(t) == cal._log_loss(y, logits, rule, t)
    reference = minimize_scalar(lambda log_t: cal._log_loss(y, logits, rule, float(np.exp(log_t))),
                                bounds=cal.LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-4})
    assert cal.fit_temperature(logits, y, rule) == float(np.exp(reference.x))


def test_sorted_rows_by_counting_equal_numpy_sort():
    """ECE intervals sort each draw's ranks by counting: the same array as np.sort, repeats included."""
    rng = np.random.default_rng(8)
    for rows, size, bound in ((5, 40, 40), (3, 1, 1), (7, 25, 9)):
        values = rng.integers(0, bound, (rows, size))
        assert np.array_equal(cal.sorted_rows(values, bound), np.sort(values, axis=1))


def test_the_reliability_legend_gives_each_ece_with_its_interval(tmp_path):
    """A reliability diagram is read alone: its legend carries each ECE with its 95% interval."""
    from dirti_bench import api
    from dirti_bench.reporting.report import _calibration, load_run

    out = tmp_path / "run"
    api.run(data="demo", model="dirti-tiny", scenarios=["zeroshot-baseline"], out=out, report=False)
    run = load_run(out)
    sc = run.results["zeroshot-baseline"]
    drawings = [block.png for block in _calibration([run]) if type(block).__name__ == "Figure"]
    (panels, _title), = [d.args for d in drawings]
    for panel, name in zip(panels, ("ece", "ece_calibrated"), strict=True):
        lo, hi = sc.interval(name)
        assert f"ECE {sc.metric(name):.3f} [{lo:.3f}, {hi:.3f}]" in panel["label"] and "95% CI" in panel["label"]
