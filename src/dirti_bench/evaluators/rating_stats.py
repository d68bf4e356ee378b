"""Statistics for continuous human ratings: correlations with bootstrap CIs and
permutation p-values, within-category correlations, a split-half noise ceiling,
and regression metrics.

Everything is vectorised over resamples (scipy's ``vectorized=True``) so 1000
draws on a few hundred stimuli take milliseconds. Every random draw comes from
its own ``default_rng([seed, stream])``, so adding one statistic never shifts
another's numbers.

Resamples are drawn and scored in blocks of draws (``draw_block``), so memory stays
bounded at any n (1000 draws x 3 repeats x 100k stimuli would be GBs at once). The
blocks do not change a single number: ``Generator.integers`` and ``Generator.permuted``
(what scipy's ``batch`` and the loops here call) continue the same random stream across
calls, and every draw is scored on its own row.
"""

from __future__ import annotations

import copy
import hashlib
import warnings
from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np
from scipy import stats
from sklearn.metrics import r2_score, root_mean_squared_error

from ..results import PEARSON_R, SPEARMAN_RHO

CI_LEVEL = 0.95
MIN_N = 3  # fewer points have no meaningful correlation
# Independent random streams (the second entry of each rng's seed).
STREAM_BOOT, STREAM_PERM, STREAM_CEILING, STREAM_WITHIN = 1, 2, 3, 4
# Resampled values held at once per array (~16 MB of float64): a block's draws x stimuli x columns.
BLOCK_ELEMENTS = 2_000_000


def draw_block(n: int, width: int = 1) -> int:
    """How many resamples of ``n`` stimuli (``width`` arrays each) to draw and score at once."""
    return max(1, BLOCK_ELEMENTS // max(1, n * width))


def _bootstrap_indices(n: int, n_boot: int, seed: int, width: int):
    """Blocks of ``rng.integers(0, n, (n_boot, n))`` rows, the same draws as one call."""
    rng = _rng(seed, STREAM_BOOT)
    # At least 2 draws: a block of one would score a stride-0 view of y_true, summed in another order.
    block = max(2, draw_block(n, width))
    for start in range(0, n_boot, block):
        yield rng.integers(0, n, size=(min(block, n_boot - start), n))


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream])


def pearson(x, y, axis=-1):
    return stats.pearsonr(x, y, axis=axis).statistic


def spearman(x, y, axis=-1):
    """Spearman's rho as Pearson's r of ranks (scipy), vectorised along ``axis``."""
    return stats.pearsonr(average_ranks(x, axis=axis), average_ranks(y, axis=axis), axis=axis).statistic


def average_ranks(x, axis=-1) -> np.ndarray:
    """``scipy.stats.rankdata(x, axis=axis)`` ('average' ranks), the same float64 numbers, about
    twice as fast: scipy sorts with a stable sort, but a tie group's average rank depends only
    on where its equal values sit in sorted order, which any sort gives. Rows holding NaN go to
    scipy (its NaN policy)."""
    x = np.asarray(x)
    if x.ndim == 0 or x.size == 0 or not np.issubdtype(x.dtype, np.number) or np.isnan(x).any():
        return stats.rankdata(x, axis=axis)
    moved = np.moveaxis(x, axis, -1)
    n = moved.shape[-1]
    flat = moved.reshape(-1, n)
    order = np.argsort(flat, axis=-1)
    ordered = np.take_along_axis(flat, order, axis=-1)
    starts = np.ones(flat.shape, dtype=bool)  # first position of each group of equal values
    np.not_equal(ordered[:, 1:], ordered[:, :-1], out=starts[:, 1:])
    if starts.all():  # no ties: ordinal ranks
        in_order = np.broadcast_to(np.arange(1, n + 1, dtype=np.float64), flat.shape)
    else:  # (first + last) / 2 + 1 of each group's positions, as rankdata's ordinal + (count - 1) / 2
        position = np.arange(n)
        first = np.maximum.accumulate(np.where(starts, position, 0), axis=-1)
        ends = np.ones(flat.shape, dtype=bool)
        ends[:, :-1] = starts[:, 1:]
        last = np.minimum.accumulate(np.where(ends, position, n)[:, ::-1], axis=-1)[:, ::-1]
        in_order = (first + last + 2) / 2.0
    ranks = np.empty(flat.shape, dtype=np.float64)
    np.put_along_axis(ranks, order, in_order, axis=-1)
    return np.moveaxis(ranks.reshape(moved.shape), -1, axis)


class ResampledRanks:
    """``scipy.stats.rankdata(values[idx], axis=-1)`` for rows of bootstrap indices ``idx``, the
    same numbers in O(n) per row instead of a sort: a resample's average ranks follow from how
    often it drew each distinct value (ascending cumulative counts give each value's last
    ordinal rank; its average rank is last - (count - 1) / 2)."""

    def __init__(self, values):
        values = np.asarray(values, dtype=float)
        self.exact = bool(np.isfinite(values).all())  # NaN/inf: rankdata's own rules, via scipy
        self.values = values
        unique, self.codes = np.unique(values, return_inverse=True)
        self.size = unique.size

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx)
        if not self.exact:
            return stats.rankdata(self.values[idx], axis=-1)
        codes = self.codes[idx.reshape(-1, idx.shape[-1])]
        rows, size = codes.shape[0], self.size
        counts = np.bincount((codes + size * np.arange(rows)[:, None]).ravel(),
                             minlength=rows * size).reshape(rows, size)
        last = np.cumsum(counts, axis=-1)
        average = (2 * last - counts + 1) / 2.0
        return np.take_along_axis(average, codes, axis=-1).reshape(idx.shape)


CORRELATIONS = {SPEARMAN_RHO: spearman, PEARSON_R: pearson}


@contextmanager
def _quiet():
    # Resamples of a few tied values are constant: scipy warns and returns nan, which we drop.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _percentile_ci(draws: np.ndarray, level: float = CI_LEVEL) -> list[float]:
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return [float("nan"), float("nan")]
    tail = (1 - level) / 2 * 100
    return [float(np.percentile(draws, tail)), float(np.percentile(draws, 100 - tail))]


def correlation_test(x, y, name: str, n_boot: int, n_perm: int, seed: int, boot: bool = True) -> dict:
    """Point estimate, bootstrap distribution, permutation null and p-value of one correlation.
    ``boot=False`` skips the bootstrap (``"boot"`` is None) where only the test is read; the bootstrap
    and the permutation test draw from separate streams, so the test's numbers are the same."""
    func = CORRELATIONS[name]
    x, y = np.asarray(x, float), np.asarray(y, float)
    block = draw_block(x.size, 4)  # x, y and their ranks per resample
    with _quiet():
        if name == SPEARMAN_RHO:
            return _spearman_test(x, y, n_boot, n_perm, seed, block, boot)
        estimate = float(func(x, y))
        draws = None
        if boot:
            draws = stats.bootstrap((x, y), func, paired=True, vectorized=True, n_resamples=n_boot, batch=block,
                                    method="percentile", rng=_rng(seed, STREAM_BOOT)).bootstrap_distribution
        perm = stats.permutation_test((x, y), func, permutation_type="pairings", vectorized=True,
                                      n_resamples=n_perm, batch=block, rng=_rng(seed, STREAM_PERM))
    return {"estimate": estimate, "boot": None if draws is None else np.asarray(draws, float),
            "null": np.asarray(perm.null_distribution, float), "p": float(perm.pvalue)}


def _spearman_test(x, y, n_boot: int, n_perm: int, seed: int, block: int, boot: bool = True) -> dict:
    """``correlation_test`` for Spearman's rho: the same scipy bootstrap and permutation test, the
    same draws and the same numbers, without sorting every resample.

    * Bootstrap: scipy's paired bootstrap resamples the indices ``arange(n)`` and scores the
      statistic on the indexed samples; bootstrapping ``arange(n)`` itself draws the same indices
      from the same generator, and ``ResampledRanks`` ranks each resample from its counts.
    * Permutation test: ranking commutes with permuting, so permuting the ranks and scoring
      Pearson's r is ranking each permuted sample."""
    rank_x, rank_y = average_ranks(x), average_ranks(y)
    estimate = float(pearson(rank_x, rank_y))
    resampled_x, resampled_y = ResampledRanks(x), ResampledRanks(y)

    def resampled_rho(idx, axis=-1):
        return pearson(resampled_x(idx), resampled_y(idx), axis=-1)

    draws = None
    if boot:
        draws = stats.bootstrap((np.arange(x.size),), resampled_rho, vectorized=True, n_resamples=n_boot,
                                batch=block, method="percentile", rng=_rng(seed, STREAM_BOOT)).bootstrap_distribution
    perm = stats.permutation_test((rank_x, rank_y), pearson, permutation_type="pairings", vectorized=True,
                                  n_resamples=n_perm, batch=block, rng=_rng(seed, STREAM_PERM))
    return {"estimate": estimate, "boot": None if draws is None else np.asarray(draws, float),
            "null": np.asarray(perm.null_distribution, float), "p": float(perm.pvalue)}


def correlations(x, y, n_boot: int, n_perm: int, seed: int) -> tuple[dict, dict]:
    """Spearman and Pearson with 95% percentile-bootstrap CIs and permutation p-values."""
    metrics, ci = {}, {}
    for name in CORRELATIONS:
        test = correlation_test(x, y, name, n_boot, n_perm, seed)
        metrics[name] = test["estimate"]
        metrics[f"{name.split('_')[0]}_p_perm"] = test["p"]
        ci[name] = _percentile_ci(test["boot"])
    return metrics, ci


def _resize(draws: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Exactly ``size`` draws: an exact null (small group) is resampled uniformly, which is
    what random permutations of that group would give."""
    return draws if draws.size == size else rng.choice(draws, size=size, replace=True)


def within_category(x, y, groups: Sequence[str], n_boot: int, n_perm: int, seed: int) -> tuple[dict, dict, dict]:
    """Spearman's rho inside each category, and their mean with a stratified bootstrap CI
    and a within-category permutation p-value (ratings shuffled only inside categories,
    so category differences alone cannot produce the correlation).

    Categories with fewer than ``MIN_N`` stimuli or constant values are reported as
    skipped, not scored.
    """
    x, y, groups = np.asarray(x, float), np.asarray(y, float), np.asarray(groups, dtype=object)
    per, boots, nulls = {}, [], []
    rng = _rng(seed, STREAM_WITHIN)
    for k, cat in enumerate(dict.fromkeys(groups)):
        mask = groups == cat
        n = int(mask.sum())
        if n < MIN_N or np.ptp(x[mask]) == 0 or np.ptp(y[mask]) == 0:
            per[cat] = {"n": n, "skipped": f"needs >= {MIN_N} stimuli with varying values"}
            continue
        row = {"n": n}
        for name in CORRELATIONS:
            # Only Spearman's draws enter the stratified CI: Pearson's bootstrap here would be discarded.
            test = correlation_test(x[mask], y[mask], name, n_boot, n_perm, seed * 1000 + k,
                                    boot=name == SPEARMAN_RHO)
            row[name] = test["estimate"]
            row[f"{name.split('_')[0]}_p_perm"] = test["p"]
            if name == SPEARMAN_RHO:
                boots.append(test["boot"])
                nulls.append(_resize(test["null"], n_perm, rng))
        per[cat] = row
    if not boots:
        return per, {}, {}
    # Independent draws per category, averaged draw by draw = stratified resampling.
    observed = float(np.mean([r[SPEARMAN_RHO] for r in per.values() if SPEARMAN_RHO in r]))
    boot_mean, null_mean = _mean_of_defined(boots), _mean_of_defined(nulls)
    # scipy's convention for random permutations: (hits + 1) / (draws + 1).
    p = float((np.sum(np.abs(null_mean) >= abs(observed) - 1e-12) + 1) / (null_mean.size + 1))
    metrics = {"mean_within_category_spearman_rho": observed, "mean_within_category_spearman_p_perm": p,
               "n_categories_within": len(boots)}
    return per, metrics, {"mean_within_category_spearman_rho": _percentile_ci(boot_mean)}


def _mean_of_defined(draws: list[np.ndarray]) -> np.ndarray:
    """Draw-by-draw mean over the categories whose correlation that draw defines; NaN (undefined,
    dropped from the CI) where none does, e.g. a constant resample of a single category."""
    stacked = np.stack(draws)
    defined = np.isfinite(stacked)
    count = defined.sum(axis=0)
    total = np.where(defined, stacked, 0.0).sum(axis=0)
    return np.divide(total, count, out=np.full(total.shape, np.nan), where=count > 0)


def within_category_points(y, preds, groups: Sequence[str]) -> tuple[dict, dict]:
    """Spearman's rho inside each category for each row of ``preds`` (one per CV repeat),
    averaged over rows; point estimates only."""
    y, groups = np.asarray(y, float), np.asarray(groups, dtype=object)
    preds = np.atleast_2d(np.asarray(preds, float))
    per = {}
    for cat in dict.fromkeys(groups):
        mask = groups == cat
        n = int(mask.sum())
        if n < MIN_N or np.ptp(y[mask]) == 0:
            per[cat] = {"n": n, "skipped": f"needs >= {MIN_N} stimuli with varying values"}
            continue
        with _quiet():
            rho = spearman(np.broadcast_to(y[mask], preds[:, mask].shape), preds[:, mask], axis=-1)
        per[cat] = {"n": n, SPEARMAN_RHO: float(np.nanmean(rho))}
    rhos = [r[SPEARMAN_RHO] for r in per.values() if np.isfinite(r.get(SPEARMAN_RHO, np.nan))]
    return per, ({"mean_within_category_spearman_rho": float(np.mean(rhos))} if rhos else {})


def split_half_ceiling(means, sds, n_raters: int, n_sim: int, seed: int) -> tuple[dict, dict]:
    """Noise ceilings from per-image rating means and SDs.

    Two half-samples of ``n_raters/2`` raters each are simulated per image as
    ``mean + N(0, SD / sqrt(n_raters/2))``; their correlation across images,
    Spearman-Brown corrected to the full sample, estimates the reliability of
    the mean ratings. A model's correlation with noisy means cannot exceed
    sqrt(reliability): ``noise_ceiling_spearman`` from the halves' Spearman
    correlation (reported as ``split_half_reliability``), ``noise_ceiling_pearson``
    from their Pearson correlation on the same simulated halves, the ceiling for
    Pearson's r as published alignment results divide by.
    """
    means, sds = np.asarray(means, float), np.asarray(sds, float)
    # A rating's zero-shot and probe scenarios ask for the same ceiling (same ratings, SDs, seed):
    # the second gets the first's numbers instead of drawing them again.
    key = hashlib.sha256(b"".join((means.tobytes(), sds.tobytes(), repr((means.size, n_raters, n_sim, seed)).encode()))).digest()
    if key not in _CEILINGS:
        if len(_CEILINGS) >= 16:
            _CEILINGS.pop(next(iter(_CEILINGS)))
        _CEILINGS[key] = _split_half_ceiling(means, sds, n_raters, n_sim, seed)
    return copy.deepcopy(_CEILINGS[key])


_CEILINGS: dict[bytes, tuple[dict, dict]] = {}


def _split_half_ceiling(means: np.ndarray, sds: np.ndarray, n_raters: int, n_sim: int,
                        seed: int) -> tuple[dict, dict]:
    se = sds / np.sqrt(n_raters / 2)
    # All of half A's draws come first in the stream, then half B's: walk past A's once to find
    # where B's start, then draw both in blocks (the same numbers as two whole (n_sim, n) arrays).
    block = draw_block(means.size, 6)
    sizes = [min(block, n_sim - start) for start in range(0, n_sim, block)]
    rng_a = _rng(seed, STREAM_CEILING)
    for size in sizes:
        rng_a.standard_normal((size, means.size))
    rng_b, rng_a = copy.deepcopy(rng_a), _rng(seed, STREAM_CEILING)
    r_halves = {"spearman": [], "pearson": []}
    for size in sizes:
        half_a = means + rng_a.standard_normal((size, means.size)) * se
        half_b = means + rng_b.standard_normal((size, means.size)) * se
        for name, func in (("spearman", spearman), ("pearson", pearson)):
            r_halves[name].append(func(half_a, half_b, axis=-1))
    metrics, ci = {}, {}
    for name in ("spearman", "pearson"):
        r_half = np.concatenate(r_halves[name])
        reliability = np.clip(2 * r_half / (1 + r_half), 0.0, 1.0)  # Spearman-Brown, 2 halves
        ceiling = np.sqrt(reliability)
        if name == "spearman":
            metrics["split_half_reliability"] = float(np.mean(reliability))
        metrics[f"noise_ceiling_{name}"] = float(np.mean(ceiling))
        ci[f"noise_ceiling_{name}"] = _percentile_ci(ceiling)
    return metrics, ci


# correlation metric -> the noise ceiling it is divided by
CEILINGS = {SPEARMAN_RHO: "noise_ceiling_spearman", PEARSON_R: "noise_ceiling_pearson"}


def over_ceiling(metrics: dict, ceilings: dict) -> dict:
    """``<correlation>_over_ceiling`` for each correlation with a positive ceiling."""
    return {f"{name}_over_ceiling": metrics[name] / ceilings[ceiling] for name, ceiling in CEILINGS.items()
            if name in metrics and ceilings.get(ceiling)}


def _per_repeat_metrics(y_true, y_pred, axis=-1, ranks=None):
    """R², Pearson's r, Spearman's rho and RMSE per row of ``y_pred`` (shape (..., repeats, n)),
    averaged over repeats. ``y_true`` broadcasts against it. ``ranks``: the average ranks of
    (broadcast ``y_true``, ``y_pred``) where the caller has them already."""
    y_pred = np.asarray(y_pred, float)
    y_true = np.broadcast_to(y_true, y_pred.shape)
    n = y_pred.shape[-1]
    flat_true, flat_pred = y_true.reshape(-1, n).T, y_pred.reshape(-1, n).T  # (n, columns)
    r2 = r2_score(flat_true, flat_pred, multioutput="raw_values").reshape(y_pred.shape[:-1])
    rmse = root_mean_squared_error(flat_true, flat_pred, multioutput="raw_values").reshape(y_pred.shape[:-1])
    r = pearson(y_true, y_pred, axis=-1)
    rho = spearman(y_true, y_pred, axis=-1) if ranks is None else pearson(*ranks, axis=-1)
    return r2.mean(axis=-1), r.mean(axis=-1), rho.mean(axis=-1), rmse.mean(axis=-1)


REGRESSION_METRICS = ("r2", PEARSON_R, SPEARMAN_RHO, "rmse")


def regression_metrics(y_true, oof: np.ndarray, n_boot: int, seed: int) -> tuple[dict, dict]:
    """Out-of-fold R², Pearson's r, Spearman's rho and RMSE (sklearn/scipy), each the mean over
    CV repeats (``oof`` has one row per repeat), with percentile-bootstrap CIs that resample
    stimuli."""
    y_true, oof = np.asarray(y_true, float), np.asarray(oof, float)
    with _quiet():  # constant predictions (a fully shrunk probe) have no correlation: nan
        point = _per_repeat_metrics(y_true, oof)
    blocks = []
    # Each resample's ranks from its counts of the original values (rankdata's numbers, no sort).
    rank_true, rank_pred = ResampledRanks(y_true), [ResampledRanks(row) for row in oof]
    with _quiet():
        for idx in _bootstrap_indices(y_true.size, n_boot, seed, 2 * (len(oof) + 1)):
            # (draws, repeats, n): every repeat scored on the same resampled stimuli.
            ranked_pred = np.stack([rank(idx) for rank in rank_pred], axis=1)
            ranked_true = np.repeat(rank_true(idx)[:, None, :], len(oof), axis=1)
            blocks.append(_per_repeat_metrics(y_true[idx][:, None, :], oof[:, idx].transpose(1, 0, 2),
                                              ranks=(ranked_true, ranked_pred)))
    draws = [np.concatenate(parts) for parts in zip(*blocks, strict=True)]
    metrics = {name: float(v) for name, v in zip(REGRESSION_METRICS, point, strict=True)}
    ci = {name: _percentile_ci(d) for name, d in zip(REGRESSION_METRICS, draws, strict=True)}
    return metrics, ci


def intercept_only_predictions(y_true, fold_of: np.ndarray) -> np.ndarray:
    """What the intercept-only model predicts out of fold: each fold's training-part mean
    (``fold_of`` has one row of fold numbers per CV repeat)."""
    y_true, fold_of = np.asarray(y_true, float), np.atleast_2d(fold_of)
    out = np.empty(fold_of.shape)
    for repeat, folds in enumerate(fold_of):
        for fold in np.unique(folds):
            out[repeat, folds == fold] = y_true[folds != fold].mean()
    return out


def _r2_per_repeat(y_true, y_pred) -> np.ndarray:
    """Mean over repeats of R² for ``y_pred`` of shape (..., repeats, n)."""
    y_pred = np.asarray(y_pred, float)
    y_true = np.broadcast_to(y_true, y_pred.shape)
    n = y_pred.shape[-1]
    r2 = r2_score(y_true.reshape(-1, n).T, y_pred.reshape(-1, n).T, multioutput="raw_values")
    return r2.reshape(y_pred.shape[:-1]).mean(axis=-1)


def intercept_only_comparison(y_true, oof: np.ndarray, fold_of: np.ndarray, n_boot: int,
                              seed: int) -> tuple[dict, dict]:
    """The intercept-only model on the probe's own folds (each fold's training mean), as
    ``r2_intercept_only`` (slightly below 0: a training mean misses its test fold's mean), and
    the probe's gain over it, ``r2_gain_over_intercept_only``, with a paired bootstrap CI: both
    models are scored on the same resampled stimuli (the draws of ``regression_metrics``). A
    gain whose CI lies below 0 is a probe worse than predicting the mean by more than noise."""
    y_true, oof = np.asarray(y_true, float), np.asarray(oof, float)
    baseline = intercept_only_predictions(y_true, fold_of)
    base = float(_r2_per_repeat(y_true, baseline))
    gain = float(_r2_per_repeat(y_true, oof)) - base
    blocks = []
    with _quiet():
        for idx in _bootstrap_indices(y_true.size, n_boot, seed, 2 * (2 * len(oof) + 1)):
            blocks.append(_r2_per_repeat(y_true[idx][:, None, :], oof[:, idx].transpose(1, 0, 2))
                          - _r2_per_repeat(y_true[idx][:, None, :], baseline[:, idx].transpose(1, 0, 2)))
    draws = np.concatenate(blocks)
    return ({"r2_intercept_only": base, "r2_gain_over_intercept_only": gain},
            {"r2_gain_over_intercept_only": _percentile_ci(draws)})
