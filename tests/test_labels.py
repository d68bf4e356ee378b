"""Label-space invariants (hypothesis) and the consistency check that catches the study's mistakes."""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dirti_bench.data.dirti import DIRTI_CATEGORIES
from dirti_bench.data.stimuli import DISGUST_RATING, StimulusSet
from dirti_bench.errors import LabelConsistencyError, UserError
from dirti_bench.labels import build_label_space, check_consistency
from helpers import stimulus_set

PLAIN = list(DIRTI_CATEGORIES)
DISGUSTING = [f"disgusting {c}" for c in DIRTI_CATEGORIES]
# The documented class order of each task, before empty classes are dropped.
FULL_ORDER = {"category": PLAIN, "disgust": PLAIN + DISGUSTING, "disgust-binary": ["not disgusting", "disgusting"]}


def make_set(items: list[tuple[str, float]], name: str = "constructed") -> StimulusSet:
    """Stimuli from (category, disgust rating) pairs; no files needed for labelling."""
    return stimulus_set([c for c, _ in items], [{DISGUST_RATING: r, "fear_mean_all": 10 - r} for _, r in items],
                        DIRTI_CATEGORIES, name=name, first_id=1001)


def expected_class(task: str, category: str, rating: float, threshold: float) -> str:
    """The rule written out independently: disgusting iff rating >= threshold."""
    if task == "category":
        return category
    if task == "disgust":
        return f"disgusting {category}" if rating >= threshold else category
    return "disgusting" if rating >= threshold else "not disgusting"


ratings = st.floats(min_value=1.0, max_value=9.0, allow_nan=False)
items = st.lists(st.tuples(st.sampled_from(DIRTI_CATEGORIES), ratings), min_size=2, max_size=40)
tasks = st.sampled_from(list(FULL_ORDER))
thresholds = st.one_of(st.floats(min_value=1.0, max_value=9.0), st.just("mean+1sd"))


@settings(max_examples=150, deadline=None)
@given(items=items, task=tasks, threshold=thresholds, policy=st.sampled_from(["drop", "keep"]))
def test_every_stimulus_gets_exactly_one_class_by_the_rule(items, task, threshold, policy):
    stimuli = make_set(items)
    space = build_label_space(stimuli, task, threshold=threshold, empty=policy)
    values = [r for _, r in items]
    thr = (statistics.mean(values) + statistics.stdev(values)) if threshold == "mean+1sd" else threshold
    if task != "category":
        assert space.threshold == pytest.approx(thr, rel=1e-12, abs=1e-12)
        thr = space.threshold  # decide boundary cases with the exact value used
    # One id per stimulus, in set order, inside the space.
    assert space.stimulus_ids == tuple(s.id for s in stimuli)
    assert space.y_true.shape == (len(items),)
    assert space.y_true.dtype.kind == "i"
    assert ((space.y_true >= 0) & (space.y_true < len(space))).all()
    # The id names exactly the class the rule gives.
    wanted = [expected_class(task, c, r, thr) for c, r in items]
    assert space.decode(space.y_true) == wanted
    # Class order is the documented order, restricted to present classes under 'drop'.
    present = set(wanted)
    if policy == "drop":
        assert space.names == [n for n in FULL_ORDER[task] if n in present]
        assert list(space.dropped) == [n for n in FULL_ORDER[task] if n not in present]
        assert min(space.support().values()) >= 1
    else:
        assert space.names == FULL_ORDER[task]
        assert space.dropped == ()
        assert all(space.support()[n] == 0 for n in FULL_ORDER[task] if n not in present)
    assert sum(space.support().values()) == len(items)
    # Prompts written from the space pass the consistency check with its own truth.
    check_consistency(space, space.names, space.y_true, space.y_true)


@settings(max_examples=50, deadline=None)
@given(items=items, task=tasks)
def test_same_inputs_same_space(items, task):
    a = build_label_space(make_set(items), task, threshold="mean+1sd")
    b = build_label_space(make_set(list(items)), task, threshold="mean+1sd")
    assert a.names == b.names and a.dropped == b.dropped
    assert np.array_equal(a.y_true, b.y_true)


def test_rating_equal_to_the_threshold_is_disgusting():
    space = build_label_space(make_set([("food", 5.0), ("food", 4.999), ("death", 5.001)]), "disgust")
    assert space.decode(space.y_true) == ["disgusting food", "food", "disgusting death"]
    assert space.threshold == 5.0 and space.threshold_rule == "fixed"


def test_mean_plus_one_sd_is_computed_from_the_data():
    # Ratings 1..5: mean 3, sample SD sqrt(2.5) -> threshold 4.5811...; only 5 reaches it.
    space = build_label_space(make_set([("hygiene", float(r)) for r in range(1, 6)]), "disgust-binary",
                              threshold="mean+1sd")
    assert space.threshold == pytest.approx(3 + 2.5 ** 0.5)
    assert space.threshold_rule == "mean+1sd"
    assert space.y_true.tolist() == [0, 0, 0, 0, 1]


def test_another_rating_column_can_define_disgust():
    # fear = 10 - disgust, so the classes flip.
    space = build_label_space(make_set([("food", 2.0), ("food", 8.0)]), "disgust", rating="fear_mean_all")
    assert space.decode(space.y_true) == ["disgusting food", "food"]


def test_the_sets_disgust_column_is_the_default_rating():
    base = make_set([("food", 2.0), ("food", 8.0)])
    fear_first = StimulusSet("fear", base.root, base.stimuli, base.categories, base.rating_columns,
                             disgust_column="fear_mean_all")
    assert build_label_space(base, "disgust").decode([0, 1]) == ["food", "disgusting food"]
    space = build_label_space(fear_first, "disgust")
    assert space.decode(space.y_true) == ["disgusting food", "food"]


def test_demo_empty_class_policies(demo_stimuli):
    dropped = build_label_space(demo_stimuli, "disgust")
    assert dropped.dropped == ("disgusting animals",)
    assert len(dropped) == 11 and "disgusting animals" not in dropped.names
    kept = build_label_space(demo_stimuli, "disgust", empty="keep")
    assert kept.names == PLAIN + DISGUSTING
    assert kept.support()["disgusting animals"] == 0
    assert kept.options()["empty_class_policy"] == "keep"


@pytest.mark.parametrize("kwargs, problem", [
    ({"task": "emotion"}, "unknown task 'emotion'"),
    ({"task": "disgust", "empty": "ignore"}, "empty-class policy 'ignore'"),
    ({"task": "disgust", "threshold": "median"}, "threshold 'median'"),
    ({"task": "disgust", "threshold": "nan"}, "threshold 'nan'"),
    ({"task": "disgust", "threshold": float("inf")}, "threshold inf"),
    ({"task": "disgust", "rating": "val_mean_all"}, "rating column 'val_mean_all'"),
])
def test_bad_options_are_user_errors(kwargs, problem):
    with pytest.raises(UserError, match=problem):
        build_label_space(make_set([("food", 2.0), ("death", 7.0)]), **kwargs)


def test_a_missing_rating_value_is_an_error_not_a_class():
    stimuli = make_set([("food", 2.0), ("death", 7.0)])
    holed = stimuli.stimuli[0].__class__(**{**stimuli.stimuli[0].__dict__, "ratings": {DISGUST_RATING: 2.0}})
    stimuli = StimulusSet("holed", Path("."), (holed, stimuli.stimuli[1]), DIRTI_CATEGORIES,
                          stimuli.rating_columns)
    with pytest.raises(UserError, match=r"have no 'fear_mean_all' rating \(ids \['1001'\]\)"):
        build_label_space(stimuli, "disgust", rating="fear_mean_all")


def test_mean_plus_one_sd_needs_two_ratings():
    with pytest.raises(UserError, match="at least 2"):
        build_label_space(make_set([("food", 2.0)]), "disgust", threshold="mean+1sd")


# ---------------------------------------------------------------- check_consistency

@pytest.fixture
def disgust_space():
    items = [(c, r) for c in DIRTI_CATEGORIES for r in (2.0, 7.0)]
    return build_label_space(make_set(items), "disgust")


def test_the_studys_prompt_order_is_caught(disgust_space):
    # The study built prompts [disgusting x 6, plain x 6] against truth [plain x 6, disgusting x 6].
    with pytest.raises(LabelConsistencyError, match="position 0 is 'disgusting food' in the prompts but 'food'"):
        check_consistency(disgust_space, DISGUSTING + PLAIN)


def test_two_swapped_prompts_are_caught(disgust_space):
    names = disgust_space.names
    swapped = names[:3] + [names[4], names[3]] + names[5:]
    with pytest.raises(LabelConsistencyError, match="position 3"):
        check_consistency(disgust_space, swapped)


def test_missing_unknown_and_repeated_classes(disgust_space):
    names = disgust_space.names
    with pytest.raises(LabelConsistencyError, match=r"missing prompts for \['disgusting hygiene'\]"):
        check_consistency(disgust_space, names[:-1])
    with pytest.raises(LabelConsistencyError, match=r"unknown classes \['fruit'\]"):
        check_consistency(disgust_space, [*names, "fruit"])
    with pytest.raises(LabelConsistencyError, match=r"\['food'\] more than once"):
        check_consistency(disgust_space, [*names, "food"])


@pytest.mark.parametrize("which", ["y_true", "y_pred"])
@pytest.mark.parametrize("ids, problem", [([0, 12], r"ids \[12\] outside"), ([-1, 3], r"ids \[-1\] outside"),
                                          (np.array([0.0, 1.0]), "float64 values")])
def test_ids_outside_the_space(disgust_space, which, ids, problem):
    with pytest.raises(LabelConsistencyError, match=problem) as err:
        check_consistency(disgust_space, disgust_space.names, **{which: ids})
    assert str(err.value).startswith(f"{which} holds")


def test_unknown_class_name_lookup(disgust_space):
    assert disgust_space.index("disgusting death") == 10
    with pytest.raises(LabelConsistencyError, match="'fruit' is not in the disgust label space"):
        disgust_space.index("fruit")
