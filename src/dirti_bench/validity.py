"""Validity of every number a person reads: flags computed once per result, how an interval was
drawn, multiplicity corrections, chance levels and what makes two results comparable.

The flags are computed from a result's own results.json entry (``scenario_flags``) when the
results are written, stored as ``scenarios[id]["flags"]``, and every reader (terminal summary,
report, figure titles, leaderboard.csv, comparison report, heatmap) shows them from there
(``flags_of``; older results without the key get them computed the same way).

The rules (each flag is ``{"flag": code, "reason": words}``):

* ``intercept-only`` (a cross-validated probe): more than half (``INTERCEPT_ONLY_SHARE``) of
  its outer folds chose the strongest penalty of their grid, where a ridge probe predicts the
  training fold's mean and a logistic probe the class prior. Out of fold, predicting each
  training fold's mean anti-correlates with the held-out ratings by construction, so the
  probe's correlations (Pearson r, Spearman ρ, their over-ceiling ratios and within-category ρ:
  ``CORRELATION_METRICS``) are never shown with a CI or as a finding: every reader shows
  "no signal: predicts the training mean" instead (``suppressed``).
* ``degenerate`` (classification): one class is predicted for at least ``DEGENERATE_SHARE``
  (95%) of the stimuli.
* ``below-chance`` (classification): the upper end of the accuracy's 95% CI (the accuracy
  itself when no CI is recorded) is below the chance level, the share of the most frequent true
  class (what always guessing that class scores: ``chance_level``).
* ``not-comparable`` (between runs, ``comparability``): two results differ in dataset (name or
  content hash), label space (task or classes), threshold or other scenario options, model or
  weights; they are never paired, ranked or checked for drift against each other.

Intervals: classification CIs are percentile bootstrap intervals over ``N_BOOTSTRAP`` draws that
resample the stimuli within each true class (``interval_note``). Such an interval has zero
width when no draw can change the score: every class's stimuli all right or all wrong
(``zero_width_reason``), which is said wherever the interval is shown.

Multiplicity: a family of tests (the prompt sets of a task against its study wording, the
paired scenario comparisons of a run, the runs of a comparison against its reference) gets
Holm-adjusted p-values and Benjamini-Hochberg q-values beside the raw p-values
(``adjust_family``, statsmodels' ``multipletests``), the family named.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from .labels import TASKS

INTERCEPT_ONLY = "intercept-only"
DEGENERATE = "degenerate"
BELOW_CHANCE = "below-chance"
NOT_COMPARABLE = "not-comparable"
FLAGS = (INTERCEPT_ONLY, DEGENERATE, BELOW_CHANCE, NOT_COMPARABLE)

# Each flag's rule in a few words (the terminal's Findings; the module docstring has them in full).
FLAG_RULES = {"intercept-only": "over half of the probe's folds predict the training mean: its correlations are no "
                                "finding",
              "degenerate": "one class predicted for >= 95% of the stimuli",
              "below-chance": "accuracy's 95% CI below the majority class share",
              "not-comparable": "another dataset, label space, threshold, options, model or weights"}
INTERCEPT_ONLY_SHARE = 0.5  # flagged when strictly more than this share of folds is intercept-only
DEGENERATE_SHARE = 0.95  # flagged when one class takes at least this share of the predictions
NO_SIGNAL = "no signal: predicts the training mean"
# The strongest end of each probe's penalty grid (penalty.STRONGEST, kept here to stay import-light).
_STRONGEST = {"alpha": "high", "C": "low"}
N_BOOTSTRAP = 1000
CI_LEVEL = 0.95


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def is_correlation(metric: str) -> bool:
    """The probe correlations an intercept-only probe invalidates (not the raters' noise ceilings)."""
    return (metric.startswith(("pearson", "spearman", "mean_within_category"))
            and not metric.startswith("noise_ceiling"))


# ---------------------------------------------------------------- per-result flags


def intercept_only_share(sc: Mapping) -> tuple[int, int] | None:
    """(folds at the strongest penalty, folds) of a tuned probe; None for anything else."""
    penalty = (sc.get("extra") or {}).get("penalty")
    if not isinstance(penalty, Mapping) or penalty.get("mode") != "tuned":
        return None
    n = penalty.get("n_folds")
    k = penalty.get("n_strongest")
    if not isinstance(n, int) or not isinstance(k, int) or n <= 0:
        return None
    return k, n


def predicted_shares(sc: Mapping) -> dict[str, float]:
    """Share of the stimuli predicted as each class (column sums of the confusion matrix)."""
    labels, confusion = list(sc.get("labels") or []), sc.get("confusion") or []
    if not labels or len(confusion) != len(labels):
        return {}
    counts = np.asarray(confusion, dtype=float).sum(axis=0)
    total = counts.sum()
    return {} if total <= 0 else {label: float(c / total) for label, c in zip(labels, counts, strict=True)}


def chance_level(sc: Mapping) -> float | None:
    """A classification's chance level: the share of its most frequent true class (the accuracy of
    always guessing that class). None for alignment or without per-class support."""
    if sc.get("task") not in TASKS:
        return None
    support = [v.get("support", 0) for v in (sc.get("per_class") or {}).values() if isinstance(v, Mapping)]
    total = sum(support)
    return max(support) / total if total else None


def cohen_kappa(confusion: Sequence[Sequence[float]]) -> float | None:
    """Cohen's κ from a confusion matrix (rows true, columns predicted): (p_o − p_e) / (1 − p_e),
    the same number as scikit-learn's ``cohen_kappa_score`` on the predictions (tests check it).
    0 is chance agreement given both marginals, 1 perfect, on every label space."""
    cm = np.asarray(confusion, dtype=float)
    n = cm.sum()
    if cm.ndim != 2 or n <= 0:
        return None
    observed = np.trace(cm) / n
    expected = float((cm.sum(axis=1) * cm.sum(axis=0)).sum() / n ** 2)
    return None if expected >= 1 else float((observed - expected) / (1 - expected))


def scenario_flags(sc: Mapping) -> list[dict]:
    """The validity flags of one results.json scenario entry, by the rules of this module's docstring."""
    flags = []
    share = intercept_only_share(sc)
    if share is not None and share[0] > INTERCEPT_ONLY_SHARE * share[1]:
        k, n = share
        penalty = (sc.get("extra") or {}).get("penalty") or {}
        ridge = penalty.get("name") == "alpha"
        what = ("the training mean; its correlations are not a finding (negative by construction)" if ridge
                else "the class prior")
        flags.append({"flag": INTERCEPT_ONLY,
                      "reason": f"{k} of {n} folds chose the strongest penalty and predict {what}"})
    if sc.get("task") in TASKS:
        shares = predicted_shares(sc)
        if shares:
            top = max(shares, key=shares.get)
            if shares[top] >= DEGENERATE_SHARE:
                flags.append({"flag": DEGENERATE,
                              "reason": f"predicts {top!r} for {shares[top]:.0%} of the stimuli"})
        chance = chance_level(sc)
        accuracy = _number((sc.get("metrics") or {}).get("accuracy"))
        ci = (sc.get("ci") or {}).get("accuracy")
        high = _number(ci[1]) if isinstance(ci, list | tuple) and len(ci) == 2 else None
        bar = high if high is not None else accuracy
        if chance is not None and bar is not None and bar < chance - 1e-12:
            flags.append({"flag": BELOW_CHANCE,
                          "reason": f"accuracy {accuracy:.3f} (CI upper end {bar:.3f}) is below the chance level "
                                    f"{chance:.3f} (majority class share)"})
    return flags


def flags_of(sc: Mapping) -> list[dict]:
    """The flags results.json recorded for a scenario (computed the same way where an older file lacks them)."""
    recorded = sc.get("flags")
    if isinstance(recorded, list) and all(isinstance(f, Mapping) and "flag" in f for f in recorded):
        return [dict(f) for f in recorded]
    return scenario_flags(sc)


def with_flags(entry: dict) -> dict:
    """A scenario entry with its ``flags`` added (what results.json stores)."""
    return {**entry, "flags": scenario_flags(entry)}


def flag_codes(sc: Mapping) -> list[str]:
    return [f["flag"] for f in flags_of(sc)]


def flag_text(sc: Mapping, short: bool = False) -> str:
    """``degenerate; below-chance`` (short) or each flag with its reason; empty when none."""
    flags = flags_of(sc)
    if short:
        return "; ".join(f["flag"] for f in flags)
    return "; ".join(f"{f['flag']}: {f['reason']}" for f in flags)


def suppressed(sc: Mapping, metric: str) -> bool:
    """Whether ``metric`` of ``sc`` must not be shown as a finding (an intercept-only probe's correlation)."""
    return is_correlation(metric) and INTERCEPT_ONLY in flag_codes(sc)


# ---------------------------------------------------------------- intervals


def interval_note(n_boot: int = N_BOOTSTRAP, level: float = CI_LEVEL) -> str:
    return (f"{level:.0%} percentile bootstrap CI, {n_boot} draws resampling the stimuli within each true class "
            "(stratified by class)")


ZERO_WIDTH = 1e-12  # an interval no wider than this has zero width (every draw gave one value)


def zero_width_reason(sc: Mapping, metric: str) -> str | None:
    """Why a recorded interval has zero width, or None where it has width (or none is recorded)."""
    ci = (sc.get("ci") or {}).get(metric)
    if not (isinstance(ci, list | tuple) and len(ci) == 2 and all(_number(v) is not None for v in ci)):
        return None
    if abs(ci[1] - ci[0]) > ZERO_WIDTH:
        return None
    if metric.startswith("superlative_minus_nested") and ci[0] == 0:
        return "zero width: the nested and the superlative choice score alike on every stimulus, so every draw's gap is 0"
    if sc.get("task") in TASKS:
        if DEGENERATE in flag_codes(sc):
            return "zero width: one class predicted for (nearly) every stimulus, so no stratified draw can vary it"
        return "zero width: within each true class the stimuli are all right or all wrong, so no stratified draw can vary it"
    if metric == "r2_gain_over_intercept_only" and INTERCEPT_ONLY in flag_codes(sc):
        return "zero width: the probe is the intercept-only model in (nearly) every fold, so its gain is exactly 0"
    return "zero width: every bootstrap draw gives the same value"


def value_with_ci(sc: Mapping, metric: str, digits: int = 3, ci_digits: int = 2, short: bool = False) -> str:
    """The number as a person reads it: value [CI], "no signal ..." for an intercept-only probe's
    correlation (``short``: without its raw value), and a zero-width interval marked as such (the
    reason: ``zero_width_reason``)."""
    value = _number((sc.get("metrics") or {}).get(metric))
    if value is None:
        return "–"
    if suppressed(sc, metric):
        return NO_SIGNAL if short else f"{NO_SIGNAL} (raw {value:.{digits}f} is an artefact of the folds; no CI)"
    ci = (sc.get("ci") or {}).get(metric)
    if not (isinstance(ci, list | tuple) and len(ci) == 2 and all(_number(v) is not None for v in ci)):
        return f"{value:.{digits}f}"
    text = f"{value:.{digits}f} [{ci[0]:.{ci_digits}f}, {ci[1]:.{ci_digits}f}]"
    return text + (" (zero width)" if zero_width_reason(sc, metric) else "")


# ---------------------------------------------------------------- multiplicity


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values in the order given: statsmodels' ``multipletests(p,
    method="holm")`` step for step (same sort, products, running maximum and clip, so the same
    bits), without the full garbage collection that its Holm branch runs on every call (~20-40 ms
    each: a run adjusts a dozen families, a tenth of a warm re-run's time)."""
    order = np.argsort(p)
    adjusted = np.maximum.accumulate(np.take(p, order) * np.arange(p.size, 0, -1))
    adjusted[adjusted > 1] = 1
    out = np.empty_like(adjusted)
    out[order] = adjusted
    return out


def adjust_pvalues(pvalues: Sequence[float]) -> tuple[list[float], list[float]]:
    """(Holm-adjusted p, Benjamini-Hochberg q) of one family, in the order given."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(list(pvalues), dtype=float)
    if p.size == 0:
        return [], []
    bh = multipletests(p, method="fdr_bh")[1]
    return [float(v) for v in holm(p)], [float(v) for v in bh]


def adjust_family(tests: list[dict], family: str, pvalue) -> None:
    """Add ``p_holm``, ``q_bh``, ``family`` and ``family_size`` to each test of one family (in place);
    ``pvalue(test)`` reads its raw p (None: the test has none and stays outside the family)."""
    members = [(t, pvalue(t)) for t in tests]
    members = [(t, p) for t, p in members if _number(p) is not None]
    holm, bh = adjust_pvalues([p for _, p in members])
    for (test, _), h, q in zip(members, holm, bh, strict=True):
        test.update({"family": family, "family_size": len(members), "p_holm": h, "q_bh": q})


def mcnemar_p(comparison: Mapping) -> float | None:
    return _number((comparison.get("mcnemar") or {}).get("p_value"))


def adjust_comparisons(comparisons: list[dict], prompt_kind: str) -> list[dict]:
    """Holm and BH within each family of a run's comparisons: the prompt sets of one task against the
    study wording (one family per task and label space), and the other paired scenario comparisons."""
    families: dict[str, list[dict]] = {}
    for c in comparisons:
        if "skipped" in c:
            continue
        if c.get("kind") == prompt_kind:
            name = f"prompt sets vs {c.get('b')} (task {c.get('task')}; McNemar)"
        else:
            name = "paired scenario comparisons (McNemar)"
        families.setdefault(name, []).append(c)
    for name, members in families.items():
        adjust_family(members, name, mcnemar_p)
    return comparisons


def significant(test, alpha: float = 0.05) -> bool:
    """Whether a test (a recorded mapping or a typed ``Comparison``) survives Holm's correction within
    its family."""
    p = _number(test.get("p_holm") if isinstance(test, Mapping) else test.p_holm)
    return p is not None and p < alpha


# ---------------------------------------------------------------- comparability


def _threshold(sc: Mapping):
    return (sc.get("options") or {}).get("threshold")


# Option fields that describe a value in words (where it came from), not configure it.
DESCRIPTIVE_OPTIONS = frozenset({"n_raters_source"})


def config_options() -> frozenset[str]:
    """The option names a scenario is configured with (every field of contracts' option classes); the
    rest of a result's ``options`` (chosen templates, tie counts, ...) are outcomes, not configuration."""
    import dataclasses

    from .contracts import Options

    names, todo = set(), [Options]
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if dataclasses.is_dataclass(cls):
            names |= {f.name for f in dataclasses.fields(cls)}
    return frozenset(names - DESCRIPTIVE_OPTIONS)


def scenario_differences(a: Mapping, b: Mapping) -> list[str]:
    """What makes two entries of the same scenario id incomparable: label space, threshold, configured
    options (``config_options``; a key on one side only is not a difference: code may add options)."""
    out = []
    if a.get("task") != b.get("task"):
        out.append(f"task {a.get('task')!r} vs {b.get('task')!r}")
    elif a.get("labels") is not None and b.get("labels") is not None and list(a["labels"]) != list(b["labels"]):
        out.append(f"label space ({len(a['labels'])} classes vs {len(b['labels'])})"
                   if len(a["labels"]) != len(b["labels"]) else "label space (class names differ)")
    if _threshold(a) != _threshold(b):
        out.append(f"threshold {_threshold(a)!r} vs {_threshold(b)!r}")
    oa, ob = a.get("options") or {}, b.get("options") or {}
    configured = config_options()
    keys = [k for k in oa if k in ob and k != "threshold" and k in configured and oa[k] != ob[k]]
    out += [f"option {k} {oa[k]!r} vs {ob[k]!r}" for k in keys]
    return out


RUN_IDENTITY = (("dataset", "dataset"), ("dataset_sha256", "dataset content"), ("model", "model"),
                ("pretrained", "weights"), ("weights_sha256", "weights content"))


def run_differences(a: Mapping, b: Mapping) -> list[str]:
    """Dataset, model or weights differences between two results' ``run`` blocks (keys on both sides)."""
    out = []
    for key, name in RUN_IDENTITY:
        if key in a and key in b and a[key] != b[key]:
            va, vb = (str(v)[:12] if key.endswith("sha256") else v for v in (a[key], b[key]))
            out.append(f"{name} {va!r} vs {vb!r}")
    return out


def comparability(run_a: Mapping, sc_a: Mapping | None, run_b: Mapping, sc_b: Mapping | None,
                  same_model: bool = False) -> list[str]:
    """Why two results of one scenario are not comparable (empty when they are). ``same_model``: a
    model or weights difference counts too (a drift check), else only data and configuration do (a
    comparison of models)."""
    differences = run_differences(run_a, run_b)
    if not same_model:
        differences = [d for d in differences if d.startswith("dataset")]
    if sc_a is not None and sc_b is not None:
        differences += scenario_differences(sc_a, sc_b)
    return differences

