"""Zero-shot classification: cosine similarity of image and class text embeddings.

Each class embedding is the mean of its prompts' normalised text embeddings,
re-normalised (CLIP's prompt ensembling); a single prompt is the 1-prompt case.
Logits are ``scale * cos + bias`` with the model's own scale and bias, turned into
probabilities by its training objective (``contracts.resolve_scoring``; softmax for
contrastive CLIP, a per-class sigmoid for SigLIP), or the study's fixed 100 and softmax
(``scoring=study``). Calibration (ECE, Brier, out-of-fold temperature) is in ``calibration.py``.
"""

from __future__ import annotations

import numpy as np

from ..contracts import DEFAULT_LOGIT_SCALE, resolve_scoring
from ..encoding.vectors import l2_normalise
from ..labels import check_consistency
from ..prompts import PromptSet, from_templates, load_ensemble, study_prompts
from .calibration import calibration, calibration_intervals, probabilities
from .common import classification_result, runnable_space


def class_embeddings(encoder, prompts: PromptSet) -> np.ndarray:
    text = encoder.encode_texts(prompts.all_prompts())
    owner = np.array(prompts.class_of_prompt())
    means = np.stack([text[owner == i].mean(axis=0) for i in range(len(prompts.classes))])
    return l2_normalise(means)


def zero_shot_logits(image_features: np.ndarray, class_embs: np.ndarray,
                     logit_scale: float = DEFAULT_LOGIT_SCALE, logit_bias: float | None = None) -> np.ndarray:
    logits = logit_scale * image_features @ class_embs.T
    return logits if logit_bias is None else logits + np.float32(logit_bias)


def winning_probability(logits: np.ndarray, rule: str = "softmax") -> np.ndarray:
    """The probability of each image's predicted class by ``rule`` (float64: near-ties stay apart)."""
    return probabilities(logits, rule).max(axis=1)


def prompts_for(scenario, space) -> PromptSet:
    opts = scenario.options
    if opts.ensemble:
        return load_ensemble(opts.ensemble).bind(space)
    if opts.template:
        return from_templates(space, [opts.template], "template")
    return study_prompts(space)


def check_runnable(scenario, ctx) -> None:
    """The space has 2+ classes and the prompts bind to it (a CuPL file names its classes)."""
    prompts_for(scenario, runnable_space(scenario, ctx))


def space_and_prompts(scenario, ctx) -> tuple:
    """The scenario's label space and its prompts bound to it (what ``evaluate`` and ``texts`` read)."""
    space = runnable_space(scenario, ctx)
    return space, prompts_for(scenario, space)


def texts(scenario, ctx) -> list[list[str]]:
    """What ``evaluate`` encodes: its prompts, in one call."""
    return [list(space_and_prompts(scenario, ctx)[1].all_prompts())]


def evaluate(scenario, ctx):
    space, prompts = space_and_prompts(scenario, ctx)
    check_consistency(space, prompts.classes)
    scoring = resolve_scoring(scenario.options, ctx.encoder)
    logits = zero_shot_logits(ctx.features_for(space), class_embeddings(ctx.encoder, prompts),
                              scoring.logit_scale, scoring.logit_bias)
    y_pred = logits.argmax(axis=1)
    calibrated, record, probability_rows = calibration(scenario.id, space.stimulus_ids, space.names, space.y_true,
                                                       logits, scoring.rule)
    result = classification_result(
        scenario, space, prompts.classes, space.stimulus_ids, space.y_true, y_pred,
        winning_probability(logits, scoring.rule), seed=ctx.seed,
        options={"prompt_set": prompts.name, "n_prompts": len(prompts.all_prompts()),
                 "example_prompts": {c: list(p[:2]) for c, p in zip(prompts.classes, prompts.prompts, strict=True)},
                 **scoring.to_dict()},
        extra={"calibration": record},
    )
    result.metrics |= calibrated
    result.ci |= calibration_intervals(probability_rows, space.y_true, ctx.seed)
    result.probabilities = probability_rows
    result.prompts = prompts.rows()
    return result
