"""Zero-shot classification: cosine similarity of image and class text embeddings.

Each class embedding is the mean of its prompts' normalised text embeddings,
re-normalised (CLIP's prompt ensembling); a single prompt is the 1-prompt case.
"""

from __future__ import annotations

import numpy as np

from ..contracts import DEFAULT_LOGIT_SCALE
from ..encoding.vectors import l2_normalise
from ..labels import check_consistency
from ..prompts import PromptSet, from_templates, load_ensemble, study_prompts
from .common import classification_result, runnable_space


def class_embeddings(encoder, prompts: PromptSet) -> np.ndarray:
    text = encoder.encode_texts(prompts.all_prompts())
    owner = np.array(prompts.class_of_prompt())
    means = np.stack([text[owner == i].mean(axis=0) for i in range(len(prompts.classes))])
    return l2_normalise(means)


def zero_shot_logits(image_features: np.ndarray, class_embs: np.ndarray,
                     logit_scale: float = DEFAULT_LOGIT_SCALE) -> np.ndarray:
    return logit_scale * image_features @ class_embs.T


def winning_probability(logits: np.ndarray) -> np.ndarray:
    """The softmax probability of each image's predicted class (float64: near-ties stay apart)."""
    from scipy.special import softmax

    return softmax(np.asarray(logits, dtype=np.float64), axis=1).max(axis=1)


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


def evaluate(scenario, ctx):
    space = runnable_space(scenario, ctx)
    prompts = prompts_for(scenario, space)
    check_consistency(space, prompts.classes)
    logits = zero_shot_logits(ctx.features_for(space), class_embeddings(ctx.encoder, prompts),
                              scenario.options.logit_scale)
    y_pred = logits.argmax(axis=1)
    result = classification_result(
        scenario, space, prompts.classes, space.stimulus_ids, space.y_true, y_pred,
        winning_probability(logits), seed=ctx.seed,
        options={"prompt_set": prompts.name, "n_prompts": len(prompts.all_prompts()),
                 "example_prompts": {c: list(p[:2]) for c, p in zip(prompts.classes, prompts.prompts, strict=True)}},
    )
    result.prompts = prompts.rows()
    return result
