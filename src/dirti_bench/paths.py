"""Where dirti-bench keeps downloads, generated data and embeddings."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import platformdirs

from .errors import UserError

HOME_ENV = "DIRTI_BENCH_HOME"


def cache_home() -> Path:
    """``$DIRTI_BENCH_HOME`` or the platform's user cache dir for dirti-bench."""
    root = os.environ.get(HOME_ENV)
    return Path(root).expanduser() if root else Path(platformdirs.user_cache_dir("dirti-bench"))


def dataset_dir() -> Path:
    return cache_home() / "data"


def embedding_cache_dir() -> Path:
    return cache_home() / "embeddings"


def projection_cache_dir() -> Path:
    return cache_home() / "projections"


def figure_cache_dir() -> Path:
    return cache_home() / "figures"


def check_writable_dir(path: Path, what: str, fix: str, option: str | None = None) -> Path:
    """Refuse, before any work, a folder that cannot be created or written: a file in its place or
    above it, or a parent that refuses new files. Creates nothing (a probe file is made and removed
    in the nearest existing folder)."""
    path = Path(path).expanduser()
    existing = path
    while not existing.exists():  # False also below a regular file (NotADirectoryError)
        existing = existing.parent
    if not existing.is_dir():
        where = "is a file" if existing == path else f"lies below {existing}, which is a file"
        raise UserError(f"{what} {path} {where}, not a folder; {fix}", option)
    try:
        fd, probe = tempfile.mkstemp(prefix=".dirti-bench-write-check-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"{what} {path} is not writable ({exc.strerror or exc} in {existing}); {fix}",
                        option) from None
    return path


def check_cache_home() -> Path:
    return check_writable_dir(cache_home(), f"the cache folder (${HOME_ENV})",
                              f"point {HOME_ENV} to a writable folder")
