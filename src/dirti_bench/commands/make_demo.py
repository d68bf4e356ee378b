"""``dirti-bench make-demo DIR``: a small generated set in DIRTI's layout."""

from __future__ import annotations

from pathlib import Path

from ..data.demo import make_demo
from .options import seed


def add_arguments(p) -> None:
    p.add_argument("dir", type=Path, metavar="DIR", help="output folder (new, empty, or an earlier demo set)")
    p.add_argument("--seed", type=seed, default=0,
                   help="seeds the photos and their ratings, 0 to 2**32-1; the same seed gives byte-identical files")


def run(args) -> int:
    out = make_demo(args.dir, seed=args.seed)
    print(f"demo set written to {out} (use it with: dirti-bench run --data \"{out}\")")
    return 0
