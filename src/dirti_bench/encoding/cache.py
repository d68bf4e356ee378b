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

from .. import jsonio
from ..atomic import write_bytes, write_text
from ..data.stimuli import file_sha256
from ..errors import UserError
from ..paths import HOME_ENV

DIGEST_BYTES = 32


def identity_hash(identity: dict) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def text_key(text: str) -> str:
    """A prompt's cache key: the sha256 of its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def packed(array: np.ndarray) -> bytes:
    """``array`` as .npy bytes followed by their sha256, so a damaged file is detected."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    payload = buf.getvalue()
    return payload + hashlib.sha256(payload).digest()


def unpacked(blob: bytes) -> np.ndarray:
    """The array of ``packed`` bytes; ValueError where they are damaged."""
    payload, digest = blob[:-DIGEST_BYTES], blob[-DIGEST_BYTES:]
    if len(blob) <= DIGEST_BYTES or hashlib.sha256(payload).digest() != digest:
        raise ValueError("checksum mismatch")
    return np.load(io.BytesIO(payload), allow_pickle=False)


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

    def get(self, kind: str, key: str, width: int | None = None) -> np.ndarray | None:
        """The cached vector, or None (a miss). A damaged entry, or one whose size is not ``width``
        (when known), counts as corrupt: it is deleted, to be recomputed."""
        path = self._path(kind, key)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            self.misses += 1
            return None
        try:
            vec = unpacked(blob)
            if vec.ndim != 1 or not np.isfinite(vec).all() or width is not None and vec.shape[0] != width:
                raise ValueError("bad array")
        except ValueError:
            self.corrupt += 1
            self.misses += 1
            path.unlink(missing_ok=True)
            return None
        self.hits += 1
        return vec

    def forget_hits(self, n: int) -> None:
        """``n`` entries counted as hits turned out to be of the wrong size: corrupt misses after all."""
        self.hits -= n
        self.misses += n
        self.corrupt += n

    def recorded_width(self) -> int | None:
        width = self.read_meta().get(WIDTH_KEY)
        return width if isinstance(width, int) and not isinstance(width, bool) and width > 0 else None

    def put(self, kind: str, key: str, vec: np.ndarray) -> None:
        write_bytes(self._path(kind, key), packed(np.asarray(vec, dtype=np.float32)))

    def read_meta(self) -> dict:
        """What was recorded beside the entries; a missing or damaged file (not a JSON object) is empty."""
        try:
            meta = jsonio.loads((self.dir / "meta.json").read_text())
        except (OSError, ValueError):  # missing, unreadable, not JSON, not UTF-8
            return {}
        return meta if isinstance(meta, dict) else {}

    def write_meta(self, meta: dict) -> None:
        write_text(self.dir / "meta.json", json.dumps({**self.identity, **meta}, indent=2, sort_keys=True, default=str))


# run-info facts only a built model knows; kept beside the cache so a run of all hits still reports them
RECORDED_IN_CACHE = ("weights_sha256", "text_encoding", "scoring")
WIDTH_KEY = "embedding_width"  # recorded with the first fresh embeddings; entries of another size are corrupt
# Images encoded between two writes to the cache: a crash or Ctrl-C on a large set loses at most this
# many; each part restarts the decode prefetch once (~1% of a GPU encode of this many images).
IMAGE_PART = 8192


class CachedEncoder:
    """Wraps an encoder; only images/texts whose key is not cached reach the model."""

    def __init__(self, encoder, cache_root: Path):
        self.encoder = encoder
        self.cache = EmbeddingCache(cache_root, encoder.identity())
        # Prompt embeddings already read this run: ensembles, template and threshold sweeps share prompts.
        self._texts: dict[str, np.ndarray] = {}

    def run_info(self) -> dict:
        info = dict(self.encoder.run_info())
        for key in RECORDED_IN_CACHE:
            if key in info and not info[key]:
                # The model was never built (all cache hits): use what was recorded when it was.
                info[key] = self.cache.read_meta().get(key)
        return info

    def identity(self) -> dict:
        return self.encoder.identity()

    def scoring(self) -> dict | None:
        """The model's own scoring: recorded beside the cache, so a run of all hits does not build
        the model for it; asked of the model (and recorded) otherwise. None where the encoder has none."""
        recorded = self.run_info().get("scoring")
        if recorded:
            return recorded
        ask = getattr(self.encoder, "scoring", None)
        if not callable(ask):
            return None
        scoring = ask()
        meta = self.cache.read_meta()
        if scoring and meta.get("scoring") != scoring:
            try:
                self.cache.write_meta({**meta, "scoring": scoring})
            except OSError:
                pass  # only a shortcut for the next run; the scoring itself is known
        return scoring

    def _encode(self, kind: str, keys: list[str], items: list, compute) -> np.ndarray:
        width = self.cache.recorded_width()
        vecs: list[np.ndarray | None] = [self.cache.get(kind, k, width) for k in keys]
        todo = [i for i, v in enumerate(vecs) if v is None]
        for part in self._parts(kind, todo):  # stored part by part: an interrupted encode keeps the parts done
            self._store(kind, keys, part, compute([items[i] for i in part]), vecs)
        if len({v.shape[0] for v in vecs}) > 1:
            # Entries of several sizes and no (or a wrong) recorded width: the model decides which are
            # corrupt. Everything is recomputed once; those of another size are replaced and counted.
            fresh = np.asarray(compute(items))
            wrong = [i for i, v in enumerate(vecs) if v.shape[0] != fresh.shape[1]]
            self.cache.forget_hits(len(wrong))  # all cached: fresh ones have the model's size
            self._store(kind, keys, wrong, fresh[wrong], vecs)
        return np.stack(vecs).astype(np.float32) if vecs else np.zeros((0, 0), np.float32)

    def _parts(self, kind: str, todo: list[int]) -> list[list[int]]:
        """Images to encode in parts of ``IMAGE_PART`` rounded down to whole batches (the same batches
        as one call, so the same embeddings), each stored as soon as it is done; texts in one part."""
        if kind != "image" or len(todo) <= IMAGE_PART:
            return [todo] if todo else []
        batch = getattr(self.encoder, "batch_size", 1)
        size = max(batch, IMAGE_PART // batch * batch)
        return [todo[i:i + size] for i in range(0, len(todo), size)]

    def _store(self, kind: str, keys: list[str], index: list[int], fresh, vecs: list) -> None:
        """Put freshly computed vectors (a disk error is the user's to fix) and record what only a
        built model knows, the embedding width included."""
        try:
            for i, vec in zip(index, fresh, strict=True):
                self.cache.put(kind, keys[i], vec)
                vecs[i] = vec
            meta = self.cache.read_meta()
            info = self.encoder.run_info()
            fresh_meta = {key: info[key] for key in RECORDED_IN_CACHE if info.get(key)}
            if len(index):
                fresh_meta[WIDTH_KEY] = int(np.asarray(vecs[index[0]]).shape[0])
            if any(meta.get(key) != value for key, value in fresh_meta.items()):
                self.cache.write_meta({**meta, **fresh_meta})
        except OSError as exc:
            raise UserError(f"cannot write the embedding cache in {self.cache.dir} ({exc.strerror or exc}); free "
                            f"some space or point {HOME_ENV} to a writable folder") from None

    def encode_images(self, paths: Sequence[Path], keys: Sequence[str] | None = None) -> np.ndarray:
        """``keys``: the images' sha256 when the caller already hashed them (the loaders do)."""
        paths = [Path(p) for p in paths]
        keys = list(keys) if keys is not None else [file_sha256(p) for p in paths]
        return self._encode("image", keys, paths, self.encoder.encode_images)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        new = list(dict.fromkeys(t for t in texts if t not in self._texts))
        if new:
            keys = [text_key(t) for t in new]
            self._texts.update(zip(new, self._encode("text", keys, new, self.encoder.encode_texts), strict=True))
        if not texts:
            return np.zeros((0, 0), np.float32)
        return np.stack([self._texts[t] for t in texts]).astype(np.float32)

    @property
    def forward_calls(self) -> int:
        return getattr(self.encoder, "forward_calls", 0)
