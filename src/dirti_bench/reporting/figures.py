"""The report's figures (matplotlib, Agg): confusion matrices, the feature projection, alignment scatter,
threshold and template sweeps, and prompt sets against the study wording.

Each ``*_figure`` builder returns the matplotlib Figure (tests read its titles and labels);
``png`` turns one into bytes. Every figure stands alone when pasted into slides: its title
names the scenario and the run (model, weights, dataset), random weights included.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # files only; never open a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .formats import MISSING  # noqa: E402

DPI = 110


FIGURE_JOBS_ENV = "DIRTI_BENCH_JOBS"
MAX_FIGURE_JOBS = 4  # beyond a few workers, starting them costs more than the ~0.3 s a figure takes


def png(fig) -> bytes:
    buf = io.BytesIO()
    # No metadata: the same inputs give byte-identical files.
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


# Scatters stay readable at any n: markers shrink and fade as points multiply, every point is drawn in
# one seeded random order (no category drawn last over the others), and above SUBSAMPLE_ABOVE points a
# seeded subsample of that many is drawn, at least MIN_PER_CATEGORY of each category, stated on the figure.
SUBSAMPLE_ABOVE = 5000
MIN_PER_CATEGORY = 50
SUBSAMPLE_SEED = 0


def drawn_points(categories: Sequence[str] | None, n: int) -> np.ndarray:
    """Indices of the points a scatter draws, in the seeded random order they are drawn in."""
    order = np.random.default_rng(SUBSAMPLE_SEED).permutation(n)
    if n <= SUBSAMPLE_ABOVE:
        return order
    keep = np.zeros(n, dtype=bool)
    if categories is not None:
        labels = np.asarray(categories)[order]
        for name in dict.fromkeys(categories):
            keep[order[np.flatnonzero(labels == name)[:MIN_PER_CATEGORY]]] = True
    rest = order[~keep[order]][:max(0, SUBSAMPLE_ABOVE - int(keep.sum()))]
    keep[rest] = True
    return order[keep[order]]


def _marker(drawn: int) -> dict:
    """Marker size and opacity for ``drawn`` points: 18 pt and 0.85 up to a few hundred, less above."""
    return {"s": float(np.clip(18 * np.sqrt(300 / max(drawn, 1)), 3, 18)),
            "alpha": float(np.clip(0.85 * np.sqrt(600 / max(drawn, 1)), 0.3, 0.85)), "linewidths": 0}


def subsample_note(drawn: int, n: int) -> str:
    """What a subsampled scatter says about it ('' when every point is drawn)."""
    return (f"{drawn:,} of {n:,} points drawn (seeded subsample, seed {SUBSAMPLE_SEED}; statistics use all)"
            if drawn < n else "")


def _state_subsample(ax, drawn: int, n: int) -> None:
    """The subsample note under the axes, right-aligned below the axis label (the title is the figure's)."""
    if drawn < n:
        ax.annotate(subsample_note(drawn, n), (1.0, 0.0), xycoords="axes fraction", xytext=(0, -40),
                    textcoords="offset points", fontsize=7, ha="right", va="top", color="0.35")


def _category_scatter(ax, x: np.ndarray, y: np.ndarray, categories: Sequence[str]) -> list:
    """One scatter of every drawn point coloured by category, and a legend of the categories."""
    from matplotlib.lines import Line2D

    colours = _category_colours(categories)
    idx = drawn_points(categories, len(x))
    labels = np.asarray(categories)
    ax.scatter(x[idx], y[idx], color=[colours[c] for c in labels[idx]], **_marker(idx.size))
    return [Line2D([], [], linestyle="", marker="o", markersize=5, color=colour, label=name)
            for name, colour in colours.items()]


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
    handles = _category_scatter(ax, embedding[:, 0], embedding[:, 1], categories)
    # below the axes, outside the data
    ax.legend(handles=handles, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), borderaxespad=0,
              ncol=min(4, len(handles)), title="category", title_fontsize=8)
    idx = drawn_points(categories, len(embedding))
    note = subsample_note(idx.size, len(embedding))
    ax.set_title("by category" + (f"\n{note}" if note else ""), fontsize=10 if not note else 8)
    if rating is not None:
        ax = axes[0, 1]
        points = ax.scatter(embedding[idx, 0], embedding[idx, 1], c=np.asarray(rating)[idx], cmap="magma_r",
                            **_marker(idx.size))
        fig.colorbar(points, ax=ax, label=rating_name)
        ax.set_title(f"by {rating_name}" + (f"\n{note}" if note else ""), fontsize=10 if not note else 8)
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
    handles = []
    if categories is None:
        idx = drawn_points(None, len(human))
        ax.scatter(human[idx], model[idx], **_marker(idx.size))
        _state_subsample(ax, idx.size, len(human))
    else:
        handles = _category_scatter(ax, human, model, categories)
        _state_subsample(ax, min(len(human), SUBSAMPLE_ABOVE), len(human))
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
    ax.legend(handles=handles + ax.get_lines(), fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              borderaxespad=0, title="category" if categories is not None else None, title_fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    return fig


def reliability_figure(panels: Sequence[dict], title: str):
    """Reliability diagram: per equal-mass bin, accuracy against mean confidence, one line per panel
    (raw, temperature-calibrated); the diagonal is perfect calibration, marker area the bin size."""
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    for panel, marker in zip(panels, ("o", "s", "^"), strict=False):
        table = panel["table"]
        conf = [row["mean_confidence"] for row in table]
        acc = [row["accuracy"] for row in table]
        ax.plot(conf, acc, marker=marker, linewidth=1.2, label=panel["label"])
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("mean top-label confidence in the bin")
    ax.set_ylabel("accuracy in the bin")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(title, fontsize=10)
    return fig


def heatmap_figure(values: np.ndarray, rows: Sequence[str], columns: Sequence[str], title: str,
                   colour_label: str, annotations: Sequence[Sequence[str | None]] | None = None,
                   limits: tuple[float, float] | None = None):
    """Scenario x run values, each cell annotated (``annotations`` replaces a cell's number where given,
    e.g. a flag); an empty (NaN) cell was not run or has no valid value. ``limits``: the colour scale."""
    values = np.asarray(values, dtype=float)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(columns) + 3.5), max(3.0, 0.42 * len(rows) + 1.8)))
    vmin, vmax = limits if limits is not None else (None, None)
    image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", aspect="auto", vmin=vmin, vmax=vmax)
    fig.colorbar(image, ax=ax, label=colour_label)
    ax.set_xticks(range(len(columns)), labels=list(columns), rotation=35, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(len(rows)), labels=list(rows))
    middle = np.nanmean(values) if np.isfinite(values).any() else 0.0
    if limits is not None:
        middle = (limits[0] + limits[1]) / 2
    for (i, j), value in np.ndenumerate(values):
        text = MISSING if np.isnan(value) else f"{value:.2f}"
        if annotations is not None and annotations[i][j]:
            text = annotations[i][j]
        ax.text(j, i, text, ha="center", va="center", fontsize=7 if "\n" in text else 8,
                color="white" if np.isfinite(value) and value < middle else "black")
    ax.set_title(title, fontsize=10)
    return fig


# ---------------------------------------------------------------- prompt experiments

SWEEP_COLOURS = {"accuracy": "tab:blue", "balanced_accuracy": "tab:green", "f1_macro": "tab:orange"}
SWEEP_LABELS = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy", "f1_macro": "macro F1"}


def _panels(n: int, width: float, height: float, vertical: bool = False):
    shape, size = ((n, 1), (width, height * n)) if vertical else ((1, n), (width * n, height))
    fig, axes = plt.subplots(*shape, figsize=size, squeeze=False, layout="constrained")
    return fig, axes.ravel()


def threshold_sweep_figure(panels: Sequence[dict], study_threshold: float | None, title: str):
    """Metric vs disgust threshold with its 95% CI band, one panel per sweep scenario.

    Each panel: ``{"title", "x": thresholds, "metrics": {name: values}, "ci": {name: (n, 2)},
    "rule_points": [(x, label)]}``; the study's threshold (None off DIRTI: not drawn) is a dashed
    line, a data-driven rule (mean+1sd) or this run's own threshold a labelled dotted one.
    """
    fig, axes = _panels(len(panels), 5.6, 4.2)
    for ax, panel in zip(axes, panels, strict=True):
        x = np.asarray(panel["x"], dtype=float)
        order = np.argsort(x, kind="stable")
        for name, values in panel["metrics"].items():
            ci = np.asarray(panel["ci"][name], dtype=float)
            colour = SWEEP_COLOURS.get(name)
            ax.plot(x[order], np.asarray(values, dtype=float)[order], marker="o", ms=3.5, color=colour,
                    label=SWEEP_LABELS.get(name, name))
            ax.fill_between(x[order], ci[order, 0], ci[order, 1], color=colour, alpha=0.15, linewidth=0)
        if study_threshold is not None:
            ax.axvline(study_threshold, color="black", linestyle="--", linewidth=1, label=f"study: {study_threshold:g}")
        for value, label in panel.get("rule_points", ()):
            ax.axvline(value, color="grey", linestyle=":", linewidth=1)
            ax.annotate(label, (value, 1.0), xycoords=("data", "axes fraction"), fontsize=7, ha="left",
                        va="top", rotation=90, color="dimgrey")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("disgust threshold (mean rating)")
        ax.set_ylabel("score (95% CI band)")
        ax.set_title(panel["title"], fontsize=9)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=10)
    return fig


def template_sweep_figure(panels: Sequence[dict], title: str):
    """Each template's score as one dot (jittered), per metric, with reference lines.

    Each panel: ``{"title", "metrics": {name: values over templates}, "references": {label: {name: value}}}``.
    """
    fig, axes = _panels(len(panels), 4.6, 4.2)
    rng = np.random.default_rng(0)  # fixed jitter: identical figures for identical inputs
    styles = ({"color": "black", "linestyle": "--"}, {"color": "tab:red", "linestyle": "-"},
              {"color": "tab:purple", "linestyle": ":"})
    for ax, panel in zip(axes, panels, strict=True):
        names = list(panel["metrics"])
        for i, name in enumerate(names):
            values = np.asarray(panel["metrics"][name], dtype=float)
            ax.scatter(i + rng.uniform(-0.18, 0.18, len(values)), values, s=10, alpha=0.6,
                       color=SWEEP_COLOURS.get(name))
        for (label, refs), style in zip(panel["references"].items(), styles, strict=False):
            for i, name in enumerate(names):
                if refs.get(name) is not None:
                    ax.hlines(refs[name], i - 0.35, i + 0.35, linewidth=1.6, label=label if i == 0 else None, **style)
        ax.set_xticks(range(len(names)), [SWEEP_LABELS.get(n, n) for n in names], fontsize=8)
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel("score of one template alone")
        ax.set_title(panel["title"], fontsize=9)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=10)
    return fig


def forest_figure(panels: Sequence[dict], title: str, wording: str = "study wording"):
    """Δ (prompt set − the fixed wording) with 95% CI per prompt set, one panel per task.

    Each panel: ``{"title", "rows": [{"label", "accuracy": (d, lo, hi), "f1_macro": (d, lo, hi)}]}``;
    ``wording``: what the fixed wording is called (``published.wording_name``: "default wording" off DIRTI).
    """
    height = max(2.2, 0.38 * max(len(p["rows"]) for p in panels) + 1.2)
    fig, axes = _panels(len(panels), 7.0, height, vertical=True)
    offsets = {"accuracy": -0.13, "f1_macro": 0.13}
    markers = {"accuracy": "o", "f1_macro": "s"}
    for ax, panel in zip(axes, panels, strict=True):
        rows = panel["rows"]
        y = np.arange(len(rows))[::-1]
        for name, offset in offsets.items():
            values = [(r[name] if r.get(name) else (np.nan, np.nan, np.nan)) for r in rows]
            d, lo, hi = (np.array(v, dtype=float) for v in zip(*values, strict=True))
            ax.errorbar(d, y + offset, xerr=[d - lo, hi - d], fmt=markers[name], ms=4, capsize=2,
                        color=SWEEP_COLOURS[name], label=f"Δ {SWEEP_LABELS[name]}")
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_yticks(y, [r["label"] for r in rows], fontsize=7)
        ax.set_xlabel(f"difference to the {wording} (95% CI)")
        ax.set_title(panel["title"], fontsize=9)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=10)
    return fig


# ---------------------------------------------------------------- drawing a report's figures at once


def draw(drawing) -> bytes:
    """The PNG of a ``render.Drawing``: its builder here, called with its arguments."""
    return png(globals()[drawing.builder](*drawing.args, **(drawing.kwargs or {})))


def figure_jobs(count: int) -> int:
    """Worker processes for ``count`` figures: ``DIRTI_BENCH_JOBS`` where set, else the cores (at most
    MAX_FIGURE_JOBS). Each figure is drawn alone from its own arguments, so the bytes do not depend on it."""
    from ..evaluators.common import JOBS_ENV, fold_jobs

    jobs = fold_jobs() if os.environ.get(JOBS_ENV) else min(MAX_FIGURE_JOBS, os.cpu_count() or 1)
    return max(1, min(jobs, count))


def draw_all(drawings: Sequence, jobs: int, reporter=None) -> list[bytes]:
    """Every drawing's PNG, in order; in ``jobs`` worker processes when more than one. On POSIX the
    workers are forked from this process, which has matplotlib loaded already (no import per worker)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    def shown(items):
        return reporter.bar(items, total=len(drawings), desc="drawing figures") if reporter is not None else items

    if jobs <= 1 or len(drawings) <= 1:
        return list(shown(draw(d) for d in drawings))
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context(method)) as pool:
        return list(shown(pool.map(draw, drawings)))


