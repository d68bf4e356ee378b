"""The built-in evaluators, each registered once with its options, function, runnable check and
description (``contracts.EvaluatorSpec``). Adding an evaluator is one ``register_evaluator`` call
here (or in a plugin); a name taken already is an error."""

from __future__ import annotations

from ..contracts import AlignLayersOptions as AlignLayers
from ..contracts import AlignProbeOptions as AlignProbe
from ..contracts import AlignZeroShotOptions as AlignZeroShot
from ..contracts import (
    EvalContext,
    EvaluatorSpec,
    Scenario,
    ScenarioResult,
    evaluator_spec,
    register_evaluator,
)
from ..contracts import KnnCvOptions as KnnCv
from ..contracts import KnnLayersOptions as KnnLayers
from ..contracts import KnnSplitOptions as KnnSplit
from ..contracts import PixelBaselineOptions as PixelBaseline
from ..contracts import ProbeCvOptions as ProbeCv
from ..contracts import ProbeLayersOptions as ProbeLayers
from ..contracts import ProbePixelsOptions as ProbePixels
from ..contracts import ProbeRandomInitOptions as ProbeRandomInit
from ..contracts import RandomInitOptions as RandomInit
from ..contracts import TemplateSweepOptions as TemplateSweep
from ..contracts import ThresholdSweepOptions as ThresholdSweep
from ..contracts import ZeroShotOptions as ZeroShot
from ..prompts import STUDY_TEMPLATE, resolve_pair
from . import alignment, crossval, knn, layer_eval, probe, sweeps, zeroshot
from .common import one_thread

# ---------------------------------------------------------------- descriptions from the options

def _classes(scenario: Scenario) -> str:
    o = scenario.options
    if scenario.task == "category":
        return "the stimulus categories"
    at = f"disgust threshold {o.threshold}"
    if scenario.task == "disgust":
        return f"{{neutral, disgusting}} x category at {at}"
    return f"disgusting vs not at {at}"


# The study's wording per task (prompts.study_prompts): disgusting classes add "disgusting".
STUDY_WORDING = {"category": STUDY_TEMPLATE, "disgust": "This is a (disgusting) photo of {c}",
                 "disgust-binary": "This is a (disgusting) photo"}


def _prompts(s: Scenario) -> str:
    o = s.options
    if getattr(o, "template", None):
        return f"the template {o.template!r}"
    if getattr(o, "ensemble", None):
        return f"the {o.ensemble} prompt ensemble"
    return f"the study wording {STUDY_WORDING[s.task]!r}"


def _scoring(s: Scenario) -> str:
    """Only the exception is named: by default a model is scored by its own scale, bias and rule."""
    return "; scored as the study (100 x cosine, softmax)" if getattr(s.options, "scoring", "") == "study" else ""


def _zeroshot(s: Scenario) -> str:
    return f"zero-shot with {_prompts(s)}; classes: {_classes(s)}{_scoring(s)}"


def _threshold_sweep(s: Scenario) -> str:
    o = s.options
    return (f"zero-shot with {_prompts(s)} at disgust thresholds {', '.join(map(str, o.thresholds))}; "
            f"headline at {o.threshold}")


def _template_sweep(s: Scenario) -> str:
    o = s.options
    return (f"each template alone; headline: the template chosen by {o.folds}-fold CV "
            f"on {o.select_by}; classes: {_classes(s)}")


def _knn_split(s: Scenario) -> str:
    o = s.options
    return (f"KNN (k={o.k}, ties: {o.tie_break}) on a stratified {1 - o.test_size:.0%}/{o.test_size:.0%} "
            f"split, scaler inside the pipeline; classes: {_classes(s)}")


def _knn_cv(s: Scenario) -> str:
    o = s.options
    return (f"KNN (k={o.k}, ties: {o.tie_break}) in stratified {o.folds}-fold CV, scaler inside the "
            f"pipeline; classes: {_classes(s)}")


def _probe_cv(s: Scenario) -> str:
    o = s.options
    return f"logistic regression (C: {o.C}) in stratified {o.folds}-fold CV; classes: {_classes(s)}"


def _align_zeroshot(s: Scenario) -> str:
    o = s.options
    name = resolve_pair(o.prompt_pair)[0]
    return (f"zero-shot {o.rating} score from the {name!r} high/low prompts ({o.score}) vs the mean human "
            f"rating (Spearman, Pearson)")


def _align_probe(s: Scenario) -> str:
    o = s.options
    return (f"ridge regression (alpha: {o.alpha}) from image features to {o.rating}, {o.repeats}x repeated "
            f"stratified {o.folds}-fold CV")


def _align_layers(s: Scenario) -> str:
    o = s.options
    return (f"ridge (RidgeCV leave-one-out alpha) on every layer of the image tower ({o.mode}) vs {o.rating}; "
            f"headline: the layer chosen inside each training fold of stratified {o.folds}-fold CV, the "
            "same-data superlative choice beside it")


def _probe_layers(s: Scenario) -> str:
    o = s.options
    return (f"logistic regression (C: {o.C}) on every layer of the image tower ({o.mode}), stratified {o.folds}-fold "
            "CV; the layer chosen inside each training fold by inner CV accuracy, every layer's out-of-fold accuracy "
            "and the same-data superlative layer beside it")


def _knn_layers(s: Scenario) -> str:
    o = s.options
    return (f"KNN (k={o.k}, ties: {o.tie_break}) on every layer of the image tower ({o.mode}), stratified "
            f"{o.folds}-fold CV, scaler inside the pipeline; the layer chosen inside each training fold by inner "
            f"CV accuracy, every layer's out-of-fold accuracy and the same-data superlative layer beside it; classes: "
            f"{_classes(s)}")


def _align_pixels(s: Scenario) -> str:
    o = s.options
    return (f"low-level image statistics (no model) in the same ridge probe vs {o.rating}, stratified "
            f"{o.folds}-fold CV; the model's final embedding beside it")


def _align_random_init(s: Scenario) -> str:
    o = s.options
    return (f"the run's architecture with random weights (seeds {', '.join(map(str, o.seeds))}), the layer "
            f"probe ({o.mode}) vs {o.rating} per seed; band over seeds and trained - random")


def _probe_pixels(s: Scenario) -> str:
    o = s.options
    return (f"logistic regression (C: {o.C}) on low-level image statistics (no model), stratified {o.folds}-fold "
            "CV; the model's final embedding in the same probe and folds beside it")


def _probe_random_init(s: Scenario) -> str:
    o = s.options
    return (f"the run's architecture with random weights (seeds {', '.join(map(str, o.seeds))}), logistic regression "
            f"(C: {o.C}) on every layer ({o.mode}), the layer chosen inside each training fold, per seed; band over "
            "seeds and trained - random")


def no_texts(scenario: Scenario, ctx: EvalContext) -> list[list[str]]:
    """An evaluator that encodes no text (it reads image features only)."""
    return []


def _probe_layers_runnable(scenario: Scenario, ctx: EvalContext) -> None:
    """The probe's own check (a tuned C splits each training fold again) and the layer choice's."""
    probe.check_runnable(scenario, ctx)
    layer_eval.check_classifier_layers_runnable(scenario, ctx)


# features_only: the probes, KNN and the ridge alignment probe read only the image features; a large
# run evaluates them in worker processes beside the main one (evaluators/workers.py).
for _spec in (
    EvaluatorSpec("zeroshot", ZeroShot, zeroshot.evaluate, zeroshot.check_runnable, _zeroshot, texts=zeroshot.texts),
    # the headline is the zero-shot run at the scenario's threshold, so the runnable check is zero-shot's
    EvaluatorSpec("threshold-sweep", ThresholdSweep, sweeps.evaluate_threshold_sweep, zeroshot.check_runnable,
                  _threshold_sweep, texts=sweeps.threshold_sweep_texts),
    EvaluatorSpec("template-sweep", TemplateSweep, sweeps.evaluate_template_sweep,
                  sweeps.check_template_sweep_runnable, _template_sweep, texts=sweeps.template_sweep_texts),
    EvaluatorSpec("knn-split", KnnSplit, knn.evaluate_split, crossval.holdout_space, _knn_split, texts=no_texts,
                  features_only=True),
    EvaluatorSpec("knn-cv", KnnCv, knn.evaluate_cv, crossval.cv_space, _knn_cv, texts=no_texts, features_only=True),
    EvaluatorSpec("linear-probe-cv", ProbeCv, probe.evaluate_cv, probe.check_runnable, _probe_cv, texts=no_texts,
                  features_only=True),
    EvaluatorSpec("align-zeroshot", AlignZeroShot, alignment.evaluate_zeroshot, alignment.check_zeroshot_runnable,
                  _align_zeroshot, texts=alignment.zeroshot_texts),
    EvaluatorSpec("align-probe", AlignProbe, alignment.evaluate_probe, alignment.check_probe_runnable,
                  _align_probe, texts=no_texts, features_only=True),
    EvaluatorSpec("align-layers", AlignLayers, layer_eval.evaluate_layers, layer_eval.check_layers_runnable,
                  _align_layers, texts=no_texts),
    EvaluatorSpec("probe-layers", ProbeLayers, layer_eval.evaluate_probe_layers, _probe_layers_runnable,
                  _probe_layers, texts=no_texts),
    EvaluatorSpec("knn-layers", KnnLayers, layer_eval.evaluate_knn_layers,
                  layer_eval.check_classifier_layers_runnable, _knn_layers, texts=no_texts),
    EvaluatorSpec("align-pixels", PixelBaseline, layer_eval.evaluate_pixels, layer_eval.check_layers_runnable,
                  _align_pixels, texts=no_texts),
    EvaluatorSpec("align-random-init", RandomInit, layer_eval.evaluate_random_init,
                  layer_eval.check_layers_runnable, _align_random_init, texts=no_texts),
    EvaluatorSpec("probe-pixels", ProbePixels, layer_eval.evaluate_probe_pixels, probe.check_runnable,
                  _probe_pixels, texts=no_texts),
    EvaluatorSpec("probe-random-init", ProbeRandomInit, layer_eval.evaluate_probe_random_init,
                  _probe_layers_runnable, _probe_random_init, texts=no_texts),
):
    register_evaluator(_spec)


def check_runnable(scenario: Scenario, ctx: EvalContext) -> None:
    """Raise ScenarioNotRunnable unless ``ctx.stimuli`` can support ``scenario`` (no features needed)."""
    evaluator_spec(scenario.evaluator).check_runnable(scenario, ctx)


def run_evaluator(scenario: Scenario, ctx: EvalContext) -> ScenarioResult:
    """The scenario's evaluator on ``ctx`` (unchecked; ``pipeline.evaluate_scenario`` checks it)."""
    with one_thread():
        return evaluator_spec(scenario.evaluator).evaluate(scenario, ctx)


def scenario_texts(scenario: Scenario, ctx: EvalContext) -> list[list[str]] | None:
    """Every text ``scenario`` will encode, as its evaluator's ``encode_texts`` calls in order (the
    same prompt-building code the evaluator runs, from ``ctx.stimuli`` alone: no feature, no model);
    None where its evaluator does not say (it encodes them when it runs)."""
    texts = evaluator_spec(scenario.evaluator).texts
    return None if texts is None else [list(call) for call in texts(scenario, ctx)]
