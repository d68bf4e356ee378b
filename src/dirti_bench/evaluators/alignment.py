"""Alignment with continuous human ratings: does the model's sense of "disgusting"
(or fear, valence, arousal) track people's mean ratings?

* ``evaluate_zeroshot``: a per-image score from a pair of prompt sets (high vs
  low end of the rating), correlated with the mean rating overall and within
  each category.
* ``evaluate_probe``: ridge regression from image features to the rating in
  repeated stratified k-fold CV, its penalty chosen inside each training fold
  (``penalty.py``); out-of-fold R², Pearson's r, Spearman's rho and RMSE, the
  out-of-fold R² of the intercept-only model on the same folds, and r and rho
  over their noise ceilings, as published alignment results report them.

Both write one row per stimulus (per CV repeat for the probe) with the mean
human ``rating`` and the model's ``score``, so every number is recomputable
from alignment_predictions.csv with scipy/scikit-learn.

scipy and scikit-learn load when a scenario runs, so importing the evaluators stays cheap.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..contracts import (
    DEFAULT_N_RATERS,
    TUNED,
    AlignmentOptions,
    ModelScoring,
    ScenarioResult,
    resolve_scoring,
)
from ..errors import ScenarioNotRunnable, UserError
from ..prompts import PromptSet, resolve_pair
from ..results import ALIGNMENT_COLUMNS, PEARSON_R, SPEARMAN_RHO
from .common import map_folds
from .penalty import RIDGE_ALPHAS, fit_tuned_ridge, fixed_penalty, penalty_summary
from .rating_stats import (
    correlations,
    intercept_only_comparison,
    over_ceiling,
    regression_metrics,
    split_half_ceiling,
    within_category,
    within_category_points,
)
from .zeroshot import class_embeddings, zero_shot_logits

N_RATERS_SOURCE = (f"assumed default ({DEFAULT_N_RATERS}), not taken from the DIRTI paper; "
                   "set option n_raters")


# ---------------------------------------------------------------- shared pieces

def _rated(ctx, scenario) -> tuple[str, np.ndarray, np.ndarray, list[str], list[str]]:
    """Rating column, rows of the stimuli that carry it, their ratings, ids and categories."""
    stimuli = ctx.stimuli
    rating = ctx.rated_column(scenario)
    rows = np.array([i for i, s in enumerate(stimuli.stimuli) if rating in s.ratings], dtype=int)
    if rows.size < 3:
        raise ScenarioNotRunnable(f"only {rows.size} stimuli of {stimuli.name} have a {rating!r} rating; "
                                  "alignment needs at least 3")
    chosen = [stimuli.stimuli[i] for i in rows]
    y = np.array([s.ratings[rating] for s in chosen], dtype=float)
    if np.ptp(y) == 0:  # no correlation is defined with a constant: say so rather than let scipy warn
        raise ScenarioNotRunnable(f"undefined: constant ratings (every {rating!r} rating of {stimuli.name} is "
                                  f"{y[0]:g}); a correlation needs ratings that vary")
    return rating, rows, y, [s.id for s in chosen], [s.category for s in chosen]


def _sd_column(stimuli, rating: str, opts: AlignmentOptions) -> str | None:
    """The per-image SD column: the option, else DIRTI's naming (``disg_mean_all`` -> ``disg_SD_all``)."""
    if opts.sd_column:
        return opts.sd_column
    guess = re.sub(r"mean", "SD", rating, flags=re.IGNORECASE)
    return guess if guess != rating and guess in stimuli.rating_columns else None


def _ceiling(ctx, scenario, rating: str, chosen_ids: list[str], seed: int) -> tuple[dict, dict, dict, dict]:
    """Noise-ceiling metrics, CI, options and a note; empty when the set gives no SDs."""
    opts = scenario.options
    sd_col = _sd_column(ctx.stimuli, rating, opts)
    n_raters = opts.n_raters
    options = {"n_raters": n_raters, "sd_column": sd_col,
               "n_raters_source": opts.n_raters_source or (
                   N_RATERS_SOURCE if n_raters == DEFAULT_N_RATERS else "scenario option")}
    if sd_col is None:
        return {}, {}, options, {"noise_ceiling": f"not estimated: no per-image SD column for {rating}"}
    by_id = {s.id: s for s in ctx.stimuli.stimuli}
    if sd_col not in ctx.stimuli.rating_columns or any(sd_col not in by_id[i].ratings for i in chosen_ids):
        raise UserError(f"SD column {sd_col!r} is missing for some stimuli of {ctx.stimuli.name}; "
                        "fill it in or drop the sd_column option")
    means = [by_id[i].ratings[rating] for i in chosen_ids]
    sds = [by_id[i].ratings[sd_col] for i in chosen_ids]
    sims = opts.ceiling_sims
    metrics, ci = split_half_ceiling(means, sds, n_raters, sims, seed)
    return metrics, ci, {**options, "ceiling_sims": sims}, {}


def _predictions(scenario_id: str, ids, categories, rating, score, repeats=None, folds=None) -> pd.DataFrame:
    """alignment_predictions.csv rows; ``repeats``/``folds`` None (zero-shot) leave the cells empty."""
    n = len(ids)
    return pd.DataFrame({"scenario": scenario_id, "stimulus": list(ids), "category": list(categories),
                         "rating": np.asarray(rating, dtype=float), "score": np.asarray(score, dtype=float),
                         "repeat": [None] * n if repeats is None else [int(r) for r in repeats],
                         "fold": [None] * n if folds is None else [int(f) for f in folds]})[ALIGNMENT_COLUMNS]


def _result(scenario, ctx, n, metrics, ci, options, extra, predictions) -> ScenarioResult:
    return ScenarioResult(id=scenario.id, task="alignment", labels=list(ctx.stimuli.categories), n=int(n),
                          metrics={k: float(v) for k, v in metrics.items()}, options=options, ci=ci,
                          extra=extra, predictions=predictions)


# ---------------------------------------------------------------- zero-shot

def pair_prompts(high, low) -> PromptSet:
    """The high and low prompts as a two-class prompt set (low first: the score is of "high")."""
    return PromptSet("pair", ("low", "high"), (tuple(low), tuple(high)))


def zeroshot_texts(scenario, ctx) -> list[list[str]]:
    """What ``evaluate_zeroshot`` encodes: the prompt pair, in one call."""
    _, high, low = resolve_pair(scenario.options.prompt_pair)
    return [list(pair_prompts(high, low).all_prompts())]


def zeroshot_scores(image_features: np.ndarray, encoder, high, low, rule: str,
                    scoring: ModelScoring) -> tuple[np.ndarray, dict | None]:
    """Per-image score and, where the model's rule offers one, an alternative score with its name.

    ``probability``: the model's own probability that the image is "high": for a contrastive
    (softmax) model the 2-way softmax P(high) at its scale (a bias cancels); for a sigmoid-trained
    model sigmoid(scale * cos(high) + bias), which never looks at the low prompt, with
    P(high) - P(low) as the recorded alternative. ``softmax``: the 2-way softmax whatever the model.
    ``cosine-diff``: cos(high) - cos(low). The softmax orders images as the cosine difference does
    until it saturates at 1.0 or 0.0 and ties images; Pearson's r differs.
    """
    from scipy.special import expit, softmax

    embs = class_embeddings(encoder, pair_prompts(high, low))
    cos = zero_shot_logits(image_features, embs, 1.0).astype(np.float64)
    if rule == "cosine-diff":
        return cos[:, 1] - cos[:, 0], None
    logits = scoring.logit_scale * cos
    if rule == "probability" and scoring.rule == "sigmoid":
        p = expit(logits + (scoring.logit_bias or 0.0))
        return p[:, 1], {"score": "sigmoid-difference", "what": "P(high) - P(low), each a sigmoid", "values": p[:, 1] - p[:, 0]}
    # float64 delays saturation at P = 1.0 (ties) for strongly separated images.
    return softmax(logits, axis=1)[:, 1], None


def _alternative(y: np.ndarray, alternative: dict | None) -> dict:
    """The alternative score's correlations with the rating (point estimates, no interval drawn)."""
    if alternative is None:
        return {}
    from scipy.stats import pearsonr, spearmanr

    values = alternative["values"]
    return {"alternative_score": {"score": alternative["score"], "what": alternative["what"],
                                  PEARSON_R: float(pearsonr(y, values)[0]),
                                  SPEARMAN_RHO: float(spearmanr(y, values)[0]),
                                  "interval": "none drawn: a point estimate beside the headline score"}}


def evaluate_zeroshot(scenario, ctx) -> ScenarioResult:
    opts = scenario.options
    rating, rows, y, ids, cats = _rated(ctx, scenario)
    pair_name, high, low = resolve_pair(opts.prompt_pair)
    rule, n_boot, n_perm = opts.score, opts.n_boot, opts.n_perm
    scoring = resolve_scoring(opts, ctx.encoder)
    score, alternative = zeroshot_scores(ctx.image_features[rows], ctx.encoder, high, low, rule, scoring)

    metrics, ci = correlations(y, score, n_boot, n_perm, ctx.seed)
    per_cat, within, within_ci = within_category(y, score, cats, n_boot, n_perm, ctx.seed)
    ceiling, ceiling_ci, ceiling_opts, note = _ceiling(ctx, scenario, rating, ids, ctx.seed)
    metrics |= within | ceiling | over_ceiling(metrics, ceiling)
    options = {**opts.to_dict(), "rating": rating, "prompt_pair": pair_name, "prompts_high": list(high),
               "prompts_low": list(low), "score": rule, **scoring.to_dict(), "n_boot": n_boot,
               "n_perm": n_perm, **ceiling_opts}
    extra = {"within_category": per_cat, **note, **_alternative(y, alternative)}
    result = _result(scenario, ctx, len(y), metrics, ci | within_ci | ceiling_ci, options, extra,
                     _predictions(scenario.id, ids, cats, y, score))
    result.prompts = tuple([("high", p) for p in high] + [("low", p) for p in low])
    return result


# ---------------------------------------------------------------- probe

def check_strata(groups) -> int:
    """The smallest category's size, or ScenarioNotRunnable where one has a single rated stimulus."""
    names, counts = np.unique(np.asarray(groups, dtype=object), return_counts=True)
    if counts.min() < 2:
        raise ScenarioNotRunnable(f"category {str(names[counts.argmin()])!r} has only 1 rated stimulus; the "
                                  "probe's folds are stratified by category and need at least 2 per category")
    return int(counts.min())


def check_zeroshot_runnable(scenario, ctx) -> None:
    _rated(ctx, scenario)


def check_probe_runnable(scenario, ctx) -> None:
    check_strata(_rated(ctx, scenario)[4])


def cv_predictions(X: np.ndarray, y: np.ndarray, groups, folds: int, repeats: int, seed: int,
                   alpha: float | str = TUNED) -> tuple[np.ndarray, np.ndarray, int, list[dict]]:
    """Out-of-fold ridge predictions, one row per repeat, stratified by ``groups``; the fold of
    every prediction; the number of folds used; and, for a tuned ``alpha``, the penalty each
    fold chose on its training part alone (repeat by repeat, fold by fold).

    Folds are reduced to the smallest category's size (stated in the result)
    so every fold holds every category.
    """
    from sklearn.model_selection import RepeatedStratifiedKFold

    used = min(folds, check_strata(groups))
    cv = RepeatedStratifiedKFold(n_splits=used, n_repeats=repeats, random_state=seed)
    oof = np.full((repeats, len(y)), np.nan)
    fold_of = np.zeros((repeats, len(y)), dtype=int)
    splits = list(cv.split(X, groups))
    # Tuned folds may run in worker processes (DIRTI_BENCH_JOBS); each is independent: same numbers.
    fits = (map_folds(_ridge_fold, [(X, y, train, test, alpha, seed) for train, test in splits], rows=len(y))
            if alpha == TUNED
            else [_ridge_fold(X, y, train, test, alpha) for train, test in splits])
    selections = [selection for _, selection in fits if selection is not None]
    for i, ((_, test), (predicted, _)) in enumerate(zip(splits, fits, strict=True)):
        repeat, fold = divmod(i, used)
        oof[repeat, test] = predicted
        fold_of[repeat, test] = fold
    return oof, fold_of, used, selections


def _ridge_fold(X, y, train, test, alpha, seed: int = 0):
    """One outer fold: the ridge fitted on its training part (alpha tuned there, or fixed), its
    predictions for the test part and, when tuned, the selection record (``seed``: of the subsample
    that chooses alpha on a large training part)."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if alpha == TUNED:
        model, selection = fit_tuned_ridge(X[train], y[train], seed=seed)
    else:
        model, selection = make_pipeline(StandardScaler(), Ridge(alpha=alpha)).fit(X[train], y[train]), None
    return model.predict(X[test]), selection


def evaluate_probe(scenario, ctx) -> ScenarioResult:
    opts = scenario.options
    rating, rows, y, ids, cats = _rated(ctx, scenario)
    folds, repeats, seed, alpha, n_boot = opts.folds, opts.repeats, opts.split_seed, opts.alpha, opts.n_boot
    oof, fold_of, used, selections = cv_predictions(ctx.image_features[rows], y, cats, folds, repeats, seed, alpha)

    metrics, ci = regression_metrics(y, oof, n_boot, ctx.seed)
    versus_mean, versus_mean_ci = intercept_only_comparison(y, oof, fold_of, n_boot, ctx.seed)
    metrics |= versus_mean
    ci |= versus_mean_ci
    per_cat, within = within_category_points(y, oof, cats)
    metrics |= within
    ceiling, ceiling_ci, ceiling_opts, note = _ceiling(ctx, scenario, rating, ids, ctx.seed)
    metrics |= ceiling | over_ceiling(metrics, ceiling)
    if alpha == TUNED:
        penalty = penalty_summary("alpha", selections, [{"repeat": r, "fold": f} for r in range(repeats)
                                                            for f in range(used)])
        alpha_opts = {"alpha": TUNED, "alpha_grid_initial": [min(RIDGE_ALPHAS), max(RIDGE_ALPHAS)]}
    else:
        penalty, alpha_opts = fixed_penalty("alpha", alpha), {"alpha": alpha}
    options = {**opts.to_dict(), "rating": rating, "folds": folds, "folds_used": used, "repeats": repeats,
               "split_seed": seed, **alpha_opts, "n_boot": n_boot, "model": "StandardScaler + Ridge",
               "stratify": "category", **ceiling_opts}
    extra = {"within_category": per_cat, "penalty": penalty, **note}
    if used < folds:
        extra["folds_note"] = f"reduced from {folds} to {used} folds: the smallest category has {used} stimuli"
    predictions = _predictions(scenario.id, ids * repeats, cats * repeats, np.tile(y, repeats), oof.ravel(),
                               np.repeat(np.arange(repeats), len(y)), fold_of.ravel())
    return _result(scenario, ctx, len(y), metrics, ci | ceiling_ci, options, extra, predictions)
