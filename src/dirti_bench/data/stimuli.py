"""Stimulus records and the file checks every loader shares.

A ``StimulusSet`` is what the rest of the pipeline reads: stimuli with their
category, ratings and image sha256, the set's category order and rating
columns. Loaders (``dirti``, ``ratedset``, ``demo``) validate everything at
this boundary so later stages can trust the data.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pandas as pd
from PIL import Image

from ..errors import UserError
from .pixels import CHECKED_MODES, check_pixels, too_large

# The rating column disgust tasks read by default (DIRTI's mean disgust, all raters).
DISGUST_RATING = "disg_mean_all"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}

@dataclass(frozen=True)
class Stimulus:
    id: str
    file_name: str
    path: Path
    category: str
    neutral: bool
    ratings: Mapping[str, float] = field(default_factory=dict)
    sha256: str = ""


@dataclass(frozen=True)
class StimulusSet:
    name: str
    root: Path
    stimuli: tuple[Stimulus, ...]
    categories: tuple[str, ...]
    rating_columns: tuple[str, ...]
    # The column disgust tasks read (a rated set may name its own; DIRTI's by default).
    disgust_column: str = DISGUST_RATING
    # Rating columns a default run aligns with besides disgust: a rated set's own ratings. DIRTI's
    # other columns (fear, valence, ...) are opt-in with --ratings.
    aligned_ratings: tuple[str, ...] = ()
    # The scale the mean ratings lie on (DIRTI: 1-9); None where the set does not say.
    rating_scale: tuple[float, float] | None = None
    # (column, why) of columns a rated set left out although they hold some numbers: each is reported
    # and its alignment scenarios recorded as skipped, never dropped without a word.
    unused_ratings: tuple[tuple[str, str], ...] = ()
    # (category, phrase): what fills {c} in prompts for a category (a rated set's class_phrases); a
    # category without one uses its name.
    class_phrases: tuple[tuple[str, str], ...] = ()

    def __len__(self) -> int:
        return len(self.stimuli)

    def __iter__(self):
        return iter(self.stimuli)

    @cached_property
    def sha256(self) -> str:
        """Identity of the data: every image's bytes plus every rating, order-independent."""
        h = hashlib.sha256()
        for s in sorted(self.stimuli, key=lambda s: s.id):
            h.update(f"{s.id}\t{s.file_name}\t{s.category}\t{s.neutral}\t{s.sha256}\n".encode())
            for key in sorted(s.ratings):
                h.update(f"{key}={s.ratings[key]!r}\n".encode())
        return h.hexdigest()

    def resolve_rating(self, rating: str) -> str:
        """``rating``, where DIRTI's disgust column stands for a rated set's own disgust column."""
        if rating == DISGUST_RATING and rating not in self.rating_columns:
            return self.disgust_column
        return rating

    def require_rating(self, rating: str) -> str:
        """The resolved column name, or a UserError naming the columns this set has."""
        column = self.resolve_rating(rating)
        if column not in self.rating_columns:
            raise UserError(
                f"rating column {rating!r} not in {self.name} "
                f"(available: {', '.join(self.rating_columns) or 'none'}); pick one of those"
            )
        return column

    def ratings(self, column: str):
        """Ratings of one column as a float array in stimulus order."""
        import numpy as np

        column = self.require_rating(column)
        return np.array([s.ratings[column] for s in self.stimuli], dtype=float)

    def to_frame(self) -> pd.DataFrame:
        rows = [
            {"stimulus": s.id, "file_name": s.file_name, "category": s.category,
             "neutral": s.neutral, **dict(s.ratings)}
            for s in self.stimuli
        ]
        return pd.DataFrame(rows)


def is_spread_column(name: str) -> bool:
    """An SD, SE or rater-count column (``valence_SD``, ``Arousal N``): not a rating to align with."""
    tokens = re.findall(r"[a-z0-9]+", re.sub(r"([a-z])([A-Z])", r"\1 \2", name).lower())
    return any(t in {"sd", "std", "se", "sem", "n", "count"} for t in tokens)


def normalise_name(name: str) -> str:
    """Case- and whitespace-tolerant key for matching file names to rating rows."""
    return re.sub(r"\s+", " ", str(name)).strip().lower()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def list_images(folder: Path) -> list[Path]:
    """Image files in ``folder``, skipping hidden files (.DS_Store, ._*) and non-images."""
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
        and p.name.lower() != "thumbs.db"
    )


def verify_image(path: Path) -> None:
    """Refuse, before anything is encoded, an image that is damaged, too large for PIL, or in a
    pixel mode ``pixels.to_rgb`` cannot convert."""
    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode not in CHECKED_MODES:
                check_pixels(im, path)  # from the header
            im.verify()
        if mode in CHECKED_MODES:  # whether they convert depends on the pixel values
            with Image.open(path) as im:
                check_pixels(im, path)
    except UserError:
        raise
    except Image.DecompressionBombError as exc:
        raise too_large(path, exc) from None
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError... for damaged files
        raise UserError(
            f"corrupt or unreadable image {path}: {exc}; replace the file with an intact copy"
        ) from None


# Threads, not processes: hashing (hashlib) and reading release the GIL, so a few threads keep the
# disk busy; a 118k-file set is then read about as fast as its bytes arrive.
CHECK_THREADS = min(8, (os.cpu_count() or 1) * 2)
PROGRESS_FROM = 2000  # files: a set this large shows a progress bar while it is checked and hashed


def check_and_hash(paths: Sequence[Path], verify: bool = True, progress: bool = False) -> list[str]:
    """Each file's sha256 in ``paths`` order, after ``verify_image`` when ``verify``; linear in n,
    threaded. The first bad file in ``paths`` order raises, as a loop over them would."""
    def one(path: Path) -> str:
        if verify:
            verify_image(path)
        return file_sha256(path)

    paths = list(paths)
    if len(paths) < 2 * CHECK_THREADS:
        return [one(p) for p in paths]
    from tqdm.auto import tqdm

    with ThreadPoolExecutor(CHECK_THREADS) as pool:
        return list(tqdm(pool.map(one, paths), total=len(paths), unit="file", leave=False,
                         desc="checking and hashing images", disable=not progress or len(paths) < PROGRESS_FROM))


def images_by_stem(images: Sequence[Path], folder: Path) -> dict[str, Path]:
    """Images keyed by their normalised stem; two files that differ only in case or extension
    would match the same ratings row, so they are an error."""
    by_stem: dict[str, Path] = {}
    clash = []
    for p in images:
        key = normalise_name(p.stem)
        if key in by_stem:
            clash.append(p.name)
        by_stem[key] = p
    if clash:
        raise UserError(f"images in {folder} share a name apart from case/extension: {clash}; keep one of each")
    return by_stem


def subset(stimuli: StimulusSet, ids: Sequence[str]) -> StimulusSet:
    wanted = set(ids)
    kept = tuple(s for s in stimuli.stimuli if s.id in wanted)
    return dataclasses.replace(stimuli, stimuli=kept)
