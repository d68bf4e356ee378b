"""``dirti-bench report``: one run's report.md / report.html, or several runs compared side by side."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError, one_line
from ..reporting.projection import PROJECTIONS
from ..reporting.report import write_report
from ..reporting.runs_report import find_run_dirs, write_comparison

DESCRIPTION = """\
Render report.md, a self-contained report.html and figures/*.png from a results folder written by
'dirti-bench run'. Several runs (folders, or a sweep's OUT with runs/*) get a comparison instead:
headline tables with runs side by side, each run paired with a reference run, a heatmap, links to
each run's own report, and leaderboard.csv."""


def add_arguments(p) -> None:
    p.add_argument("results_dirs", nargs="+", type=Path, metavar="RESULTS_DIR",
                   help="folders written by 'dirti-bench run', or a sweep's OUT (its runs/* are merged); "
                   "several runs get a comparison report and leaderboard.csv")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="where the report goes (default: the RESULTS_DIR itself for one run or one sweep; "
                   "required for several separate folders)")
    p.add_argument("--projection", choices=PROJECTIONS,
                   help="one run's 2-D view of the image features: umap or pca (default: what the run used)")
    p.add_argument("--reference", metavar="RUN",
                   help="several runs: the run every other run is paired with (a folder name or a model; "
                   "default: the first)")
    p.add_argument("--quiet", action="store_true", help="print only where the report went")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars (stage lines stay; for logs and CI)")


REPORT_FILES = {"report.md", "report.html", "figures", "leaderboard.csv", "results.json"}


def check_report_out(out: Path | None) -> None:
    """Like a run's ``--out``: a report goes into a new or empty folder, a results folder, or one an
    earlier report wrote, never among someone else's files."""
    if out is None:
        return
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {str(out)!r} is a file; pass a directory (new, empty, or a results folder)")
    names = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if names and not REPORT_FILES & set(names):
        shown = ", ".join(repr(n) for n in names[:5]) + (", ..." if len(names) > 5 else "")
        raise UserError(f"--out {str(out)!r} holds files that are not dirti-bench results or reports ({shown}); "
                        "pass a new or empty directory, or a results folder")


def run(args) -> int:
    check_report_out(args.out)
    runs = find_run_dirs(args.results_dirs)
    single = len(runs) == 1 and len(args.results_dirs) == 1 and runs[0] == args.results_dirs[0]
    if single:
        if args.reference:
            raise UserError("--reference needs several runs to compare; pass more RESULTS_DIRs")
        out = args.out if args.out is not None else args.results_dirs[0]
        from ..reporting.console import Reporter

        reporter = Reporter("quiet" if args.quiet else "normal", progress=not args.no_progress)
        report = write_report(runs, out, projection=args.projection, reporter=reporter)
        print(one_line(f"report written to {report} and {report.with_name('report.html')}"))
        return 0
    if args.projection:
        raise UserError("--projection applies to one run's report; each run's own report keeps its projection")
    if args.out is None:
        if len(args.results_dirs) != 1:
            raise UserError("several results folders: pass --out DIR for the comparison report")
        args.out = args.results_dirs[0]
    report = write_comparison(args.results_dirs, args.out, reference=args.reference)
    print(one_line(f"{len(runs)} runs compared: {report.with_name('report.html')}, {report.with_name('leaderboard.csv')}"))
    return 0
