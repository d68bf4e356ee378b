"""Every registered scenario as one benchmark case (``pytest benchmarks -k disgust``), plus encoding throughput.

Each case times its evaluation with pytest-benchmark, checks the result's
label set, and records the headline metrics in ``benchmark.extra_info``; the
session writes all results to one results directory (see conftest.py).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from dirti_bench.errors import ScenarioNotRunnable
from dirti_bench.evaluators.metrics import HEADLINE_METRICS, N_BOOTSTRAP, bootstrap_ci
from dirti_bench.evaluators.registry import check_runnable
from dirti_bench.pipeline import evaluate_scenario
from dirti_bench.scenarios import REGISTRY

RECORDED_OPTIONS = ("folds_effective", "k_effective", "k_capped", "n_train", "n_test")


def timed(func, *args):
    start = time.perf_counter()
    out = func(*args)
    return out, time.perf_counter() - start


def classification_info(result) -> dict:
    info = {m: result.metrics[m] for m in HEADLINE_METRICS}
    info |= {f"ci95_{name}": bounds for name, bounds in result.ci.items()}
    info |= {"n": result.n, "labels": list(result.labels), "dropped_classes": list(result.dropped_classes)}
    info |= {k: result.options[k] for k in RECORDED_OPTIONS if k in result.options}
    if result.folds:
        info |= {f"fold_mean_{m}": result.folds["mean"][m] for m in ("accuracy", "f1_macro")}
        info |= {f"fold_sd_{m}": result.folds["sd"][m] for m in ("accuracy", "f1_macro")}
    return info


# parametrized over the registry (and a rated set's own rating columns), per model of a --models file,
# by conftest.pytest_generate_tests
def test_scenario(model_spec, scenario, bench_ctx, benchmark, record_result, record_skip):
    try:  # a rated set without a disgust rating cannot run the disgust tasks: skipped, and recorded
        check_runnable(scenario, bench_ctx)
    except ScenarioNotRunnable as exc:
        record_skip(scenario.id, str(exc))
        pytest.skip(f"{scenario.id}: {exc}")
    # evaluate_scenario is the CLI's path: it checks the result (label sets, or an alignment
    # result's metrics recomputed from its own predictions) before returning it.
    result = benchmark.pedantic(evaluate_scenario, args=(scenario, bench_ctx), rounds=1, iterations=1)
    assert result.id == scenario.id and result.task == scenario.task
    if scenario.is_classification:
        benchmark.extra_info.update(classification_info(result))
    else:
        benchmark.extra_info.update({k: v for k, v in result.metrics.items() if isinstance(v, int | float)})
        if "r2_gain_over_intercept_only" in result.ci:
            # No probe scores below predicting the training mean by more than noise (the paired
            # bootstrap CI of its R² gain over the intercept-only model reaches 0).
            assert result.ci["r2_gain_over_intercept_only"][1] >= 0, result.metrics
    record_result(result)


def _raw_encoder(ctx):
    """The model behind the embedding cache: throughput must time real forward passes."""
    return getattr(ctx.encoder, "encoder", ctx.encoder)


def _device(ctx) -> str:
    return str(_raw_encoder(ctx).run_info().get("device", "unknown"))


def _record_rate(ctx, benchmark, record_throughput, name: str, encode, items: list, unit: str) -> None:
    """Time one pass of the raw encoder over ``items`` and record ``<unit>_per_s`` on the active device."""
    embeddings, seconds = benchmark.pedantic(timed, args=(encode, items), rounds=1, iterations=1)
    assert embeddings.shape[0] == len(items)
    rate = {f"{unit}_per_s": len(items) / seconds, f"n_{unit}": len(items), "device": _device(ctx)}
    benchmark.extra_info.update(rate)
    record_throughput(name, rate)


def test_image_encoding_throughput(model_spec, bench_ctx, benchmark, record_throughput):
    paths = [s.path for s in bench_ctx.stimuli.stimuli]
    _record_rate(bench_ctx, benchmark, record_throughput, "image_encoding",
                 _raw_encoder(bench_ctx).encode_images, paths, "images")


def test_prompt_encoding_throughput(model_spec, bench_ctx, benchmark, record_throughput):
    from dirti_bench.prompts import load_ensemble

    space = bench_ctx.label_space(REGISTRY["zeroshot-baseline"])
    prompts = load_ensemble("clip80").bind(space).all_prompts()
    _record_rate(bench_ctx, benchmark, record_throughput, "prompt_encoding",
                 _raw_encoder(bench_ctx).encode_texts, prompts, "prompts")


def test_bootstrap_ci_speed(benchmark):
    """1000 stratified draws for a DIRTI-sized result (300 stimuli, 12 classes)."""
    rng = np.random.default_rng(0)
    labels = [f"class {i}" for i in range(12)]
    y_true, y_pred = rng.choice(labels, 300), rng.choice(labels, 300)
    ci, seconds = benchmark.pedantic(timed, args=(bootstrap_ci, y_true, y_pred, labels), rounds=1, iterations=1)
    assert set(ci) == {"accuracy", "f1_macro"} and all(lo <= hi for lo, hi in ci.values())
    benchmark.extra_info.update({"seconds": seconds, "n_boot": N_BOOTSTRAP, "n": 300, "n_labels": 12})
