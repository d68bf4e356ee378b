"""K-nearest neighbours on standardised raw image features (the study's KNN, done right)."""

from __future__ import annotations

from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .crossval import cross_validated, holdout


def knn_factory(scenario):
    """k is capped at the smallest training set (KNeighborsClassifier fails otherwise); both are recorded."""
    k = scenario.options.k

    def make(n_train: int):
        k_eff = min(k, n_train)
        model = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=k_eff))
        return model, {"k_effective": k_eff, "k_capped": k_eff < k,
                       "model": "StandardScaler -> KNeighborsClassifier"}

    return make


def evaluate_split(scenario, ctx):
    return holdout(scenario, ctx, knn_factory(scenario))


def evaluate_cv(scenario, ctx):
    return cross_validated(scenario, ctx, knn_factory(scenario))
