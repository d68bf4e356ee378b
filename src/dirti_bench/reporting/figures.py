"""The report's figures (matplotlib, Agg): confusion matrices, the feature projection, alignment scatter.

Each ``*_figure`` builder returns the matplotlib Figure (tests read its titles and labels);
``png`` turns one into bytes. Every figure stands alone when pasted into slides: its title
names the scenario and the run (model, weights, dataset), random weights included.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # files only; never open a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DPI = 110


def png(fig) -> bytes:
    buf = io.BytesIO()
    # No metadata: the same inputs give byte-identical files.
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _category_colours(categories: Sequence[str]) -> dict[str, tuple]:
    names = list(dict.fromkeys(categories))
    cmap = plt.get_cmap("tab10")
    return {name: cmap(i % 10) for i, name in enumerate(names)}


def row_shares(counts: np.ndarray) -> np.ndarray:
    """Each row divided by its total (the true class's recall on the diagonal); empty rows stay 0."""
    counts = np.asarray(counts, dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def confusion_figure(labels: Sequence[str], confusion: Sequence[Sequence[int]], title: str,
                     order: Sequence[str] | None = None, dropped: Sequence[str] = ()):
    """Rows true, columns predicted, in ``order`` (a permutation of ``labels``); colour = share of the
    row (recall on the diagonal), each cell annotated with its count; dropped classes named below."""
    labels = list(labels)
    order = list(order) if order is not None and sorted(order) == sorted(labels) else labels
    index = [labels.index(name) for name in order]
    counts = np.asarray(confusion, dtype=int)[np.ix_(index, index)]
    shares = row_shares(counts)
    n = len(order)
    size = max(5.0, 0.55 * n + 3.0)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    fontsize = 9 if n <= 8 else 8
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=fontsize,
                    color="white" if shares[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of the true class (row)")
    ax.set_xticks(range(n), order, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n), order)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=10)
    if dropped:  # just below the x-axis label, wherever the rotated tick labels put it
        ax.annotate(f"dropped (no stimuli in the label space): {', '.join(dropped)}", xy=(0.5, 0.0),
                    xycoords=ax.xaxis.label, xytext=(0, -6), textcoords="offset points", ha="center",
                    va="top", fontsize=8, color="#900")
    return fig


def projection_figure(embedding: np.ndarray, categories: Sequence[str], rating: np.ndarray | None,
                      rating_name: str, title: str, axis_names: tuple[str, str] = ("UMAP 1", "UMAP 2")):
    """Two panels of the same projection: coloured by category, and by the rating (if any)."""
    panels = 2 if rating is not None else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.2 * panels, 5.4), squeeze=False)
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
        ax.set_xlabel(axis_names[0])
        ax.set_ylabel(axis_names[1])
    fig.suptitle(title, fontsize=10)
    return fig


def alignment_figure(human: np.ndarray, model: np.ndarray, categories: Sequence[str] | None, title: str,
                     xlabel: str, ylabel: str, scale: tuple[float, float] | None = None,
                     identity_line: bool = False):
    """Human rating vs model score, one point per stimulus (coloured by category when known), with
    a least-squares line, or y = x where the score predicts the rating itself (the ridge probe).
    The x axis spans the rating scale."""
    human, model = np.asarray(human, dtype=float), np.asarray(model, dtype=float)
    fig, ax = plt.subplots(figsize=(7.6, 5.2))
    if categories is None:
        ax.scatter(human, model, s=18, alpha=0.85)
    else:
        for name, colour in _category_colours(categories).items():
            mask = np.asarray(categories) == name
            ax.scatter(human[mask], model[mask], s=18, color=colour, label=name, alpha=0.85)
    low, high = scale if scale is not None else (float(np.floor(human.min())), float(np.ceil(human.max())))
    margin = 0.02 * (high - low or 1.0)
    xs = np.array([low, high])
    if identity_line:
        ax.plot(xs, xs, "k--", linewidth=1, label="y = x (perfect prediction)")
        ax.set_ylim(low - margin, high + margin)
    elif len(human) >= 2 and np.ptp(human) > 0:
        slope, intercept = np.polyfit(human, model, 1)
        ax.plot(xs, slope * xs + intercept, "k-", linewidth=1, label="least-squares line")
    ax.set_xlim(low - margin, high + margin)
    # outside the axes: points are never hidden behind it
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0,
              title="category" if categories is not None else None, title_fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    return fig
