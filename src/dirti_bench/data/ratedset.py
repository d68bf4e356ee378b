"""Any rated stimulus set: a folder of images plus a ratings CSV, described by a
``dirti-bench.json`` sidecar, so OASIS-, OBNIS- or NAPS-style sets run with the
same scenarios as DIRTI::

    {"name": "oasis",                      # optional, default: the folder's name
     "images": "images",                   # folder, relative to the sidecar (or an absolute path)
     "ratings": "ratings.csv",             # one row per image file
     "file_column": "file",                # file name, with or without extension
     "category_column": "category",
     "categories": ["animal", "object"],   # optional: class order (default: sorted)
     "rating_columns": ["valence_mean"],   # optional (default: every all-numeric column)
     "disgust_column": "disgust_mean",     # optional: what disgust tasks read
     "rating_scale": [1, 7],               # optional: the scale of the mean ratings (figure axes)
     "class_phrases": {"animal": "an animal"}}  # optional: what fills {c} in prompts per category

``class_phrases`` maps category names to the phrase a prompt uses for them (``This is a photo of
an animal`` instead of ``This is a photo of animal``); a category without one uses its name. The
wording built from them is the set's default wording, not the DIRTI study's.

A default run aligns the model with every rating column (SD, SE and rater-count
columns such as ``valence_sd`` aside); disgust tasks need ``disgust_column``.

Validation is as strict as DIRTI's: images and rows match 1:1, nothing is
duplicated, every rating is a finite number, every named column exists.

``images`` and ``ratings`` are relative to the sidecar's folder and may not climb
out of it with ``..``; files elsewhere need an absolute path, a deliberate choice
that the run announces (``RatedSetSpec.outside``).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import jsonio
from ..constraints import Interval, IsNone, ListOf, Text, check_document_value
from ..errors import UserError
from .stimuli import (
    DISGUST_RATING,
    IMAGE_SUFFIXES,
    Stimulus,
    StimulusSet,
    check_and_hash,
    images_by_stem,
    is_spread_column,
    list_images,
    normalise_name,
)

SIDECAR = "dirti-bench.json"
REQUIRED_KEYS = ("images", "ratings", "file_column", "category_column")
OPTIONAL_KEYS = ("name", "categories", "rating_columns", "disgust_column", "rating_scale", "class_phrases")
MAX_LISTED = 10  # names quoted in one error line


@dataclass(frozen=True)
class RatedSetSpec:
    sidecar: Path
    name: str
    images: Path
    ratings: Path
    file_column: str
    category_column: str
    categories: tuple[str, ...] | None
    rating_columns: tuple[str, ...] | None
    disgust_column: str | None
    rating_scale: tuple[float, float] | None = None
    class_phrases: tuple[tuple[str, str], ...] = ()  # (category, phrase)

    def outside(self) -> list[str]:
        """One line per file or folder read from outside the sidecar's folder (absolute paths)."""
        base = self.sidecar.parent.resolve()
        return [f"{what} of {self.name} read from {path} (outside {base}, as {self.sidecar.name} says)"
                for what, path in (("images", self.images), ("ratings", self.ratings))
                if not path.resolve().is_relative_to(base)]


def _sidecar(path: Path) -> Path:
    path = Path(path).expanduser()
    return path / SIDECAR if path.is_dir() else path


def is_rated_set(path: Path) -> bool:
    """A folder holding ``dirti-bench.json``, or a ``.json`` sidecar itself."""
    path = Path(path).expanduser()
    return (path.is_dir() and (path / SIDECAR).is_file()) or (path.is_file() and path.suffix.lower() == ".json")


def _listed(names) -> str:
    names = list(names)
    more = f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else ""
    return f"{names[:MAX_LISTED]}{more}"


_NAME = (Text(),)
_NAME_LIST = (IsNone(), ListOf(_NAME, min_len=1, unique=True, what="a non-empty list of names, each once"))
# key -> its constraints (the objects that check options and results.json too)
SIDECAR_SCHEMA = {
    **{key: _NAME for key in (*REQUIRED_KEYS, "name", "disgust_column")},
    "categories": _NAME_LIST,
    "rating_columns": _NAME_LIST,
    "rating_scale": (IsNone(), ListOf((Interval(float),), length=2, increasing=True,
                            what="[low, high] with low < high (e.g. [1, 7])"),),
}


def read_spec(path: Path) -> RatedSetSpec:
    """Parse and type-check the sidecar; paths resolve relative to its folder."""
    sidecar = _sidecar(path)
    if not sidecar.is_file():
        raise UserError(f"no {SIDECAR} at {sidecar}; write one naming the images folder and ratings CSV")
    try:
        doc = jsonio.loads(sidecar.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{sidecar} is not valid JSON ({exc}); fix the syntax") from None
    except OSError as exc:
        raise UserError(f"cannot read {sidecar} ({exc.strerror}); check its permissions") from None
    if not isinstance(doc, dict):
        raise UserError(f"{sidecar} must hold a JSON object with keys {', '.join(REQUIRED_KEYS)}")
    unknown = sorted(set(doc) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        raise UserError(f"{sidecar} has unknown keys {unknown}; allowed: {', '.join(REQUIRED_KEYS + OPTIONAL_KEYS)}")
    missing = [k for k in REQUIRED_KEYS if k not in doc]
    if missing:
        raise UserError(f"{sidecar} lacks keys {missing}; add them (see dirti_bench.data.ratedset for the format)")
    fix = "fix it in the sidecar (see dirti_bench.data.ratedset for the format)"
    values = {key: check_document_value(sidecar, repr(key), doc[key], constraints, fix)
              for key, constraints in SIDECAR_SCHEMA.items() if key in doc}
    lists = {key: tuple(v.strip() for v in values[key]) if values.get(key) is not None else None
             for key in ("categories", "rating_columns")}
    if doc["file_column"].strip() == doc["category_column"].strip():
        raise UserError(f"{sidecar}: file_column and category_column are both {doc['file_column']!r}; "
                        "name two different columns")
    scale = values.get("rating_scale")
    phrases = doc.get("class_phrases", {})
    if not isinstance(phrases, dict) or not all(isinstance(v, str) and v.strip() for v in phrases.values()):
        raise UserError(f"{sidecar}: 'class_phrases' must map category names to non-empty phrases "
                        f"(e.g. {{\"Animal\": \"an animal\"}}), not {phrases!r}")
    base = sidecar.parent
    for key in ("images", "ratings"):
        given = Path(doc[key]).expanduser()
        if not given.is_absolute() and os.path.normpath(given).split(os.sep)[0] == os.pardir:
            raise UserError(f"{sidecar}: {key!r} {doc[key]!r} leads out of the sidecar's folder {base}; "
                            "give a path inside it, or an absolute path if the files really live elsewhere")
    return RatedSetSpec(
        sidecar=sidecar, name=doc.get("name", base.name), images=base / Path(doc["images"]).expanduser(),
        ratings=base / Path(doc["ratings"]).expanduser(),
        file_column=doc["file_column"].strip(), category_column=doc["category_column"].strip(),
        categories=lists["categories"], rating_columns=lists["rating_columns"],
        disgust_column=doc.get("disgust_column"), rating_scale=scale,
        class_phrases=tuple((str(k).strip(), v.strip()) for k, v in phrases.items()),
    )


def read_table(spec: RatedSetSpec) -> pd.DataFrame:
    """The ratings CSV as strings (parsed per column below), headers stripped."""
    path = spec.ratings
    if not path.is_file():
        raise UserError(f"ratings file {path} (named in {spec.sidecar}) not found; fix 'ratings' in the sidecar")
    if path.suffix.lower() != ".csv":
        raise UserError(f"ratings file {path} is not a .csv; export the ratings as CSV")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read ratings CSV {path} ({str(exc).strip()}); re-export it as UTF-8 CSV") from None
    except OSError as exc:
        raise UserError(f"cannot read ratings CSV {path} ({exc.strerror}); check its permissions") from None
    table.columns = [str(c).strip() for c in table.columns]
    if table.empty:
        raise UserError(f"ratings CSV {path} has no rows; add one row per image")
    needed = [spec.file_column, spec.category_column, *(spec.rating_columns or ()),
              *([spec.disgust_column] if spec.disgust_column else [])]
    absent = [c for c in dict.fromkeys(needed) if c not in table.columns]
    if absent:
        raise UserError(f"ratings CSV {path} has no columns {absent} (it has {list(table.columns)}); "
                        f"fix the names in {spec.sidecar.name} or the CSV header")
    return table.map(str.strip)  # one pass over the cells, not one pandas call per column


def _rows(mask) -> list[int]:
    return (np.flatnonzero(np.asarray(mask)) + 2).tolist()  # CSV line numbers: header is line 1


def _numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell as a float (NaN where it is not a number), in one call for all columns: a table
    with thousands of columns costs no per-column pandas call."""
    cells = pd.to_numeric(pd.Series(frame.to_numpy(dtype=object).ravel()), errors="coerce")
    return pd.DataFrame(cells.to_numpy(dtype=float).reshape(frame.shape), columns=frame.columns, index=frame.index)


def parse_ratings(spec: RatedSetSpec, table: pd.DataFrame) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Rating columns as floats; every cell must be a finite number."""
    columns, _ = rating_columns(spec, table)
    return _numbers(table[list(columns)]), columns


def rating_columns(spec: RatedSetSpec, table: pd.DataFrame) -> tuple[tuple[str, ...], dict[str, str]]:
    """The rating columns, checked, and (without ``rating_columns`` in the sidecar) the columns left
    out although they hold some numbers: column -> why (a typo in one cell must not drop an analysis
    without a word)."""
    path = spec.ratings
    ids = {spec.file_column, spec.category_column}
    unusable = {}
    if spec.rating_columns is not None:
        columns = spec.rating_columns
        numeric = _numbers(table[[c for c in dict.fromkeys(columns) if c not in ids]])
    else:  # every column whose cells are all numbers
        numeric = _numbers(table.drop(columns=list(ids)))
        present = numeric.notna()
        complete, some = present.all().to_numpy(), present.any().to_numpy()
        columns = tuple(numeric.columns[complete])
        for col in numeric.columns[some & ~complete]:
            bad = ~present[col].to_numpy()
            unusable[col] = (f"ratings column {col!r} is not used: missing or non-numeric values "
                             f"{_listed(table.loc[bad, col].tolist())} on lines {_listed(_rows(bad))} of "
                             f"{path.name}; fix them, or list the rating columns in 'rating_columns' of "
                             f"{spec.sidecar.name}")
        if not columns:
            raise UserError(f"ratings CSV {path} has no all-numeric rating column; "
                            f"list the rating columns in 'rating_columns' of {spec.sidecar.name}")
    if spec.disgust_column in unusable:  # the disgust tasks cannot do without it: its cells are the fix
        columns = (*columns, spec.disgust_column)
    if spec.disgust_column and spec.disgust_column not in columns:
        raise UserError(f"{spec.sidecar}: disgust_column {spec.disgust_column!r} is not among the rating columns "
                        f"{list(columns)}; add it to 'rating_columns'")
    for col in columns:
        if col in ids:
            raise UserError(f"{spec.sidecar}: {col!r} is the file or category column, not a rating column")
    finite = np.isfinite(numeric[list(columns)].to_numpy(dtype=float))
    for col in np.asarray(columns, dtype=object)[~finite.all(axis=0)]:  # only the columns at fault
        bad = ~np.isfinite(numeric[col].to_numpy(dtype=float))
        if bad.any():
            values = table.loc[bad, col].tolist()
            raise UserError(f"ratings CSV {path} column {col!r} has missing or non-numeric values "
                            f"{_listed(values)} on lines {_listed(_rows(bad))}; every rating must be a number")
    return tuple(columns), unusable


def check_scale(spec: RatedSetSpec, ratings: pd.DataFrame, columns) -> None:
    """Mean ratings outside the declared scale are a typo (or another scale): refuse them."""
    if spec.rating_scale is None:
        return
    low, high = spec.rating_scale
    columns = list(columns)
    outside = ((ratings[columns] < low) | (ratings[columns] > high)).to_numpy()
    for col in np.asarray(columns, dtype=object)[outside.any(axis=0)]:  # only the columns at fault
        bad = ((ratings[col] < low) | (ratings[col] > high)).to_numpy()
        if bad.any():
            raise UserError(f"ratings CSV {spec.ratings} column {col!r} has values {_listed(ratings.loc[bad, col].tolist())} "
                            f"on lines {_listed(_rows(bad))} outside the rating_scale {[low, high]} of "
                            f"{spec.sidecar.name}; fix the values or the scale")


def _categories(spec: RatedSetSpec, table: pd.DataFrame) -> tuple[str, ...]:
    cats = table[spec.category_column]
    empty = cats == ""
    if empty.any():
        raise UserError(f"ratings CSV {spec.ratings} has no {spec.category_column!r} on lines "
                        f"{_listed(_rows(empty))}; give every image a category")
    present = sorted(set(cats))
    if spec.categories is None:
        return tuple(present)
    unknown = [c for c in present if c not in spec.categories]
    if unknown:
        raise UserError(f"ratings CSV {spec.ratings} uses categories {unknown} missing from 'categories' "
                        f"in {spec.sidecar.name} {list(spec.categories)}; add them there")
    return spec.categories


def match_images(spec: RatedSetSpec, table: pd.DataFrame) -> list[Path]:
    """The image of each CSV row (file name with or without extension), 1:1."""
    folder = spec.images
    if not folder.is_dir():
        raise UserError(f"image folder {folder} (named in {spec.sidecar}) not found; fix 'images' in the sidecar")
    images = list_images(folder)
    if not images:
        raise UserError(f"no images in {folder}; put the set's image files there")
    by_stem = images_by_stem(images, folder)
    by_name = {normalise_name(p.name): p for p in images}
    names = table[spec.file_column]
    if (names == "").any():
        raise UserError(f"ratings CSV {spec.ratings} has an empty {spec.file_column!r} on lines "
                        f"{_listed(_rows(names == ''))}; name the image on every row")
    matched, missing = [], []
    for value in names:
        key = normalise_name(value)
        has_suffix = Path(key).suffix in IMAGE_SUFFIXES
        path = by_name.get(key) if has_suffix else by_stem.get(key)
        matched.append(path)
        if path is None:
            missing.append(value)
    paths = [p for p in matched if p is not None]
    dup = sorted(p.name for p, k in Counter(paths).items() if k > 1)  # a Counter: linear, not paths.count
    if dup:
        raise UserError(f"ratings CSV {spec.ratings} lists images {_listed(dup)} more than once; keep one row per image")
    unrated = sorted(p.name for p in set(images) - set(paths))
    other_types = [name for name in missing if (folder / name).is_file() and Path(name).suffix.lower() not in IMAGE_SUFFIXES]
    if other_types:  # the file is there, in a format the set does not read: say that, not "no image"
        raise UserError(f"ratings CSV {spec.ratings} names {_listed(other_types)} in {folder}, a file type dirti-bench "
                        f"does not read; convert it to one of {', '.join(sorted(IMAGE_SUFFIXES))}")
    if missing or unrated:
        parts = ([f"rows without an image: {_listed(missing)}"] if missing else []) + \
                ([f"images without a row: {_listed(unrated)}"] if unrated else [])
        raise UserError(f"images in {folder} and rows of {spec.ratings} do not match 1:1 ({'; '.join(parts)}); "
                        "fix the names so each image has exactly one row")
    return matched


def load_rated_set(path: Path, verify: bool = True, note=None, progress: bool = False) -> StimulusSet:
    """Load and validate a rated set described by a ``dirti-bench.json`` sidecar. ``note`` (a
    callable) hears where files outside the sidecar's folder are read from; ``progress`` shows a bar
    while a large set's images are checked and hashed (threaded, linear in n)."""
    spec = read_spec(path)
    for line in spec.outside() if note is not None else ():
        note(line)
    table = read_table(spec)
    columns, unusable = rating_columns(spec, table)
    ratings = _numbers(table[list(columns)])
    categories = _categories(spec, table)
    unknown = sorted(c for c, _ in spec.class_phrases if c not in categories)
    if unknown:
        raise UserError(f"{spec.sidecar}: class_phrases names {_listed(unknown)}, which are not categories of the "
                        f"set ({_listed(categories)}); fix the names")
    paths = match_images(spec, table)
    aligned = tuple(c for c in columns if c != spec.disgust_column and not is_spread_column(c))
    check_scale(spec, ratings, [*aligned, *([spec.disgust_column] if spec.disgust_column else [])])
    hashes = check_and_hash(paths, verify=verify, progress=progress)
    stimuli = [Stimulus(id=path_i.stem, file_name=path_i.name, path=path_i, category=category, neutral=False,
                        ratings=values, sha256=sha)
               for path_i, category, values, sha in zip(paths, table[spec.category_column],
                                                        ratings.to_dict("records"), hashes, strict=True)]
    return StimulusSet(name=spec.name, root=spec.sidecar.parent, stimuli=tuple(stimuli), categories=categories,
                       rating_columns=columns, disgust_column=spec.disgust_column or DISGUST_RATING,
                       aligned_ratings=aligned, rating_scale=spec.rating_scale,
                       unused_ratings=tuple(unusable.items()), class_phrases=spec.class_phrases)
