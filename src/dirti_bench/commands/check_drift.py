from __future__ import annotations

import json
from pathlib import Path

from ..atomic import write_text
from ..errors import UserError, one_line
from ..reporting.drift import (
    DEFAULT_TOLERANCE,
    baseline_document,
    check,
    check_tolerance,
    load_baseline,
    require_comparable,
    require_comparison,
)
from ..results import read_results


def add_arguments(p) -> None:
    p.add_argument("results_dir", type=Path, metavar="RESULTS_DIR", help="directory written by 'dirti-bench run'")
    p.add_argument("--baseline", type=Path, required=True, metavar="FILE",
                   help="committed baseline (e.g. reports/baseline.json) or another results.json")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help=f"largest allowed |now - baseline| per metric (default {DEFAULT_TOLERANCE}); "
                        "tolerances in the baseline file take precedence")
    p.add_argument("--metrics", nargs="+", metavar="NAME", help="only these metrics (names or globs, e.g. 'f1_*')")
    p.add_argument("--allow-missing", action="store_true",
                   help="pass even if scenarios or metrics of the baseline are missing in the results")
    p.add_argument("--accept-differences", action="store_true",
                   help="compare even where the results differ from the baseline in dataset, model, weights, "
                        "label space, threshold or scenario options (otherwise exit 2 naming the difference)")
    p.add_argument("--update", action="store_true",
                   help="deliberately rewrite the baseline from RESULTS_DIR (keeps its tolerances)")


def run(args) -> int:
    tolerance = check_tolerance(args.tolerance, "--tolerance")
    results = read_results(args.results_dir)
    baseline = load_baseline(args.baseline, allow_missing=args.update)
    name = str(args.baseline)
    if args.update:
        if baseline is not None:
            report = check(results, baseline, tolerance, args.metrics, baseline_name=name, allow_missing=True)
            if report.rows:
                print(f"metrics that moved (now written to {args.baseline}):\n{report.table()}")
        try:
            write_text(args.baseline, json.dumps(baseline_document(results, baseline), indent=2) + "\n")
        except OSError as exc:
            raise UserError(f"cannot write baseline {args.baseline} ({exc.strerror or exc}); "
                            "pass a writable --baseline path") from None
        print(f"baseline written to {args.baseline} ({len(results['scenarios'])} scenarios)")
        return 0
    report = check(results, baseline, tolerance, args.metrics, baseline_name=name,
                   allow_missing=args.allow_missing, results_name=str(args.results_dir))
    require_comparison(report, name, str(args.results_dir))
    if not args.accept_differences:
        require_comparable(report, name, str(args.results_dir))
    for line in report.notes():
        print(one_line(f"note: {line}"))
    print(one_line(report.summary(name)))
    if report.ok:
        return 0
    if report.rows:
        print(report.table())
    return 1
