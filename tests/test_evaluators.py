"""Every evaluator against exactly known answers: constructed features and the known-answer encoder."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import softmax
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict, train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from dirti_bench.contracts import Scenario
from dirti_bench.errors import ScenarioNotRunnable, UserError
from dirti_bench.evaluators import knn, probe, zeroshot
from dirti_bench.evaluators.consistency import check_result
from dirti_bench.evaluators.metrics import (
    accuracy_from_confusion,
    bootstrap_ci,
    confusion_stack,
    draw_counts,
    macro_f1_from_confusion,
    resampled_confusions,
    stratified_draws,
)
from dirti_bench.evaluators.penalty import TunedLogisticRegression
from dirti_bench.labels import LabelSpace, build_label_space
from dirti_bench.prompts import PromptSet, study_prompts
from helpers import label_space
from known_answer import KnownAnswerEncoder, one_hot

CATEGORIES = ("food", "animals", "body products", "injuries/infections", "death", "hygiene")


def separable(space: LabelSpace, noise: float = 0.01, seed: int = 0) -> np.ndarray:
    """One-hot of the true class plus small noise: any sane classifier is perfect."""
    rng = np.random.default_rng(seed)
    dim = max(len(space), 2)
    return np.stack([one_hot(int(y), dim) for y in space.y_true]) + noise * rng.standard_normal((len(space.y_true), dim))


@dataclass
class ConstructedCtx:
    """The EvalContext interface over a hand-built space and features."""

    space: LabelSpace
    features: np.ndarray
    encoder: object = None
    seed: int = 0

    def label_space(self, scenario):
        return self.space

    def features_for(self, space):
        row = {sid: i for i, sid in enumerate(self.space.stimulus_ids)}
        return self.features[[row[s] for s in space.stimulus_ids]]


def scenario(evaluator: str, **options) -> Scenario:
    return Scenario(f"test-{evaluator}", "category", evaluator, options)


BALANCED = dict.fromkeys(CATEGORIES, 10)


# ---------------------------------------------------------------- zero-shot

def text_encoder(prompts: PromptSet, dim: int, invert: bool = False) -> KnownAnswerEncoder:
    """Each prompt -> one-hot of its class (or of class n-1-i: the study's label-mapping mistake)."""
    n = len(prompts.classes)
    owner = {p: (n - 1 - i if invert else i) for i, group in enumerate(prompts.prompts) for p in group}
    return KnownAnswerEncoder({}, lambda t: one_hot(owner[t], dim))


@pytest.mark.parametrize("task", ["category", "disgust", "disgust-binary"])
def test_zeroshot_oracle_is_perfect(demo_stimuli, task):
    space = build_label_space(demo_stimuli, task)
    features = separable(space, noise=0.0)
    sc = Scenario("zs", task, "zeroshot", {"logit_scale": 100.0})
    ctx = ConstructedCtx(space, features, text_encoder(study_prompts(space), features.shape[1]))
    result = zeroshot.evaluate(sc, ctx)
    assert result.metrics["accuracy"] == 1.0 and result.metrics["f1_macro"] == 1.0
    assert np.array_equal(np.diag(result.confusion), np.bincount(space.y_true))
    assert {k: result.ci[k] for k in ("accuracy", "f1_macro")} == {"accuracy": [1.0, 1.0], "f1_macro": [1.0, 1.0]}
    # a perfect, confident oracle is perfectly calibrated in every draw
    assert result.ci["ece"] == [0.0, 0.0] and result.ci["brier"][1] < 1e-12
    check_result(result, space, study_prompts(space).classes)


def test_zeroshot_inverted_prompt_mapping_scores_zero():
    space = label_space(BALANCED)
    features = separable(space, noise=0.0)
    ctx = ConstructedCtx(space, features, text_encoder(study_prompts(space), 6, invert=True))
    result = zeroshot.evaluate(scenario("zeroshot"), ctx)
    assert result.metrics["accuracy"] == 0.0
    # class i is always predicted as class 5 - i: the anti-diagonal holds all 10 per class
    assert np.array_equal(np.fliplr(np.asarray(result.confusion)), 10 * np.eye(6, dtype=int))


def test_ensemble_class_embedding_is_mean_of_normalised_prompts():
    prompts = PromptSet("t", ("a", "b"), (("a1", "a2", "a3"), ("b1",)))
    vectors = {"a1": [5.0, 0, 0], "a2": [3.0, 0, 0], "a3": [0, 0.5, 0], "b1": [0, 0, 2.0]}
    encoder = KnownAnswerEncoder({}, lambda t: np.array(vectors[t]))
    emb = zeroshot.class_embeddings(encoder, prompts)
    # normalised prompts (1,0,0), (1,0,0), (0,1,0): mean (2/3, 1/3, 0), re-normalised (2, 1, 0)/sqrt(5)
    np.testing.assert_allclose(emb[0], np.array([2, 1, 0]) / np.sqrt(5), rtol=1e-6)
    np.testing.assert_allclose(emb[1], [0, 0, 1], rtol=1e-6)


def test_ensemble_scenario_with_oracle_is_perfect():
    space = label_space(BALANCED)
    sc = scenario("zeroshot", ensemble="clip80", logit_scale=100.0)
    prompts = zeroshot.prompts_for(sc, space)
    assert len(prompts.all_prompts()) == 6 * len(prompts.prompts[0]) > 6
    result = zeroshot.evaluate(sc, ConstructedCtx(space, separable(space, 0.0), text_encoder(prompts, 6)))
    assert result.metrics["accuracy"] == 1.0
    assert result.options["n_prompts"] == len(prompts.all_prompts())


# ---------------------------------------------------------------- KNN / probe

@pytest.mark.filterwarnings("error")
def test_knn_split_on_separable_features_matches_sklearn_split():
    space = label_space(BALANCED)
    result = knn.evaluate_split(scenario("knn-split", k=6, test_size=0.3, split_seed=42),
                                ConstructedCtx(space, separable(space)))
    _, test = train_test_split(np.arange(60), test_size=0.3, random_state=42, stratify=space.y_true)
    assert sorted(result.predictions["stimulus"]) == sorted(space.stimulus_ids[i] for i in test)
    assert result.n == 18 and result.metrics["accuracy"] == 1.0
    assert [result.per_class[c]["support"] for c in CATEGORIES] == [3] * 6
    assert result.options["n_train"] == 42 and result.options["k_effective"] == 6
    check_result(result, space)


@pytest.mark.filterwarnings("error")
def test_knn_k_larger_than_training_set_is_capped_and_recorded():
    space = label_space(BALANCED)
    result = knn.evaluate_split(scenario("knn-split", k=1000, split_seed=42), ConstructedCtx(space, separable(space)))
    # k = all 42 training stimuli, 7 per class: every vote ties, scikit-learn picks the first class
    assert result.options["k_effective"] == 42 and result.options["k_capped"] is True
    assert set(result.predictions["y_pred"]) == {"food"}
    assert result.metrics["accuracy"] == pytest.approx(1 / 6)


@pytest.mark.filterwarnings("error")
def test_knn_cv_per_fold_and_pooled_predictions():
    space = label_space(BALANCED)
    result = knn.evaluate_cv(scenario("knn-cv", k=6, folds=10, split_seed=42), ConstructedCtx(space, separable(space)))
    assert result.n == 60 and result.metrics["accuracy"] == 1.0
    assert result.folds["n_splits"] == 10 and result.options["folds_effective"] == 10
    assert [f["accuracy"] for f in result.folds["per_fold"]] == [1.0] * 10
    assert result.folds["mean"]["accuracy"] == 1.0 and result.folds["sd"]["accuracy"] == 0.0
    # the fold column is StratifiedKFold's own assignment
    expected = np.empty(60, int)
    for fold, (_, test) in enumerate(StratifiedKFold(10, shuffle=True, random_state=42).split(np.zeros(60), space.y_true)):
        expected[test] = fold
    got = dict(zip(result.predictions["stimulus"], result.predictions["fold"], strict=True))
    assert [got[s] for s in space.stimulus_ids] == expected.tolist()


@pytest.mark.filterwarnings("error")
def test_knn_cv_per_fold_metrics_recomputed_with_sklearn():
    space = label_space(BALANCED)
    features = separable(space, noise=0.8, seed=3)  # overlapping classes: folds differ
    result = knn.evaluate_cv(scenario("knn-cv", k=6, folds=5, split_seed=1), ConstructedCtx(space, features))
    pred = result.predictions
    per_fold = [accuracy_score(g["y_true"], g["y_pred"]) for _, g in pred.groupby("fold")]
    f1s = [f1_score(g["y_true"], g["y_pred"], labels=list(CATEGORIES), average="macro", zero_division=0)
           for _, g in pred.groupby("fold")]
    assert [f["accuracy"] for f in result.folds["per_fold"]] == pytest.approx(per_fold)
    assert [f["f1_macro"] for f in result.folds["per_fold"]] == pytest.approx(f1s)
    assert result.folds["mean"]["accuracy"] == pytest.approx(np.mean(per_fold))
    assert result.folds["sd"]["accuracy"] == pytest.approx(np.std(per_fold, ddof=1))
    assert result.metrics["accuracy"] == pytest.approx(accuracy_score(pred["y_true"], pred["y_pred"]))
    assert 0 < result.metrics["accuracy"] < 1


@pytest.mark.filterwarnings("error")
def test_knn_cv_caps_k_to_smallest_training_fold():
    space = label_space(BALANCED)
    result = knn.evaluate_cv(scenario("knn-cv", k=500, folds=10, split_seed=42), ConstructedCtx(space, separable(space)))
    assert result.options["k_effective"] == 54 and result.options["k_capped"] is True
    assert [f["accuracy"] for f in result.folds["per_fold"]] == pytest.approx([1 / 6] * 10)


@pytest.mark.filterwarnings("error")
def test_reduce_folds_drops_singletons_and_lowers_folds():
    space = label_space({"a": 10, "b": 4, "c": 1})
    result = knn.evaluate_cv(scenario("knn-cv", k=3, folds=10, small_class_policy="reduce-folds"),
                             ConstructedCtx(space, separable(space)))
    assert result.labels == ["a", "b"] and result.dropped_classes == ["c"]
    assert "fewer than 2" in result.options["dropped_reasons"]["c"]
    assert result.options["folds_effective"] == 4 and result.folds["n_splits"] == 4
    assert result.n == 14 and "s014" not in set(result.predictions["stimulus"])
    check_result(result, space)


@pytest.mark.filterwarnings("error")
def test_drop_policy_removes_classes_smaller_than_folds():
    space = label_space({"a": 10, "b": 6, "c": 4})
    result = probe.evaluate_cv(scenario("linear-probe-cv", folds=5, small_class_policy="drop"),
                               ConstructedCtx(space, separable(space)))
    assert result.labels == ["a", "b"] and result.dropped_classes == ["c"]
    assert "fewer than 5" in result.options["dropped_reasons"]["c"]
    assert result.options["folds_effective"] == 5 and result.metrics["accuracy"] == 1.0


def test_small_class_errors_are_user_errors():
    space = label_space({"a": 10, "b": 3})
    ctx = ConstructedCtx(space, separable(space))
    with pytest.raises(ScenarioNotRunnable, match="fewer than 2 category classes have 5 or more examples"):
        knn.evaluate_cv(scenario("knn-cv", folds=5, small_class_policy="drop"), ctx)
    with pytest.raises(UserError, match="small_class_policy='sometimes' must be one of 'reduce-folds', 'drop'"):
        knn.evaluate_cv(scenario("knn-cv", small_class_policy="sometimes"), ctx)
    tiny = label_space({"a": 2, "b": 2, "c": 2})
    with pytest.raises(ScenarioNotRunnable, match="cannot hold all 3 classes"):
        knn.evaluate_split(scenario("knn-split", test_size=0.3), ConstructedCtx(tiny, separable(tiny)))


@pytest.mark.filterwarnings("error")
def test_split_applies_the_small_class_policy():
    space = label_space({"a": 12, "b": 12, "c": 1})
    result = knn.evaluate_split(scenario("knn-split", k=3), ConstructedCtx(space, separable(space)))
    assert result.labels == ["a", "b"] and result.dropped_classes == ["c"]


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
@pytest.mark.filterwarnings("error")
def test_probe_cv_separable_and_constant_features():
    space = label_space(BALANCED)
    perfect = probe.evaluate_cv(scenario("linear-probe-cv", folds=10), ConstructedCtx(space, separable(space)))
    assert perfect.metrics["accuracy"] == 1.0 and perfect.folds["sd"]["f1_macro"] == 0.0
    # constant features: only the intercept learns, so the 2:1 majority class is always predicted
    skewed = label_space({"a": 12, "b": 6})
    flat = probe.evaluate_cv(scenario("linear-probe-cv", folds=3), ConstructedCtx(skewed, np.ones((18, 4))))
    assert flat.metrics["accuracy"] == pytest.approx(2 / 3)
    assert flat.per_class["a"]["recall"] == 1.0 and flat.per_class["b"]["recall"] == 0.0


def test_pipeline_scales_inside_the_model():
    """The study fitted StandardScaler separately on train and test; here it is a pipeline step."""
    for factory in (knn.knn_factory(scenario("knn-cv", k=3)), probe.probe_factory(scenario("linear-probe-cv"))):
        model, _ = factory(30)
        assert isinstance(model, Pipeline) and isinstance(model.steps[0][1], StandardScaler)


def test_same_inputs_same_metrics():
    space = label_space(BALANCED)
    features = separable(space, noise=0.8, seed=5)
    runs = [knn.evaluate_cv(scenario("knn-cv", k=6, folds=10), ConstructedCtx(space, features)) for _ in range(2)]
    assert runs[0].metrics == runs[1].metrics and runs[0].ci == runs[1].ci and runs[0].folds == runs[1].folds


# ---------------------------------------------------------------- bootstrap

@settings(max_examples=80, deadline=None)
@given(n_labels=st.integers(1, 12), n=st.integers(1, 80), seed=st.integers(0, 2**32 - 1))
def test_vectorised_scores_equal_sklearn(n_labels, n, seed):
    rng = np.random.default_rng(seed)
    labels = [f"c{i}" for i in range(n_labels)]
    y_true, y_pred = rng.integers(0, n_labels, n), rng.integers(0, n_labels, n)
    draws = rng.integers(0, n, size=(3, n))
    cm = confusion_stack(y_true[draws], y_pred[draws], n_labels)
    # The draw-count product gives the same integers (what bootstrap_ci and score_rows use).
    np.testing.assert_array_equal(resampled_confusions(draw_counts(draws, n), y_true, y_pred, n_labels)[0], cm)
    names = np.array(labels)
    for b, draw in enumerate(draws):
        t, p = names[y_true[draw]], names[y_pred[draw]]
        assert accuracy_from_confusion(cm)[b] == pytest.approx(accuracy_score(t, p))
        assert macro_f1_from_confusion(cm)[b] == pytest.approx(
            f1_score(t, p, labels=labels, average="macro", zero_division=0))


@pytest.mark.filterwarnings("ignore:A single label was found")  # scikit-learn's note on a 1-label space
@settings(max_examples=60, deadline=None)
@given(n_labels=st.integers(1, 10), n=st.integers(1, 70), seed=st.integers(0, 2**32 - 1))
def test_stratified_confusions_equal_confusions_of_the_stratified_draws(n_labels, n, seed):
    """bootstrap_ci's per-stratum confusion counts: the same draws from the same generator and the
    same integers as scikit-learn's confusion matrix of each drawn resample."""
    from sklearn.metrics import confusion_matrix

    from dirti_bench.evaluators.metrics import stratified_confusions

    rng = np.random.default_rng(seed)
    y_true, y_pred = rng.integers(0, n_labels, n), rng.integers(0, n_labels, n)
    draws = stratified_draws(y_true, 7, np.random.default_rng(seed))
    cm = stratified_confusions(y_true, y_pred, n_labels, 7, np.random.default_rng(seed))
    for b, draw in enumerate(draws):
        np.testing.assert_array_equal(cm[b], confusion_matrix(y_true[draw], y_pred[draw], labels=range(n_labels)))
    np.testing.assert_array_equal(cm, resampled_confusions(draw_counts(draws, n), y_true, y_pred, n_labels)[0])
    # the sweeps' counts, built stratum by stratum: the same draws, the same (float32) counts
    from dirti_bench.evaluators.metrics import stratified_draw_counts

    counts = stratified_draw_counts(y_true, 7, np.random.default_rng(seed))
    assert counts.dtype == np.float32
    np.testing.assert_array_equal(counts, draw_counts(draws, n).astype(np.float32))


def test_stratified_draws_keep_class_support():
    strata = np.array([0] * 7 + [1] * 3 + [2] * 12)
    draws = stratified_draws(strata, 200, np.random.default_rng(0))
    assert draws.shape == (200, 22)
    assert all(np.array_equal(np.bincount(strata[d], minlength=3), [7, 3, 12]) for d in draws)


def test_bootstrap_ci_known_cases():
    labels = ["a", "b", "c"]
    truth = ["a"] * 10 + ["b"] * 10 + ["c"] * 10
    assert bootstrap_ci(truth, truth, labels) == {"accuracy": [1.0, 1.0], "f1_macro": [1.0, 1.0]}
    wrong = ["b"] * 10 + ["c"] * 10 + ["a"] * 10
    assert bootstrap_ci(truth, wrong, labels) == {"accuracy": [0.0, 0.0], "f1_macro": [0.0, 0.0]}
    half = ["a", "b"] * 5 + ["b", "c"] * 5 + ["c", "a"] * 5
    ci = bootstrap_ci(truth, half, labels, seed=1)
    assert 0 < ci["accuracy"][0] < 0.5 < ci["accuracy"][1] < 1
    point_f1 = f1_score(truth, half, labels=labels, average="macro", zero_division=0)
    assert ci["f1_macro"][0] < point_f1 < ci["f1_macro"][1]
    assert bootstrap_ci(truth, half, labels, seed=1) == ci
    assert bootstrap_ci(truth, half, labels, seed=2) != ci


def test_bootstrap_ci_rejects_unknown_labels():
    with pytest.raises(ValueError, match="'z' is not among the labels"):
        bootstrap_ci(["a", "z"], ["a", "a"], ["a", "b"])


# ---------------------------------------------------------------- confidence (predictions.csv.gz)

def test_zeroshot_confidence_is_the_winning_softmax_probability():
    space = label_space(BALANCED)
    features = separable(space, noise=0.5, seed=2)
    prompts = study_prompts(space)
    encoder = text_encoder(prompts, 6)
    result = zeroshot.evaluate(scenario("zeroshot", logit_scale=10.0), ConstructedCtx(space, features, encoder))
    logits = 10.0 * features @ zeroshot.class_embeddings(encoder, prompts).T
    probabilities = softmax(logits.astype(np.float64), axis=1)
    np.testing.assert_allclose(result.predictions["confidence"], probabilities.max(axis=1), rtol=1e-6)
    assert result.predictions["y_pred"].tolist() == [CATEGORIES[i] for i in probabilities.argmax(axis=1)]
    assert result.predictions["fold"].isna().all()


@pytest.mark.filterwarnings("error")
def test_knn_confidence_is_the_vote_share_of_the_predicted_class():
    space = label_space(BALANCED)
    features = separable(space, noise=0.9, seed=4)  # overlapping classes: votes split
    result = knn.evaluate_split(scenario("knn-split", k=6, split_seed=42), ConstructedCtx(space, features))
    train, test = train_test_split(np.arange(60), test_size=0.3, random_state=42, stratify=space.y_true)
    model = Pipeline([("scale", StandardScaler()), ("knn", KNeighborsClassifier(6))]).fit(features[train],
                                                                                          space.y_true[train])
    _, neighbours = model["knn"].kneighbors(model["scale"].transform(features[np.sort(test)]))
    votes = space.y_true[train][neighbours]
    predicted = [CATEGORIES.index(c) for c in result.predictions["y_pred"]]
    shares = (votes == np.array(predicted)[:, None]).mean(axis=1)
    np.testing.assert_allclose(result.predictions["confidence"], shares)
    assert set(np.round(shares * 6).astype(int)) <= set(range(1, 7)) and shares.min() < 1


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("c", [1.0, "tuned"])
def test_probe_confidence_is_the_out_of_fold_probability_of_the_predicted_class(c):
    space = label_space(BALANCED)
    features = separable(space, noise=0.9, seed=5)
    result = probe.evaluate_cv(scenario("linear-probe-cv", folds=5, split_seed=3, C=c), ConstructedCtx(space, features))
    # a fixed C, or the tuned one (chosen inside each training fold, seeded by split_seed)
    classifier = (LogisticRegression(C=c, solver="newton-cg", max_iter=1000) if c != "tuned"
                  else TunedLogisticRegression(random_state=3))
    model = Pipeline([("scale", StandardScaler()), ("lr", classifier)])
    proba = cross_val_predict(model, features, space.y_true, method="predict_proba",
                              cv=StratifiedKFold(5, shuffle=True, random_state=3))
    np.testing.assert_allclose(result.predictions["confidence"], proba.max(axis=1), rtol=1e-6)
    assert result.predictions["y_pred"].tolist() == [CATEGORIES[i] for i in proba.argmax(axis=1)]
    # and the predictions are the estimator's own predict
    again = cross_val_predict(model, features, space.y_true, cv=StratifiedKFold(5, shuffle=True, random_state=3))
    assert result.predictions["y_pred"].tolist() == [CATEGORIES[i] for i in again]
    # one fit per fold: the tuned C of each fold is recorded
    assert ("penalty" in result.extra) == (c == "tuned")
    if c == "tuned":
        assert len(result.extra["penalty"]["per_fold"]) == 5
    assert result.predictions["fold"].tolist() == result.predictions["fold"].astype(int).tolist()


def test_knn_searches_neighbours_once_per_fold_and_predicts_as_scikit_learn(monkeypatch):
    """Prediction, vote shares and the tied-vote count of one fold share one neighbour search (also
    across the refitted clone tied_votes makes), with scikit-learn's own predictions and shares."""
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from dirti_bench.evaluators import knn

    rng = np.random.default_rng(3)
    x_train, x_test = rng.standard_normal((200, 16)), rng.standard_normal((60, 16))
    y_train = rng.choice(["a", "b", "c"], 200)
    reference = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=6)).fit(x_train, y_train)
    expected, shares = reference.predict(x_test), reference.predict_proba(x_test)
    searches = []
    search = KNeighborsClassifier.kneighbors
    monkeypatch.setattr(KNeighborsClassifier, "kneighbors",
                        lambda self, *a, **k: searches.append(1) or search(self, *a, **k))
    model = make_pipeline(StandardScaler(), knn.ReusedNeighboursKNN(n_neighbors=6))
    fitted = model.fit(x_train, y_train)
    assert np.array_equal(fitted.predict(x_test), expected)
    assert np.array_equal(fitted.predict_proba(x_test), shares)
    ties = knn.tied_votes(model, x_train, y_train, x_test)
    assert len(searches) == 1
    votes = shares * 6
    assert ties == int(((votes == votes.max(axis=1, keepdims=True)).sum(axis=1) > 1).sum()) > 0


@pytest.mark.parametrize("tie_break", ["lowest-id", "nearest"])
def test_knn_split_counts_the_tied_votes_of_the_model_that_predicted_from_one_search(monkeypatch, tie_break):
    """With duplicated training rows (tied distances, so the neighbours depend on the training rows'
    order) the split's tied-vote count is that of the model that made its predictions: scikit-learn's
    KNN fitted on the holdout's training rows in the split's own order. One neighbour search serves
    the predictions, their vote shares and the count."""
    space = label_space(BALANCED)
    y = space.y_true
    rng = np.random.default_rng(0)
    points = rng.standard_normal((8, 4))
    features = points[(y + rng.integers(0, 3, len(y))) % 8]  # 60 rows, 8 distinct, shared across classes
    split = scenario("knn-split", k=6, tie_break=tie_break)
    knn._RECENT_NEIGHBOURS.clear()
    searches = []
    search = KNeighborsClassifier.kneighbors
    monkeypatch.setattr(KNeighborsClassifier, "kneighbors",
                        lambda self, *a, **k: searches.append(1) or search(self, *a, **k))
    result = knn.evaluate_split(split, ConstructedCtx(space, features))
    assert len(searches) == 1
    monkeypatch.undo()
    train, test = train_test_split(np.arange(len(y)), test_size=split.options.test_size,
                                   random_state=split.options.split_seed, stratify=y)
    test = np.sort(test)
    assert result.predictions["stimulus"].tolist() == [space.stimulus_ids[i] for i in test]
    reference = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=6)).fit(features[train], y[train])
    votes = reference.predict_proba(features[test]) * 6
    tied = (votes == votes.max(axis=1, keepdims=True)).sum(axis=1) > 1
    assert result.options["tied_votes"] == int(tied.sum()) > 0
    assert result.options["tied_votes_share"] == pytest.approx(tied.mean())
    if tie_break == "lowest-id":  # the recount's model predicts what the result saved
        names = np.array(space.names, dtype=object)
        assert np.array_equal(names[reference.predict(features[test])], result.predictions["y_pred"].to_numpy())


def test_tuned_probe_folds_in_worker_processes_give_the_same_results(monkeypatch):
    """DIRTI_BENCH_JOBS runs the tuned probes' outer folds in worker processes; every fold is fitted
    independently from its own data and seed, so every number is the same as in one process."""
    from dirti_bench.errors import UserError
    from dirti_bench.evaluators.alignment import cv_predictions
    from dirti_bench.evaluators.common import JOBS_ENV

    space = label_space(BALANCED)
    features = separable(space, noise=0.8, seed=1)
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((60, 8)), rng.uniform(1, 9, 60)
    groups = [c for c in CATEGORIES for _ in range(10)]
    runs = {}
    for jobs in ("1", "2"):
        monkeypatch.setenv(JOBS_ENV, jobs)
        result = probe.evaluate_cv(scenario("linear-probe-cv", folds=5), ConstructedCtx(space, features))
        oof, fold_of, used, selections = cv_predictions(x, y, groups, 5, 2, 0)
        runs[jobs] = (result.metrics, result.predictions.to_dict("list"), result.extra, oof.tolist(),
                      fold_of.tolist(), used, selections)
    assert runs["1"] == runs["2"]
    monkeypatch.setenv(JOBS_ENV, "two")
    with pytest.raises(UserError, match="DIRTI_BENCH_JOBS='two'"):
        cv_predictions(x, y, groups, 5, 2, 0)


def test_knn_cv_searches_each_folds_neighbours_once(monkeypatch):
    """A CV predicts every fold before counting each fold's tied votes: the tie count still reuses
    each fold's search (not only the last fold's), and gives the count of a fresh search."""
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from dirti_bench.evaluators import knn

    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((120, 8)), rng.choice(["a", "b", "c"], 120)
    folds = np.arange(120) % 4
    model = make_pipeline(StandardScaler(), knn.ReusedNeighboursKNN(n_neighbors=4))
    fresh = [knn.tied_votes(model, x[folds != f], y[folds != f], x[folds == f]) for f in range(4)]
    knn._RECENT_NEIGHBOURS.clear()
    searches = []
    search = KNeighborsClassifier.kneighbors
    monkeypatch.setattr(KNeighborsClassifier, "kneighbors",
                        lambda self, *a, **k: searches.append(1) or search(self, *a, **k))
    for f in range(4):
        model.fit(x[folds != f], y[folds != f]).predict(x[folds == f])
    assert [knn.tied_votes(model, x[folds != f], y[folds != f], x[folds == f]) for f in range(4)] == fresh
    assert len(searches) == 4


def test_fold_jobs_default_one_below_large_sets_two_from_there(monkeypatch):
    """Unset DIRTI_BENCH_JOBS: one process for small sets (a worker's start costs more than it saves),
    2 (at most the usable cores) from PARALLEL_FOLDS_FROM_ROWS rows; a set value always wins."""
    import os

    from dirti_bench.evaluators.common import JOBS_ENV, PARALLEL_FOLDS_FROM_ROWS, fold_jobs

    monkeypatch.delenv(JOBS_ENV, raising=False)
    assert fold_jobs() == fold_jobs(PARALLEL_FOLDS_FROM_ROWS - 1) == 1
    assert fold_jobs(PARALLEL_FOLDS_FROM_ROWS) == min(2, len(os.sched_getaffinity(0)))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert fold_jobs(10 * PARALLEL_FOLDS_FROM_ROWS) == 1
    monkeypatch.setenv(JOBS_ENV, "3")
    assert fold_jobs(0) == fold_jobs(10 * PARALLEL_FOLDS_FROM_ROWS) == 3


def test_knn_cv_counts_tied_votes_in_each_fold_and_in_worker_processes(monkeypatch):
    """KNN folds count their own tied votes (so they can run in worker processes): the count is a
    fresh tied_votes recount over the result's folds, and every number is the same with 2 workers."""
    from dirti_bench.evaluators.common import JOBS_ENV

    space = label_space(BALANCED)
    features = separable(space, noise=2.0, seed=3)
    runs = {}
    for jobs in ("1", "2"):
        monkeypatch.setenv(JOBS_ENV, jobs)
        result = knn.evaluate_cv(scenario("knn-cv", k=6, folds=5), ConstructedCtx(space, features))
        runs[jobs] = (result.metrics, result.ci, result.options, result.predictions.to_dict("list"))
    assert runs["1"] == runs["2"]
    fold_of = np.array(runs["1"][3]["fold"])
    x, y = features, space.y_true
    model, _ = knn.knn_factory(scenario("knn-cv", k=6, folds=5))(int((fold_of != 0).sum()))
    recount = sum(knn.tied_votes(model, x[fold_of != f], y[fold_of != f], x[fold_of == f]) for f in range(5))
    assert runs["1"][2]["tied_votes"] == recount > 0
