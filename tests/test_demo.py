"""The generated demo set: DIRTI layout, determinism, separable categories, an empty class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from PIL import Image
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from dirti_bench.cli import main
from dirti_bench.data.demo import make_demo
from dirti_bench.data.dirti import DIRTI_CATEGORIES, IMAGE_FOLDER, RATINGS_FILE
from dirti_bench.errors import UserError
from dirti_bench.labels import build_label_space


def file_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files(demo_master, tmp_path):
    again = make_demo(tmp_path / "again", seed=0)
    first, second = file_bytes(demo_master), file_bytes(again)
    assert len(first) == 61  # 60 images + the xlsx
    assert first == second


def test_cli_seed_changes_every_file(demo_master, tmp_path, capsys):
    out = tmp_path / "demo-seed1"
    assert main(["make-demo", str(out), "--seed", "1"]) == 0
    assert str(out) in capsys.readouterr().out
    seed0, seed1 = file_bytes(demo_master), file_bytes(out)
    assert seed0.keys() == seed1.keys()
    assert all(seed0[k] != seed1[k] for k in seed0)


def test_layout_matches_dirti(demo_master):
    names = sorted(p.name for p in (demo_master / IMAGE_FOLDER).iterdir())
    assert len(names) == 60
    tokens = {"food": "food", "animals": "animals", "body products": "body products",
              "injuries/infections": "injuries_infections", "death": "death", "hygiene": "hygiene"}
    for cat in DIRTI_CATEGORIES:
        mine = [n for n in names if n.split("_", 1)[1].removesuffix(".jpg").removesuffix(" neutral") == tokens[cat]]
        assert len(mine) == 10
        assert sum(n.endswith(" neutral.jpg") for n in mine) == 2
    ids = sorted(int(n.split("_")[0]) for n in names)
    assert ids == list(range(1001, 1061))
    with Image.open(demo_master / IMAGE_FOLDER / names[0]) as im:
        assert (im.format, im.size) == ("JPEG", (256, 192))


def test_spreadsheet_has_the_dirti_legend_block(demo_master):
    sheet = openpyxl.load_workbook(demo_master / RATINGS_FILE, read_only=True).worksheets[0]
    header = next(sheet.iter_rows(max_row=1, values_only=True))
    data_cols = header.index(None)
    assert header[:3] == ("name", "disg_mean_all", "disg_SD_all")
    assert header[data_cols + 1:data_cols + 3] == ("Variable", "Description")
    sheets = pd.read_excel(demo_master / RATINGS_FILE, sheet_name=None)
    assert list(sheets) == ["disgust", "fear", "valence_arousal"]


def test_one_category_never_reaches_the_threshold(demo_master, demo_stimuli):
    table = pd.read_excel(demo_master / RATINGS_FILE, sheet_name="disgust").dropna(subset=["name"])
    category = table["name"].str.split("_", n=1).str[1].str.removesuffix(" neutral")
    ratings = table["disg_mean_all"]
    assert ratings.between(1, 9).all()
    assert ratings[category == "animals"].max() < 5.0
    # Every other category has images on both sides of 5.0.
    for token in ["food", "body products", "injuries_infections", "death", "hygiene"]:
        assert ratings[category == token].max() >= 5.0 > ratings[category == token].min()
    for threshold in (5.0, "mean+1sd"):
        assert "disgusting animals" in build_label_space(demo_stimuli, "disgust", threshold=threshold).dropped


def test_image_features_separate_the_categories(demo_stimuli):
    """Simple colour statistics already identify the category (5-fold CV with a 1-NN)."""
    feats, labels = [], []
    for s in demo_stimuli:
        with Image.open(s.path) as im:
            px = np.asarray(im.convert("RGB"), float)
        feats.append(np.concatenate([px.mean((0, 1)), px.std((0, 1))]))
        labels.append(s.category)
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    scores = cross_val_score(KNeighborsClassifier(n_neighbors=1), np.array(feats), labels, cv=cv)
    assert scores.mean() >= 0.9


def test_rewriting_a_demo_folder_replaces_it(tmp_path):
    out = make_demo(tmp_path / "d", seed=2, n_disgust=2, n_neutral=1, size=(32, 24))
    (out / ".complete").write_text("ok\n")
    before = file_bytes(out)
    make_demo(out, seed=2, n_disgust=2, n_neutral=1, size=(32, 24))
    assert file_bytes(out) == {k: v for k, v in before.items() if k != ".complete"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no staging folder left


def test_refuses_a_folder_with_other_files(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.docx").write_text("precious")
    with pytest.raises(UserError, match="holds other files"):
        make_demo(tmp_path / "mine")
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["thesis.docx"]


def test_cli_output_path_is_a_file(tmp_path, capsys):
    target = tmp_path / "file.txt"
    target.write_text("x")
    assert main(["make-demo", str(target)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(target) in lines[0]
