"""``dirti-bench report``: render one run's report, or compare several runs side by side."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..reporting.report import write_report
from ..reporting.runs_report import find_run_dirs, write_comparison


def add_arguments(p) -> None:
    p.add_argument("results_dirs", nargs="+", type=Path, metavar="RESULTS_DIR",
                   help="directories written by 'dirti-bench run', or a sweep's OUT (its runs/* are merged); "
                   "several runs get a comparison report and leaderboard.csv")
    p.add_argument("--out", type=Path, default=None,
                   help="where the report goes (default: the RESULTS_DIR itself for one run or one sweep; "
                   "required for several separate directories)")
    p.add_argument("--reference", metavar="RUN",
                   help="the run every other run is paired with (a folder name or a model; default: the first)")


def run(args) -> int:
    runs = find_run_dirs(args.results_dirs)
    if len(runs) == 1 and len(args.results_dirs) == 1 and runs[0] == args.results_dirs[0]:
        out = args.out if args.out is not None else args.results_dirs[0]
        if args.reference:
            raise UserError("--reference needs several runs to compare; pass more RESULTS_DIRs")
        report = write_report(runs, out)
        print(f"report written to {report} and {report.with_name('report.html')}")
        return 0
    if args.out is None:
        if len(args.results_dirs) != 1:
            raise UserError("several results directories: pass --out DIR for the comparison report")
        args.out = args.results_dirs[0]
    report = write_comparison(args.results_dirs, args.out, reference=args.reference)
    print(f"{len(runs)} runs compared: {report.with_name('report.html')}, {report.with_name('leaderboard.csv')}")
    return 0
