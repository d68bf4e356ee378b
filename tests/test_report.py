"""report.md / report.html from constructed results directories (no model, known numbers)."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import accuracy_score, f1_score

from dirti_bench.cli import main
from dirti_bench.contracts import ScenarioResult
from dirti_bench.data.dirti import DIRTI_CATEGORIES
from dirti_bench.evaluators.metrics import classification_metrics
from dirti_bench.reporting.published import rederived_clip_baseline
from dirti_bench.reporting.report import write_report
from dirti_bench.results import ALIGNMENT_COLUMNS, CLASSIFICATION_RESULT_COLUMNS, write_results
from dirti_bench.results_types import Results, load_results

CATS = list(DIRTI_CATEGORIES)
DISGUST = ["food", "disgusting food", "disgusting body products", "never seen"]


def _classification(sid: str, task: str, labels: list[str], truth: list[str], pred: list[str],
                    ids: list[str], dropped=(), ci=None) -> ScenarioResult:
    scored = classification_metrics(truth, pred, labels)
    frame = pd.DataFrame({"scenario": sid, "stimulus": ids, "y_true": truth, "y_pred": pred, "confidence": 0.5,
                          "fold": None})
    return ScenarioResult(sid, task, labels, len(truth), scored["metrics"], scored["per_class"], scored["confusion"],
                          list(dropped), {}, ci or {}, predictions=frame[CLASSIFICATION_RESULT_COLUMNS])


def make_results_dir(root: Path, n_per_class: int = 10, smoke: bool = True, features: bool = True,
                     device: str = "cpu", run_extra: dict | None = None, skipped: dict | None = None) -> Path:
    """6 categories x n stimuli; zero-shot predictions wrong on every 4th stimulus; one alignment scenario."""
    rng = np.random.default_rng(0)
    ids = [f"{1000 + i}" for i in range(6 * n_per_class)]
    cats = [CATS[i // n_per_class] for i in range(len(ids))]
    rating = np.round(rng.uniform(1, 9, len(ids)), 3)
    pred = [c if i % 4 else CATS[(CATS.index(c) + 1) % 6] for i, c in enumerate(cats)]
    baseline = _classification("zeroshot-baseline", "category", CATS, cats, pred, ids,
                               ci={"accuracy": [0.61, 0.83], "f1_macro": [0.55, 0.8]})
    # disgust-like space: one class dropped, one ("never seen") kept with zero support
    d_ids = ids[:2 * n_per_class]
    d_true = ["food" if r < 5 else ("disgusting food" if c == "food" else "disgusting body products")
              for c, r in zip(cats[:2 * n_per_class], rating[:2 * n_per_class], strict=True)]
    d_pred = ["disgusting food"] * len(d_true)
    disgust = _classification("zeroshot-disgust", "disgust", DISGUST, d_true, d_pred, d_ids,
                              dropped=["disgusting animals"])
    score = rating * 0.5 + rng.normal(0, 0.3, len(ids))
    align_frame = pd.DataFrame({"scenario": "align-disgust-zeroshot", "stimulus": ids, "category": cats,
                                "rating": rating, "score": score, "repeat": None, "fold": None})
    align = ScenarioResult("align-disgust-zeroshot", "alignment", CATS, len(ids),
                           {"spearman_rho": 0.912, "spearman_p_perm": 0.001, "noise_ceiling_spearman": 0.95},
                           options={"rating": "disg_mean_all", "prompts_high": ["This is a disgusting photo"],
                                    "prompts_low": ["This is a photo"], "score": "softmax", "n_raters": 30,
                                    "n_raters_source": "assumed default (30)", "sd_column": "disg_SD_all"},
                           ci={"spearman_rho": [0.85, 0.95]},
                           extra={"within_category": {c: {"n": n_per_class, "spearman_rho": 0.5} for c in CATS}},
                           predictions=align_frame[ALIGNMENT_COLUMNS])
    run = {"model": "dirti-tiny", "pretrained": "random" if smoke else "openai", "weights_sha256": "ab" * 32,
           "device": device, "smoke_run": smoke, "seed": 0, "dataset": "constructed", "dataset_sha256": "cd" * 32,
           "n_stimuli": len(ids), "created": "2026-01-01T00:00:00+00:00", "versions": {"torch": "x"},
           "throughput": {"images_per_s": 123.4}, **(run_extra or {})}
    comparisons = [{"a": "zeroshot-baseline", "b": "zeroshot-disgust", "accuracy_difference": 0.25,
                    "ci": [0.1, 0.4], "mcnemar": {"p_value": 0.0123}}]
    extra = {"stimuli.csv": pd.DataFrame({"stimulus": ids, "file_name": [f"{i}.jpg" for i in ids],
                                          "category": cats, "neutral": False,
                                          "disg_mean_all": rating}).to_csv(index=False).encode()}
    if features:
        buf = io.BytesIO()
        centres = rng.normal(0, 1, (6, 16))
        feats = np.stack([centres[CATS.index(c)] + 0.05 * rng.normal(0, 1, 16) for c in cats]).astype(np.float32)
        np.savez_compressed(buf, features=feats, stimulus=np.array(ids, dtype=np.int64))
        extra["features.npz"] = buf.getvalue()
    return write_results(root, run, [baseline, disgust, align], extra, comparisons=comparisons,
                         file_names={i: f"{i}.jpg" for i in ids}, integer_ids=True, skipped=skipped)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One report (with a real UMAP) shared by the read-only tests below."""
    results = make_results_dir(tmp_path_factory.mktemp("run") / "res")
    return results, write_report([results], results)


def _pngs(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)]


def test_files_exist_and_figures_are_readable_pngs(built):
    results, md_path = built
    assert md_path == results / "report.md" and md_path.is_file() and (results / "report.html").is_file()
    figures = sorted((results / "figures").glob("*.png"))
    names = {p.stem for p in figures}
    assert {"confusion-zeroshot-baseline", "confusion-zeroshot-disgust", "umap",
            "alignment-align-disgust-zeroshot"} <= names
    for png in figures:
        with Image.open(png) as img:
            assert img.format == "PNG" and img.width >= 400 and img.height >= 300


def test_markdown_has_every_scenario_class_and_recomputed_metric(built):
    results, md_path = built
    md = md_path.read_text()
    for sid in ("zeroshot-baseline", "zeroshot-disgust", "align-disgust-zeroshot"):
        assert sid in md
    for name in CATS + DISGUST + ["disgusting animals"]:
        assert f"| {name}" in md, name
    preds = pd.read_csv(results / "predictions.csv.gz")
    base = preds[preds["scenario"] == "zeroshot-baseline"]
    acc = accuracy_score(base["y_true"], base["y_pred"])
    f1 = f1_score(base["y_true"], base["y_pred"], labels=CATS, average="macro", zero_division=0)
    assert f"{acc:.3f} [0.610, 0.830]" in md and f"{f1:.3f} [0.550, 0.800]" in md
    assert "0.912 [0.850, 0.950]" in md  # alignment metric with its CI
    assert "123.400" in md and "0.012" in md  # throughput, McNemar p from comparisons


def test_smoke_banner_and_dropped_or_empty_classes_are_loud(built):
    md = built[1].read_text()
    assert "> **⚠ SMOKE RUN" in md and "mean nothing" in md
    section = md.split("## Dropped or empty classes")[1].split("\n## ")[0]
    assert "disgusting animals" in section and "never seen" in section and "⚠" in section


def test_reduced_precision_runs_carry_their_fp32_agreement_in_a_banner(tmp_path):
    check = {"precision": "int8", "images": 32, "prompts": 6, "min_cosine": 0.99871,
             "identical_predictions": 0.96875, "forward_calls": 4}
    results = make_results_dir(tmp_path / "r", run_extra={"precision": "int8", "precision_check": check})
    write_report([results], tmp_path / "rep")
    md = (tmp_path / "rep" / "report.md").read_text()
    assert ("> **⚠ REDUCED PRECISION (dirti-tiny · random · cpu): precision int8 vs fp32 on 32 images: "
            "min cosine 0.99871, identical category predictions 96.9% (31/32)" in md)
    plain = tmp_path / "plain"
    write_report([make_results_dir(tmp_path / "p")], plain)
    assert "REDUCED PRECISION" not in (plain / "report.md").read_text()


def test_study_comparison_lists_published_and_rederived_numbers(built):
    results, md_path = built
    md = md_path.read_text()
    section = md.split("## Comparison with the original study")[1].split("\n## ")[0]
    for number in ("0.76", "0.75", "0.74", "0.55", "0.50", "0.49", "0.69", "0.62", "0.57", "0.17", "0.23", "0.13"):
        assert f" {number} " in section, number
    assert "swapped" in section and "0.547" in section and "0.498" in section
    preds = pd.read_csv(results / "predictions.csv.gz")
    base = preds[preds["scenario"] == "zeroshot-baseline"]
    acc = accuracy_score(base["y_true"], base["y_pred"])
    assert re.search(rf"this run: zeroshot-baseline\s*\|\s*{acc:.3f}", section)
    assert re.search(r"this run: knn-split-baseline\s*\|\s*not run", section)


def test_rederived_study_numbers_match_its_per_class_table():
    # STUDY.md: accuracy 164/300, true macro precision 0.498, true macro recall 0.547
    assert rederived_clip_baseline() == pytest.approx(
        {"accuracy": 164 / 300, "precision_macro": 0.498, "recall_macro": 0.547}, abs=5e-4)


def test_html_is_self_contained_with_every_figure_embedded(built):
    results, _ = built
    html = (results / "report.html").read_text()
    assert not re.search(r'(src|href)="(?!data:)', html) and "<link" not in html
    embedded = _pngs(html)
    on_disk = sorted(p.read_bytes() for p in (results / "figures").glob("*.png"))
    assert sorted(embedded) == on_disk
    assert "SMOKE RUN" in html and "<table>" in html


def test_same_inputs_give_identical_report(built, tmp_path):
    results, md_path = built
    again = write_report([results], tmp_path / "again")
    assert again.read_text() == md_path.read_text()
    assert (tmp_path / "again/figures/umap.png").read_bytes() == (results / "figures/umap.png").read_bytes()


def test_the_report_and_the_comparison_take_typed_results(built, tmp_path):
    from dirti_bench.errors import UserError
    from dirti_bench.reporting.runs_report import write_comparison

    results, md_path = built
    typed = load_results(results)
    assert write_report([typed], tmp_path / "typed").read_text() == md_path.read_text()
    by_folder = write_comparison([results, results], tmp_path / "cmp-folders").read_text()
    assert write_comparison([typed, typed], tmp_path / "cmp-typed").read_text() == by_folder
    in_memory = Results.from_document(typed.document, typed.frames)  # what evaluate() returns: no folder
    with pytest.raises(UserError, match="evaluated in memory"):
        write_report([in_memory], tmp_path / "none")
    assert not (tmp_path / "none").exists()


def test_several_runs_side_by_side_and_umap_skipped_with_reason(built, tmp_path):
    other = make_results_dir(tmp_path / "gpu", smoke=False, features=False, device="cuda",
                             run_extra={"device_name": "NVIDIA H100 80GB HBM3, CUDA 13.0"})
    md = write_report([built[0], other], tmp_path / "both").read_text()
    assert "| cuda · NVIDIA H100 80GB HBM3, CUDA 13.0 |" in md  # the runs table names the card
    assert "dirti-tiny · random · cpu" in md and "dirti-tiny · openai · cuda" in md
    assert md.count("| dirti-tiny · openai · cuda") >= 3  # headline, alignment and runs tables
    assert "dirti-tiny · openai · cuda: UMAP skipped: no features.npz" in md


def test_umap_skipped_below_ten_stimuli(tmp_path):
    small = make_results_dir(tmp_path / "small", n_per_class=1)
    md = write_report([small], small).read_text()
    assert "UMAP skipped: only 6 stimuli" in md and not (small / "figures/umap.png").exists()


def test_failed_render_leaves_nothing_half_written(tmp_path, monkeypatch):
    results = make_results_dir(tmp_path / "res", features=False)
    (results / "report.md").write_text("old report\n")

    def broken(*args, **kwargs):
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr("dirti_bench.reporting.figures.confusion_figure", broken)
    with pytest.raises(RuntimeError):
        write_report([results], results)
    assert (results / "report.md").read_text() == "old report\n"
    assert not (results / "report.html").exists() and not (results / "figures").exists()
    assert not [p for p in results.iterdir() if p.name.startswith(".")]


def test_cli_report_writes_to_out(tmp_path, capsys):
    results = make_results_dir(tmp_path / "res", features=False)
    assert main(["report", str(results), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out/report.md").is_file() and (tmp_path / "out/report.html").is_file()
    assert "report written to" in capsys.readouterr().out


@pytest.mark.parametrize("setup", ["missing", "corrupt"])
def test_cli_bad_results_dir_is_one_error_line(tmp_path, capsys, setup):
    target = tmp_path / "res"
    if setup == "corrupt":
        target.mkdir()
        (target / "results.json").write_text("{not json")
    assert main(["report", str(target), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and str(target) in err[0]
    assert not (tmp_path / "out").exists()



def test_cli_unwritable_out_is_one_error_line(tmp_path, capsys):
    results = make_results_dir(tmp_path / "res", features=False)
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["report", str(results), "--out", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and str(blocker) in err[0]


def _probe_results(root: Path, r2: float, gain_ci: list[float], all_mean: bool) -> Path:
    """A ridge alignment probe with the given R² (its penalty tuned) and a tuned logistic probe."""
    ids = [f"{1000 + i}" for i in range(12)]
    rating = np.linspace(1, 9, 12)
    frame = pd.DataFrame({"scenario": "align-disgust-probe", "stimulus": ids, "category": CATS[0], "rating": rating,
                          "score": rating[::-1], "repeat": 0, "fold": [i % 2 for i in range(12)]})
    folds = [{"repeat": 0, "fold": i, "alpha": a, "edge": e, "widened": 0, "grid_min": 1e-3, "grid_max": 1e8}
             for i, (a, e) in enumerate([(1e8, "high"), (1e8 if all_mean else 31.6, "high" if all_mean else None)])]
    penalty = {"name": "alpha", "mode": "tuned", "method": "RidgeCV leave-one-out", "median": 5e7, "min": 31.6,
               "max": 1e8, "n_folds": 2, "n_widened": 0, "n_strongest": 2 if all_mean else 1, "n_weakest": 0,
               "per_fold": folds, "note": "folds took the strongest penalty"}
    ridge = ScenarioResult("align-disgust-probe", "alignment", CATS[:2], 12,
                           {"r2": r2, "r2_intercept_only": -0.05, "r2_gain_over_intercept_only": r2 + 0.05},
                           options={"rating": "disg_mean_all", "model": "StandardScaler + Ridge", "repeats": 1,
                                    "folds_used": 2, "alpha": "tuned"},
                           ci={"r2": [r2 - 0.1, r2 + 0.1], "r2_gain_over_intercept_only": gain_ci},
                           extra={"penalty": penalty}, predictions=frame[ALIGNMENT_COLUMNS])
    truth = [CATS[i % 2] for i in range(12)]
    logistic = _classification("linear-probe-cv10-baseline", "category", CATS[:2], truth, truth, ids)
    logistic.options = {"model": "StandardScaler -> LogisticRegression", "folds_effective": 2, "C": "tuned"}
    logistic.extra = {"penalty": {"name": "C", "mode": "tuned", "method": "inner stratified 3-fold CV",
                                  "median": 0.1, "min": 0.01, "max": 1.0, "n_folds": 2, "n_widened": 0,
                                  "n_strongest": 0, "n_weakest": 0, "per_fold": []}}
    fixed = _classification("linear-probe-cv10-disgust", "category", CATS[:2], truth, truth, ids)
    fixed.options = {"model": "StandardScaler -> LogisticRegression", "folds_effective": 2, "C": 1.0}
    run = {"model": "m", "pretrained": "openai", "device": "cpu", "seed": 0}
    return write_results(root, run, [ridge, logistic, fixed])


def test_each_probe_says_what_it_fitted_and_how_its_penalty_was_chosen(tmp_path):
    results = _probe_results(tmp_path / "r", r2=0.3, gain_ci=[0.2, 0.4], all_mean=False)
    write_report([results], results)
    section = (results / "report.md").read_text().split("## Probe penalties")[1].split("\n## ")[0]
    assert re.search(r"align-disgust-probe\s*\|\s*Ridge regression \(StandardScaler \+ Ridge\) from the image "
                     r"features to disg_mean_all in 1× repeated stratified 2-fold CV; penalty chosen inside each "
                     r"training fold only, never seeing its test fold \(RidgeCV leave-one-out\): alpha median 5e\+07, "
                     r"range 31\.6–1e\+08 over 2 folds", section)
    assert "C median 0.1, range 0.01–1 over 2 folds" in section
    assert "penalty C fixed at 1.0000 (scenario option, not tuned)" in section
    assert "R² =" not in (results / "report.md").read_text()  # R² > 0: nothing to state


@pytest.mark.parametrize(("r2", "gain_ci", "all_mean", "says"), [
    (-0.04, [-0.01, 0.02], True, "within noise of predicting the mean"),
    (-0.30, [-0.40, -0.10], False, "below it by more than noise"),
])
def test_r2_at_or_below_zero_is_stated(tmp_path, r2, gain_ci, all_mean, says):
    results = _probe_results(tmp_path / "r", r2=r2, gain_ci=gain_ci, all_mean=all_mean)
    write_report([results], results)
    md = (results / "report.md").read_text()
    assert (f"R² = {r2:.3f} ≤ 0: out of fold the probe predicts disg_mean_all no better than the training-fold "
            "mean (intercept-only model on the same folds: R² = -0.050)") in md
    assert says in md
    assert ("Every fold predicts its training mean" in md) == all_mean


def test_runs_tables_name_the_scoring_rule_each_run_used(tmp_path):
    from dirti_bench.reporting.console import scoring_summary
    from dirti_bench.reporting.report import RunData, _header
    from dirti_bench.reporting.runs_report import Run, _runs_table

    def doc(scoring, scale, bias, rule) -> dict:
        opts = {"scoring": scoring, "logit_scale": scale, "logit_bias": bias, "probability_rule": rule}
        return {"run": {"model": "m", "dataset": "d"},
                "scenarios": {"zeroshot-baseline": {"task": "category", "labels": ["a", "b"], "options": opts,
                                                    "metrics": {"accuracy": 0.5}}}}

    siglip, study = doc("model", 112.7, -16.5, "sigmoid"), doc("study", 100.0, None, "softmax")
    runs = [RunData(tmp_path / name, Results.from_document(d, {}), None, None, None, label=name)
            for name, d in (("siglip", siglip), ("study", study))]
    table = _header(runs)[-1].frame
    assert table["zero-shot scoring"].tolist() == [
        "the model's own 113 × cos -16.5, sigmoid (zeroshot-baseline)",
        "the study's fixed 100 × cos, softmax (zeroshot-baseline)"]
    compared = [Run(tmp_path / "a", Results.from_document(siglip, {}), None, label="a"),
                Run(tmp_path / "b", Results.from_document(study, {}), None, label="b")]
    cells = _runs_table(compared, compared[0])[-1].frame["zero-shot scoring"].tolist()
    assert cells == [scoring_summary(siglip, short=True), scoring_summary(study, short=True)]
    assert cells[0] == "the model's own 113 × cos -16.5, sigmoid (1 scenario)"
