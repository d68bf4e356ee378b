"""The examples run as written (fast: the demo set and the tiny random model)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_the_prompt_comparison_example_prints_both_tables_and_writes_nothing(tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    proc = subprocess.run([sys.executable, str(REPO / "examples" / "prompt_comparison.py")], cwd=cwd,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("dirti-tiny · random weights · dirti-demo-seed0 (60 images)")
    table = [line.split() for line in lines if line.split()[:1] in (["baseline"], ["disgust"])]
    assert [row[:2] for row in table] == [[task, prompts] for task in ("baseline", "disgust")
                                          for prompts in ("study", "clip80", "affect")]
    assert any(line.split()[:2] == ["clip80", "zeroshot-baseline"] for line in lines)  # a paired comparison
    assert not any(cwd.iterdir())
