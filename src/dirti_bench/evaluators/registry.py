"""Evaluator name -> function, for each evaluator name of ``contracts.OPTIONS``."""

from __future__ import annotations

from ..contracts import EvalContext, Scenario, ScenarioResult
from . import alignment, knn, probe, zeroshot
from .common import one_thread

EVALUATORS = {
    "zeroshot": zeroshot.evaluate,
    "knn-split": knn.evaluate_split,
    "knn-cv": knn.evaluate_cv,
    "linear-probe-cv": probe.evaluate_cv,
    "align-zeroshot": alignment.evaluate_zeroshot,
    "align-probe": alignment.evaluate_probe,
}


def run_evaluator(scenario: Scenario, ctx: EvalContext) -> ScenarioResult:
    """The scenario's evaluator on ``ctx`` (unchecked; ``pipeline.evaluate_scenario`` checks it)."""
    with one_thread():
        return EVALUATORS[scenario.evaluator](scenario, ctx)
