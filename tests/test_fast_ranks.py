"""The faster rank statistics give exactly (bit for bit) what the straightforward scipy
computation gives, ties included: average ranks, ranks of bootstrap resamples, and Spearman's
bootstrap distribution, permutation null and p-value."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from dirti_bench.evaluators import rating_stats as rs


def _samples(rng, n):
    """Continuous values, heavy ties (a 1-9 scale rounded), a constant column, signed zeros."""
    return {"continuous": rng.standard_normal(n), "ties": rng.integers(1, 10, n).astype(float),
            "few": np.round(rng.uniform(1, 9, n), 0) / 2, "constant": np.full(n, 3.0),
            "zeros": np.where(rng.random(n) < 0.5, 0.0, -0.0)}


@pytest.mark.parametrize("n", [1, 2, 7, 60])
def test_average_ranks_equal_rankdata(n):
    rng = np.random.default_rng(n)
    for name, x in _samples(rng, n).items():
        assert np.array_equal(rs.average_ranks(x), stats.rankdata(x)), name
    block = rng.integers(0, 4, (5, 3, n)).astype(float)  # ties along every axis
    for axis in (-1, 0, 1):
        assert np.array_equal(rs.average_ranks(block, axis=axis), stats.rankdata(block, axis=axis))


def test_average_ranks_leave_nan_to_scipy():
    x = np.array([[1.0, np.nan, 2.0], [3.0, 1.0, 1.0]])
    assert np.array_equal(rs.average_ranks(x), stats.rankdata(x, axis=-1), equal_nan=True)


@pytest.mark.parametrize("n", [2, 9, 80])
def test_resampled_ranks_equal_rankdata_of_the_resample(n):
    rng = np.random.default_rng(n)
    idx = rng.integers(0, n, (30, n))
    for name, x in _samples(rng, n).items():
        assert np.array_equal(rs.ResampledRanks(x)(idx), stats.rankdata(x[idx], axis=-1)), name
    x = rng.standard_normal(n)
    x[0] = np.inf  # not finite: scipy's own rules
    assert np.array_equal(rs.ResampledRanks(x)(idx), stats.rankdata(x[idx], axis=-1))


def _reference_test(x, y, n_boot, n_perm, seed):
    """The straightforward computation: scipy's bootstrap and permutation test re-ranking each draw."""
    def rho(a, b, axis=-1):
        return stats.pearsonr(stats.rankdata(a, axis=axis), stats.rankdata(b, axis=axis), axis=axis).statistic

    block = rs.draw_block(x.size, 4)
    with rs._quiet():
        boot = stats.bootstrap((x, y), rho, paired=True, vectorized=True, n_resamples=n_boot, batch=block,
                               method="percentile", rng=rs._rng(seed, rs.STREAM_BOOT))
        perm = stats.permutation_test((x, y), rho, permutation_type="pairings", vectorized=True,
                                      n_resamples=n_perm, batch=block, rng=rs._rng(seed, rs.STREAM_PERM))
        return float(rho(x, y)), boot.bootstrap_distribution, perm.null_distribution, perm.pvalue


@pytest.mark.parametrize("n", [4, 25, 300])
def test_spearman_test_equals_scipy_reranking_every_draw(n):
    rng = np.random.default_rng(100 + n)
    x = rng.integers(1, 6, n).astype(float)  # ties in both
    y = x + rng.integers(0, 3, n)
    got = rs.correlation_test(x, y, rs.SPEARMAN_RHO, 200, 150, seed=3)
    estimate, boot, null, p = _reference_test(x, y, 200, 150, 3)
    assert got["estimate"] == estimate
    assert np.array_equal(got["boot"], boot, equal_nan=True)  # constant resamples: nan on both sides
    assert np.array_equal(got["null"], null, equal_nan=True)
    assert got["p"] == p


def test_spearman_test_blocks_do_not_change_draws(monkeypatch):
    """Many small blocks (a large n's case) give the draws of one block."""
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal(50), rng.integers(0, 4, 50).astype(float)
    whole = rs.correlation_test(x, y, rs.SPEARMAN_RHO, 100, 100, seed=1)
    monkeypatch.setattr(rs, "BLOCK_ELEMENTS", 50 * 4 * 7)
    blocked = rs.correlation_test(x, y, rs.SPEARMAN_RHO, 100, 100, seed=1)
    assert np.array_equal(_reference_test(x, y, 100, 100, 1)[1], blocked["boot"])
    assert np.array_equal(whole["null"], blocked["null"]) and whole["p"] == blocked["p"]


def test_regression_metrics_equal_reranking_every_draw():
    """The probe's bootstrap CIs from resample ranks equal those from scipy's rankdata per draw."""
    rng = np.random.default_rng(9)
    y = rng.integers(1, 8, 70).astype(float)
    oof = np.round(y + rng.standard_normal((3, 70)), 1)  # ties in the predictions too
    oof[2] = np.round(oof[2] / 4)  # a nearly shrunk repeat: few distinct values
    assert rs.regression_metrics(y, oof, 120, seed=2) == _reference_regression_metrics(y, oof, 120, seed=2)


def _reference_rho(y_true, y_pred):
    y_true = np.broadcast_to(y_true, y_pred.shape)
    return stats.pearsonr(stats.rankdata(y_true, axis=-1), stats.rankdata(y_pred, axis=-1), axis=-1).statistic


def _reference_regression_metrics(y_true, oof, n_boot, seed):
    """regression_metrics as it was: every draw re-ranked by scipy."""
    point = list(rs._per_repeat_metrics(y_true, oof))
    point[2] = _reference_rho(y_true, oof).mean(axis=-1)
    blocks = []
    with rs._quiet():
        for idx in rs._bootstrap_indices(y_true.size, n_boot, seed, 2 * (len(oof) + 1)):
            t, p = y_true[idx][:, None, :], oof[:, idx].transpose(1, 0, 2)
            r2, r, _, rmse = rs._per_repeat_metrics(t, p)
            blocks.append((r2, r, _reference_rho(t, p).mean(axis=-1), rmse))
    draws = [np.concatenate(parts) for parts in zip(*blocks, strict=True)]
    return ({name: float(v) for name, v in zip(rs.REGRESSION_METRICS, point, strict=True)},
            {name: rs._percentile_ci(d) for name, d in zip(rs.REGRESSION_METRICS, draws, strict=True)})


def test_split_half_ceiling_reuse_gives_fresh_equal_results():
    """A repeated ceiling (a rating's zero-shot and probe scenarios) equals a fresh draw, and the
    caller's copy cannot change what the next caller gets."""
    rng = np.random.default_rng(4)
    means, sds = rng.uniform(1, 9, 40), rng.uniform(0.5, 2, 40)
    first = rs.split_half_ceiling(means, sds, 20, 50, seed=7)
    first[1]["noise_ceiling_spearman"][0] = -1.0
    again = rs.split_half_ceiling(means, sds, 20, 50, seed=7)
    assert again == rs._split_half_ceiling(means, sds, 20, 50, 7)
    assert again[1]["noise_ceiling_spearman"][0] != -1.0
    assert rs.split_half_ceiling(means, sds, 20, 50, seed=8) != again


@pytest.mark.parametrize("name", [rs.SPEARMAN_RHO, rs.PEARSON_R])
def test_a_test_without_its_bootstrap_gives_the_same_test(name):
    """within_category skips the bootstrap it would discard (Pearson's): the estimate, null and p
    are those of the full test (the bootstrap draws from its own stream)."""
    rng = np.random.default_rng(12)
    x, y = rng.standard_normal(40), rng.integers(0, 5, 40).astype(float)
    full, test_only = (rs.correlation_test(x, y, name, 90, 80, seed=6, boot=b) for b in (True, False))
    assert test_only["boot"] is None and full["boot"].shape == (90,)
    assert test_only["estimate"] == full["estimate"] and test_only["p"] == full["p"]
    assert np.array_equal(test_only["null"], full["null"])
