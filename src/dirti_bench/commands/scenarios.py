"""``dirti-bench scenarios``: the registry, and what --templates / --ratings would add to a run."""

from __future__ import annotations

from pathlib import Path

from tabulate import tabulate

from ..scenarios import alignment_scenarios, select, template_scenarios

DESCRIPTION = """\
List the scenarios 'dirti-bench run' evaluates: id, task, evaluator and what it measures.
With --templates / --ratings, preview the scenarios those run options would add (the files
are checked as a run would check them). A rated set also gets alignment scenarios for each
of its own rating columns."""


def add_arguments(p) -> None:
    p.add_argument("patterns", nargs="*", metavar="ID", help="ids or globs such as 'knn-*' (default: all)")
    p.add_argument("--templates", nargs="+", type=Path, metavar="FILE",
                   help="preview the ensemble-<task>-<stem> and template-sweep-<task>-<stem> scenarios these "
                   "template lists add (per-class and high/low files are matched to a set when a run loads it)")
    p.add_argument("--ratings", nargs="+", metavar="COLUMN",
                   help="preview the align-<rating>-zeroshot/-probe scenarios these rating columns add")


def run(args) -> int:
    added = {}
    for path in args.templates or []:
        added |= {s.id: (s, f"--templates {path}") for s in template_scenarios(path)}
    for column in args.ratings or []:
        added |= {s.id: (s, f"--ratings {column}") for s in alignment_scenarios(column)}
    extra = [scenario for scenario, _ in added.values()]
    patterns = args.patterns or ([s.id for s in extra] if extra else None)
    rows = []
    for s in select(patterns, extra):
        origin = added[s.id][1] if s.id in added else "registry"
        rows.append((s.id, s.task, s.evaluator, origin, s.summary))
    print(tabulate(rows, headers=["id", "task", "evaluator", "from", "what"]))
    return 0
