"""``pytest benchmarks -k disgust`` (or ``-k sweep``) selects exactly the registry's disgust (sweep) scenarios."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from dirti_bench.scenarios import REGISTRY

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
@pytest.mark.parametrize(("keyword", "at_least"), [("disgust", 8), ("sweep", 6)])
def test_k_keyword_selects_exactly_those_scenarios(tmp_path, keyword, at_least):
    results = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks", "--collect-only", "-q",
         "-k", keyword, "--results-dir", str(results)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    selected = re.findall(r"^\S+::(\w+)(?:\[(.+?)\])?$", proc.stdout, flags=re.MULTILINE)
    expected = [sid for sid in REGISTRY if keyword in sid]
    assert len(expected) >= at_least
    assert [sid for name, sid in selected if name == "test_scenario"] == expected
    # other benchmarks selected (e.g. per-scenario timings) concern such a scenario too; no throughput cases
    assert all(keyword in sid for _, sid in selected)
    assert not results.exists()  # collecting writes no results


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_drift_baseline_option_fails_the_benchmark_session_on_drift(tmp_path):
    import json
    import os

    def session(baseline: Path, **extra_env) -> subprocess.CompletedProcess:
        env = {**os.environ, "DIRTI_BENCH_HOME": str(tmp_path / "home"), **extra_env}
        return subprocess.run(
            [sys.executable, "-m", "pytest", "benchmarks/test_scenarios.py", "-q", "-p", "no:cacheprovider",
             "-k", "test_scenario and zeroshot-baseline", "--benchmark-disable",
             "--results-dir", str(tmp_path / "results"), "--drift-baseline", str(baseline)],
            cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)

    committed = json.loads((ROOT / "reports" / "baseline.json").read_text())
    same = tmp_path / "same.json"
    same.write_text(json.dumps(committed))
    moved = json.loads(json.dumps(committed))
    moved["scenarios"]["zeroshot-baseline"]["metrics"]["accuracy"] += 0.5
    shifted = tmp_path / "moved.json"
    shifted.write_text(json.dumps(moved))

    ok = session(same)  # -k selected one scenario: only it is required of the full baseline
    assert ok.returncode == 0, ok.stdout[-2000:]
    # the scenario metrics close the session in a section of their own, not glued to a progress line
    lines = ok.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if "dirti-bench scenario metrics" in line)
    assert lines[start].startswith("=") and lines[start + 1].startswith("dirti-tiny · random weights — smoke run")
    assert lines[start + 2].startswith("zero-shot scoring: the study's fixed 100 × cos, softmax (zeroshot-baseline)")
    assert lines[start + 3].startswith("scenario ") and lines[start + 5].startswith("zeroshot-baseline ")
    assert "--benchmark-json holds every metric" in ok.stdout and "no drift against" in ok.stdout
    stale = tmp_path / "results" / "figures" / "confusion-from-an-earlier-session.png"
    stale.write_bytes(b"old")
    drifted = session(shifted)
    assert drifted.returncode == 1, drifted.stdout[-2000:]
    assert "drift against" in drifted.stdout and "accuracy" in drifted.stdout
    assert not stale.exists()  # the session's results directory is replaced whole, like a run's
    assert "not selected in this session, not checked" in ok.stdout
    # the CLI's rules: a check that compared nothing fails with one error line, exit 2
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"scenarios": {}}))
    nothing = session(empty)
    assert nothing.returncode == 2, nothing.stdout[-2000:]
    assert [line for line in nothing.stdout.splitlines() if line.startswith("error:")] == [
        next(line for line in nothing.stdout.splitlines() if "compared no metric" in line)]
    # another configuration (here the label space) is "not comparable", exit 2, as check-drift; the override compares
    relabelled = json.loads(json.dumps(committed))
    relabelled["scenarios"]["zeroshot-baseline"]["labels"] = ["food", "animals"]
    other = tmp_path / "relabelled.json"
    other.write_text(json.dumps(relabelled))
    refused = session(other)
    assert refused.returncode == 2, refused.stdout[-2000:]
    error = next(line for line in refused.stdout.splitlines() if line.startswith("error:"))
    assert "not comparable" in error and "label space (2 classes vs 6) in zeroshot-baseline" in error
    assert "--accept-differences" in error and "drift against" not in refused.stdout
    assert session(other, DIRTI_BENCH_ACCEPT_DIFFERENCES="1").returncode == 0
