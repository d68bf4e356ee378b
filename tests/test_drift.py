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
        "zeroshot-baseline": {"task": "category", "metrics": {"accuracy": 0.50, "f1_macro": 0.40}},
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


def test_identical_metrics_do_not_drift():
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
    assert set(report.missing) == {
        Missing("old-scenario", None, "results"), Missing("new-scenario", None, "baseline"),
        Missing("zeroshot-baseline", "f1_macro", "baseline"), Missing("knn-split-baseline", "gone", "results"),
        Missing("knn-split-baseline", "recall_macro", "baseline")}
    # what the baseline has and the results lack fails the check; what is new only is reported
    assert not report.ok and set(report.lost) == {Missing("old-scenario", None, "results"),
                                                  Missing("knn-split-baseline", "gone", "results")}
    assert check(now, base, allow_missing=True).ok
    del base["scenarios"]["old-scenario"], base["scenarios"]["knn-split-baseline"]["metrics"]["gone"]
    assert check(now, base).ok


def test_a_baseline_from_another_configuration_is_noted_and_not_comparable():
    other = results_doc()
    other["run"]["model"] = "ViT-B-32"
    report = check(results_doc(), other)
    assert report.identity_differs == {"model": ("ViT-B-32", "dirti-tiny")}
    assert "run.model differs: baseline 'ViT-B-32', results 'dirti-tiny'" in report.notes()
    assert report.not_comparable == {"run: model 'ViT-B-32' vs 'dirti-tiny'": []}
    assert check(results_doc(), results_doc()).not_comparable == {}


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
    assert "created" not in text and "/somewhere" not in text
    assert doc["run"] == {"model": "dirti-tiny", "seed": 0}
    assert doc["scenarios"]["knn-split-baseline"]["task"] == "category"  # what makes results comparable
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


def test_cli_fails_on_baseline_scenarios_missing_in_the_results_unless_allowed(tmp_path, capsys):
    doc = results_doc()
    del doc["scenarios"]["knn-split-baseline"]
    res = write_results_dir(tmp_path / "res", doc)
    base = write_baseline(tmp_path / "baseline.json", results_doc())
    assert main(["check-drift", str(res), "--baseline", str(base)]) == 1
    out = capsys.readouterr().out
    assert "knn-split-baseline: missing in results" in out and "--allow-missing" in out
    assert "drift: 1 scenario(s)/metric(s) of the baseline missing in the results" in out
    assert main(["check-drift", str(res), "--baseline", str(base), "--allow-missing"]) == 0
    assert "no drift: 2 metrics" in capsys.readouterr().out


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


# ---------------------------------------------------------------- a gate that cannot pass by accident


@pytest.mark.parametrize("tolerance", ["nan", "inf", "-0.1", "-inf"])
def test_cli_non_finite_or_negative_tolerance_is_exit_2(tmp_path, capsys, tolerance):
    shifted = results_doc(**{sid: {"accuracy": 0.99, "f1_macro": 0.99} for sid in ("zeroshot-baseline",
                                                                                   "knn-split-baseline")})
    res = write_results_dir(tmp_path / "res", shifted)
    base = write_baseline(tmp_path / "baseline.json", results_doc())
    assert main(["check-drift", str(res), "--baseline", str(base), f"--tolerance={tolerance}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --tolerance")
    with pytest.raises(UserError, match="finite"):
        check(shifted, results_doc(), tolerance=float(tolerance))


@pytest.mark.parametrize("tolerance", [math.inf, math.nan])
def test_non_finite_tolerances_in_the_baseline_are_refused(tmp_path, capsys, tolerance):
    base_doc = results_doc() | {"tolerances": {"accuracy": tolerance}}
    with pytest.raises(UserError, match="finite"):
        check(results_doc(**{"zeroshot-baseline": {"accuracy": 0.9}}), base_doc)
    res = write_results_dir(tmp_path / "res", results_doc())
    base = tmp_path / "baseline.json"
    base.write_text(json.dumps(base_doc))  # Python writes (and reads) the non-standard NaN / Infinity
    assert main(["check-drift", str(res), "--baseline", str(base)]) == 2
    assert capsys.readouterr().err.startswith(f"error: baseline {base}: tolerances.accuracy")


@pytest.mark.parametrize(("baseline", "args", "message"), [
    ({"scenarios": {}}, [], "compared no metric"),
    ({"scenarios": {"other": {"metrics": {"accuracy": 0.5}}}}, ["--allow-missing"], "compared no metric"),
    (None, ["--metrics", "no_such_*"], "error: metrics no_such_* matched no metric"),
    (None, ["--metrics", "accuracy", "f1_macr"], "error: metrics f1_macr matched no metric"),
])
def test_cli_a_check_that_compared_nothing_is_exit_2(tmp_path, capsys, baseline, args, message):
    res = write_results_dir(tmp_path / "res", results_doc())
    base = write_baseline(tmp_path / "baseline.json", baseline if baseline is not None else results_doc())
    assert main(["check-drift", str(res), "--baseline", str(base), *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and message in captured.err
    # the library names the fix neutrally; the CLI adds the flag that applies it
    hint = "(command-line option --metrics)" if "--metrics" in args else "(command-line option --update)"
    assert captured.err.rstrip().endswith(hint)


@pytest.mark.parametrize(("side", "edit", "key"), [
    ("results", lambda d: d["scenarios"]["zeroshot-baseline"]["metrics"].update(n_note="x"),
     "scenarios.zeroshot-baseline.metrics.n_note"),
    ("baseline", lambda d: d["scenarios"]["zeroshot-baseline"]["metrics"].update(accuracy="0.5"),
     "scenarios.zeroshot-baseline.metrics.accuracy"),
    ("baseline", lambda d: d["scenarios"]["knn-split-baseline"]["metrics"].update(f1_macro=True),
     "scenarios.knn-split-baseline.metrics.f1_macro"),
    ("baseline", lambda d: d["scenarios"].update({"knn-split-baseline": 3}), "scenarios.knn-split-baseline"),
    ("results", lambda d: d["scenarios"].update({"knn-split-baseline": [1, 2]}), "scenarios.knn-split-baseline"),
    ("results", lambda d: d["scenarios"]["zeroshot-baseline"].update(metrics=[0.5]),
     "scenarios.zeroshot-baseline.metrics"),
    ("results", lambda d: d.update(run=5), "run must be an object"),
    ("baseline", lambda d: d["scenarios"]["zeroshot-baseline"].update(tolerances={"accuracy": "loose"}),
     "scenarios.zeroshot-baseline.tolerances.accuracy"),
])
def test_cli_malformed_entries_are_exit_2_naming_file_and_key(tmp_path, capsys, side, edit, key):
    """Not skipped (a string metric or a number for a scenario would silently shrink the check)."""
    docs = {"results": results_doc(), "baseline": results_doc()}
    edit(docs[side])
    res = write_results_dir(tmp_path / "res", docs["results"])
    base = write_baseline(tmp_path / "baseline.json", docs["baseline"])
    assert main(["check-drift", str(res), "--baseline", str(base)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and key in err and "Traceback" not in err
    assert str(base if side == "baseline" else res / "results.json") in err


def test_infinite_metrics_compare_equal_only_to_themselves():
    inf = results_doc(**{"zeroshot-baseline": {"accuracy": math.inf}})
    assert check(inf, inf).ok and not check(results_doc(), inf).ok and not check(inf, results_doc()).ok


def test_scope_requires_only_the_selected_scenarios():
    """pytest -k: baseline scenarios the session did not select are neither compared nor missing."""
    now = results_doc()
    del now["scenarios"]["knn-split-baseline"]
    report = check(now, results_doc(), scope={"zeroshot-baseline"})
    assert report.ok and report.checked == 2 and report.out_of_scope == ["knn-split-baseline"]
    assert "1 baseline scenario(s) not selected in this session, not checked" in report.notes()
    lost = check(now, results_doc(), scope={"zeroshot-baseline", "knn-split-baseline"})
    assert not lost.ok and lost.lost == [Missing("knn-split-baseline", None, "results")]


def test_cli_update_to_an_unwritable_path_is_exit_2(tmp_path, capsys, monkeypatch):
    res = write_results_dir(tmp_path / "res", results_doc())
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["check-drift", str(res), "--baseline", str(blocker / "baseline.json"), "--update"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: cannot write baseline {blocker / 'baseline.json'}")
    # a read-only folder (permission bits do not stop root, so the refusal is simulated)
    from dirti_bench.commands import check_drift

    def refuse(path, text):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(check_drift, "write_text", refuse)
    assert main(["check-drift", str(res), "--baseline", str(tmp_path / "b.json"), "--update"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write baseline" in err and "Permission denied" in err


def configured(threshold=5.0, dataset="dirti-demo-seed0", labels=("food", "disgusting food"), **metrics) -> dict:
    doc = results_doc()
    doc["run"] |= {"dataset": dataset, "dataset_sha256": dataset[:1] * 64}
    doc["scenarios"]["zeroshot-disgust"] = {
        "task": "disgust", "labels": list(labels), "metrics": {"accuracy": 0.3, **metrics},
        "options": {"threshold": threshold, "logit_scale": 100.0, "tied_votes": 3, "n_raters_source": "assumed"}}
    return doc


def test_cli_a_run_at_another_threshold_is_exit_2_naming_the_threshold(tmp_path, capsys):
    base = tmp_path / "baseline.json"
    assert main(["check-drift", str(write_results_dir(tmp_path / "five", configured())), "--baseline", str(base),
                 "--update"]) == 0
    stored = json.loads(base.read_text())["scenarios"]["zeroshot-disgust"]
    # configured options only: an outcome (tied_votes) or a description is not configuration
    assert stored["options"] == {"logit_scale": 100.0, "threshold": 5.0} and stored["labels"] == ["food", "disgusting food"]
    capsys.readouterr()
    six = write_results_dir(tmp_path / "six", configured(threshold=6.0, accuracy=0.9))
    assert main(["check-drift", str(six), "--baseline", str(base)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {six} is not comparable with {base}")
    assert "threshold 5.0 vs 6.0 in zeroshot-disgust" in err[0] and "--accept-differences" in err[0]
    # the explicit flag compares anyway: then the moved accuracy is drift
    assert main(["check-drift", str(six), "--baseline", str(base), "--accept-differences"]) == 1
    # outcomes and descriptions that differ do not make results incomparable
    same = configured()
    same["scenarios"]["zeroshot-disgust"]["options"] |= {"tied_votes": 9, "n_raters_source": "other words"}
    assert main(["check-drift", str(write_results_dir(tmp_path / "same", same)), "--baseline", str(base)]) == 0


def test_cli_another_dataset_or_label_space_is_exit_2_naming_it(tmp_path, capsys):
    base = write_baseline(tmp_path / "baseline.json", baseline_document(configured()))
    other = write_results_dir(tmp_path / "oasis", configured(dataset="oasis-like"))
    assert main(["check-drift", str(other), "--baseline", str(base)]) == 2
    err = capsys.readouterr().err
    assert "dataset 'dirti-demo-seed0' vs 'oasis-like'" in err and "dataset content" in err and "drift" not in err
    fewer = write_results_dir(tmp_path / "fewer", configured(labels=("food",)))
    assert main(["check-drift", str(fewer), "--baseline", str(base)]) == 2
    assert "label space (2 classes vs 1) in zeroshot-disgust" in capsys.readouterr().err


def _benchmark_plugin():
    """benchmarks/conftest.py (the pytest benchmark plugin) as a plain module, to call its drift check."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "conftest.py"
    spec = importlib.util.spec_from_file_location("dirti_benchmarks_conftest", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("edit", "named"), [
    ({"threshold": 6.0}, "threshold 5.0 vs 6.0 in zeroshot-disgust"),
    ({"dataset": "oasis-like"}, "dataset 'dirti-demo-seed0' vs 'oasis-like'"),
    ({"labels": ("food",)}, "label space (2 classes vs 1) in zeroshot-disgust"),
])
def test_benchmark_session_drift_check_refuses_another_configuration_like_the_cli(tmp_path, capsys, edit, named):
    plugin = _benchmark_plugin()
    base = write_baseline(tmp_path / "baseline.json", baseline_document(configured()))
    out = write_results_dir(tmp_path / "results", configured(accuracy=0.9, **edit))
    # the one rule (validity.comparability via require_comparable): the same message check-drift prints
    assert main(["check-drift", str(out), "--baseline", str(base)]) == 2
    cli_error = capsys.readouterr().err.strip()
    state = {"summary": []}
    with pytest.raises(UserError) as refused:
        plugin.check_drift(state, out, str(base), None)
    message = str(refused.value)
    assert named in message and "not comparable" in message and "--accept-differences" in message
    # the CLI's message, with the plugin's own flag in place of check-drift's
    assert message.split(" (pytest option")[0] == cli_error.removeprefix("error: ").split(" (command-line")[0]
    assert state["summary"] == []  # nothing reported as drift or as a mere note
    # the same override as the CLI: then the moved accuracy is drift (False), the difference a note
    assert plugin.check_drift(state, out, str(base), None, accept_differences=True) is False
    assert any(line.startswith("drift against") for line in state["summary"])


def test_benchmark_accept_differences_reads_the_option_or_its_variable(monkeypatch):
    plugin = _benchmark_plugin()

    class Config:
        def __init__(self, value):
            self.value = value

        def getoption(self, flag):
            assert flag == "--accept-differences"
            return self.value

    monkeypatch.delenv("DIRTI_BENCH_ACCEPT_DIFFERENCES", raising=False)
    assert plugin.option(Config(None), "--accept-differences") is False
    assert plugin.option(Config(True), "--accept-differences") is True
    for value, expected in (("1", True), ("yes", True), ("0", False), ("false", False), ("", False)):
        monkeypatch.setenv("DIRTI_BENCH_ACCEPT_DIFFERENCES", value)
        assert plugin.option(Config(None), "--accept-differences") is expected, value
