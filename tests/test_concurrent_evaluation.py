"""On a large set the features-only scenarios run in worker processes beside the main one
(evaluators/workers.py): the same results as one process, skips and errors as in one process, and no
worker outlives ``evaluate``. Forced here on a small synthetic set with ``DIRTI_BENCH_JOBS=2``."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dirti_bench import contracts
from dirti_bench.contracts import EvaluatorSpec, KnnSplitOptions, Scenario
from dirti_bench.errors import ScenarioNotRunnable, UserError
from dirti_bench.evaluators.common import JOBS_ENV
from dirti_bench.evaluators.workers import evaluation_workers, longest_first
from dirti_bench.pipeline import evaluate
from dirti_bench.scenarios import REGISTRY

REPO = Path(__file__).resolve().parents[1]
# one of each features-only kind and three that need the text encoder, mixed in the run order (the probe
# with a fixed C and fewer resamples where the defaults only cost time)
CHOSEN = ["zeroshot-baseline", "knn-split-baseline", "linear-probe-cv10-disgust", "align-disgust-zeroshot",
          "knn-cv10-disgust", "align-disgust-probe", "threshold-sweep-disgust-binary"]
LIGHTER = {"linear-probe-cv10-disgust": {"C": 1.0}, "align-disgust-zeroshot": {"n_boot": 200, "n_perm": 200}}


def synthetic_context(n: int):
    """benchmarks/synthetic.py's ``feature_context``: 8 categories, 3 ratings, 512-d features."""
    spec = importlib.util.spec_from_file_location("dirti_synthetic", REPO / "benchmarks" / "synthetic.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.feature_context(n)


def children() -> set[int]:
    """This process's child processes that are not loky's resource tracker (one per process, shared
    by every loky pool, joblib's included, and kept for its lifetime by design)."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit():
                continue
            stat = (entry / "stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        if parent == os.getpid() and b"resource_tracker" not in command:
            found.add(int(entry.name))
    return found


@pytest.fixture(scope="module")
def ctx():
    return synthetic_context(400)


def test_workers_give_the_results_of_one_process_in_the_run_order(ctx, monkeypatch):
    scenarios = [REGISTRY[sid].with_options(**LIGHTER.get(sid, {})) for sid in CHOSEN]
    monkeypatch.setenv(JOBS_ENV, "1")
    assert evaluation_workers(scenarios, len(ctx.stimuli)) == 0
    serial = evaluate(scenarios, ctx)
    monkeypatch.setenv(JOBS_ENV, "2")
    assert evaluation_workers(scenarios, len(ctx.stimuli)) == 2
    # by their cost at 100k rows: 10-fold KNN, the ridge probe, the tuned logistic probe, the KNN split
    assert [CHOSEN[i] for i in longest_first(scenarios)] == ["knn-cv10-disgust", "align-disgust-probe",
                                                             "linear-probe-cv10-disgust", "knn-split-baseline"]
    before = children()
    concurrent = evaluate(scenarios, ctx)
    assert children() <= before  # the workers were joined
    assert [r.id for r in concurrent] == [r.id for r in serial] == CHOSEN
    for one, other in zip(serial, concurrent, strict=True):  # every field: metrics, CIs, options, frames, ...
        for name in (f.name for f in dataclasses.fields(one)):
            mine, theirs = getattr(one, name), getattr(other, name)
            if isinstance(mine, pd.DataFrame) or isinstance(theirs, pd.DataFrame):
                pd.testing.assert_frame_equal(mine, theirs, check_exact=True, obj=f"{one.id}.{name}")
            else:
                np.testing.assert_equal(theirs, mine, err_msg=f"{one.id}.{name}")  # NaN equals NaN here
    assert serial[CHOSEN.index("knn-split-baseline")].metrics["accuracy"] > 0.5  # the features carry the classes


def _refuses(scenario, ctx):
    raise UserError("the plugin refuses these features; pass other ones", "features")


def test_a_workers_skip_is_recorded_and_its_error_raised_unchanged_with_no_worker_left(ctx, monkeypatch):
    monkeypatch.setenv(JOBS_ENV, "2")
    spec = contracts.evaluators()["knn-split"]
    monkeypatch.setitem(contracts.EVALUATORS, "refusing-probe",
                        EvaluatorSpec("refusing-probe", KnnSplitOptions, _refuses, spec.check_runnable, spec.describe,
                                      features_only=True))
    no_rating = Scenario("align-fear-probe", "alignment", "align-probe", {"rating": "fear"})
    refusing = Scenario("refusing", "category", "refusing-probe", {})
    # one features-only scenario each: one worker beside the main process (a worker's start is the cost here)
    assert evaluation_workers([no_rating, REGISTRY["zeroshot-baseline"]], len(ctx.stimuli)) == 1
    skipped: dict[str, str] = {}
    before = children()
    results = evaluate([REGISTRY["zeroshot-baseline"], no_rating, REGISTRY["zeroshot-disgust"]], ctx, skipped=skipped)
    assert [r.id for r in results] == ["zeroshot-baseline", "zeroshot-disgust"]
    assert skipped == {"align-fear-probe": "synthetic-400 has no rating column 'fear'"}
    with pytest.raises(ScenarioNotRunnable, match="no rating column 'fear'"):  # without a skipped dict: raised
        evaluate([REGISTRY["zeroshot-baseline"], no_rating], ctx)
    with pytest.raises(UserError, match="the plugin refuses these features") as raised:
        evaluate([refusing, REGISTRY["zeroshot-baseline"]], ctx)
    assert type(raised.value) is UserError and raised.value.option == "features"
    assert children() <= before
