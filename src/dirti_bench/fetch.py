"""DIRTI download from its Zenodo record (filled in by the fetch work; see issue 2)."""

from __future__ import annotations

from pathlib import Path

from .errors import UserError
from .paths import dataset_dir


def local_dirti() -> Path | None:
    """The unpacked DIRTI copy in the cache, if a previous fetch completed."""
    root = dataset_dir() / "dirti"
    return root if (root / ".complete").is_file() else None


def ensure_dirti(base_url: str | None = None) -> Path:
    found = local_dirti()
    if found is not None:
        return found
    raise UserError("DIRTI is not in the cache and cannot be downloaded; pass --data PATH to a local copy "
                    "or try --demo")
