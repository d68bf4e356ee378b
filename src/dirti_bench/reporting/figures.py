"""The report's figures as PNG bytes (matplotlib, Agg): confusion matrices, UMAP, alignment scatter."""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # files only; never open a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402

DPI = 110


def _png(fig) -> bytes:
    buf = io.BytesIO()
    # No metadata: the same inputs give byte-identical files.
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _category_colours(categories: Sequence[str]) -> dict[str, tuple]:
    names = list(dict.fromkeys(categories))
    cmap = plt.get_cmap("tab10")
    return {name: cmap(i % 10) for i, name in enumerate(names)}


def confusion_png(labels: Sequence[str], confusion: Sequence[Sequence[int]], title: str) -> bytes:
    """Counts heatmap, rows = true class, columns = predicted; tick labels rotated to fit."""
    n = len(labels)
    size = max(4.5, 0.55 * n + 2.5)
    fig, ax = plt.subplots(figsize=(size, size))
    display = ConfusionMatrixDisplay(np.asarray(confusion, dtype=int), display_labels=list(labels))
    # every cell carries its count, so a colour bar would only take space
    display.plot(ax=ax, cmap="Blues", colorbar=False, xticks_rotation=45,
                 text_kw={"fontsize": 9 if n <= 8 else 8})
    plt.setp(ax.get_xticklabels(), ha="right", rotation_mode="anchor")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=10)
    return _png(fig)


def umap_png(embedding: np.ndarray, categories: Sequence[str], rating: np.ndarray | None,
             rating_name: str, title: str) -> bytes:
    """Two panels of the same projection: coloured by category, and by the rating (if any)."""
    panels = 2 if rating is not None else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.2 * panels, 5.2), squeeze=False)
    ax = axes[0, 0]
    for name, colour in _category_colours(categories).items():
        mask = np.asarray(categories) == name
        ax.scatter(embedding[mask, 0], embedding[mask, 1], s=18, color=colour, label=name, alpha=0.85)
    ax.legend(fontsize=8, loc="best", title="category", title_fontsize=8)
    ax.set_title("by category", fontsize=10)
    if rating is not None:
        ax = axes[0, 1]
        points = ax.scatter(embedding[:, 0], embedding[:, 1], s=18, c=rating, cmap="magma_r", alpha=0.9)
        fig.colorbar(points, ax=ax, label=rating_name)
        ax.set_title(f"by {rating_name}", fontsize=10)
    for ax in axes[0]:
        ax.set_xlabel("UMAP 1")
        ax.set_ylabel("UMAP 2")
    fig.suptitle(title, fontsize=11)
    return _png(fig)


def alignment_png(human: np.ndarray, model: np.ndarray, categories: Sequence[str] | None,
                  title: str, xlabel: str = "human rating", ylabel: str = "model score") -> bytes:
    """Human rating vs model score, one point per stimulus, coloured by category when known."""
    fig, ax = plt.subplots(figsize=(6.4, 5.0))
    if categories is None:
        ax.scatter(human, model, s=18, alpha=0.85)
    else:
        for name, colour in _category_colours(categories).items():
            mask = np.asarray(categories) == name
            ax.scatter(human[mask], model[mask], s=18, color=colour, label=name, alpha=0.85)
        ax.legend(fontsize=8, loc="best", title="category", title_fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    return _png(fig)


def heatmap_png(values: np.ndarray, rows: Sequence[str], columns: Sequence[str], title: str,
                colour_label: str) -> bytes:
    """Scenario x run values, each cell annotated; an empty (NaN) cell was not run."""
    values = np.asarray(values, dtype=float)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(columns) + 3.5), max(3.0, 0.42 * len(rows) + 1.8)))
    image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", aspect="auto")
    fig.colorbar(image, ax=ax, label=colour_label)
    ax.set_xticks(range(len(columns)), labels=list(columns), rotation=35, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(len(rows)), labels=list(rows))
    for (i, j), value in np.ndenumerate(values):
        ax.text(j, i, "–" if np.isnan(value) else f"{value:.2f}", ha="center", va="center", fontsize=8,
                color="white" if np.isfinite(value) and value < np.nanmean(values) else "black")
    ax.set_title(title, fontsize=10)
    return _png(fig)

