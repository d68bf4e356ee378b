"""Paired scenario comparison: bootstrap CI of the accuracy difference, McNemar's exact test."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest
from scipy.stats import bootstrap as scipy_bootstrap
from sklearn.metrics import f1_score

from dirti_bench.contracts import ScenarioResult
from dirti_bench.errors import UserError
from dirti_bench.pipeline import RunConfig, run
from dirti_bench.reporting.compare import PROMPT_KIND, compare, default_comparisons, run_comparisons
from dirti_bench.results import PREDICTIONS_FILE, RESULTS_FILE, write_results
from dirti_bench.scenarios import REGISTRY
from known_answer import KnownAnswerEncoder


def frame(name: str, correct: list[bool], fold=None, truth_labels=("x", "y")) -> pd.DataFrame:
    """Predictions of ``name``: stimulus i is right where ``correct[i]``."""
    t, other = truth_labels
    return pd.DataFrame({
        "scenario": name, "stimulus": [f"s{i}" for i in range(len(correct))],
        "y_true": t, "y_pred": [t if c else other for c in correct],
        "fold": "" if fold is None else fold,
    })


def test_identical_predictions_have_no_difference():
    a = frame("a", [True, False] * 10)
    out = compare(a, a.assign(scenario="b"))
    assert out["accuracy_difference"] == 0.0 and out["ci"] == [0.0, 0.0]
    assert out["mcnemar"]["p_value"] == 1.0 and out["mcnemar"]["only_a_correct"] == 0


def test_known_difference_and_exact_mcnemar():
    a = frame("a", [True] * 20)
    b = frame("b", [True] * 10 + [False] * 10, truth_labels=("disgusting x", "x"))  # another label space
    out = compare(a, b, seed=0)
    assert out["a"] == "a" and out["b"] == "b" and out["n"] == 20
    assert out["accuracy_a"] == 1.0 and out["accuracy_b"] == 0.5 and out["accuracy_difference"] == 0.5
    assert out["mcnemar"]["only_a_correct"] == 10 and out["mcnemar"]["only_b_correct"] == 0
    assert out["mcnemar"]["p_value"] == pytest.approx(2 * 0.5**10)  # exact two-sided binomial
    lo, hi = out["ci"]
    assert 0 < lo < 0.5 < hi < 1
    # an independent percentile bootstrap of the per-stimulus differences agrees closely
    diff = np.array([1.0] * 10 + [0.0] * 10)
    ref = scipy_bootstrap((diff,), np.mean, n_resamples=4000, method="percentile", random_state=1)
    assert lo == pytest.approx(ref.confidence_interval.low, abs=0.06)
    assert hi == pytest.approx(ref.confidence_interval.high, abs=0.06)


def test_mcnemar_matches_scipy_on_discordant_pairs():
    rng = np.random.default_rng(4)
    ca, cb = rng.random(40) < 0.7, rng.random(40) < 0.5
    out = compare(frame("a", list(ca)), frame("b", list(cb)))
    only_a, only_b = int((ca & ~cb).sum()), int((~ca & cb).sum())
    assert (out["mcnemar"]["only_a_correct"], out["mcnemar"]["only_b_correct"]) == (only_a, only_b)
    assert out["mcnemar"]["p_value"] == pytest.approx(binomtest(only_a, only_a + only_b, 0.5).pvalue)
    assert out["accuracy_difference"] == pytest.approx(ca.mean() - cb.mean())


def test_row_order_does_not_matter_and_seed_is_reproducible():
    rng = np.random.default_rng(7)
    a, b = frame("a", list(rng.random(30) < 0.6)), frame("b", list(rng.random(30) < 0.4))
    shuffled = b.sample(frac=1, random_state=3)
    assert compare(a, b, seed=5) == compare(a, shuffled, seed=5)
    assert compare(a, b, seed=5) == compare(a, b, seed=5) and compare(a, b, seed=5)["seed"] == 5


def test_cross_validated_predictions_get_no_mcnemar():
    a = frame("knn-cv", [True, False] * 5, fold=[0, 1] * 5)
    out = compare(a, frame("zs", [True] * 10))
    assert out["mcnemar"] is None and out["accuracy_difference"] == -0.5


def test_pairs_on_different_stimuli_are_refused():
    a, b = frame("a", [True] * 10), frame("b", [True] * 12)
    with pytest.raises(UserError, match="cannot pair a and b: their stimuli differ"):
        compare(a, b)
    with pytest.raises(UserError, match="more than once"):
        compare(pd.concat([a, a]), a)


def test_run_comparisons_skips_unpaired_and_missing():
    frames = {"zeroshot-baseline": frame("zeroshot-baseline", [True] * 10),
              "zeroshot-disgust": frame("zeroshot-disgust", [False] * 9)}
    out = run_comparisons(frames, [("zeroshot-baseline", "zeroshot-disgust"), ("zeroshot-baseline", "nope")])
    assert len(out) == 1 and out[0]["a"] == "zeroshot-baseline" and "stimuli differ" in out[0]["skipped"]


def test_default_comparisons_name_registered_scenarios():
    pairs = default_comparisons()
    # 6 categories vs 11 disgust classes: different label spaces and chance levels, never a paired test
    assert ("zeroshot-baseline", "zeroshot-disgust") not in pairs
    assert ("knn-cv10-baseline", "zeroshot-baseline") in pairs
    assert all(a in REGISTRY and b in REGISTRY and a != b for a, b in pairs)


def test_write_results_adds_comparisons_only_when_given(tmp_path):
    res = ScenarioResult(id="s", task="category", labels=["x"], n=0, metrics={})
    write_results(tmp_path / "plain", {"model": "m"}, [res])
    assert "comparisons" not in json.loads((tmp_path / "plain" / RESULTS_FILE).read_text())
    write_results(tmp_path / "cmp", {"model": "m"}, [res], comparisons=[{"a": "s", "b": "t", "skipped": "why"}])
    assert json.loads((tmp_path / "cmp" / RESULTS_FILE).read_text())["comparisons"] == [
        {"a": "s", "b": "t", "skipped": "why"}]


def test_run_writes_comparisons_recomputable_from_predictions_csv(demo_master, tmp_path, monkeypatch):
    """runner.run -> results.json comparisons; recompute one from predictions.csv.gz as read back."""
    monkeypatch.setattr("dirti_bench.pipeline.versions", dict)  # skip importing torch for version strings
    rng = np.random.default_rng(0)
    vec = {}  # any fixed vector per image/prompt: the comparison only needs predictions
    images = {p.name: rng.standard_normal(8) for p in (demo_master / "DIRTI Database").iterdir()}
    encoder = KnownAnswerEncoder(images, lambda t: vec.setdefault(t, rng.standard_normal(8)))
    out = run(RunConfig(data=demo_master, out=tmp_path / "res", report=False,
                        scenarios=["zeroshot-baseline", "zeroshot-disgust", "ensemble-disgust-affect"]), encoder=encoder)
    doc = json.loads((out / RESULTS_FILE).read_text())
    # only the prompt set is paired with the study wording of its own label space
    assert [(c["a"], c["b"]) for c in doc["comparisons"]] == [("ensemble-disgust-affect", "zeroshot-disgust")]
    found = doc["comparisons"][0]
    assert found["kind"] == PROMPT_KIND and found["task"] == "disgust"
    preds = pd.read_csv(out / PREDICTIONS_FILE)
    a, b = (preds[preds["scenario"] == s] for s in ("ensemble-disgust-affect", "zeroshot-disgust"))
    labels = doc["scenarios"]["zeroshot-disgust"]["labels"]
    again = compare(a, b, labels=labels, mcnemar=True)
    # its family of one test: Holm and BH leave a single p-value as it is
    assert {k: found.pop(k) for k in ("family", "family_size", "p_holm", "q_bh")} == {
        "family": "prompt sets vs zeroshot-disgust (task disgust; McNemar)", "family_size": 1,
        "p_holm": found["mcnemar"]["p_value"], "q_bh": found["mcnemar"]["p_value"]}
    assert found == json.loads(json.dumps({"kind": PROMPT_KIND, "task": "disgust", "prompt_set": "affect", **again}))
    f1 = [f1_score(x["y_true"], x["y_pred"], labels=labels, average="macro", zero_division=0) for x in (a, b)]
    assert found["f1_macro_difference"] == pytest.approx(f1[0] - f1[1], abs=1e-12)


def test_macro_f1_difference_is_paired_and_matches_sklearn():
    labels = ["x", "y", "z"]
    truth = ["x"] * 10 + ["y"] * 10 + ["z"] * 10
    good = frame("good", [True] * 30).assign(y_true=truth, y_pred=truth)
    bad = good.assign(scenario="bad", y_pred=["x"] * 30)  # always "x"
    out = compare(good, bad, labels=labels)
    expected = 1.0 - f1_score(truth, ["x"] * 30, labels=labels, average="macro", zero_division=0)
    assert out["f1_macro_a"] == 1.0 and out["f1_macro_difference"] == pytest.approx(expected)
    lo, hi = out["f1_macro_ci"]
    assert 0 < lo <= expected <= hi <= 1
    assert compare(good, good.assign(scenario="same"), labels=labels)["f1_macro_ci"] == [0.0, 0.0]
    with pytest.raises(UserError, match="true classes differ"):
        compare(good, bad.assign(y_true=list(reversed(truth))), labels=labels)
