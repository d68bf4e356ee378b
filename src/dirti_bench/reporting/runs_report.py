"""Runs side by side: the comparison report and leaderboard of a sweep (or of any results dirs).

One headline table per measure (scenarios as rows, runs as columns, the best per row marked),
each run's difference to a reference run with a paired bootstrap CI (and McNemar's exact test
for fixed classifiers) computed from the two runs' own predictions on the same stimuli, a
scenario x run heatmap, and links to each run's own report for the detail. Runs on another
dataset or another label space are never paired: a banner names the mismatch and only their
unpaired scores are shown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import write_bytes, write_text
from ..errors import UserError
from ..evaluators.consistency import check_saved_run
from ..evaluators.rating_stats import spearman
from ..labels import TASKS
from ..results import (
    ALIGNMENT_PREDICTIONS_FILE,
    PREDICTIONS_FILE,
    RESULTS_FILE,
    ResultsView,
    read_results,
)
from .compare import compare
from .formats import FIGURES_DIR, MISSING, num
from .leaderboard import LEADERBOARD_FILE, leaderboard_frame
from .render import Banner, Figure, Heading, Links, Para, Table, to_html, to_markdown
from .report import REPORT_HTML, REPORT_MD, _read_csv, _scenario_ids, _with_ci, report_dir

RUNS_DIR = "runs"  # a sweep's per-model results directories: OUT/runs/<model>__<weights>/
TITLE = "dirti-bench comparison"
BEST = "★"
N_BOOTSTRAP = 1000
MEASURES = (("accuracy", "Accuracy", True), ("f1_macro", "Macro-F1", True),
            ("spearman_rho", "Alignment with human ratings (Spearman ρ)", False))


# The columns the comparison reads (older results folders have no file_name / confidence yet).
PAIRED_COLUMNS = ["scenario", "stimulus", "y_true", "y_pred", "fold"]
ALIGNMENT_PAIRED_COLUMNS = ["scenario", "stimulus", "rating", "score"]


@dataclass
class Run(ResultsView):
    path: Path
    doc: dict
    predictions: pd.DataFrame | None  # classification rows (predictions.csv)
    alignment: pd.DataFrame | None = None  # alignment rows (alignment_predictions.csv)
    label: str = ""

    @property
    def dataset(self) -> tuple:
        return self.run.get("dataset"), self.run.get("dataset_sha256")


def find_run_dirs(paths: list[Path]) -> list[Path]:
    """Each path is a results directory, or a sweep's OUT holding ``runs/*/results.json``."""
    found = []
    for path in map(Path, paths):
        if (path / RESULTS_FILE).is_file() or path.name == RESULTS_FILE:
            found.append(path if path.is_dir() else path.parent)
        elif (path / RUNS_DIR).is_dir():
            runs = sorted((p for p in (path / RUNS_DIR).iterdir() if (p / RESULTS_FILE).is_file()), key=_list_order)
            if not runs:
                raise UserError(f"{path / RUNS_DIR} holds no finished run (no */{RESULTS_FILE}); "
                                "run 'dirti-bench run --models FILE --out' into it first")
            found.extend(runs)
        else:
            raise UserError(f"no {RESULTS_FILE} in {path} nor in {path / RUNS_DIR}/*; pass a directory written "
                            "by 'dirti-bench run' (or a sweep's --out)")
    return found


def _list_order(folder: Path) -> tuple:
    """A sweep's runs in the order of its models file (line numbers recorded by each run)."""
    try:
        source = str(read_results(folder)["run"].get("sweep", {}).get("model_source", ""))
    except UserError:
        source = ""
    file, _, line = source.rpartition(":")
    return (0, file, int(line), folder.name) if line.isdigit() else (1, "", 0, folder.name)


def _weights_name(run: dict) -> str:
    weights = str(run.get("pretrained", "?"))
    return Path(weights).name if run.get("weights_kind") == "file" else weights


def load_runs(dirs: list[Path]) -> list[Run]:
    runs = [Run(d, read_results(d), _read_csv(d / PREDICTIONS_FILE, PAIRED_COLUMNS),
                _read_csv(d / ALIGNMENT_PREDICTIONS_FILE, ALIGNMENT_PAIRED_COLUMNS)) for d in dirs]
    for run in runs:  # results edited after their run are not compared
        check_saved_run(run.doc, run.predictions, run.alignment, run.path)
    labels = [f"{r.run.get('model', '?')} · {_weights_name(r.run)}" for r in runs]
    for run, label in zip(runs, labels, strict=True):
        run.label = label if labels.count(label) == 1 else f"{label} ({run.path.name})"
    return runs


def choose_reference(runs: list[Run], reference: str | None) -> Run:
    """``--reference``: a run's folder name, its label, or its model when that is unique (default: the first)."""
    if reference is None:
        return runs[0]
    hits = [r for r in runs if reference in (r.path.name, r.label)]
    hits = hits or [r for r in runs if r.run.get("model") == reference]
    if len(hits) != 1:
        names = ", ".join(r.path.name for r in runs)
        raise UserError(f"--reference {reference!r} names {len(hits)} of the runs; pass one of: {names}")
    return hits[0]


# ---------------------------------------------------------------- pairing


def _classification_rows(run: Run, sid: str) -> pd.DataFrame | None:
    if run.predictions is None:
        return None
    rows = run.predictions[run.predictions["scenario"] == sid]
    return rows if len(rows) else None


def _alignment_scores(run: Run, sid: str) -> tuple[pd.Series, pd.Series] | None:
    """(rating, score) per stimulus; a probe's scores averaged over its CV repeats."""
    if run.alignment is None:
        return None
    rows = run.alignment[run.alignment["scenario"] == sid]
    if not len(rows):
        return None
    frame = pd.DataFrame({"stimulus": rows["stimulus"].astype(str),
                          "rating": pd.to_numeric(rows["rating"], errors="coerce"),
                          "score": pd.to_numeric(rows["score"], errors="coerce")}).dropna()
    grouped = frame.groupby("stimulus", sort=True).mean()
    return grouped["rating"], grouped["score"]


def pairing_problem(ref: Run, run: Run, sid: str) -> str | None:
    """Why ``run``'s ``sid`` cannot be paired with the reference's (None when it can)."""
    if ref.dataset != run.dataset:
        return "another dataset"
    a, b = ref.scenarios.get(sid), run.scenarios.get(sid)
    if a is None or b is None:
        return "not run"
    if a.get("task") != b.get("task") or (a.get("task") in TASKS and a.get("labels") != b.get("labels")):
        return "another label space"
    return None


def _delta_classification(ref: Run, run: Run, sid: str, seed: int) -> str:
    a, b = _classification_rows(run, sid), _classification_rows(ref, sid)
    if a is None or b is None:
        return "no predictions"
    try:
        test = compare(a, b, n_boot=N_BOOTSTRAP, seed=seed, labels=ref.scenarios[sid].get("labels"))
    except UserError:
        return "stimuli differ"
    text = f"{test['accuracy_difference']:+.3f} {num(test['ci'])}"
    if "f1_macro_difference" in test:
        text += f"; macro-F1 {test['f1_macro_difference']:+.3f} {num(test['f1_macro_ci'])}"
    if test["mcnemar"] is not None:
        text += f"; McNemar p={test['mcnemar']['p_value']:.3g}"
    return text


def paired_rho_difference(rating: np.ndarray, score_a: np.ndarray, score_b: np.ndarray, seed: int,
                          n_boot: int = N_BOOTSTRAP) -> tuple[float, list[float]]:
    """rho(rating, a) - rho(rating, b) and its percentile CI, resampling the same stimuli for both."""
    rating, score_a, score_b = (np.asarray(x, float) for x in (rating, score_a, score_b))
    estimate = float(spearman(rating, score_a) - spearman(rating, score_b))
    idx = np.random.default_rng(seed).integers(0, rating.size, size=(n_boot, rating.size))
    with np.errstate(invalid="ignore"):
        draws = spearman(rating[idx], score_a[idx], axis=-1) - spearman(rating[idx], score_b[idx], axis=-1)
    draws = draws[np.isfinite(draws)]
    return estimate, [float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))]


def _delta_alignment(ref: Run, run: Run, sid: str, seed: int) -> str:
    a, b = _alignment_scores(run, sid), _alignment_scores(ref, sid)
    if a is None or b is None:
        return "no predictions"
    if not a[0].index.equals(b[0].index) or not np.allclose(a[0], b[0]):
        return "stimuli or ratings differ"
    estimate, ci = paired_rho_difference(a[0].to_numpy(), a[1].to_numpy(), b[1].to_numpy(), seed)
    return f"{estimate:+.3f} {num(ci)}"


# ---------------------------------------------------------------- blocks


def _runs_table(runs: list[Run], ref: Run) -> list:
    rows = [{"run": r.label + (" (reference)" if r is ref else ""), "folder": r.path.name,
             "model": r.run.get("model", MISSING), "weights": _weights_name(r.run),
             "weights sha256": str(r.run.get("weights_sha256") or MISSING)[:12], "device": r.run.get("device", MISSING),
             "dataset": r.run.get("dataset", MISSING), "dataset sha256": str(r.run.get("dataset_sha256") or MISSING)[:12],
             "scenarios": len(r.scenarios)} for r in runs]
    return [Heading(2, "Runs"), Table(pd.DataFrame(rows).astype(str))]


def _banners(runs: list[Run], ref: Run) -> list:
    blocks = []
    smoke = [r.label for r in runs if r.run.get("smoke_run")]
    if smoke:
        blocks.append(Banner(f"SMOKE RUNS: {', '.join(smoke)} use random weights; their numbers mean nothing."))
    other = [r for r in runs if r.dataset != ref.dataset]
    if other:
        names = "; ".join(f"{r.label}: {r.dataset[0]} ({str(r.dataset[1])[:12]})" for r in other)
        blocks.append(Banner(f"DIFFERENT DATASETS: the reference {ref.label} ran on {ref.dataset[0]} "
                             f"({str(ref.dataset[1])[:12]}), but {names}. Those runs are never paired with it; "
                             "only their unpaired scores are shown."))
    return blocks


def _headline_table(runs: list[Run], metric: str, classification: bool) -> pd.DataFrame | None:
    ids = [sid for sid in _scenario_ids(runs, classification)
           if any(metric in r.scenarios.get(sid, {}).get("metrics", {}) for r in runs)]
    if not ids:
        return None
    rows = []
    for sid in ids:
        values = [r.scenarios.get(sid, {}).get("metrics", {}).get(metric) for r in runs]
        finite = [v for v in values if isinstance(v, int | float) and math.isfinite(v)]
        best = max(finite) if len(finite) > 1 else None
        row = {"scenario": sid}
        for run, value in zip(runs, values, strict=True):
            cell = _with_ci(run.scenarios[sid], metric) if sid in run.scenarios else "not run"
            row[run.label] = cell + (f" {BEST}" if best is not None and value == best else "")
        rows.append(row)
    return pd.DataFrame(rows)


def _headlines(runs: list[Run]) -> list:
    blocks = [Heading(2, "Headline metrics"),
              Para(f"Scenarios as rows, runs as columns; brackets: 95% bootstrap CI; {BEST}: the best run of the "
                   "row. Every metric of every run is in leaderboard.csv.")]
    for metric, title, classification in MEASURES:
        frame = _headline_table(runs, metric, classification)
        if frame is not None:
            blocks += [Heading(3, title), Table(frame)]
    return blocks


def _deltas(runs: list[Run], ref: Run) -> list:
    others = [r for r in runs if r is not ref]
    if not others:
        return []
    seed = int(ref.run.get("seed", 0) or 0)
    rows = []
    for classification in (True, False):
        measure, delta = (("Δ accuracy; Δ macro-F1", _delta_classification) if classification
                          else ("Δ Spearman ρ", _delta_alignment))
        for sid in _scenario_ids(runs, classification):
            row = {"scenario": sid, "measure": measure}
            for run in others:
                problem = pairing_problem(ref, run, sid)
                row[run.label] = f"not paired: {problem}" if problem else delta(ref, run, sid, seed)
            rows.append(row)
    return [Heading(2, f"Difference to the reference ({ref.label})"),
            Para("Run minus reference on the same stimuli: accuracy and macro-F1 differences (or the Spearman ρ "
                 "difference for alignment) with paired bootstrap 95% CIs; McNemar's exact test for fixed classifiers "
                 "(zero-shot, one holdout split). A probe's alignment scores are averaged over its CV repeats "
                 "before pairing. Runs on another dataset or label space are not paired."),
            Table(pd.DataFrame(rows))]


def _heatmap(runs: list[Run]) -> list:
    from .figures import heatmap_figure, png  # matplotlib loads only when a figure is drawn

    rows, values = [], []
    for classification, metric in ((True, "accuracy"), (False, "spearman_rho")):
        for sid in _scenario_ids(runs, classification):
            rows.append(f"{sid} ({'accuracy' if classification else 'ρ'})")
            values.append([r.scenarios.get(sid, {}).get("metrics", {}).get(metric) for r in runs])
    if not rows:
        return []
    grid = np.array([[math.nan if v is None else float(v) for v in row] for row in values])
    datasets = sorted({str(r.dataset[0]) for r in runs})
    image = png(heatmap_figure(grid, rows, [r.label for r in runs],
                               f"Headline metric per scenario and run\n{len(runs)} runs · dataset "
                               f"{', '.join(datasets)}", "accuracy / Spearman ρ"))
    return [Heading(2, "Scenario × run"),
            Figure(f"{FIGURES_DIR}/heatmap.png", image, "Accuracy (classification) and Spearman ρ (alignment) per "
                                                      "scenario and run")]


def _details(runs: list[Run], out: Path) -> list:
    items = []
    for run in runs:
        target = run.path / REPORT_HTML if (run.path / REPORT_HTML).is_file() else run.path / RESULTS_FILE
        try:
            href = target.resolve().relative_to(out.resolve()).as_posix()
        except ValueError:
            href = target.resolve().as_uri()
        items.append((f"{run.label}: confusion matrices, per-class tables, alignment plots", href))
    return [Heading(2, "Per-run detail"), Para("Each run's own report:"), Links(tuple(items))]


def build_blocks(runs: list[Run], ref: Run, out: Path) -> list:
    return (_banners(runs, ref) + _runs_table(runs, ref) + _headlines(runs) + _deltas(runs, ref)
            + _heatmap(runs) + _details(runs, out))


def write_comparison(paths: list[Path], out: Path, reference: str | None = None, report: bool = True) -> Path:
    """leaderboard.csv and (with ``report``) report.md, report.html and figures/ into ``out``;
    returns report.md's path (the leaderboard's without ``report``)."""
    runs = load_runs(find_run_dirs(paths))
    ref = choose_reference(runs, reference)
    out = report_dir(out)
    board = leaderboard_frame([r.doc for r in runs])
    if not report:
        try:
            write_text(out / LEADERBOARD_FILE, board.to_csv(index=False))
        except OSError as exc:
            raise UserError(f"cannot write {out / LEADERBOARD_FILE} ({exc.strerror or exc}); pass a writable --out") from None
        return out / LEADERBOARD_FILE
    blocks = build_blocks(runs, ref, out)
    try:
        for block in blocks:
            if isinstance(block, Figure):
                write_bytes(out / block.file, block.png)
        write_text(out / LEADERBOARD_FILE, board.to_csv(index=False))
        write_text(out / REPORT_HTML, to_html(TITLE, blocks))
        write_text(out / REPORT_MD, to_markdown(TITLE, blocks))
    except OSError as exc:
        raise UserError(f"cannot write the comparison into {out} ({exc.strerror or exc}); pass a writable --out") from None
    return out / REPORT_MD

