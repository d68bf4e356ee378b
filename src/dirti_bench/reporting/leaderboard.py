"""The leaderboard: every metric of every scenario of every run, one tidy row each.

``leaderboard.csv`` columns: model, pretrained, weights_sha256, scenario, task, metric, value,
ci_low, ci_high (the 95% CI where the scenario records one; empty otherwise). One type per
column, so ``pandas.read_csv`` / R's ``read.csv`` load it as is.
"""

from __future__ import annotations

import math

import pandas as pd

LEADERBOARD_FILE = "leaderboard.csv"
LEADERBOARD_COLUMNS = ["model", "pretrained", "weights_sha256", "scenario", "task", "metric", "value",
                       "ci_low", "ci_high"]


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def leaderboard_frame(docs: list[dict]) -> pd.DataFrame:
    """One row per (run, scenario, numeric metric) of ``docs`` (results.json documents)."""
    rows = []
    for doc in docs:
        run = doc.get("run", {})
        for sid, sc in doc.get("scenarios", {}).items():
            cis = sc.get("ci") or {}
            for metric, raw in (sc.get("metrics") or {}).items():
                value = _number(raw) if raw is not None else math.nan
                if value is None:
                    continue
                ci = cis.get(metric) or [None, None]
                low, high = (_number(v) for v in ci) if len(ci) == 2 else (None, None)
                rows.append({"model": run.get("model"), "pretrained": run.get("pretrained"),
                             "weights_sha256": run.get("weights_sha256") or "", "scenario": sid,
                             "task": sc.get("task"), "metric": metric, "value": value,
                             "ci_low": math.nan if low is None else low, "ci_high": math.nan if high is None else high})
    frame = pd.DataFrame(rows, columns=LEADERBOARD_COLUMNS)
    return frame.astype({"value": float, "ci_low": float, "ci_high": float})
