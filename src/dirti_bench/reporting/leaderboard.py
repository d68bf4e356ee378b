"""The leaderboard: every metric of every scenario of every run, one tidy row each.

``leaderboard.csv`` columns: model, pretrained, weights_sha256, scenario, task, metric, value,
ci_low, ci_high (the 95% CI where the scenario records one; empty otherwise, and empty for an
intercept-only probe's correlations, which are no finding), flag (the scenario's validity flags,
``;``-separated, plus ``not-comparable`` where the run's dataset, label space, threshold or options
differ from the reference run's; empty when none). One type per column, so ``pandas.read_csv`` /
R's ``read.csv`` load it as is.
"""

from __future__ import annotations

from ..results import ACCURACY, SPEARMAN_RHO
from ..results_types import LEADERBOARD_COLUMNS, Results, leaderboard_frame
from ..validity import INTERCEPT_ONLY

LEADERBOARD_FILE = "leaderboard.csv"
# The frame's builder lives with the typed results (Results.metrics_frame is it); named here too.
__all__ = ["BOARD_HEADLINES", "LEADERBOARD_COLUMNS", "LEADERBOARD_FILE", "leaderboard_frame", "leaderboard_text"]


# The headline scenarios a sweep's closing leaderboard shows (those some run has), with their measure.
BOARD_HEADLINES = (("zeroshot-baseline", ACCURACY), ("zeroshot-disgust", ACCURACY),
                   ("linear-probe-cv10-baseline", ACCURACY), ("linear-probe-cv10-disgust", ACCURACY),
                   ("align-disgust-zeroshot", SPEARMAN_RHO), ("align-disgust-probe", SPEARMAN_RHO))


def leaderboard_text(runs: list[Results | dict], labels: list[str]) -> str:
    """A sweep's closing leaderboard: one row per model (``labels``), its headline measures (accuracy of
    the study-replica zero-shot and probe scenarios, Spearman ρ of the disgust alignment), each with
    its flags; an intercept-only probe's ρ reads "no signal". ``runs``: typed results or results.json
    documents."""
    from tabulate import tabulate

    runs = [Results.of(run) for run in runs]
    columns = [(sid, metric) for sid, metric in BOARD_HEADLINES if any(sid in run.scenarios for run in runs)]
    if not columns:
        return ""
    rows = []
    for run, label in zip(runs, labels, strict=True):
        row = [label]
        for sid, metric in columns:
            sc = run.scenarios.get(sid)
            if sc is None:
                row.append("–")
                continue
            value = sc.metric(metric)
            text = "no signal" if sc.suppressed(metric) else "–" if value is None else f"{value:.3f}"
            codes = [c for c in sc.flag_codes if c != INTERCEPT_ONLY]
            row.append(text + (f" ({'; '.join(codes)})" if codes else ""))
        rows.append(row)
    headers = ["model"] + [f"{sid} ({'acc.' if metric == ACCURACY else 'ρ'})" for sid, metric in columns]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
