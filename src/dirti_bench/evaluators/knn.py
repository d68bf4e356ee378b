"""K-nearest neighbours on standardised raw image features (the study's KNN, done right).

With an even k (the study's 6 and 12) several classes often share the top vote. scikit-learn then
predicts the lowest class id, which in the disgust space is always the plain class before its
disgusting twin; ``tie_break="nearest"`` gives the vote to the tied class of the nearest neighbour
instead. Either way each result records how many of its predictions were tied votes.
"""

from __future__ import annotations

import hashlib

import numpy as np
from sklearn.base import clone
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .crossval import cross_validated, holdout

# The neighbours of the last few (training data, queries, k): a fold's prediction, vote shares and
# tied-vote count all read them, so the brute-force search (quadratic in n) runs once per fold, not three
# times. A CV scenario predicts every fold before it counts the tied votes fold by fold, so the cache
# holds a whole CV's folds (each entry is only k neighbours per query).
_RECENT_NEIGHBOURS: dict = {}
NEIGHBOUR_CACHE_SIZE = 16


def _digest(a: np.ndarray) -> tuple:
    a = np.ascontiguousarray(a)
    return a.shape, a.dtype.str, hashlib.blake2b(a.data, digest_size=16).hexdigest()


class ReusedNeighboursKNN(KNeighborsClassifier):
    """Uniform-vote KNN whose neighbour search is done once per (training data, queries, k) and reused
    by ``predict``, ``predict_proba`` and the tied-vote count, also across a refitted clone (the key is
    the data's content). The vote shares are scikit-learn's: each class's votes over k."""

    def kneighbors(self, X=None, n_neighbors=None, return_distance=True):
        if X is None:  # the training points themselves, without each one's own: not cached
            return super().kneighbors(X, n_neighbors, return_distance)
        k = n_neighbors or self.n_neighbors
        X = self._validate_queries(X)
        key = (_digest(self._fit_X), _digest(X), k)
        if key not in _RECENT_NEIGHBOURS:
            while len(_RECENT_NEIGHBOURS) >= NEIGHBOUR_CACHE_SIZE:
                _RECENT_NEIGHBOURS.pop(next(iter(_RECENT_NEIGHBOURS)))
            _RECENT_NEIGHBOURS[key] = super().kneighbors(X, k, return_distance=True)
        distances, neighbours = _RECENT_NEIGHBOURS[key]
        return (distances, neighbours) if return_distance else neighbours

    def _validate_queries(self, X):
        from sklearn.utils.validation import validate_data

        return validate_data(self, X, accept_sparse="csr", reset=False, order="C")

    def predict_proba(self, X):
        votes = vote_counts(self._train_ids[self.kneighbors(X, return_distance=False)], len(self.classes_))
        # tied_votes' count for these queries, kept so a fold run in a worker process brings it back
        self.tied_votes_ = tied_count(votes)
        return votes / self.n_neighbors

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]  # ties: the lowest class id

    def fit(self, X, y):
        super().fit(X, y)
        self._train_ids = np.searchsorted(self.classes_, np.asarray(y))
        return self


class NearestTieKNN(ReusedNeighboursKNN):
    """Uniform-vote KNN whose tied votes go to the tied class of the nearest neighbour."""

    def predict(self, X):
        neighbours = self.kneighbors(X, return_distance=False)  # nearest first
        labels = self._train_ids[neighbours]
        votes = vote_counts(labels, len(self.classes_))
        tied = votes == votes.max(axis=1, keepdims=True)
        # the first neighbour (in distance order) whose class is among the tied ones
        first = np.argmax(np.take_along_axis(tied, labels, axis=1), axis=1)
        return self.classes_[labels[np.arange(len(labels)), first]]


def vote_counts(neighbour_labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(n, n_classes) votes from (n, k) class ids of each row's neighbours."""
    rows = np.repeat(np.arange(len(neighbour_labels)), neighbour_labels.shape[1])
    return np.bincount(rows * n_classes + neighbour_labels.ravel(),
                       minlength=len(neighbour_labels) * n_classes).reshape(-1, n_classes)


def tied_count(votes: np.ndarray) -> int:
    """Rows of ``votes`` whose top vote is shared by several classes."""
    return int(((votes == votes.max(axis=1, keepdims=True)).sum(axis=1) > 1).sum())


def tied_votes(model, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> int:
    """Test rows whose top vote is shared by several classes (``model``: scaler -> KNN, unfitted)."""
    model = clone(model).fit(x_train, y_train)
    neighbours = model[-1].kneighbors(model[:-1].transform(x_test), return_distance=False)
    _, ids = np.unique(y_train, return_inverse=True)
    return tied_count(vote_counts(ids[neighbours], int(ids.max()) + 1))


def knn_factory(scenario):
    """k is capped at the smallest training set (KNeighborsClassifier fails otherwise); both are recorded."""
    k = scenario.options.k
    tie_break = scenario.options.tie_break

    def make(n_train: int):
        k_eff = min(k, n_train)
        knn = NearestTieKNN if tie_break == "nearest" else ReusedNeighboursKNN
        model = make_pipeline(StandardScaler(), knn(n_neighbors=k_eff))
        return model, {"k_effective": k_eff, "k_capped": k_eff < k,
                       "model": "StandardScaler -> KNeighborsClassifier"}

    return make


def _record_ties(result, n: int) -> None:
    result.options["tied_votes"] = n
    result.options["tied_votes_share"] = n / result.n if result.n else 0.0


def evaluate_split(scenario, ctx):
    ties: list[int] = []  # counted by the model that made the predictions, from its one neighbour search
    result = holdout(scenario, ctx, knn_factory(scenario), ties=ties)
    _record_ties(result, ties[0])
    return result


def evaluate_cv(scenario, ctx):
    make = knn_factory(scenario)
    ties: list[int] = []  # each fold counts the tied votes among its own predictions
    result = cross_validated(scenario, ctx, make, fold_ties=ties)
    _record_ties(result, int(sum(ties)))
    return result
