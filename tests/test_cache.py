"""The embedding cache: keyed by content and encoder identity, atomic, self-checking."""

from __future__ import annotations

import shutil

import numpy as np

from dirti_bench.encoding.cache import CachedEncoder, EmbeddingCache


class CountingEncoder:
    """Deterministic embeddings from file bytes / text; counts what reaches the 'model'."""

    def __init__(self, weights="w1"):
        self.weights = weights
        self.images_seen: list[str] = []
        self.texts_seen: list[str] = []
        self.forward_calls = 0

    def identity(self):
        return {"model": "counting", "weights": self.weights}

    def run_info(self):
        return {"model": "counting", "weights_sha256": self.weights}

    @staticmethod
    def _vec(seed_bytes: bytes) -> np.ndarray:
        rng = np.random.default_rng(list(seed_bytes[-16:]))
        v = rng.standard_normal(8).astype(np.float32)
        return v / np.linalg.norm(v)

    def encode_images(self, paths):
        self.forward_calls += 1
        self.images_seen += [p.name for p in paths]
        return np.stack([self._vec(p.read_bytes() + self.weights.encode()) for p in paths])

    def encode_texts(self, texts):
        self.forward_calls += 1
        self.texts_seen += list(texts)
        return np.stack([self._vec(t.encode() + self.weights.encode()) for t in texts])


def test_second_pass_is_all_hits_with_identical_embeddings(tmp_path, demo_copy):
    paths = sorted((demo_copy / "DIRTI Database").glob("*.jpg"))[:6]
    first = CachedEncoder(CountingEncoder(), tmp_path / "c")
    a = first.encode_images(paths)
    second = CachedEncoder(CountingEncoder(), tmp_path / "c")
    b = second.encode_images(paths)
    np.testing.assert_array_equal(a, b)
    assert second.forward_calls == 0 and second.cache.hits == 6 and second.cache.misses == 0


def test_cache_is_keyed_by_content_template_and_weights(tmp_path, demo_copy):
    paths = sorted((demo_copy / "DIRTI Database").glob("*.jpg"))[:4]
    CachedEncoder(CountingEncoder(), tmp_path / "c").encode_images(paths)
    CachedEncoder(CountingEncoder(), tmp_path / "c").encode_texts(["a photo of {c}", "b"])
    shutil.copy(paths[3], paths[0])  # image 0 now has other bytes
    enc = CountingEncoder()
    CachedEncoder(enc, tmp_path / "c").encode_images(paths)
    CachedEncoder(enc, tmp_path / "c").encode_texts(["a photo of {c}", "a new template"])
    # paths[0] now equals paths[3] byte for byte, so it is a hit through the content key
    assert enc.images_seen == []
    assert enc.texts_seen == ["a new template"]
    other = CountingEncoder(weights="w2")
    CachedEncoder(other, tmp_path / "c").encode_images(paths[:2])
    assert other.images_seen == [p.name for p in paths[:2]]


def test_edited_image_is_reencoded(tmp_path, demo_copy):
    paths = sorted((demo_copy / "DIRTI Database").glob("*.jpg"))[:3]
    CachedEncoder(CountingEncoder(), tmp_path / "c").encode_images(paths)
    paths[1].write_bytes(paths[1].read_bytes() + b"\0")
    enc = CountingEncoder()
    CachedEncoder(enc, tmp_path / "c").encode_images(paths)
    assert enc.images_seen == [paths[1].name]


def test_corrupt_entry_is_detected_and_recomputed(tmp_path, demo_copy):
    paths = sorted((demo_copy / "DIRTI Database").glob("*.jpg"))[:3]
    good = CachedEncoder(CountingEncoder(), tmp_path / "c").encode_images(paths)
    entries = sorted((tmp_path / "c").rglob("*.npy"))
    assert len(entries) == 3
    blob = bytearray(entries[0].read_bytes())
    blob[-40] ^= 0xFF  # flip a payload byte
    entries[0].write_bytes(bytes(blob))
    entries[1].write_bytes(entries[1].read_bytes()[:10])  # truncated
    enc = CountingEncoder()
    cached = CachedEncoder(enc, tmp_path / "c")
    again = cached.encode_images(paths)
    np.testing.assert_array_equal(again, good)
    assert cached.cache.corrupt == 2 and len(enc.images_seen) == 2


def test_writes_leave_no_temp_files(tmp_path):
    cache = EmbeddingCache(tmp_path / "c", {"model": "m"})
    for i in range(5):
        cache.put("text", f"{i:064x}", np.ones(4, np.float32) * i)
    files = [p.name for p in (tmp_path / "c").rglob("*") if p.is_file()]
    assert len(files) == 5 and not [f for f in files if f.endswith(".tmp")]
    np.testing.assert_array_equal(cache.get("text", f"{3:064x}"), np.full(4, 3, np.float32))


def _rewrite_entry(path, vec: np.ndarray) -> None:
    """A well-formed entry (valid checksum) holding ``vec``: only its size is wrong."""
    import hashlib
    import io

    buf = io.BytesIO()
    np.save(buf, vec.astype(np.float32), allow_pickle=False)
    payload = buf.getvalue()
    path.write_bytes(payload + hashlib.sha256(payload).digest())


def test_an_entry_of_the_wrong_size_is_corrupt_and_recomputed(tmp_path, demo_copy):
    paths = sorted((demo_copy / "DIRTI Database").glob("*.jpg"))[:3]
    good = CachedEncoder(CountingEncoder(), tmp_path / "c").encode_images(paths)
    entry = sorted((tmp_path / "c").rglob("*.npy"))[1]
    _rewrite_entry(entry, np.ones(5) / np.sqrt(5))
    for _ in range(2):  # the first run repairs the cache; the next is all hits again
        enc = CountingEncoder()
        cached = CachedEncoder(enc, tmp_path / "c")
        np.testing.assert_array_equal(cached.encode_images(paths), good)
        if enc.images_seen:
            assert cached.cache.corrupt == 1 and cached.cache.hits == 2 and len(enc.images_seen) == 1
        else:
            assert cached.cache.corrupt == 0 and cached.cache.hits == 3


def test_without_a_recorded_width_the_model_decides_which_size_is_wrong(tmp_path, demo_copy):
    paths = sorted((demo_copy / "DIRTI Database").glob("*.jpg"))[:3]
    first = CachedEncoder(CountingEncoder(), tmp_path / "c")
    good = first.encode_images(paths)
    (first.cache.dir / "meta.json").unlink()  # e.g. a cache written before widths were recorded
    _rewrite_entry(sorted(first.cache.dir.rglob("*.npy"))[0], np.ones(5) / np.sqrt(5))
    enc = CountingEncoder()
    cached = CachedEncoder(enc, tmp_path / "c")
    np.testing.assert_array_equal(cached.encode_images(paths), good)
    assert cached.cache.corrupt == 1 and cached.cache.hits == 2
    assert cached.cache.recorded_width() == 8


def test_a_full_disk_while_caching_is_one_user_error(tmp_path, demo_copy, monkeypatch):
    import pytest

    from dirti_bench.encoding import cache as cache_module
    from dirti_bench.errors import UserError

    def full(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache_module, "write_bytes", full)
    paths = sorted((demo_copy / "DIRTI Database").glob("*.jpg"))[:2]
    with pytest.raises(UserError, match="cannot write the embedding cache .*No space left on device"):
        CachedEncoder(CountingEncoder(), tmp_path / "c").encode_images(paths)
