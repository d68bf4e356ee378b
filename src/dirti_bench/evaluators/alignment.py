"""Alignment with continuous human ratings: does the model's sense of "disgusting"
(or fear, valence, arousal) track people's mean ratings?

* ``evaluate_zeroshot``: a per-image score from a pair of prompt sets (high vs
  low end of the rating), correlated with the mean rating overall and within
  each category.
* ``evaluate_probe``: ridge regression from image features to the rating in
  repeated stratified k-fold CV; out-of-fold R², Spearman's rho and RMSE.

Both write one prediction row per stimulus (per CV repeat for the probe) with
the human rating as ``y_true`` and the model score as ``y_pred``, so every
number is recomputable from predictions.csv with scipy/scikit-learn.

The scipy/sklearn/torch machinery is imported when a scenario runs, not when
the registry imports this module for ``alignment_scenarios``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..errors import UserError
from ..results import PREDICTION_COLUMNS, ScenarioResult

# Raters per image behind the DIRTI means. The value used in the DIRTI paper was not
# verified here; 30 is an assumed default and every result records it (option n_raters).
DEFAULT_N_RATERS = 30
N_RATERS_SOURCE = "assumed default (30), not taken from the DIRTI paper; set option n_raters"
DEFAULT_CEILING_SIMS = 1000
SCORE_RULES = ("softmax", "cosine-diff")

# DIRTI's rating columns -> short names used in scenario ids.
RATING_SHORT_NAMES = {
    "disg_mean_all": "disgust", "disg_mean_women": "disgust-women", "disg_mean_men": "disgust-men",
    "fear_mean_all": "fear", "val_mean_all": "valence", "aro_mean_all": "arousal",
}
# Prompt pairs: "high" describes the top of the rating scale, "low" its bottom.
PROMPT_PAIRS: dict[str, dict[str, tuple[str, ...]]] = {
    # The study's own wording, plain vs disgusting (single spaces).
    "study": {"high": ("This is a disgusting photo",), "low": ("This is a photo",)},
    "disgust-neutral": {"high": ("a photo of something disgusting.",), "low": ("a photo of something neutral.",)},
    "fear": {"high": ("This is a frightening photo",), "low": ("This is a photo",)},
    "valence": {"high": ("This is a pleasant photo",), "low": ("This is an unpleasant photo",)},
    "arousal": {"high": ("This is an exciting photo",), "low": ("This is a calm photo",)},
}
# Pairs built by filling a shipped template ensemble with two phrases.
ENSEMBLE_PAIRS = {"affect": ("affect", "something disgusting", "something neutral")}
DEFAULT_PAIR = {"disgust": "study", "fear": "fear", "valence": "valence", "arousal": "arousal"}


def rating_short_name(column: str) -> str:
    """``disg_mean_all`` -> ``disgust``; other columns -> a lower-case slug (``Fear Mean`` -> ``fear-mean``)."""
    if column in RATING_SHORT_NAMES:
        return RATING_SHORT_NAMES[column]
    slug = re.sub(r"[^a-z0-9]+", "-", column.lower()).strip("-")
    if not slug:
        raise UserError(f"rating column {column!r} has no letters or digits to name a scenario; rename it")
    return slug


def default_prompt_pair(column: str) -> str | None:
    return DEFAULT_PAIR.get(rating_short_name(column).split("-")[0])


def alignment_scenarios(rating_column: str, prompt_pair: str | Mapping | None = None,
                        n_raters: int = DEFAULT_N_RATERS, sd_column: str | None = None) -> list:
    """``align-<short>-zeroshot`` and ``align-<short>-probe`` for one rating column.

    ``prompt_pair`` defaults to the pair for the rating's kind (disgust, fear,
    valence, arousal); other ratings need one (a name from ``PROMPT_PAIRS`` or
    ``{"high": [...], "low": [...]}``), else only the probe scenario is made.
    """
    from ..scenarios import Scenario  # the registry imports this module: avoid the cycle

    short = rating_short_name(rating_column)
    pair = prompt_pair if prompt_pair is not None else default_prompt_pair(rating_column)
    ceiling = {"n_raters": n_raters, **({"sd_column": sd_column} if sd_column else {})}
    out = []
    if pair is not None:
        resolve_pair(pair)  # a bad pair fails when the scenario is made, not mid-run
        out.append(Scenario(
            f"align-{short}-zeroshot", "alignment", "align-zeroshot",
            {"rating": rating_column, "score": "softmax", "logit_scale": 100.0, "prompt_pair": pair,
             "n_boot": 1000, "n_perm": 1000, **ceiling},
            f"zero-shot {short} score vs mean human rating {rating_column} (Spearman, Pearson)"))
    out.append(Scenario(
        f"align-{short}-probe", "alignment", "align-probe",
        {"rating": rating_column, "folds": 10, "repeats": 3, "split_seed": 42, "alpha": 1.0,
         "n_boot": 1000, **ceiling},
        f"ridge regression from image features to {rating_column}, repeated stratified 10-fold CV"))
    return out


def resolve_pair(pair: str | Mapping) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """(name, high prompts, low prompts) of a named or explicit prompt pair."""
    if isinstance(pair, Mapping):
        high, low = pair.get("high"), pair.get("low")
        for side, prompts in (("high", high), ("low", low)):
            if (not isinstance(prompts, list | tuple) or not prompts
                    or not all(isinstance(p, str) and p.strip() for p in prompts)):
                raise UserError(f"prompt pair {dict(pair)!r}: '{side}' must be a non-empty list of prompts")
        return "custom", tuple(high), tuple(low)
    if pair in PROMPT_PAIRS:
        return pair, PROMPT_PAIRS[pair]["high"], PROMPT_PAIRS[pair]["low"]
    if pair in ENSEMBLE_PAIRS:
        from ..prompts import fill, load_ensemble

        ensemble, high, low = ENSEMBLE_PAIRS[pair]
        templates = load_ensemble(ensemble).templates
        return pair, tuple(fill(t, high) for t in templates), tuple(fill(t, low) for t in templates)
    known = ", ".join([*PROMPT_PAIRS, *ENSEMBLE_PAIRS])
    raise UserError(f"unknown prompt pair {pair!r}; use one of {known} or {{'high': [...], 'low': [...]}}")


# ---------------------------------------------------------------- shared pieces

def _rated(ctx, scenario) -> tuple[str, np.ndarray, np.ndarray, list[str], list[str]]:
    """Rating column, rows of the stimuli that carry it, their ratings, ids and categories."""
    stimuli = ctx.stimuli
    rating = stimuli.require_rating(ctx.rating_column(scenario))
    rows = np.array([i for i, s in enumerate(stimuli.stimuli) if rating in s.ratings], dtype=int)
    if rows.size < 3:
        raise UserError(f"only {rows.size} stimuli of {stimuli.name} have a {rating!r} rating; "
                        "alignment needs at least 3")
    chosen = [stimuli.stimuli[i] for i in rows]
    y = np.array([s.ratings[rating] for s in chosen], dtype=float)
    return rating, rows, y, [s.id for s in chosen], [s.category for s in chosen]


def _sd_column(stimuli, rating: str, opts: Mapping) -> str | None:
    """The per-image SD column: the option, else DIRTI's naming (``disg_mean_all`` -> ``disg_SD_all``)."""
    if opts.get("sd_column"):
        return opts["sd_column"]
    guess = re.sub(r"mean", "SD", rating, flags=re.IGNORECASE)
    return guess if guess != rating and guess in stimuli.rating_columns else None


def _ceiling(ctx, scenario, rating: str, chosen_ids: list[str], seed: int) -> tuple[dict, dict, dict, dict]:
    """Noise-ceiling metrics, CI, options and a note; empty when the set gives no SDs."""
    from .rating_stats import split_half_ceiling

    opts = scenario.options
    sd_col = _sd_column(ctx.stimuli, rating, opts)
    n_raters = opts.get("n_raters", DEFAULT_N_RATERS)
    if not isinstance(n_raters, int | np.integer) or n_raters < 2:
        raise UserError(f"option n_raters={n_raters!r} of scenario {scenario.id} must be an integer >= 2")
    options = {"n_raters": int(n_raters), "sd_column": sd_col,
               "n_raters_source": opts.get("n_raters_source") or (
                   N_RATERS_SOURCE if n_raters == DEFAULT_N_RATERS else "scenario option")}
    if sd_col is None:
        return {}, {}, options, {"noise_ceiling": f"not estimated: no per-image SD column for {rating}"}
    by_id = {s.id: s for s in ctx.stimuli.stimuli}
    if sd_col not in ctx.stimuli.rating_columns or any(sd_col not in by_id[i].ratings for i in chosen_ids):
        raise UserError(f"SD column {sd_col!r} is missing for some stimuli of {ctx.stimuli.name}; "
                        "fill it in or drop the sd_column option")
    means = [by_id[i].ratings[rating] for i in chosen_ids]
    sds = [by_id[i].ratings[sd_col] for i in chosen_ids]
    sims = int(opts.get("ceiling_sims", DEFAULT_CEILING_SIMS))
    metrics, ci = split_half_ceiling(means, sds, int(n_raters), sims, seed)
    return metrics, ci, {**options, "ceiling_sims": sims}, {}


def _predictions(scenario_id: str, ids, y_true, y_pred, folds) -> pd.DataFrame:
    return pd.DataFrame({"scenario": scenario_id, "stimulus": list(ids), "y_true": list(y_true),
                         "y_pred": list(y_pred), "fold": list(folds)})[PREDICTION_COLUMNS]


def _result(scenario, ctx, n, metrics, ci, options, extra, predictions) -> ScenarioResult:
    return ScenarioResult(id=scenario.id, task="alignment", labels=list(ctx.stimuli.categories), n=int(n),
                          metrics={k: float(v) for k, v in metrics.items()}, options=options, ci=ci,
                          extra=extra, predictions=predictions)


# ---------------------------------------------------------------- zero-shot

def zeroshot_scores(image_features: np.ndarray, encoder, high, low, rule: str, logit_scale: float) -> np.ndarray:
    """Per-image score: P(high) of a 2-way softmax over logit_scale * cosine, or cos(high) - cos(low).

    Both rules order images identically (the softmax is a monotone function of
    the cosine difference) until the softmax saturates at 1.0 or 0.0 and ties
    images; Pearson's r differs.
    """
    from scipy.special import softmax

    from ..prompts import PromptSet
    from .zeroshot import class_embeddings, zero_shot_logits

    if rule not in SCORE_RULES:
        raise UserError(f"unknown score rule {rule!r}; use one of {', '.join(SCORE_RULES)}")
    pair = PromptSet("pair", ("low", "high"), (tuple(low), tuple(high)))
    embs = class_embeddings(encoder, pair)
    if rule == "cosine-diff":
        cos = zero_shot_logits(image_features, embs, 1.0)
        return cos[:, 1] - cos[:, 0]
    # float64 delays saturation at P = 1.0 (ties) for strongly separated images.
    return softmax(zero_shot_logits(image_features, embs, logit_scale).astype(np.float64), axis=1)[:, 1]


def evaluate_zeroshot(scenario, ctx) -> ScenarioResult:
    from .rating_stats import correlations, within_category

    opts = scenario.options
    rating, rows, y, ids, cats = _rated(ctx, scenario)
    pair_name, high, low = resolve_pair(opts.get("prompt_pair", "study"))
    rule, scale = opts.get("score", "softmax"), float(opts.get("logit_scale", 100.0))
    n_boot, n_perm = int(opts.get("n_boot", 1000)), int(opts.get("n_perm", 1000))
    score = zeroshot_scores(ctx.image_features[rows], ctx.encoder, high, low, rule, scale)

    metrics, ci = correlations(y, score, n_boot, n_perm, ctx.seed)
    per_cat, within, within_ci = within_category(y, score, cats, n_boot, n_perm, ctx.seed)
    ceiling, ceiling_ci, ceiling_opts, note = _ceiling(ctx, scenario, rating, ids, ctx.seed)
    metrics |= within | ceiling
    if ceiling.get("noise_ceiling_spearman"):
        metrics["spearman_rho_over_ceiling"] = metrics["spearman_rho"] / ceiling["noise_ceiling_spearman"]
    options = {**dict(opts), "rating": rating, "prompt_pair": pair_name, "prompts_high": list(high),
               "prompts_low": list(low), "score": rule, "logit_scale": scale, "n_boot": n_boot,
               "n_perm": n_perm, **ceiling_opts}
    extra = {"within_category": per_cat, **note}
    return _result(scenario, ctx, len(y), metrics, ci | within_ci | ceiling_ci, options, extra,
                   _predictions(scenario.id, ids, y, score, [""] * len(y)))


# ---------------------------------------------------------------- probe

def cv_predictions(X: np.ndarray, y: np.ndarray, groups, folds: int, repeats: int, seed: int,
                   alpha: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Out-of-fold ridge predictions, one row per repeat, stratified by ``groups``.

    Folds are reduced to the smallest category's size (stated in the result)
    so every fold holds every category.
    """
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import RepeatedStratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    names, counts = np.unique(np.asarray(groups, dtype=object), return_counts=True)
    if counts.min() < 2:
        raise UserError(f"category {str(names[counts.argmin()])!r} has only 1 rated stimulus; the stratified probe "
                        "needs at least 2 per category (remove it from the set or add images)")
    used = int(min(folds, counts.min()))
    cv = RepeatedStratifiedKFold(n_splits=used, n_repeats=repeats, random_state=seed)
    oof = np.full((repeats, len(y)), np.nan)
    fold_of = np.zeros((repeats, len(y)), dtype=int)
    for i, (train, test) in enumerate(cv.split(X, groups)):
        repeat, fold = divmod(i, used)
        model = make_pipeline(StandardScaler(), Ridge(alpha=alpha)).fit(X[train], y[train])
        oof[repeat, test] = model.predict(X[test])
        fold_of[repeat, test] = fold
    return oof, fold_of, used


def evaluate_probe(scenario, ctx) -> ScenarioResult:
    from .rating_stats import regression_metrics, within_category_points

    opts = scenario.options
    rating, rows, y, ids, cats = _rated(ctx, scenario)
    folds, repeats = int(opts.get("folds", 10)), int(opts.get("repeats", 3))
    seed, alpha, n_boot = int(opts.get("split_seed", 42)), float(opts.get("alpha", 1.0)), int(opts.get("n_boot", 1000))
    if folds < 2 or repeats < 1:
        raise UserError(f"scenario {scenario.id}: folds must be >= 2 and repeats >= 1 (got {folds}, {repeats})")
    oof, fold_of, used = cv_predictions(ctx.image_features[rows], y, cats, folds, repeats, seed, alpha)

    metrics, ci = regression_metrics(y, oof, n_boot, ctx.seed)
    per_cat, within = within_category_points(y, oof, cats)
    metrics |= within
    ceiling, ceiling_ci, ceiling_opts, note = _ceiling(ctx, scenario, rating, ids, ctx.seed)
    metrics |= ceiling
    options = {**dict(opts), "rating": rating, "folds": folds, "folds_used": used, "repeats": repeats,
               "split_seed": seed, "alpha": alpha, "n_boot": n_boot, "model": "StandardScaler + Ridge",
               "stratify": "category", **ceiling_opts}
    extra = {"within_category": per_cat, **note}
    if used < folds:
        extra["folds_note"] = f"reduced from {folds} to {used} folds: the smallest category has {used} stimuli"
    fold_labels = [f"r{r}f{fold_of[r, i]}" for r in range(repeats) for i in range(len(y))]
    predictions = _predictions(scenario.id, ids * repeats, np.tile(y, repeats), oof.ravel(), fold_labels)
    return _result(scenario, ctx, len(y), metrics, ci | ceiling_ci, options, extra, predictions)
