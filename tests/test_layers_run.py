"""``dirti-bench run --layers all --controls ...`` end to end on the demo set (dirti-tiny)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr

from dirti_bench.cli import main
from dirti_bench.encoding.layers import LayerSpec, extract_layers, jl_dim

LAYERED = ["--layers", "all", "--controls", "pixels", "random-init", "--scenarios", "align-disgust-probe"]


def run(capsys, out, *args, report=False):
    code = main(["run", "--no-progress", *([] if report else ["--no-report"]), "--demo", "--out", str(out), *args])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads((out / "results.json").read_text()), captured


@pytest.fixture(scope="module")
def layered_run(tmp_path_factory):
    """One cold layer-wise run with the report, and a warm re-run, in the same isolated cache home."""
    import os

    home = tmp_path_factory.mktemp("home")
    old = os.environ.get("DIRTI_BENCH_HOME")
    os.environ["DIRTI_BENCH_HOME"] = str(home)
    try:
        cold_out, warm_out = home / "cold", home / "warm"
        assert main(["run", "--no-progress", "--demo", "--out", str(cold_out), *LAYERED]) == 0
        assert main(["run", "--no-progress", "--no-report", "--demo", "--out", str(warm_out), *LAYERED]) == 0
    finally:
        if old is None:
            os.environ.pop("DIRTI_BENCH_HOME", None)
        else:
            os.environ["DIRTI_BENCH_HOME"] = old
    return cold_out, warm_out


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_layer_scenarios_write_their_files_and_figure(layered_run):
    cold, _ = layered_run
    doc = json.loads((cold / "results.json").read_text())
    for sid in ("layers-disgust", "pixels-disgust", "random-init-disgust"):
        assert sid in doc["scenarios"], sid
    layers = doc["scenarios"]["layers-disgust"]
    assert layers["options"]["layers"]["layers"] == ["block01", "block02", "pooled"]
    assert layers["options"]["layers"]["depths"] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert layers["options"]["layers"]["pooling"] == "class token"
    assert {"superlative_r", "superlative_minus_nested", "nested_modal_depth", "published_loo_r"} <= set(layers["metrics"])
    assert len(layers["extra"]["layer_choice"]["nested"]["per_fold"]) == layers["options"]["folds_used"]
    random_init = doc["scenarios"]["random-init-disgust"]
    assert [s["seed"] for s in random_init["extra"]["per_seed"]] == [1, 2, 3]
    assert random_init["metrics"]["band_min_r"] <= random_init["metrics"]["band_max_r"]
    assert "model_minus_pixels_r" in doc["scenarios"]["pixels-disgust"]["metrics"]
    assert (cold / "layer_profile_disg_mean_all.png").stat().st_size > 10_000


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_every_layer_score_and_headline_recomputes_from_its_predictions_files(layered_run):
    cold, _ = layered_run
    doc = json.loads((cold / "results.json").read_text())
    predictions = pd.read_csv(cold / "layer_predictions.csv")
    scores = pd.read_csv(cold / "layer_scores.csv")
    assert list(predictions.columns) == ["scenario", "weights", "layer", "depth", "kind", "stimulus", "fold",
                                         "rating", "prediction"]
    for row in scores.itertuples():
        part = predictions[(predictions.scenario == row.scenario) & (predictions.weights == row.weights)
                           & (predictions.layer == row.layer)]
        cv, loo = part[part.kind == "cv"], part[part.kind == "loo-all-data"]
        assert len(cv) == 60 and len(loo) == 60
        assert pearsonr(cv.rating, cv.prediction).statistic == pytest.approx(row.pearson_r, abs=1e-9)
        assert pearsonr(loo.rating, loo.prediction).statistic == pytest.approx(row.published_loo_r, abs=1e-9)
    # the superlative choice is the best per-layer cv r; the nested headline recomputes from alignment_predictions
    layers = doc["scenarios"]["layers-disgust"]
    own = scores[scores.scenario == "layers-disgust"]
    assert own.loc[own.pearson_r.idxmax(), "layer"] == layers["extra"]["layer_choice"]["superlative"]["layer"]
    aligned = pd.read_csv(cold / "alignment_predictions.csv")
    nested = aligned[aligned.scenario == "layers-disgust"]
    assert pearsonr(nested.rating, nested.score).statistic == pytest.approx(layers["metrics"]["pearson_r"], abs=1e-9)
    # each fold's nested prediction is the chosen layer's own out-of-fold prediction
    chosen = {f["fold"]: f["layer"] for f in layers["extra"]["layer_choice"]["nested"]["per_fold"]}
    cv = predictions[(predictions.scenario == "layers-disgust") & (predictions.kind == "cv")]
    picked = cv[cv.apply(lambda r: chosen[r.fold] == r.layer, axis=1)].set_index("stimulus")["prediction"]
    assert np.allclose(nested.set_index("stimulus")["score"].loc[picked.index], picked)
    # random-init: one prediction row per stimulus and seed
    assert (aligned.scenario == "random-init-disgust").sum() == 60 * 3


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_warm_layer_wise_rerun_does_no_forward_and_reproduces(layered_run):
    cold, warm = layered_run
    cold_doc = json.loads((cold / "results.json").read_text())
    warm_doc = json.loads((warm / "results.json").read_text())
    assert warm_doc["run"]["forward_calls"] == 0
    for sid in ("layers-disgust", "pixels-disgust", "random-init-disgust"):
        assert warm_doc["scenarios"][sid]["metrics"] == cold_doc["scenarios"][sid]["metrics"]


def test_cold_layer_wise_run_shares_the_forward_with_the_embeddings(demo_master, tmp_path, capsys):
    """The layer forward fills the embedding cache: batches of 32 over 60 images make 2 forwards, not 4."""
    doc, captured = run(capsys, tmp_path / "out", "--layers", "all", "--scenarios", "align-disgust-probe",
                        "--batch-size", "32")
    assert doc["run"]["forward_calls"] == 2
    assert "layers (token): 0 of 60 images cached, encoding 60" in captured.err
    assert "images: 60 of 60 embeddings cached" in captured.err


def test_srp_mode_reduces_to_the_jl_dimension_and_projects_the_same_way_each_batch(demo_stimuli):
    from dirti_bench.encoding.cache import CachedEncoder
    from dirti_bench.encoding.models import ClipEncoder
    from dirti_bench.paths import embedding_cache_dir

    paths = [s.path for s in demo_stimuli.stimuli][:12]
    keys = [s.sha256 for s in demo_stimuli.stimuli][:12]
    k = jl_dim(12)
    assert k == 2841 or k > 0  # sklearn's bound for n=12, eps=0.1
    # ViT-B-32 tower shape with a tiny width: 50 tokens x 128 = 6400 > k, so the map is projected
    clip = ClipEncoder("dirti-tiny", "random", progress=False, batch_size=5)
    small = extract_layers(CachedEncoder(clip, embedding_cache_dir()), paths, keys, LayerSpec("srp"))
    assert [a.shape for a in small.arrays] == [(12, 17 * 64), (12, 17 * 64), (12, 64)]
    assert small.reduction["block01"] == f"kept whole ({17 * 64})"
    # batch size must not change the features: the projection is fitted once and applied per batch
    clip2 = ClipEncoder("dirti-tiny", "random", progress=False, batch_size=12)
    whole = extract_layers(clip2, paths, keys, LayerSpec("srp", srp_seed=1))
    assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(small.arrays, whole.arrays, strict=True))


def test_srp_projection_is_seeded_and_batch_independent():
    import torch

    from dirti_bench.encoding.layers import _Reducer

    class Tower:  # a stand-in with a wide feature map, so the projection really reduces
        pool_type = "tok"

        class transformer:  # noqa: N801
            resblocks = [0, 1]

        def forward_intermediates(self, x, **_):
            tokens = [x.reshape(len(x), 40, -1) * (i + 1) for i in range(2)]
            return {"image_intermediates": [t[:, 1:] for t in tokens],
                    "image_intermediates_prefix": [t[:, :1] for t in tokens], "image_features": x[:, :8]}

        def _pool(self, x):
            return x[:, 0], x[:, 1:]

    x = torch.randn(20, 40 * 200, generator=torch.Generator().manual_seed(0))
    one = _Reducer(Tower(), LayerSpec("srp", srp_seed=3), n_stimuli=20)
    one(x)
    two = _Reducer(Tower(), LayerSpec("srp", srp_seed=3), n_stimuli=20)
    for part in (x[:7], x[7:]):
        two(part)
    k = jl_dim(20)
    assert k < 40 * 200
    assert [a.shape[1] for a in one.arrays()] == [k, k, 200]
    assert all(np.allclose(a, b, atol=1e-4) for a, b in zip(one.arrays(), two.arrays(), strict=True))
    other = _Reducer(Tower(), LayerSpec("srp", srp_seed=4), n_stimuli=20)
    other(x)
    assert not np.allclose(one.arrays()[0], other.arrays()[0])
    # Johnson-Lindenstrauss: pairwise distances survive the projection within ~eps
    from scipy.spatial.distance import pdist

    ratio = pdist(one.arrays()[0]) / pdist(x.numpy())
    assert np.all(np.abs(ratio - 1) < 0.25)


def test_bad_layer_options_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--no-progress", "--no-report", "--demo", "--out", str(tmp_path / "o"), "--controls", "pixel"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and "'pixel'" in err


def test_unknown_control_or_layers_choice_from_the_api_is_a_user_error(tmp_path):
    from dirti_bench.errors import UserError
    from dirti_bench.pipeline import RunConfig, plan_scenarios

    with pytest.raises(UserError, match=r"option controls=\['pixel'\] must be a list of one of 'pixels'"):
        RunConfig(demo=True, out=tmp_path, controls=["pixel"])  # refused as the config is made
    with pytest.raises(UserError, match="option layers='some' must be one of 'final', 'all'"):
        RunConfig(demo=True, out=tmp_path, layers="some")
    chosen = [s.id for s in plan_scenarios(RunConfig(demo=True, out=tmp_path, layers="all", ratings=["fear_mean_all"],
                                                     scenarios=["zeroshot-baseline"]))[0]]
    assert {"layers-disgust", "layers-fear", "zeroshot-baseline"} <= set(chosen)
    assert not any(s.startswith(("pixels-", "random-init-")) for s in chosen)


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_layer_rsa_is_written_and_recomputes_from_the_saved_rdms(layered_run):
    cold, _ = layered_run
    doc = json.loads((cold / "results.json").read_text())
    table = pd.read_csv(cold / "layer_rsa.csv")
    saved = np.load(cold / "layer_rdms.npz")
    assert set(table.weights) == {"random:seed=0", "random:seed=1", "random:seed=2", "random:seed=3"}
    assert len(table) == 4 * 3
    from scipy.stats import spearmanr

    for row in table.itertuples():
        rho = spearmanr(saved[f"{row.weights}|{row.layer}"], saved["human"]).statistic
        assert rho == pytest.approx(row.spearman_rho, abs=1e-9)
        assert 0 < row.p_perm <= 1 and row.ci_low <= row.ci_high
    assert doc["run"]["layer_rsa"]["ratings"] == table.ratings.iloc[0].split(";")
    assert "correlation distance" in doc["run"]["layer_rsa"]["model_distance"]


def test_an_encoder_without_an_image_tower_skips_the_layer_scenario(demo_stimuli):
    """The known-answer double has embeddings but no layers: the scenario is not runnable, not a crash."""
    from dirti_bench.contracts import EvalContext
    from dirti_bench.errors import ScenarioNotRunnable
    from dirti_bench.pipeline import evaluate
    from dirti_bench.scenarios import layer_scenarios
    from known_answer import KnownAnswerEncoder

    rng = np.random.default_rng(0)
    encoder = KnownAnswerEncoder({s.path: rng.normal(size=8) for s in demo_stimuli.stimuli}, lambda text: np.ones(8))
    ctx = EvalContext(demo_stimuli, encoder, encoder.encode_images([s.path for s in demo_stimuli.stimuli]))
    skipped: dict[str, str] = {}
    results = evaluate(layer_scenarios("disg_mean_all", controls=["pixels"]), ctx, skipped=skipped)
    assert [r.id for r in results] == ["pixels-disgust"]
    assert "open_clip image tower" in skipped["layers-disgust"]
    with pytest.raises(ScenarioNotRunnable):
        evaluate(layer_scenarios("disg_mean_all"), ctx)


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_report_shows_each_ratings_layer_profile_with_its_choices_and_controls(layered_run):
    cold, _ = layered_run
    doc = json.loads((cold / "results.json").read_text())
    md, html = (cold / "report.md").read_text(), (cold / "report.html").read_text()
    section = md[md.index("## Layer profiles"):]
    section = section[:section.index("\n## ", 1)] if "\n## " in section[1:] else section
    choice = doc["scenarios"]["layers-disgust"]["extra"]["layer_choice"]
    nested, sup = choice["nested"], choice["superlative"]
    random_init, pixels = doc["scenarios"]["random-init-disgust"], doc["scenarios"]["pixels-disgust"]
    row = next(line for line in section.splitlines() if line.startswith("| disg_mean_all"))
    for text in (f"{nested['pearson_r']:.3f} [{nested['ci'][0]:.3f}, {nested['ci'][1]:.3f}]",
                 f"{nested['modal_layer']} ({nested['modal_depth']:.2f}, {nested['folds_agreeing']}/{nested['folds']})",
                 f"{sup['layer']} ({sup['depth']:.2f})", f"{sup['pearson_r']:.3f} [{sup['ci'][0]:.3f}",
                 f"{choice['gap']['superlative_minus_nested']:.3f} [",
                 f"{random_init['metrics']['band_min_r']:.3f} to {random_init['metrics']['band_max_r']:.3f} (1, 2, 3)",
                 f"{random_init['metrics']['trained_minus_random_r']:.3f} [",
                 f"{pixels['metrics']['pearson_r']:.3f} [{pixels['ci']['pearson_r'][0]:.3f}"):
        assert text in row, text
    figure = "figures/layer_profile_disg_mean_all.png"
    assert f"]({figure})" in section
    assert (cold / figure).stat().st_size > 10_000
    assert "<h2>Layer profiles</h2>" in html or ">Layer profiles</h2>" in html
    assert 'alt="disg_mean_all: out-of-fold Pearson r' in html and "data:image/png;base64," in html


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_classifier_layer_profiles_and_controls_recompute_and_reach_report_and_leaderboard(layered_run, tmp_path):
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    from dirti_bench.reporting.runs_report import write_comparison
    from dirti_bench.validity import flag_codes

    cold, warm = layered_run
    doc = json.loads((cold / "results.json").read_text())
    predictions = pd.read_csv(cold / "layer_class_predictions.csv", keep_default_na=False)
    scores = pd.read_csv(cold / "layer_class_scores.csv")
    ids = {"linear-probe-layers-baseline", "knn-layers-baseline", "linear-probe-pixels-baseline",
           "linear-probe-random-init-baseline"}
    assert ids <= set(scores.scenario) and ids <= set(doc["scenarios"])
    layer_rows = predictions[predictions.kind == "layer"]
    for row in scores.itertuples():  # every per-layer score, from the saved predictions, with scikit-learn
        labels = doc["scenarios"][row.scenario]["labels"]
        part = layer_rows[(layer_rows.scenario == row.scenario) & (layer_rows.weights == row.weights)
                          & (layer_rows.layer == row.layer)]
        assert len(part) == doc["scenarios"][row.scenario]["n"]
        assert accuracy_score(part.y_true, part.y_pred) == pytest.approx(row.accuracy, abs=1e-12)
        assert balanced_accuracy_score(part.y_true, part.y_pred) == pytest.approx(row.balanced_accuracy, abs=1e-12)
        assert f1_score(part.y_true, part.y_pred, labels=labels, average="macro",
                        zero_division=0) == pytest.approx(row.f1_macro, abs=1e-12)
    for sid in ids - {"linear-probe-pixels-baseline"}:  # the nested rows are the headline predictions
        nested = predictions[(predictions.scenario == sid) & (predictions.kind == "nested")
                             & (predictions.weights == scores[scores.scenario == sid].weights.iloc[0])]
        assert accuracy_score(nested.y_true, nested.y_pred) == pytest.approx(doc["scenarios"][sid]["metrics"]["accuracy"])
    md = (cold / "report.md").read_text()
    section = md[md.index("## Layer profiles of the classes"):]
    section = section[:section.index("\n## ", 1)]
    assert "| category | logistic probe |" in section and "| category | KNN " in section
    assert "](figures/layer_profile_task-category.png)" in section
    assert (cold / "figures" / "layer_profile_task-category.png").stat().st_size > 10_000
    write_comparison([cold, warm], tmp_path / "cmp")
    board = pd.read_csv(tmp_path / "cmp" / "leaderboard.csv", keep_default_na=False)
    for sid in ids:
        rows = board[(board.scenario == sid) & (board.metric == "accuracy")]
        assert len(rows) == 2 and set(rows.flag) == {";".join(flag_codes(doc["scenarios"][sid]))}, sid
    for sid, metric in (("linear-probe-random-init-baseline", "trained_minus_random_accuracy"),
                        ("linear-probe-pixels-baseline", "model_minus_pixels_accuracy"),
                        ("linear-probe-layers-baseline", "superlative_minus_nested_accuracy")):
        rows = board[(board.scenario == sid) & (board.metric == metric)]
        assert len(rows) == 2 and rows.ci_low.astype(str).str.len().min() > 0, (sid, metric)


def _probe_layers_ctx(demo_stimuli, corrupt_rows=()):
    """Demo stimuli with constructed layers: only layer 'block02' carries the category (one-hot + noise);
    ``corrupt_rows`` get noise in every layer (a test fold's rows, to show its choice never reads them)."""
    from dirti_bench.contracts import EvalContext
    from dirti_bench.encoding.layers import LayerFeatures

    rng = np.random.default_rng(0)
    stimuli = demo_stimuli.stimuli
    cats = sorted({s.category for s in stimuli})
    n, width = len(stimuli), 12
    arrays = [rng.normal(size=(n, width)).astype(np.float32) for _ in range(4)]
    arrays[1][:, :len(cats)] += 3 * np.eye(len(cats))[[cats.index(s.category) for s in stimuli]]
    for a in arrays:
        a[list(corrupt_rows)] = rng.normal(size=(len(corrupt_rows), width))
    ctx = EvalContext(demo_stimuli, object(), np.zeros((n, 4), np.float32), seed=0)
    ctx.layers[("{}", "token", 0)] = LayerFeatures(["block01", "block02", "block03", "pooled"],
                                                   [0.25, 0.5, 0.75, 1.0], arrays, "token", "class token")
    return ctx


def _signal_layer_found_in_each_training_fold(scenario, demo_stimuli, min_accuracy):
    """The classifier per layer picks the signal layer (block02) in every fold, its headline accuracy
    recomputes from its predictions, and a fold's choice reads its training part only: noise in its
    test rows leaves its layer and inner scores as they were. Returns the result."""
    from sklearn.metrics import accuracy_score

    from dirti_bench.evaluators.crossval import cv_space, cv_splits
    from dirti_bench.pipeline import evaluate_scenario

    ctx = _probe_layers_ctx(demo_stimuli)
    result = evaluate_scenario(scenario, ctx)
    nested = result.extra["layer_choice"]["nested"]
    assert [f["layer"] for f in nested["per_fold"]] == ["block02"] * nested["folds"]
    assert nested["modal_depth"] == 0.5
    rows = result.predictions
    assert accuracy_score(rows["y_true"], rows["y_pred"]) == pytest.approx(result.metrics["accuracy"])
    assert result.metrics["accuracy"] >= min_accuracy
    space, n_splits = cv_space(scenario, ctx)
    test_rows = cv_splits(space.y_true, n_splits, scenario.options.split_seed)[0][1]
    row_of = {s.id: i for i, s in enumerate(demo_stimuli.stimuli)}
    corrupted = evaluate_scenario(scenario, _probe_layers_ctx(demo_stimuli, [row_of[space.stimulus_ids[i]]
                                                                            for i in test_rows]))
    first = corrupted.extra["layer_choice"]["nested"]["per_fold"][0]
    assert first["layer"] == nested["per_fold"][0]["layer"]
    assert first["inner_accuracy"] == nested["per_fold"][0]["inner_accuracy"]
    assert corrupted.metrics["accuracy"] < result.metrics["accuracy"]  # the corrupted test rows do score worse
    return result


def test_logistic_probe_per_layer_finds_the_signal_layer_inside_each_training_fold(demo_stimuli):
    from dirti_bench.scenarios import probe_layer_scenarios

    scenario = next(s for s in probe_layer_scenarios() if s.task == "category")
    _signal_layer_found_in_each_training_fold(scenario, demo_stimuli, min_accuracy=0.9)


def test_knn_per_layer_finds_the_signal_layer_inside_each_training_fold(demo_stimuli):
    from dirti_bench.scenarios import knn_layer_scenarios

    scenario = next(s for s in knn_layer_scenarios() if s.task == "category")
    assert scenario.id == "knn-layers-baseline" and scenario.options.k == 6
    # chance: 1/6; KNN weighs the noise columns as much as the signal
    result = _signal_layer_found_in_each_training_fold(scenario, demo_stimuli, min_accuracy=0.75)
    assert result.options["model"] == "StandardScaler -> KNeighborsClassifier"
    assert 0 <= result.options["tied_votes"] <= result.n


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_layer_scenarios_and_controls_reach_the_leaderboard_and_comparison_with_headline_and_flag(layered_run,
                                                                                                  tmp_path):
    from dirti_bench.reporting.runs_report import write_comparison
    from dirti_bench.validity import flag_codes

    cold, warm = layered_run
    write_comparison([cold, warm], tmp_path / "cmp")
    board = pd.read_csv(tmp_path / "cmp" / "leaderboard.csv", keep_default_na=False)
    report = (tmp_path / "cmp" / "report.md").read_text()
    table = report[report.index("### Alignment with human ratings"):]
    doc = json.loads((cold / "results.json").read_text())
    for sid in ("layers-disgust", "pixels-disgust", "random-init-disgust"):
        sc = doc["scenarios"][sid]
        rows = board[(board["scenario"] == sid) & (board["metric"] == "spearman_rho")]
        assert len(rows) == 2, sid  # one per run
        assert rows["value"].astype(float).tolist() == pytest.approx([sc["metrics"]["spearman_rho"]] * 2)
        assert set(rows["flag"]) == {";".join(flag_codes(sc))}, sid
        line = next((row for row in table.splitlines() if row.startswith(f"| {sid} ")), None)
        assert line is not None, f"{sid} is not in the comparison's headline table"
        assert f"{sc['metrics']['spearman_rho']:.3f}" in line, sid


def test_a_set_too_small_for_the_inner_layer_choice_skips_those_scenarios_before_encoding(tmp_path, capsys):
    """One disgusting and one neutral photo per category: an outer training fold holds a class once, so
    no inner split can choose a layer; the classifier-per-layer scenarios are skipped with that reason
    (they crashed in StratifiedKFold before), the rest of the run goes on."""
    from dirti_bench.data.demo import make_demo

    data = make_demo(tmp_path / "tiny", seed=0, n_disgust=1, n_neutral=1)
    out = tmp_path / "out"
    code = main(["run", "--no-progress", "--no-report", "--data", str(data), "--model", "dirti-tiny",
                 "--pretrained", "random", "--layers", "all", "--scenarios", "align-disgust-probe", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    doc = json.loads((out / "results.json").read_text())
    skipped = doc["skipped"]
    for sid in ("linear-probe-layers-baseline", "linear-probe-layers-disgust", "knn-layers-baseline"):
        assert sid in skipped and "inner split" in skipped[sid], skipped
        assert sid not in doc["scenarios"]
    assert "align-disgust-probe" in doc["scenarios"]
