"""Synthetic inputs for the scale benchmarks: rated sets of tiny image files and feature matrices
with category structure, at any n (1k / 10k / 100k), seeded, so growth per stage can be measured
without real photos or weights."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

CATEGORIES = tuple(f"emotion{i}" for i in range(8))
RATINGS = ("disgust_mean", "valence_mean", "arousal_mean")


def _tiny_pngs(count: int, seed: int) -> list[bytes]:
    """``count`` distinct 8x8 RGB PNGs (~100 bytes each): the disk cost of 100k files stays small."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def make_rated_set(folder: Path, n: int, seed: int = 0, distinct: bool = False) -> Path:
    """A ``dirti-bench.json`` rated set of ``n`` tiny PNGs, 8 categories, 3 rating columns (1-9).
    The files repeat 512 distinct pictures (loading cost only) unless ``distinct``: then every image
    differs, so embeddings, scores and the output's numbers are as varied as a real set's."""
    folder = Path(folder)
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pngs = _tiny_pngs(n if distinct else min(n, 512), seed)
    names = [f"img{i:06d}.png" for i in range(n)]
    for i, name in enumerate(names):
        (images / name).write_bytes(pngs[i % len(pngs)])
    cats = rng.integers(0, len(CATEGORIES), n)
    values = rng.uniform(1, 9, (n, len(RATINGS))).round(3)
    with open(folder / "ratings.csv", "w") as fh:
        fh.write(",".join(("file", "category", *RATINGS)) + "\n")
        for name, c, row in zip(names, cats, values, strict=True):
            fh.write(",".join((name, CATEGORIES[c], *map(str, row))) + "\n")
    (folder / "dirti-bench.json").write_text(json.dumps({
        "name": f"synthetic-{n}", "images": "images", "ratings": "ratings.csv", "file_column": "file",
        "category_column": "category", "categories": list(CATEGORIES), "rating_columns": list(RATINGS),
        "disgust_column": "disgust_mean", "rating_scale": [1, 9]}))
    return folder


class HashedTexts:
    """Each text -> a fixed random unit vector (seeded by its sha256): zero-shot scenarios run their
    full path without model weights."""

    def __init__(self, dim: int):
        self.dim = dim

    def encode_texts(self, texts):
        import hashlib

        seeds = [int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little") for t in texts]
        return _unit(np.stack([np.random.default_rng(s).standard_normal(self.dim) for s in seeds]))


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def feature_context(n: int, dim: int = 512, seed: int = 0):
    """An EvalContext of ``n`` stimuli (8 categories, 3 ratings with SD columns, no files) and
    constructed features: category centres, a direction per rating and noise with a decaying
    spectrum, as image embeddings have, so probes and neighbours do their real amount of work."""
    from dirti_bench.contracts import EvalContext
    from dirti_bench.data.stimuli import Stimulus, StimulusSet

    rng = np.random.default_rng(seed)
    cats = rng.integers(0, len(CATEGORIES), n)
    values = rng.uniform(1, 9, (n, len(RATINGS)))
    sds = rng.uniform(0.5, 2.5, (n, len(RATINGS)))
    columns = (*RATINGS, *(r.replace("_mean", "_SD") for r in RATINGS))
    table = np.concatenate([values, sds], axis=1)
    stimuli = tuple(Stimulus(id=f"img{i:06d}", file_name=f"img{i:06d}.png", path=Path(f"img{i:06d}.png"),
                             category=CATEGORIES[c], neutral=False, ratings=dict(zip(columns, row.tolist(), strict=True)),
                             sha256=f"{i:064x}")
                    for i, (c, row) in enumerate(zip(cats, table, strict=True)))
    stimulus_set = StimulusSet(name=f"synthetic-{n}", root=Path("."), stimuli=stimuli, categories=CATEGORIES,
                               rating_columns=columns, disgust_column="disgust_mean",
                               aligned_ratings=RATINGS[1:], rating_scale=(1.0, 9.0))
    centres = rng.standard_normal((len(CATEGORIES), dim))
    directions = rng.standard_normal((len(RATINGS), dim))
    spectrum = 1.0 / np.sqrt(np.arange(1, dim + 1))
    features = np.empty((n, dim), np.float32)
    for start in range(0, n, 10_000):  # in blocks: no n x dim float64 temporaries
        block = slice(start, min(n, start + 10_000))
        z = (values[block] - 5) / 2.3
        features[block] = _unit(centres[cats[block]] + z @ directions * 0.3
                                + rng.standard_normal((z.shape[0], dim)) * spectrum * 4)
    return EvalContext(stimuli=stimulus_set, encoder=HashedTexts(dim), image_features=features, seed=0)
