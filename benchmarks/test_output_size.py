"""What a large run writes (perf test, off the default run): ``dirti-bench run`` with every default
scenario and its report, ``dirti-tiny`` with seeded random weights, on a synthetic rated set of
``DIRTI_BENCH_PERF_OUTPUT_IMAGES`` distinct tiny images (default 10,000; 8 categories, 3 rating
columns). Target (issue "From 300 photos to the large affective sets"): a 10k-image run writes
<= 60 MB in total. Counted: every file under ``--out`` (results, CSVs, features, report, figures);
not counted: the cache home (embeddings, figure cache: ``DIRTI_BENCH_HOME``, a folder of its own
here), which a re-run reuses rather than writes. Each file's size is in the benchmark's
``extra_info``, so the file to compact next is named.

An unmet target is an XFAIL naming the total and the largest files, unless
``DIRTI_BENCH_PERF_STRICT=1`` (then a failure), as the other open scale targets.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synthetic import make_rated_set

IMAGES = int(os.environ.get("DIRTI_BENCH_PERF_OUTPUT_IMAGES", "10000"))
TARGET_BYTES = 60 * 10**6  # at 10,000 images; scaled linearly for another size
STRICT = os.environ.get("DIRTI_BENCH_PERF_STRICT") == "1"


def written_files(out: Path) -> dict[str, int]:
    """Bytes of every file under ``out``, by its path relative to ``out``, largest first."""
    sizes = {str(p.relative_to(out)): p.stat().st_size for p in out.rglob("*") if p.is_file()}
    return dict(sorted(sizes.items(), key=lambda item: -item[1]))


@pytest.mark.perf
def test_a_large_run_writes_compact_output(benchmark, tmp_path):
    data = make_rated_set(tmp_path / "set", IMAGES, distinct=True)
    out = tmp_path / "out"
    env = {**os.environ, "DIRTI_BENCH_HOME": str(tmp_path / "home"), "MPLBACKEND": "Agg"}
    command = [sys.executable, "-m", "dirti_bench.cli", "run", "--data", str(data), "--model", "dirti-tiny",
               "--pretrained", "random", "--out", str(out), "--quiet", "--no-progress"]

    def run():
        start = time.perf_counter()
        proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        return proc, time.perf_counter() - start

    proc, seconds = benchmark.pedantic(run, rounds=1, iterations=1)
    assert proc.returncode == 0, proc.stderr[-2000:]
    sizes = written_files(out)
    total = sum(sizes.values())
    target = TARGET_BYTES * IMAGES / 10_000
    info = benchmark.extra_info
    info.update({"images": IMAGES, "total_bytes": total, "target_bytes": target, "run_s": seconds,
                 "files": len(sizes), "load_average": os.getloadavg()[0]})
    info.update({f"bytes {name}": size for name, size in sizes.items()})
    largest = ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in list(sizes.items())[:5])
    message = f"{IMAGES} images wrote {total / 1e6:.1f} MB (target {target / 1e6:.0f} MB); largest: {largest}"
    if total > target and not STRICT:
        pytest.xfail(message)  # a known open target: shown with its figure on every perf run
    assert total <= target, message
