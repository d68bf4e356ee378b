"""2-D projections of the image features for the report: a seeded UMAP, or PCA.

umap-learn's numba kernels are not compiled with ``cache=True``, so every
process would recompile them (tens of seconds). Turning numba's on-disk cache on for
them makes a warm projection of 300 points take well under a second; the first one
still compiles, which is why the demo's smoke run draws PCA (instant, no compiler)
unless asked for ``--projection umap``.

A UMAP is also kept in the cache home, keyed by the features, the seed, its parameters and the
umap-learn and numba versions: the same run's report, rendered again (a warm re-run, ``dirti-bench
report``), reuses it instead of fitting the same seeded embedding again (~1.5 s for 300 points).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings

import numpy as np

from ..atomic import write_bytes
from ..encoding.cache import packed, unpacked
from ..paths import cache_home, projection_cache_dir

MIN_POINTS = 10
_cache_enabled = False


def numba_cache_dir() -> str:
    """``$NUMBA_CACHE_DIR`` if the user set one, else dirti-bench's cache home."""
    return os.environ.get("NUMBA_CACHE_DIR") or str(cache_home() / "numba")


def _enable_numba_cache() -> None:
    """Give umap's and pynndescent's numba functions an on-disk cache (once per process)."""
    global _cache_enabled
    if _cache_enabled:
        return
    import numba
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    # The cache locator reads this when caching is enabled below, so set it first.
    numba.config.CACHE_DIR = numba_cache_dir()
    import umap.layouts  # noqa: F401  (load every module whose kernels UMAP runs)
    import umap.umap_  # noqa: F401

    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith(("umap", "pynndescent")):
            continue
        for value in list(vars(module).values()):
            if isinstance(value, Dispatcher) and isinstance(value._cache, NullCache):
                value.enable_caching()
    _cache_enabled = True


def umap_projection(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """(n, 2) UMAP embedding; the same features and seed give the same embedding."""
    features = np.asarray(features, dtype=np.float32)
    if len(features) < MIN_POINTS:
        raise ValueError(f"UMAP needs at least {MIN_POINTS} points, got {len(features)}")
    params = {"n_neighbors": min(15, len(features) - 1), "random_state": seed}
    path = projection_cache_dir() / f"umap-{_umap_key(features, params)}.npy"
    cached = _cached(path, len(features))
    if cached is not None:
        return cached
    _enable_numba_cache()
    import umap

    with warnings.catch_warnings():
        # "n_jobs overridden to 1 by setting random_state": seeding is the point here.
        warnings.simplefilter("ignore", UserWarning)
        embedding = np.asarray(umap.UMAP(**params).fit_transform(features))
    try:
        write_bytes(path, packed(embedding))
    except OSError:  # a read-only cache home: the projection is still right, only not kept
        pass
    return embedding


def _umap_key(features: np.ndarray, params: dict) -> str:
    from importlib.metadata import version

    facts = {**params, "umap-learn": version("umap-learn"), "numba": version("numba"), "shape": features.shape}
    h = hashlib.sha256(json.dumps(facts, sort_keys=True).encode())
    h.update(np.ascontiguousarray(features).tobytes())
    return h.hexdigest()


def _cached(path, n: int) -> np.ndarray | None:
    """The kept (n, 2) embedding, or None; a damaged or misshapen file is deleted, to be fitted again."""
    try:
        embedding = unpacked(path.read_bytes())
        if embedding.shape != (n, 2) or not np.isfinite(embedding).all():
            raise ValueError("not an (n, 2) embedding")
        return embedding
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        path.unlink(missing_ok=True)
        return None


PROJECTIONS = ("umap", "pca")


def pca_projection(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, 2) principal components of the features and their share of the variance."""
    from sklearn.decomposition import PCA

    features = np.asarray(features, dtype=np.float64)
    if len(features) < MIN_POINTS:
        raise ValueError(f"a projection needs at least {MIN_POINTS} points, got {len(features)}")
    pca = PCA(n_components=2, svd_solver="full")
    return pca.fit_transform(features), pca.explained_variance_ratio_


def project(features: np.ndarray, method: str, seed: int = 0) -> tuple[np.ndarray, tuple[str, str]]:
    """The 2-D embedding and its axis names for ``method`` (umap or pca)."""
    if method == "pca":
        embedding, share = pca_projection(features)
        return embedding, (f"PC 1 ({share[0]:.0%} of variance)", f"PC 2 ({share[1]:.0%} of variance)")
    if method == "umap":
        return umap_projection(features, seed=seed), ("UMAP 1", "UMAP 2")
    raise ValueError(f"unknown projection {method!r}; choose one of {', '.join(PROJECTIONS)}")
