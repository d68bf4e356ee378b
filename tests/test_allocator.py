"""glibc's malloc keeps freed memory once ``dirti-bench`` starts (dirti_bench.allocator)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dirti_bench import cli

# A fresh interpreter per case: the thresholds are process-wide and one-way.
CHILD = """
import os, sys
from dirti_bench.allocator import keep_freed_memory

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20

applied = keep_freed_memory() if sys.argv[1] == "keep" else False
before = rss_mb()
block = bytearray(256 * 2 ** 20)  # zero-filled, so every page is touched
del block
print(applied, round(rss_mb() - before))
"""


def freed_block_still_mapped(mode: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True).stdout
    applied, kept_mb = out.split()
    return applied, int(kept_mb)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_freed_memory_stays_for_reuse_only_when_kept():
    # by default glibc returns a freed 256 MB block to the system at once (it was mmap'd) ...
    assert freed_block_still_mapped("default") == ("False", pytest.approx(0, abs=32))
    # ... kept, it stays in the heap for the next forward's activations
    applied, kept_mb = freed_block_still_mapped("keep")
    assert applied == "True" and kept_mb >= 200


def test_every_command_keeps_freed_memory(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append(True) or True)
    assert cli.main(["scenarios"]) == 0
    assert calls == [True]
