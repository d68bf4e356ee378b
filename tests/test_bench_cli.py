"""`dirti-bench bench`: one table with every figure, and its user errors (mechanics; the targets
themselves are asserted in benchmarks/test_performance.py)."""

from __future__ import annotations

import pytest

from dirti_bench.allocator import keep_freed_memory
from dirti_bench.bench import ROWS
from dirti_bench.cli import main
from dirti_bench.encoding import precision
from dirti_bench.encoding.imaging import default_workers
from dirti_bench.encoding.models import describe_device

TINY = ["bench", "--model", "dirti-tiny", "--images", "6", "--batch-size", "2", "--rounds", "1",
        "--text-sample", "4", "--device", "cpu", "--no-warm", "--no-first-run"]


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_bench_prints_one_table_with_every_figure(capsys):
    assert main([*TINY, "--precision", "int8"]) == 0
    out = capsys.readouterr().out
    assert "6 images of 1024x768, batch 2, decode tensor-resize" in out
    assert out.splitlines()[0].startswith(f"dirti-tiny on cpu ({describe_device('cpu')}), ")  # timings name the hardware
    assert "--precision int8" in out.splitlines()[0]
    skipped = {"warm_run_s", "warm_scenarios_s", "warm_forward_calls", "cold_run_s", "peak_rss_mb",  # --no-warm
               "first_run_summary_s", "first_run_total_s", "demo_warm_run_s"}  # --no-first-run
    skipped |= {key for key, _, _ in ROWS if key.startswith("sweep_")}  # no --sweep
    skipped |= {"pipeline_gpu_decode_img_s", "image_ratio_gpu_decode", "gpu_decode_min_cosine"}  # CUDA only
    for key, label, _ in ROWS:
        shown = label.format(image_ratio_method="paired per batch", decode_workers=default_workers(0))
        assert (shown in out) == (key not in skipped), key
    precision_row = next(line for line in out.splitlines() if "--precision: min cosine to fp32" in line)
    assert 0.99 <= float(precision_row.split("|")[2]) <= 1.0


@pytest.mark.parametrize(("args", "message"), [
    (["--images", "3"], "error: images 3 is too small; use at least 6 (one photo per category) "
                       "(command-line option --images)"),
    (["--model", "ViT-Nope"], "unknown model 'ViT-Nope'"),
    (["--precision", "bf16"], "error: precision bf16 needs bf16 arithmetic"),
])
def test_bench_user_errors_are_one_line(capsys, monkeypatch, args, message):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    assert main([*TINY, *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_bench_times_a_cold_sweep_against_its_models(capsys, monkeypatch):
    from dirti_bench import bench

    seen = {}
    original = bench.measure_sweep

    def spy(*args, **kwargs):
        seen.update(original(*args, **kwargs))
        return seen

    monkeypatch.setattr(bench, "measure_sweep", spy)
    assert main([*TINY, "--sweep", "2"]) == 0
    out = capsys.readouterr().out
    assert seen["sweep_models"] == 2 and seen["sweep_images"] == 6
    assert seen["sweep_ratio"] == seen["sweep_s"] / (seen["sweep_bare_forward_s"] + seen["sweep_checkpoint_load_s"])
    # the target's bare side is plain open_clip; the second one gets the sweep's allocator setting,
    # so that ratio is the pipeline's overhead alone
    assert seen["sweep_plain_keeps_freed_memory"] is False
    assert seen["sweep_tuned_keeps_freed_memory"] is keep_freed_memory()
    assert seen["sweep_overhead_ratio"] == seen["sweep_s"] / (seen["sweep_tuned_forward_s"] + seen["sweep_tuned_load_s"])
    for label, key in [("sweep / (bare forwards + loads)", "sweep_ratio"),
                       ("sweep / (same-allocator forwards + loads)", "sweep_overhead_ratio")]:
        row = next(line for line in out.splitlines() if label in line)
        assert float(row.split("|")[2]) == round(seen[key], 3)

