"""Performance targets, recorded with pytest-benchmark (figures in ``extra_info``).

Cheap by default (ViT-B-32 random weights on 12 generated 1024x768 photos; all
12 classes x 80 templates truncated vs 16 of them through the stock 77-token
path; warm re-run on the 60-image demo with dirti-tiny). The full measurement:

  DIRTI_BENCH_PERF_MODEL    open_clip model, random weights       (default ViT-B-32)
  DIRTI_BENCH_PERF_IMAGES   generated 1024x768 photos             (default 12; DIRTI: 300)
  DIRTI_BENCH_PERF_BATCH    batch size                            (default 12; use 32 with 300)
  DIRTI_BENCH_PERF_PROMPTS  prompts timed on the stock path       (default 16; 960 = all)
  DIRTI_BENCH_PERF_DEVICE   cpu, cuda or mps                      (default cpu)
  DIRTI_BENCH_PERF_WARM     'demo' (60 images, dirti-tiny) or 'photos' (the photos above
                            with the model above)                 (default demo)
  DIRTI_BENCH_PERF_SWEEP    checkpoints in the cold model sweep   (default 6; full size only)

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
    measure_first_run,
    measure_images,
    measure_sweep,
    measure_texts,
    measure_warm_rerun,
    photo_paths,
    prompt_ensemble,
)
from dirti_bench.data.dirti import load_dirti
from dirti_bench.encoding.models import TINY_MODEL

MODEL = os.environ.get("DIRTI_BENCH_PERF_MODEL", "ViT-B-32")
IMAGES = int(os.environ.get("DIRTI_BENCH_PERF_IMAGES", "12"))
# One batch of the 12 cheap photos: a batch under 8 rows is forwarded padded to 8 (imaging.MIN_FORWARD_ROWS,
# so no embedding depends on how batches fall), a cost that a real run pays once, on its last batch,
# and that batches of 4 would pay on every batch of this cheap set.
BATCH = int(os.environ.get("DIRTI_BENCH_PERF_BATCH", "12"))
PROMPTS = int(os.environ.get("DIRTI_BENCH_PERF_PROMPTS", "16"))
WARM = os.environ.get("DIRTI_BENCH_PERF_WARM", "demo")
DEVICE = os.environ.get("DIRTI_BENCH_PERF_DEVICE", "cpu")
# Best of 5 alternating rounds for the image comparison: a shared machine's speed drifts over
# seconds, and the pipeline's lead over the hand-written loop is small.
IMAGE_ROUNDS = 5
ROUNDS = 3  # alternating rounds inside each measurement; the best of each side is kept

THROUGHPUT_TARGETS = MODEL != TINY_MODEL
DIRTI_SIZED = IMAGES >= 300  # the full measurement: DIRTI's 300 photos
MIN_IMAGE_RATIO, MIN_DECODE_COSINE = 0.95, 0.999
MIN_TEXT_RATIO, MAX_TEXT_DIFF = 5.0, 1e-4
# The warm re-run WITH its report: #29's target (figures drawn in worker processes); without it: 10 s too.
MAX_WARM_S, MAX_WARM_SCENARIOS_S, MAX_RSS_MB = 10.0, 10.0, 3072
# A newcomer's first 'dirti-bench run --demo' with every cache empty (dirti-bench's home, numba's
# kernels, matplotlib's fonts) on 2 cores: the summary table, the whole run, and the run again.
MAX_FIRST_SUMMARY_S, MAX_FIRST_TOTAL_S, MAX_DEMO_WARM_S = 15.0, 30.0, 10.0
# A cold sweep of checkpoints against their bare open_clip forwards + loads. Its fixed costs (imports,
# stimuli, decoding: 7-13 s on a 2-core CPU VM) amortise over a sweep: 6 ViT-B-32 checkpoints measured
# 0.95-0.98 there; against a bare loop given the sweep's allocator setting (recorded, not asserted:
# the target is against plain open_clip) 1.10-1.15.
SWEEP_MODELS = int(os.environ.get("DIRTI_BENCH_PERF_SWEEP", "6"))
MAX_SWEEP_RATIO, SWEEP_ROUNDS = 1.10, 2


# Absolute targets (img/s ratios of the full measurement, seconds) only where asked for: a noisy
# machine must not fail an unrelated change. The perf run (``pytest -m perf``) otherwise asserts
# ratios measured side by side in one run, with margins a machine swinging by +-10% cannot trip.
STRICT = DIRTI_SIZED or os.environ.get("DIRTI_BENCH_PERF_STRICT") == "1"
NOISE_MARGIN = 0.9  # a ratio must hold within +-10% measurement noise on either side


@pytest.fixture(scope="module")
def photos():
    folder = bench_photos(IMAGES)
    return folder, photo_paths(load_dirti(folder), IMAGES)


@pytest.fixture(scope="module")
def timed(request) -> bool:
    """Whether this session times anything. Without a perf test (the default run) the correctness
    checks below need one round of each measurement, not the alternating rounds timing needs."""
    return any(item.get_closest_marker("perf") for item in request.session.items)


@pytest.fixture(scope="module")
def model():
    return load_model(MODEL, DEVICE)


FIGURES: dict[str, dict] = {}  # one measurement per module run, shared by the correctness and perf tests


def _once(benchmark, name, fn, *args):
    if name not in FIGURES:
        figures = benchmark.pedantic(fn, args=args, rounds=1, iterations=1)
        FIGURES[name] = figures
        benchmark.extra_info.update({"model": MODEL, **figures})
    return FIGURES[name]


def _images(benchmark, model, photos, timed):
    net, preprocess, _ = model
    rounds = IMAGE_ROUNDS if timed else 1
    return _once(benchmark, "images", measure_images, net, preprocess, photos[1], BATCH, DEVICE, rounds)


def _texts(benchmark, model, timed):
    net, _, tokenizer = model
    rounds = ROUNDS if timed else 1
    return _once(benchmark, "texts", measure_texts, net, tokenizer, prompt_ensemble(), DEVICE, rounds, PROMPTS)


def _warm(benchmark, photos):
    if WARM == "photos":
        args = ["--data", str(photos[0]), "--model", MODEL, "--pretrained", "random", "--device", DEVICE,
                "--batch-size", str(BATCH)]
    else:
        args = ["--demo", "--device", DEVICE]
    # The scenarios-only warm run is timed where its seconds are asserted.
    return _once(benchmark, "warm", measure_warm_rerun, args, STRICT)


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_decode_shortcut_matches_open_clip_preprocessing(benchmark, model, photos, timed):
    assert _images(benchmark, model, photos, timed)["decode_min_cosine"] >= MIN_DECODE_COSINE


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_truncated_text_encoding_is_exact(benchmark, model, timed):
    figures = _texts(benchmark, model, timed)
    assert figures["text_blocker"] is None
    assert figures["text_max_diff"] <= MAX_TEXT_DIFF


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_warm_rerun_does_no_forward(benchmark, photos):
    figures = _warm(benchmark, photos)
    assert figures["warm_forward_calls"] == 0
    assert figures["warm_cache_misses"] == 0
    assert figures["peak_rss_mb"] <= MAX_RSS_MB, figures


@pytest.mark.perf
@pytest.mark.skipif(not THROUGHPUT_TARGETS, reason=f"throughput targets are defined for ViT-B-32-class models, not {MODEL}")
def test_image_pipeline_keeps_up_with_the_bare_forward(benchmark, model, photos, timed):
    figures = _images(benchmark, model, photos, timed)
    # Beat the plain open_clip loop, both timed in the same run; within noise at the cheap size.
    assert figures["pipeline_img_s"] >= NOISE_MARGIN * figures["hand_written_img_s"], figures
    if STRICT or DEVICE != "cpu":
        assert figures["pipeline_img_s"] > figures["hand_written_img_s"], figures
        # On a CPU the forward fills every core, so decoding is paid in full between forwards;
        # image_ratio is then the per-batch paired figure (whole runs swing on a shared machine).
        assert figures["image_ratio"] >= MIN_IMAGE_RATIO, figures


@pytest.mark.perf
@pytest.mark.skipif(not THROUGHPUT_TARGETS, reason=f"throughput targets are defined for ViT-B-32-class models, not {MODEL}")
def test_truncated_text_encoding_is_faster(benchmark, model, timed):
    figures = _texts(benchmark, model, timed)
    assert figures["text_ratio"] >= MIN_TEXT_RATIO * (1 if STRICT else NOISE_MARGIN), figures


@pytest.mark.perf
@pytest.mark.skipif(not STRICT, reason="absolute seconds are asserted only with DIRTI_BENCH_PERF_STRICT=1 "
                    "or the full 300-photo measurement")
def test_warm_rerun_is_fast(benchmark, photos):
    figures = _warm(benchmark, photos)
    assert figures["warm_run_s"] <= MAX_WARM_S, figures
    # Every scenario, tuned probes included, without the report (process start and loading included).
    assert figures["warm_scenarios_s"] <= MAX_WARM_SCENARIOS_S, figures


@pytest.mark.perf
def test_first_demo_run_is_fast(benchmark):
    figures = _once(benchmark, "first", measure_first_run)
    # Measured side by side: the summary comes before the report, and a warm run beats a cold one.
    assert figures["first_run_summary_s"] < figures["first_run_total_s"], figures
    assert figures["demo_warm_run_s"] < figures["first_run_total_s"], figures
    if STRICT:
        assert figures["first_run_summary_s"] <= MAX_FIRST_SUMMARY_S, figures
        assert figures["first_run_total_s"] <= MAX_FIRST_TOTAL_S, figures
        assert figures["demo_warm_run_s"] <= MAX_DEMO_WARM_S, figures


@pytest.mark.perf
@pytest.mark.skipif(not DIRTI_SIZED, reason="a sweep's fixed costs amortise only over full-size forwards: "
                    "asserted with DIRTI_BENCH_PERF_IMAGES=300 (as 'dirti-bench bench --sweep N' measures it)")
def test_model_sweep_costs_little_beyond_its_forwards(benchmark, photos):
    figures = _once(benchmark, "sweep", measure_sweep, MODEL, photos[0], SWEEP_MODELS, BATCH, DEVICE, 0,
                    SWEEP_ROUNDS)
    assert figures["sweep_ratio"] <= MAX_SWEEP_RATIO, figures
