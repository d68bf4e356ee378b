"""Layer-profile figures: per rating, out-of-fold Pearson r against layer depth with bootstrap CIs,
the nested (training-fold) choice and the same-data superlative choice marked, the published
all-data leave-one-out profile dashed, the random-init band over seeds and the pixel baseline."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .console import figure_title
from .figures import plt, png

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
    ax.legend(fontsize=7, loc="best")
    ax.set_title(figure_title(run, f"Layer profile: ridge probe per layer vs {rating}"), fontsize=9)
    return fig


def layer_figure_name(rating: str) -> str:
    return f"layer_profile_{re.sub(r'[^A-Za-z0-9_-]+', '-', rating)}.png"


def write_layer_profiles(results, out_dir: Path, run: dict) -> list[Path]:
    """One figure per rating of the layer-wise scenarios into ``out_dir``."""
    grouped = group_by_rating(LayerOutcome.from_result(r) for r in results)
    written = []
    for rating, by_kind in grouped.items():
        fig = layer_profile_figure(by_kind, rating, run)
        path = Path(out_dir) / layer_figure_name(rating)
        path.write_bytes(png(fig))
        plt.close(fig)
        written.append(path)
    return written


def _ci(values) -> str:
    try:
        low, high = values
        return f" [{low:.3f}, {high:.3f}]"
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
