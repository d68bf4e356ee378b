"""Hardening round 3: what a hostile or careless user hands the tool ends in a stated
result or in exit 2 with one ``error:`` line, never a traceback, a library warning, a silently lost
analysis or two models sharing one results folder."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from tests.helpers import write_rated_set

from dirti_bench import jsonio
from dirti_bench.cli import main
from dirti_bench.data.ratedset import load_rated_set
from dirti_bench.encoding.model_list import ModelSpec, parse_models_file, with_slugs
from dirti_bench.errors import one_line
from dirti_bench.evaluators.rating_stats import within_category
from dirti_bench.results import read_results

ROOT = Path(__file__).resolve().parents[1]
DEEP = "[" * 100_000  # deeper than Python's recursion limit: json.loads raises RecursionError


def one_error(capsys) -> str:
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in captured.err, captured.err
    return lines[0]


def rated_run(data, out, *args) -> int:
    return main(["run", "--data", str(data), "--model", "dirti-tiny", "--pretrained", "random", "--out", str(out),
                 "--no-progress", "--no-report", *args])


# ---------------------------------------------------------------- 0: one run folder per model and weights


@pytest.mark.parametrize("paths", [("x/ck a.pt", "x/ck-a.pt"), ("a b/ck.pt", "a-b/ck.pt"), ("p/A.pt", "q/a.pt"),
                                   ("p/CK.pt", "p/ck.pt")])
def test_checkpoints_whose_paths_slug_alike_get_their_own_run_folders(tmp_path, paths):
    specs = with_slugs([ModelSpec("m", str(tmp_path / p)) for p in paths])
    folded = [s.slug.casefold() for s in specs]  # a case-insensitive disk holds one folder for both
    assert len(set(folded)) == len(paths), [s.slug for s in specs]
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", s.slug) for s in specs)
    assert with_slugs([ModelSpec("m", str(tmp_path / p)) for p in paths]) == specs  # same names every time


def test_models_file_with_slug_alike_checkpoints_makes_distinct_slugs(tmp_path):
    (tmp_path / "x").mkdir()
    for name in ("ck a.pt", "ck-a.pt"):
        (tmp_path / "x" / name).write_bytes(b"weights")
    models = tmp_path / "models.txt"
    models.write_text('dirti-tiny "x/ck a.pt"\ndirti-tiny x/ck-a.pt\n')
    slugs = [s.slug for s in parse_models_file(models)]
    assert len(set(slugs)) == 2 and all(re.fullmatch(r"dirti-tiny__.*-x-ck-a\.pt-[0-9a-f]{8}", s) for s in slugs), slugs


def test_a_very_long_checkpoint_path_makes_a_folder_name_a_disk_can_hold(tmp_path):
    long_a, long_b = ("d" * 200 + "/a/ck.pt"), ("d" * 200 + "/b/ck.pt")
    specs = with_slugs([ModelSpec("m", long_a), ModelSpec("m", long_b)])
    assert all(len(s.slug) <= 120 for s in specs) and specs[0].slug != specs[1].slug


# ---------------------------------------------------------------- 1: no analysis lost without a word


def _one_bad_valence_cell(table):
    table = table.astype({"valence": object})
    table.loc[3, "valence"] = "n/a"
    return table


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_an_unnamed_rating_column_with_one_bad_cell_is_reported_and_recorded(tmp_path, capsys):
    root = write_rated_set(tmp_path / "set", n_per_cat=4, table_edit=_one_bad_valence_cell)
    stimuli = load_rated_set(root, verify=False)
    assert "valence" not in stimuli.rating_columns
    assert [column for column, _ in stimuli.unused_ratings] == ["valence"]
    assert rated_run(root, tmp_path / "out") == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "valence" in line]
    assert len(lines) == 1 and lines[0].startswith("skipped 2 scenarios (align-valence-zeroshot, align-valence-probe)")
    assert "'n/a'" in lines[0] and "lines [5]" in lines[0] and "rating_columns" in lines[0]
    skipped = read_results(tmp_path / "out")["skipped"]
    assert set(skipped) >= {"align-valence-zeroshot", "align-valence-probe"}
    assert "'valence' is not used" in skipped["align-valence-probe"]


def test_an_unused_column_is_recorded_only_for_the_scenarios_selected(tmp_path, capsys):
    root = write_rated_set(tmp_path / "set", n_per_cat=4, table_edit=_one_bad_valence_cell)
    assert rated_run(root, tmp_path / "out", "--scenarios", "zeroshot-baseline") == 0
    assert read_results(tmp_path / "out")["skipped"] == {}


def test_a_text_only_column_stays_out_of_the_ratings_without_a_skip(tmp_path):
    stimuli = load_rated_set(write_rated_set(tmp_path / "set", n_per_cat=3), verify=False)
    assert "note" not in stimuli.rating_columns and stimuli.unused_ratings == ()


def test_a_disgust_column_with_a_bad_cell_names_the_cell(tmp_path, capsys):
    def bad_disgust(table):
        table = table.astype({"disgust": object})
        table.loc[0, "disgust"] = "x"
        return table

    root = write_rated_set(tmp_path / "set", n_per_cat=3, table_edit=bad_disgust)
    assert rated_run(root, tmp_path / "out") == 2
    line = one_error(capsys)
    assert "column 'disgust' has missing or non-numeric values ['x'] on lines [2]" in line


# ---------------------------------------------------------------- 2: a tiny set skips, before encoding


def test_a_two_image_set_skips_what_it_cannot_support_before_encoding(tmp_path, capsys):
    root = write_rated_set(tmp_path / "set", n_per_cat=1, categories=["a", "b"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert rated_run(root, tmp_path / "out", "--scenarios", "*") == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Warning" not in err
    skipped = read_results(tmp_path / "out")["skipped"]
    assert "no class has 2 or more stimuli" in skipped["template-sweep-baseline-clip80"]
    assert err.index("template-sweep-baseline-clip80") < err.index("images:")  # said before encoding


# ---------------------------------------------------------------- 3 and 8: hostile JSON in every loader


def test_deep_json_is_a_decode_error_not_a_recursion_error():
    with pytest.raises(json.JSONDecodeError, match="nested too deeply"):
        jsonio.loads(DEEP)
    assert jsonio.loads('{"a": [1]}') == {"a": [1]}


@pytest.mark.parametrize("where", ["sidecar", "templates", "baseline", "results", "report"])
def test_deeply_nested_json_is_one_error_line_in_every_loader(small_results, tmp_path, capsys, where):
    deep = tmp_path / "deep.json"
    deep.write_text(DEEP)
    root = write_rated_set(tmp_path / "set", n_per_cat=3)
    if where == "sidecar":
        (root / "dirti-bench.json").write_text(DEEP)
        code = rated_run(root, tmp_path / "out")
    elif where == "templates":
        code = rated_run(root, tmp_path / "out", "--templates", str(deep))
    else:
        results = tmp_path / "results"
        shutil.copytree(small_results, results)
        if where != "baseline":
            (results / "results.json").write_text(DEEP)
        if where == "report":
            code = main(["report", str(results)])
        else:
            code = main(["check-drift", str(results), "--baseline", str(deep)])
    assert code == 2
    line = one_error(capsys)
    assert "nested too deeply" in line and ("results.json" in line if where in ("results", "report") else True)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- 4: no per-column work nobody asked for


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_ten_thousand_unselected_columns_make_no_scenarios(tmp_path, monkeypatch):
    from dirti_bench import scenarios
    from dirti_bench.pipeline import RunConfig, plan_scenarios

    def wide(table):
        extra = pd.DataFrame(np.random.default_rng(0).uniform(1, 9, (len(table), 10_000)).round(2),
                             columns=[f"r{i}" for i in range(10_000)])
        return pd.concat([table, extra], axis=1)

    stimuli = load_rated_set(write_rated_set(tmp_path / "set", n_per_cat=2, table_edit=wide), verify=False)
    assert len(stimuli.aligned_ratings) == 10_001  # valence and every r column are still ratings
    made = []
    real = scenarios.alignment_scenarios
    monkeypatch.setattr(scenarios, "alignment_scenarios", lambda column, *a, **k: made.append(column) or real(column, *a, **k))
    chosen, _ = plan_scenarios(RunConfig(data=tmp_path / "set", scenarios=["zeroshot-baseline"]), stimuli)
    assert [s.id for s in chosen] == ["zeroshot-baseline"] and made == []
    chosen, _ = plan_scenarios(RunConfig(data=tmp_path / "set", scenarios=["align-r7-*"]), stimuli)
    assert [s.id for s in chosen] == ["align-r7-zeroshot", "align-r7-probe"] and made == ["r7"]


# ---------------------------------------------------------------- 6: stated results, not library warnings


def test_constant_ratings_are_a_stated_skip_not_a_warning(tmp_path, capsys):
    def constant(table):
        return table.assign(valence=5.0)

    root = write_rated_set(tmp_path / "set", n_per_cat=4, table_edit=constant)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert rated_run(root, tmp_path / "out", "--scenarios", "align-*") == 0
    err = capsys.readouterr().err
    assert "Warning" not in err
    skipped = read_results(tmp_path / "out")["skipped"]
    assert skipped["align-valence-zeroshot"].startswith("undefined: constant ratings")


def test_within_category_mean_of_one_category_does_not_warn():
    x = np.array([1.0, 1.0, 1.0, 2.0, 3.0])  # many resamples of 5 tied values are constant
    y = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        per, metrics, ci = within_category(x, y, ["a"] * 5, n_boot=200, n_perm=50, seed=0)
    assert metrics["n_categories_within"] == 1
    low, high = ci["mean_within_category_spearman_rho"]
    assert -1 <= low <= high <= 1


def test_a_single_category_set_runs_without_a_library_warning(tmp_path, capsys):
    root = write_rated_set(tmp_path / "set", n_per_cat=5, categories=["only"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert rated_run(root, tmp_path / "out", "--scenarios", "align-*") == 0
    assert "Warning" not in capsys.readouterr().err


# ---------------------------------------------------------------- 9: empty names


@pytest.mark.parametrize("flag", ["--model", "--pretrained"])
def test_an_empty_model_or_weights_name_is_refused(tmp_path, capsys, flag):
    assert main(["run", "--demo", flag, "", "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    assert f"{flag} '' is empty" in one_error(capsys)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- 5: untrusted names stay on their line


def test_one_line_escapes_every_control_character():
    assert one_line("a\nerror: b\r\x1b[31m\u2028") == "a\\nerror: b\\r\\x1b[31m\\u2028"
    assert one_line("plain · ünïcode") == "plain · ünïcode"


def test_a_set_name_with_a_newline_forges_no_line_in_the_output(tmp_path, capsys):
    root = write_rated_set(tmp_path / "set", n_per_cat=3, sidecar={"name": "toy\nerror: injected"})
    assert rated_run(root, tmp_path / "out", "--scenarios", "zeroshot-baseline") == 0
    captured = capsys.readouterr()
    for stream in (captured.out, captured.err):
        assert not any(line.startswith("error:") for line in stream.splitlines()), stream
    assert "toy\\nerror: injected" in captured.out


def test_an_image_name_with_a_newline_is_one_error_line(tmp_path, capsys):
    def renamed(table):
        table.loc[0, "file"] = "spider\nerror: fake.png"
        return table

    root = write_rated_set(tmp_path / "set", n_per_cat=3, table_edit=renamed)
    (root / "img" / "spider_00.png").unlink()
    (root / "img" / "spider\nerror: fake.png").write_bytes(b"not an image")
    assert rated_run(root, tmp_path / "out") == 2
    line = one_error(capsys)
    assert "spider\\nerror: fake.png" in line


def test_a_bad_option_value_with_a_newline_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["run", "--demo", "--seed", "1\nerror: injected", "--out", str(tmp_path / "out")])
    assert stop.value.code == 2
    assert "\\nerror: injected" in one_error(capsys)


# ---------------------------------------------------------------- 8: tampered results are refused


@pytest.fixture(scope="module")
def small_results(tmp_path_factory):
    """One finished run (classification and alignment), made once; tests copy it before tampering."""
    import os

    base = tmp_path_factory.mktemp("results")
    root = write_rated_set(base / "set", n_per_cat=4)
    old = os.environ.get("DIRTI_BENCH_HOME")
    os.environ["DIRTI_BENCH_HOME"] = str(base / "home")
    try:
        assert rated_run(root, base / "out", "--scenarios", "zeroshot-baseline", "align-valence-zeroshot") == 0
    finally:
        if old is None:
            os.environ.pop("DIRTI_BENCH_HOME")
        else:
            os.environ["DIRTI_BENCH_HOME"] = old
    return base / "out"


def _tampered(small_results, tmp_path, how) -> Path:
    results = tmp_path / "results"
    shutil.copytree(small_results, results)
    if how == "labels":
        doc = json.loads((results / "results.json").read_text())
        doc["scenarios"]["zeroshot-baseline"]["labels"].reverse()
        doc["scenarios"]["zeroshot-baseline"]["per_class"] = dict(reversed(
            doc["scenarios"]["zeroshot-baseline"]["per_class"].items()))
        (results / "results.json").write_text(json.dumps(doc))
    else:
        name = "predictions.csv.gz" if how == "duplicated" else "alignment_predictions.csv"
        opener = gzip.open if name.endswith(".gz") else open
        with opener(results / name, "rt") as fh:
            lines = fh.read().splitlines()
        with opener(results / name, "wt") as fh:
            fh.write("\n".join([*lines, lines[1]]) + "\n")
    return results


@pytest.mark.parametrize(("how", "message"), [
    ("labels", "contradict its confusion matrix"),
    ("duplicated", "predictions.csv.gz holds 2 rows that repeat a stimulus"),
    ("duplicated-alignment", "alignment_predictions.csv holds 2 rows that repeat a stimulus"),
])
def test_report_refuses_results_edited_after_the_run(small_results, tmp_path, capsys, how, message):
    results = _tampered(small_results, tmp_path, how)
    before = sorted(p.name for p in results.iterdir())
    assert main(["report", str(results), "--out", str(tmp_path / "report")]) == 2
    line = one_error(capsys)
    assert message in line and "changed after the run" in line
    assert not (tmp_path / "report").exists() and sorted(p.name for p in results.iterdir()) == before
    assert main(["report", str(small_results), str(results), "--out", str(tmp_path / "cmp")]) == 2
    assert message in one_error(capsys)


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_report_renders_untampered_results(small_results, tmp_path, capsys):
    assert main(["report", str(small_results), "--out", str(tmp_path / "report")]) == 0
    assert (tmp_path / "report" / "report.html").is_file()


@pytest.mark.parametrize("kind", ["foreign", "file"])
def test_report_out_refuses_a_folder_of_other_files(small_results, tmp_path, capsys, kind):
    out = tmp_path / "thesis"
    if kind == "foreign":
        out.mkdir()
        (out / "chapter1.tex").write_text("mine")
    else:
        out.write_text("mine")
    assert main(["report", str(small_results), "--out", str(out)]) == 2
    assert "--out" in one_error(capsys)
    assert (sorted(p.name for p in out.iterdir()) == ["chapter1.tex"]) if kind == "foreign" else out.read_text() == "mine"


# ---------------------------------------------------------------- 7: SIGTERM / SIGINT while the report is written


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_while_the_report_is_written_leaves_nothing_behind(tmp_path, sig, code):
    out = tmp_path / "runs" / "out"
    out.parent.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "dirti_bench.cli", "run", "--demo", "--no-progress",
                             "--out", str(out)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            env=env, cwd=tmp_path)
    for line in proc.stderr:
        if "writing the report" in line:
            proc.send_signal(sig)
            sent = time.monotonic()
            break
    else:
        pytest.fail(f"the run ended (exit {proc.wait()}) before writing its report")
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == code
    assert time.monotonic() - sent < 60, "the run did not stop promptly"
    assert "Traceback" not in rest and rest.strip().startswith("error: "), rest
    assert len(rest.strip().splitlines()) == 1
    assert sorted(p.name for p in out.parent.iterdir()) == []  # no .out.staging-*, no half-written out


def test_calibration_of_one_image_per_class_is_stated_undefined():
    from dirti_bench.evaluators.calibration import calibration

    logits = np.array([[2.0, 0.5], [0.1, 1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics, record, frame = calibration("s", ["a", "b"], ["x", "y"], np.array([0, 1]), logits, "softmax")
    assert np.isfinite(metrics["ece"]) and np.isnan(metrics["ece_calibrated"]) and np.isnan(metrics["brier_calibrated"])
    assert record["temperature"]["undefined"].startswith("undefined: no class has 2 stimuli")
    assert frame["calibration_fold"].isna().all() and len(frame) == 4


# ---------------------------------------------------------------- siblings: checkpoints that are not what they claim


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_a_checkpoint_that_is_a_folder_or_fifo_is_one_error_before_anything_reads_it(tmp_path, capsys, kind):
    path = tmp_path / "ck.pt"
    if kind == "directory":
        path.mkdir()
    else:
        os.mkfifo(path)  # reading it would block for ever
    assert main(["run", "--demo", "--pretrained", str(path), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    line = one_error(capsys)
    assert str(path) in line and ("a directory" if kind == "directory" else "not a regular file") in line
    assert not (tmp_path / "out").exists()


class _RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {_RunsCode.marker}",))


@pytest.mark.parametrize("content", ["pickle", "garbage-zip"])
def test_a_checkpoint_that_would_run_code_or_is_garbage_is_refused_without_running_it(tmp_path, capsys, content):
    import torch

    path, marker = tmp_path / "evil.pt", tmp_path / "pwned"
    if content == "pickle":
        _RunsCode.marker = marker
        torch.save({"state_dict": _RunsCode()}, path)  # torch.load without weights_only would run it
    else:
        path.write_bytes(b"PK\x03\x04" + os.urandom(256))
    assert main(["run", "--demo", "--model", "dirti-tiny", "--pretrained", str(path), "--out", str(tmp_path / "out"),
                 "--no-progress", "--no-report"]) == 2
    err = capsys.readouterr().err  # the stage lines come first: the weights load when encoding starts
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"cannot load checkpoint {path}" in errors[0] and "Traceback" not in err, err
    assert not marker.exists(), "loading the checkpoint ran code from it (torch.load without weights_only)"
    assert not (tmp_path / "out").exists()


def test_a_rated_image_in_a_type_the_set_does_not_read_is_named_as_such(tmp_path, capsys):
    def gif_row(table):
        table.loc[0, "file"] = "moving.gif"
        return table

    root = write_rated_set(tmp_path / "set", n_per_cat=3, table_edit=gif_row)
    (root / "img" / "spider_00.png").unlink()
    frames = [Image.new("P", (8, 8), i) for i in range(3)]
    frames[0].save(root / "img" / "moving.gif", save_all=True, append_images=frames[1:])
    assert rated_run(root, tmp_path / "out") == 2
    line = one_error(capsys)
    assert "'moving.gif'" in line and "file type dirti-bench does not read" in line and ".png" in line


def test_a_full_disk_while_the_report_is_written_names_out_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    import errno

    from dirti_bench.reporting import report

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(report, "write_text", full)
    out = tmp_path / "runs" / "out"
    root = write_rated_set(tmp_path / "set", n_per_cat=3)
    code = main(["run", "--data", str(root), "--model", "dirti-tiny", "--pretrained", "random", "--out", str(out),
                 "--no-progress", "--scenarios", "zeroshot-baseline"])
    assert code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"into {out} (No space left on device)" in errors[0] and "staging" not in errors[0]
    assert sorted(p.name for p in out.parent.iterdir()) == []  # no staging folder, no half-written out


# ---------------------------------------------------------------- sibling: determinism across batch sizes


def test_embeddings_do_not_depend_on_the_batch_size(demo_master):
    from dirti_bench.encoding.models import ClipEncoder

    paths = sorted(demo_master.rglob("*.jpg"))[:13]  # 13 = 8 + 5: batch 8 leaves a remainder of 5
    assert len(paths) == 13
    encoded = {size: ClipEncoder("dirti-tiny", "random", device="cpu", batch_size=size, progress=False,
                                 num_workers=0).encode_images(paths) for size in (13, 8, 3, 1)}
    for size in (8, 3, 1):
        np.testing.assert_array_equal(encoded[size], encoded[13], err_msg=f"batch size {size}")
