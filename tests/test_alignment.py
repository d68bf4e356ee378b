"""Alignment scenarios: constructed sets whose model score is a known function of
the human rating, so the right correlation is known in advance."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import r2_score, root_mean_squared_error

from dirti_bench.contracts import EvalContext, Scenario
from dirti_bench.data.stimuli import StimulusSet
from dirti_bench.errors import ScenarioNotRunnable, UserError
from dirti_bench.evaluators.alignment import N_RATERS_SOURCE, evaluate_probe, evaluate_zeroshot
from dirti_bench.evaluators.rating_stats import split_half_ceiling
from dirti_bench.pipeline import evaluate_scenario
from dirti_bench.prompts import resolve_pair
from dirti_bench.scenarios import REGISTRY, alignment_scenarios, rating_short_name
from helpers import stimulus_set
from known_answer import KnownAnswerEncoder

CATS = ("a", "b", "c")
HIGH, LOW = np.array([0.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0])


def text_vector(text: str) -> np.ndarray:
    """'disgusting' prompts point at the HIGH axis, every other prompt at LOW."""
    return HIGH if "disgusting" in text else LOW


def make_set(ratings, categories, sds=None) -> StimulusSet:
    values = [{"disg_mean_all": float(r), **({"disg_SD_all": float(sds[i])} if sds is not None else {})}
              for i, r in enumerate(ratings)]
    return stimulus_set(list(categories), values, CATS)


def angle_features(score) -> np.ndarray:
    """Unit vectors between LOW and HIGH whose angle grows with ``score``; small angles keep the
    100-scaled softmax away from saturation, so P(high) is strictly monotone in ``score``."""
    score = np.asarray(score, float)
    a = np.pi / 4 + 0.05 * (score - score.mean()) / np.ptp(score)
    return np.stack([np.cos(a), np.sin(a), np.zeros_like(a)], axis=1).astype(np.float32)


def context(stimuli, features, seed=0) -> EvalContext:
    encoder = KnownAnswerEncoder({s.file_name: f for s, f in zip(stimuli, features, strict=True)}, text_vector)
    return EvalContext(stimuli=stimuli, encoder=encoder, image_features=features, seed=seed)


def zeroshot(**options) -> Scenario:
    return replace(REGISTRY["align-disgust-zeroshot"].with_options(**options), id="align-test-zeroshot")


def probe(**options) -> Scenario:
    return replace(REGISTRY["align-disgust-probe"].with_options(**{"n_boot": 200, **options}), id="align-test-probe")


@pytest.fixture
def rated():
    rng = np.random.default_rng(7)
    ratings = rng.uniform(1, 9, 45)
    return ratings, np.repeat(CATS, 15), rng.uniform(0.5, 2.0, 45)


@pytest.mark.parametrize("rule", ["softmax", "cosine-diff"])
def test_monotone_score_recovers_rho_one(rated, rule):
    ratings, cats, sds = rated
    stimuli = make_set(ratings, cats, sds)
    res = evaluate_zeroshot(zeroshot(score=rule, n_boot=300, n_perm=300), context(stimuli, angle_features(ratings)))
    assert res.metrics["spearman_rho"] == pytest.approx(1.0)
    assert res.ci["spearman_rho"] == pytest.approx([1.0, 1.0])
    assert res.metrics["spearman_p_perm"] <= 2 / 301
    assert res.metrics["mean_within_category_spearman_rho"] == pytest.approx(1.0)
    pred = res.predictions
    assert list(pred.columns) == ["scenario", "stimulus", "category", "rating", "score", "repeat", "fold"]
    assert pred["fold"].isna().all() and pred["repeat"].isna().all() and len(pred) == res.n == 45
    assert pred["category"].tolist() == list(cats)
    # Every metric is recomputable from the predictions table.
    assert res.metrics["pearson_r"] == pytest.approx(stats.pearsonr(pred.rating, pred.score).statistic)
    assert stats.spearmanr(pred.rating, pred.score).statistic == pytest.approx(1.0)
    np.testing.assert_allclose(pred.rating, ratings)
    assert res.task == "alignment" and res.labels == list(CATS) and res.per_class == {} and res.confusion == []
    assert res.options["score"] == rule and res.options["prompts_high"] == ["This is a disgusting photo"]


def test_shuffled_ratings_give_no_correlation(rated):
    ratings, cats, sds = rated
    shuffled = np.random.default_rng(3).permutation(ratings)
    res = evaluate_zeroshot(zeroshot(score="cosine-diff"), context(make_set(ratings, cats, sds),
                                                                   angle_features(shuffled)))
    assert res.metrics["spearman_rho"] == pytest.approx(stats.spearmanr(ratings, shuffled).statistic)
    lo, hi = res.ci["spearman_rho"]
    assert lo < 0 < hi
    assert res.metrics["spearman_p_perm"] > 0.05


def test_category_differences_alone_show_up_only_overall():
    # Scores follow the category means but run *against* the ratings inside each category.
    base = {"a": 2.0, "b": 5.0, "c": 8.0}
    cats = np.repeat(CATS, 10)
    within = np.tile(np.linspace(-1, 1, 10), 3)
    ratings = np.array([base[c] for c in cats]) + within
    score = np.array([base[c] for c in cats]) * 10 - within
    res = evaluate_zeroshot(zeroshot(score="cosine-diff", n_boot=200, n_perm=200),
                            context(make_set(ratings, cats), angle_features(score)))
    assert res.metrics["spearman_rho"] > 0.7
    assert res.metrics["mean_within_category_spearman_rho"] == pytest.approx(-1.0)
    assert all(res.extra["within_category"][c]["spearman_rho"] == pytest.approx(-1.0) for c in CATS)
    assert res.ci["mean_within_category_spearman_rho"][1] < 0


def test_noise_ceiling_rises_with_raters_and_is_one_without_noise(rated):
    ratings, _, sds = rated
    ceilings = [split_half_ceiling(ratings, sds, n, 500, seed=0)[0]["noise_ceiling_spearman"] for n in (4, 20, 200)]
    assert ceilings[0] < ceilings[1] < ceilings[2] <= 1.0
    exact, _ = split_half_ceiling(ratings, np.zeros_like(ratings), 30, 50, seed=0)
    assert exact["noise_ceiling_spearman"] == pytest.approx(1.0)
    # Huge SDs relative to the spread of the means leave almost nothing to explain.
    noisy, _ = split_half_ceiling(ratings, np.full_like(ratings, 200.0), 30, 500, seed=0)
    assert noisy["noise_ceiling_spearman"] < 0.5


def test_ceiling_reported_next_to_rho_with_its_assumptions(rated):
    ratings, cats, sds = rated
    ctx = context(make_set(ratings, cats, sds), angle_features(ratings))
    res = evaluate_zeroshot(zeroshot(n_boot=100, n_perm=100), ctx)
    assert 0 < res.metrics["noise_ceiling_spearman"] <= 1
    assert res.metrics["spearman_rho_over_ceiling"] == pytest.approx(
        res.metrics["spearman_rho"] / res.metrics["noise_ceiling_spearman"])
    assert res.options["n_raters"] == 30 and res.options["n_raters_source"] == N_RATERS_SOURCE
    assert res.options["sd_column"] == "disg_SD_all"
    more = evaluate_zeroshot(zeroshot(n_boot=100, n_perm=100, n_raters=300), ctx)
    assert more.metrics["noise_ceiling_spearman"] > res.metrics["noise_ceiling_spearman"]
    assert more.options["n_raters_source"] == "scenario option"
    no_sd = evaluate_zeroshot(zeroshot(n_boot=100, n_perm=100), context(make_set(ratings, cats), angle_features(ratings)))
    assert "noise_ceiling_spearman" not in no_sd.metrics and "noise_ceiling" in no_sd.extra


def test_same_seed_same_numbers(rated):
    ratings, cats, sds = rated
    noisy = ratings + np.random.default_rng(1).normal(0, 2, ratings.size)
    stimuli, feats = make_set(ratings, cats, sds), angle_features(noisy)
    first = evaluate_zeroshot(zeroshot(n_boot=200, n_perm=200), context(stimuli, feats, seed=5))
    again = evaluate_zeroshot(zeroshot(n_boot=200, n_perm=200), context(stimuli, feats, seed=5))
    other = evaluate_zeroshot(zeroshot(n_boot=200, n_perm=200), context(stimuli, feats, seed=6))
    assert first.metrics == again.metrics and first.ci == again.ci
    assert first.ci != other.ci and first.metrics["spearman_rho"] == other.metrics["spearman_rho"]


def linear_features(ratings, noise_dims=5, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([ratings, rng.normal(size=(len(ratings), noise_dims))]).astype(np.float32)


def test_probe_recovers_linear_relation_and_is_recomputable(rated):
    ratings, cats, sds = rated
    res = evaluate_probe(probe(folds=5, repeats=2), context(make_set(ratings, cats, sds), linear_features(ratings)))
    assert res.metrics["r2"] > 0.95 and res.metrics["spearman_rho"] > 0.95
    pred = res.predictions
    assert len(pred) == 2 * 45 and set(pred.repeat) == {0, 1} and set(pred.fold) == set(range(5))
    by_repeat = [g for _, g in pred.groupby("repeat")]
    assert res.metrics["r2"] == pytest.approx(np.mean([r2_score(g.rating, g.score) for g in by_repeat]))
    assert res.metrics["rmse"] == pytest.approx(np.mean([root_mean_squared_error(g.rating, g.score) for g in by_repeat]))
    assert res.metrics["spearman_rho"] == pytest.approx(
        np.mean([stats.spearmanr(g.rating, g.score).statistic for g in by_repeat]))
    lo, hi = res.ci["r2"]
    assert lo <= res.metrics["r2"] <= hi
    assert res.options["folds_used"] == 5 and "folds_note" not in res.extra


def test_probe_on_unrelated_features_explains_nothing(rated):
    ratings, cats, _ = rated
    shuffled = np.random.default_rng(3).permutation(ratings)
    res = evaluate_probe(probe(folds=5, repeats=2), context(make_set(ratings, cats), linear_features(shuffled)))
    assert res.metrics["r2"] < 0.1


def test_probe_reduces_folds_for_a_small_category():
    ratings = np.linspace(1, 9, 24)
    cats = np.array(["a"] * 10 + ["b"] * 10 + ["c"] * 4)
    res = evaluate_probe(probe(folds=10, repeats=1), context(make_set(ratings, cats), linear_features(ratings)))
    assert res.options["folds_used"] == 4 and "4" in res.extra["folds_note"]
    assert sorted(res.predictions.fold.unique()) == [0, 1, 2, 3] and set(res.predictions.repeat) == {0}


def test_probe_refuses_a_single_member_category():
    ratings = np.linspace(1, 9, 11)
    cats = np.array(["a"] * 5 + ["b"] * 5 + ["c"])
    with pytest.raises(ScenarioNotRunnable, match="'c' has only 1"):  # a run skips it, saying why
        evaluate_probe(probe(), context(make_set(ratings, cats), linear_features(ratings)))


@pytest.mark.parametrize("options, message", [
    ({"score": "argmax"}, "score='argmax' must be one of 'probability', 'softmax', 'cosine-diff'"),
    ({"prompt_pair": "nope"}, "unknown prompt pair"),
    ({"prompt_pair": {"high": []}}, "'high' must be"),
    ({"n_raters": 1}, "n_raters"),
    ({"rating": "fear_mean_all"}, "constructed has no rating column 'fear_mean_all'"),
])
def test_bad_options_are_user_errors(rated, options, message):
    ratings, cats, sds = rated
    with pytest.raises(UserError, match=message) as err:
        evaluate_zeroshot(zeroshot(n_boot=10, n_perm=10, **options),
                          context(make_set(ratings, cats, sds), angle_features(ratings)))
    assert "\n" not in str(err.value)


def test_alignment_scenarios_per_rating_column():
    assert [s.id for s in alignment_scenarios("disg_mean_all")] == ["align-disgust-zeroshot", "align-disgust-probe"]
    fear = alignment_scenarios("fear_mean_all")
    assert [s.id for s in fear] == ["align-fear-zeroshot", "align-fear-probe"]
    assert fear[0].options.prompt_pair == "fear" and all(s.options.rating == "fear_mean_all" for s in fear)
    assert [s.id for s in alignment_scenarios("disg_mean_women")][0] == "align-disgust-women-zeroshot"
    # An arbitrary column gets a neutral high/low pair, unless a pair is given.
    neutral = alignment_scenarios("Dominance Mean")
    assert [s.id for s in neutral] == ["align-dominance-mean-zeroshot", "align-dominance-mean-probe"]
    assert resolve_pair(neutral[0].options.prompt_pair) == (
        "neutral", ("This is a photo high in dominance mean",), ("This is a photo low in dominance mean",))
    custom = alignment_scenarios("Dominance Mean", prompt_pair={"high": ["a dominant scene"], "low": ["a scene"]})
    assert custom[0].id == "align-dominance-mean-zeroshot"
    with pytest.raises(UserError, match="unknown prompt pair"):
        alignment_scenarios("disg_mean_all", prompt_pair="nope")
    assert rating_short_name("val_mean_all") == "valence"
    for sc in alignment_scenarios("disg_mean_all"):
        assert REGISTRY[sc.id] == sc


def test_both_registry_scenarios_on_the_demo_set(demo_stimuli):
    ratings = demo_stimuli.ratings("disg_mean_all")
    features = angle_features(ratings + np.random.default_rng(0).normal(0, 1, ratings.size))
    ctx = context(demo_stimuli, features)
    expected = stats.spearmanr(ratings, features[:, 1] - features[:, 0]).statistic
    zs = evaluate_scenario(REGISTRY["align-disgust-zeroshot"], ctx)
    assert zs.n == 60 and zs.labels == list(demo_stimuli.categories)
    assert zs.metrics["spearman_rho"] == pytest.approx(expected, abs=1e-6)
    assert 0 < zs.metrics["noise_ceiling_spearman"] <= 1
    assert set(zs.extra["within_category"]) == set(demo_stimuli.categories)
    pr = evaluate_scenario(REGISTRY["align-disgust-probe"], ctx)
    assert len(pr.predictions) == 60 * pr.options["repeats"] and set(pr.ci) >= {"r2", "spearman_rho", "rmse"}


def test_ensemble_prompt_pair_averages_filled_templates(rated):
    ratings, cats, _ = rated
    res = evaluate_zeroshot(zeroshot(prompt_pair="affect", score="cosine-diff", n_boot=50, n_perm=50),
                            context(make_set(ratings, cats), angle_features(ratings)))
    assert res.options["prompt_pair"] == "affect" and len(res.options["prompts_high"]) > 1
    assert all("something disgusting" in p for p in res.options["prompts_high"])
    assert res.metrics["spearman_rho"] == pytest.approx(1.0)


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_resampling_in_blocks_gives_the_same_numbers_as_all_draws_at_once(monkeypatch):
    """Bounded memory at any n: bootstrap, permutation and ceiling draws are made and scored in
    blocks, and the blocks change no number (the random streams continue across blocks)."""
    from dirti_bench.evaluators import rating_stats as rs

    rng = np.random.default_rng(7)
    n = 120
    y = rng.uniform(1, 9, n).round(1)
    oof = y + rng.normal(0, 2, (3, n))
    folds = rng.integers(0, 10, (3, n))
    sds = rng.uniform(0.5, 2, n)

    def everything():
        return (rs.correlations(y, oof[0], 200, 150, 1), rs.regression_metrics(y, oof, 200, 2),
                rs.intercept_only_comparison(y, oof, folds, 200, 3), rs.split_half_ceiling(y, sds, 20, 150, 4))

    whole = everything()  # default budget: every draw in one block at this n
    assert rs.draw_block(n, 8) >= 200
    monkeypatch.setattr(rs, "BLOCK_ELEMENTS", 1)  # the smallest blocks there are
    assert rs.draw_block(n, 8) == 1
    assert everything() == whole
