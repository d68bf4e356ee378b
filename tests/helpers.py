"""Builders shared by the tests: constructed stimulus sets and label spaces, rated-set folders on
disk, JSON files. Each builds exactly what it is given, so tests state their inputs."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from dirti_bench.data.ratedset import SIDECAR
from dirti_bench.data.stimuli import Stimulus, StimulusSet
from dirti_bench.labels import LabelClass, LabelSpace


def stimulus_set(categories: Sequence[str], ratings: Sequence[Mapping[str, float]], set_categories: Sequence[str],
                 name: str = "constructed", first_id: int | None = None) -> StimulusSet:
    """Stimuli with the given categories and rating dicts (no files: labels and evaluators need none).

    Ids are ``s000, s001, ...``, or consecutive numbers from ``first_id``."""
    stimuli = []
    for i, (category, values) in enumerate(zip(categories, ratings, strict=True)):
        sid = f"s{i:03d}" if first_id is None else str(first_id + i)
        stimuli.append(Stimulus(id=sid, file_name=f"{sid}.png", path=Path(f"{sid}.png"), category=category,
                                neutral=False, ratings=dict(values)))
    columns = tuple(dict.fromkeys(k for values in ratings for k in values))
    return StimulusSet(name, Path("."), tuple(stimuli), tuple(set_categories), columns)


def label_space(counts: Mapping[str, int], task: str = "category") -> LabelSpace:
    """A label space with ``counts[c]`` stimuli per class, stimuli grouped by class."""
    names = list(counts)
    y = np.repeat(np.arange(len(names)), list(counts.values()))
    return LabelSpace(task=task, classes=tuple(LabelClass(n, n, category=n) for n in names), dropped=(),
                      stimulus_ids=tuple(f"s{i:03d}" for i in range(len(y))), y_true=y)


RATED_CATEGORIES = ["spider", "fruit", "wound"]


def write_rated_set(root: Path, n_per_cat: int = 6, seed: int = 0, sidecar: dict | None = None,
                    table_edit=None, categories: Sequence[str] = RATED_CATEGORIES) -> Path:
    """A rated set on disk: 8x8 PNGs whose red channel encodes the disgust rating, ratings.csv
    (file, group, disgust, disgust_sd, valence, note) and a dirti-bench.json sidecar."""
    rng = np.random.default_rng(seed)
    (root / "img").mkdir(parents=True)
    rows = []
    for cat in categories:
        for k in range(n_per_cat):
            disgust = round(float(rng.uniform(1, 9)), 3)
            name = f"{cat}_{k:02d}.png"
            Image.new("RGB", (8, 8), (int(disgust * 25), 40, 40)).save(root / "img" / name)
            rows.append({"file": name[:-4] if k % 2 else name, "group": cat, "disgust": disgust,
                         "disgust_sd": round(float(rng.uniform(0.5, 2)), 3),
                         "valence": round(10 - disgust, 3), "note": f"photo {k}"})
    table = pd.DataFrame(rows)
    if table_edit:
        table = table_edit(table)
    table.to_csv(root / "ratings.csv", index=False)
    doc = {"name": "toy", "images": "img", "ratings": "ratings.csv", "file_column": "file",
           "category_column": "group", "categories": list(categories), "disgust_column": "disgust"}
    doc.update(sidecar or {})
    write_json(root / SIDECAR, {k: v for k, v in doc.items() if v is not None})
    return root


def write_json(path: Path, doc) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


OASIS_CATEGORIES = ("Animal", "Object", "Person", "Scene")


def write_oasis_like(root: Path, n: int = 900, seed: int = 0, size: int = 16) -> Path:
    """A rated set shaped like OASIS: ``n`` small JPEGs named like its photos ('Acorn 1.jpg'), a ratings
    CSV ``file,category,valence,arousal,beauty`` (1-7 means; no disgust column) and a sidecar. Each
    image's colour carries its category and valence, so category tasks and alignment have signal."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    rows = []
    base = {"Animal": (150, 110, 60), "Object": (70, 90, 160), "Person": (200, 160, 140), "Scene": (60, 150, 80)}
    for i in range(n):
        category = OASIS_CATEGORIES[i % len(OASIS_CATEGORIES)]
        valence = round(float(rng.uniform(1, 7)), 2)
        arousal = round(float(rng.uniform(1, 7)), 2)
        colour = np.array(base[category]) + int((valence - 4) * 12)
        pixels = np.clip(colour + rng.normal(0, 10, (size, size, 3)), 0, 255).astype(np.uint8)
        name = f"{category} {i + 1}"
        Image.fromarray(pixels).save(root / "images" / f"{name}.jpg", quality=90)
        rows.append({"file": name, "category": category, "valence": valence, "arousal": arousal,
                     "beauty": round(float(np.clip(valence + rng.normal(0, 1), 1, 7)), 2)})
    pd.DataFrame(rows).to_csv(root / "ratings.csv", index=False)
    write_json(root / SIDECAR, {"name": "oasis-like", "images": "images", "ratings": "ratings.csv",
                                "file_column": "file", "category_column": "category", "rating_scale": [1, 7]})
    return root


def assert_legend_outside_the_data(fig) -> None:
    """The legend's box overlaps neither the axes (the data) nor the x-axis label."""
    ax = fig.axes[0]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = ax.get_legend().get_window_extent(renderer)
    assert not box.overlaps(ax.get_window_extent(renderer))
    assert not box.overlaps(ax.xaxis.label.get_window_extent(renderer))
