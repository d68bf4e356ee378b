from __future__ import annotations

import json
from pathlib import Path

from ..atomic import write_text
from ..errors import UserError
from ..reporting.drift import DEFAULT_TOLERANCE, baseline_document, check, load_baseline
from ..results import read_results


def add_arguments(p) -> None:
    p.add_argument("results_dir", type=Path, metavar="RESULTS_DIR", help="directory written by 'dirti-bench run'")
    p.add_argument("--baseline", type=Path, required=True, metavar="FILE",
                   help="committed baseline (e.g. reports/baseline.json) or another results.json")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help=f"largest allowed |now - baseline| per metric (default {DEFAULT_TOLERANCE}); "
                        "tolerances in the baseline file take precedence")
    p.add_argument("--metrics", nargs="+", metavar="NAME", help="only these metrics (names or globs, e.g. 'f1_*')")
    p.add_argument("--update", action="store_true",
                   help="deliberately rewrite the baseline from RESULTS_DIR (keeps its tolerances)")



def run(args) -> int:
    if args.tolerance < 0:
        raise UserError(f"--tolerance {args.tolerance} is negative; pass a value >= 0 such as 0.02")
    results = read_results(args.results_dir)
    baseline = load_baseline(args.baseline, allow_missing=args.update)
    if args.update:
        if baseline is not None:
            report = check(results, baseline, args.tolerance, args.metrics, baseline_name=str(args.baseline))
            if report.rows:
                print(f"metrics that moved (now written to {args.baseline}):\n{report.table()}")
        write_text(args.baseline, json.dumps(baseline_document(results, baseline), indent=2) + "\n")
        print(f"baseline written to {args.baseline} ({len(results['scenarios'])} scenarios)")
        return 0
    report = check(results, baseline, args.tolerance, args.metrics, baseline_name=str(args.baseline))
    for line in report.notes():
        print(f"note: {line}")
    if report.ok:
        print(f"no drift: {report.checked} metrics within tolerance of {args.baseline}")
        return 0
    print(f"drift: {len(report.rows)} of {report.checked} metrics moved beyond tolerance of {args.baseline}")
    print(report.table())
    return 1
