from __future__ import annotations

from tabulate import tabulate

from ..scenarios import select


def add_arguments(p) -> None:
    p.add_argument("patterns", nargs="*", help="ids or globs (default: all)")


def run(args) -> int:
    rows = [(s.id, s.task, s.evaluator, s.description) for s in select(args.patterns or None)]
    print(tabulate(rows, headers=["id", "task", "evaluator", "what"]))
    return 0
