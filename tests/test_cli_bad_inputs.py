"""Bad options and unusable folders end before any model loads: exit 2, one ``error:`` line, nothing
written. No test relies on permission bits (CI runs as root, where chmod stops no write): an
unwritable folder is a path under a regular file, a regular file, or a refusal simulated by
monkeypatching."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dirti_bench import paths
from dirti_bench.cli import main
from dirti_bench.encoding.models import ClipEncoder

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_model_load(monkeypatch):
    """Any model load fails the test: the checks must come first."""
    def load(self):
        raise AssertionError("the model was loaded before the check")

    monkeypatch.setattr(ClipEncoder, "load", load)


def one_error(capsys) -> str:
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in captured.err, captured.err
    return lines[0]


def demo_run(*args) -> int:
    return main(["run", "--demo", "--no-progress", "--no-report", "--scenarios", "zeroshot-baseline", *args])


@pytest.fixture
def a_file(tmp_path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    return path


# ---------------------------------------------------------------- unwritable --out and cache folder


@pytest.mark.parametrize("where", ["is", "below"])
def test_out_that_is_or_lies_below_a_file_is_refused_before_the_model_loads(a_file, tmp_path, capsys,
                                                                              no_model_load, where):
    out = a_file if where == "is" else a_file / "results"
    assert demo_run("--out", str(out)) == 2
    line = one_error(capsys)
    assert f"results folder {out}" in line and "not a folder" in line and line.endswith("(command-line option --out)")
    assert not (tmp_path / "home").exists()  # nothing encoded, not even the demo set made
    assert a_file.read_text() == "not a folder"


def test_out_in_a_folder_that_refuses_new_files_is_refused(tmp_path, capsys, no_model_load, monkeypatch):
    blocked = tmp_path / "read-only"
    blocked.mkdir()
    real = paths.tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if Path(dir) == blocked:
            raise PermissionError(13, "Permission denied")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(paths.tempfile, "mkstemp", mkstemp)
    assert demo_run("--out", str(blocked / "new" / "results")) == 2
    line = one_error(capsys)
    assert "is not writable (Permission denied" in line and str(blocked) in line
    assert list(blocked.iterdir()) == []


@pytest.mark.parametrize("where", ["is", "below"])
def test_a_cache_folder_that_is_or_lies_below_a_file_is_refused(a_file, tmp_path, capsys, monkeypatch,
                                                                 no_model_load, where):
    home = a_file if where == "is" else a_file / "cache"
    monkeypatch.setenv("DIRTI_BENCH_HOME", str(home))
    assert demo_run("--out", str(tmp_path / "out")) == 2
    line = one_error(capsys)
    assert "DIRTI_BENCH_HOME" in line and str(home) in line and "not a folder" in line
    assert not (tmp_path / "out").exists()


def test_a_read_only_cache_folder_is_refused(tmp_path, capsys, monkeypatch, no_model_load):
    home = tmp_path / "home"
    home.mkdir()
    real = paths.tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if Path(dir) == home:
            raise OSError(30, "Read-only file system")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(paths.tempfile, "mkstemp", mkstemp)
    assert demo_run("--out", str(tmp_path / "out")) == 2
    assert "Read-only file system" in one_error(capsys)
    assert list(home.iterdir()) == []


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_the_benchmark_session_checks_its_results_dir_first(a_file, tmp_path):
    env = {**os.environ, "DIRTI_BENCH_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks/test_scenarios.py", "-q", "-p", "no:cacheprovider",
         "-k", "test_scenario and zeroshot-baseline", "--benchmark-disable", "--results-dir", str(a_file)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 2, proc.stdout[-2000:]
    assert f"error: results folder {a_file} is a file" in proc.stdout + proc.stderr
    assert "(command-line option --results-dir)" in proc.stdout + proc.stderr
    assert not (tmp_path / "home" / "embeddings").exists()


# ---------------------------------------------------------------- seeds and other integer options


@pytest.mark.parametrize("args", [
    ["run", "--demo", "--seed", "-1"],
    ["run", "--demo", "--seed", "-5"],
    ["run", "--demo", "--seed", str(2**32)],
    ["run", "--demo", "--seed", "100000000000000000000000"],
    ["run", "--demo", "--seed", "1e23"],
    ["run", "--data", "somewhere", "--seed", "-1"],
    ["make-demo", "DEMO", "--seed", "-5"],
    ["make-demo", "DEMO", "--seed", str(2**32)],
    ["run", "--demo", "--workers", "-2"],
    ["run", "--demo", "--batch-size", "0"],
])
def test_out_of_range_integer_options_are_refused_at_the_cli(tmp_path, capsys, no_model_load, args):
    args = [str(tmp_path / "demo") if a == "DEMO" else a for a in args]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--out", str(tmp_path / "out")] if args[0] == "run" else args)
    assert exit_info.value.code == 2
    line = one_error(capsys)
    assert args[args.index(next(a for a in args if a.startswith("--") and a not in ("--demo", "--data")))] in line
    assert not (tmp_path / "out").exists() and not (tmp_path / "demo").exists()
    assert not (tmp_path / "home").exists()


def test_the_largest_seed_is_accepted(tmp_path, capsys):
    assert main(["make-demo", str(tmp_path / "demo"), "--seed", str(2**32 - 1)]) == 0
    assert (tmp_path / "demo" / "DIRTI_Supplementary.xlsx").is_file()
