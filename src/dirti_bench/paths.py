"""Where dirti-bench keeps downloads, generated data and embeddings."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

HOME_ENV = "DIRTI_BENCH_HOME"


def cache_home() -> Path:
    """``$DIRTI_BENCH_HOME`` or the platform's user cache dir for dirti-bench."""
    root = os.environ.get(HOME_ENV)
    return Path(root).expanduser() if root else Path(platformdirs.user_cache_dir("dirti-bench"))


def dataset_dir() -> Path:
    return cache_home() / "data"


def embedding_cache_dir() -> Path:
    return cache_home() / "embeddings"
