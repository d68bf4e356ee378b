"""The DIRTI loader on generated DIRTI-layout folders, including the real copy's quirks."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from dirti_bench.cli import main
from dirti_bench.data.dirti import (
    DIRTI_CATEGORIES,
    IMAGE_FOLDER,
    RATINGS_FILE,
    load_dirti,
    read_ratings,
)
from dirti_bench.errors import UserError

LEGEND = pd.DataFrame({"Variable": ["name", "disg_mean_all", "disg_SD_all", "fear_mean_all"],
                       "Description": ["image name", "mean disgust", "SD disgust", "mean fear"]})


def jpeg(shade: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 6), (shade, 40, 200 - shade)).save(buf, format="JPEG")
    return buf.getvalue()


def rows(*names: str) -> list[dict]:
    """Rating rows with distinct, exactly representable values derived from the position."""
    return [{"name": n, "disg_mean_all": 1.5 + i, "disg_SD_all": 0.25 * (i + 1)} for i, n in enumerate(names)]


def write_xlsx(path: Path, sheets: dict[str, list[dict]], legend: bool = True) -> None:
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        for i, (sheet, data) in enumerate(sheets.items()):
            df = pd.DataFrame(data)
            df.to_excel(writer, sheet_name=sheet, index=False)
            if legend and i == 0:  # DIRTI: an empty column, then the Variable/Description legend
                LEGEND.to_excel(writer, sheet_name=sheet, index=False, startcol=len(df.columns) + 1)


def write_set(root: Path, images: list[str], sheets: dict[str, list[dict]] | None = None,
              legend: bool = True, csv: bool = False) -> Path:
    """A DIRTI-layout folder: ``images`` (file names) in 'DIRTI Database' plus the ratings table."""
    folder = root / IMAGE_FOLDER
    folder.mkdir(parents=True)
    for i, name in enumerate(images):
        (folder / name).write_bytes(jpeg(20 * i))
    sheets = sheets or {"disgust": rows(*(Path(n).stem for n in images))}
    if csv:
        pd.DataFrame(next(iter(sheets.values()))).to_csv(root / "DIRTI_Supplementary.csv", index=False)
    else:
        write_xlsx(root / RATINGS_FILE, sheets, legend)
    return root


FOUR = ["1001_food.jpg", "1002_animals neutral.jpg", "1003_body products.jpg", "1004_injuries_infections.jpg"]


def test_loads_records_from_names_and_ratings(tmp_path):
    stimuli = load_dirti(write_set(tmp_path / "d", FOUR))
    assert [s.id for s in stimuli] == ["1001", "1002", "1003", "1004"]
    assert [s.category for s in stimuli] == ["food", "animals", "body products", "injuries/infections"]
    assert [s.neutral for s in stimuli] == [False, True, False, False]
    assert [s.ratings["disg_mean_all"] for s in stimuli] == [1.5, 2.5, 3.5, 4.5]
    assert [s.ratings["disg_SD_all"] for s in stimuli] == [0.25, 0.5, 0.75, 1.0]
    assert [s.file_name for s in stimuli] == FOUR
    assert all(s.path == tmp_path / "d" / IMAGE_FOLDER / s.file_name for s in stimuli)
    # The legend block is documentation, never a rating column.
    assert stimuli.rating_columns == ("disg_mean_all", "disg_SD_all")
    # All six categories always, in the documented order, even those without images.
    assert stimuli.categories == DIRTI_CATEGORIES


def test_legend_longer_than_the_data_adds_no_rows(tmp_path):
    # Two images, a four-row legend: rows 3-4 have a legend but no name.
    root = write_set(tmp_path / "d", FOUR[:2])
    table = read_ratings(root / RATINGS_FILE)
    assert table["name"].tolist() == ["1001_food", "1002_animals neutral"]
    assert "Variable" not in table.columns and "Description" not in table.columns
    assert len(load_dirti(root)) == 2


def test_hidden_and_non_image_files_are_ignored(tmp_path):
    root = write_set(tmp_path / "d", FOUR)
    folder = root / IMAGE_FOLDER
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (folder / "._1001_food.jpg").write_bytes(b"\x00\x05\x16\x07")  # AppleDouble resource fork
    (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (folder / "notes.txt").write_text("ratings in the xlsx")
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    assert [s.file_name for s in load_dirti(root)] == FOUR


def test_names_match_regardless_of_case_and_surrounding_whitespace(tmp_path):
    images = ["1001_FOOD.JPG", "1002_Animals Neutral.jpg", "1003_body products .jpeg"]
    sheet = rows("  1001_food", "1002_animals  neutral ", "1003_BODY PRODUCTS")
    stimuli = load_dirti(write_set(tmp_path / "d", images, {"disgust": sheet}))
    assert [(s.id, s.category, s.neutral) for s in stimuli] == [
        ("1001", "food", False), ("1002", "animals", True), ("1003", "body products", False)]
    assert [s.ratings["disg_mean_all"] for s in stimuli] == [1.5, 2.5, 3.5]


def test_image_without_a_rating_row_is_listed(tmp_path):
    root = write_set(tmp_path / "d", FOUR, {"disgust": rows("1001_food", "1002_animals neutral", "1003_body products")})
    with pytest.raises(UserError, match=r"images without a rating row: \['1004_injuries_infections.jpg'\]"):
        load_dirti(root)


def test_rating_row_without_an_image_is_listed(tmp_path):
    root = write_set(tmp_path / "d", FOUR[:2], {"disgust": rows("1001_food", "1002_animals neutral", "1099_death")})
    with pytest.raises(UserError, match=r"rating rows without an image: \['1099_death'\]"):
        load_dirti(root)


def test_duplicate_image_id(tmp_path):
    root = write_set(tmp_path / "d", ["1001_food.jpg", "1001_animals.jpg"])
    with pytest.raises(UserError, match="image id 1001 is used twice"):
        load_dirti(root)


def test_duplicate_name_in_the_sheet(tmp_path):
    root = write_set(tmp_path / "d", FOUR[:2], {"disgust": rows("1001_food", "1002_animals neutral", "1001_Food ")})
    with pytest.raises(UserError, match="lists names twice"):
        load_dirti(root)


def test_same_image_under_two_extensions(tmp_path):
    root = write_set(tmp_path / "d", ["1001_food.jpg", "1001_food.png"], {"disgust": rows("1001_food")})
    with pytest.raises(UserError, match="share a name"):
        load_dirti(root)


@pytest.mark.parametrize("damage", [lambda b: b"not an image at all", lambda b: b[:100]],
                         ids=["garbage", "truncated-header"])
def test_corrupt_image_is_named(tmp_path, damage):
    root = write_set(tmp_path / "d", FOUR)
    bad = root / IMAGE_FOLDER / "1003_body products.jpg"
    bad.write_bytes(damage(bad.read_bytes()))
    with pytest.raises(UserError, match="corrupt or unreadable image .*1003_body products.jpg"):
        load_dirti(root)


def test_csv_ratings_load_like_xlsx(tmp_path):
    from_xlsx = load_dirti(write_set(tmp_path / "x", FOUR))
    from_csv = load_dirti(write_set(tmp_path / "c", FOUR, csv=True))
    assert [dict(s.ratings) for s in from_csv] == [dict(s.ratings) for s in from_xlsx]
    # Same image bytes and ratings -> same data identity.
    assert from_csv.sha256 == from_xlsx.sha256


def test_other_sheets_are_merged_by_name(tmp_path):
    names = [Path(n).stem for n in FOUR]
    fear = [{"name": n.upper(), "fear_mean_all": v} for n, v in zip(reversed(names), (9.0, 8.0, 7.0, 6.0), strict=True)]
    notes = [{"comment": "a sheet without names is skipped"}]
    root = write_set(tmp_path / "d", FOUR, {"disgust": rows(*names), "fear": fear, "notes": notes})
    stimuli = load_dirti(root)
    assert [s.ratings["fear_mean_all"] for s in stimuli] == [6.0, 7.0, 8.0, 9.0]
    assert stimuli.rating_columns == ("disg_mean_all", "disg_SD_all", "fear_mean_all")
    assert stimuli.ratings("fear_mean_all").tolist() == [6.0, 7.0, 8.0, 9.0]


def test_text_columns_are_not_ratings(tmp_path):
    sheet = [dict(r, rater_group="students") for r in rows(*(Path(n).stem for n in FOUR))]
    stimuli = load_dirti(write_set(tmp_path / "d", FOUR, {"disgust": sheet}))
    assert "rater_group" not in stimuli.rating_columns


def test_stray_text_in_a_rating_column_is_named(tmp_path):
    sheet = rows(*(Path(n).stem for n in FOUR))
    sheet[2]["disg_mean_all"] = "4,5"  # a decimal comma
    root = write_set(tmp_path / "d", FOUR, {"disgust": sheet})
    with pytest.raises(UserError, match=r"column 'disg_mean_all' holds '4,5' for '1003_body products'"):
        load_dirti(root)


@pytest.mark.parametrize("content, problem", [
    (b"this is not a spreadsheet", "cannot read ratings file"),
    (None, "no 'name' column"),
    ("no-disgust", "no 'disg_mean_all' column"),
])
def test_malformed_spreadsheet(tmp_path, content, problem):
    root = write_set(tmp_path / "d", FOUR)
    target = root / RATINGS_FILE
    if content is None:
        write_xlsx(target, {"disgust": [{"image": Path(n).stem, "disg_mean_all": 2.0} for n in FOUR]})
    elif content == "no-disgust":
        write_xlsx(target, {"disgust": [{"name": Path(n).stem, "fear_mean_all": 2.0} for n in FOUR]})
    else:
        target.write_bytes(content)
    with pytest.raises(UserError, match=problem) as err:
        load_dirti(root)
    assert str(target) in str(err.value)


def test_missing_disgust_value_is_named(tmp_path):
    sheet = rows(*(Path(n).stem for n in FOUR))
    sheet[1]["disg_mean_all"] = None
    with pytest.raises(UserError, match="'1002_animals neutral' has no disg_mean_all value"):
        load_dirti(write_set(tmp_path / "d", FOUR, {"disgust": sheet}))


@pytest.mark.parametrize("name, problem", [("1001_fruit.jpg", "unknown category 'fruit'"),
                                           ("food_1001.jpg", "not in DIRTI form")])
def test_bad_image_names(tmp_path, name, problem):
    with pytest.raises(UserError, match=problem):
        load_dirti(write_set(tmp_path / "d", [name]))


def test_folder_problems(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_dirti(tmp_path / "nowhere")
    root = write_set(tmp_path / "d", FOUR)
    (root / "copy.csv").write_text("name,disg_mean_all\n")
    (root / RATINGS_FILE).rename(root / "ratings.xlsx")
    with pytest.raises(UserError, match="several ratings tables"):
        load_dirti(root)


def test_unknown_rating_column(demo_stimuli):
    with pytest.raises(UserError, match="rating column 'valence' not in"):
        demo_stimuli.ratings("valence")


def test_demo_set_matches_its_spreadsheet(demo_master, demo_stimuli):
    """The loader's ratings equal the sheet's cells, read independently with pandas."""
    sheets = pd.read_excel(demo_master / RATINGS_FILE, sheet_name=None)
    disgust = sheets["disgust"].set_index("name")["disg_mean_all"]
    fear = sheets["fear"].set_index("name")["fear_mean_all"]
    assert len(demo_stimuli) == len(disgust) == 60
    for s in demo_stimuli:
        stem = Path(s.file_name).stem
        assert s.ratings["disg_mean_all"] == disgust[stem]
        assert s.ratings["fear_mean_all"] == fear[stem]


def test_data_identity_follows_the_bytes(demo_copy, demo_stimuli):
    assert load_dirti(demo_copy).sha256 == demo_stimuli.sha256
    img = demo_copy / IMAGE_FOLDER / "1001_food.jpg"
    img.write_bytes(jpeg(3))
    assert load_dirti(demo_copy).sha256 != demo_stimuli.sha256


# ---------------------------------------------------------------- CLI: one error line, exit 2

def error_lines(capsys) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


def test_cli_run_with_a_missing_data_folder(tmp_path, capsys):
    missing = tmp_path / "no-such-folder"
    assert main(["run", "--data", str(missing), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    lines = error_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(missing) in lines[0]
    assert not (tmp_path / "out").exists()


def test_cli_run_with_a_corrupt_image(tmp_path, capsys):
    root = write_set(tmp_path / "d", FOUR)
    (root / IMAGE_FOLDER / "1001_food.jpg").write_bytes(b"\xff\xd8 broken")
    assert main(["run", "--data", str(root), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    lines = error_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith("error: corrupt or unreadable image")
    assert "1001_food.jpg" in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("sheet_name", "column", "value", "rule"), [
    ("disgust", "disg_mean_all", 42, "outside DIRTI's 1-9 rating scale"),
    ("disgust", "disg_mean_all", -7, "outside DIRTI's 1-9 rating scale"),
    ("fear", "fear_mean_all", 0.5, "outside DIRTI's 1-9 rating scale"),
    ("disgust", "disg_SD_all", -0.5, "not a standard deviation >= 0"),
    ("disgust", "disg_mean_all", "inf", "outside DIRTI's 1-9 rating scale"),
    ("fear", "fear_mean_all", "-inf", "outside DIRTI's 1-9 rating scale"),
    ("fear", "n_raters", "inf", "not a finite number"),
])
def test_ratings_off_the_scale_or_not_finite_are_named_by_file_sheet_row_and_column(
        tmp_path, sheet_name, column, value, rule):
    names = [Path(n).stem for n in FOUR]
    sheets = {"disgust": rows(*names),
              "fear": [{"name": n, "fear_mean_all": 2.0 + i, "n_raters": 30} for i, n in enumerate(names)]}
    sheets[sheet_name][2][column] = value  # the third data row: spreadsheet row 4
    root = write_set(tmp_path / "d", FOUR, sheets)
    with pytest.raises(UserError) as err:
        load_dirti(root)
    message = str(err.value)
    assert str(root / RATINGS_FILE) in message and f"sheet {sheet_name!r}" in message
    assert f"row 4 column {column!r}" in message and rule in message and "\n" not in message


def test_the_scale_ends_and_empty_cells_are_accepted(tmp_path):
    sheet = rows(*(Path(n).stem for n in FOUR))
    sheet[0]["disg_mean_all"], sheet[3]["disg_mean_all"], sheet[1]["disg_SD_all"] = 1, 9, None
    stimuli = load_dirti(write_set(tmp_path / "d", FOUR, {"disgust": sheet}))
    assert [s.ratings["disg_mean_all"] for s in stimuli] == [1.0, 2.5, 3.5, 9.0]
    assert "disg_SD_all" not in stimuli.stimuli[1].ratings


def test_cli_run_with_an_infinite_rating_is_exit_2_before_encoding(tmp_path, capsys):
    sheet = rows(*(Path(n).stem for n in FOUR))
    sheet[1]["disg_mean_all"] = "inf"
    root = write_set(tmp_path / "d", FOUR, {"disgust": sheet}, csv=True)
    code = main(["run", "--data", str(root), "--model", "dirti-tiny", "--pretrained", "random",
                 "--no-progress", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "line 3 column 'disg_mean_all' holds inf, outside" in err
    assert not (tmp_path / "home" / "embeddings").exists()


def test_threaded_check_and_hash_matches_a_loop_and_names_the_first_bad_file_in_order(tmp_path):
    """check_and_hash runs in threads, but its hashes and its first error are a plain loop's."""
    import hashlib

    from dirti_bench.data.stimuli import CHECK_THREADS, check_and_hash

    paths = []
    for i in range(4 * CHECK_THREADS):
        path = tmp_path / f"img{i:03d}.jpg"
        path.write_bytes(jpeg(i))
        paths.append(path)
    assert check_and_hash(paths) == [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    paths[-2].write_bytes(b"not an image")
    paths[3].write_bytes(b"not an image either")
    with pytest.raises(UserError, match="img003.jpg"):
        check_and_hash(paths)
    assert len(check_and_hash(paths, verify=False)) == len(paths)  # hashing alone reads any bytes
