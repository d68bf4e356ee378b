"""Paired comparison of two scenarios on the same stimuli, from their predictions.

Scenarios with different label spaces (6 categories vs 12 disgust classes)
are compared on what they share: whether each stimulus was classified
correctly. The accuracy difference gets a paired bootstrap CI; fixed
classifiers (zero-shot, one holdout split: no ``fold`` values) also get
McNemar's exact test on the discordant stimuli.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from ..errors import UserError
from ..prompts import NAMED_ENSEMBLES

N_BOOTSTRAP = 1000
CI_LEVEL = 0.95


def default_comparisons() -> list[tuple[str, str]]:
    """Pairs worth comparing: baseline vs disgust prompts, single prompt vs ensemble, supervised vs zero-shot."""
    pairs = [("zeroshot-baseline", "zeroshot-disgust")]
    for ensemble in NAMED_ENSEMBLES:
        pairs += [("zeroshot-baseline", f"ensemble-baseline-{ensemble}"),
                  ("zeroshot-disgust", f"ensemble-disgust-{ensemble}")]
    for task in ("baseline", "disgust"):
        pairs += [(f"knn-cv10-{task}", f"zeroshot-{task}"), (f"linear-probe-cv10-{task}", f"knn-cv10-{task}")]
    return pairs


def _correctness(frame: pd.DataFrame, name: str) -> pd.Series:
    if frame is None or not len(frame):
        raise UserError(f"scenario {name} has no predictions to compare; run it first")
    if frame["stimulus"].duplicated().any():
        raise UserError(f"scenario {name} predicts some stimuli more than once; pass one scenario's predictions")
    frame = frame.set_index("stimulus")
    return (frame["y_true"].astype(str) == frame["y_pred"].astype(str)).astype(int)


def _is_fixed_classifier(frame: pd.DataFrame) -> bool:
    """Zero-shot and holdout predictions carry no fold; CV pools several fitted models."""
    return bool(frame["fold"].isna().all() or (frame["fold"].astype(str).str.strip() == "").all())


def _name(frame: pd.DataFrame, default: str) -> str:
    return str(frame["scenario"].iloc[0]) if "scenario" in frame and len(frame) else default


def compare(results_a: pd.DataFrame, results_b: pd.DataFrame, n_boot: int = N_BOOTSTRAP, seed: int = 0,
            level: float = CI_LEVEL) -> dict:
    """Paired bootstrap CI of accuracy(a) - accuracy(b) and, for fixed classifiers, McNemar's exact test.

    Both frames are predictions.csv rows (stimulus, y_true, y_pred, fold) of one scenario each.
    """
    name_a, name_b = _name(results_a, "a"), _name(results_b, "b")
    a, b = _correctness(results_a, name_a), _correctness(results_b, name_b)
    if set(a.index) != set(b.index):
        only_a, only_b = sorted(set(a.index) - set(b.index)), sorted(set(b.index) - set(a.index))
        raise UserError(f"cannot pair {name_a} and {name_b}: their stimuli differ ({len(only_a)} only in "
                        f"{name_a}, e.g. {only_a[:3]}; {len(only_b)} only in {name_b}, e.g. {only_b[:3]}); "
                        "compare scenarios evaluated on the same stimuli")
    b = b.loc[a.index]
    diff = (a.to_numpy() - b.to_numpy()).astype(float)
    rng = np.random.default_rng(seed)
    draws = diff[rng.integers(0, len(diff), size=(n_boot, len(diff)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    out = {
        "a": name_a, "b": name_b, "n": len(diff),
        "accuracy_a": float(a.mean()), "accuracy_b": float(b.mean()),
        "accuracy_difference": float(diff.mean()),
        "ci": [float(np.percentile(draws, tail)), float(np.percentile(draws, 100 - tail))],
        "ci_level": level, "n_boot": n_boot, "seed": seed, "mcnemar": None,
    }
    if _is_fixed_classifier(results_a) and _is_fixed_classifier(results_b):
        only_a, only_b = int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum())
        p = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
        out["mcnemar"] = {"only_a_correct": only_a, "only_b_correct": only_b, "p_value": float(p),
                          "test": "exact (binomial on discordant pairs)"}
    return out


def run_comparisons(predictions: dict[str, pd.DataFrame], pairs: Iterable[tuple[str, str]] | None = None,
                    seed: int = 0) -> list[dict]:
    """Compare every pair whose two scenarios were run; a pair on different stimuli is recorded as skipped."""
    out = []
    for a, b in default_comparisons() if pairs is None else pairs:
        if a not in predictions or b not in predictions:
            continue
        try:
            out.append(compare(predictions[a], predictions[b], seed=seed))
        except UserError as exc:
            out.append({"a": a, "b": b, "skipped": str(exc)})
    return out


def comparisons_for(results, pairs: Iterable[tuple[str, str]] | None = None, seed: int = 0) -> list[dict]:
    """``run_comparisons`` over ScenarioResults (those with predictions)."""
    frames = {r.id: r.predictions for r in results if r.predictions is not None and len(r.predictions)}
    return run_comparisons(frames, pairs, seed)
