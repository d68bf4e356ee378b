"""Performance targets of issue 7, recorded with pytest-benchmark (figures in ``extra_info``).

Cheap by default (ViT-B-32 random weights on 12 generated 1024x768 photos; all
12 classes x 80 templates truncated vs 16 of them through the stock 77-token
path; warm re-run on the 60-image demo with dirti-tiny). The full measurement:

  DIRTI_BENCH_PERF_MODEL    open_clip model, random weights       (default ViT-B-32)
  DIRTI_BENCH_PERF_IMAGES   generated 1024x768 photos             (default 12; DIRTI: 300)
  DIRTI_BENCH_PERF_BATCH    batch size                            (default 4; use 32 with 300)
  DIRTI_BENCH_PERF_PROMPTS  prompts timed on the stock path       (default 16; 960 = all)
  DIRTI_BENCH_PERF_DEVICE   cpu, cuda or mps                      (default cpu)
  DIRTI_BENCH_PERF_WARM     'demo' (60 images, dirti-tiny) or 'photos' (the photos above
                            with the model above)                 (default demo)

e.g. ``DIRTI_BENCH_PERF_IMAGES=300 DIRTI_BENCH_PERF_BATCH=32 DIRTI_BENCH_PERF_PROMPTS=960
DIRTI_BENCH_PERF_WARM=photos pytest benchmarks/test_performance.py``. Throughput
targets are defined for ViT-B-32-class models, where the forward pass dominates;
with dirti-tiny the ratios are recorded but only the equality targets are asserted.
"""

from __future__ import annotations

import os

import pytest

from dirti_bench.bench import (
    bench_photos,
    load_model,
    measure_images,
    measure_texts,
    measure_warm_rerun,
    photo_paths,
    prompt_ensemble,
)
from dirti_bench.encoders import TINY_MODEL
from dirti_bench.stimuli import load_dirti

MODEL = os.environ.get("DIRTI_BENCH_PERF_MODEL", "ViT-B-32")
IMAGES = int(os.environ.get("DIRTI_BENCH_PERF_IMAGES", "12"))
BATCH = int(os.environ.get("DIRTI_BENCH_PERF_BATCH", "4"))
PROMPTS = int(os.environ.get("DIRTI_BENCH_PERF_PROMPTS", "16"))
WARM = os.environ.get("DIRTI_BENCH_PERF_WARM", "demo")
DEVICE = os.environ.get("DIRTI_BENCH_PERF_DEVICE", "cpu")
# Best of 5 alternating rounds for the image comparison: this VM's speed drifts by tens of
# percent over seconds, and the pipeline-vs-hand-written margin is ~6%.
IMAGE_ROUNDS = 5
ROUNDS = 3  # alternating rounds inside each measurement; the best of each side is kept

THROUGHPUT_TARGETS = MODEL != TINY_MODEL
DIRTI_SIZED = IMAGES >= 300  # the measurement: DIRTI's 300 photos
MIN_IMAGE_RATIO, MIN_DECODE_COSINE = 0.95, 0.999
MIN_TEXT_RATIO, MAX_TEXT_DIFF = 5.0, 1e-4
MAX_WARM_S, MAX_RSS_MB = 15.0, 3072


@pytest.fixture(scope="module")
def photos():
    folder = bench_photos(IMAGES)
    return folder, photo_paths(load_dirti(folder), IMAGES)


@pytest.fixture(scope="module")
def model():
    return load_model(MODEL, DEVICE)


def _once(benchmark, fn, *args):
    figures = benchmark.pedantic(fn, args=args, rounds=1, iterations=1)
    benchmark.extra_info.update({"model": MODEL, **figures})
    return figures


def test_image_pipeline_keeps_up_with_the_bare_forward(benchmark, model, photos):
    net, preprocess, _ = model
    figures = _once(benchmark, measure_images, net, preprocess, photos[1], BATCH, DEVICE, IMAGE_ROUNDS)
    assert figures["decode_min_cosine"] >= MIN_DECODE_COSINE
    if THROUGHPUT_TARGETS:
        # Beat the plain open_clip loop in the same run, on any hardware.
        assert figures["pipeline_img_s"] > figures["hand_written_img_s"], figures
        if DIRTI_SIZED or DEVICE != "cpu":
            # On a CPU the forward fills every core, so decoding is paid in full between forwards:
            # on 2 cores ~2-3 ms per photo against ~55-70 ms of forward, ~0.96x. image_ratio is
            # then the per-batch paired figure (whole runs swing by +-5% on this VM). The cheap
            # default (12 photos in batches of 4) is recorded in extra_info, not asserted.
            assert figures["image_ratio"] >= MIN_IMAGE_RATIO, figures


def test_truncated_text_encoding_is_exact_and_faster(benchmark, model):
    net, _, tokenizer = model
    figures = _once(benchmark, measure_texts, net, tokenizer, prompt_ensemble(), DEVICE, ROUNDS, PROMPTS)
    assert figures["text_blocker"] is None
    assert figures["text_max_diff"] <= MAX_TEXT_DIFF
    if THROUGHPUT_TARGETS:
        assert figures["text_ratio"] >= MIN_TEXT_RATIO, figures


def test_warm_rerun_does_no_forward_and_is_fast(benchmark, photos):
    if WARM == "photos":
        args = ["--data", str(photos[0]), "--model", MODEL, "--pretrained", "random", "--device", DEVICE,
                "--batch-size", str(BATCH)]
    else:
        args = ["--demo", "--device", DEVICE]
    figures = _once(benchmark, measure_warm_rerun, args)
    assert figures["warm_forward_calls"] == 0
    assert figures["warm_cache_misses"] == 0
    assert figures["warm_run_s"] <= MAX_WARM_S, figures
    assert figures["peak_rss_mb"] <= MAX_RSS_MB, figures
