"""Every model scored as it was trained: its own logit scale and bias, softmax for contrastive CLIP,
a per-class sigmoid for SigLIP, the study's fixed 100 + softmax only where asked for."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.special import expit, softmax

from dirti_bench.contracts import EvalContext, Scenario, encoder_scoring, resolve_scoring
from dirti_bench.encoding.cache import CachedEncoder
from dirti_bench.evaluators import zeroshot
from dirti_bench.evaluators.alignment import evaluate_zeroshot
from dirti_bench.prompts import study_prompts
from dirti_bench.scenarios import REGISTRY
from helpers import label_space, stimulus_set
from known_answer import KnownAnswerEncoder, one_hot

CATS = ("a", "b", "c")
HIGH, LOW, OTHER_LOW = np.eye(3)


def pair_vector(low: np.ndarray):
    return lambda text: HIGH if "disgusting" in text else low


def rated_context(low: np.ndarray, **scoring) -> EvalContext:
    rng = np.random.default_rng(3)
    ratings = rng.uniform(1, 9, 30)
    stimuli = stimulus_set(list(np.repeat(CATS, 10)), [{"disg_mean_all": float(r)} for r in ratings], CATS)
    angle = 0.2 + 0.8 * (ratings - 1) / 8  # towards HIGH as the rating grows, with some spread off-plane
    features = np.stack([np.cos(angle) * 0.7, np.sin(angle), 0.3 * np.ones_like(angle)], axis=1)
    features = (features / np.linalg.norm(features, axis=1, keepdims=True)).astype(np.float32)
    encoder = KnownAnswerEncoder({}, pair_vector(low), **scoring)
    return EvalContext(stimuli=stimuli, encoder=encoder, image_features=features, seed=0)


def align(**options) -> Scenario:
    return replace(REGISTRY["align-disgust-zeroshot"].with_options(n_boot=20, n_perm=20, **options), id="align-t")


def cosines(ctx, vector):
    return ctx.image_features.astype(np.float64) @ vector


def test_sigmoid_model_alignment_score_ignores_the_low_prompt():
    scoring = {"logit_scale": 10.0, "logit_bias": -5.0, "rule": "sigmoid"}
    one, other = rated_context(LOW, **scoring), rated_context(OTHER_LOW, **scoring)
    a, b = evaluate_zeroshot(align(), one), evaluate_zeroshot(align(), other)
    np.testing.assert_array_equal(a.predictions["score"], b.predictions["score"])
    np.testing.assert_allclose(a.predictions["score"], expit(10.0 * cosines(one, HIGH) - 5.0), rtol=1e-6)
    # the pair difference is recorded beside it, and that one does see the low prompt
    alt_a, alt_b = a.extra["alternative_score"], b.extra["alternative_score"]
    assert alt_a["score"] == "sigmoid-difference" and alt_a["pearson_r"] != alt_b["pearson_r"]
    assert a.options["probability_rule"] == "sigmoid" and a.options["logit_bias"] == -5.0
    assert a.options["logit_scale"] == 10.0 and a.options["scoring"] == "model"


def test_softmax_model_alignment_score_is_the_pair_softmax_at_its_own_scale():
    ctx = rated_context(LOW, logit_scale=14.3, rule="softmax")
    result = evaluate_zeroshot(align(), ctx)
    logits = 14.3 * np.stack([cosines(ctx, LOW), cosines(ctx, HIGH)], axis=1)
    np.testing.assert_allclose(result.predictions["score"], softmax(logits, axis=1)[:, 1], rtol=1e-6)
    assert "alternative_score" not in result.extra
    # not the study's 100: the same features at 100 give other scores
    at_100 = softmax(100 * logits / 14.3, axis=1)[:, 1]
    assert not np.allclose(result.predictions["score"], at_100)
    assert result.options["logit_scale"] == 14.3 and result.options["probability_rule"] == "softmax"
    assert result.options["logit_bias"] is None


def test_study_scoring_uses_100_and_softmax_whatever_the_model():
    ctx = rated_context(LOW, logit_scale=10.0, logit_bias=-5.0, rule="sigmoid")
    result = evaluate_zeroshot(align(scoring="study"), ctx)
    logits = 100.0 * np.stack([cosines(ctx, LOW), cosines(ctx, HIGH)], axis=1)
    np.testing.assert_allclose(result.predictions["score"], softmax(logits, axis=1)[:, 1], rtol=1e-6)
    assert result.options["scoring"] == "study" and result.options["probability_rule"] == "softmax"


def test_a_fixed_logit_scale_option_replaces_only_the_scale():
    encoder = KnownAnswerEncoder({}, pair_vector(LOW), logit_scale=10.0, logit_bias=-5.0, rule="sigmoid")
    scoring = resolve_scoring(align(logit_scale=3.0).options, encoder)
    assert (scoring.logit_scale, scoring.logit_bias, scoring.rule) == (3.0, -5.0, "sigmoid")
    assert "option logit_scale" in scoring.source


def test_an_encoder_without_scoring_is_scored_as_the_study_and_says_so():
    class Bare:
        pass

    scoring = encoder_scoring(Bare())
    assert (scoring.logit_scale, scoring.logit_bias, scoring.rule) == (100.0, None, "softmax")
    assert "reports no scale" in scoring.source


def zeroshot_run(rule: str, scale: float, bias: float | None, scoring: str = "model"):
    space = label_space(dict.fromkeys(("food", "animals", "death"), 12))
    rng = np.random.default_rng(5)
    features = np.stack([one_hot(int(y), 3) for y in space.y_true]) + 0.6 * rng.standard_normal((36, 3))
    features = (features / np.linalg.norm(features, axis=1, keepdims=True)).astype(np.float32)
    prompts = study_prompts(space)
    owner = {p: i for i, group in enumerate(prompts.prompts) for p in group}
    encoder = KnownAnswerEncoder({}, lambda t: one_hot(owner[t], 3), logit_scale=scale, logit_bias=bias, rule=rule)

    class Ctx:
        seed = 0

        def label_space(self, scenario):
            return space

        def features_for(self, _):
            return features

    Ctx.encoder = encoder
    result = zeroshot.evaluate(Scenario("zs", "category", "zeroshot", {"scoring": scoring}), Ctx())
    cos = features.astype(np.float64) @ zeroshot.class_embeddings(encoder, prompts).T.astype(np.float64)
    return result, cos


def test_sigmoid_model_zero_shot_confidence_is_the_winners_sigmoid():
    result, cos = zeroshot_run("sigmoid", 10.0, -4.0)
    expected = expit(10.0 * cos - 4.0)
    np.testing.assert_allclose(result.predictions["confidence"], expected.max(axis=1), rtol=1e-5)
    probs = result.probabilities.pivot(index="stimulus", columns="class", values="probability")
    assert not np.allclose(probs.sum(axis=1), 1.0)  # per-class yes/no: no reason to sum to 1
    assert result.options["probability_rule"] == "sigmoid" and result.options["logit_bias"] == -4.0


def test_softmax_model_zero_shot_confidence_uses_its_scale_and_study_scoring_uses_100():
    own, cos = zeroshot_run("softmax", 14.3, None)
    np.testing.assert_allclose(own.predictions["confidence"], softmax(14.3 * cos, axis=1).max(axis=1), rtol=1e-5)
    study, _ = zeroshot_run("softmax", 14.3, None, scoring="study")
    np.testing.assert_allclose(study.predictions["confidence"], softmax(100 * cos, axis=1).max(axis=1), rtol=1e-5)
    assert own.predictions["y_pred"].tolist() == study.predictions["y_pred"].tolist()
    assert (own.options["logit_scale"], study.options["logit_scale"]) == (14.3, 100.0)


# ---------------------------------------------------------------- read from open_clip models

@pytest.fixture(scope="module")
def tiny_models():
    import open_clip
    import torch

    from dirti_bench.encoding.models import register_model_configs

    register_model_configs()
    torch.manual_seed(0)
    clip = open_clip.create_model("dirti-tiny")
    siglip = open_clip.create_model("dirti-tiny", init_logit_scale=np.log(10.0), init_logit_bias=-10.0)
    return clip, siglip


def test_scale_and_rule_are_read_from_the_model(tiny_models):
    from dirti_bench.encoding.models import model_scoring

    clip, siglip = tiny_models
    got = model_scoring(clip)
    assert got["rule"] == "softmax" and got["logit_bias"] is None
    assert got["logit_scale"] == pytest.approx(1 / 0.07, rel=1e-5)  # open_clip's initial CLIP temperature
    got = model_scoring(siglip)
    assert got["rule"] == "sigmoid"
    assert got["logit_scale"] == pytest.approx(10.0, rel=1e-5) and got["logit_bias"] == pytest.approx(-10.0)


def test_a_run_of_cache_hits_reports_the_scoring_without_building_the_model(tmp_path):
    from dirti_bench.encoding.models import ClipEncoder

    first = CachedEncoder(ClipEncoder("dirti-tiny", "random", device="cpu", progress=False), tmp_path)
    first.encode_texts(["a photo"])
    assert first.scoring()["logit_scale"] == pytest.approx(1 / 0.07, rel=1e-5)
    warm = CachedEncoder(ClipEncoder("dirti-tiny", "random", device="cpu", progress=False), tmp_path)
    warm.encode_texts(["a photo"])
    assert warm.scoring() == first.scoring() and warm.encoder._model is None
    assert warm.run_info()["scoring"] == first.scoring()
