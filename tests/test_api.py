"""The Python API: a cheap import, evaluate() in memory writing nothing but cache entries, typed
Results whose frames are the output contract's CSVs, run()/load_results() round trips, and the
encoder seam for a model object."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

import dirti_bench as db
from dirti_bench.errors import UserError

BASELINE = ["zeroshot-baseline"]


def files_under(root) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_importing_the_package_loads_neither_torch_nor_the_api():
    code = ("import sys, dirti_bench as db\n"
            "heavy = [m for m in ('torch', 'open_clip', 'sklearn', 'dirti_bench.api') if m in sys.modules]\n"
            "assert not heavy, heavy\n"
            "assert callable(db.evaluate) and 'dirti_bench.api' in sys.modules\n"
            "print(sorted(n for n in ('evaluate', 'run', 'load_results', 'list_scenarios', 'Scenario', 'KnnCvOptions',"
            " 'UserError', 'Results') if n in dir(db)))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(sorted(["evaluate", "run", "load_results", "list_scenarios", "Scenario",
                                              "KnnCvOptions", "UserError", "Results"]))


def test_the_public_names_are_the_library_objects():
    from dirti_bench.contracts import KnnCvOptions, Scenario
    from dirti_bench.errors import UserError as Error

    assert db.Scenario is Scenario and db.KnnCvOptions is KnnCvOptions and db.UserError is Error
    assert issubclass(db.UserError, ValueError)
    assert [s.id for s in db.list_scenarios()][:3] == ["zeroshot-baseline", "zeroshot-disgust",
                                                        "zeroshot-disgust-binary"]
    with pytest.raises(AttributeError, match="no attribute 'evaluat'"):
        db.evaluat  # noqa: B018


@pytest.mark.parametrize("cache", [True, False])
def test_evaluate_returns_results_and_writes_only_cache_entries(tmp_path, monkeypatch, cache):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    before = files_under(tmp_path)
    r = db.evaluate(data="demo", model="dirti-tiny", pretrained="random", scenarios=["zeroshot-*"], cache=cache)
    new = files_under(tmp_path) - before
    allowed = ("home/demo/", "home/embeddings/") if cache else ("home/demo/",)
    assert new and all(path.startswith(allowed) for path in new), sorted(p for p in new if not p.startswith(allowed))
    assert not any(path.endswith(("results.json", ".csv", ".html", ".md")) and not path.startswith("home/demo/")
                   for path in new)
    assert not any(cwd.iterdir())
    assert set(r.scenarios) == {"zeroshot-baseline", "zeroshot-disgust", "zeroshot-disgust-binary"}
    metrics = r.metrics_frame()
    assert list(metrics.columns[:7]) == ["model", "pretrained", "weights_sha256", "scenario", "task", "metric", "value"]
    accuracy = metrics.set_index(["scenario", "metric"])["value"]
    assert accuracy["zeroshot-baseline", "accuracy"] == r["zeroshot-baseline"].metrics["accuracy"]
    assert r.run.model == "dirti-tiny" and r.run.smoke_run and r.run.dataset == "dirti-demo-seed0"


def test_results_are_typed_and_recompute_from_their_predictions(demo_master):
    from sklearn.metrics import accuracy_score

    r = db.evaluate(data=demo_master, model="dirti-tiny", pretrained="random",
                    scenarios=[*BASELINE, "align-disgust-zeroshot"])
    outcome = r["zeroshot-baseline"]
    assert isinstance(outcome, db.ScenarioOutcome) and isinstance(r.run, db.RunInfo)
    assert outcome.flags == tuple(r.document["scenarios"]["zeroshot-baseline"].get("flags", ()))
    low, high = outcome.ci["accuracy"]
    assert low <= outcome.metrics["accuracy"] <= high
    rows = outcome.predictions
    assert len(rows) == outcome.n and set(rows["scenario"]) == {"zeroshot-baseline"}
    assert accuracy_score(rows["y_true"], rows["y_pred"]) == pytest.approx(outcome.metrics["accuracy"])
    assert set(r.alignment_frame()["scenario"]) == {"align-disgust-zeroshot"}
    assert not r["align-disgust-zeroshot"].is_classification
    with pytest.raises(KeyError, match="no scenario 'knn-cv10-baseline'"):
        r["knn-cv10-baseline"]


def test_run_writes_the_contract_and_load_results_reads_the_same_frames(tmp_path, demo_master):
    scenarios = [*BASELINE, "align-disgust-zeroshot"]
    in_memory = db.evaluate(data=demo_master, model="dirti-tiny", pretrained="random", scenarios=scenarios)
    written = db.run(data=demo_master, model="dirti-tiny", pretrained="random", scenarios=scenarios,
                     out=tmp_path / "out", report=False)
    assert (tmp_path / "out" / "results.json").is_file() and (tmp_path / "out" / "predictions.csv.gz").is_file()
    loaded = db.load_results(tmp_path / "out")
    for frame in ("predictions_frame", "alignment_frame", "prompts_frame", "metrics_frame"):
        pd.testing.assert_frame_equal(getattr(in_memory, frame)(), getattr(loaded, frame)(), check_dtype=False,
                                      obj=frame)
        pd.testing.assert_frame_equal(getattr(written, frame)(), getattr(loaded, frame)(), obj=frame)
    assert in_memory["zeroshot-baseline"].metrics == loaded["zeroshot-baseline"].metrics
    assert in_memory.layer_scores_frame().empty and loaded.layer_predictions_frame().empty  # no layer scenario
    assert loaded.run.details["evaluation_workers"] == 0  # 300 stimuli: every scenario in this process


@pytest.mark.slow  # heavy: two layer-wise runs with both controls; CI runs it (pytest -m slow)
def test_layer_options_give_the_layer_frames_in_memory_and_as_written(tmp_path, demo_master):
    from scipy.stats import pearsonr

    options = dict(layers="all", layer_mode="token", controls=["pixels", "random-init"])
    in_memory = db.evaluate(data=demo_master, model="dirti-tiny", pretrained="random",
                            scenarios="align-disgust-probe", **options)
    assert {"layers-disgust", "pixels-disgust", "random-init-disgust"} <= set(in_memory.scenarios)
    db.run(data=demo_master, model="dirti-tiny", pretrained="random", scenarios="align-disgust-probe",
           out=tmp_path / "out", report=False, **options)
    loaded = db.load_results(tmp_path / "out")
    for frame, csv in (("layer_scores_frame", "layer_scores.csv"), ("layer_predictions_frame", "layer_predictions.csv"),
                       ("layer_rsa_frame", "layer_rsa.csv"), ("layer_class_scores_frame", "layer_class_scores.csv"),
                       ("layer_class_predictions_frame", "layer_class_predictions.csv")):
        from_csv = pd.read_csv(tmp_path / "out" / csv)
        assert not from_csv.empty, csv
        pd.testing.assert_frame_equal(getattr(in_memory, frame)(), from_csv, check_dtype=False, obj=frame)
        pd.testing.assert_frame_equal(getattr(loaded, frame)(), from_csv, obj=frame)
    scores, predictions = in_memory.layer_scores_frame(), in_memory.layer_predictions_frame()
    own = scores[scores.scenario == "layers-disgust"]
    assert list(own.layer) == ["block01", "block02", "pooled"]
    assert set(scores.scenario) == {"layers-disgust", "pixels-disgust", "random-init-disgust"}
    for row in own.itertuples():  # each per-layer r recomputes from the tidy predictions
        part = predictions[(predictions.scenario == row.scenario) & (predictions.layer == row.layer)
                           & (predictions.kind == "cv")]
        assert pearsonr(part.rating, part.prediction).statistic == pytest.approx(row.pearson_r, abs=1e-9)
    superlative = in_memory["layers-disgust"].extra["layer_choice"]["superlative"]["layer"]
    assert own.loc[own.pearson_r.idxmax(), "layer"] == superlative
    class_scores = in_memory.layer_class_scores_frame()  # the classifiers per layer and their controls
    assert {"linear-probe-layers-baseline", "knn-layers-baseline", "linear-probe-pixels-baseline",
            "linear-probe-random-init-baseline"} <= set(class_scores.scenario)


def test_options_are_run_config_settings_checked_like_the_flags(demo_master):
    with pytest.raises(UserError, match="unknown option 'fold'") as exc:
        db.evaluate(data=demo_master, model="dirti-tiny", pretrained="random", fold=5)
    assert exc.value.option == "fold"
    with pytest.raises(UserError, match="option n_raters=1 must be an integer >= 2"):
        db.evaluate(data=demo_master, model="dirti-tiny", pretrained="random", n_raters=1)
    with pytest.raises(UserError, match="unknown scenario 'nope'"):
        db.evaluate(data=demo_master, model="dirti-tiny", pretrained="random", scenarios="nope")
    with pytest.raises(UserError, match="no results.json"):
        db.load_results(demo_master)


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_a_model_object_is_encoded_like_the_same_model_by_name(demo_master):
    """The encoder seam: dirti-tiny built by the caller with the seed a run uses gives the same
    weights hash and the same predictions as naming it (the caller's preprocess: decode 'full')."""
    import open_clip
    import torch

    import dirti_bench.encoding  # noqa: F401  (registers dirti-tiny with open_clip)

    by_name = db.evaluate(data=demo_master, model="dirti-tiny", pretrained="random", scenarios=BASELINE,
                          decode="full", cache=False)
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("dirti-tiny")
    model.eval()
    by_object = db.evaluate(data=demo_master, model=model, preprocess=preprocess,
                            tokenizer=open_clip.get_tokenizer("dirti-tiny"), name="my-tiny", scenarios=BASELINE)
    assert by_object.run.model == "my-tiny" and not by_object.run.smoke_run
    assert by_object.run.weights_sha256 == by_name.run.weights_sha256
    pd.testing.assert_frame_equal(by_object.predictions_frame(), by_name.predictions_frame())
    with pytest.raises(UserError, match="has no encode_image"):
        db.evaluate(data=demo_master, model=object(), preprocess=preprocess, tokenizer=len)
    with pytest.raises(UserError, match="preprocess None is not callable"):
        db.evaluate(data=demo_master, model=model, tokenizer=len)


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_the_done_when_one_liner_runs_and_writes_nothing(tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    code = ("import dirti_bench as db; r = db.evaluate(data='demo', model='dirti-tiny', pretrained='random', "
            "scenarios=['zeroshot-*']); print(r.metrics_frame())")
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "dirti-tiny" in proc.stdout and "random" in proc.stdout and "rows x" in proc.stdout  # pandas' frame
    assert not any(cwd.iterdir())
