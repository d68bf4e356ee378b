"""The device a tox environment asks for (``DIRTI_BENCH_DEVICE``) is really used.

``tox -e cuda`` / ``tox -e mps`` run this file; on a machine without that device
the root conftest skips it with one line of reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dirti_bench.encoding.models import ClipEncoder, resolve_device

pytestmark = pytest.mark.device
ROOT = Path(__file__).resolve().parents[1]


def requested_device() -> str:
    return os.environ.get("DIRTI_BENCH_DEVICE") or "cpu"


def test_encoder_runs_on_the_requested_device_and_agrees_with_cpu(demo_stimuli):
    device = requested_device()
    paths = [s.path for s in demo_stimuli.stimuli[:4]]
    on_device = ClipEncoder("dirti-tiny", "random", device=device, seed=0, progress=False)
    assert on_device.run_info()["device"] == resolve_device(device)  # never a silent fallback to CPU
    if resolve_device(device) == "cuda":
        import torch

        assert on_device.run_info()["device_name"].startswith(torch.cuda.get_device_name())
    feats = on_device.encode_images(paths)
    assert next(on_device.load().parameters()).device.type == resolve_device(device)
    reference = ClipEncoder("dirti-tiny", "random", device="cpu", seed=0, progress=False).encode_images(paths)
    # same seeded weights on both devices: embeddings agree up to floating-point differences
    cosine = np.sum(feats * reference, axis=1)
    assert np.all(cosine > 0.999), cosine


def test_gpu_decode_feeds_the_same_resize_and_agrees_with_the_cpu_decode(demo_stimuli):
    """JPEGs decoded on the GPU (--gpu-decode on) give the embeddings of the CPU decode within cosine
    0.999; its CPU-testable parts (batching, resize, fallbacks, flags) are in test_decode_routes.py."""
    if resolve_device(requested_device()) != "cuda":
        pytest.skip("GPU decoding needs DIRTI_BENCH_DEVICE=cuda on a CUDA machine (tox -e cuda)")
    paths = [s.path for s in demo_stimuli.stimuli[:12]]
    on = ClipEncoder("dirti-tiny", "random", device="cuda", seed=0, progress=False, gpu_decode="on")
    off = ClipEncoder("dirti-tiny", "random", device="cuda", seed=0, progress=False, gpu_decode="off")
    a, b = on.encode_images(paths), off.encode_images(paths)
    assert on.decode_route["jpeg_decode"] == "torchvision" and on.decode_route["jpeg_device"] == "cuda"
    assert on.run_info()["image_decode"]["gpu_decode"] == "on"
    assert on.preprocess_id.endswith("+gpu-jpeg") and not off.preprocess_id.endswith("+gpu-jpeg")
    cosine = np.sum(a * b, axis=1)
    assert np.all(cosine > 0.999), cosine


def _missing_device() -> str | None:
    import torch

    if not torch.cuda.is_available():
        return "cuda"
    if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        return "mps"
    return None


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_a_missing_device_skips_with_one_line_of_reason(tmp_path):
    missing = _missing_device()
    if missing is None:
        pytest.skip("this machine has both cuda and mps; no missing device to request")
    env = {**os.environ, "DIRTI_BENCH_DEVICE": missing}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(Path(__file__)), "-q", "-rs", "-p", "no:cacheprovider",
         "--rootdir", str(ROOT)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    skipped = [line for line in proc.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(skipped) == 1, proc.stdout  # every test skipped, folded into one line
    assert f"DIRTI_BENCH_DEVICE={missing}" in skipped[0] and "not available" in skipped[0]
    assert "passed" not in proc.stdout and "failed" not in proc.stdout
