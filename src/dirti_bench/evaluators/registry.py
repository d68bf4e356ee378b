"""Evaluator name -> function, for each evaluator name of ``contracts.OPTIONS``."""

from __future__ import annotations

from ..contracts import EvalContext, Scenario, ScenarioResult
from . import alignment, crossval, knn, layer_eval, probe, sweeps, zeroshot
from .common import one_thread

EVALUATORS = {
    "zeroshot": zeroshot.evaluate,
    "threshold-sweep": sweeps.evaluate_threshold_sweep,
    "template-sweep": sweeps.evaluate_template_sweep,
    "knn-split": knn.evaluate_split,
    "knn-cv": knn.evaluate_cv,
    "linear-probe-cv": probe.evaluate_cv,
    "align-zeroshot": alignment.evaluate_zeroshot,
    "align-probe": alignment.evaluate_probe,
    "align-layers": layer_eval.evaluate_layers,
    "align-pixels": layer_eval.evaluate_pixels,
    "align-random-init": layer_eval.evaluate_random_init,
}

# evaluator -> a check that raises ScenarioNotRunnable where the data cannot support the scenario;
# it reads only the stimuli, so a run makes it for every scenario before any image is encoded
RUNNABLE_CHECKS = {
    "zeroshot": zeroshot.check_runnable,
    "threshold-sweep": zeroshot.check_runnable,  # the headline is the zero-shot run at the scenario's threshold
    "template-sweep": sweeps.check_template_sweep_runnable,
    "knn-split": crossval.holdout_space,
    "knn-cv": crossval.cv_space,
    "linear-probe-cv": probe.check_runnable,
    "align-zeroshot": alignment.check_zeroshot_runnable,
    "align-probe": alignment.check_probe_runnable,
    "align-layers": layer_eval.check_layers_runnable,
    "align-pixels": layer_eval.check_layers_runnable,
    "align-random-init": layer_eval.check_layers_runnable,
}


def check_runnable(scenario: Scenario, ctx: EvalContext) -> None:
    """Raise ScenarioNotRunnable unless ``ctx.stimuli`` can support ``scenario`` (no features needed)."""
    RUNNABLE_CHECKS[scenario.evaluator](scenario, ctx)


def run_evaluator(scenario: Scenario, ctx: EvalContext) -> ScenarioResult:
    """The scenario's evaluator on ``ctx`` (unchecked; ``pipeline.evaluate_scenario`` checks it)."""
    with one_thread():
        return EVALUATORS[scenario.evaluator](scenario, ctx)
