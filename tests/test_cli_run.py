"""`dirti-bench run` end to end on the demo set, and its output contract."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
)

from dirti_bench.cli import main

RUN_KEYS = {"model", "pretrained", "weights_sha256", "device", "versions", "dataset", "dataset_sha256",
            "seed", "created"}
SCENARIO_KEYS = {"task", "labels", "n", "metrics", "per_class", "confusion", "dropped_classes"}
METRICS = {"accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro",
           "precision_weighted", "recall_weighted", "f1_weighted"}
FAST = ["zeroshot-*", "ensemble-*-affect"]


def run_cli(capsys, *args):
    code = main(["run", "--no-progress", "--no-report", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def demo_results(capsys, out, *args) -> dict:
    """Run the demo with ``args`` into ``out``; the run must succeed. Returns results.json."""
    code, _, err = run_cli(capsys, "--demo", "--out", str(out), *args)
    assert code == 0, err
    return json.loads((out / "results.json").read_text())


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def recompute(pred: pd.DataFrame, labels: list[str]) -> dict:
    t, p = pred["y_true"].tolist(), pred["y_pred"].tolist()
    out = {"accuracy": accuracy_score(t, p), "balanced_accuracy": balanced_accuracy_score(t, p)}
    for avg in ("macro", "weighted"):
        pr, rc, f1, _ = precision_recall_fscore_support(t, p, labels=labels, average=avg, zero_division=0)
        out |= {f"precision_{avg}": pr, f"recall_{avg}": rc, f"f1_{avg}": f1}
    return out


@pytest.fixture
def demo_run(tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, _ = run_cli(capsys, "--demo", "--out", str(out), "--scenarios", *FAST)
    assert code == 0, stdout
    return out


def test_demo_run_writes_the_output_contract(demo_run):
    doc = json.loads((demo_run / "results.json").read_text())
    assert RUN_KEYS <= set(doc["run"])
    assert doc["run"]["smoke_run"] is True and doc["run"]["model"] == "dirti-tiny"
    assert set(doc["run"]["versions"]) >= {"python", "torch", "open_clip", "sklearn"}
    assert set(doc["scenarios"]) >= {"zeroshot-baseline", "zeroshot-disgust", "zeroshot-disgust-binary",
                                     "ensemble-baseline-affect", "ensemble-disgust-affect"}
    for sid, sc in doc["scenarios"].items():
        assert SCENARIO_KEYS <= set(sc), sid
        assert set(sc["metrics"]) >= METRICS
        assert list(sc["per_class"]) == sc["labels"]
        assert len(sc["confusion"]) == len(sc["labels"]) and all(len(r) == len(sc["labels"]) for r in sc["confusion"])
    # The demo set reproduces the study's empty class: it is dropped, and said so.
    assert doc["scenarios"]["zeroshot-disgust"]["dropped_classes"] == ["disgusting animals"]
    assert "disgusting animals" not in doc["scenarios"]["zeroshot-disgust"]["labels"]


def test_every_metric_is_recomputable_from_predictions_csv(demo_run):
    doc = json.loads((demo_run / "results.json").read_text())
    preds = pd.read_csv(demo_run / "predictions.csv.gz", dtype=str, keep_default_na=False)
    assert list(preds.columns) == ["scenario", "stimulus", "file_name", "y_true", "y_pred", "confidence", "fold"]
    for sid, sc in doc["scenarios"].items():
        rows = preds[preds["scenario"] == sid]
        assert len(rows) == sc["n"] and (rows["fold"] == "").all()  # zero-shot: no fold
        again = recompute(rows, sc["labels"])
        for name, value in again.items():
            assert sc["metrics"][name] == pytest.approx(value, abs=1e-12), (sid, name)
        assert confusion_matrix(rows["y_true"], rows["y_pred"], labels=sc["labels"]).tolist() == sc["confusion"]
        support = rows["y_true"].value_counts()
        assert {c: v["support"] for c, v in sc["per_class"].items()} == {c: int(support.get(c, 0)) for c in sc["labels"]}


def _recompute_alignment(rows: pd.DataFrame) -> dict:
    """An alignment scenario's headline numbers from its alignment_predictions.csv rows alone."""
    from scipy import stats
    from sklearn.metrics import r2_score, root_mean_squared_error

    if rows["repeat"].isna().all():  # zero-shot: one row per stimulus
        return {"spearman_rho": stats.spearmanr(rows.rating, rows.score).statistic,
                "pearson_r": stats.pearsonr(rows.rating, rows.score).statistic}
    per = []
    for _, mine in rows.groupby("repeat"):
        tr, pr, fr = mine.rating.to_numpy(), mine.score.to_numpy(), mine.fold.to_numpy()
        mean_pred = np.array([tr[fr != f].mean() for f in fr])  # each fold's training mean
        per.append({"r2": r2_score(tr, pr), "pearson_r": stats.pearsonr(tr, pr).statistic,
                    "spearman_rho": stats.spearmanr(tr, pr).statistic, "rmse": root_mean_squared_error(tr, pr),
                    "r2_intercept_only": r2_score(tr, mean_pred)})
    out = {k: float(np.mean([row[k] for row in per])) for k in per[0]}
    return out | {"r2_gain_over_intercept_only": out["r2"] - out["r2_intercept_only"]}


def test_alignment_metrics_are_recomputable_from_alignment_predictions_csv(tmp_path, capsys):
    from dirti_bench.reporting.report import _probe_sentence, _r2_statement
    from dirti_bench.results_types import Results

    out = tmp_path / "out"
    doc = demo_results(capsys, out, "--scenarios", "align-*")
    preds = pd.read_csv(out / "alignment_predictions.csv")
    for sid, sc in doc["scenarios"].items():
        metrics = sc["metrics"]
        for name, value in _recompute_alignment(preds[preds["scenario"] == sid]).items():
            assert metrics[name] == pytest.approx(value, abs=1e-9), (sid, name)
        for name, ceiling in (("spearman_rho", "noise_ceiling_spearman"), ("pearson_r", "noise_ceiling_pearson")):
            assert metrics[f"{name}_over_ceiling"] == pytest.approx(metrics[name] / metrics[ceiling]), (sid, name)
    probe = doc["scenarios"]["align-disgust-probe"]
    penalty = probe["extra"]["penalty"]
    assert probe["options"]["alpha"] == "tuned" and penalty["n_folds"] == len(penalty["per_fold"]) == 30
    # On the demo set the probe is not below predicting the training mean by more than noise ...
    assert probe["ci"]["r2_gain_over_intercept_only"][1] >= 0, probe["metrics"]
    # ... and where its R² is <= 0, the report says so.
    typed = Results.of(doc)["align-disgust-probe"]
    statement = _r2_statement(typed) or ""
    assert ("≤ 0: out of fold the probe predicts" in statement) == (probe["metrics"]["r2"] <= 0)
    assert "alpha median" in _probe_sentence(typed)


def test_second_run_hits_the_cache_and_reproduces_metrics(demo_run, tmp_path, capsys):
    again = tmp_path / "again"
    code, _, _ = run_cli(capsys, "--demo", "--out", str(again), "--scenarios", *FAST)
    assert code == 0
    first = json.loads((demo_run / "results.json").read_text())
    second = json.loads((again / "results.json").read_text())
    assert first["run"]["forward_calls"] > 0
    assert second["run"]["forward_calls"] == 0  # no model forward at all
    assert first["run"]["text_forward_calls"] > 0 and second["run"]["text_forward_calls"] == 0
    assert first["run"]["forward_calls"] == first["run"]["image_forward_calls"] + first["run"]["text_forward_calls"]
    assert second["run"]["cache"]["misses"] == 0
    assert second["run"]["weights_sha256"] == first["run"]["weights_sha256"]
    assert second["run"]["text_encoding"] == first["run"]["text_encoding"] == "truncated"  # model never built
    assert second["run"]["dataset_sha256"] == first["run"]["dataset_sha256"]
    strip = lambda d: {k: {m: v[m] for m in ("metrics", "per_class", "confusion", "ci")} for k, v in d["scenarios"].items()}  # noqa: E731
    assert json.dumps(strip(first), sort_keys=True) == json.dumps(strip(second), sort_keys=True)
    assert (demo_run / "predictions.csv.gz").read_bytes() == (again / "predictions.csv.gz").read_bytes()


@pytest.mark.parametrize(("args", "pattern"), [
    (["--data", "/nonexistent/dirti"], "data folder /nonexistent/dirti does not exist.*demo set.*option --data"),
    (["--demo", "--model", "ViT-Nope"], "unknown model 'ViT-Nope'"),
    (["--demo", "--scenarios", "no-such-scenario"], "unknown scenario 'no-such-scenario'"),
    (["--demo", "--templates", "/nonexistent/t.json"], "template file /nonexistent/t.json not found"),
    ([], "DIRTI.*data option.*demo set.*options .*--data.*--demo"),
])
def test_user_errors_exit_2_with_one_error_line(tmp_path, capsys, args, pattern):
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "--out", str(out), *args)
    assert code == 2
    lines = error_lines(err)
    assert len(lines) == 1 and "Traceback" not in err
    assert __import__("re").search(pattern, lines[0]), lines[0]
    assert not (out / "results.json").exists()


def test_unavailable_device_exits_2(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = run_cli(capsys, "--demo", "--device", "cuda", "--out", str(tmp_path / "o"))
    assert code == 2 and error_lines(err) == [
        "error: device 'cuda' is not available on this machine (torch.cuda.is_available() is False); "
        "use device cpu or auto, or install a CUDA build of torch (command-line option --device)"]


def test_truncated_checkpoint_exits_2_and_writes_nothing(tmp_path, capsys, demo_master):
    import torch

    from dirti_bench.encoding.models import ClipEncoder

    ckpt = tmp_path / "tiny.pt"
    torch.save(ClipEncoder("dirti-tiny", "random", device="cpu").load().state_dict(), ckpt)
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "--data", str(demo_master), "--model", "dirti-tiny",
                           "--pretrained", str(ckpt), "--out", str(out))
    assert code == 2 and len(error_lines(err)) == 1 and str(ckpt) in err
    assert not out.exists() or not any(out.iterdir())


def test_corrupt_image_fails_the_run_without_partial_results(tmp_path, capsys, demo_copy):
    victim = sorted((demo_copy / "DIRTI Database").glob("*.jpg"))[5]
    victim.write_bytes(victim.read_bytes()[:200])  # truncated JPEG: header intact, data gone
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "--data", str(demo_copy), "--model", "dirti-tiny", "--pretrained", "random",
                           "--out", str(out))
    assert code == 2
    assert len(error_lines(err)) == 1 and victim.name in err
    assert not (out / "results.json").exists() and not (out / "predictions.csv.gz").exists()


def test_ratings_option_adds_alignment_scenarios_for_that_column(tmp_path, capsys):
    doc = demo_results(capsys, tmp_path / "out", "--scenarios", "zeroshot-baseline", "--ratings", "fear_mean_all")
    assert set(doc["scenarios"]) == {"zeroshot-baseline", "align-fear-zeroshot", "align-fear-probe"}
    assert doc["scenarios"]["align-fear-probe"]["options"]["rating"] == "fear_mean_all"


def test_unknown_rating_column_exits_2(tmp_path, capsys):
    code, _, err = run_cli(capsys, "--demo", "--out", str(tmp_path / "o"), "--scenarios", "zeroshot-baseline",
                           "--ratings", "smell_mean_all")
    assert code == 2 and len(error_lines(err)) == 1 and "smell_mean_all" in err


def test_decode_path_is_recorded_and_keys_the_cache(tmp_path, capsys):
    runs = {decode: demo_results(capsys, tmp_path / decode, "--scenarios", "zeroshot-baseline",
                                 "--decode", decode)["run"]
            for decode in ("tensor-resize", "jpeg-draft", "full")}
    assert runs["tensor-resize"]["preprocess"] == "open_clip-val+tensor-resize"
    assert runs["jpeg-draft"]["preprocess"] == "open_clip-val+jpeg-draft"
    assert runs["full"]["preprocess"] == "open_clip-val"
    assert len({run["cache"]["dir"] for run in runs.values()}) == 3
    for decode in ("jpeg-draft", "full"):
        assert runs[decode]["forward_calls"] > 0  # the other paths' embeddings were not reused


def test_n_raters_sets_the_noise_ceiling_of_alignment_scenarios(tmp_path, capsys):
    ceilings = {}
    for n in ("4", "200"):
        doc = demo_results(capsys, tmp_path / n, "--scenarios", "align-disgust-zeroshot", "--n-raters", n)
        sc = doc["scenarios"]["align-disgust-zeroshot"]
        assert sc["options"]["n_raters"] == int(n)
        ceilings[n] = sc["metrics"]["noise_ceiling_spearman"]
    assert ceilings["4"] < ceilings["200"]  # more raters -> more reliable means -> higher ceiling
    code, _, err = run_cli(capsys, "--demo", "--out", str(tmp_path / "x"), "--n-raters", "1")
    assert code == 2 and len(error_lines(err)) == 1 and "option n_raters=1 must be an integer >= 2" in err and "(command-line option --n-raters)" in err


@pytest.mark.parametrize("args", [["--batch-size", "0"], ["--batch-size", "x"], ["--no-such-option"]])
def test_bad_options_are_one_error_line(capsys, args):
    with pytest.raises(SystemExit) as stop:
        main(["run", "--demo", *args])
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and "see 'dirti-bench" in err


def test_rating_columns_are_checked_before_any_encoding(tmp_path, capsys, monkeypatch):
    from dirti_bench.encoding.cache import CachedEncoder

    def no_encoding(*_args, **_kwargs):
        raise AssertionError("images were encoded before the options were checked")

    monkeypatch.setattr(CachedEncoder, "encode_images", no_encoding)
    code, _, err = run_cli(capsys, "--demo", "--out", str(tmp_path / "o"), "--ratings", "smell_mean_all")
    assert code == 2 and "smell_mean_all" in err


def test_files_are_tidy_and_every_alignment_metric_recomputes_from_its_csv(tmp_path, capsys):
    """pandas' defaults read every column with its own type; features.npz ids match the CSVs'."""
    import numpy as np
    from scipy import stats
    from sklearn.metrics import r2_score, root_mean_squared_error

    out = tmp_path / "out"
    doc = demo_results(capsys, out, "--scenarios", "zeroshot-baseline", "knn-cv10-baseline", "align-disgust-*")
    preds, align = pd.read_csv(out / "predictions.csv.gz"), pd.read_csv(out / "alignment_predictions.csv")
    stimuli = pd.read_csv(out / "stimuli.csv")
    assert list(align.columns) == ["scenario", "stimulus", "category", "rating", "score", "repeat", "fold"]
    assert set(preds.scenario) == {"zeroshot-baseline", "knn-cv10-baseline"}  # classification rows only
    assert set(align.scenario) == {"align-disgust-zeroshot", "align-disgust-probe"}
    for frame in (preds, align, stimuli):
        assert frame["stimulus"].dtype == np.int64
    with np.load(out / "features.npz") as npz:
        assert npz["stimulus"].dtype == np.int64 and npz["stimulus"].tolist() == stimuli["stimulus"].tolist()
    assert dict(zip(preds.stimulus, preds.file_name, strict=False)) == {
        s: f for s, f in zip(stimuli.stimulus, stimuli.file_name, strict=True) if s in set(preds.stimulus)}
    assert preds.confidence.dtype == float and ((preds.confidence > 0) & (preds.confidence <= 1)).all()
    raw = pd.read_csv(out / "predictions.csv.gz", dtype=str, keep_default_na=False)
    cv = raw[raw.scenario == "knn-cv10-baseline"]
    assert cv.fold.str.fullmatch(r"\d+").all() and (raw[raw.scenario == "zeroshot-baseline"].fold == "").all()
    k = doc["scenarios"]["knn-cv10-baseline"]["options"]["k_effective"]
    votes = preds[preds.scenario == "knn-cv10-baseline"].confidence * k
    np.testing.assert_allclose(votes, votes.round())  # a vote share of k neighbours
    for column in ("rating", "score"):
        assert align[column].dtype == float
    zs, probe = align[align.scenario == "align-disgust-zeroshot"], align[align.scenario == "align-disgust-probe"]
    assert zs.repeat.isna().all() and zs.fold.isna().all() and len(zs) == 60
    assert set(probe.repeat) == {0, 1, 2} and set(probe.fold) == set(range(10))
    raw = pd.read_csv(out / "alignment_predictions.csv", dtype=str, keep_default_na=False)
    assert raw[raw.scenario == "align-disgust-probe"][["repeat", "fold"]].apply(lambda c: c.str.fullmatch(r"\d+")).all().all()
    category = dict(zip(stimuli.stimulus, stimuli.category, strict=True))
    assert [category[s] for s in zs.stimulus] == zs.category.tolist()
    metrics = doc["scenarios"]["align-disgust-zeroshot"]["metrics"]
    assert metrics["spearman_rho"] == pytest.approx(stats.spearmanr(zs.rating, zs.score).statistic, abs=1e-12)
    assert metrics["pearson_r"] == pytest.approx(stats.pearsonr(zs.rating, zs.score).statistic, abs=1e-12)
    metrics = doc["scenarios"]["align-disgust-probe"]["metrics"]
    by_repeat = [g for _, g in probe.groupby("repeat")]
    assert metrics["r2"] == pytest.approx(np.mean([r2_score(g.rating, g.score) for g in by_repeat]), abs=1e-12)
    assert metrics["rmse"] == pytest.approx(np.mean([root_mean_squared_error(g.rating, g.score) for g in by_repeat]))
    assert metrics["spearman_rho"] == pytest.approx(
        np.mean([stats.spearmanr(g.rating, g.score).statistic for g in by_repeat]), abs=1e-12)


def test_string_ids_stay_strings_and_numeric_looking_ones_are_not_mangled():
    import numpy as np

    from dirti_bench.results import ids_are_integers, typed_ids

    assert ids_are_integers(["1001", "0", "42"]) and not ids_are_integers(["007", "1"])
    assert not ids_are_integers(["1e3"]) and not ids_are_integers(["Acorn 1"]) and not ids_are_integers([])
    assert typed_ids(["1001", "2"], True).dtype == np.int64
    assert typed_ids(["007", "a"], False).tolist() == ["007", "a"]
