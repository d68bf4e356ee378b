"""What the report, its prompt-experiment sections and the console write the same way: the mark
for a missing value, numbers, and the file names of figures."""

from __future__ import annotations

import math
import re

from ..results_types import ScenarioOutcome

MISSING = "–"
FIGURES_DIR = "figures"


def num(value, digits: int = 3) -> str:
    """A number as the report shows it (a pair of numbers as ``[low, high]``)."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    if isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, int | float) for v in value):
        return f"[{num(value[0], digits)}, {num(value[1], digits)}]"
    return str(value)


def metric_with_ci(scenario: ScenarioOutcome, metric: str) -> str:
    """A scenario's metric as every report table shows it: value [95% CI] by validity.value_with_ci (no
    CI for an intercept-only probe's correlation, a zero-width interval marked as such)."""
    return scenario.value_with_ci(metric, ci_digits=3)


def with_interval(value, ci) -> str:
    """A number that is no scenario metric (a difference between two runs or prompt sets) with its
    interval: ``value [low, high]``, the value alone when the interval is absent."""
    if value is None:
        return MISSING
    if ci and len(ci) == 2 and all(isinstance(v, int | float) for v in ci):
        return f"{num(value)} [{num(ci[0])}, {num(ci[1])}]"
    return num(value)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


def figure_path(stem: str, runs, run) -> str:
    """Where ``run``'s figure ``stem`` goes; in a report of several runs its name carries the run's label."""
    return f"{FIGURES_DIR}/{slug(stem + (f'-{run.label}' if len(runs) > 1 else ''))}.png"
