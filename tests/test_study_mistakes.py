"""The original study's mistakes (see reports/study.md), fed to our checks: each one is caught."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from sklearn.metrics import classification_report, precision_recall_fscore_support

from dirti_bench.contracts import Scenario
from dirti_bench.errors import LabelConsistencyError
from dirti_bench.evaluators.common import classification_result
from dirti_bench.evaluators.consistency import check_result
from dirti_bench.evaluators.metrics import classification_metrics
from dirti_bench.labels import LabelClass, LabelSpace, build_label_space, check_consistency

CATEGORIES = ["food", "animals", "body products", "injuries/infections", "death", "hygiene"]
# A confusion matrix (rows true, columns predicted) consistent with the study's CLIP baseline table:
# 50 images per class, TP = printed "precision" x 50, column sums = printed "support" (52 64 15 79 16 74).
STUDY_CONFUSION = np.array([
    [40, 0, 0, 0, 0, 10],
    [0, 37, 0, 13, 0, 0],
    [0, 18, 1, 0, 0, 31],
    [0, 0, 6, 44, 0, 0],
    [12, 7, 0, 22, 9, 0],
    [0, 2, 8, 0, 7, 33],
])
PRINTED = {  # class: (precision, recall, support) as the study printed them
    "food": (0.80, 0.77, 52), "animals": (0.74, 0.58, 64), "body products": (0.02, 0.07, 15),
    "injuries/infections": (0.88, 0.56, 79), "death": (0.18, 0.56, 16), "hygiene": (0.66, 0.45, 74),
}


def study_predictions() -> tuple[list[str], list[str]]:
    y_true, y_pred = [], []
    for i, row in enumerate(STUDY_CONFUSION):
        for j, count in enumerate(row):
            y_true += [CATEGORIES[i]] * int(count)
            y_pred += [CATEGORIES[j]] * int(count)
    return y_true, y_pred


def category_space(n_per_class: int = 50) -> LabelSpace:
    y = np.repeat(np.arange(6), n_per_class)
    return LabelSpace("category", tuple(LabelClass(c, c, category=c) for c in CATEGORIES), (),
                      tuple(f"s{i}" for i in range(len(y))), y)


def study_result():
    y_true, y_pred = study_predictions()
    space = category_space()
    ids = np.array([CATEGORIES.index(c) for c in y_true]), np.array([CATEGORIES.index(c) for c in y_pred])
    sc = Scenario("zeroshot-baseline", "category", "zeroshot")
    return space, classification_result(sc, space, CATEGORIES, space.stimulus_ids, *ids, np.ones(len(y_true)))


def test_confusion_reproduces_the_printed_study_table():
    """Sanity of the fixture: the swapped call prints exactly the study's table."""
    y_true, y_pred = study_predictions()
    swapped = classification_report(y_pred, y_true, labels=CATEGORIES, output_dict=True, zero_division=0)
    for name, (precision, recall, support) in PRINTED.items():
        assert round(swapped[name]["precision"], 2) == precision
        assert round(swapped[name]["recall"], 2) == recall
        assert swapped[name]["support"] == support


def test_our_metrics_put_truth_first():
    """Re-derived in STUDY.md: accuracy 164/300, true macro precision 0.498, macro recall 0.547."""
    y_true, y_pred = study_predictions()
    scored = classification_metrics(y_true, y_pred, CATEGORIES)
    assert scored["metrics"]["accuracy"] == pytest.approx(164 / 300)
    assert scored["metrics"]["precision_macro"] == pytest.approx(0.498, abs=0.002)
    assert scored["metrics"]["recall_macro"] == pytest.approx(0.547, abs=0.001)
    assert [scored["per_class"][c]["support"] for c in CATEGORIES] == [50] * 6  # true counts
    p_swapped, r_swapped, _, s_swapped = precision_recall_fscore_support(
        y_pred, y_true, labels=CATEGORIES, zero_division=0)
    ours_p = [scored["per_class"][c]["precision"] for c in CATEGORIES]
    ours_r = [scored["per_class"][c]["recall"] for c in CATEGORIES]
    assert ours_p == pytest.approx(r_swapped) and ours_r == pytest.approx(p_swapped)
    assert not np.allclose(ours_p, p_swapped)
    assert s_swapped.tolist() == [52, 64, 15, 79, 16, 74]


def test_a_swapped_report_is_caught():
    space, result = study_result()
    check_result(result, space, CATEGORIES)  # the correct report passes
    y_true, y_pred = study_predictions()
    p, r, f, s = precision_recall_fscore_support(y_pred, y_true, labels=CATEGORIES, zero_division=0)
    swapped = {c: {"precision": p[i], "recall": r[i], "f1": f[i], "support": int(s[i])}
               for i, c in enumerate(CATEGORIES)}
    with pytest.raises(LabelConsistencyError, match="support .* is not the true count"):
        check_result(dataclasses.replace(result, per_class=swapped), space, CATEGORIES)


def test_a_transposed_confusion_matrix_is_caught():
    space, result = study_result()
    transposed = np.asarray(result.confusion).T.tolist()
    with pytest.raises(LabelConsistencyError, match="rows true, columns predicted"):
        check_result(dataclasses.replace(result, confusion=transposed), space, CATEGORIES)


def test_inverted_twelve_prompt_order_is_caught(demo_stimuli):
    space = build_label_space(demo_stimuli, "disgust", empty="keep")
    assert len(space) == 12
    plain = [c.name for c in space.classes if not c.disgusting]
    disgusting = [c.name for c in space.classes if c.disgusting]
    assert space.names == plain + disgusting  # the truth order
    study_order = disgusting + plain
    with pytest.raises(LabelConsistencyError, match="ordered differently"):
        check_consistency(space, study_order)
    sc = Scenario("zeroshot-disgust", "disgust", "zeroshot", {"empty_class_policy": "keep"})
    y = space.y_true
    with pytest.raises(LabelConsistencyError, match="ordered differently"):
        classification_result(sc, space, study_order, space.stimulus_ids, y, y, np.ones(len(y)))
    result = classification_result(sc, space, space.names, space.stimulus_ids, y, y, np.ones(len(y)))
    with pytest.raises(LabelConsistencyError, match="ordered differently"):
        check_result(result, space, study_order)


def test_a_class_missing_from_the_report_is_caught():
    space, result = study_result()
    per_class = {c: v for c, v in result.per_class.items() if c != "death"}
    with pytest.raises(LabelConsistencyError, match="per-class report lists"):
        check_result(dataclasses.replace(result, per_class=per_class), space, CATEGORIES)
    # a class silently removed from the labels (not listed as dropped) is caught too
    fewer = [c for c in CATEGORIES if c != "death"]
    with pytest.raises(LabelConsistencyError, match="do not cover"):
        check_result(dataclasses.replace(result, labels=fewer), space)


@pytest.mark.filterwarnings("error")
def test_classes_absent_from_a_test_split_stay_in_the_report():
    """The study's KNN test split lacked two classes and they vanished; labels= keeps them."""
    y_true = ["food"] * 3 + ["animals"] * 3
    y_pred = ["food", "food", "animals", "animals", "animals", "death"]
    scored = classification_metrics(y_true, y_pred, CATEGORIES)
    assert list(scored["per_class"]) == CATEGORIES
    assert scored["per_class"]["hygiene"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert np.asarray(scored["confusion"]).shape == (6, 6)


def test_predictions_outside_the_space_are_caught():
    space, result = study_result()
    preds = result.predictions.copy()
    preds.loc[0, "y_pred"] = "disgusting food"
    with pytest.raises(LabelConsistencyError, match="outside the label space"):
        check_result(dataclasses.replace(result, predictions=preds), space, CATEGORIES)
