"""The leaderboard: every metric of every scenario of every run, one tidy row each.

``leaderboard.csv`` columns: model, pretrained, weights_sha256, scenario, task, metric, value,
ci_low, ci_high (the 95% CI where the scenario records one; empty otherwise, and empty for an
intercept-only probe's correlations, which are no finding), flag (the scenario's validity flags,
``;``-separated, plus ``not-comparable`` where the run's dataset, label space, threshold or options
differ from the reference run's; empty when none). One type per column, so ``pandas.read_csv`` /
R's ``read.csv`` load it as is.
"""

from __future__ import annotations

from ..results import SPEARMAN_RHO
from ..results_types import LEADERBOARD_COLUMNS, as_number, leaderboard_frame
from ..validity import flag_codes, suppressed

LEADERBOARD_FILE = "leaderboard.csv"
# The frame's builder lives with the typed results (Results.metrics_frame is it); named here too.
__all__ = ["BOARD_HEADLINES", "LEADERBOARD_COLUMNS", "LEADERBOARD_FILE", "leaderboard_frame", "leaderboard_text"]


# The headline scenarios a sweep's closing leaderboard shows (those some run has), with their measure.
BOARD_HEADLINES = (("zeroshot-baseline", "accuracy"), ("zeroshot-disgust", "accuracy"),
                   ("linear-probe-cv10-baseline", "accuracy"), ("linear-probe-cv10-disgust", "accuracy"),
                   ("align-disgust-zeroshot", SPEARMAN_RHO), ("align-disgust-probe", SPEARMAN_RHO))


def leaderboard_text(docs: list[dict], labels: list[str]) -> str:
    """A sweep's closing leaderboard: one row per model (``labels``), its headline measures (accuracy of
    the study-replica zero-shot and probe scenarios, Spearman ρ of the disgust alignment), each with
    its flags; an intercept-only probe's ρ reads "no signal"."""
    from tabulate import tabulate

    columns = [(sid, metric) for sid, metric in BOARD_HEADLINES
               if any(sid in (d.get("scenarios") or {}) for d in docs)]
    if not columns:
        return ""
    rows = []
    for doc, label in zip(docs, labels, strict=True):
        row = [label]
        for sid, metric in columns:
            sc = (doc.get("scenarios") or {}).get(sid)
            if sc is None:
                row.append("–")
                continue
            value = as_number((sc.get("metrics") or {}).get(metric))
            text = "no signal" if suppressed(sc, metric) else "–" if value is None else f"{value:.3f}"
            codes = [c for c in flag_codes(sc) if c != "intercept-only"]
            row.append(text + (f" ({'; '.join(codes)})" if codes else ""))
        rows.append(row)
    headers = ["model"] + [f"{sid} ({'acc.' if metric == 'accuracy' else 'ρ'})" for sid, metric in columns]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
