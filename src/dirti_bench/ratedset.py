"""Any rated stimulus set: a folder of images + a ratings CSV (filled in by issue 6's work)."""

from __future__ import annotations

from pathlib import Path

from .errors import UserError


def is_rated_set(path: Path) -> bool:
    return False


def load_rated_set(path: Path):
    raise UserError(f"{path}: generic rated sets are not supported yet")
