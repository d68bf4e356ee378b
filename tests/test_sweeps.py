"""Template and threshold sweeps and KNN's tied votes, against known answers (constructed
features, the known-answer encoder) and scikit-learn."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from dirti_bench.contracts import EvalContext, Scenario
from dirti_bench.errors import LabelConsistencyError, UserError
from dirti_bench.evaluators import knn, zeroshot
from dirti_bench.evaluators.consistency import check_sweep
from dirti_bench.evaluators.metrics import bootstrap_ci, score_rows
from dirti_bench.evaluators.sweeps import ENSEMBLE_POINT, STUDY_POINT
from dirti_bench.pipeline import evaluate_scenario
from helpers import stimulus_set, write_json
from known_answer import KnownAnswerEncoder, one_hot

CATS = ["cat-a", "cat-b", "cat-c"]


def sklearn_scores(rows, labels) -> dict:
    t, p = rows["y_true"].tolist(), rows["y_pred"].tolist()
    return {"accuracy": accuracy_score(t, p), "balanced_accuracy": balanced_accuracy_score(t, p),
            "f1_macro": f1_score(t, p, labels=labels, average="macro", zero_division=0)}


def assert_points_recompute(result) -> None:
    """Every sweep point's numbers follow from its own rows of the sweep predictions (scikit-learn)."""
    preds = result.sweep_predictions
    assert [p["point"] for p in result.sweep] == list(dict.fromkeys(preds["point"]))
    for point in result.sweep:
        rows = preds[preds["point"] == point["point"]]
        assert len(rows) == point["n"] and point["n_classes"] == len(point["labels"])
        for name, value in sklearn_scores(rows, point["labels"]).items():
            assert point["metrics"][name] == pytest.approx(value, abs=1e-12), (point["point"], name)
            low, high = point["ci"][name]
            assert low <= high


# ---------------------------------------------------------------- scoring many classifiers at once

@pytest.mark.parametrize("seed", [0, 3])
def test_score_rows_equal_sklearn_and_bootstrap_ci(seed):
    rng = np.random.default_rng(seed)
    labels = [f"c{i}" for i in range(5)]
    true = rng.integers(0, 5, 40)
    rows = rng.integers(0, 5, (7, 40))
    rows[0] = true  # a perfect row
    rows[1, :] = 4  # a constant row (classes never predicted)
    point, ci = score_rows(true, rows, 5, seed=seed, chunk=3)
    names = np.array(labels)
    for i, row in enumerate(rows):
        t, p = names[true], names[row]
        assert point["accuracy"][i] == pytest.approx(accuracy_score(t, p))
        assert point["balanced_accuracy"][i] == pytest.approx(balanced_accuracy_score(t, p))
        assert point["f1_macro"][i] == pytest.approx(f1_score(t, p, labels=labels, average="macro", zero_division=0))
        single = bootstrap_ci(t, p, labels, seed=seed)  # the same draws as the one-scenario CI
        assert ci["accuracy"][i].tolist() == pytest.approx(single["accuracy"])
        assert ci["f1_macro"][i].tolist() == pytest.approx(single["f1_macro"])
    assert ci["accuracy"][0].tolist() == [1.0, 1.0]


# ---------------------------------------------------------------- template sweep

TEMPLATES = ["wrong {c}", "noise {c}", "right {c}", "also noise {c}"]


def known_answer_ctx(n_per_class: int = 6, noise: float = 0.0):
    """3 categories; images are the one-hot of their category; "right {c}" names its class,
    "wrong {c}" the next class, every other prompt a fixed random direction."""
    cats = [c for c in CATS for _ in range(n_per_class)]
    stimuli = stimulus_set(cats, [{"disg_mean_all": 5.0}] * len(cats), CATS)
    rng = np.random.default_rng(1)
    features = np.stack([one_hot(CATS.index(c), 8) for c in cats]) + noise * rng.standard_normal((len(cats), 8))
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    random_text: dict[str, np.ndarray] = {}

    def text(t: str) -> np.ndarray:
        for prefix, shift in (("right ", 0), ("wrong ", 1)):
            if t.startswith(prefix) and t[len(prefix):] in CATS:
                return one_hot((CATS.index(t[len(prefix):]) + shift) % len(CATS), 8)
        return random_text.setdefault(t, rng.standard_normal(8).astype(np.float32))

    encoder = KnownAnswerEncoder({}, text)
    return EvalContext(stimuli=stimuli, encoder=encoder, image_features=features.astype(np.float32))


def template_sweep(tmp_path, ctx, templates=TEMPLATES, **options):
    path = write_json(tmp_path / "mine.json", templates)
    scenario = Scenario("template-sweep-baseline-mine", "category", "template-sweep",
                        {"ensemble": str(path), **options})
    return evaluate_scenario(scenario, ctx)  # the pipeline's check runs too


def test_the_template_that_is_right_by_construction_ranks_first_and_is_chosen_on_every_fold(tmp_path):
    result = template_sweep(tmp_path, known_answer_ctx())
    points = {p["point"]: p for p in result.sweep}
    assert list(points) == [STUDY_POINT, ENSEMBLE_POINT, *TEMPLATES]
    assert points["right {c}"]["metrics"]["accuracy"] == 1.0 and points["right {c}"]["rank"]["accuracy"] == 1
    assert points["wrong {c}"]["metrics"]["accuracy"] == 0.0
    assert all(p["rank"]["accuracy"] > 1 for name, p in points.items() if name not in ("right {c}", ENSEMBLE_POINT))
    assert "rank" not in points[ENSEMBLE_POINT]
    # cross-validated selection: the right template on every training part, so the pooled
    # out-of-fold predictions (the headline) are all correct
    selection = result.extra["selection"]
    assert len(selection) == result.options["folds_effective"] == 6  # 6 stimuli per class: 6 of 10 folds
    assert {s["template"] for s in selection} == {"right {c}"}
    assert result.metrics["accuracy"] == 1.0 and result.options["selected_templates"] == ["right {c}"] * 6
    assert result.extra["in_sample_best"]["template"] == "right {c}"
    assert result.extra["n_ranked"] == len(TEMPLATES) + 1
    assert_points_recompute(result)


def test_cv_selection_is_scored_only_on_held_out_folds(tmp_path):
    """A template right on one class only and one right elsewhere: each fold's choice is the one that
    wins on its training part, and its held-out predictions (and confidences) are that template's
    (re-done with sklearn)."""
    ctx = known_answer_ctx(n_per_class=5, noise=0.9)
    result = template_sweep(tmp_path, ctx, split_seed=7, folds=5)
    preds = result.sweep_predictions
    y = ctx.label_space(Scenario("x", "category", "zeroshot")).y_true
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=7).split(np.zeros(len(y)), y)
    oof = result.predictions.set_index("stimulus")
    for fold, (train, test) in enumerate(folds):
        train_acc = {t: accuracy_score(*preds[preds.point == t][["y_true", "y_pred"]].iloc[train].T.values)
                     for t in TEMPLATES}
        best = max(TEMPLATES, key=lambda t: (train_acc[t], -TEMPLATES.index(t)))
        assert result.extra["selection"][fold]["template"] == best
        chosen = preds[preds.point == best].iloc[test].set_index("stimulus")["y_pred"]
        assert (oof.loc[chosen.index, "y_pred"] == chosen).all()
        assert (oof.loc[chosen.index, "fold"] == fold).all()
        # how sure the headline was: the chosen template's own zero-shot confidence on those images
        alone = zeroshot.evaluate(Scenario("t", "category", "zeroshot", {"template": best}), ctx)
        np.testing.assert_allclose(oof.loc[chosen.index, "confidence"],
                                   alone.predictions.set_index("stimulus").loc[chosen.index, "confidence"])


def test_a_template_point_is_the_one_template_zero_shot_scenario(tmp_path):
    ctx = known_answer_ctx(noise=0.8)
    result = template_sweep(tmp_path, ctx)
    preds = result.sweep_predictions
    for template in TEMPLATES:
        alone = zeroshot.evaluate(Scenario("t", "category", "zeroshot", {"template": template}), ctx)
        assert preds[preds.point == template]["y_pred"].tolist() == alone.predictions["y_pred"].tolist()
    study = zeroshot.evaluate(Scenario("s", "category", "zeroshot"), ctx)
    assert preds[preds.point == STUDY_POINT]["y_pred"].tolist() == study.predictions["y_pred"].tolist()


def corrupted(result, predictions=None, edit_point=None):
    """A copy of a sweep ``result`` with its predictions replaced and/or one recorded point edited."""
    copied = copy.copy(result)
    copied.sweep = copy.deepcopy(result.sweep)
    if predictions is not None:
        copied.sweep_predictions = predictions
    if edit_point is not None:
        edit_point(copied.sweep)
    return copied


def test_the_sweep_check_refuses_predictions_that_contradict_their_points(tmp_path):
    """check_sweep (run on every sweep result) recomputes each point's n, classes and accuracy from its
    own prediction rows: each contradiction below is named, the intact result passes."""
    result = template_sweep(tmp_path, known_answer_ctx(noise=0.8))
    check_sweep(result)
    preds = result.sweep_predictions
    right = preds.index[preds["point"] == "right {c}"]
    first_wrong = right[(preds.loc[right, "y_true"] != preds.loc[right, "y_pred"]).to_numpy()]
    row = right[0] if first_wrong.empty else first_wrong[0]
    other = next(c for c in CATS if c not in (preds.at[row, "y_pred"], preds.at[row, "y_true"]))
    outside = preds.copy()
    outside.loc[row, "y_pred"] = "cat-z"
    with pytest.raises(LabelConsistencyError, match=r"point 'right \{c\}' predicts classes \['cat-z'\] outside its labels"):
        check_sweep(corrupted(result, outside))
    truth = preds.copy()
    truth.loc[row, "y_true"] = "cat-y"
    with pytest.raises(LabelConsistencyError, match=r"predicts classes \['cat-y'\] outside"):
        check_sweep(corrupted(result, truth))
    flipped = preds.copy()  # a correct prediction made wrong (or a wrong one right): the accuracy moves
    flipped.loc[row, "y_pred"] = other if preds.at[row, "y_pred"] == preds.at[row, "y_true"] else preds.at[row, "y_true"]
    point = next(p for p in result.sweep if p["point"] == "right {c}")
    rows = flipped.loc[right]
    moved = float((rows["y_true"] == rows["y_pred"]).mean())
    assert moved != point["metrics"]["accuracy"]
    with pytest.raises(LabelConsistencyError, match=re.escape(
            f"'right {{c}}' records n={point['n']}, accuracy {point['metrics']['accuracy']}, but its predictions "
            f"give n={point['n']}, accuracy {moved}")):
        check_sweep(corrupted(result, flipped))
    with pytest.raises(LabelConsistencyError, match=rf"but its predictions give n={point['n'] - 1},"):
        check_sweep(corrupted(result, preds.drop(index=row)))
    with pytest.raises(LabelConsistencyError, match=r"differ from the points of its predictions \[.*'renamed'"):
        check_sweep(corrupted(result, preds.replace({"point": {"right {c}": "renamed"}})))
    with pytest.raises(LabelConsistencyError, match="differ from the points of its predictions"):
        check_sweep(corrupted(result, preds[preds["point"] != "right {c}"]))
    with pytest.raises(LabelConsistencyError, match=r"records n=\d+, accuracy .* but its predictions give"):
        check_sweep(corrupted(result, edit_point=lambda points: points[2].update(n_classes=99)))
    with pytest.raises(LabelConsistencyError, match=r"'study wording' predicts classes \['cat-a'\] outside"):
        check_sweep(corrupted(result, edit_point=lambda points: points[0].update(labels=CATS[1:])))
    missing = corrupted(result)
    missing.sweep_predictions = None
    with pytest.raises(LabelConsistencyError, match="no sweep predictions"):
        check_sweep(missing)


def test_a_per_class_file_cannot_be_swept(tmp_path):
    path = write_json(tmp_path / "cupl.json", {c: [f"right {c}"] for c in CATS})
    with pytest.raises(UserError, match="maps classes to prompts; a template sweep needs a list of templates"):
        evaluate_scenario(Scenario("sw", "category", "template-sweep", {"ensemble": str(path)}), known_answer_ctx())


# ---------------------------------------------------------------- threshold sweep

# Category A rated [2, 4, 8, 8], B [3, 6, 6.5, 4]: at 7.0 no B image is disgusting, at 3.0 no B image is plain.
RATED = {"cat-a": [2.0, 4.0, 8.0, 8.0], "cat-b": [3.0, 6.0, 6.5, 4.0]}


def threshold_ctx():
    cats = [c for c, values in RATED.items() for _ in values]
    ratings = [{"disg_mean_all": v} for values in RATED.values() for v in values]
    stimuli = stimulus_set(cats, ratings, list(RATED))
    rng = np.random.default_rng(0)
    features = rng.standard_normal((len(cats), 6)).astype(np.float32)
    encoder = KnownAnswerEncoder({}, lambda t: np.frombuffer(t.encode().ljust(24, b"x")[:24], np.uint8)[:6] + 1.0)
    return EvalContext(stimuli=stimuli, encoder=encoder, image_features=features / np.linalg.norm(features, axis=1,
                                                                                                   keepdims=True))


def test_a_threshold_that_empties_a_class_drops_and_lists_it():
    scenario = Scenario("threshold-sweep-disgust", "disgust", "threshold-sweep", {"thresholds": [3, 5, 7, "mean+1sd"]})
    result = evaluate_scenario(scenario, threshold_ctx())
    points = {p["point"]: p for p in result.sweep}
    assert list(points) == ["3.0", "5.0", "7.0", "mean+1sd"]
    assert points["7.0"]["dropped_classes"] == ["disgusting cat-b"]
    assert points["7.0"]["dropped_reasons"] == {"disgusting cat-b": "no stimulus carries this class"}
    assert points["7.0"]["class_counts"] == {"cat-a": 2, "cat-b": 4, "disgusting cat-a": 2}
    assert points["3.0"]["dropped_classes"] == ["cat-b"] and "cat-b" not in points["3.0"]["labels"]
    assert points["5.0"]["dropped_classes"] == [] and points["5.0"]["n_classes"] == 4
    every = [v for values in RATED.values() for v in values]
    assert points["mean+1sd"]["threshold"] == pytest.approx(np.mean(every) + np.std(every, ddof=1))
    assert points["mean+1sd"]["rule"] == "mean+1sd" and points["5.0"]["rule"] == "fixed"
    # the headline is the reference threshold (the study's 5.0), and equals its own point
    assert result.options["threshold"] == 5.0 and result.metrics["accuracy"] == points["5.0"]["metrics"]["accuracy"]
    assert result.ci["accuracy"] == points["5.0"]["ci"]["accuracy"]
    assert_points_recompute(result)
    # the study wording of every class any point used is in prompts.csv's rows
    assert ("disgusting cat-b", "This is a disgusting photo of cat-b") in result.prompts


@pytest.mark.parametrize(("thresholds", "problem"), [
    ([], r"thresholds=\[\] must be a non-empty list"), ([5, "median"], "must be a non-empty list of a finite number"),
    ([5, 5.0], "'mean\\+1sd', each once"), ("5", "thresholds='5' must be a non-empty list")])
def test_bad_threshold_lists_are_refused(thresholds, problem):
    with pytest.raises(UserError, match=problem):
        Scenario("s", "disgust", "threshold-sweep", {"thresholds": thresholds})


# ---------------------------------------------------------------- KNN tied votes

# 1-D training points: class 0 at 0.0 and 10.0, class 1 at 1.0 and 9.0. With k=2 every test point
# below has one neighbour of each class: a tied vote.
X_TRAIN, Y_TRAIN = np.array([[0.0], [10.0], [1.0], [9.0]]), np.array([0, 0, 1, 1])
X_TEST = np.array([[0.9], [9.2], [0.2], [9.8]])  # the nearest neighbour's class: 1, 1, 0, 0


def test_lowest_id_is_sklearns_rule_and_nearest_gives_the_tie_to_the_nearest_neighbour():
    sklearn_pred = make_pipeline(StandardScaler(), KNeighborsClassifier(2)).fit(X_TRAIN, Y_TRAIN).predict(X_TEST)
    for tie_break, expected in (("lowest-id", sklearn_pred), ("nearest", None)):
        make = knn.knn_factory(Scenario("k", "category", "knn-cv", {"k": 2, "tie_break": tie_break}))
        model, _ = make(len(X_TRAIN))
        pred = model.fit(X_TRAIN, Y_TRAIN).predict(X_TEST)
        if expected is not None:
            assert pred.tolist() == expected.tolist() == [0, 0, 0, 0]  # every tie -> the lowest id
        else:
            assert pred.tolist() == [1, 1, 0, 0]
        assert knn.tied_votes(model, X_TRAIN, Y_TRAIN, X_TEST) == 4
    clear = np.array([[0.0], [10.0]])  # k=3 never ties with 2 classes
    model, _ = knn.knn_factory(Scenario("k", "category", "knn-cv", {"k": 3}))(4)
    assert knn.tied_votes(model, X_TRAIN, Y_TRAIN, clear) == 0


def test_knn_scenarios_record_their_tied_votes():
    cats = ["a"] * 10 + ["b"] * 10
    rng = np.random.default_rng(0)
    features = np.array([[0.0 if c == "a" else 1.0] for c in cats]) + 3 * rng.standard_normal((20, 4))
    ctx = EvalContext(stimuli=stimulus_set(cats, [{}] * 20, ["a", "b"]), encoder=None, image_features=features)
    space = ctx.label_space(Scenario("knn", "category", "knn-cv"))
    for tie_break in ("lowest-id", "nearest"):
        result = knn.evaluate_cv(Scenario("knn", "category", "knn-cv", {"k": 4, "folds": 5, "tie_break": tie_break}), ctx)
        # recount: refit each fold with plain scikit-learn and count shared top votes
        expected = 0
        fold = result.predictions["fold"].to_numpy()
        for f in range(5):
            train, test = fold != f, fold == f
            model = make_pipeline(StandardScaler(), KNeighborsClassifier(4)).fit(features[train], space.y_true[train])
            proba = model.predict_proba(features[test])
            expected += int(((proba == proba.max(axis=1, keepdims=True)).sum(axis=1) > 1).sum())
        assert result.options["tied_votes"] == expected > 0
        assert result.options["tie_break"] == tie_break
        assert result.options["tied_votes_share"] == pytest.approx(expected / 20)
    with pytest.raises(UserError, match="tie_break='coin' must be one of 'lowest-id', 'nearest'"):
        Scenario("k", "category", "knn-cv", {"tie_break": "coin"})


def test_knn_scenarios_predict_with_their_tie_break_and_report_the_vote_share():
    """The evaluators' own predictions (not only the factory's model) follow the tie rule."""
    cats = ["a"] * 10 + ["b"] * 10
    rng = np.random.default_rng(0)
    features = np.array([[0.0 if c == "a" else 1.0] for c in cats]) + 3 * rng.standard_normal((20, 4))
    ctx = EvalContext(stimuli=stimulus_set(cats, [{}] * 20, ["a", "b"]), encoder=None, image_features=features)
    y = ctx.label_space(Scenario("knn", "category", "knn-cv")).y_true
    names = np.array(["a", "b"], dtype=object)
    predicted = {}
    for tie_break in ("lowest-id", "nearest"):
        result = knn.evaluate_cv(Scenario("knn", "category", "knn-cv", {"k": 4, "folds": 5, "tie_break": tie_break}), ctx)
        fold = result.predictions["fold"].to_numpy()
        for f in range(5):  # refit each fold: the rows are that fold's model's own predictions
            train, test = fold != f, fold == f
            model = make_pipeline(StandardScaler(), knn.NearestTieKNN(4) if tie_break == "nearest"
                                  else KNeighborsClassifier(4)).fit(features[train], y[train])
            rows = result.predictions[test]
            assert rows["y_pred"].tolist() == names[model.predict(features[test])].tolist()
            share = model.predict_proba(features[test])[np.arange(test.sum()), model.predict(features[test])]
            np.testing.assert_allclose(rows["confidence"].to_numpy(), share)
        predicted[tie_break] = result.predictions["y_pred"].tolist()
        split = knn.evaluate_split(Scenario("knn", "category", "knn-split", {"k": 4, "tie_break": tie_break}), ctx)
        assert split.options["tie_break"] == tie_break
    assert predicted["lowest-id"] != predicted["nearest"]  # the tied votes went different ways


def test_a_repeated_template_is_one_point(tmp_path):
    result = template_sweep(tmp_path, known_answer_ctx(), templates=[*TEMPLATES, "wrong {c}"])
    assert [p["point"] for p in result.sweep][2:] == TEMPLATES
    assert result.options["n_templates"] == len(TEMPLATES)
