"""Validity flags, zero-width intervals, multiplicity corrections and chance-corrected scales
(dirti_bench.validity), and that every reader carries them: terminal, report, figure titles,
leaderboard.csv and the comparison heatmap."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.multitest import multipletests

from dirti_bench.cli import main
from dirti_bench.pipeline import RunConfig, run
from dirti_bench.reporting.leaderboard import leaderboard_frame
from dirti_bench.reporting.report import _alignment_title, load_run
from dirti_bench.reporting.runs_report import _heatmap_cell, load_runs
from dirti_bench.results import RESULTS_FILE
from dirti_bench.results_types import Results
from dirti_bench.validity import (
    BELOW_CHANCE,
    DEGENERATE,
    INTERCEPT_ONLY,
    NO_SIGNAL,
    NOT_COMPARABLE,
    adjust_pvalues,
    chance_level,
    cohen_kappa,
    comparability,
    scenario_flags,
    value_with_ci,
    zero_width_reason,
)
from known_answer import KnownAnswerEncoder


def probe(k: int, n: int = 30, name: str = "alpha") -> dict:
    return {"task": "alignment", "metrics": {"spearman_rho": -0.4, "pearson_r": -0.42, "r2": -0.05,
                                             "noise_ceiling_spearman": 0.9},
            "ci": {"spearman_rho": [-0.51, -0.23], "noise_ceiling_spearman": [0.85, 0.93]},
            "extra": {"penalty": {"name": name, "mode": "tuned", "n_folds": n, "n_strongest": k}}}


def classifier(confusion, ci=None) -> dict:
    labels = [f"c{i}" for i in range(len(confusion))]
    cm = np.asarray(confusion)
    return {"task": "category", "labels": labels, "confusion": confusion,
            "per_class": {c: {"support": int(cm[i].sum())} for i, c in enumerate(labels)},
            "metrics": {"accuracy": float(np.trace(cm) / cm.sum())}, "ci": {"accuracy": ci} if ci else {}}


def codes(sc: dict) -> list[str]:
    return [f["flag"] for f in scenario_flags(sc)]


def test_intercept_only_flag_needs_more_than_half_of_the_folds():
    assert codes(probe(15)) == [] and codes(probe(16)) == [INTERCEPT_ONLY]
    sc = probe(30)
    assert value_with_ci(sc, "spearman_rho", short=True) == NO_SIGNAL
    assert "[" not in value_with_ci(sc, "spearman_rho") and "artefact" in value_with_ci(sc, "spearman_rho")
    # the raters' noise ceiling is about the people, not the probe: it keeps its interval
    assert value_with_ci(sc, "noise_ceiling_spearman") == "0.900 [0.85, 0.93]"
    assert value_with_ci(probe(3), "spearman_rho") == "-0.400 [-0.51, -0.23]"


def test_holm_is_statsmodels_holm_bit_for_bit_without_its_garbage_collection(monkeypatch):
    import gc

    from dirti_bench.validity import holm

    rng = np.random.default_rng(3)
    families = [rng.uniform(0, 1, n) for n in (1, 2, 7, 40)] + [np.array([0.01, 0.04, 0.04, 0.2, 0.01, 0.9])]
    expected = [multipletests(p, method="holm")[1] for p in families]
    monkeypatch.setattr(gc, "collect", lambda *a: pytest.fail("adjusting p-values ran a garbage collection"))
    for p, reference in zip(families, expected, strict=True):
        np.testing.assert_array_equal(holm(p), reference)
        holm_p, bh_q = adjust_pvalues(p)
        assert holm_p == reference.tolist()
        assert bh_q == pytest.approx(multipletests(p, method="fdr_bh")[1].tolist(), abs=0)


def test_degenerate_below_chance_and_zero_width_rules():
    constant = classifier([[0, 0, 10], [0, 0, 10], [0, 0, 30]], ci=[0.6, 0.6])
    assert codes(constant) == [DEGENERATE]  # predicts the majority class: at chance, not below
    assert chance_level(constant) == pytest.approx(30 / 50)
    minority = classifier([[10, 0, 0], [10, 0, 0], [30, 0, 0]], ci=[0.2, 0.2])
    assert codes(minority) == [DEGENERATE, BELOW_CHANCE]
    assert "zero width" in value_with_ci(minority, "accuracy")
    assert "one class predicted" in zero_width_reason(minority, "accuracy")
    # 94% of the predictions in one class: not degenerate (the rule is >= 95%)
    assert DEGENERATE not in codes(classifier([[47, 3], [47, 3]]))
    assert DEGENERATE in codes(classifier([[48, 2], [47, 3]]))
    perfect = classifier([[5, 0], [0, 5]], ci=[1.0, 1.0])
    assert codes(perfect) == [] and "all right or all wrong" in zero_width_reason(perfect, "accuracy")


def test_cohen_kappa_from_the_confusion_matrix_is_sklearns():
    rng = np.random.default_rng(0)
    for k in (2, 6, 11):
        y_true, y_pred = rng.integers(0, k, 200), rng.integers(0, k, 200)
        y_pred[:80] = y_true[:80]
        cm = pd.crosstab(pd.Categorical(y_true, range(k)), pd.Categorical(y_pred, range(k)), dropna=False).to_numpy()
        assert cohen_kappa(cm.tolist()) == pytest.approx(cohen_kappa_score(y_true, y_pred, labels=list(range(k))))


def test_holm_and_bh_match_statsmodels():
    p = [0.001, 0.04, 0.03, 0.5, 0.2]
    holm, bh = adjust_pvalues(p)
    assert holm == pytest.approx(multipletests(p, method="holm")[1].tolist())
    assert bh == pytest.approx(multipletests(p, method="fdr_bh")[1].tolist())
    assert adjust_pvalues([]) == ([], [])


def test_comparability_names_dataset_threshold_and_options():
    run_a = {"dataset": "dirti", "dataset_sha256": "a" * 64, "model": "m", "pretrained": "w"}
    sc = {"task": "disgust", "labels": ["x", "y"], "options": {"threshold": 5.0, "k": 6, "tied_votes": 3}}
    assert comparability(run_a, sc, run_a, {**sc, "options": {**sc["options"], "tied_votes": 9}}) == []
    six = {**sc, "options": {**sc["options"], "threshold": 6.0}}
    assert comparability(run_a, sc, run_a, six) == ["threshold 5.0 vs 6.0"]
    other = {**run_a, "dataset": "oasis", "dataset_sha256": "b" * 64}
    assert [d.split()[0] for d in comparability(run_a, sc, other, sc)] == ["dataset", "dataset"]
    assert comparability(run_a, sc, {**run_a, "model": "n"}, sc) == []  # a model comparison compares models
    assert comparability(run_a, sc, {**run_a, "model": "n"}, sc, same_model=True) == ["model 'm' vs 'n'"]


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_demo_intercept_only_probe_shows_no_ci_anywhere_and_corrections_recompute(tmp_path, capsys):
    demo_run = tmp_path / "demo"
    assert main(["run", "--demo", "--quiet", "--no-report", "--out", str(demo_run), "--scenarios",
                 "align-disgust-probe", "zeroshot-disgust", "ensemble-disgust-affect", "ensemble-disgust-clip80"]) == 0
    doc = json.loads((demo_run / RESULTS_FILE).read_text())
    probe_sc = doc["scenarios"]["align-disgust-probe"]
    assert [f["flag"] for f in probe_sc["flags"]] == [INTERCEPT_ONLY]
    rho, ci = probe_sc["metrics"]["spearman_rho"], probe_sc["ci"]["spearman_rho"]
    assert ci[1] < 0  # the raw interval excludes 0: exactly what must never be shown
    shown_ci = f"[{ci[0]:.2f}, {ci[1]:.2f}]"
    # terminal
    assert main(["report", str(demo_run), "--out", str(demo_run.parent / "rep")]) == 0
    from dirti_bench.reporting.console import summary_text

    terminal = summary_text(doc)
    row = next(line for line in terminal.splitlines() if line.startswith("align-disgust-probe"))
    assert NO_SIGNAL in row and shown_ci not in row and "intercept-only" in row
    # report (md and html) and the scatter's title
    md = (demo_run.parent / "rep" / "report.md").read_text()
    assert shown_ci not in md and f"{ci[0]:.3f}, {ci[1]:.3f}" not in md
    assert "flag intercept-only: align-disgust-probe" in md.split("## Runs")[0]  # in the Findings at the top
    run = load_run(demo_run)
    title = _alignment_title(run, run.results["align-disgust-probe"])
    assert NO_SIGNAL in title and "95% CI" not in title and f"{rho:.2f}" not in title
    # leaderboard: no CI for its correlations, its flag in the flag column
    board = leaderboard_frame([doc])
    rows = board[(board["scenario"] == "align-disgust-probe") & board["metric"].isin(["spearman_rho", "pearson_r"])]
    assert len(rows) == 2 and rows[["ci_low", "ci_high"]].isna().all().all()
    assert (rows["flag"] == INTERCEPT_ONLY).all()
    # heatmap: no value, "no signal"
    runs = load_runs([demo_run])
    value, note = _heatmap_cell(runs[0], runs[0], "align-disgust-probe", classification=False)
    assert np.isnan(value) and note == "no signal"
    # Holm and BH recompute with statsmodels from the raw p-values in results.json
    family = [c for c in doc["comparisons"] if "family" in c]
    assert {c["family"] for c in family} == {"prompt sets vs zeroshot-disgust (task disgust; McNemar)"}
    raw = [c["mcnemar"]["p_value"] for c in family]
    assert [c["p_holm"] for c in family] == pytest.approx(multipletests(raw, method="holm")[1].tolist())
    assert [c["q_bh"] for c in family] == pytest.approx(multipletests(raw, method="fdr_bh")[1].tolist())
    assert all(c["family_size"] == len(family) for c in family)


def test_a_constant_classifier_is_flagged_degenerate_everywhere(demo_master, tmp_path, monkeypatch):
    """Known-answer encoder: every image the same vector, so zero-shot predicts one class for all."""
    from matplotlib.figure import Figure

    monkeypatch.setattr("dirti_bench.pipeline.versions", dict)
    titles: list[str] = []
    savefig = Figure.savefig

    def recording_savefig(fig, *args, **kwargs):
        titles.append(fig._suptitle.get_text() if fig._suptitle is not None else fig.axes[0].get_title())
        return savefig(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", recording_savefig)
    monkeypatch.setenv("DIRTI_BENCH_JOBS", "1")  # figures drawn in this process, where savefig is recorded
    rng = np.random.default_rng(0)
    same = rng.standard_normal(8)
    images = {p.name: same for p in (demo_master / "DIRTI Database").iterdir()}
    vec = {}
    encoder = KnownAnswerEncoder(images, lambda t: vec.setdefault(t, rng.standard_normal(8)))
    out = run(RunConfig(data=demo_master, out=tmp_path / "res", report=True, quiet=True,
                        scenarios=["zeroshot-baseline", "knn-cv10-baseline"]), encoder=encoder)
    doc = json.loads((out / RESULTS_FILE).read_text())
    sc = doc["scenarios"]["zeroshot-baseline"]
    assert DEGENERATE in [f["flag"] for f in sc["flags"]]
    from dirti_bench.reporting.console import summary_text

    row = next(line for line in summary_text(doc).splitlines() if line.startswith("zeroshot-baseline"))
    assert DEGENERATE in row and "(zero width)" in row
    md = (out / "report.md").read_text()
    headline = md.split("## Headline metrics")[1].split("\n## ")[0]
    assert re.search(r"zeroshot-baseline .*degenerate: predicts '.+' for 100% of the stimuli", headline)
    assert "Zero-width intervals: zeroshot-baseline: zero width: one class predicted" in headline
    board = leaderboard_frame([doc])
    assert set(board[board["scenario"] == "zeroshot-baseline"]["flag"]) == {DEGENERATE}
    runs = load_runs([out])
    value, note = _heatmap_cell(runs[0], runs[0], "zeroshot-baseline", classification=True)
    assert value == pytest.approx(0.0) and DEGENERATE in note  # κ of a constant classifier is 0
    # the figures of the scenario say it in their titles too (the reliability diagram and confusion matrix)
    for what in ("reliability", "confusion matrix"):
        (title,) = [t for t in titles if t.startswith(f"zeroshot-baseline: {what}")]
        assert title.splitlines()[0] == f"zeroshot-baseline: {what} — flags: {DEGENERATE}"
    (knn,) = [t for t in titles if t.startswith("knn-cv10-baseline: confusion matrix")]
    knn_flags = [f["flag"] for f in doc["scenarios"]["knn-cv10-baseline"]["flags"]]
    assert knn.splitlines()[0] == "knn-cv10-baseline: confusion matrix" + (
        f" — flags: {', '.join(knn_flags)}" if knn_flags else "")


def test_leaderboard_marks_runs_on_another_threshold_not_comparable():
    base = {"run": {"dataset": "d", "dataset_sha256": "x"},
            "scenarios": {"s": {"task": "disgust", "labels": ["a", "b"], "options": {"threshold": 5.0},
                                "metrics": {"accuracy": 0.5}}}}
    other = json.loads(json.dumps(base))
    other["scenarios"]["s"]["options"]["threshold"] = 6.0
    board = leaderboard_frame([base, other])
    assert board["flag"].tolist() == ["", NOT_COMPARABLE]


def _figure_texts(fig) -> list[str]:
    """Every text drawn on a figure: its title, each axis's title, labels, tick labels and legend."""
    texts = [fig._suptitle.get_text()] if fig._suptitle is not None else []
    for ax in fig.axes:
        texts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        texts += [t.get_text() for t in (*ax.get_xticklabels(), *ax.get_yticklabels())]
        if ax.get_legend() is not None:
            texts += [t.get_text() for t in ax.get_legend().get_texts()]
    return texts


def test_an_oasis_like_set_uses_its_class_phrases_and_has_no_dirti_study_section(tmp_path, capsys, monkeypatch):
    from matplotlib.figure import Figure

    from helpers import write_oasis_like

    drawn: list[str] = []
    savefig = Figure.savefig

    def recording_savefig(fig, *args, **kwargs):
        drawn.extend(_figure_texts(fig))
        return savefig(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", recording_savefig)
    monkeypatch.setenv("DIRTI_BENCH_JOBS", "1")  # figures drawn in this process, where savefig is recorded

    root = write_oasis_like(tmp_path / "oasis", n=16)
    sidecar = root / "dirti-bench.json"
    doc = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**doc, "class_phrases": {"Animal": "an animal", "Person": "a person"}}))
    out = tmp_path / "res"
    assert main(["run", "--data", str(root), "--model", "dirti-tiny", "--pretrained", "random", "--quiet",
                 "--projection", "pca", "--out", str(out), "--scenarios", "zeroshot-baseline",
                 "ensemble-baseline-affect", "template-sweep-baseline-affect"]) == 0
    terminal = capsys.readouterr().out
    # figure titles, axis labels and legends name the wording as the report does (published.wording_name)
    assert any("prompt sets minus the default wording" in t for t in drawn)
    assert "difference to the default wording (95% CI)" in drawn and "default wording" in drawn  # sweep legend
    assert not [t for t in drawn if "study wording" in t]
    assert "study wording" not in terminal
    prompts = pd.read_csv(out / "prompts.csv")
    study = dict(zip(*prompts[prompts["scenario"] == "zeroshot-baseline"][["class", "prompt"]].T.values, strict=True))
    assert study == {"Animal": "This is a photo of an animal", "Object": "This is a photo of Object",
                     "Person": "This is a photo of a person", "Scene": "This is a photo of Scene"}
    affect = prompts[(prompts["scenario"] == "ensemble-baseline-affect") & (prompts["class"] == "Animal")]["prompt"]
    assert all("an animal" in p for p in affect)
    md = (out / "report.md").read_text()
    assert "Comparison with the original study" not in md and "Table 1 (baseline)" not in md
    assert "default wording" in md and "study wording" not in md
    assert "(default wording)" in terminal and "default wording zeroshot-baseline" in terminal
    # the same phrases on a DIRTI-shaped set keep the study's name: recognised by contents, not the folder
    doc_json = json.loads((out / RESULTS_FILE).read_text())
    from dirti_bench.reporting.published import is_dirti_doc

    assert not is_dirti_doc(doc_json)


@pytest.mark.parametrize("dirti", [True, False])
def test_the_study_threshold_is_marked_on_a_threshold_sweep_only_on_dirti(dirti, demo_master, tmp_path, monkeypatch):
    """A rated set's sweep at the default threshold showed a dashed "study: 5" line: the study's threshold
    is DIRTI's (recognised by contents); elsewhere the fixed threshold is this run's own."""
    from dirti_bench.reporting import figures
    from dirti_bench.reporting.prompt_report import threshold_sweeps
    from dirti_bench.reporting.render import Figure as ReportFigure
    from helpers import write_rated_set

    monkeypatch.setattr("dirti_bench.pipeline.versions", dict)
    data = demo_master if dirti else write_rated_set(tmp_path / "set", n_per_cat=8)
    files = (data / "DIRTI Database").iterdir() if dirti else (data / "img").iterdir()
    rng = np.random.default_rng(0)
    encoder = KnownAnswerEncoder({p.name: rng.standard_normal(8) for p in files},
                                 lambda t, vec={}: vec.setdefault(t, rng.standard_normal(8)))
    out = run(RunConfig(data=data, out=tmp_path / "res", report=False, quiet=True,
                        scenarios=["threshold-sweep-disgust"]), encoder=encoder)
    blocks = threshold_sweeps([load_run(out)])
    (block,) = [b for b in blocks if isinstance(b, ReportFigure)]
    fig = getattr(figures, block.png.builder)(*block.png.args, **(block.png.kwargs or {}))
    legend = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    notes = [t.get_text() for ax in fig.axes for t in ax.texts]
    text = " ".join(b.text for b in blocks if hasattr(b, "text"))
    if dirti:
        assert "study: 5" in legend and "this run's threshold" not in notes
        assert "dashed: the study's 5" in block.caption and "with the study wording" in text
    else:
        assert not [t for t in legend if "study" in t] and "this run's threshold" in notes
        assert "study" not in block.caption and "study" not in text and "with the default wording" in text


def test_class_phrases_for_an_unknown_category_are_exit_2(tmp_path, capsys):
    from helpers import write_oasis_like

    root = write_oasis_like(tmp_path / "oasis", n=8)
    sidecar = root / "dirti-bench.json"
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "class_phrases": {"Animals": "an animal"}}))
    assert main(["run", "--data", str(root), "--model", "dirti-tiny", "--pretrained", "random", "--quiet",
                 "--no-report", "--out", str(tmp_path / "res"), "--scenarios", "zeroshot-baseline"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "class_phrases names ['Animals']" in err[0] and "not categories" in err[0]


def test_best_is_only_awarded_within_one_dataset_and_after_correction(tmp_path):
    from dirti_bench.reporting.runs_report import BEST, Run, _headline_table

    def doc(dataset: str, accuracy: float) -> dict:
        return {"run": {"model": "m", "dataset": dataset, "dataset_sha256": dataset[0] * 64},
                "scenarios": {"zeroshot-baseline": {"task": "category", "labels": ["a", "b"],
                                                    "confusion": [[5, 5], [5, 5]],
                                                    "per_class": {"a": {"support": 10}, "b": {"support": 10}},
                                                    "metrics": {"accuracy": accuracy}}}}

    def runs(*docs):
        out = [Run(tmp_path / str(i), Results.from_document(d, {}), None) for i, d in enumerate(docs)]
        for i, r in enumerate(out):
            r.label = f"run{i}"
        return out

    # another dataset: never ranked against the reference, named not comparable, no ★ and no "tied"
    table = _headline_table(runs(doc("dirti", 0.5), doc("oasis", 0.9)), "accuracy", True)
    cells = table.iloc[0].to_dict()
    assert BEST not in "".join(map(str, cells.values())) and "tied" not in "".join(map(str, cells.values()))
    assert "(not-comparable: another dataset (reference vs this run: dirti vs oasis))" in cells["run1"]
    # same name, other contents: the contents' hashes tell them apart
    renamed = doc("dirti", 0.9)
    renamed["run"]["dataset_sha256"] = "e" * 64
    cell = _headline_table(runs(doc("dirti", 0.5), renamed), "accuracy", True).iloc[0]["run1"]
    assert f"dirti {'d' * 12} vs {'e' * 12} (same name, other contents)" in cell
    # same dataset, but no test can separate best from runner-up (no predictions): "tied", not ★
    table = _headline_table(runs(doc("dirti", 0.5), doc("dirti", 0.9)), "accuracy", True)
    assert table.iloc[0]["run1"].endswith("(best, tied after correction)") and BEST not in table.iloc[0]["run0"]


def test_each_template_of_a_sweep_is_tested_against_the_study_wording_with_holm_and_bh(tmp_path):
    out = tmp_path / "demo"
    assert main(["run", "--demo", "--quiet", "--out", str(out), "--projection", "pca", "--scenarios",
                 "template-sweep-baseline-affect"]) == 0
    doc = json.loads((out / RESULTS_FILE).read_text())
    points = [p for p in doc["scenarios"]["template-sweep-baseline-affect"]["sweep"] if p["kind"] == "template"]
    tests = [p["vs_study"] for p in points]
    assert len(tests) == len(points) > 1
    assert {t["family"] for t in tests} == {"templates of template-sweep-baseline-affect vs its study wording (McNemar)"}
    raw = [t["p_value"] for t in tests]
    assert [t["p_holm"] for t in tests] == pytest.approx(multipletests(raw, method="holm")[1].tolist())
    assert [t["q_bh"] for t in tests] == pytest.approx(multipletests(raw, method="fdr_bh")[1].tolist())
    # each raw p recomputes from sweep_predictions.csv (McNemar on the discordant stimuli)
    from scipy.stats import binomtest

    preds = pd.read_csv(out / "sweep_predictions.csv.gz")
    study = preds[preds["point"] == "study wording"].set_index("stimulus")
    for point, test in zip(points, tests, strict=True):
        rows = preds[preds["point"] == point["point"]].set_index("stimulus").loc[study.index]
        a, b = rows["y_true"] == rows["y_pred"], study["y_true"] == study["y_pred"]
        only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
        p = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
        assert test["p_value"] == pytest.approx(p)
    assert "Holm p" in (out / "report.md").read_text().split("## Template sweeps")[1]


@pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning")  # PCA of constant features
def test_a_rated_set_with_an_all_intercept_probe_shows_no_ci_and_is_flagged(tmp_path, monkeypatch):
    """Constant image features (known-answer encoder): every fold of the ridge probe predicts its
    training mean; its correlations appear nowhere with a CI."""
    from helpers import write_rated_set

    monkeypatch.setattr("dirti_bench.pipeline.versions", dict)
    root = write_rated_set(tmp_path / "rated", n_per_cat=8)
    same = np.linspace(0.1, 1.0, 8)
    images = {p.name: same for p in (root / "img").iterdir()}
    encoder = KnownAnswerEncoder(images, lambda t: same)
    out = run(RunConfig(data=root, out=tmp_path / "res", report=True, quiet=True, projection="pca"), encoder=encoder)
    doc = json.loads((out / RESULTS_FILE).read_text())
    probes = {sid: sc for sid, sc in doc["scenarios"].items() if sid.endswith("-probe") and sc["task"] == "alignment"}
    assert probes
    from dirti_bench.reporting.console import summary_text

    terminal = summary_text(doc)
    md = (out / "report.md").read_text()
    board = leaderboard_frame([doc])
    for sid, sc in probes.items():
        penalty = sc["extra"]["penalty"]
        assert penalty["n_strongest"] == penalty["n_folds"]
        assert [f["flag"] for f in sc["flags"]] == [INTERCEPT_ONLY]
        row = next(line for line in terminal.splitlines() if line.startswith(sid + " "))
        assert NO_SIGNAL in row and "[" not in row.split("alignment")[1]
        ci = sc["ci"].get("spearman_rho")
        if ci and None not in ci:
            assert f"[{ci[0]:.3f}, {ci[1]:.3f}]" not in md and f"[{ci[0]:.2f}, {ci[1]:.2f}]" not in terminal
        rows = board[(board["scenario"] == sid) & board["metric"].str.startswith(("spearman", "pearson"))]
        assert rows[["ci_low", "ci_high"]].isna().all().all() and (rows["flag"] == INTERCEPT_ONLY).all()
