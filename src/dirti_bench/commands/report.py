"""``dirti-bench report``: report.md / report.html from results directories."""

from __future__ import annotations

from pathlib import Path

from ..reporting.projection import PROJECTIONS
from ..reporting.report import write_report

DESCRIPTION = """\
Render report.md, a self-contained report.html and figures/*.png from one or more results
directories written by 'dirti-bench run' (several: every table and figure side by side)."""


def add_arguments(p) -> None:
    p.add_argument("results_dirs", nargs="+", type=Path, metavar="RESULTS_DIR",
                   help="directories written by 'dirti-bench run' (several: shown side by side)")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="where report.md, report.html and figures/ go (default: the first RESULTS_DIR)")
    p.add_argument("--projection", choices=PROJECTIONS,
                   help="the 2-D view of the image features: umap or pca (default: what each run used)")


def run(args) -> int:
    out = args.out if args.out is not None else args.results_dirs[0]
    report = write_report(args.results_dirs, out, projection=args.projection)
    print(f"report written to {report} and {report.with_name('report.html')}")
    return 0
