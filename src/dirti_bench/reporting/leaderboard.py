"""The leaderboard: every metric of every scenario of every run, one tidy row each.

``leaderboard.csv`` columns: model, pretrained, weights_sha256, scenario, task, metric, value,
ci_low, ci_high (the 95% CI where the scenario records one; empty otherwise, and empty for an
intercept-only probe's correlations, which are no finding), flag (the scenario's validity flags,
``;``-separated, plus ``not-comparable`` where the run's dataset, label space, threshold or options
differ from the reference run's; empty when none). One type per column, so ``pandas.read_csv`` /
R's ``read.csv`` load it as is.
"""

from __future__ import annotations

import math

import pandas as pd

from ..results import SPEARMAN_RHO
from ..validity import NOT_COMPARABLE, comparability, flag_codes, suppressed

LEADERBOARD_FILE = "leaderboard.csv"
LEADERBOARD_COLUMNS = ["model", "pretrained", "weights_sha256", "scenario", "task", "metric", "value",
                       "ci_low", "ci_high", "flag"]


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
            value = _number((sc.get("metrics") or {}).get(metric))
            text = "no signal" if suppressed(sc, metric) else "–" if value is None else f"{value:.3f}"
            codes = [c for c in flag_codes(sc) if c != "intercept-only"]
            row.append(text + (f" ({'; '.join(codes)})" if codes else ""))
        rows.append(row)
    headers = ["model"] + [f"{sid} ({'acc.' if metric == 'accuracy' else 'ρ'})" for sid, metric in columns]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _flags(doc: dict, sid: str, sc: dict, reference: dict | None) -> str:
    codes = flag_codes(sc)
    if reference is not None and reference is not doc:
        other = (reference.get("scenarios") or {}).get(sid)
        if other is not None and comparability(reference.get("run") or {}, other, doc.get("run") or {}, sc):
            codes.append(NOT_COMPARABLE)
    return ";".join(codes)


def leaderboard_frame(docs: list[dict], reference: dict | None = None) -> pd.DataFrame:
    """One row per (run, scenario, numeric metric) of ``docs`` (results.json documents); ``reference``:
    the document the others are compared with (default: the first)."""
    rows = []
    reference = reference if reference is not None else (docs[0] if docs else None)
    for doc in docs:
        run = doc.get("run", {})
        for sid, sc in doc.get("scenarios", {}).items():
            cis = sc.get("ci") or {}
            flag = _flags(doc, sid, sc, reference)
            for metric, raw in (sc.get("metrics") or {}).items():
                value = _number(raw) if raw is not None else math.nan
                if value is None:
                    continue
                ci = [None, None] if suppressed(sc, metric) else cis.get(metric) or [None, None]
                low, high = (_number(v) for v in ci) if len(ci) == 2 else (None, None)
                rows.append({"model": run.get("model"), "pretrained": run.get("pretrained"),
                             "weights_sha256": run.get("weights_sha256") or "", "scenario": sid,
                             "task": sc.get("task"), "metric": metric, "value": value,
                             "ci_low": math.nan if low is None else low, "ci_high": math.nan if high is None else high,
                             "flag": flag})
    frame = pd.DataFrame(rows, columns=LEADERBOARD_COLUMNS)
    return frame.astype({"value": float, "ci_low": float, "ci_high": float, "flag": str})
