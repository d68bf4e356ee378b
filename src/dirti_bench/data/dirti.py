"""The DIRTI loader.

DIRTI (Haberkamp et al., 2017; Zenodo record 167037) ships a folder of JPEGs
named ``<id>_<category>[ neutral].jpg`` and ``DIRTI_Supplementary.xlsx`` whose
sheets hold per-image rating means/SDs keyed by ``name`` (file name without
extension).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UserError
from .stimuli import (
    DISGUST_RATING,
    Stimulus,
    StimulusSet,
    check_and_hash,
    images_by_stem,
    list_images,
    normalise_name,
)

# Canonical category names, in the documented class order used by every label space.
DIRTI_CATEGORIES: tuple[str, ...] = (
    "food",
    "animals",
    "body products",
    "injuries/infections",
    "death",
    "hygiene",
)
# File-name token -> canonical name.
DIRTI_CATEGORY_TOKENS: dict[str, str] = {
    "food": "food",
    "animals": "animals",
    "body products": "body products",
    "injuries_infections": "injuries/infections",
    "death": "death",
    "hygiene": "hygiene",
}
RATINGS_FILE = "DIRTI_Supplementary.xlsx"
RATING_SCALE = (1, 9)  # DIRTI's rating scales (disgust, fear, valence, arousal): every "*mean*" column
IMAGE_FOLDER = "DIRTI Database"

_DIRTI_NAME = re.compile(r"^(?P<id>\d+)_(?P<cat>.+?)(?P<neutral>\s+neutral)?$", re.IGNORECASE)


# ---------------------------------------------------------------- ratings tables

def _clean_sheet(df: pd.DataFrame, source: str) -> pd.DataFrame | None:
    """Keep the data block of one sheet: columns up to the first empty column.

    DIRTI's sheets carry a legend block (``Variable`` / ``Description``) to the
    right of an empty column; it is documentation, not data.
    """
    cols = list(df.columns)
    keep = []
    for col in cols:
        header_empty = str(col).startswith("Unnamed:") or str(col).strip() == ""
        if header_empty and df[col].isna().all():
            break
        if header_empty:
            continue
        keep.append(col)
    df = df[keep]
    df.columns = [str(c).strip() for c in df.columns]
    df = df.drop(columns=[c for c in ("Variable", "Description") if c in df.columns])
    lower = {c.lower(): c for c in df.columns}
    if "name" not in lower:
        return None
    df = df.rename(columns={lower["name"]: "name"})
    df = df[df["name"].notna() & (df["name"].astype(str).str.strip() != "")]
    return df


def _reject_stray_text(values: pd.DataFrame, numeric: pd.DataFrame, names: pd.Series, where: str) -> None:
    """A mostly numeric column with a few text cells is a damaged rating column, not a text column."""
    for col in values.columns:
        filled = values[col].notna()
        bad = filled & numeric[col].isna()
        if bad.any() and numeric[col].notna().sum() > bad.sum():
            row = bad.idxmax()
            raise UserError(f"{where} column {col!r} holds {values[col][row]!r} for {names[row]!r}, "
                            "not a number; fix the cell or leave it empty")


def _cell(value) -> str:
    return repr(value) if isinstance(value, str) else format(float(value), "g")


def _check_values(numeric: pd.DataFrame, raw: pd.DataFrame, where: str, row_word: str = "row") -> None:
    """Every rating is finite; ``*_mean_*`` columns lie on DIRTI's 1-9 scale, ``*_SD_*`` are >= 0.

    Rows are numbered as a spreadsheet shows them (the header is row 1)."""
    low, high = RATING_SCALE
    for col in numeric.columns:
        values = numeric[col]
        tokens = set(re.split(r"[\W_]+", col.lower()))
        if "mean" in tokens:
            in_range, rule = values.between(low, high), f"outside DIRTI's {low}-{high} rating scale"
        elif "sd" in tokens:
            in_range, rule = values.between(0, np.inf), "not a standard deviation >= 0"
        else:
            in_range, rule = values.notna(), "not a finite number"
        bad = values.notna() & ~(in_range & np.isfinite(values))
        if bad.any():
            row = bad.idxmax()
            raise UserError(f"{where} {row_word} {row + 2} column {col!r} holds {_cell(raw.loc[row, col])}, {rule}; "
                            "fix the cell (or leave it empty)")


def read_ratings(path: Path) -> pd.DataFrame:
    """Read a ratings table (xlsx: every sheet merged by ``name``; or csv).

    Returns one row per name with a ``key`` column (normalised name) and float
    rating columns.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"ratings file {path} not found; pass the folder that holds {RATINGS_FILE}")
    try:
        if path.suffix.lower() in {".xlsx", ".xlsm"}:
            sheets = pd.read_excel(path, sheet_name=None, engine="openpyxl")
        elif path.suffix.lower() == ".csv":
            sheets = {"csv": pd.read_csv(path)}
        else:
            raise UserError(f"ratings file {path} is neither .xlsx nor .csv; convert it to one of those")
    except UserError:
        raise
    except Exception as exc:  # openpyxl/pandas raise many types for a damaged file
        raise UserError(f"cannot read ratings file {path} ({exc}); re-download or re-export it") from None

    merged: pd.DataFrame | None = None
    for sheet_name, raw in sheets.items():
        df = _clean_sheet(raw, f"{path}:{sheet_name}")
        if df is None:
            if merged is None:
                raise UserError(
                    f"ratings file {path} sheet {sheet_name!r} has no 'name' column; "
                    "the first sheet must list image names (without extension) in a 'name' column"
                )
            continue
        df = df.copy()
        df["key"] = df["name"].map(normalise_name)
        dup = df.loc[df["key"].duplicated(), "name"].tolist()
        if dup:
            raise UserError(f"ratings file {path} sheet {sheet_name!r} lists names twice: {dup}; keep one row per image")
        values = df.drop(columns=["name", "key"])
        numeric = values.apply(pd.to_numeric, errors="coerce")
        _reject_stray_text(values, numeric, df["name"], f"{path} sheet {sheet_name!r}")
        # A column is a rating column when its non-empty cells are all numbers.
        rating_cols = [c for c in numeric.columns
                       if numeric[c].notna().sum() == values[c].notna().sum() and numeric[c].notna().any()]
        if path.suffix.lower() == ".csv":
            _check_values(numeric[rating_cols], values, f"ratings file {path}", "line")
        else:
            _check_values(numeric[rating_cols], values, f"ratings file {path} sheet {sheet_name!r}")
        table = pd.concat([df[["name", "key"]], numeric[rating_cols]], axis=1)
        if merged is None:
            merged = table
        else:
            new_cols = [c for c in rating_cols if c not in merged.columns]
            merged = merged.merge(table[["key", *new_cols]], on="key", how="left")
    if merged is None or merged.empty:
        raise UserError(f"ratings file {path} has no rating rows; check that it is the DIRTI supplementary table")
    return merged.reset_index(drop=True)


# ---------------------------------------------------------------- DIRTI loader

def _find_dirti_parts(root: Path) -> tuple[Path, Path]:
    root = Path(root).expanduser()
    if not root.exists():
        raise UserError(f"data folder {root} does not exist; pass the path to a DIRTI copy or use the demo set",
                        "data")
    if not root.is_dir():
        raise UserError(f"data path {root} is not a folder; pass the folder holding '{IMAGE_FOLDER}' and {RATINGS_FILE}")
    image_dir = root / IMAGE_FOLDER
    if not image_dir.is_dir():
        candidates = [p for p in root.iterdir() if p.is_dir() and normalise_name(p.name) == normalise_name(IMAGE_FOLDER)]
        image_dir = candidates[0] if candidates else root
    ratings = [p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")
               and p.suffix.lower() in {".xlsx", ".csv"}]
    preferred = [p for p in ratings if normalise_name(p.stem) == normalise_name(Path(RATINGS_FILE).stem)]
    chosen = preferred or ratings
    if not chosen:
        raise UserError(f"no ratings table (.xlsx or .csv) in {root}; put {RATINGS_FILE} next to '{IMAGE_FOLDER}'")
    if len(chosen) > 1:
        raise UserError(f"several ratings tables in {root}: {[p.name for p in chosen]}; keep only {RATINGS_FILE}")
    return image_dir, chosen[0]


def load_dirti(root: Path, name: str = "DIRTI", verify: bool = True) -> StimulusSet:
    """Load a local DIRTI copy laid out as its Zenodo record (or as ``make-demo`` writes it)."""
    image_dir, ratings_path = _find_dirti_parts(Path(root))
    images = list_images(image_dir)
    if not images:
        raise UserError(f"no images in {image_dir}; pass the path to the unpacked DIRTI folder", "data")
    table = read_ratings(ratings_path)
    if DISGUST_RATING not in table.columns:
        raise UserError(
            f"ratings file {ratings_path} has no {DISGUST_RATING!r} column; "
            "it must be the DIRTI supplementary table (or a csv with that column)"
        )
    rating_cols = [c for c in table.columns if c not in {"name", "key"}]

    bad_names = [p.name for p in images if not _DIRTI_NAME.match(normalise_name(p.stem))]
    if bad_names:
        raise UserError(f"image names in {image_dir} not in DIRTI form '<id>_<category>[ neutral].jpg': {bad_names}; rename them")
    by_key = images_by_stem(images, image_dir)

    rows = {k: r for k, r in zip(table["key"], table.to_dict("records"), strict=True)}
    missing_rows = sorted(by_key[k].name for k in by_key.keys() - rows.keys())
    missing_images = sorted(rows[k]["name"] for k in rows.keys() - by_key.keys())
    if missing_rows or missing_images:
        parts = []
        if missing_rows:
            parts.append(f"images without a rating row: {missing_rows}")
        if missing_images:
            parts.append(f"rating rows without an image: {missing_images}")
        raise UserError(
            f"images in {image_dir} and rows of {ratings_path} do not match 1:1 ({'; '.join(parts)}); "
            "fix the names so each image has exactly one row"
        )

    stimuli, seen_ids = [], {}
    for key in sorted(by_key, key=lambda k: int(_DIRTI_NAME.match(k)["id"])):
        m = _DIRTI_NAME.match(key)
        token = m["cat"].strip()
        if token not in DIRTI_CATEGORY_TOKENS:
            raise UserError(
                f"image {by_key[key].name} has unknown category {token!r}; "
                f"expected one of {sorted(DIRTI_CATEGORY_TOKENS)}"
            )
        sid = m["id"]
        if sid in seen_ids:
            raise UserError(f"image id {sid} is used twice ({seen_ids[sid]} and {by_key[key].name}); ids must be unique")
        seen_ids[sid] = by_key[key].name
        row = rows[key]
        ratings = {c: float(row[c]) for c in rating_cols if pd.notna(row[c])}
        if DISGUST_RATING not in ratings:
            raise UserError(f"{ratings_path}: image {row['name']!r} has no {DISGUST_RATING} value; fill it in")
        path = by_key[key]
        stimuli.append(Stimulus(
            id=sid, file_name=path.name, path=path, category=DIRTI_CATEGORY_TOKENS[token],
            neutral=bool(m["neutral"]), ratings=ratings,
        ))
    hashes = check_and_hash([s.path for s in stimuli], verify=verify)  # threaded, after the cheap checks
    stimuli = [dataclasses.replace(s, sha256=sha) for s, sha in zip(stimuli, hashes, strict=True)]
    # All six categories always: a category without images is an empty class,
    # which the label space's policy reports instead of silently losing it.
    return StimulusSet(
        name=name, root=Path(root), stimuli=tuple(stimuli),
        categories=DIRTI_CATEGORIES,
        rating_columns=tuple(rating_cols), rating_scale=(float(RATING_SCALE[0]), float(RATING_SCALE[1])),
    )
