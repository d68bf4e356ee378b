"""Scenario options are typed and validated once; every path runs the same checked evaluation."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dirti_bench import contracts
from dirti_bench.cli import main
from dirti_bench.contracts import Encoder, EvaluatorSpec, Scenario, evaluators, register_evaluator
from dirti_bench.encoding.cache import CachedEncoder
from dirti_bench.encoding.models import ClipEncoder
from dirti_bench.errors import UserError
from dirti_bench.scenarios import REGISTRY, _by_id
from known_answer import KnownAnswerEncoder

REPO = Path(__file__).resolve().parents[1]


def test_every_evaluator_is_one_spec_with_its_own_options_class():
    specs = evaluators()
    assert list(specs) == ["zeroshot", "threshold-sweep", "template-sweep", "knn-split", "knn-cv",
                           "linear-probe-cv", "align-zeroshot", "align-probe", "align-layers", "probe-layers", "knn-layers",
                           "align-pixels",
                           "align-random-init", "probe-pixels", "probe-random-init"]
    assert all(name == spec.name for name, spec in specs.items())
    assert len({spec.options for spec in specs.values()}) == len(specs)
    for scenario in REGISTRY.values():  # each registry scenario is described from its own options
        assert scenario.summary.startswith(specs[scenario.evaluator].describe(scenario))


def test_registering_a_taken_evaluator_name_fails_and_keeps_the_first():
    spec = evaluators()["knn-cv"]
    with pytest.raises(UserError, match="evaluator 'knn-cv' is registered already"):
        register_evaluator(dataclasses.replace(spec, evaluate=lambda scenario, ctx: None))
    assert evaluators()["knn-cv"] is spec


def test_a_new_evaluator_is_one_registration(monkeypatch):
    monkeypatch.setattr(contracts, "EVALUATORS", dict(contracts.EVALUATORS))
    spec = EvaluatorSpec("knn-cv-copy", contracts.KnnCvOptions, lambda s, c: None, lambda s, c: None,
                         lambda s: f"a copy with k={s.options.k}")
    register_evaluator(spec)
    scenario = Scenario("copy", "category", "knn-cv-copy", {"k": 3})
    assert scenario.options == contracts.KnnCvOptions(k=3) and scenario.summary == "a copy with k=3"


def test_two_scenarios_with_one_id_are_an_error():
    one = Scenario("same", "category", "zeroshot")
    with pytest.raises(UserError, match="two scenarios have the id 'same'"):
        _by_id([one, Scenario("same", "disgust", "zeroshot")])


@pytest.mark.parametrize(("evaluator", "options", "message"), [
    ("knn-cv", {"fold": 5}, "scenario s: unknown option 'fold'; KnnCvOptions takes"),
    ("knn-cv", {"folds": "10"}, "scenario s: option folds='10' must be an integer >= 2"),
    ("knn-cv", {"folds": 2.5}, "option folds=2.5 must be an integer"),
    ("knn-cv", {"k": True}, "option k=True must be an integer"),
    ("knn-cv", {"folds": 1}, "option folds=1 must be an integer >= 2"),
    ("knn-split", {"test_size": 1.5}, r"option test_size=1.5 must be a number in \(0, 1\)"),
    ("knn-cv", {"small_class_policy": "sometimes"}, "small_class_policy='sometimes' must be one of 'reduce-folds', 'drop'"),
    ("zeroshot", {"threshold": "median"}, r"scenario s: option threshold='median' must be a finite number or 'mean\+1sd'"),
    ("zeroshot", {"logit_scale": "100"}, "option logit_scale='100' must be a number >= 0"),
    ("zeroshot", {"logit_scale": -1.0}, "option logit_scale=-1.0 must be a number >= 0"),
    ("zeroshot", {"scoring": "clip"}, "option scoring='clip' must be one of 'model', 'study'"),
    ("align-zeroshot", {"prompt_pair": 3}, "option prompt_pair=3 must be a non-empty string or a mapping"),
    ("align-probe", {"n_raters": 1}, "option n_raters=1 must be an integer >= 2"),
])
def test_unknown_or_ill_typed_options_name_the_scenario_and_key(evaluator, options, message):
    task = "alignment" if evaluator.startswith("align") else "disgust"
    with pytest.raises(UserError, match=message):
        Scenario("s", task, evaluator, options)


def test_options_are_coerced_and_defaults_are_defined_once():
    sc = Scenario("s", "disgust", "zeroshot", {"logit_scale": 50, "threshold": "Mean + 1SD"})
    assert sc.options.logit_scale == 50.0 and isinstance(sc.options.logit_scale, float)
    assert sc.options.threshold == "mean+1sd"
    assert Scenario("t", "disgust", "zeroshot", {"threshold": "4.5"}).options.threshold == 4.5
    with pytest.raises(dataclasses.FrozenInstanceError):
        sc.options.logit_scale = 1.0
    # Registry scenarios take every default from contracts; only the study's k differs per task.
    for scenario in REGISTRY.values():
        opts = scenario.options
        if hasattr(opts, "split_seed"):
            assert opts.split_seed == contracts.DEFAULT_SPLIT_SEED, scenario.id
        if hasattr(opts, "logit_scale"):  # the scoring rule's own scale unless a scenario fixes one
            assert opts.logit_scale is None, scenario.id
    # Only the study-replica scenarios score as the study did; everything else follows the model.
    study = {s.id for s in REGISTRY.values() if getattr(s.options, "scoring", None) == "study"}
    assert study == {"zeroshot-baseline", "zeroshot-disgust"}
    assert REGISTRY["knn-cv10-baseline"].options.k == 6 and REGISTRY["knn-cv10-disgust"].options.k == 12


def test_with_options_validates_like_construction():
    sc = REGISTRY["align-disgust-probe"]
    assert sc.with_options(n_raters=40).options.n_raters == 40 and sc.options.n_raters == 30
    with pytest.raises(UserError, match="unknown option 'raters'"):
        sc.with_options(raters=40)


def test_bad_task_or_evaluator_is_refused():
    with pytest.raises(UserError, match="unknown evaluator 'svm'"):
        Scenario("s", "category", "svm")
    with pytest.raises(UserError, match="unknown task 'emotion'"):
        Scenario("s", "emotion", "zeroshot")


def test_the_encoders_provide_the_encoder_protocol(tmp_path):
    clip = ClipEncoder("dirti-tiny", "random", device="cpu", progress=False)
    for encoder in (clip, CachedEncoder(clip, tmp_path), KnownAnswerEncoder({}, lambda t: None)):
        assert isinstance(encoder, Encoder)


def test_the_cli_checks_every_result_before_writing(tmp_path, capsys, monkeypatch):
    """A result whose labels disagree with its label space stops the run: exit 3, nothing written."""
    spec = evaluators()["zeroshot"]

    def mislabelled(scenario, ctx):
        result = spec.evaluate(scenario, ctx)
        result.per_class = dict(reversed(list(result.per_class.items())))
        return result

    monkeypatch.setitem(contracts.EVALUATORS, "zeroshot", dataclasses.replace(spec, evaluate=mislabelled))
    out = tmp_path / "out"
    code = main(["run", "--demo", "--no-progress", "--out", str(out), "--scenarios", "zeroshot-baseline"])
    err = capsys.readouterr().err
    assert code == 3 and "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and err.rstrip().endswith(errors[0])
    assert errors[0].startswith("error: internal check failed, nothing was written: scenario zeroshot-baseline:")
    assert not out.exists()


def test_the_cli_checks_alignment_numbers_against_their_predictions(tmp_path, capsys, monkeypatch):
    spec = evaluators()["align-probe"]

    def inflated(scenario, ctx):
        result = spec.evaluate(scenario, ctx)
        result.metrics["spearman_rho"] += 0.1
        return result

    monkeypatch.setitem(contracts.EVALUATORS, "align-probe", dataclasses.replace(spec, evaluate=inflated))
    code = main(["run", "--demo", "--no-progress", "--out", str(tmp_path / "o"), "--scenarios", "align-disgust-probe"])
    assert code == 3 and "spearman_rho is" in capsys.readouterr().err


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_cli_and_pytest_benchmarks_write_the_same_results(tmp_path, capsys):
    """One evaluation path: the same scenarios give identical results.json scenarios and comparisons."""
    scenarios = ["zeroshot-baseline", "zeroshot-disgust", "align-disgust-zeroshot"]
    cli_out = tmp_path / "cli"
    assert main(["run", "--demo", "--no-progress", "--out", str(cli_out), "--scenarios", *scenarios]) == 0
    bench_out = tmp_path / "bench"
    env = {**os.environ, "DIRTI_BENCH_RESULTS_DIR": str(bench_out), "DIRTI_BENCH_DEVICE": "cpu"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--benchmark-disable",
                           *(f"benchmarks/test_scenarios.py::test_scenario[{sid}]" for sid in scenarios)],
                          cwd=REPO, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    cli, bench = (json.loads((d / "results.json").read_text()) for d in (cli_out, bench_out))
    assert sorted(bench["scenarios"]) == sorted(scenarios)
    assert bench["scenarios"] == cli["scenarios"]
    assert bench["comparisons"] == cli["comparisons"]
    assert bench["run"]["dataset_sha256"] == cli["run"]["dataset_sha256"]
    assert (bench_out / "report.html").is_file() and (cli_out / "report.html").is_file()


