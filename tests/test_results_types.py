"""Typed results read back: what ``ScenarioOutcome`` offers the report (per-class scores, penalty,
calibration, scoring rule, sweep points, validity's rules) from results.json entries with and
without their optional keys, and a check that the reporting modules read outcomes, not entries."""

from __future__ import annotations

import ast
from pathlib import Path

import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from dirti_bench.results_types import (
    Calibration,
    Penalty,
    Results,
    ScenarioOutcome,
    Scoring,
    SweepPoint,
    comparability,
)
from dirti_bench.validity import BELOW_CHANCE, DEGENERATE, INTERCEPT_ONLY, NO_SIGNAL

REPORTING = Path(__file__).resolve().parents[1] / "src" / "dirti_bench" / "reporting"
# The modules that render results: they read ScenarioOutcome's typed fields, never an entry's keys.
TYPED_READERS = ("report.py", "runs_report.py", "prompt_report.py", "findings.py", "formats.py", "console.py",
                 "compare.py", "leaderboard.py")
# Keys only a results.json scenario entry (or a sweep point) has; comparisons share "ci", "n" and "task".
ENTRY_KEYS = frozenset({"metrics", "flags", "extra", "per_class", "confusion", "labels", "dropped_classes",
                        "sweep", "options"})


def outcome(entry: dict, sid: str = "s") -> ScenarioOutcome:
    return ScenarioOutcome.from_json(sid, entry, pd.DataFrame())


def classification(confusion, ci=None, **more) -> dict:
    labels = [f"c{i}" for i in range(len(confusion))]
    support = {c: {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": sum(row)}
               for c, row in zip(labels, confusion, strict=True)}
    correct = sum(confusion[i][i] for i in range(len(confusion)))
    return {"task": "category", "labels": labels, "n": sum(map(sum, confusion)), "per_class": support,
            "confusion": confusion, "metrics": {"accuracy": correct / sum(map(sum, confusion))},
            "ci": {"accuracy": ci} if ci else {}, **more}


def probe(n_strongest: int, n_folds: int = 5) -> dict:
    return {"task": "alignment", "labels": ["a"], "n": 60, "metrics": {"spearman_rho": -0.4, "r2": -0.05,
                                                                        "noise_ceiling_spearman": 0.9},
            "ci": {"spearman_rho": [-0.5, -0.2], "noise_ceiling_spearman": [0.85, 0.93]},
            "options": {"model": "RidgeCV", "rating": "disg_mean_all", "n_raters": 30},
            "extra": {"penalty": {"name": "alpha", "mode": "tuned", "method": "LOO", "median": 10.0, "min": 1.0,
                                  "max": 1e4, "n_folds": n_folds, "n_strongest": n_strongest},
                      "within_category": {"food": {"spearman_rho": 0.1}}}}


# ---------------------------------------------------------------- the typed fields


def test_a_bare_entry_reads_as_empty_records_not_errors():
    sc = outcome({"metrics": {"accuracy": 0.5}})
    assert (sc.n, sc.recorded_n, sc.labels, sc.flags, sc.flag_codes) == (0, None, (), (), ())
    assert sc.per_class_scores == {} and sc.empty_classes == [] and sc.chance_level is None
    assert sc.penalty is None and sc.calibration is None and sc.scoring is None and sc.display_order is None
    assert sc.within_category == {} and sc.noise_ceiling_note is None and sc.kappa is None
    assert not sc.is_sweep and sc.sweep_points == () and sc.sweep_kind is None
    choice = sc.template_choice
    assert (choice.distribution, choice.study_rank, choice.n_ranked, choice.selection) == ({}, {}, None, [])
    assert sc.value_with_ci("accuracy") == "0.500" and sc.value_with_ci("f1_macro") == "–"
    assert sc.interval("accuracy") is None and sc.zero_width_reason("accuracy") is None


def test_per_class_scores_chance_and_kappa_of_a_classification():
    confusion = [[3, 1, 0], [0, 2, 0], [0, 0, 0]]
    sc = outcome(classification(confusion, ci=[0.6, 0.95], dropped_classes=["gone"]))
    scores = sc.per_class_scores
    assert list(scores) == ["c0", "c1", "c2"] and scores["c0"].support == 4 and scores["c0"].f1 == 0.5
    assert sc.empty_classes == ["c2"] and sc.dropped_classes == ("gone",)
    assert sc.chance_level == pytest.approx(4 / 6)
    truth = [0, 0, 0, 0, 1, 1]
    predicted = [0, 0, 0, 1, 1, 1]
    assert sc.kappa == pytest.approx(cohen_kappa_score(truth, predicted))
    assert sc.recorded_n == sc.n == 6
    assert sc.value_with_ci("accuracy") == "0.833 [0.60, 0.95]"


def test_a_zero_width_interval_is_marked_and_explained():
    sc = outcome(classification([[5, 0], [0, 5]], ci=[1.0, 1.0]))
    assert sc.interval("accuracy") == (1.0, 1.0)
    assert "all right or all wrong" in sc.zero_width_reason("accuracy")
    assert sc.value_with_ci("accuracy", ci_digits=3) == "1.000 [1.000, 1.000] (zero width)"
    degenerate = outcome(classification([[0, 5], [0, 5]], ci=[0.5, 0.5]))
    assert degenerate.flag_codes == (DEGENERATE,)  # an older file without "flags": computed the same way
    assert "one class predicted" in degenerate.zero_width_reason("accuracy")


def test_recorded_flags_are_read_as_written_and_an_older_files_computed():
    recorded = outcome(classification([[5, 0], [0, 5]]) | {"flags": [{"flag": BELOW_CHANCE, "reason": "r"}]})
    assert recorded.flags == ({"flag": BELOW_CHANCE, "reason": "r"},)
    assert recorded.flag_text() == f"{BELOW_CHANCE}: r" and recorded.flag_text(short=True) == BELOW_CHANCE


def test_an_intercept_only_probe_hides_its_correlations_and_types_its_penalty():
    sc = outcome(probe(n_strongest=4))
    assert sc.flag_codes == (INTERCEPT_ONLY,) and sc.suppressed("spearman_rho")
    assert not sc.suppressed("noise_ceiling_spearman") and not sc.suppressed("r2")
    assert sc.value_with_ci("spearman_rho", short=True) == NO_SIGNAL
    assert sc.value_with_ci("noise_ceiling_spearman") == "0.900 [0.85, 0.93]"
    assert sc.penalty == Penalty(name="alpha", mode="tuned", method="LOO", median=10.0, min=1.0, max=1e4,
                                 n_folds=5, n_strongest=4)
    assert sc.within_category == {"food": {"spearman_rho": 0.1}}
    healthy = outcome(probe(n_strongest=2))
    assert healthy.flag_codes == () and healthy.value_with_ci("spearman_rho") == "-0.400 [-0.50, -0.20]"
    assert Penalty.from_json({"mode": "fixed", "value": 1.0}).name == "penalty"  # unnamed: the generic word


def test_scoring_calibration_and_noise_ceiling_note():
    sc = outcome({"metrics": {"ece": 0.1}, "options": {"scoring": "model", "logit_scale": 14.3, "logit_bias": None,
                                                      "probability_rule": "softmax"},
                  "extra": {"calibration": {"reliability": [{"mean_confidence": 0.5, "accuracy": 0.4}],
                                            "reliability_calibrated": [], "temperature": {"median": 1.5, "folds": 5},
                                            "ece_bins": 10, "binning": "equal-mass"},
                            "noise_ceiling": "not estimated: no SD column", "display_order": ["b", "a"]}})
    assert sc.scoring == Scoring("model", 14.3, None, "softmax")
    assert sc.calibration == Calibration([{"mean_confidence": 0.5, "accuracy": 0.4}], [], 1.5, 5, 10, "equal-mass")
    assert sc.noise_ceiling_note == "not estimated: no SD column" and sc.display_order == ["b", "a"]
    assert outcome({"metrics": {}, "extra": {"calibration": "broken"}}).calibration is None


def test_sweep_points_and_the_template_choice():
    points = [{"point": "study", "kind": "study", "metrics": {"accuracy": 0.4, "f1_macro": 0.3},
               "ci": {"accuracy": [0.3, 0.5]}, "rank": {"accuracy": 3}},
              {"point": "t1", "kind": "template", "metrics": {"accuracy": 0.6, "f1_macro": 0.5}, "ci": {},
               "rank": {"accuracy": 1}, "vs_study": {"p_value": 0.04, "p_holm": 0.08}},
              {"point": "5.0", "threshold": 5.0, "rule": "fixed", "n_classes": 11, "dropped_classes": ["x"],
               "class_counts": {"a": 3}, "metrics": {"accuracy": 0.2}, "ci": {"accuracy": [0.1, 0.3]}}]
    sc = outcome({"task": "category", "metrics": {"accuracy": 0.5}, "sweep": points,
                  "extra": {"sweep": "template", "distribution": {"accuracy": {"median": 0.5}},
                            "study_rank": {"accuracy": 3}, "n_ranked": 9, "selection": [{"template": "t1"}],
                            "in_sample_best": {"template": "t1", "accuracy": 0.6}}})
    assert sc.is_sweep and sc.sweep_kind == "template"
    study, template, threshold = sc.sweep_points
    assert isinstance(study, SweepPoint) and study.interval("accuracy") == [0.3, 0.5] and study.vs_study == {}
    assert template.kind == "template" and template.rank == {"accuracy": 1} and template.vs_study["p_holm"] == 0.08
    assert template.interval("accuracy") is None and template.threshold is None
    assert (threshold.threshold, threshold.rule, threshold.n_classes, threshold.dropped_classes,
            threshold.class_counts) == (5.0, "fixed", 11, ("x",), {"a": 3})
    choice = sc.template_choice
    assert choice.n_ranked == 9 and choice.selection == [{"template": "t1"}] and choice.in_sample_best["accuracy"] == 0.6
    assert choice.distribution["accuracy"]["median"] == 0.5 and choice.study_rank == {"accuracy": 3}


def test_a_layer_scenario_gives_its_sentence_and_figure_outcome():
    from dirti_bench.reporting.layer_figures import LayerOutcome, layer_sentence

    entry = {"task": "alignment", "metrics": {"pearson_r": 0.3}, "ci": {"pearson_r": [0.1, 0.5]},
             "options": {"layer_rule": "nested", "rating": "disg_mean_all", "folds_used": 5,
                         "layers": {"layers": ["l0", "l1"], "mode": "token", "pooling": "cls"}},
             "extra": {"layer_choice": {"nested": {"pearson_r": 0.3, "modal_layer": "l1", "modal_depth": 1.0,
                                                   "folds_agreeing": 4, "folds": 5}}}}
    sc = outcome(entry, "layers-disgust")
    scores = pd.DataFrame({"scenario": ["layers-disgust", "other"], "depth": [1.0, 0.5]})
    layer = LayerOutcome.from_outcome(sc, scores)
    assert layer.id == "layers-disgust" and layer.layer_scores["depth"].tolist() == [1.0]
    assert layer.ci["pearson_r"] == (0.1, 0.5)
    sentence = layer_sentence(sc)
    assert "Ridge probe on each of 2 layers (token: cls)" in sentence and "Nested: r = 0.300, modal layer l1" in sentence
    assert layer_sentence(outcome(probe(2))) is None  # not a layer-wise scenario


def test_comparability_of_typed_results_names_what_differs():
    run_a = Results.of({"run": {"dataset": "d", "model": "m1"}, "scenarios": {}}).run
    run_b = Results.of({"run": {"dataset": "d", "model": "m2"}, "scenarios": {}}).run
    a = outcome(classification([[1, 0], [0, 1]], options={"threshold": 5.0}))
    b = outcome(classification([[1, 0], [0, 1]], options={"threshold": 6.0}))
    assert comparability(run_a, a, run_b, a) == []  # another model is comparable, the point of a comparison
    assert comparability(run_a, a, run_b, a, same_model=True) == ["model 'm1' vs 'm2'"]
    assert comparability(run_a, a, run_b, b) == ["threshold 5.0 vs 6.0"]


def test_results_of_a_document_types_it_and_keeps_typed_results():
    doc = {"run": {"model": "m"}, "scenarios": {"x": {"metrics": {"accuracy": 1.0}}}, "skipped": {"y": "no data"}}
    results = Results.of(doc)
    assert isinstance(results, Results) and results["x"].metric("accuracy") == 1.0
    assert results.skipped == {"y": "no data"} and results.run.model == "m" and Results.of(results) is results
    with pytest.raises(KeyError):
        Results.of({"x": {"metrics": {}}})  # a scenarios mapping is no results document


# ---------------------------------------------------------------- the reporting modules read outcomes


def entry_reads(source: str, typed_reader: bool) -> list[str]:
    """Where ``source`` reads a results.json entry: ``.entry`` or ``entry[...]`` anywhere; in a typed
    reader also ``x["metrics"]`` / ``x.get("extra")`` and the other keys only an entry has."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store):
            continue  # building a row or a document, not reading one
        if isinstance(node, ast.Attribute) and node.attr == "entry":
            found.append(f"line {node.lineno}: .entry")
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "entry":
            found.append(f"line {node.lineno}: entry[...]")
        elif typed_reader:
            key = None
            if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
                key = node.slice.value
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                  and node.args and isinstance(node.args[0], ast.Constant)):
                key = node.args[0].value
            if key in ENTRY_KEYS:
                found.append(f"line {node.lineno}: [{key!r}]")
    return sorted(found, key=lambda text: int(text.split(":")[0].removeprefix("line ")))


@pytest.mark.parametrize("path", sorted(REPORTING.glob("*.py")), ids=lambda p: p.name)
def test_reporting_reads_typed_outcomes_not_results_json_entries(path):
    assert entry_reads(path.read_text(encoding="utf-8"), path.name in TYPED_READERS) == []


def test_the_entry_check_finds_what_it_must():
    assert entry_reads("x = sc.entry", False) == ["line 1: .entry"]
    assert entry_reads("x = entry['metrics']", False) == ["line 1: entry[...]"]
    assert entry_reads("x = sc['metrics']['accuracy']\ny = sc.get('extra', {})", True) == [
        "line 1: ['metrics']", "line 2: ['extra']"]
    assert entry_reads("x = sc.get('extra', {})", False) == []  # only the typed readers are held to the keys
    assert entry_reads("row['flags'] = text\nentry['metrics'] = {}", True) == []  # writing is no reading
    assert entry_reads("x = sc.metrics.get('accuracy')\ny = sc.options.get('rating')", True) == []


def test_the_sweeps_closing_board_reads_typed_results():
    from dirti_bench.reporting.leaderboard import leaderboard_text

    first = {"run": {}, "scenarios": {"zeroshot-baseline": classification([[0, 5], [0, 5]], ci=[0.5, 0.5]),
                                      "align-disgust-probe": probe(n_strongest=4)}}
    second = Results.of({"run": {}, "scenarios": {"align-disgust-probe": probe(n_strongest=1)}})
    lines = leaderboard_text([first, second], ["m1", "m2"]).splitlines()
    assert [cell.strip() for cell in lines[2].split("|")[1:-1]] == ["m1", "0.500 (degenerate)", "no signal"]
    assert [cell.strip() for cell in lines[3].split("|")[1:-1]] == ["m2", "–", "-0.400"]
    assert leaderboard_text([{"run": {}, "scenarios": {}}], ["m"]) == ""  # no headline scenario


def test_the_run_block_is_typed_and_titles_read_it_from_either_form():
    from dirti_bench.reporting.console import figure_title, run_title, weights_label
    from dirti_bench.results_types import RunInfo

    block = {"model": "ViT-B-32", "pretrained": "w.pt", "weights_kind": "file", "dataset": "oasis", "n_stimuli": 9,
             "device": "cuda", "device_name": "H100", "precision": "bf16", "disgust_column": "Disgust",
             "rating_scale": [1, 7], "prompt_files": [{"file": "p.json"}], "seed": 0}
    info = RunInfo.of(block)
    assert RunInfo.of(info) is info and info.details == block and info.seed == 0
    assert (info.weights_kind, info.device_name, info.n_stimuli, info.disgust_column, info.rating_scale) == (
        "file", "H100", 9, "Disgust", [1, 7])
    assert info.prompt_files == [{"file": "p.json"}] and info.throughput is None and info.projection is None
    assert run_title(info) == run_title(block) == "ViT-B-32 · weights w.pt · oasis (9 images) · cuda · bf16, checked against fp32"
    assert figure_title({}, "what") == "what\n– · weights – · –"  # nothing recorded: the mark for missing
    assert weights_label({"smoke_run": True}, short=True) == "random weights — smoke run"
    assert RunInfo.of({}).prompt_files == [] and RunInfo.of({}).versions == {}


def test_comparisons_are_typed_and_the_findings_name_a_prompt_set_that_wins():
    from dirti_bench.reporting.compare import PROMPT_KIND
    from dirti_bench.reporting.findings import finding_lines, study_deltas
    from dirti_bench.results_types import Comparison

    def test(a, p_value, difference, ci):
        return {"kind": PROMPT_KIND, "task": "category", "a": a, "b": "zeroshot-baseline", "n": 10,
                "accuracy_difference": difference, "ci": ci, "mcnemar": {"p_value": p_value}}

    study = classification([[5, 0], [0, 5]]) | {"flags": []}
    doc = {"run": {}, "scenarios": {"zeroshot-baseline": study},
           "comparisons": [test("ensemble-x", 1e-4, 0.3, [0.2, 0.4]), test("ensemble-y", 0.9, 0.5, [0.4, 0.6]),
                           {"a": "p", "b": "q", "skipped": "stimuli differ"}]}
    records = Results.of(doc).comparison_records
    assert records[0] == Comparison(a="ensemble-x", b="zeroshot-baseline", kind=PROMPT_KIND, task="category",
                                    n=10, accuracy_difference=0.3, ci=[0.2, 0.4], mcnemar_p=1e-4)
    assert records[2].skipped == "stimuli differ" and records[2].mcnemar_p is None
    lines = finding_lines(doc)  # written without corrections: Holm and BH are computed on reading
    assert ("Best prompt set ensemble-x: Δ accuracy +0.300 [0.20, 0.40], McNemar p 0.0001, Holm p 0.0002, "
            "BH q 0.0002 (family: prompt sets vs zeroshot-baseline (task category; McNemar), 2 tests).") in lines[0]
    assert study_deltas(doc) == {"zeroshot-baseline": "(default wording)", "ensemble-x": "+0.300 (Holm p 0.0002)",
                                 "ensemble-y": "+0.500 (Holm p 0.9)"}
