"""Layer-profile figures: per rating, out-of-fold Pearson r against layer depth with bootstrap CIs,
the nested (training-fold) choice and the same-data superlative choice marked, the published
all-data leave-one-out profile dashed, the random-init band over seeds and the pixel baseline."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .console import figure_title
from .figures import plt, png


def layer_profile_figure(by_kind: dict, rating: str, run: dict):
    """``by_kind``: 'layers', 'random-init', 'pixels' -> ScenarioResult (any may be missing)."""
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    layers = by_kind.get("layers")
    if layers is not None:
        s = layers.layer_scores
        depth, r = s["depth"].to_numpy(float), s["pearson_r"].to_numpy(float)
        ax.fill_between(depth, s["ci_low"], s["ci_high"], color="C0", alpha=0.2, label="95% bootstrap CI")
        ax.plot(depth, r, "o-", color="C0", label=f"trained ({layers.options.get('layers', {}).get('mode', '')}), "
                                                  "10-fold out-of-fold r")
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
    grouped: dict[str, dict] = {}
    for result in results:
        kind = next(k for k in ("layers", "pixels", "random-init") if result.id.startswith(f"{k}-"))
        grouped.setdefault(result.options.get("rating", ""), {})[kind] = result
    written = []
    for rating, by_kind in grouped.items():
        fig = layer_profile_figure(by_kind, rating, run)
        path = Path(out_dir) / layer_figure_name(rating)
        path.write_bytes(png(fig))
        plt.close(fig)
        written.append(path)
    return written
