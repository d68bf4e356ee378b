from __future__ import annotations

from pathlib import Path

from ..demo import make_demo


def add_arguments(p) -> None:
    p.add_argument("dir", type=Path, help="output folder")
    p.add_argument("--seed", type=int, default=0)


def run(args) -> int:
    out = make_demo(args.dir, seed=args.seed)
    print(f"demo set written to {out}")
    return 0
