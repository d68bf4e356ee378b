"""The report's figure cache, apart from the builders so that it needs no matplotlib: a warm re-run
whose figures are all cached (keyed by their inputs) reads them back without importing it (~1 s).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

FIGURES_SOURCE = Path(__file__).with_name("figures.py")  # the builders: a change there redraws every figure


def drawing_key(drawing) -> str:
    """What a figure's bytes depend on: its builder and arguments, the code of ``figures.py`` (its
    builders) and matplotlib's version. A figure is deterministic given these, so a warm re-run reuses
    the PNG of an equal key."""
    import hashlib
    import pickle
    from importlib.metadata import version

    digest = hashlib.sha256(FIGURES_SOURCE.read_bytes())
    digest.update(version("matplotlib").encode())
    digest.update(pickle.dumps((drawing.builder, drawing.args, sorted((drawing.kwargs or {}).items())), protocol=4))
    return digest.hexdigest()


def _cached(key: str) -> bytes | None:
    from ..paths import figure_cache_dir

    try:
        return (figure_cache_dir() / f"{key}.png").read_bytes()
    except OSError:
        return None


def _keep(key: str, image: bytes) -> None:
    from ..atomic import write_bytes
    from ..paths import figure_cache_dir

    try:
        figure_cache_dir().mkdir(parents=True, exist_ok=True)
        write_bytes(figure_cache_dir() / f"{key}.png", image)
    except OSError:  # a read-only cache home: the figure is still right, only drawn again next time
        pass


def draw_blocks(blocks: list, jobs: int | None = None, reporter=None, cache: bool = True) -> list:
    """``blocks`` with every Figure's Drawing replaced by its PNG bytes (``jobs``: worker processes,
    default ``figure_jobs``); a progress bar through ``reporter`` where one is given. ``cache``: reuse
    (and keep) figures of equal ``drawing_key`` in the cache home, so unchanged figures are not redrawn."""
    from .render import Drawing, Figure

    pending = [i for i, b in enumerate(blocks) if isinstance(b, Figure) and isinstance(b.png, Drawing)]
    keys = {i: drawing_key(blocks[i].png) for i in pending} if cache else {}
    images = {i: image for i in pending if cache and (image := _cached(keys[i])) is not None}
    missing = [i for i in pending if i not in images]
    if missing:
        from .figures import draw_all, figure_jobs  # matplotlib loads only when a figure is drawn

        drawn = draw_all([blocks[i].png for i in missing], figure_jobs(len(missing)) if jobs is None else jobs,
                         reporter)
        for i, image in zip(missing, drawn, strict=True):
            images[i] = image
            if cache:
                _keep(keys[i], image)
    elif pending and reporter is not None:
        reporter.stage(f"figures: {len(pending)} unchanged, reused from the cache")
    out = list(blocks)
    for i, image in images.items():
        out[i] = replace(blocks[i], png=image)
    return out
