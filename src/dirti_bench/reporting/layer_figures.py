"""Layer-profile figures: per rating, out-of-fold Pearson r against layer depth with bootstrap CIs,
the nested (training-fold) choice and the same-data superlative choice marked, the published
all-data leave-one-out profile dashed, the random-init band over seeds and the pixel baseline."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..validity import ZERO_WIDTH
from .console import figure_title

LAYER_KINDS = ("layers", "pixels", "random-init")


@dataclass(frozen=True)
class LayerOutcome:
    """What a layer-wise scenario's figure and report rows read: its results.json entry's options,
    extra, metrics and ci, and its rows of layer_scores.csv (the same from a run in memory or a folder)."""

    id: str
    options: dict
    extra: dict
    metrics: dict
    ci: dict
    layer_scores: pd.DataFrame

    @classmethod
    def from_result(cls, result) -> LayerOutcome:
        return cls(result.id, result.options, result.extra, result.metrics, result.ci, result.layer_scores)

    @classmethod
    def from_outcome(cls, outcome, scores: pd.DataFrame) -> LayerOutcome:
        """From a ``ScenarioOutcome`` read back from results.json and the run's layer_scores.csv."""
        return cls(outcome.id, outcome.options, outcome.extra, outcome.metrics, outcome.ci,
                   scores[scores["scenario"] == outcome.id].reset_index(drop=True))


def layer_kind(sid: str) -> str | None:
    return next((k for k in LAYER_KINDS if sid.startswith(f"{k}-")), None)


def group_by_rating(outcomes) -> dict[str, dict]:
    """rating -> {'layers' | 'pixels' | 'random-init' -> outcome}, in the order the scenarios ran."""
    grouped: dict[str, dict] = {}
    for outcome in outcomes:
        grouped.setdefault(outcome.options.get("rating", ""), {})[layer_kind(outcome.id)] = outcome
    return grouped


def layer_profile_figure(by_kind: dict, rating: str, run: dict):
    """``by_kind``: 'layers', 'random-init', 'pixels' -> LayerOutcome (any may be missing)."""
    from .figures import plt  # matplotlib loads only when a figure is drawn

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    layers = by_kind.get("layers")
    if layers is not None:
        s = layers.layer_scores
        depth, r = s["depth"].to_numpy(float), s["pearson_r"].to_numpy(float)
        ax.fill_between(depth, s["ci_low"], s["ci_high"], color="C0", alpha=0.2, label="95% bootstrap CI")
        ax.plot(depth, r, "o-", color="C0", label=f"this run's model ({layers.options.get('layers', {}).get('mode', '')}), "
                                                  "out-of-fold r per layer")
        penalty = layers.extra.get("penalty") or {}
        if penalty.get("n_folds") and penalty.get("n_strongest", 0) > penalty["n_folds"] / 2:
            ax.text(0.02, 0.97, f"intercept-only: {penalty['n_strongest']} of {penalty['n_folds']} folds' chosen layers "
                    "predict the training mean; no finding", transform=ax.transAxes, va="top", fontsize=8, color="C3")
        ax.plot(depth, s["published_loo_r"], "--", color="C0", alpha=0.6, label="all-data leave-one-out r (published)")
        choice = layers.extra["layer_choice"]
        sup = choice["superlative"]
        ax.plot([sup["depth"]], [sup["pearson_r"]], "*", ms=16, color="C3",
                label=f"superlative (same-data) r={sup['pearson_r']:.3f}")
        nested = choice["nested"]
        ax.axhline(nested["pearson_r"], color="C2", lw=1.2,
                   label=f"nested choice r={nested['pearson_r']:.3f} (modal depth {nested['modal_depth']:.2f}, "
                         f"{nested['folds_agreeing']}/{nested['folds']} folds)")
        ax.axhspan(*nested["ci"], color="C2", alpha=0.1)
    random_init = by_kind.get("random-init")
    if random_init is not None:
        s = random_init.layer_scores.pivot_table(index="depth", columns="weights", values="pearson_r")
        ax.fill_between(s.index.to_numpy(float), s.min(axis=1), s.max(axis=1), color="0.5", alpha=0.3,
                        label=f"random init, {s.shape[1]} seeds (min-max)")
    pixels = by_kind.get("pixels")
    if pixels is not None:
        r = pixels.metrics["pearson_r"]
        low, high = pixels.ci.get("pearson_r", (np.nan, np.nan))
        ax.axhline(r, color="C1", ls=":", label=f"pixel statistics r={r:.3f} [{low:.2f}, {high:.2f}]")
    ax.set_xlabel("layer depth (fraction of the image tower; 1.0 = pooled output before projection)")
    ax.set_ylabel(f"Pearson r with {rating}")
    ax.set_xlim(0, 1.02)
    ax.axhline(0, color="black", lw=0.5)
    legend_below(ax, fontsize=7)
    ax.set_title(figure_title(run, f"Layer profile: ridge probe per layer vs {rating}"), fontsize=9)
    return fig


def legend_below(ax, fontsize: float) -> None:
    """The legend under the axes, outside the data: "best" inside them still covered the published
    line or a band where the profile filled the plot."""
    ax.legend(fontsize=fontsize, loc="upper center", bbox_to_anchor=(0.5, -0.14), borderaxespad=0, ncol=2)


def layer_figure_name(rating: str) -> str:
    return f"layer_profile_{re.sub(r'[^A-Za-z0-9_-]+', '-', rating)}.png"


def _write_profiles(grouped: dict, draw, name, out_dir: Path, run: dict) -> list[Path]:
    """``draw(by_kind, key, run)`` for each group, saved as ``out_dir / name(key)``."""
    from .figures import plt, png  # matplotlib loads only when a figure is drawn

    written = []
    for key, by_kind in grouped.items():
        fig = draw(by_kind, key, run)
        path = Path(out_dir) / name(key)
        path.write_bytes(png(fig))
        plt.close(fig)
        written.append(path)
    return written


def write_layer_profiles(results, out_dir: Path, run: dict) -> list[Path]:
    """One figure per rating of the layer-wise scenarios into ``out_dir``."""
    grouped = group_by_rating(LayerOutcome.from_result(r) for r in results)
    return _write_profiles(grouped, layer_profile_figure, layer_figure_name, out_dir, run)


def _ci(values) -> str:
    """`` [low, high]``, marked "(zero width)" as ``validity.value_with_ci`` marks it: a figure legend or
    table cell read alone must not show [1.000, 1.000] as certainty."""
    try:
        low, high = values
        return f" [{low:.3f}, {high:.3f}]" + (" (zero width)" if abs(high - low) <= ZERO_WIDTH else "")
    except (TypeError, ValueError):
        return ""


def layer_sentence(sc) -> str | None:
    """What a layer-wise scenario (layers-*, pixels-*, random-init-*) fitted and chose, in words, from
    its outcome (a ``ScenarioOutcome`` or ``LayerOutcome``); None for any other scenario."""
    options, extra, metrics, ci = sc.options, sc.extra, sc.metrics, sc.ci
    if "layer_rule" not in options:
        return None
    rating, folds = options.get("rating", "the rating"), options.get("folds_used", "?")
    if "features" in options:  # pixels
        text = (f"Ridge probe on {options.get('n_features', '?')} low-level image statistics, no model "
                f"({options['features']}), vs {rating} in stratified {folds}-fold CV.")
        if "model_minus_pixels_r" in metrics:
            text += (f" The model's final embedding in the same probe and folds: r = {metrics['model_final_r']:.3f}; "
                     f"model - pixels = {metrics['model_minus_pixels_r']:.3f}{_ci(ci.get('model_minus_pixels_r'))} "
                     "(paired bootstrap).")
        return text
    layers = options.get("layers", {})
    what = (f"Ridge probe on each of {len(layers.get('layers', []))} layers ({layers.get('mode', '?')}: "
            f"{layers.get('pooling', '')}) vs {rating} in stratified {folds}-fold CV; alpha by leave-one-out "
            "squared error (one-SE rule) on each training fold; headline: the layer with the best leave-one-out r "
            "on each training fold.")
    if "seeds" in options:  # random-init
        return (what + f" Random weights, seeds {', '.join(map(str, options['seeds']))}: nested r band "
                f"{metrics.get('band_min_r', float('nan')):.3f} to {metrics.get('band_max_r', float('nan')):.3f}; "
                f"the run's model minus random = {metrics.get('trained_minus_random_r', float('nan')):.3f}"
                f"{_ci(ci.get('trained_minus_random_r'))} (paired bootstrap). Layer profile: {layer_figure_name(rating)}.")
    choice = extra.get("layer_choice", {})
    nested, sup, pub = choice.get("nested", {}), choice.get("superlative", {}), choice.get("published", {})
    gap = choice.get("gap", {})
    return (what + f" Nested: r = {nested.get('pearson_r', float('nan')):.3f}, modal layer {nested.get('modal_layer')} "
            f"(depth {nested.get('modal_depth', float('nan')):.2f}, {nested.get('folds_agreeing')}/{nested.get('folds')} "
            f"folds). Superlative (chosen on the scores it reports): {sup.get('layer')} (depth "
            f"{sup.get('depth', float('nan')):.2f}) r = {sup.get('pearson_r', float('nan')):.3f}; superlative - nested = "
            f"{gap.get('superlative_minus_nested', float('nan')):.3f}{_ci(gap.get('ci'))}. Published rule (all-data "
            f"leave-one-out, alpha and layer chosen on it): {pub.get('layer')} r = {pub.get('loo_r', float('nan')):.3f}. "
            f"Layer profile: {layer_figure_name(rating)}; every layer's predictions: layer_predictions.csv.")


def _r_ci(r, ci) -> str:
    if r is None or not np.isfinite(r):
        return "n/a"
    return f"{r:.3f}{_ci(ci)}"


def layer_summary_row(by_kind: dict, rating: str) -> dict:
    """One report row per rating: the nested headline with its modal layer and depth, the superlative
    layer, the gap, the random-init band and the pixel baseline, each with its CI (or "not run")."""
    row = {"rating": rating}
    layers = by_kind.get("layers")
    if layers is not None:
        choice = layers.extra.get("layer_choice", {})
        nested, sup, gap = choice.get("nested", {}), choice.get("superlative", {}), choice.get("gap", {})
        row["nested r [95% CI]"] = _r_ci(nested.get("pearson_r"), nested.get("ci"))
        row["nested layer (depth, folds agreeing)"] = (f"{nested.get('modal_layer')} ({nested.get('modal_depth', float('nan')):.2f}, "
                                                       f"{nested.get('folds_agreeing')}/{nested.get('folds')})")
        row["superlative layer (depth)"] = f"{sup.get('layer')} ({sup.get('depth', float('nan')):.2f})"
        row["superlative r [95% CI]"] = _r_ci(sup.get("pearson_r"), sup.get("ci"))
        row["superlative - nested [95% CI]"] = _r_ci(gap.get("superlative_minus_nested"), gap.get("ci"))
    else:
        row["nested r [95% CI]"] = "not run"
    random_init = by_kind.get("random-init")
    if random_init is not None:
        m = random_init.metrics
        seeds = ", ".join(map(str, random_init.options.get("seeds", [])))
        row["random-init nested r band (seeds)"] = (f"{m.get('band_min_r', float('nan')):.3f} to "
                                                   f"{m.get('band_max_r', float('nan')):.3f} ({seeds})")
        row["random-init r over seeds as repeats [95% CI]"] = _r_ci(m.get("pearson_r"), random_init.ci.get("pearson_r"))
        row["model - random-init [95% CI]"] = _r_ci(m.get("trained_minus_random_r"),
                                                    random_init.ci.get("trained_minus_random_r"))
    else:
        row["random-init nested r band (seeds)"] = "not run"
    pixels = by_kind.get("pixels")
    if pixels is not None:
        row["pixels r [95% CI]"] = _r_ci(pixels.metrics.get("pearson_r"), pixels.ci.get("pearson_r"))
        if "model_minus_pixels_r" in pixels.metrics:
            row["model final - pixels [95% CI]"] = _r_ci(pixels.metrics["model_minus_pixels_r"],
                                                         pixels.ci.get("model_minus_pixels_r"))
    else:
        row["pixels r [95% CI]"] = "not run"
    return row


# ---------------------------------------------------------------- the classifiers per layer

# scenario id prefix -> (its part in a task's figure, how the figure and the table name it)
CLASS_LAYER_KINDS = {"linear-probe-layers": ("probe", "logistic probe"), "knn-layers": ("knn", "KNN"),
                     "linear-probe-pixels": ("pixels", "pixel statistics"),
                     "linear-probe-random-init": ("random-init", "random init")}


def class_layer_kind(sid: str) -> str | None:
    return next((kind for prefix, (kind, _) in CLASS_LAYER_KINDS.items() if sid.startswith(f"{prefix}-")), None)


def _class_outcome_from_result(result) -> tuple[str, LayerOutcome, list[str]]:
    from ..validity import flag_codes

    return (result.task, LayerOutcome(result.id, result.options, result.extra, result.metrics, result.ci,
                                      result.layer_class_scores), flag_codes(result.to_json()))


def class_outcome_from_outcome(outcome, scores: pd.DataFrame) -> tuple[str, LayerOutcome, list[str]]:
    """A ``ScenarioOutcome`` read back from results.json, with its rows of layer_class_scores.csv."""
    return outcome.task, LayerOutcome.from_outcome(outcome, scores), list(outcome.flag_codes)


def group_by_task(outcomes) -> dict[str, dict]:
    """task -> {'probe' | 'knn' | 'pixels' | 'random-init' -> (outcome, flags)}, in the order they ran."""
    grouped: dict[str, dict] = {}
    for task, outcome, flags in outcomes:
        grouped.setdefault(task, {})[class_layer_kind(outcome.id)] = (outcome, flags)
    return grouped


def class_layer_figure_name(task: str) -> str:
    return f"layer_profile_task-{re.sub(r'[^A-Za-z0-9_-]+', '-', task)}.png"


def class_layer_profile_figure(by_kind: dict, task: str, run: dict):
    """Out-of-fold accuracy per layer vs depth (95% stratified bootstrap CI bands) of the probe and the
    KNN per layer, each one's nested choice (line, CI band) and superlative layer (star), the random-init
    band over seeds and the pixel-statistics probe; validity flags written on the plot."""
    from .figures import plt  # matplotlib loads only when a figure is drawn

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    flagged = []
    for kind, color in (("probe", "C0"), ("knn", "C4")):
        if kind not in by_kind:
            continue
        outcome, flags = by_kind[kind]
        name = next(label for k, label in CLASS_LAYER_KINDS.values() if k == kind)
        s = outcome.layer_scores.sort_values("depth")
        depth = s["depth"].to_numpy(float)
        ax.fill_between(depth, s["accuracy_ci_low"], s["accuracy_ci_high"], color=color, alpha=0.15)
        ax.plot(depth, s["accuracy"], "o-", color=color, label=f"{name}: out-of-fold accuracy per layer (95% CI band)")
        choice = outcome.extra.get("layer_choice", {})
        sup, nested = choice.get("superlative", {}), choice.get("nested", {})
        if sup:
            ax.plot([sup["depth"]], [sup["accuracy"]], "*", ms=15, color=color, markeredgecolor="C3",
                    label=f"{name} superlative (same-data) {sup['layer']} acc={sup['accuracy']:.3f}")
        if nested:
            ax.axhline(outcome.metrics.get("accuracy", np.nan), color=color, lw=1.2, ls="-.",
                       label=f"{name} nested choice acc={outcome.metrics.get('accuracy', np.nan):.3f} (modal depth "
                             f"{nested.get('modal_depth', np.nan):.2f}, {nested.get('folds_agreeing')}/{nested.get('folds')} folds)")
            ci = outcome.ci.get("accuracy")
            if ci and None not in ci:
                ax.axhspan(*ci, color=color, alpha=0.07)
        flagged += [f"{outcome.id}: {', '.join(flags)}"] if flags else []
    if "random-init" in by_kind:
        outcome, flags = by_kind["random-init"]
        s = outcome.layer_scores.pivot_table(index="depth", columns="weights", values="accuracy")
        ax.fill_between(s.index.to_numpy(float), s.min(axis=1), s.max(axis=1), color="0.5", alpha=0.3,
                        label=f"random init (logistic probe), {s.shape[1]} seeds: per-layer accuracy min-max")
        flagged += [f"{outcome.id}: {', '.join(flags)}"] if flags else []
    if "pixels" in by_kind:
        outcome, flags = by_kind["pixels"]
        acc = outcome.metrics.get("accuracy", np.nan)
        ax.axhline(acc, color="C1", ls=":", label=f"pixel statistics (logistic probe) acc={acc:.3f}{_ci(outcome.ci.get('accuracy'))}")
        flagged += [f"{outcome.id}: {', '.join(flags)}"] if flags else []
    if flagged:
        ax.text(0.02, 0.03, "flags: " + "; ".join(flagged), transform=ax.transAxes, fontsize=7, color="C3")
    ax.set_xlabel("layer depth (fraction of the image tower; 1.0 = pooled output before projection)")
    ax.set_ylabel(f"out-of-fold accuracy ({task} task)")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(0, 1.02)
    legend_below(ax, fontsize=6.5)
    ids = ", ".join(outcome.id for outcome, _ in by_kind.values())
    ax.set_title(figure_title(run, f"Layer profile ({ids}): accuracy per layer, {task} task"), fontsize=8)
    return fig


def write_class_layer_profiles(results, out_dir: Path, run: dict) -> list[Path]:
    """One figure per classification task of the classifier-per-layer scenarios into ``out_dir``."""
    grouped = group_by_task(_class_outcome_from_result(r) for r in results)
    return _write_profiles(grouped, class_layer_profile_figure, class_layer_figure_name, out_dir, run)


def _acc_ci(metrics: dict, ci: dict, metric: str) -> str:
    return _r_ci(metrics.get(metric), ci.get(metric))


def class_layer_summary_rows(by_kind: dict, task: str) -> list[dict]:
    """Report rows of one task, one per classifier per layer (logistic probe, KNN): its nested accuracy
    with the modal layer, the superlative layer and the gap; the controls (random-init band, pixel
    probe), which are logistic probes, on the probe's row; each with its CI and flags."""
    rows = []
    for kind in ("probe", "knn"):
        if kind not in by_kind and not (kind == "probe" and ({"random-init", "pixels"} & set(by_kind))):
            continue
        row = {"task": task, "classifier": next(label for k, label in CLASS_LAYER_KINDS.values() if k == kind)}
        if kind in by_kind:
            outcome, flags = by_kind[kind]
            m, ci = outcome.metrics, outcome.ci
            choice = outcome.extra.get("layer_choice", {})
            nested, sup = choice.get("nested", {}), choice.get("superlative", {})
            row["nested acc. [95% CI]"] = _acc_ci(m, ci, "accuracy") + (f" ({'; '.join(flags)})" if flags else "")
            row["nested layer (depth, folds agreeing)"] = (f"{nested.get('modal_layer')} ({nested.get('modal_depth', np.nan):.2f}, "
                                                           f"{nested.get('folds_agreeing')}/{nested.get('folds')})")
            row["superlative layer (depth): acc. [95% CI]"] = (f"{sup.get('layer')} ({sup.get('depth', np.nan):.2f}): "
                                                               f"{_acc_ci(m, ci, 'superlative_accuracy')}")
            row["superlative - nested [95% CI]"] = _acc_ci(m, ci, "superlative_minus_nested_accuracy")
        else:
            row["nested acc. [95% CI]"] = "not run"
        if kind == "probe":
            if "random-init" in by_kind:
                outcome, flags = by_kind["random-init"]
                m = outcome.metrics
                seeds = ", ".join(map(str, outcome.options.get("seeds", [])))
                row["random-init nested acc. band (seeds)"] = (f"{m.get('band_min_accuracy', np.nan):.3f} to "
                                                              f"{m.get('band_max_accuracy', np.nan):.3f} ({seeds})"
                                                              + (f" ({'; '.join(flags)})" if flags else ""))
                row["model - random-init [95% CI]"] = _acc_ci(m, outcome.ci, "trained_minus_random_accuracy")
            else:
                row["random-init nested acc. band (seeds)"] = "not run"
            if "pixels" in by_kind:
                outcome, flags = by_kind["pixels"]
                row["pixels acc. [95% CI]"] = _acc_ci(outcome.metrics, outcome.ci, "accuracy") + \
                    (f" ({'; '.join(flags)})" if flags else "")
                if "model_minus_pixels_accuracy" in outcome.metrics:
                    row["model final - pixels [95% CI]"] = _acc_ci(outcome.metrics, outcome.ci,
                                                                   "model_minus_pixels_accuracy")
            else:
                row["pixels acc. [95% CI]"] = "not run"
        rows.append(row)
    return rows
