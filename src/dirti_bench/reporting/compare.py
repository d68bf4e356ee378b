"""Paired comparison of two scenarios on the same stimuli, from their predictions.

Every prompt set (a shipped or custom ensemble, the cross-validated best template)
is paired with the study wording on the same label space: the accuracy and macro-F1
differences get paired bootstrap CIs (the same resampled stimuli for both) and
McNemar's exact test. Supervised models are paired with zero-shot on what both
share: whether each stimulus was classified correctly (McNemar only for fixed
classifiers: zero-shot, one holdout split, no ``fold`` values). Scenarios on
different label spaces (6 categories vs 11 disgust classes) are not paired: their
chance levels differ, so the report shows them as two scores with their chance levels.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from ..errors import UserError
from ..evaluators.metrics import (
    confusion_stack,
    draw_counts,
    label_indices,
    macro_f1_from_confusion,
    resampled_confusions,
)
from ..validity import adjust_comparisons, adjust_family

N_BOOTSTRAP = 1000
CI_LEVEL = 0.95
PROMPT_KIND = "prompt set vs study wording"
STUDY_PROMPT_SET = "study"


def default_comparisons() -> list[tuple[str, str]]:
    """Supervised vs zero-shot and probe vs KNN per task (prompt sets: ``prompt_pairs``)."""
    pairs = []
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


def _paired_f1(a: pd.DataFrame, b: pd.DataFrame, labels: list[str], idx: np.ndarray, level: float,
               names: tuple[str, str]) -> dict:
    """Macro F1 of a and b (scikit-learn's, over ``labels``) and the CI of their difference on ``idx`` draws."""
    a, b = a.set_index("stimulus"), b.set_index("stimulus")
    b = b.loc[a.index]
    if not (a["y_true"].astype(str) == b["y_true"].astype(str)).all():
        raise UserError(f"cannot pair the macro F1 of {names[0]} and {names[1]}: their true classes differ; "
                        "compare scenarios on the same label space")
    true = label_indices(a["y_true"].astype(str), labels)
    pred_a, pred_b = label_indices(a["y_pred"].astype(str), labels), label_indices(b["y_pred"].astype(str), labels)
    f1_a, f1_b = (float(macro_f1_from_confusion(confusion_stack(true, p, len(labels)))[0]) for p in (pred_a, pred_b))
    f1_drawn = macro_f1_from_confusion(resampled_confusions(draw_counts(idx, true.size), true,
                                                            np.stack([pred_a, pred_b]), len(labels)))
    diff = f1_drawn[0] - f1_drawn[1]
    tail = (1 - level) / 2 * 100
    return {"f1_macro_a": f1_a, "f1_macro_b": f1_b, "f1_macro_difference": f1_a - f1_b,
            "f1_macro_ci": [float(np.percentile(diff, tail)), float(np.percentile(diff, 100 - tail))]}


def compare(results_a: pd.DataFrame, results_b: pd.DataFrame, n_boot: int = N_BOOTSTRAP, seed: int = 0,
            level: float = CI_LEVEL, labels: list[str] | None = None, mcnemar: bool | None = None) -> dict:
    """Paired bootstrap CI of accuracy(a) - accuracy(b) and, for fixed classifiers, McNemar's exact test.

    Both frames are predictions.csv.gz rows (stimulus, y_true, y_pred, fold) of one scenario each.
    With ``labels`` (the shared label space) the macro-F1 difference gets a CI from the same draws.
    ``mcnemar`` forces the test on or off; by default it runs for fixed classifiers only.
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
    idx = rng.integers(0, len(diff), size=(n_boot, len(diff)))
    draws = diff[idx].mean(axis=1)
    tail = (1 - level) / 2 * 100
    out = {
        "a": name_a, "b": name_b, "n": len(diff),
        "accuracy_a": float(a.mean()), "accuracy_b": float(b.mean()),
        "accuracy_difference": float(diff.mean()),
        "ci": [float(np.percentile(draws, tail)), float(np.percentile(draws, 100 - tail))],
        "ci_level": level, "n_boot": n_boot, "seed": seed, "mcnemar": None,
    }
    if mcnemar or (mcnemar is None and _is_fixed_classifier(results_a) and _is_fixed_classifier(results_b)):
        only_a, only_b = int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum())
        p = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
        out["mcnemar"] = {"only_a_correct": only_a, "only_b_correct": only_b, "p_value": float(p),
                          "test": "exact (binomial on discordant pairs)"}
    if labels is not None:
        out |= _paired_f1(results_a, results_b, list(labels), idx, level, (name_a, name_b))
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


def prompt_pairs(results) -> list[tuple[object, object]]:
    """(prompt-set result, study-wording result) for every zero-shot prompt set that has a study-wording
    scenario on the same label space (task, classes, threshold, rating and stimuli)."""
    groups: dict[tuple, list] = {}
    for r in results:
        if not r.is_classification or "prompt_set" not in r.options or r.predictions is None or not len(r.predictions):
            continue
        key = (r.task, tuple(r.labels), r.options.get("threshold"), r.options.get("rating"),
               frozenset(r.predictions["stimulus"]))
        groups.setdefault(key, []).append(r)
    pairs = []
    for members in groups.values():
        study = next((r for r in members if r.options["prompt_set"] == STUDY_PROMPT_SET and r.sweep is None), None)
        if study is not None:
            pairs += [(r, study) for r in members if r.options["prompt_set"] != STUDY_PROMPT_SET]
    return pairs


def prompt_comparisons(results, seed: int = 0) -> list[dict]:
    """Each prompt set against the study wording on its label space: Δ accuracy and Δ macro F1, and
    McNemar's test (a cross-validated template choice too: its pooled predictions are one per stimulus,
    each from a template chosen without that stimulus)."""
    return [{"kind": PROMPT_KIND, "task": a.task, "prompt_set": a.options["prompt_set"],
             **compare(a.predictions, b.predictions, seed=seed, labels=list(a.labels), mcnemar=True)}
            for a, b in prompt_pairs(results)]


def template_tests(results) -> None:
    """Each template of a template sweep against the sweep's study-wording point, on the same stimuli:
    McNemar's exact test, Holm and BH over the sweep's templates (one family per sweep), added to each
    template point of ``result.sweep`` as ``vs_study`` (results.json keeps it with the point)."""
    from ..evaluators.sweeps import STUDY_POINT

    for r in results:
        frame = r.sweep_predictions
        if not r.sweep or frame is None or not len(frame) or STUDY_POINT not in set(frame["point"]):
            continue
        study = frame[frame["point"] == STUDY_POINT]
        tests = []
        for point in r.sweep:
            if point.get("kind") != "template":
                continue
            rows = frame[frame["point"] == point["point"]]
            try:
                test = compare(rows.assign(scenario=point["point"]), study.assign(scenario=STUDY_POINT),
                               n_boot=1, mcnemar=True)["mcnemar"]  # exact: nothing is drawn
            except UserError:
                continue
            point["vs_study"] = dict(test)
            tests.append(point["vs_study"])
        adjust_family(tests, f"templates of {r.id} vs its study wording (McNemar)", lambda t: t.get("p_value"))


def comparisons_for(results, pairs: Iterable[tuple[str, str]] | None = None, seed: int = 0) -> list[dict]:
    """Prompt sets against the study wording, then ``run_comparisons`` over ScenarioResults (with predictions);
    each family's McNemar p-values get Holm and Benjamini-Hochberg adjustments (validity.adjust_comparisons)."""
    frames = {r.id: r.predictions for r in results if r.predictions is not None and len(r.predictions)}
    template_tests(results)
    return adjust_comparisons(prompt_comparisons(results, seed) + run_comparisons(frames, pairs, seed), PROMPT_KIND)
