"""Generic rated stimulus sets: loading, strict validation, and a full run whose
ratings are a known function of the image content."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import stats

from dirti_bench import cli
from dirti_bench.data.ratedset import SIDECAR, is_rated_set, load_rated_set
from dirti_bench.errors import UserError
from dirti_bench.pipeline import RunConfig, run
from dirti_bench.results import ALIGNMENT_PREDICTIONS_FILE, PREDICTIONS_FILE, RESULTS_FILE
from dirti_bench.scenarios import REGISTRY, alignment_scenarios
from helpers import RATED_CATEGORIES, write_json, write_oasis_like, write_rated_set
from known_answer import KnownAnswerEncoder

CATEGORIES = RATED_CATEGORIES


def test_loads_a_rated_set(tmp_path):
    root = write_rated_set(tmp_path / "set")
    assert is_rated_set(root) and is_rated_set(root / SIDECAR) and not is_rated_set(tmp_path)
    s = load_rated_set(root)
    table = pd.read_csv(root / "ratings.csv")
    assert len(s) == len(table) == 18 and s.name == "toy"
    assert s.categories == tuple(CATEGORIES)  # the sidecar's order, not alphabetical
    assert s.rating_columns == ("disgust", "disgust_sd", "valence")  # the text column is not a rating
    assert s.disgust_column == "disgust"
    assert [x.category for x in s] == table.group.tolist()
    np.testing.assert_allclose(s.ratings("valence"), table.valence)
    assert s.stimuli[1].id == "spider_01" and s.stimuli[1].file_name == "spider_01.png"  # row named without extension
    assert all(len(x.sha256) == 64 for x in s)


def test_a_default_run_aligns_with_the_sets_own_ratings_but_not_spreads(tmp_path):
    root = write_rated_set(tmp_path / "set", sidecar={"rating_scale": [1, 10]})
    s = load_rated_set(root)
    # disgust is the disgust column (align-disgust-*), disgust_sd a spread
    assert s.rating_columns == ("disgust", "disgust_sd", "valence") and s.aligned_ratings == ("valence",)
    assert s.rating_scale == (1.0, 10.0)


def test_default_categories_are_sorted_and_rating_columns_selectable(tmp_path):
    root = write_rated_set(tmp_path / "set", sidecar={"categories": None, "disgust_column": None,
                                                "rating_columns": ["valence"]})
    s = load_rated_set(root)
    assert s.categories == tuple(sorted(CATEGORIES)) and s.rating_columns == ("valence",)


def _drop_first_image(root):
    next((root / "img").iterdir()).unlink()


def _corrupt_image(root):
    (root / "img" / "fruit_03.png").write_bytes(b"not a png")


def _same_name_other_extension(root):
    Image.new("RGB", (8, 8)).save(root / "img" / "WOUND_01.jpg")


def _bad_json(root):
    (root / SIDECAR).write_text("{oops")


@pytest.mark.parametrize("sidecar, table_edit, damage, message", [
    (None, None, _bad_json, "not valid JSON"),
    ({"colour": "red"}, None, None, "unknown keys ['colour']"),
    ({"file_column": None}, None, None, "lacks keys ['file_column']"),
    ({"ratings": "missing.csv"}, None, None, "missing.csv"),
    ({"images": "nowhere"}, None, None, "image folder"),
    ({"category_column": "kind"}, None, None, "no columns ['kind']"),
    ({"rating_columns": ["disgust", "note"]}, None, None, "column 'note' has missing or non-numeric"),
    ({"disgust_column": "valence", "rating_columns": ["disgust"]}, None, None, "not among the rating columns"),
    ({"categories": ["spider", "fruit"]}, None, None, "categories ['wound'] missing"),
    ({"rating_columns": ["disgust"]}, lambda t: t.assign(disgust=t.disgust.astype(object).where(t.index != 4, "high")),
     None, "'high'"),
    ({"rating_columns": ["disgust"]}, lambda t: t.assign(disgust=t.disgust.where(t.index != 2, np.nan)), None,
     "on lines [4]"),
    (None, lambda t: pd.concat([t, t.iloc[[0]]]), None, "more than once"),
    (None, lambda t: t.assign(group=t.group.where(t.index != 0, "")), None, "give every image a category"),
    (None, lambda t: t.iloc[1:], None, "images without a row"),
    (None, None, _drop_first_image, "rows without an image"),
    (None, None, _corrupt_image, "fruit_03.png"),
    (None, None, _same_name_other_extension, "share a name apart from case/extension: ['wound_01.png']"),
    ({"rating_scale": [7, 1]}, None, None, "'rating_scale' must be [low, high] with low < high"),
    ({"rating_scale": "1-9"}, None, None, "'rating_scale' must be [low, high]"),
    ({"rating_scale": [1, 9]}, lambda t: t.assign(valence=t.valence.where(t.index != 3, 42.0)), None,
     "column 'valence' has values [42.0] on lines [5] outside the rating_scale [1.0, 9.0]"),
])
def test_invalid_sets_fail_with_one_line(tmp_path, sidecar, table_edit, damage, message):
    root = write_rated_set(tmp_path / "set", sidecar=sidecar, table_edit=table_edit)
    if damage:
        damage(root)
    with pytest.raises(UserError) as err:
        load_rated_set(root)
    text = str(err.value)
    assert message in text and "\n" not in text


def test_cli_reports_a_bad_set_without_traceback_or_output(tmp_path, capsys):
    root = write_rated_set(tmp_path / "set", sidecar={"category_column": "kind"})
    out = tmp_path / "results"
    code = cli.main(["run", "--data", str(root), "--out", str(out), "--scenarios", "align-*", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "ratings.csv" in err
    assert not (out / RESULTS_FILE).exists()


def test_generic_set_runs_end_to_end(tmp_path, monkeypatch):
    """Image features encode the rating monotonically: rho = 1 for disgust (through the
    sidecar's disgust_column) and -1 for valence (= 10 - disgust) scored by the same prompts."""
    root = write_rated_set(tmp_path / "set", n_per_cat=8)
    stimuli = load_rated_set(root)
    disgust = stimuli.ratings("disgust")
    angle = np.pi / 4 + 0.05 * (disgust - 5) / 8  # small angles: the softmax stays unsaturated
    images = {x.file_name: np.array([np.cos(a), np.sin(a), 0.0]) for x, a in zip(stimuli, angle, strict=True)}
    encoder = KnownAnswerEncoder(images, lambda t: np.array([0.0, 1, 0]) if "disgusting" in t else np.array([1.0, 0, 0]))
    for sc in alignment_scenarios("valence", prompt_pair={"high": ["a disgusting photo"], "low": ["a photo"]}):
        monkeypatch.setitem(REGISTRY, sc.id, sc)
    out = run(RunConfig(data=root, out=tmp_path / "results", report=False, progress=False,
                        scenarios=["align-disgust-*", "align-valence-*", "zeroshot-disgust-binary"]), encoder=encoder)
    doc = json.loads((out / RESULTS_FILE).read_text())
    zs = doc["scenarios"]["align-disgust-zeroshot"]
    assert zs["options"]["rating"] == "disgust" and zs["labels"] == CATEGORIES and zs["n"] == 24
    assert zs["metrics"]["spearman_rho"] == pytest.approx(1.0)
    assert zs["options"]["sd_column"] is None and "noise_ceiling" in zs["extra"]
    assert doc["scenarios"]["align-disgust-probe"]["metrics"]["spearman_rho"] > 0.9
    assert doc["scenarios"]["align-valence-zeroshot"]["metrics"]["spearman_rho"] == pytest.approx(-1.0)
    assert doc["scenarios"]["align-valence-probe"]["metrics"]["spearman_rho"] > 0.9
    # The disgust label space reads the same column: threshold 5 on "disgust".
    assert doc["scenarios"]["zeroshot-disgust-binary"]["n"] == 24
    pred = pd.read_csv(out / ALIGNMENT_PREDICTIONS_FILE)
    rows = pred[pred.scenario == "align-disgust-zeroshot"]
    assert stats.spearmanr(rows.rating, rows.score).statistic == pytest.approx(1.0)
    assert stats.pearsonr(rows.rating, rows.score).statistic == pytest.approx(zs["metrics"]["pearson_r"], abs=1e-9)
    assert pd.api.types.is_string_dtype(pred.stimulus) and set(rows.category) == set(CATEGORIES)  # "spider_00"
    assert set(pd.read_csv(out / PREDICTIONS_FILE).scenario) == {"zeroshot-disgust-binary"}


def test_unreadable_sidecar_is_one_user_error(tmp_path, monkeypatch):
    from pathlib import Path

    from dirti_bench.data.ratedset import SIDECAR, read_spec
    from dirti_bench.errors import UserError

    (tmp_path / SIDECAR).write_text("{}")
    real = Path.read_text

    def denied(self, *a, **k):
        if self.name == SIDECAR:
            raise PermissionError(13, "Permission denied")
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "read_text", denied)
    with pytest.raises(UserError, match=r"cannot read .*dirti-bench.json \(Permission denied\)"):
        read_spec(tmp_path)


DISGUST_SCENARIOS = ["zeroshot-disgust", "zeroshot-disgust-binary", "ensemble-disgust-clip80", "ensemble-disgust-affect",
                     "template-sweep-disgust-clip80", "template-sweep-disgust-affect", "threshold-sweep-disgust",
                     "threshold-sweep-disgust-binary", "knn-split-disgust", "knn-cv10-disgust",
                     "linear-probe-cv10-disgust", "align-disgust-zeroshot", "align-disgust-probe"]
OASIS_RAN = ["zeroshot-baseline", "ensemble-baseline-clip80", "ensemble-baseline-affect", "template-sweep-baseline-clip80",
             "template-sweep-baseline-affect", "knn-split-baseline", "knn-cv10-baseline", "linear-probe-cv10-baseline",
             "align-valence-zeroshot", "align-valence-probe", "align-arousal-zeroshot", "align-arousal-probe",
             "align-beauty-zeroshot", "align-beauty-probe"]
NO_DISGUST = ("oasis-like has no disgust rating (no 'disg_mean_all' column, no 'disgust_column' in its "
              "dirti-bench.json)")


def run_oasis_like(root, out, capsys, *args) -> tuple[int, str, str]:
    code = cli.main(["run", "--data", str(root), "--model", "dirti-tiny", "--pretrained", "random", "--no-progress",
                     "--out", str(out), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def check_oasis_like_run(out, err: str, n: int) -> dict:
    """Default scenarios on a set without a disgust column: every task its data supports ran, the
    disgust tasks were skipped with one line (before any encoding) and recorded, the report is complete."""
    doc = json.loads((out / RESULTS_FILE).read_text())
    assert list(doc["scenarios"]) == OASIS_RAN
    assert all(sc["n"] == n for sid, sc in doc["scenarios"].items() if sid != "knn-split-baseline")
    assert doc["skipped"] == dict.fromkeys(DISGUST_SCENARIOS, NO_DISGUST)
    lines = err.splitlines()
    skip = [i for i, line in enumerate(lines) if line.startswith("skipped")]
    assert len(skip) == 1 and lines[skip[0]] == f"skipped 13 scenarios ({', '.join(DISGUST_SCENARIOS)}): {NO_DISGUST}"
    assert skip[0] < next(i for i, line in enumerate(lines) if line.startswith("images:"))  # before encoding
    beauty = doc["scenarios"]["align-beauty-zeroshot"]["options"]
    assert beauty["prompt_pair"] == "neutral" and beauty["prompts_high"] == ["This is a photo high in beauty"]
    assert doc["scenarios"]["align-valence-zeroshot"]["options"]["prompt_pair"] == "valence"
    assert doc["run"]["rating_scale"] == [1.0, 7.0] and doc["run"]["disgust_column"] == "disg_mean_all"
    md = (out / "report.md").read_text()
    assert "## Skipped scenarios" in md and all(f"| {sid} " in md for sid in DISGUST_SCENARIOS)
    figures = {p.name for p in (out / "figures").iterdir()}
    assert {f"alignment-{sid}.png" for sid in OASIS_RAN if sid.startswith("align-")} <= figures
    assert {f"confusion-{sid}.png" for sid in OASIS_RAN if not sid.startswith(("align-", "template-sweep-"))} <= figures
    assert "template-sweeps.png" in figures  # a sweep's figure is its own, not a confusion matrix
    align = pd.read_csv(out / ALIGNMENT_PREDICTIONS_FILE)
    assert pd.api.types.is_string_dtype(align.stimulus) and set(align.category) == {"Animal", "Object", "Person", "Scene"}
    return doc


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_an_oasis_like_set_runs_every_task_its_data_supports(tmp_path, capsys):
    root = write_oasis_like(tmp_path / "oasis", n=48)
    out = tmp_path / "results"
    code, stdout, err = run_oasis_like(root, out, capsys, "--projection", "pca")
    assert code == 0, err
    check_oasis_like_run(out, err, 48)
    assert "skipped" not in stdout  # said once, on the terminal's stage lines
    assert (out / "figures" / "pca.png").is_file()


@pytest.mark.perf  # full size: 900 photos, default scenarios, the UMAP report (a minute on 2 cores)
def test_an_oasis_sized_set_runs_to_a_complete_report(tmp_path, capsys):
    root = write_oasis_like(tmp_path / "oasis", n=900)
    out = tmp_path / "results"
    code, _, err = run_oasis_like(root, out, capsys)
    assert code == 0, err
    check_oasis_like_run(out, err, 900)
    assert (out / "figures" / "umap.png").is_file()


def test_scenarios_the_data_cannot_support_fail_before_any_encoding(tmp_path, capsys, monkeypatch):
    from dirti_bench.encoding.cache import CachedEncoder

    def no_encoding(*_args, **_kwargs):
        raise AssertionError("images were encoded before the scenarios were checked against the data")

    monkeypatch.setattr(CachedEncoder, "encode_images", no_encoding)
    root = write_oasis_like(tmp_path / "oasis", n=8)
    code, _, err = run_oasis_like(root, tmp_path / "out", capsys, "--scenarios", "zeroshot-disgust*")
    assert code == 2 and err.strip().splitlines()[-1] == (
        "error: none of the chosen scenarios can run on oasis-like: skipped 2 scenarios (zeroshot-disgust, "
        f"zeroshot-disgust-binary): {NO_DISGUST}")
    assert not (tmp_path / "out").exists()


def test_a_one_category_set_skips_the_category_tasks_in_one_line_and_runs_the_rest(tmp_path, capsys):
    import warnings

    root = write_rated_set(tmp_path / "set", n_per_cat=12, categories=["spider"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, _, err = run_oasis_like(root, tmp_path / "out", capsys, "--no-report")
    assert code == 0, err
    assert not [w for w in caught if "sklearn" in w.filename or "scipy" in w.filename], [str(w.message) for w in caught]
    assert "Warning" not in err and "small_class_policy" not in err
    category_tasks = ["zeroshot-baseline", "ensemble-baseline-clip80", "ensemble-baseline-affect",
                      "template-sweep-baseline-clip80", "template-sweep-baseline-affect", "knn-split-baseline",
                      "knn-cv10-baseline", "linear-probe-cv10-baseline"]
    reason = "only one category ('spider') in the data; a classification needs at least 2"
    assert [line for line in err.splitlines() if line.startswith("skipped")] == [
        f"skipped 8 scenarios ({', '.join(category_tasks)}): {reason}"]
    doc = json.loads((tmp_path / "out" / RESULTS_FILE).read_text())
    assert doc["skipped"] == dict.fromkeys(category_tasks, reason)
    assert {"zeroshot-disgust-binary", "align-disgust-zeroshot", "align-disgust-probe",
            "align-valence-zeroshot"} <= set(doc["scenarios"])
    assert not set(doc["scenarios"]) & set(category_tasks)


@pytest.mark.parametrize(("column", "spread"), [("Valence_SD", True), ("valenceSD", True), ("Arousal N", True),
                                                ("disgust_sd", True), ("beauty", False), ("disg_mean_all", False),
                                                ("Sadness", False)])
def test_spread_columns_are_told_from_ratings(column, spread):
    from dirti_bench.data.stimuli import is_spread_column

    assert is_spread_column(column) is spread


def test_a_prompt_file_that_misses_classes_fails_before_any_encoding(tmp_path, capsys, monkeypatch):
    from dirti_bench.encoding.cache import CachedEncoder

    monkeypatch.setattr(CachedEncoder, "encode_images", lambda *a, **k: (_ for _ in ()).throw(AssertionError("encoded")))
    cupl = tmp_path / "cupl.json"
    cupl.write_text(json.dumps({"food": ["a photo of food"], "animals": ["a photo of an animal"]}))
    code = cli.main(["run", "--demo", "--no-progress", "--out", str(tmp_path / "out"), "--scenarios", "zeroshot-baseline",
                     "--templates", str(cupl)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith(f"error: prompt file {cupl} covers the category task only partly: "
                                            "no prompts for ['body products'")


@pytest.mark.parametrize(("key", "value"), [("images", "../../elsewhere"), ("images", "img/../../img"),
                                            ("ratings", "../ratings.csv")])
def test_a_relative_path_climbing_out_of_the_sidecar_folder_is_refused(tmp_path, key, value):
    root = write_rated_set(tmp_path / "set", sidecar={key: value})
    with pytest.raises(UserError) as err:
        load_rated_set(root)
    text = str(err.value)
    assert f"{key!r} {value!r} leads out of the sidecar's folder" in text and "absolute path" in text
    assert str(root / SIDECAR) in text


def test_a_relative_path_that_stays_inside_is_fine_and_not_announced(tmp_path):
    root = write_rated_set(tmp_path / "set", sidecar={"images": "img/../img"})
    notes = []
    assert len(load_rated_set(root, note=notes.append)) == 18 and notes == []


def test_an_absolute_path_outside_is_followed_and_announced_in_the_run_output(tmp_path, capsys):
    from dirti_bench.pipeline import load_stimuli

    root = write_rated_set(tmp_path / "set")
    shared = tmp_path / "shared-images"
    (root / "img").rename(shared)
    write_json(root / SIDECAR, {**json.loads((root / SIDECAR).read_text()), "images": str(shared)})
    stimuli = load_stimuli(RunConfig(data=root))
    assert len(stimuli) == 18 and all(s.path.parent == shared for s in stimuli)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"note: images of toy read from {shared} (outside {root}")
