"""On-disk embedding cache.

Entries live under ``<cache>/embeddings/<namespace>/`` where the namespace
hashes the encoder identity (model, weights identity, preprocessing, decode
path, library versions) and each entry is keyed by the sha256 of the image
bytes or the prompt text. Each file carries a sha256 trailer over its payload,
so a corrupt entry is detected, deleted and recomputed, never used.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..atomic import write_bytes, write_text
from ..data.stimuli import file_sha256

DIGEST_BYTES = 32


def identity_hash(identity: dict) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


class EmbeddingCache:
    def __init__(self, root: Path, identity: dict):
        self.identity = identity
        self.dir = Path(root) / identity_hash(identity)[:24]
        self.hits = 0
        self.misses = 0
        self.corrupt = 0

    def _path(self, kind: str, key: str) -> Path:
        return self.dir / kind / key[:2] / f"{key}.npy"

    def has(self, kind: str, key: str) -> bool:
        """Whether an entry exists (unchecked: ``get`` verifies it), for saying how much is cached."""
        return self._path(kind, key).is_file()

    def get(self, kind: str, key: str) -> np.ndarray | None:
        path = self._path(kind, key)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            self.misses += 1
            return None
        payload, digest = blob[:-DIGEST_BYTES], blob[-DIGEST_BYTES:]
        try:
            if len(blob) <= DIGEST_BYTES or hashlib.sha256(payload).digest() != digest:
                raise ValueError("checksum mismatch")
            vec = np.load(io.BytesIO(payload), allow_pickle=False)
            if vec.ndim != 1 or not np.isfinite(vec).all():
                raise ValueError("bad array")
        except ValueError:
            self.corrupt += 1
            self.misses += 1
            path.unlink(missing_ok=True)
            return None
        self.hits += 1
        return vec

    def put(self, kind: str, key: str, vec: np.ndarray) -> None:
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(vec, dtype=np.float32), allow_pickle=False)
        payload = buf.getvalue()
        write_bytes(self._path(kind, key), payload + hashlib.sha256(payload).digest())

    def read_meta(self) -> dict:
        try:
            return json.loads((self.dir / "meta.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def write_meta(self, meta: dict) -> None:
        write_text(self.dir / "meta.json", json.dumps({**self.identity, **meta}, indent=2, sort_keys=True, default=str))


# run-info facts only a built model knows; kept beside the cache so a run of all hits still reports them
RECORDED_IN_CACHE = ("weights_sha256", "text_encoding")


class CachedEncoder:
    """Wraps an encoder; only images/texts whose key is not cached reach the model."""

    def __init__(self, encoder, cache_root: Path):
        self.encoder = encoder
        self.cache = EmbeddingCache(cache_root, encoder.identity())

    def run_info(self) -> dict:
        info = dict(self.encoder.run_info())
        for key in RECORDED_IN_CACHE:
            if key in info and not info[key]:
                # The model was never built (all cache hits): use what was recorded when it was.
                info[key] = self.cache.read_meta().get(key)
        return info

    def identity(self) -> dict:
        return self.encoder.identity()

    def _encode(self, kind: str, keys: list[str], items: list, compute) -> np.ndarray:
        vecs: list[np.ndarray | None] = [self.cache.get(kind, k) for k in keys]
        todo = [i for i, v in enumerate(vecs) if v is None]
        if todo:
            fresh = compute([items[i] for i in todo])
            for i, vec in zip(todo, fresh, strict=True):
                self.cache.put(kind, keys[i], vec)
                vecs[i] = vec
            meta = self.cache.read_meta()
            info = self.encoder.run_info()
            fresh_meta = {key: info[key] for key in RECORDED_IN_CACHE if info.get(key)}
            if any(meta.get(key) != value for key, value in fresh_meta.items()):
                self.cache.write_meta({**meta, **fresh_meta})
        dims = {v.shape[0] for v in vecs}
        if len(dims) > 1:
            raise RuntimeError(f"cache {self.cache.dir} holds embeddings of several sizes {dims}")
        return np.stack(vecs).astype(np.float32) if vecs else np.zeros((0, 0), np.float32)

    def encode_images(self, paths: Sequence[Path], keys: Sequence[str] | None = None) -> np.ndarray:
        """``keys``: the images' sha256 when the caller already hashed them (the loaders do)."""
        paths = [Path(p) for p in paths]
        keys = list(keys) if keys is not None else [file_sha256(p) for p in paths]
        return self._encode("image", keys, paths, self.encoder.encode_images)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        keys = [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in texts]
        return self._encode("text", keys, texts, self.encoder.encode_texts)

    @property
    def forward_calls(self) -> int:
        return getattr(self.encoder, "forward_calls", 0)
