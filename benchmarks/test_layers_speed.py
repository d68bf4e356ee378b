"""A layer-wise run against a plain run (``pytest benchmarks/test_layers_speed.py -m perf``).

Both are cold ``dirti-bench run`` processes (fresh cache home each round, imports included) on the
same generated photos, model and scenario (``align-disgust-probe``); the layer-wise one adds
``--layers all``: every block read in the same forward (encoding/layers.py), the per-layer probes
of ``layers-disgust`` and the representational similarity of every layer. The target:
at most ~1.5x the plain run for ViT-B-32 on 300 photos on 2 CPU cores. A warm layer-wise re-run
must do no forward at all. Rounds alternate and the best of each side is kept (a shared machine's
speed swings by more than the difference).

  DIRTI_BENCH_PERF_IMAGES=300 DIRTI_BENCH_PERF_BATCH=32 pytest benchmarks/test_layers_speed.py -m perf
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

from dirti_bench.bench import _dirti_bench_run, bench_photos
from dirti_bench.reporting.projection import numba_cache_dir

MODEL = os.environ.get("DIRTI_BENCH_PERF_MODEL", "ViT-B-32")
IMAGES = int(os.environ.get("DIRTI_BENCH_PERF_IMAGES", "12"))
BATCH = int(os.environ.get("DIRTI_BENCH_PERF_BATCH", "4"))
DEVICE = os.environ.get("DIRTI_BENCH_PERF_DEVICE", "cpu")
ROUNDS = int(os.environ.get("DIRTI_BENCH_PERF_LAYER_ROUNDS", "2"))
MAX_LAYERS_RATIO = 1.5
DIRTI_SIZED = IMAGES >= 300


def measure_layers(folder: Path, rounds: int) -> dict:
    common = ["--data", str(folder), "--model", MODEL, "--pretrained", "random", "--device", DEVICE,
              "--batch-size", str(BATCH), "--scenarios", "align-disgust-probe", "--no-report"]
    plain, layered, warm, forward_calls = [], [], None, None
    with tempfile.TemporaryDirectory(prefix="dirti-bench-layers-") as tmp:
        tmp = Path(tmp)
        for r in range(rounds):
            for name, extra, times in (("plain", [], plain), ("layers", ["--layers", "all"], layered)):
                env = {**os.environ, "DIRTI_BENCH_HOME": str(tmp / f"{name}-{r}"), "MPLBACKEND": "Agg",
                       "NUMBA_CACHE_DIR": numba_cache_dir()}
                times.append(_dirti_bench_run([*common, *extra, "--out", str(tmp / f"{name}-{r}-out")], env,
                                              tmp / "rss"))
        env = {**os.environ, "DIRTI_BENCH_HOME": str(tmp / "layers-0"), "MPLBACKEND": "Agg",
               "NUMBA_CACHE_DIR": numba_cache_dir()}
        warm = _dirti_bench_run([*common, "--layers", "all", "--out", str(tmp / "warm")], env, tmp / "rss")
        forward_calls = json.loads((tmp / "warm" / "results.json").read_text())["run"]["forward_calls"]
    return {"plain_cold_s": min(plain), "layers_cold_s": min(layered), "layers_ratio": min(layered) / min(plain),
            "layers_warm_s": warm, "layers_warm_forward_calls": forward_calls, "rounds": rounds,
            "images": IMAGES, "model": MODEL, "device": DEVICE, "cores": len(os.sched_getaffinity(0))}


@pytest.mark.perf
def test_layer_wise_run_costs_little_beyond_a_plain_run(benchmark):
    folder = bench_photos(IMAGES)
    figures = benchmark.pedantic(measure_layers, args=(folder, ROUNDS), rounds=1, iterations=1)
    benchmark.extra_info.update(figures)
    assert figures["layers_warm_forward_calls"] == 0, figures
    assert figures["layers_warm_s"] < figures["layers_cold_s"], figures
    if DIRTI_SIZED:
        assert figures["layers_ratio"] <= MAX_LAYERS_RATIO, figures
