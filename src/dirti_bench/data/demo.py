"""A small procedurally generated stimulus set in DIRTI's layout.

Images carry category-specific colour and texture statistics (so image
features separate the categories) plus "contamination" blotches whose amount
follows the image's disgust rating. Ratings are seeded; every "animals" image
stays below the disgust threshold, reproducing the original study's empty
"disgusting animals" class. Same seed -> byte-identical files.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ..errors import UserError
from .dirti import DIRTI_CATEGORIES, IMAGE_FOLDER, RATINGS_FILE

CATEGORY_TOKENS = {"food": "food", "animals": "animals", "body products": "body products",
                   "injuries/infections": "injuries_infections", "death": "death", "hygiene": "hygiene"}
# (base RGB, stripe frequency, stripe angle in degrees, noise scale)
CATEGORY_STYLE = {
    "food": ((215, 150, 60), 3.0, 0, 18),
    "animals": ((110, 140, 70), 7.0, 45, 30),
    "body products": ((200, 190, 150), 1.5, 90, 10),
    "injuries/infections": ((180, 60, 60), 11.0, 135, 24),
    "death": ((70, 70, 80), 5.0, 20, 40),
    "hygiene": ((120, 170, 220), 15.0, 70, 6),
}
NEVER_DISGUSTING = "animals"
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
MODIFIED_STAMP = re.compile(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)")
LEGEND = [
    ("name", "image file name without extension"),
    ("disg_mean_all", "mean disgust rating, all raters (1-9)"),
    ("disg_SD_all", "SD of disgust ratings, all raters"),
    ("disg_mean_women", "mean disgust rating, women"),
    ("disg_SD_women", "SD, women"),
    ("disg_mean_men", "mean disgust rating, men"),
    ("disg_SD_men", "SD, men"),
    ("disg_sexdiff_t", "t statistic women vs men"),
    ("disg_sexdiff_p", "p value women vs men"),
]


def _ratings(rng: np.random.Generator, category: str, neutral: bool) -> float:
    if neutral:
        return float(np.clip(rng.normal(1.8, 0.5), 1.0, 3.5))
    if category == NEVER_DISGUSTING:
        return float(np.clip(rng.normal(3.6, 0.6), 1.5, 4.8))
    return float(np.clip(rng.normal(5.8, 1.2), 3.0, 9.0))


BASE_SIZE = (256, 192)


def _texture(rng: np.random.Generator, noise: float, w: int, h: int) -> np.ndarray:
    """Pixel noise drawn at the demo's base resolution and smoothly enlarged beyond it.

    Texture then has the same scale relative to the picture at every size, so a
    1024x768 image compresses like a photograph (~100-200 KB) instead of like
    per-pixel white noise (~340 KB, twice the JPEG decode cost of real photos).
    """
    bw, bh = min(w, BASE_SIZE[0]), min(h, BASE_SIZE[1])
    field = rng.normal(0, noise, (bh, bw, 3))
    if (bw, bh) == (w, h):
        return field
    channels = [np.asarray(Image.fromarray(field[..., c].astype(np.float32), "F").resize((w, h), Image.BICUBIC))
                for c in range(3)]
    return np.stack(channels, axis=-1)


def _image(rng: np.random.Generator, category: str, disgust: float, size: tuple[int, int]) -> bytes:
    w, h = size
    base, freq, angle, noise = CATEGORY_STYLE[category]
    yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
    theta = np.deg2rad(angle + rng.normal(0, 8))
    stripes = np.sin(2 * np.pi * freq * (xx * np.cos(theta) + yy * np.sin(theta)) + rng.uniform(0, 2 * np.pi))
    img = np.array(base, float) + rng.normal(0, 12, 3)
    img = img[None, None, :] * (1 + 0.25 * stripes[..., None])
    img = img + _texture(rng, noise, w, h)
    # Contamination blotches: count grows with the disgust rating.
    rows, cols = np.ogrid[0:h, 0:w]
    for _ in range(int(round(max(disgust - 1.0, 0) * 2))):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.03, 0.12) * max(w, h)
        mask = ((rows - cy) ** 2 + (cols - cx) ** 2) < r * r
        img[mask] = img[mask] * 0.4 + np.array((90, 100, 30)) * 0.6
    pixels = np.clip(img, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _deterministic_xlsx(sheets: dict[str, pd.DataFrame], legend: pd.DataFrame) -> bytes:
    """xlsx bytes with fixed zip timestamps and document times, so files are reproducible."""
    raw = io.BytesIO()
    with pd.ExcelWriter(raw, engine="openpyxl") as writer:
        for i, (name, df) in enumerate(sheets.items()):
            df.to_excel(writer, sheet_name=name, index=False)
            if i == 0:  # legend block to the right of one empty column, as in DIRTI
                legend.to_excel(writer, sheet_name=name, index=False, startcol=len(df.columns) + 1)
        fixed = datetime(2017, 1, 1)
        writer.book.properties.created = fixed
        writer.book.properties.modified = fixed
    out = io.BytesIO()
    with zipfile.ZipFile(raw) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in sorted(src.infolist(), key=lambda i: i.filename):
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":  # openpyxl stamps 'modified' with the save time
                data = MODIFIED_STAMP.sub(rb"\g<1>2017-01-01T00:00:00Z\g<2>", data)
            dst.writestr(zipfile.ZipInfo(info.filename, date_time=FIXED_TIME), data,
                         compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


# What a folder written by make_demo (plus the runner's marker) may hold; anything else is the user's.
DEMO_ENTRIES = {IMAGE_FOLDER, RATINGS_FILE, ".complete"}


def _check_target(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"demo output {out_dir} is a file; pass a folder path")
    if out_dir.is_dir():
        foreign = sorted(p.name for p in out_dir.iterdir() if p.name not in DEMO_ENTRIES)
        if foreign:
            raise UserError(f"demo output folder {out_dir} holds other files {foreign[:5]}; "
                            "pass a new or empty folder (an earlier demo set is replaced)")


# The demo set's default shape: per category, disgusting and neutral photos, and their size.
DEMO_DISGUST, DEMO_NEUTRAL, DEMO_SIZE = 8, 2, (256, 192)


def _write_set(dest: Path, seed: int, n_disgust: int, n_neutral: int, size: tuple[int, int]) -> None:
    rng = np.random.default_rng(seed)
    image_dir = dest / IMAGE_FOLDER
    image_dir.mkdir(parents=True)
    rows, next_id = [], 1001
    for category in DIRTI_CATEGORIES:
        for k in range(n_disgust + n_neutral):
            neutral = k >= n_disgust
            disgust = _ratings(rng, category, neutral)
            name = f"{next_id}_{CATEGORY_TOKENS[category]}{' neutral' if neutral else ''}"
            (image_dir / f"{name}.jpg").write_bytes(_image(rng, category, disgust, size))
            sd = float(rng.uniform(1.0, 2.2))
            women = float(np.clip(disgust + rng.normal(0.2, 0.3), 1, 9))
            men = float(np.clip(disgust + rng.normal(-0.2, 0.3), 1, 9))
            fear = float(np.clip(0.6 * disgust + rng.normal(0.5, 0.6), 1, 9))
            valence = float(np.clip(9.5 - disgust + rng.normal(0, 0.5), 1, 9))
            arousal = float(np.clip(0.5 * disgust + rng.normal(2.0, 0.6), 1, 9))
            rows.append({
                "name": name, "disg_mean_all": round(disgust, 3), "disg_SD_all": round(sd, 3),
                "disg_mean_women": round(women, 3), "disg_SD_women": round(sd * 1.05, 3),
                "disg_mean_men": round(men, 3), "disg_SD_men": round(sd * 0.95, 3),
                "disg_sexdiff_t": round((women - men) / 0.3, 3), "disg_sexdiff_p": round(float(rng.uniform(0, 1)), 3),
                "fear_mean_all": round(fear, 3), "val_mean_all": round(valence, 3), "aro_mean_all": round(arousal, 3),
            })
            next_id += 1
    table = pd.DataFrame(rows)
    disgust_cols = [c for c in table.columns if c.startswith("disg_") or c == "name"]
    sheets = {
        "disgust": table[disgust_cols],
        "fear": table[["name", "fear_mean_all"]],
        "valence_arousal": table[["name", "val_mean_all", "aro_mean_all"]],
    }
    legend = pd.DataFrame(LEGEND, columns=["Variable", "Description"])
    (dest / RATINGS_FILE).write_bytes(_deterministic_xlsx(sheets, legend))


def make_demo(out_dir: Path, seed: int = 0, n_disgust: int = DEMO_DISGUST, n_neutral: int = DEMO_NEUTRAL,
              size: tuple[int, int] = DEMO_SIZE) -> Path:
    """Write a DIRTI-layout demo set into ``out_dir`` and return it.

    The set is built in a temp folder beside ``out_dir`` and renamed into
    place, so an interrupted run leaves no half-written set.
    """
    out_dir = Path(out_dir).expanduser()
    _check_target(out_dir)
    with _staged(out_dir, "free some space or choose another folder") as staging:
        _write_set(staging / "new", seed, n_disgust, n_neutral, size)
        if out_dir.exists():  # an earlier demo set (checked above): swap it out
            os.replace(out_dir, staging / "old")
        os.replace(staging / "new", out_dir)
    return out_dir


@contextmanager
def _staged(target: Path, fix: str) -> Iterator[Path]:
    """A temp folder beside ``target`` (one filesystem, so renames into place are atomic), removed
    afterwards; an OSError (unwritable folder, full disk) is one user error naming ``target``."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    except OSError as exc:
        raise UserError(f"cannot write the demo set to {target} ({exc.strerror}); choose a writable folder") from None
    try:
        yield staging
    except OSError as exc:
        raise UserError(f"cannot write the demo set to {target} ({exc.strerror or exc}); {fix}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


COMPLETE_MARKER = ".complete"


def ensure_demo(root: Path, seed: int = 0, n_disgust: int = DEMO_DISGUST, n_neutral: int = DEMO_NEUTRAL,
                size: tuple[int, int] = DEMO_SIZE) -> Path:
    """The demo set at ``root`` (in the cache), generated once. Safe when several processes ask at
    once (shards sharing a cache home): each builds a complete set, marker included, beside ``root``
    and renames it into place; a process that finds another's complete set there keeps that one
    (the same seed gives byte-identical files)."""
    root = Path(root)
    if (root / COMPLETE_MARKER).is_file():
        return root
    with _staged(root, "free some space or point DIRTI_BENCH_HOME to another folder") as staging:
        _write_set(staging / "new", seed, n_disgust, n_neutral, size)
        (staging / "new" / COMPLETE_MARKER).write_text("ok\n")
        try:
            os.rename(staging / "new", root)  # atomic; refused while another set is there
        except OSError:
            if not (root / COMPLETE_MARKER).is_file():  # an unfinished set of an older version: replace it
                os.replace(root, staging / "old")
                os.rename(staging / "new", root)
    return root
