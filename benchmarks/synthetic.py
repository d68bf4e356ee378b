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


def make_rated_set(folder: Path, n: int, seed: int = 0) -> Path:
    """A ``dirti-bench.json`` rated set of ``n`` tiny PNGs, 8 categories, 3 rating columns (1-9)."""
    folder = Path(folder)
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pngs = _tiny_pngs(min(n, 512), seed)
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
