"""Linear probe: logistic regression on standardised raw image features, as in CLIP_benchmark."""

from __future__ import annotations

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .crossval import cross_validated

MAX_ITER = 1000
# Same L2-penalised multinomial objective as lbfgs, but Newton-CG converges in ~15 iterations on
# 512-d CLIP features where lbfgs needs hundreds of iterations for the same optimum.
SOLVER = "newton-cg"


def probe_factory(scenario):
    c = scenario.options.C

    def make(n_train: int):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, solver=SOLVER, max_iter=MAX_ITER))
        return model, {"C": c, "solver": SOLVER, "max_iter": MAX_ITER, "model": "StandardScaler -> LogisticRegression"}

    return make


def evaluate_cv(scenario, ctx):
    return cross_validated(scenario, ctx, probe_factory(scenario))
