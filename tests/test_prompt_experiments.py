"""Prompt engineering as an experiment, end to end through the pipeline: the prompts shown
(prompts.csv, the report), the sweeps' output files recomputed with scikit-learn, prompt
sets paired with the study wording, ``--threshold``, and prompt files on every task."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from dirti_bench.cli import main
from dirti_bench.data.dirti import DIRTI_CATEGORIES, IMAGE_FOLDER, load_dirti
from dirti_bench.labels import build_label_space
from dirti_bench.pipeline import RunConfig, run
from dirti_bench.prompts import load_ensemble, shipped_file
from dirti_bench.reporting.compare import PROMPT_KIND
from dirti_bench.results import (
    PREDICTIONS_FILE,
    PROMPTS_FILE,
    RESULTS_FILE,
    SWEEP_PREDICTIONS_FILE,
    SWEEPS_FILE,
)
from helpers import write_json, write_rated_set
from known_answer import KnownAnswerEncoder, one_hot

EXPERIMENT = ["zeroshot-*", "ensemble-baseline-clip80", "ensemble-disgust-affect", "template-sweep-*",
              "threshold-sweep-*", "knn-cv10-disgust", "align-disgust-zeroshot"]


def random_encoder(image_dir, seed: int = 0) -> KnownAnswerEncoder:
    """A fixed random vector per image and per prompt: any predictions, exactly reproducible."""
    rng = np.random.default_rng(seed)
    images = {p.name: rng.standard_normal(16) for p in sorted(image_dir.iterdir())}
    texts: dict[str, np.ndarray] = {}
    return KnownAnswerEncoder(images, lambda t: texts.setdefault(t, rng.standard_normal(16)))


@pytest.fixture(scope="module")
def experiment(demo_master, tmp_path_factory):
    """One run of the prompt experiments (report included) on the demo set, isolated from the user's caches."""
    root = tmp_path_factory.mktemp("experiment")
    template_file = write_json(root / "mine.json", ["a photo of {c}.", "{c}, seen up close."])
    with pytest.MonkeyPatch.context() as mp:
        for var in ("DIRTI_BENCH_HOME", "HF_HOME", "TORCH_HOME", "XDG_CACHE_HOME"):
            mp.setenv(var, str(root / var.lower()))
        mp.setattr("dirti_bench.pipeline.versions", dict)  # no torch import for version strings
        out = run(RunConfig(data=demo_master, out=root / "out", scenarios=EXPERIMENT, templates=[template_file],
                            progress=False), encoder=random_encoder(demo_master / IMAGE_FOLDER))
    return out, json.loads((out / RESULTS_FILE).read_text())


def read(out, name) -> pd.DataFrame:
    return pd.read_csv(out / name, dtype=str, keep_default_na=False)


def sklearn_scores(rows: pd.DataFrame, labels) -> dict:
    t, p = rows["y_true"].tolist(), rows["y_pred"].tolist()
    return {"accuracy": accuracy_score(t, p), "balanced_accuracy": balanced_accuracy_score(t, p),
            "f1_macro": f1_score(t, p, labels=labels, average="macro", zero_division=0)}


# ---------------------------------------------------------------- what was asked is shown

def test_prompts_csv_holds_every_prompt_of_every_zero_shot_and_alignment_scenario(experiment):
    out, doc = experiment
    prompts = read(out, PROMPTS_FILE)
    assert list(prompts.columns) == ["scenario", "class", "prompt"]
    clip80 = prompts[prompts.scenario == "ensemble-baseline-clip80"]
    assert len(clip80) == 480 and set(clip80["class"]) == set(DIRTI_CATEGORIES)
    assert clip80["prompt"].tolist()[:2] == [t.replace("{c}", "food") for t in load_ensemble("clip80").templates[:2]]
    study = prompts[prompts.scenario == "zeroshot-disgust"]
    labels = doc["scenarios"]["zeroshot-disgust"]["labels"]
    assert study["class"].tolist() == labels  # one study prompt per class, in label order
    assert dict(zip(study["class"], study["prompt"], strict=True))["disgusting food"] == "This is a disgusting photo of food"
    align = prompts[prompts.scenario == "align-disgust-zeroshot"]
    assert align.values[:, 1:].tolist() == [["high", "This is a disgusting photo"], ["low", "This is a photo"]]
    zero_shot = {sid for sid, sc in doc["scenarios"].items() if "prompt_set" in sc["options"]}
    assert zero_shot | {"align-disgust-zeroshot"} == set(prompts.scenario)
    assert "knn-cv10-disgust" not in set(prompts.scenario)


def test_knn_records_tied_votes_and_every_cv_scenario_its_effective_folds(experiment):
    _, doc = experiment
    knn = doc["scenarios"]["knn-cv10-disgust"]["options"]
    assert knn["tie_break"] == "lowest-id" and 0 <= knn["tied_votes"] <= 60
    assert knn["folds"] == 10 and knn["folds_effective"] == 2  # a class has 2 members on the demo set
    assert doc["scenarios"]["template-sweep-disgust-clip80"]["options"]["folds_effective"] == 2


# ---------------------------------------------------------------- sweeps: files recompute with scikit-learn

def test_sweeps_csv_and_results_json_recompute_from_sweep_predictions(experiment):
    out, doc = experiment
    sweeps, preds = read(out, SWEEPS_FILE), read(out, SWEEP_PREDICTIONS_FILE)
    assert list(sweeps.columns) == ["scenario", "point", "metric", "value", "ci_low", "ci_high"]
    assert list(preds.columns) == ["scenario", "point", "stimulus", "y_true", "y_pred", "fold"]
    swept = [sid for sid, sc in doc["scenarios"].items() if "sweep" in sc]
    assert sorted(swept) == sorted(["template-sweep-baseline-clip80", "template-sweep-disgust-clip80",
                                    "template-sweep-baseline-affect", "template-sweep-disgust-affect",
                                    "template-sweep-baseline-mine", "template-sweep-disgust-mine",
                                    "threshold-sweep-disgust", "threshold-sweep-disgust-binary"])
    assert set(sweeps.scenario) == set(preds.scenario) == set(swept)
    checked = 0
    rows_of, table_of = dict(tuple(preds.groupby(["scenario", "point"]))), dict(tuple(sweeps.groupby(["scenario", "point"])))
    for sid in swept:
        for point in doc["scenarios"][sid]["sweep"]:
            rows, table = rows_of[sid, point["point"]], table_of[sid, point["point"]].set_index("metric")
            again = sklearn_scores(rows, point["labels"]) | {"n": len(rows), "n_classes": len(point["labels"])}
            assert set(table.index) == set(again)
            for metric, value in again.items():
                assert float(table.loc[metric, "value"]) == pytest.approx(value, abs=1e-12), (sid, point["point"])
                if metric in point["metrics"]:
                    assert point["metrics"][metric] == pytest.approx(value, abs=1e-12)
                    low, high = point["ci"][metric]
                    assert (float(table.loc[metric, "ci_low"]), float(table.loc[metric, "ci_high"])) == pytest.approx(
                        (low, high)) and low <= high
                else:
                    assert table.loc[metric, "ci_low"] == table.loc[metric, "ci_high"] == ""
            checked += 1
    assert checked == 2 * 10 + 2 * (80 + 2) + 2 * (8 + 2) + 2 * (2 + 2)
    threshold = {p["point"]: p for p in doc["scenarios"]["threshold-sweep-disgust"]["sweep"]}
    assert list(threshold) == ["3.0", "3.5", "4.0", "4.5", "5.0", "5.5", "6.0", "6.5", "7.0", "mean+1sd"]


def test_sweep_predictions_are_typed_like_the_other_csvs(experiment):
    out, _ = experiment
    typed, stimuli = pd.read_csv(out / SWEEP_PREDICTIONS_FILE), pd.read_csv(out / "stimuli.csv")
    assert typed["stimulus"].dtype == np.int64 and stimuli["stimulus"].dtype == np.int64  # DIRTI's integer ids
    assert set(typed["stimulus"]) == set(stimuli["stimulus"])
    assert (read(out, SWEEP_PREDICTIONS_FILE)["fold"] == "").all()  # no sweep point has folds: empty cells


def test_sweep_predictions_are_a_reproducible_gzip_of_the_plain_csv(experiment, tmp_path):
    """The largest output is gzip-compressed (one pandas/R call still reads it), stamped with no
    time, so the same predictions give the same bytes."""
    import gzip

    from dirti_bench.results import GZIP

    out, _ = experiment
    blob = (out / SWEEP_PREDICTIONS_FILE).read_bytes()
    assert blob[:2] == b"\x1f\x8b" and SWEEP_PREDICTIONS_FILE.endswith(".csv.gz")
    plain = gzip.decompress(blob)
    assert plain.startswith(b"scenario,point,stimulus,y_true,y_pred,fold\n")
    frame = pd.read_csv(out / SWEEP_PREDICTIONS_FILE, dtype=str, keep_default_na=False)
    frame.to_csv(tmp_path / SWEEP_PREDICTIONS_FILE, index=False, compression=GZIP)  # gzip stores the name
    assert (tmp_path / SWEEP_PREDICTIONS_FILE).read_bytes() == blob
    assert len(blob) * 5 < len(plain)


def test_sweep_headlines_recompute_from_predictions_csv(experiment):
    out, doc = experiment
    preds = read(out, PREDICTIONS_FILE)
    for sid in ("template-sweep-disgust-clip80", "template-sweep-baseline-mine", "threshold-sweep-disgust-binary"):
        sc = doc["scenarios"][sid]
        rows = preds[preds.scenario == sid]
        for name, value in sklearn_scores(rows, sc["labels"]).items():
            assert sc["metrics"][name] == pytest.approx(value, abs=1e-12), (sid, name)
    # the cross-validated choice pools out-of-fold predictions; the threshold headline is its 5.0 point
    cv = preds[preds.scenario == "template-sweep-disgust-clip80"]
    assert sorted(set(cv["fold"])) == ["0", "1"]
    head = doc["scenarios"]["threshold-sweep-disgust-binary"]
    five = next(p for p in head["sweep"] if p["point"] == "5.0")
    assert head["metrics"]["accuracy"] == five["metrics"]["accuracy"] and head["options"]["threshold"] == 5.0


# ---------------------------------------------------------------- paired comparisons

def test_every_prompt_set_is_paired_with_the_study_wording_of_its_own_label_space(experiment):
    out, doc = experiment
    pairs = {(c["a"], c["b"]) for c in doc["comparisons"] if c.get("kind") == PROMPT_KIND}
    assert pairs == {
        ("ensemble-baseline-clip80", "zeroshot-baseline"), ("ensemble-disgust-affect", "zeroshot-disgust"),
        ("ensemble-baseline-mine", "zeroshot-baseline"), ("ensemble-disgust-mine", "zeroshot-disgust"),
        ("ensemble-disgust-binary-mine", "zeroshot-disgust-binary"),
        *((f"template-sweep-{t}-{e}", f"zeroshot-{t}") for t in ("baseline", "disgust")
          for e in ("clip80", "affect", "mine"))}
    assert not any({c["a"], c["b"]} == {"zeroshot-baseline", "zeroshot-disgust"} for c in doc["comparisons"])
    preds = read(out, PREDICTIONS_FILE)
    for c in doc["comparisons"]:
        if c.get("kind") != PROMPT_KIND:
            continue
        a = preds[preds.scenario == c["a"]].set_index("stimulus")
        b = preds[preds.scenario == c["b"]].set_index("stimulus").loc[a.index]
        labels = doc["scenarios"][c["b"]]["labels"]
        right_a, right_b = a.y_true == a.y_pred, b.y_true == b.y_pred
        assert c["accuracy_difference"] == pytest.approx(right_a.mean() - right_b.mean(), abs=1e-12)
        f1 = [f1_score(x.y_true, x.y_pred, labels=labels, average="macro", zero_division=0) for x in (a, b)]
        assert c["f1_macro_difference"] == pytest.approx(f1[0] - f1[1], abs=1e-12)
        only_a, only_b = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
        assert (c["mcnemar"]["only_a_correct"], c["mcnemar"]["only_b_correct"]) == (only_a, only_b)
        if only_a + only_b:
            assert c["mcnemar"]["p_value"] == pytest.approx(binomtest(only_a, only_a + only_b, 0.5).pvalue)
        for key in ("ci", "f1_macro_ci"):
            assert c[key][0] <= c[key][1]


# ---------------------------------------------------------------- the report

def section(md: str, title: str) -> str:
    assert f"## {title}" in md, title
    return md.split(f"## {title}")[1].split("\n## ")[0]


def test_report_shows_prompts_label_spaces_sweeps_and_the_forest_plot(experiment):
    out, doc = experiment
    md = (out / "report.md").read_text()
    spaces = section(md, "Label spaces")
    knn = doc["scenarios"]["knn-cv10-disgust"]["options"]
    row = next(line for line in spaces.splitlines() if line.startswith("| knn-cv10-disgust"))
    assert "2 of 10 asked (smallest class: 2 stimuli)" in row and f"{knn['tied_votes']} of 60 (lowest-id)" in row
    assert "5.00 (fixed)" in row and "disgusting animals: no stimulus carries this class" in row
    prompts = section(md, "Prompts")
    assert re.search(r"zeroshot-disgust\s*\|\s*disgusting food\s*\|\s*This is a disgusting photo of food\s*\|",
                     prompts)
    assert re.search(r"ensemble-baseline-clip80\s*\|\s*clip80\s*\|\s*480\s*\|\s*80", prompts)
    assert PROMPTS_FILE in prompts
    chance = section(md, "Study wording on each task: two scores, two chance levels")
    assert re.search(r"zeroshot-disgust\s*\|\s*11\s*\|\s*0\.091", chance)
    assert re.search(r"zeroshot-baseline\s*\|\s*6\s*\|\s*0\.167", chance)
    sweeps = section(md, "Threshold sweeps")
    assert "mean+1sd" in sweeps and "disgusting animals" in sweeps
    templates = section(md, "Template sweeps")
    rank = doc["scenarios"]["template-sweep-baseline-clip80"]["extra"]["study_rank"]
    assert f"The study wording ranks {rank['accuracy']} of 81 by accuracy" in templates
    assert "Best 5 templates" in templates and "Worst 5 templates" in templates and "All 8 templates" in templates
    forest = section(md, "Prompt sets against the study wording")
    assert "ensemble-disgust-binary-mine" in forest
    assert "Paired comparisons" not in md or "zeroshot-disgust-binary" not in section(md, "Paired comparisons")
    files = section(md, "Prompt files")
    assert "mine.json" in files and "template-sweep-disgust-mine" in files
    for name in ("threshold-sweeps", "template-sweeps", "prompt-sets-vs-study"):
        assert (out / "figures" / f"{name}.png").is_file(), name
    assert not (out / "figures" / "confusion-template-sweep-baseline-clip80.png").exists()  # sweeps: own figures


def test_the_sweep_and_forest_figures_stand_alone_with_the_run_in_their_titles(experiment, tmp_path, monkeypatch):
    """Like every figure: model, weights (loudly: a smoke run's random weights) and dataset in the title,
    the scenario (or task) of each panel in its own title."""
    import shutil

    from dirti_bench.reporting import figures
    from dirti_bench.reporting.report import write_report

    out, doc = experiment
    smoke = tmp_path / "smoke"
    shutil.copytree(out, smoke)
    (smoke / RESULTS_FILE).write_text(json.dumps({**doc, "run": {**doc["run"], "pretrained": "random",
                                                                  "smoke_run": True}}))
    drawn, real_png = [], figures.png
    monkeypatch.setattr(figures, "png", lambda fig: drawn.append(fig) or real_png(fig))
    monkeypatch.setenv("DIRTI_BENCH_JOBS", "1")  # drawn here, where the patched png sees them
    model, dataset = doc["run"]["model"], doc["run"]["dataset"]
    panels = {"zero-shot score vs disgust threshold": [s for s in doc["scenarios"] if s.startswith("threshold-sweep")],
              "each template alone (one dot each)": [s for s in doc["scenarios"] if s.startswith("template-sweep")],
              "prompt sets minus the study wording": ["category", "disgust", "disgust-binary"]}
    write_report([smoke], tmp_path / "report", projection="pca")
    by_title = {fig.get_suptitle().split("\n")[0]: fig for fig in drawn if fig.get_suptitle()}
    for what, scenarios in panels.items():
        fig = by_title[what]
        assert fig.get_suptitle() == f"{what}\n{model} · random weights — smoke run · {dataset}"
        assert [ax.get_title() for ax in fig.get_axes()] == scenarios


# ---------------------------------------------------------------- --threshold

def cli(capsys, *args):
    code = main(["run", "--no-progress", "--no-report", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def no_encoding(monkeypatch):
    """Fail the test if any image reaches the encoder."""
    from dirti_bench.encoding.cache import CachedEncoder

    def refuse(*_args, **_kwargs):
        raise AssertionError("an image was encoded before the options were checked")

    monkeypatch.setattr(CachedEncoder, "encode_images", refuse)


def demo_args(demo_master, tmp_path):
    return ["--data", str(demo_master), "--model", "dirti-tiny", "--pretrained", "random",
            "--out", str(tmp_path / "out")]


@pytest.mark.parametrize("value", ["abc", "nan", "inf", ""])
def test_bad_threshold_is_one_line_before_any_encoding(capsys, tmp_path, demo_master, no_encoding, value):
    code, _, err = cli(capsys, *demo_args(demo_master, tmp_path), "--threshold", value)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: option threshold=") and lines[0].endswith("(command-line option --threshold)") and "mean+1sd" in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("threshold", [6.5, "mean+1sd"])
def test_threshold_option_sets_every_disgust_task(demo_master, demo_stimuli, tmp_path, threshold):
    out = run(RunConfig(data=demo_master, out=tmp_path / "out", report=False, threshold=str(threshold),
                        scenarios=["zeroshot-baseline", "zeroshot-disgust-binary", "knn-split-disgust",
                                   "threshold-sweep-disgust"]), encoder=random_encoder(demo_master / IMAGE_FOLDER))
    doc = json.loads((out / RESULTS_FILE).read_text())
    expected = build_label_space(demo_stimuli, "disgust-binary", threshold=threshold)
    binary = doc["scenarios"]["zeroshot-disgust-binary"]
    assert binary["options"]["threshold"] == pytest.approx(expected.threshold)
    assert binary["options"]["threshold_rule"] == ("fixed" if threshold == 6.5 else "mean+1sd")
    assert {c: v["support"] for c, v in binary["per_class"].items()} == expected.support()
    assert doc["scenarios"]["knn-split-disgust"]["options"]["threshold"] == pytest.approx(expected.threshold)
    sweep = doc["scenarios"]["threshold-sweep-disgust"]
    assert sweep["options"]["threshold"] == pytest.approx(expected.threshold)  # its headline point
    assert len(sweep["sweep"]) == 10  # the sweep's own points stay
    assert doc["scenarios"]["zeroshot-baseline"]["options"]["threshold_rule"] is None


# ---------------------------------------------------------------- prompt files on every task

def oracle_encoder(demo_master, task: str, prompts_of: dict[str, list[str]]) -> KnownAnswerEncoder:
    """Images -> one-hot of their class in ``task``; the file's prompts -> one-hot of their class;
    anything else a fixed random vector."""
    stimuli = load_dirti(demo_master)
    space = build_label_space(stimuli, task)
    by_id = {s.id: s for s in stimuli.stimuli}
    dim = 16
    images = {by_id[sid].file_name: one_hot(int(y), dim) for sid, y in zip(space.stimulus_ids, space.y_true, strict=True)}
    owner = {p: space.names.index(cls) for cls, prompts in prompts_of.items() for p in prompts if cls in space.names}
    rng = np.random.default_rng(0)
    others: dict[str, np.ndarray] = {}
    return KnownAnswerEncoder(images, lambda t: one_hot(owner[t], dim) if t in owner
                              else others.setdefault(t, rng.standard_normal(dim)))


def test_template_list_makes_every_classification_task_and_its_sweeps(demo_master, tmp_path, capsys):
    path = write_json(tmp_path / "mine.json", ["a photo of {c}.", "{c}!"])
    out = run(RunConfig(data=demo_master, out=tmp_path / "out", report=False, scenarios=["zeroshot-baseline"],
                        templates=[path]), encoder=random_encoder(demo_master / IMAGE_FOLDER))
    doc = json.loads((out / RESULTS_FILE).read_text())
    made = ["ensemble-baseline-mine", "ensemble-disgust-mine", "ensemble-disgust-binary-mine",
            "template-sweep-baseline-mine", "template-sweep-disgust-mine"]
    assert set(doc["scenarios"]) == {"zeroshot-baseline", *made}
    (plan,) = doc["run"]["prompt_files"]
    assert plan["file"] == str(path.resolve()) and plan["kind"] == "template list"
    assert plan["scenarios"] == made and list(plan["skipped"]) == ["alignment"]
    err = capsys.readouterr().err.splitlines()
    line = [x for x in err if x.startswith("prompt file ")]
    assert line == [f"prompt file {path.resolve()} (template list): made {', '.join(made)}; "
                    f"skipped alignment ({plan['skipped']['alignment']})"]


def test_a_custom_binary_file_makes_the_binary_scenario_with_the_right_numbers(demo_master, tmp_path, capsys):
    prompts = {"disgusting": ["something revolting", "yuck"], "not disgusting": ["something ordinary"]}
    path = write_json(tmp_path / "gross.json", prompts)
    encoder = oracle_encoder(demo_master, "disgust-binary", prompts)
    out = run(RunConfig(data=demo_master, out=tmp_path / "out", report=False, scenarios=["zeroshot-disgust-binary"],
                        templates=[path]), encoder=encoder)
    doc = json.loads((out / RESULTS_FILE).read_text())
    assert set(doc["scenarios"]) == {"zeroshot-disgust-binary", "ensemble-disgust-binary-gross"}
    sc = doc["scenarios"]["ensemble-disgust-binary-gross"]
    assert sc["metrics"]["accuracy"] == 1.0 and sc["metrics"]["f1_macro"] == 1.0  # the oracle's prompts
    assert sc["labels"] == ["not disgusting", "disgusting"] and sc["n"] == 60
    assert {c: v["support"] for c, v in sc["per_class"].items()} == {"not disgusting": 27, "disgusting": 33}
    rows = read(out, PROMPTS_FILE)
    assert rows[rows.scenario == "ensemble-disgust-binary-gross"][["class", "prompt"]].values.tolist() == [
        ["not disgusting", "something ordinary"], ["disgusting", "something revolting"], ["disgusting", "yuck"]]
    (line,) = [x for x in capsys.readouterr().err.splitlines() if x.startswith("prompt file")]
    assert "made ensemble-disgust-binary-gross" in line and "category (the keys are the disgust-binary classes)" in line


def test_a_rating_pair_file_makes_an_alignment_scenario_with_the_right_numbers(demo_master, demo_stimuli, tmp_path):
    path = write_json(tmp_path / "yuck.json", {"rating": "disg_mean_all", "high": ["gross"], "low": ["fine", "ok"]})
    rating = demo_stimuli.ratings("disg_mean_all")
    angle = np.pi / 4 + 0.05 * (rating - 5) / 8  # small angles: the softmax score is monotone in the rating
    images = {s.file_name: np.array([np.cos(a), np.sin(a), 0.0]) for s, a in zip(demo_stimuli, angle, strict=True)}
    encoder = KnownAnswerEncoder(images, lambda t: np.array([0.0, 1, 0]) if t == "gross" else np.array([1.0, 0, 0]))
    out = run(RunConfig(data=demo_master, out=tmp_path / "out", report=False, scenarios=["zeroshot-baseline"],
                        templates=[path]), encoder=encoder)
    doc = json.loads((out / RESULTS_FILE).read_text())
    sc = doc["scenarios"]["align-disgust-zeroshot-yuck"]
    assert sc["metrics"]["spearman_rho"] == pytest.approx(1.0)
    assert sc["options"]["prompts_high"] == ["gross"] and sc["options"]["prompts_low"] == ["fine", "ok"]
    rows = read(out, PROMPTS_FILE)
    assert rows[rows.scenario == "align-disgust-zeroshot-yuck"]["class"].tolist() == ["high", "low", "low"]


def test_per_class_keys_of_a_rated_sets_own_categories_make_its_category_scenario(tmp_path):
    root = write_rated_set(tmp_path / "set")
    prompts = {c: [f"a photo of a {c}"] for c in ("spider", "fruit", "wound")}
    path = write_json(tmp_path / "mine.json", prompts)
    rng = np.random.default_rng(0)
    images = {p.name: rng.standard_normal(8) for p in (root / "img").iterdir()}
    texts: dict[str, np.ndarray] = {}
    out = run(RunConfig(data=root, out=tmp_path / "out", report=False, scenarios=["zeroshot-baseline"],
                        templates=[path]), encoder=KnownAnswerEncoder(images, lambda t: texts.setdefault(
                            t, rng.standard_normal(8))))
    doc = json.loads((out / RESULTS_FILE).read_text())
    assert set(doc["scenarios"]) == {"zeroshot-baseline", "ensemble-baseline-mine"}  # not a disgust scenario
    assert doc["scenarios"]["ensemble-baseline-mine"]["labels"] == ["spider", "fruit", "wound"]


@pytest.mark.parametrize(("content", "pattern"), [
    ({c: ["p"] for c in DIRTI_CATEGORIES[:5]},
     r"covers the category task only partly: no prompts for \['hygiene'\]"),
    ({**{c: ["p"] for c in DIRTI_CATEGORIES}, **{f"disgusting {c}": ["q"] for c in ("food", "death")}},
     r"covers the disgust task only partly: no prompts for \['disgusting body products', "
     r"'disgusting injuries/infections', 'disgusting hygiene'\]"),
    ({"disgusting": ["x"]}, r"covers the disgust-binary task only partly: no prompts for \['not disgusting'\]"),
    ({"cats": ["x"], "dogs": ["y"]}, r"keys \['cats', 'dogs'\] match no task of DIRTI"),
    ({"high": ["x"], "low": ["y"]}, r"match no task.*add a \"rating\" key"),
    ({"rating": "smell_mean_all", "high": ["x"], "low": ["y"]}, r"rating column 'smell_mean_all' not in"),
])
def test_a_partial_or_unmatched_prompt_file_is_refused_before_any_encoding(capsys, tmp_path, demo_master,
                                                                           no_encoding, content, pattern):
    path = write_json(tmp_path / "p.json", content)
    code, _, err = cli(capsys, *demo_args(demo_master, tmp_path), "--templates", str(path))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: prompt file ") and str(path) in lines[0]
    assert re.search(pattern, lines[0]), lines[0]
    assert not (tmp_path / "out").exists()


def test_a_stem_that_shadows_a_shipped_or_another_files_scenario_is_refused(capsys, tmp_path, demo_master,
                                                                             no_encoding):
    shadow = write_json(tmp_path / "clip80.json", ["a photo of {c}"])
    code, _, err = cli(capsys, *demo_args(demo_master, tmp_path), "--templates", str(shadow))
    (line,) = err.strip().splitlines()
    assert code == 2 and str(shadow) in line and shipped_file("clip80") in line
    assert "both make scenario ensemble-baseline-clip80" in line and "rename clip80.json" in line
    first, second = write_json(tmp_path / "a" / "p.json", ["{c}"]), write_json(tmp_path / "b" / "p.json", ["x {c}"])
    code, _, err = cli(capsys, *demo_args(demo_master, tmp_path), "--templates", str(first), str(second))
    (line,) = err.strip().splitlines()
    assert code == 2 and str(first) in line and str(second) in line and "both make scenario ensemble-baseline-p" in line
    assert not (tmp_path / "out").exists()


def test_one_file_named_twice_runs_once(demo_master, tmp_path):
    path = write_json(tmp_path / "mine.json", ["a photo of {c}."])
    out = run(RunConfig(data=demo_master, out=tmp_path / "out", report=False, scenarios=["zeroshot-baseline"],
                        templates=[path, tmp_path / "." / "mine.json"]),
              encoder=random_encoder(demo_master / IMAGE_FOLDER))
    doc = json.loads((out / RESULTS_FILE).read_text())
    assert len(doc["run"]["prompt_files"]) == 1 and "ensemble-baseline-mine" in doc["scenarios"]
