"""Prompts bound to a label space: the study's exact wording, ensembles, bad template files."""

from __future__ import annotations

import json

import pytest

from dirti_bench.errors import UserError
from dirti_bench.labels import build_label_space, check_consistency
from dirti_bench.prompts import load_ensemble, study_prompts

STUDY_CATEGORIES = ["food", "animals", "body products", "injuries/infections", "death", "hygiene"]


@pytest.fixture(scope="module")
def spaces(demo_stimuli):
    return {
        "category": build_label_space(demo_stimuli, "category"),
        "disgust": build_label_space(demo_stimuli, "disgust"),
        "disgust-keep": build_label_space(demo_stimuli, "disgust", empty="keep"),
        "binary": build_label_space(demo_stimuli, "disgust-binary"),
    }


def test_study_category_wording_is_exact(spaces):
    prompts = study_prompts(spaces["category"])
    assert prompts.all_prompts() == [f"This is a photo of {c}" for c in STUDY_CATEGORIES]
    assert prompts.all_prompts()[0] == "This is a photo of food"
    assert list(prompts.classes) == spaces["category"].names


def test_study_disgust_wording_single_spaced_and_in_space_order(spaces):
    space = spaces["disgust-keep"]
    prompts = study_prompts(space)
    assert prompts.all_prompts() == ([f"This is a photo of {c}" for c in STUDY_CATEGORIES]
                                     + [f"This is a disgusting photo of {c}" for c in STUDY_CATEGORIES])
    assert "This is a disgusting photo of food" in prompts.all_prompts()
    assert all("  " not in p and p == p.strip() for p in prompts.all_prompts())  # the study had "a  photo"
    check_consistency(space, prompts.classes)
    # Prompt i carries class i's wording.
    for cls, (prompt,) in zip(space.classes, prompts.prompts, strict=True):
        assert prompt.endswith(cls.category) and ("disgusting" in prompt) == cls.disgusting


def test_dropped_class_has_no_prompt(spaces):
    prompts = study_prompts(spaces["disgust"])
    assert "This is a disgusting photo of animals" not in prompts.all_prompts()
    assert len(prompts.all_prompts()) == len(spaces["disgust"]) == 11
    check_consistency(spaces["disgust"], prompts.classes)


def test_binary_study_prompts(spaces):
    assert study_prompts(spaces["binary"]).all_prompts() == ["This is a photo", "This is a disgusting photo"]


def test_clip80_is_the_papers_80_templates():
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    ens = load_ensemble("clip80")
    assert len(ens.templates) == 80 == len(set(ens.templates))
    # The same list, in the same order, as open_clip's copy of the CLIP paper's templates.
    assert list(ens.templates) == [t("{c}") for t in OPENAI_IMAGENET_TEMPLATES]


@pytest.mark.parametrize("name", ["clip80", "affect"])
def test_shipped_ensembles_bind_in_space_order(spaces, name):
    ens = load_ensemble(name)
    space = spaces["disgust"]
    bound = ens.bind(space)
    assert list(bound.classes) == space.names
    for cls, group in zip(space.classes, bound.prompts, strict=True):
        assert list(group) == [t.replace("{c}", cls.phrase) for t in ens.templates]
    assert bound.class_of_prompt() == [i for i in range(len(space)) for _ in ens.templates]
    assert len(bound.all_prompts()) == len(space) * len(ens.templates)


def test_per_class_mapping_binds_in_space_order_whatever_the_file_order(spaces, tmp_path):
    space = spaces["category"]
    mapping = {c: [f"a photo of {c}, number {i}", f"{c}!"] for i, c in enumerate(reversed(space.names))}
    path = tmp_path / "cupl.json"
    path.write_text(json.dumps(mapping))
    bound = load_ensemble(path).bind(space)
    assert list(bound.classes) == space.names
    assert [group[1] for group in bound.prompts] == [f"{c}!" for c in space.names]
    check_consistency(space, bound.classes)


def test_per_class_mapping_may_cover_a_dropped_class(spaces, tmp_path):
    space = spaces["disgust"]
    path = tmp_path / "cupl.json"
    path.write_text(json.dumps({n: [f"{n}."] for n in [*space.names, "disgusting animals"]}))
    assert load_ensemble(path).bind(space).all_prompts() == [f"{n}." for n in space.names]


def test_wrapper_object_form(tmp_path, spaces):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"name": "mine", "source": "test", "templates": ["{c} here", "a {c}"]}))
    ens = load_ensemble(path)
    assert ens.name == "mine"
    assert ens.bind(spaces["category"]).prompts[0] == ("food here", "a food")


@pytest.mark.parametrize("content, problem", [
    ("[]", "template list is empty"),
    ('["a photo of {c}", "a photo"]', "'a photo' has no {c} placeholder"),
    ('["a photo of {c}", 3]', "entry 3 is not a non-empty string"),
    ("{}", "mapping is empty"),
    ('{"food": []}', "class 'food' needs a non-empty list"),
    ('{"food": ["ok", ""]}', "class 'food' has a prompt that is not a non-empty string"),
    ('{"name": "x", "templates": []}', "template list is empty"),
    ("42", "expected a JSON list of templates"),
    ('["a photo of {c}",', "not valid JSON"),
    ("", "not valid JSON"),
])
def test_bad_template_files(tmp_path, content, problem):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(UserError, match=problem) as err:
        load_ensemble(path)
    assert str(err.value).startswith(f"bad template file {path}: ")


@pytest.mark.parametrize("content, line, problem", [
    ('[\n  "a photo of {c}",\n  "a {0} photo of {c}"\n]', 3,
     r"template 'a \{0\} photo of \{c\}' has the field \{0\}; \{c\} \(the class name\) is the only field a "
     r"template may hold: replace \{0\} by \{c\} or remove it"),
    ('["a photo of {c}", "{name}: a photo of {c}"]', 1, r"has the field \{name\}"),
    ('["a photo of {c} }"]', 1, r"has the field \}"),
    ('{"food": ["a photo of food",\n "a photo of {c}"]}', 2,
     r"prompt 'a photo of \{c\}' has the field \{c\}; prompts given per class or per rating end are used as "
     r"written: remove the braces"),
    ('{"rating": "fear_mean_all", "high": ["a {} photo"], "low": ["a photo"]}', 1, r"has the field \{\}"),
])
def test_a_brace_field_other_than_the_placeholder_is_refused_naming_its_line(tmp_path, content, line, problem):
    """str.format fields ({0}, {name}) were copied into the prompt as written: a typo encoded silently."""
    path = tmp_path / "braces.json"
    path.write_text(content)
    with pytest.raises(UserError, match=problem) as err:
        load_ensemble(path)
    assert str(err.value).startswith(f"bad template file {path}: line {line}: ")


def test_the_shipped_ensembles_hold_only_the_placeholder():
    for name in ("clip80", "affect"):
        assert load_ensemble(name).templates


def test_unknown_and_missing_classes_in_a_mapping(tmp_path, spaces):
    space = spaces["category"]
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({**{c: [c] for c in space.names}, "fruit": ["a fruit"]}))
    with pytest.raises(UserError, match=rf"{unknown} names classes \['fruit'\] that are not in"):
        load_ensemble(unknown).bind(space)
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps({c: [c] for c in space.names[:-1]}))
    with pytest.raises(UserError, match=rf"{missing} has no prompts for classes \['hygiene'\]"):
        load_ensemble(missing).bind(space)


def test_missing_template_file(tmp_path):
    with pytest.raises(UserError, match="template file .*nope.json not found.*clip80"):
        load_ensemble(tmp_path / "nope.json")
