"""Decoding in worker processes against worker threads (a perf test, off the default run): the
decode alone (read, JPEG draft decode, batched resize, normalise; a forward that costs nothing) of
generated DIRTI-sized photos (1024x768 JPEGs), best of alternating rounds per side after one warm-up
round each (the process pool starts once per process, as in a run).

Target: processes >= 0.8x threads on 2 cores (PIL decodes without the GIL, so threads already use
both cores there; processes pay for copying pixels back through a pipe, and win where work under
the GIL dominates, e.g. many small files). ``DIRTI_BENCH_PERF_DECODE_IMAGES`` (default 120) sets the
number of photos; the figures go to the benchmark's ``extra_info``.
"""

from __future__ import annotations

import os

import pytest

from dirti_bench.bench import _best_rate, _no_forward, bench_photos, load_model, photo_paths
from dirti_bench.data.dirti import load_dirti
from dirti_bench.encoding.imaging import default_workers, encode_image_paths

IMAGES = int(os.environ.get("DIRTI_BENCH_PERF_DECODE_IMAGES", "120"))
MIN_RATIO = 0.8
ROUNDS = 3


@pytest.mark.perf
def test_decoding_in_processes_keeps_up_with_threads(tmp_path, benchmark):
    _, preprocess, _ = load_model("dirti-tiny", "cpu")
    paths = photo_paths(load_dirti(bench_photos(IMAGES, root=tmp_path)), IMAGES)
    no_forward = _no_forward()
    feats = {}

    def decode(pool):
        def run():
            feats[pool] = encode_image_paths(no_forward, preprocess, paths, "cpu", 32, None, False, pool=pool)[0]
        return run

    runs = [decode("threads"), decode("processes")]
    _best_rate(len(paths), runs, 1)  # warm-up: the process pool starts, files enter the page cache
    threads, processes = _best_rate(len(paths), runs, ROUNDS)
    ratio = processes / threads
    benchmark.extra_info.update({"images": len(paths), "workers": default_workers(0), "threads_img_s": threads,
                                 "processes_img_s": processes, "ratio": ratio, "rounds": ROUNDS})
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)  # the timings above are the measurement
    print(f"decode alone, {len(paths)} photos of 1024x768, {default_workers(0)} workers: threads {threads:.1f} img/s, "
          f"processes {processes:.1f} img/s (ratio {ratio:.2f})")
    assert (feats["threads"] == feats["processes"]).all()
    assert ratio >= MIN_RATIO, f"decoding in processes {ratio:.2f}x threads (target >= {MIN_RATIO})"
