"""Representational similarity between each layer and the human rating profiles.

Distance measures (stated in every row of layer_rsa.csv):

* model RDM: correlation distance (1 - Pearson r) between two stimuli's feature vectors of a layer
  (``scipy.spatial.distance.pdist(..., "correlation")``);
* human RDM: Euclidean distance between two stimuli's rating profiles, each rating column z-scored
  across stimuli first (so a 1-9 and a 0-100 scale weigh alike).

The RDMs are compared by Spearman's rho over their upper triangles (the published
``compare_rdms(..., dist_type='spearman')``), with a stimulus-permutation test (the human RDM's
rows and columns permuted together, so the null keeps each RDM's structure) and a percentile
bootstrap CI over stimuli (pairs of a stimulus drawn twice with itself are left out, as rsatoolbox
does; each draw is scored on the ranks over all pairs, see ``rdm_tests``). Linear CKA between the layer's features and the z-scored rating matrix is given beside it.

The RDMs are saved (layer_rdms.npz, condensed upper triangles) so every rho recomputes with scipy.
"""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd

from ..results import SPEARMAN_RHO
from .common import one_thread

MODEL_DISTANCE = "correlation distance (1 - Pearson r) between feature vectors"
HUMAN_DISTANCE = "Euclidean distance between rating profiles, each column z-scored across stimuli"
RSA_COLUMNS = ["weights", "layer", "depth", "ratings", "model_distance", "human_distance", "n", SPEARMAN_RHO,
               "p_perm", "n_perm", "ci_low", "ci_high", "n_boot", "linear_cka"]


def rating_profile_columns(stimuli) -> list[str]:
    """The mean-rating columns every stimulus carries (columns named like an SD are left out)."""
    columns = [c for c in stimuli.rating_columns
               if all(c in s.ratings for s in stimuli.stimuli) and not re.search(r"(^|[_\W])sd($|[_\W])", c, re.I)]
    means = [c for c in columns if re.search("mean", c, re.I)]
    return means or columns


def human_rdm(ratings: np.ndarray) -> np.ndarray:
    from scipy.spatial.distance import pdist

    z = (ratings - ratings.mean(axis=0)) / np.where(ratings.std(axis=0) > 0, ratings.std(axis=0), 1.0)
    return pdist(z, "euclidean")


def model_rdm(features: np.ndarray) -> np.ndarray:
    from scipy.spatial.distance import pdist

    return pdist(np.asarray(features, float), "correlation")


def linear_cka(X: np.ndarray, Y: np.ndarray) -> float:
    """Linear centred kernel alignment (Kornblith et al., 2019) between two representations of the same rows."""
    X = np.asarray(X, float) - np.asarray(X, float).mean(axis=0)
    Y = np.asarray(Y, float) - np.asarray(Y, float).mean(axis=0)
    cross = np.linalg.norm(Y.T @ X) ** 2
    denom = np.linalg.norm(X.T @ X) * np.linalg.norm(Y.T @ Y)
    return float(cross / denom) if denom > 0 else float("nan")


def _zscore(v: np.ndarray) -> np.ndarray:
    sd = v.std(axis=-1, keepdims=True)
    return (v - v.mean(axis=-1, keepdims=True)) / np.where(sd > 0, sd, np.nan)


def rdm_tests(models: list[np.ndarray], human: np.ndarray, n: int, n_perm: int, n_boot: int,
              seed: int) -> list[dict]:
    """Spearman rho of each condensed model RDM with the human RDM over ``n`` stimuli, its
    stimulus-permutation p (two-sided) and percentile bootstrap CI; every layer sees the same
    permutations and draws."""
    from scipy.spatial.distance import squareform
    from scipy.stats import rankdata

    m = len(models)
    model_z = _zscore(np.vstack([rankdata(model) for model in models]))  # (m, pairs)
    human_rank_sq = squareform(rankdata(human))
    rho = model_z @ _zscore(rankdata(human)) / human.size
    rng = np.random.default_rng([seed, 2026])
    iu = np.triu_indices(n, k=1)
    null = np.empty((n_perm, m))
    for k in range(n_perm):
        order = rng.permutation(n)  # permuting stimuli reorders the pairs: their ranks stay ranks
        null[k] = model_z @ _zscore(human_rank_sq[np.ix_(order, order)][iu]) / human.size
    p = (1 + np.sum(np.abs(null) >= np.abs(rho) - 1e-12, axis=0)) / (1 + n_perm)
    # Bootstrap over stimuli: a draw holding stimulus i c_i times holds pair (i, j) c_i * c_j times
    # (pairs of a stimulus with its own copy, distance 0 in both RDMs, are left out), so each draw is
    # a weighted correlation over the original pairs, scored on the ranks over all pairs (re-ranking
    # every draw agrees to ~0.01 and costs a sort per layer and draw).
    x = _zscore(np.vstack([rankdata(model) for model in models]))  # (m, pairs)
    h = _zscore(rankdata(human))
    boot = np.empty((n_boot, m))
    for start in range(0, n_boot, 100):
        counts = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(min(100, n_boot - start))])
        w = (counts[:, iu[0]] * counts[:, iu[1]]).astype(float)  # (draws, pairs)
        total = w.sum(axis=1)
        mx, my = (w @ x.T) / total[:, None], (w @ h) / total  # weighted means (draws, m), (draws,)
        cov = (w @ (x * h).T) / total[:, None] - mx * my[:, None]
        vx = (w @ (x ** 2).T) / total[:, None] - mx ** 2
        vy = (w @ h ** 2) / total - my ** 2
        boot[start:start + len(w)] = cov / np.sqrt(vx * vy[:, None])
    out = []
    for j in range(m):
        finite = boot[:, j][np.isfinite(boot[:, j])]
        low, high = np.percentile(finite, [2.5, 97.5]) if finite.size else (np.nan, np.nan)
        out.append({SPEARMAN_RHO: float(rho[j]), "p_perm": float(p[j]), "ci_low": float(low),
                    "ci_high": float(high)})
    return out


def layer_rsa(stimuli, layer_sets, n_perm: int = 1000, n_boot: int = 1000, seed: int = 0):
    """``layer_sets``: LayerFeatures of one or more weights. Returns (table, rdms npz bytes, summary)."""
    with one_thread():
        columns = rating_profile_columns(stimuli)
        if len(columns) < 1:
            return None
        ratings = np.array([[s.ratings[c] for c in columns] for s in stimuli.stimuli], dtype=float)
        human = human_rdm(ratings)
        n = len(stimuli)
        # saved as float32 and tested as saved, so the file recomputes every rho exactly
        human = human.astype(np.float32).astype(float)
        rdms, keys, models = {"human": human.astype(np.float32)}, [], []
        for features in layer_sets:
            for name, depth, X in zip(features.names, features.depths, features.arrays, strict=True):
                model = model_rdm(X).astype(np.float32)
                rdms[f"{features.weights}|{name}"] = model
                models.append(model.astype(float))
                keys.append((features.weights, name, float(depth), linear_cka(X, ratings)))
        tests = rdm_tests(models, human, n, n_perm, n_boot, seed)
        rows = [{"weights": weights, "layer": name, "depth": depth, "ratings": ";".join(columns),
                 "model_distance": MODEL_DISTANCE, "human_distance": HUMAN_DISTANCE, "n": n, **test,
                 "n_perm": n_perm, "n_boot": n_boot, "linear_cka": cka}
                for (weights, name, depth, cka), test in zip(keys, tests, strict=True)]
    table = pd.DataFrame(rows)[RSA_COLUMNS]
    buf = io.BytesIO()
    np.savez_compressed(buf, **rdms)
    best = table.loc[table[SPEARMAN_RHO].idxmax()] if table[SPEARMAN_RHO].notna().any() else None
    summary = {"ratings": columns, "model_distance": MODEL_DISTANCE, "human_distance": HUMAN_DISTANCE,
               "comparison": "Spearman rho of the RDMs' upper triangles; stimulus-permutation p; percentile "
                             "bootstrap CI over stimuli; no correction across layers",
               "best_layer": None if best is None else {"weights": best["weights"], "layer": best["layer"],
                                                        "depth": float(best["depth"]),
                                                        SPEARMAN_RHO: float(best[SPEARMAN_RHO])}}
    return table, buf.getvalue(), summary
