"""check-drift: constructed results against constructed baselines, exact known answers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from tabulate import tabulate

from dirti_bench.cli import main
from dirti_bench.errors import UserError
from dirti_bench.reporting.drift import Missing, baseline_document, check
from helpers import write_json


def results_doc(**overrides) -> dict:
    scenarios = {
        "zeroshot-baseline": {"task": "category", "metrics": {"accuracy": 0.50, "f1_macro": 0.40, "n_note": "x"}},
        "knn-split-baseline": {"task": "category", "metrics": {"accuracy": 0.80, "f1_macro": 0.70}},
    }
    for sid, metrics in overrides.items():
        scenarios[sid]["metrics"] |= metrics
    return {"run": {"model": "dirti-tiny", "seed": 0, "created": "2026-01-01T00:00:00+00:00",
                    "cache": {"dir": "/somewhere"}}, "scenarios": scenarios}


def write_results_dir(root: Path, doc: dict) -> Path:
    write_json(root / "results.json", doc)
    return root


write_baseline = write_json


# ---------------------------------------------------------------- check()


def test_identical_metrics_do_not_drift_and_non_numbers_are_ignored():
    report = check(results_doc(), results_doc())
    assert report.ok and report.rows == [] and report.missing == [] and report.checked == 4
    assert report.table() == "no drift" and not report and len(report) == 0


def test_a_moved_metric_is_one_row_with_baseline_now_and_delta():
    report = check(results_doc(**{"zeroshot-baseline": {"accuracy": 0.55}}), results_doc())
    assert not report.ok and len(report.rows) == 1
    row = report.rows[0]
    assert (row.scenario, row.metric, row.baseline, row.now, row.tolerance) == (
        "zeroshot-baseline", "accuracy", 0.50, 0.55, 0.02)
    assert row.delta == pytest.approx(0.05)
    assert "zeroshot-baseline" in report.table() and "0.0500" in report.table()
    # benchmarks/conftest.py treats the report as its sequence of drifted rows
    assert bool(report) and "accuracy" in tabulate(report, headers="keys")


def test_exactly_at_tolerance_is_not_drift_just_above_is():
    assert check(results_doc(**{"zeroshot-baseline": {"accuracy": 0.52}}), results_doc()).ok
    assert not check(results_doc(**{"zeroshot-baseline": {"accuracy": 0.5201}}), results_doc()).ok


def test_per_metric_tolerances_from_the_baseline_most_specific_first():
    moved = results_doc(**{"zeroshot-baseline": {"accuracy": 0.55, "f1_macro": 0.45}})
    base = results_doc() | {"tolerances": {"accuracy": 0.1}}
    report = check(moved, base)
    assert [(r.metric, r.tolerance) for r in report.rows] == [("f1_macro", 0.02)]
    base["scenarios"]["zeroshot-baseline"]["tolerances"] = {"accuracy": 0.01, "f1_macro": 0.06}
    report = check(moved, base)
    assert [(r.metric, r.tolerance) for r in report.rows] == [("accuracy", 0.01)]


def test_missing_scenarios_and_metrics_are_reported_on_both_sides():
    now = results_doc()
    now["scenarios"]["new-scenario"] = {"metrics": {"accuracy": 1.0}}
    now["scenarios"]["knn-split-baseline"]["metrics"]["recall_macro"] = 0.3
    base = results_doc()
    base["scenarios"]["old-scenario"] = {"metrics": {"accuracy": 1.0}}
    del base["scenarios"]["zeroshot-baseline"]["metrics"]["f1_macro"]
    base["scenarios"]["knn-split-baseline"]["metrics"]["gone"] = 0.1
    report = check(now, base)
    assert report.ok  # reported, not failed: only shared metrics are compared
    assert set(report.missing) == {
        Missing("old-scenario", None, "results"), Missing("new-scenario", None, "baseline"),
        Missing("zeroshot-baseline", "f1_macro", "baseline"), Missing("knn-split-baseline", "gone", "results"),
        Missing("knn-split-baseline", "recall_macro", "baseline")}


def test_a_baseline_from_another_configuration_is_noted():
    other = results_doc()
    other["run"]["model"] = "ViT-B-32"
    report = check(results_doc(), other)
    assert report.identity_differs == {"model": ("ViT-B-32", "dirti-tiny")}
    assert "run.model differs: baseline 'ViT-B-32', results 'dirti-tiny'" in report.notes()


def test_metric_globs_restrict_the_comparison():
    moved = results_doc(**{"zeroshot-baseline": {"accuracy": 0.9, "f1_macro": 0.9}})
    report = check(moved, results_doc(), metrics=["f1_*"])
    assert [r.metric for r in report.rows] == ["f1_macro"] and report.checked == 2


def test_nan_equals_nan_but_not_a_number():
    nan = results_doc(**{"zeroshot-baseline": {"accuracy": math.nan}})
    assert check(nan, nan).ok
    assert not check(results_doc(), nan).ok


@pytest.mark.parametrize("tolerances", [{"accuracy": -0.1}, {"accuracy": "loose"}, ["accuracy"]])
def test_bad_tolerances_are_a_user_error(tolerances):
    with pytest.raises(UserError, match="tolerances"):
        check(results_doc(), results_doc() | {"tolerances": tolerances})


def test_baseline_document_keeps_only_identity_and_metrics():
    doc = baseline_document(results_doc())
    text = json.dumps(doc)
    assert "created" not in text and "/somewhere" not in text and "n_note" not in text
    assert doc["run"] == {"model": "dirti-tiny", "seed": 0}
    assert doc["scenarios"]["knn-split-baseline"]["metrics"] == {"accuracy": 0.80, "f1_macro": 0.70}
    assert check(results_doc(), doc).ok


# ---------------------------------------------------------------- CLI


def test_cli_within_tolerance_exits_0(tmp_path, capsys):
    res = write_results_dir(tmp_path / "res", results_doc(**{"zeroshot-baseline": {"accuracy": 0.51}}))
    base = write_baseline(tmp_path / "baseline.json", results_doc())
    assert main(["check-drift", str(res), "--baseline", str(base)]) == 0
    assert "no drift: 4 metrics" in capsys.readouterr().out


def test_cli_drift_exits_1_with_the_table(tmp_path, capsys):
    res = write_results_dir(tmp_path / "res", results_doc(**{"knn-split-baseline": {"f1_macro": 0.6}}))
    base = write_baseline(tmp_path / "baseline.json", results_doc())
    assert main(["check-drift", str(res), "--baseline", str(base)]) == 1
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "knn-split-baseline" in line)
    assert "f1_macro" in row and "0.7000" in row and "0.6000" in row and "-0.1000" in row
    # a looser tolerance on the command line accepts the same move
    assert main(["check-drift", str(res), "--baseline", str(base), "--tolerance", "0.2"]) == 0


def test_cli_reports_missing_scenarios(tmp_path, capsys):
    doc = results_doc()
    del doc["scenarios"]["knn-split-baseline"]
    res = write_results_dir(tmp_path / "res", doc)
    base = write_baseline(tmp_path / "baseline.json", results_doc())
    assert main(["check-drift", str(res), "--baseline", str(base)]) == 0
    assert "knn-split-baseline: missing in results" in capsys.readouterr().out


def test_cli_update_rewrites_the_baseline_and_keeps_tolerances(tmp_path, capsys):
    res = write_results_dir(tmp_path / "res", results_doc(**{"zeroshot-baseline": {"accuracy": 0.9}}))
    base = write_baseline(tmp_path / "baseline.json", results_doc() | {"tolerances": {"rmse": 0.1}})
    assert main(["check-drift", str(res), "--baseline", str(base)]) == 1
    assert main(["check-drift", str(res), "--baseline", str(base), "--update"]) == 0
    written = json.loads(base.read_text())
    assert written["scenarios"]["zeroshot-baseline"]["metrics"]["accuracy"] == 0.9
    assert written["tolerances"] == {"rmse": 0.1}
    first = base.read_bytes()
    assert main(["check-drift", str(res), "--baseline", str(base)]) == 0
    assert main(["check-drift", str(res), "--baseline", str(base), "--update"]) == 0
    assert base.read_bytes() == first  # deterministic: nothing time- or path-dependent
    assert not list(tmp_path.glob(".*.tmp"))  # no staging file left behind


def test_cli_update_creates_a_missing_baseline(tmp_path):
    res = write_results_dir(tmp_path / "res", results_doc())
    base = tmp_path / "new" / "baseline.json"
    assert main(["check-drift", str(res), "--baseline", str(base), "--update"]) == 0
    assert check(results_doc(), json.loads(base.read_text())).ok


@pytest.mark.parametrize("content", [None, "{broken", '{"run": {}}', '{"scenarios": {}, "tolerances": {"a": -1}}'])
def test_cli_bad_baseline_exits_2_with_one_error_line(tmp_path, capsys, content):
    res = write_results_dir(tmp_path / "res", results_doc())
    base = tmp_path / "baseline.json"
    if content is not None:
        base.write_text(content)
    assert main(["check-drift", str(res), "--baseline", str(base)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "baseline" in err[0]


def test_cli_bad_results_dir_exits_2(tmp_path, capsys):
    base = write_baseline(tmp_path / "baseline.json", results_doc())
    assert main(["check-drift", str(tmp_path / "nope"), "--baseline", str(base)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "nope" in err[0]


def test_a_metric_that_becomes_undefined_is_drift():
    from dirti_bench.reporting.drift import check

    base = {"run": {}, "scenarios": {"s": {"metrics": {"spearman_rho": 0.4}}}}
    now = {"run": {}, "scenarios": {"s": {"metrics": {"spearman_rho": None}}}}  # NaN written as null
    report = check(now, base, tolerance=0.5)
    assert not report.ok and [r.metric for r in report.rows] == ["spearman_rho"]
    assert check(now, now).ok  # undefined in both: no change
