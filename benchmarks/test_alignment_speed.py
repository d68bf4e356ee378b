"""Alignment scenarios on the 60-image demo set stay fast with 1000 bootstrap draws and 1000
permutations (everything is vectorised over resamples); a perf test, off the default run."""

from __future__ import annotations

import numpy as np
import pytest

from dirti_bench.contracts import EvalContext
from dirti_bench.data.demo import make_demo
from dirti_bench.data.dirti import load_dirti
from dirti_bench.pipeline import evaluate_scenario
from dirti_bench.scenarios import REGISTRY

TARGET_S = 3.0


class _PromptAxes:
    """Texts with 'disgusting' on one axis, the rest on another (no model weights needed)."""

    def encode_texts(self, texts):
        return np.array([[0.0, 1.0, 0.0] if "disgusting" in t else [1.0, 0.0, 0.0] for t in texts], np.float32)


@pytest.fixture(scope="module")
def demo_context(tmp_path_factory):
    stimuli = load_dirti(make_demo(tmp_path_factory.mktemp("demo") / "dirti", seed=0))
    ratings = stimuli.ratings("disg_mean_all")
    a = np.pi / 4 + 0.05 * (ratings + np.random.default_rng(0).normal(0, 1, ratings.size) - 5) / 8
    features = np.stack([np.cos(a), np.sin(a), np.zeros_like(a)], axis=1).astype(np.float32)
    return EvalContext(stimuli=stimuli, encoder=_PromptAxes(), image_features=features, seed=0)


@pytest.mark.perf
@pytest.mark.parametrize("scenario_id", ["align-disgust-zeroshot", "align-disgust-probe"])
def test_alignment_scenario_speed(benchmark, demo_context, scenario_id):
    scenario = REGISTRY[scenario_id]
    assert scenario.options.n_boot == 1000
    result = benchmark.pedantic(evaluate_scenario, args=(scenario, demo_context), rounds=3, iterations=1, warmup_rounds=1)
    assert result.n == 60
    if not benchmark.disabled:  # --benchmark-disable runs once without timings
        assert benchmark.stats["mean"] < TARGET_S
