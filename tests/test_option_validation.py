"""One validation mechanism (scikit-learn's test_check_param_validation pattern): for every option of
every evaluator, every RunConfig field and every sidecar key, invalid values are generated from the
constraint objects the field declares, and each is refused with a UserError naming the setting,
however the object is built."""

from __future__ import annotations

import dataclasses
import json

import pytest

from dirti_bench.constraints import Interval, ListOf, StrOptions, field_constraints
from dirti_bench.contracts import KnnCvOptions, Scenario, evaluators
from dirti_bench.data.ratedset import SIDECAR_SCHEMA, read_spec
from dirti_bench.errors import UserError
from dirti_bench.pipeline import RunConfig


def invalid_values(constraints) -> list:
    """Values each constraint offers as invalid that no constraint of the setting accepts."""
    candidates = [value for c in constraints for value in c.invalid_examples()]
    return [v for v in candidates if not any(c.accepts(v) for c in constraints)]


def task_of(evaluator: str) -> str:
    return "alignment" if evaluator.startswith("align") else "disgust"


OPTION_CASES = [pytest.param(name, option, bad, id=f"{name}-{option}-{bad!r}")
                for name, spec in evaluators().items()
                for option, constraints in field_constraints(spec.options).items()
                for bad in invalid_values(constraints)]
RUN_CASES = [pytest.param(option, bad, id=f"{option}-{bad!r}")
             for option, constraints in field_constraints(RunConfig).items() for bad in invalid_values(constraints)]


def test_every_setting_declares_constraints_and_has_an_invalid_value():
    classes = [spec.options for spec in evaluators().values()] + [RunConfig]
    for cls in classes:
        for option, constraints in field_constraints(cls).items():
            assert constraints, f"{cls.__name__}.{option} has no constraints"
            assert invalid_values(constraints), f"{cls.__name__}.{option}: no invalid value to test"


def test_the_generator_finds_what_it_must():
    bad = invalid_values((Interval(int, 1),))
    assert 0 in bad and True in bad and 2.5 in bad and not any(type(v) is int and v >= 1 for v in bad)
    assert "no-such-choice" in invalid_values((StrOptions(("a", "b")),))
    assert [] in invalid_values((ListOf((Interval(int),), min_len=1),))


def _names_the_option(exc: pytest.ExceptionInfo, option: str) -> None:
    assert exc.value.option == option and f"option {option}=" in str(exc.value), str(exc.value)


@pytest.mark.parametrize(("evaluator", "option", "bad"), OPTION_CASES)
def test_every_invalid_option_value_is_refused_however_the_options_are_built(evaluator, option, bad):
    cls = evaluators()[evaluator].options
    with pytest.raises(UserError) as exc:
        cls(**{option: bad})
    _names_the_option(exc, option)
    with pytest.raises(UserError) as exc:
        dataclasses.replace(cls(), **{option: bad})
    _names_the_option(exc, option)
    with pytest.raises(UserError) as exc:
        Scenario("s", task_of(evaluator), evaluator, {option: bad})
    _names_the_option(exc, option)
    assert str(exc.value).startswith("scenario s: ")
    with pytest.raises(UserError) as exc:
        Scenario("s", task_of(evaluator), evaluator).with_options(**{option: bad})
    _names_the_option(exc, option)


def test_the_issue_example_is_refused():
    with pytest.raises(UserError, match="option k=-3 must be an integer >= 1"):
        KnnCvOptions(k=-3, folds=1, tie_break="bogus")
    with pytest.raises(UserError, match="option tie_break='bogus'"):
        Scenario("s", "category", "knn-cv", KnnCvOptions(k=3)).with_options(tie_break="bogus")


@pytest.mark.parametrize(("option", "bad"), RUN_CASES)
def test_every_invalid_run_config_value_is_refused(option, bad):
    with pytest.raises(UserError) as exc:
        RunConfig(**{option: bad})
    _names_the_option(exc, option)
    with pytest.raises(UserError) as exc:
        dataclasses.replace(RunConfig(), **{option: bad})
    _names_the_option(exc, option)


SIDECAR = {"images": "img", "ratings": "ratings.csv", "file_column": "file", "category_column": "group"}
def _json_can_hold(value) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):  # object(), NaN: no sidecar can hold them
        return False
    return True


SIDECAR_CASES = [pytest.param(key, bad, id=f"{key}-{bad!r}")
                 for key, constraints in SIDECAR_SCHEMA.items() for bad in invalid_values(constraints)
                 if _json_can_hold(bad)]


def test_every_sidecar_key_has_invalid_values_to_test():
    assert {key for key, _ in (c.values for c in SIDECAR_CASES)} == set(SIDECAR_SCHEMA)


@pytest.mark.parametrize(("key", "bad"), SIDECAR_CASES)
def test_every_invalid_sidecar_value_is_refused_naming_file_and_key(tmp_path, key, bad):
    (tmp_path / "dirti-bench.json").write_text(json.dumps({**SIDECAR, key: bad}))
    with pytest.raises(UserError) as exc:
        read_spec(tmp_path)
    assert str(exc.value).startswith(f"{tmp_path / 'dirti-bench.json'}: {key!r} must be "), str(exc.value)
