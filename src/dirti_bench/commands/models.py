"""``dirti-bench models``: the (architecture, pretrained tag) pairs open_clip knows, in the
``--models`` file format, so ``dirti-bench models | grep ViT-B > models.txt`` starts a sweep."""

from __future__ import annotations

from ..encoding.model_list import pretrained_lines


def add_arguments(p) -> None:
    p.add_argument("patterns", nargs="*", metavar="TEXT",
                   help="only pairs whose line contains every TEXT (case-insensitive), e.g. ViT-B laion")


def run(args) -> int:
    wanted = [p.lower() for p in args.patterns]
    for line in pretrained_lines():
        if all(p in line.lower() for p in wanted):
            print(line)
    return 0
