"""The report's seeded UMAP and the copy kept in the cache home."""

from __future__ import annotations

import numpy as np
import pytest

from dirti_bench import atomic
from dirti_bench.paths import projection_cache_dir
from dirti_bench.reporting import projection


@pytest.fixture
def features():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((3, 16)) * 4
    return (centres[np.arange(45) % 3] + rng.standard_normal((45, 16))).astype(np.float32)


@pytest.fixture
def fits(monkeypatch):
    """Count UMAP fits (the real fit runs)."""
    import umap

    calls = []
    original = umap.UMAP.fit_transform

    def counted(self, *args, **kwargs):
        calls.append(self.random_state)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(umap.UMAP, "fit_transform", counted)
    return calls


def _kept() -> list:
    folder = projection_cache_dir()
    return sorted(folder.glob("umap-*.npy")) if folder.is_dir() else []


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_a_umap_is_fitted_once_and_then_read_back_unchanged(features, fits):
    first = projection.umap_projection(features, seed=0)
    assert fits == [0] and len(_kept()) == 1
    again = projection.umap_projection(features, seed=0)
    assert fits == [0]  # read back, not fitted again
    np.testing.assert_array_equal(again, first)
    # What was kept is what a fresh fit gives: the seeded UMAP is deterministic.
    _kept()[0].unlink()
    np.testing.assert_array_equal(projection.umap_projection(features, seed=0), first)
    assert fits == [0, 0]


def test_other_features_or_seed_are_fitted_anew(features, fits):
    projection.umap_projection(features, seed=0)
    projection.umap_projection(features, seed=1)
    moved = features.copy()
    moved[0, 0] += 1e-3
    projection.umap_projection(moved, seed=0)
    assert fits == [0, 1, 0] and len(_kept()) == 3


def test_a_damaged_copy_is_fitted_again_and_replaced(features, fits):
    first = projection.umap_projection(features, seed=0)
    (path,) = _kept()
    blob = bytearray(path.read_bytes())
    blob[-40] ^= 0xFF  # inside the payload: the checksum no longer matches
    path.write_bytes(bytes(blob))
    np.testing.assert_array_equal(projection.umap_projection(features, seed=0), first)
    assert fits == [0, 0]
    np.testing.assert_array_equal(projection.umap_projection(features, seed=0), first)
    assert fits == [0, 0]  # the replacement is read back


def test_an_unwritable_cache_still_gives_the_projection(features, fits, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError("read-only")

    monkeypatch.setattr(projection, "write_bytes", refuse)
    embedding = projection.umap_projection(features, seed=0)
    assert embedding.shape == (45, 2) and np.isfinite(embedding).all()
    assert _kept() == [] and fits == [0]
    monkeypatch.setattr(projection, "write_bytes", atomic.write_bytes)
    np.testing.assert_array_equal(projection.umap_projection(features, seed=0), embedding)
