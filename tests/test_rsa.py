"""Representational similarity of layers with rating profiles: known answers and recomputation."""

from __future__ import annotations

import io

import numpy as np
import pytest
from scipy.spatial.distance import pdist
from scipy.stats import spearmanr

from dirti_bench.encoding.layers import LayerFeatures
from dirti_bench.evaluators.rsa import layer_rsa, linear_cka, rating_profile_columns
from helpers import stimulus_set


def rated(n=40, seed=0):
    rng = np.random.default_rng(seed)
    ratings = [{"disg_mean_all": float(a), "fear_mean_all": float(b), "disg_SD_all": 1.0}
               for a, b in rng.normal(5, 1.5, (n, 2))]
    cats = [f"c{i % 4}" for i in range(n)]
    return stimulus_set(cats, ratings, sorted(set(cats)))


def test_the_layer_that_mirrors_the_ratings_is_found_and_noise_is_not():
    stimuli = rated()
    profile = np.array([[s.ratings["disg_mean_all"], s.ratings["fear_mean_all"]] for s in stimuli.stimuli])
    rng = np.random.default_rng(1)
    mirror = np.hstack([profile - profile.mean(0), rng.normal(0, 0.05, (len(profile), 6))])
    features = LayerFeatures(["noise", "mirror"], [0.5, 1.0], [rng.normal(size=(40, 8)), mirror], "token",
                             "class token", weights="test")
    table, rdms, summary = layer_rsa(stimuli, [features], n_perm=200, n_boot=50, seed=0)
    assert rating_profile_columns(stimuli) == ["disg_mean_all", "fear_mean_all"]  # the SD column is no profile
    noise, mirrored = table.iloc[0], table.iloc[1]
    assert mirrored.spearman_rho > 0.3 and mirrored.p_perm < 0.01
    assert abs(noise.spearman_rho) < 0.15 and noise.p_perm > 0.05
    assert mirrored.ci_low <= mirrored.spearman_rho <= mirrored.ci_high
    assert summary["best_layer"]["layer"] == "mirror"
    assert mirrored.linear_cka > noise.linear_cka


def test_every_rho_recomputes_from_the_saved_rdms():
    stimuli = rated(n=30, seed=2)
    rng = np.random.default_rng(3)
    features = LayerFeatures(["a", "b"], [0.5, 1.0], [rng.normal(size=(30, 5)), rng.normal(size=(30, 9))], "token",
                             "class token", weights="w")
    table, rdms, _ = layer_rsa(stimuli, [features], n_perm=20, n_boot=10)
    saved = np.load(io.BytesIO(rdms))
    for row in table.itertuples():
        assert spearmanr(saved[f"w|{row.layer}"], saved["human"]).statistic == pytest.approx(row.spearman_rho, abs=1e-9)
    layer_a = np.asarray(features.arrays[0], float)
    assert np.allclose(saved["w|a"], pdist(layer_a, "correlation"), atol=1e-6)


def test_linear_cka_known_values():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 6))
    Q = np.linalg.qr(rng.normal(size=(6, 6)))[0]
    assert linear_cka(X, X @ Q * 3.0) == pytest.approx(1.0)  # invariant to rotation and scale
    assert linear_cka(X, rng.normal(size=(50, 6))) < 0.4
