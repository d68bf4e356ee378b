from __future__ import annotations

from pathlib import Path

from ..reporting.report import write_report


def add_arguments(p) -> None:
    p.add_argument("results_dirs", nargs="+", type=Path, metavar="RESULTS_DIR",
                   help="directories written by 'dirti-bench run' (several: shown side by side)")
    p.add_argument("--out", type=Path, default=None,
                   help="where report.md, report.html and figures/ go (default: the first RESULTS_DIR)")


def run(args) -> int:
    out = args.out if args.out is not None else args.results_dirs[0]
    report = write_report(args.results_dirs, out)
    print(f"report written to {report} and {report.with_name('report.html')}")
    return 0
