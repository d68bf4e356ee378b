"""Names that a spreadsheet would read as formulas (=, +, -, @) are written exactly into the CSVs
(the data is not altered; the docs' errors page warns about opening them in a spreadsheet), and the HTML
report escapes them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from dirti_bench.pipeline import RunConfig, run
from dirti_bench.results import PREDICTIONS_FILE, STIMULI_FILE
from helpers import write_rated_set
from known_answer import KnownAnswerEncoder

ERRORS_PAGE = Path(__file__).resolve().parents[1] / "docs" / "reference" / "errors.md"
FORMULA_LIKE = ["=1+1", "+2", "-3", "@<i>x"]


def _vector(text: str) -> np.ndarray:
    return np.frombuffer(hashlib.sha256(text.encode()).digest()[:16], np.uint8).astype(np.float32) + 1


def test_formula_like_names_round_trip_exactly_and_are_escaped_in_html(tmp_path):
    root = write_rated_set(tmp_path / "set", n_per_cat=2, categories=FORMULA_LIKE)
    encoder = KnownAnswerEncoder({p.name: _vector(p.name) for p in (root / "img").iterdir()}, _vector)
    out = run(RunConfig(data=root, out=tmp_path / "out", progress=False, scenarios=["zeroshot-baseline"]),
              encoder=encoder)
    predictions = pd.read_csv(out / PREDICTIONS_FILE, dtype=str, keep_default_na=False)
    stimuli = pd.read_csv(out / STIMULI_FILE, dtype=str, keep_default_na=False)
    assert sorted(set(predictions["y_true"])) == sorted(FORMULA_LIKE)
    assert set(predictions["y_pred"]) <= set(FORMULA_LIKE)
    assert sorted(stimuli["category"]) == sorted(FORMULA_LIKE * 2)
    assert sorted(stimuli["stimulus"]) == sorted(f"{c}_{k:02d}" for c in FORMULA_LIKE for k in range(2))
    first_cells = [line.split(",")[0] for line in (out / STIMULI_FILE).read_text().splitlines()[1:]]
    assert {cell[0] for cell in first_cells} == {"=", "+", "-", "@"}  # no quote or apostrophe added
    html = (out / "report.html").read_text()
    assert "@&lt;i&gt;x" in html and "@<i>x" not in html


def test_the_errors_page_warns_about_opening_the_csvs_in_a_spreadsheet():
    text = ERRORS_PAGE.read_text()
    errors = text[text.index("## CSV files and spreadsheets"):]
    assert "spreadsheet" in errors and all(f"`{c}`" in errors for c in "=+-@")
