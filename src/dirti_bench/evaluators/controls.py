"""Controls for the layer-wise probe, each a scenario of its own:

* ``align-pixels``: low-level image statistics that need no model (colour histograms, luminance and
  contrast, spatial-frequency energy, edge density, an 8x8 grey thumbnail) in the same ridge probe
  and folds: does the model beat pixels? The model's side of the paired difference is its final
  embedding in the same probe on the same folds.
* ``align-random-init``: the same architecture with seeded random weights, the layer probe run once
  per seed (a band over seeds), and the paired difference trained - random. The published result
  (Conwell et al., PNAS 2025) is that randomly initialised networks score far below trained ones
  (r 0.29-0.38 against 0.85 on OASIS).
"""

from __future__ import annotations

import numpy as np

from ..errors import ScenarioNotRunnable

PIXEL_SIDE = 64  # images are reduced to this square before the statistics
HIST_BINS = 8
SF_BANDS = 6
THUMB = 8
PIXEL_FEATURES = (f"RGB histograms ({HIST_BINS} bins per channel), luminance mean and RMS contrast, saturation "
                  f"mean and SD, log energy in {SF_BANDS} radial spatial-frequency bands, mean gradient magnitude, "
                  f"an {THUMB}x{THUMB} grey thumbnail; from each image reduced to {PIXEL_SIDE}x{PIXEL_SIDE}")


def image_statistics(rgb: np.ndarray) -> np.ndarray:
    """One feature vector of low-level statistics from an (h, w, 3) uint8 image."""
    from PIL import Image

    img = Image.fromarray(rgb).resize((PIXEL_SIDE, PIXEL_SIDE), Image.Resampling.BILINEAR)
    x = np.asarray(img, dtype=np.float64) / 255.0
    hist = [np.histogram(x[..., c], bins=HIST_BINS, range=(0, 1))[0] / x[..., c].size for c in range(3)]
    lum = x @ np.array([0.299, 0.587, 0.114])
    hsv = np.asarray(img.convert("HSV"), dtype=np.float64) / 255.0
    power = np.abs(np.fft.fftshift(np.fft.fft2(lum - lum.mean()))) ** 2
    yy, xx = np.indices(power.shape) - PIXEL_SIDE // 2
    radius = np.hypot(yy, xx)
    edges = np.geomspace(1, PIXEL_SIDE / 2, SF_BANDS + 1)
    bands = [np.log1p(power[(radius >= lo) & (radius < hi)].mean()) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    gy, gx = np.gradient(lum)
    thumb = np.asarray(Image.fromarray((lum * 255).astype(np.uint8)).resize((THUMB, THUMB), Image.Resampling.BOX),
                       dtype=np.float64).ravel() / 255.0
    return np.concatenate([*hist, [lum.mean(), lum.std(), hsv[..., 1].mean(), hsv[..., 1].std()], bands,
                           [np.hypot(gx, gy).mean()], thumb]).astype(np.float32)


def pixel_features(paths) -> np.ndarray:
    """(n, d) image statistics, each image decoded upright in RGB the way the encoder decodes it."""
    from ..encoding.imaging import open_rgb

    return np.stack([image_statistics(np.asarray(open_rgb(p, PIXEL_SIDE * 2))) for p in paths])


def random_init_encoders(ctx, seeds):
    """Cached encoders of the run's architecture with seeded random weights, one per seed."""
    from ..encoding.cache import CachedEncoder
    from ..encoding.models import ClipEncoder
    from ..paths import embedding_cache_dir

    clip = getattr(ctx.encoder, "encoder", ctx.encoder)
    if not isinstance(clip, ClipEncoder):
        if hasattr(clip, "random_init"):  # the known-answer double
            return [clip.random_init(s) for s in seeds]
        raise ScenarioNotRunnable("the random-init control rebuilds the run's open_clip architecture; this "
                                  "encoder is not an open_clip model")
    return [CachedEncoder(ClipEncoder(clip.model_name, "random", device=clip.device, seed=s,
                                      batch_size=clip.batch_size, num_workers=clip.num_workers,
                                      progress=clip.progress, decode=clip.decode, decoded=clip.decoded,
                                      decode_pool=clip.decode_pool, gpu_decode=clip.gpu_decode_request),
                          embedding_cache_dir()) for s in seeds]
