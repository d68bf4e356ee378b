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
from pathlib import Path

import numpy as np

from .atomic import write_bytes, write_text

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
