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
    ACCURACY,
    ALIGNMENT_PREDICTIONS_FILE,
    F1_MACRO,
    PREDICTIONS_FILE,
    RESULTS_FILE,
    SPEARMAN_RHO,
    read_results,
)
from ..results_types import ReadBack, Results, RunInfo, comparability
from ..validity import (
    INTERCEPT_ONLY,
    NO_SIGNAL,
    NOT_COMPARABLE,
    adjust_family,
    adjust_pvalues,
    interval_note,
    mcnemar_p,
)
from .compare import compare
from .console import scoring_summary
from .formats import FIGURES_DIR, MISSING, metric_with_ci, num
from .leaderboard import LEADERBOARD_FILE, leaderboard_frame
from .render import Banner, Figure, Heading, Links, Para, Table, to_html, to_markdown
from .report import REPORT_HTML, REPORT_MD, _read_csv, _scenario_ids, report_dir

RUNS_DIR = "runs"  # a sweep's per-model results directories: OUT/runs/<model>__<weights>/
TITLE = "dirti-bench comparison"
BEST = "★"
N_BOOTSTRAP = 1000
MEASURES = ((ACCURACY, "Accuracy", True), (F1_MACRO, "Macro-F1", True),
            (SPEARMAN_RHO, "Alignment with human ratings (Spearman ρ)", False))


# The columns the comparison reads (older results folders have no file_name / confidence yet).
PAIRED_COLUMNS = ["scenario", "stimulus", "y_true", "y_pred", "fold"]
ALIGNMENT_PAIRED_COLUMNS = ["scenario", "stimulus", "rating", "score"]


@dataclass
class Run(ReadBack):
    """One run of a comparison: its typed ``results`` and the predictions it is paired on."""

    path: Path
    results: Results
    predictions: pd.DataFrame | None  # classification rows (predictions.csv.gz)
    alignment: pd.DataFrame | None = None  # alignment rows (alignment_predictions.csv)
    label: str = ""

    @property
    def dataset(self) -> tuple:
        return self.info.dataset, self.info.dataset_sha256


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
                                "run a model sweep into it first")
            found.extend(runs)
        else:
            raise UserError(f"no {RESULTS_FILE} in {path} nor in {path / RUNS_DIR}/*; pass a directory written "
                            "by 'dirti-bench run' (or a sweep's output folder)")
    return found


def _list_order(folder: Path) -> tuple:
    """A sweep's runs in the order of its models file (line numbers recorded by each run)."""
    try:
        source = RunInfo.from_json(read_results(folder)["run"]).model_source
    except UserError:
        source = ""
    file, _, line = source.rpartition(":")
    return (0, file, int(line), folder.name) if line.isdigit() else (1, "", 0, folder.name)


def _weights_name(run: RunInfo) -> str:
    weights = str(run.pretrained if run.pretrained is not None else "?")
    return Path(weights).name if run.weights_kind == "file" else weights


def _read_run(folder: Path) -> Run:
    predictions = _read_csv(folder / PREDICTIONS_FILE, PAIRED_COLUMNS)
    alignment = _read_csv(folder / ALIGNMENT_PREDICTIONS_FILE, ALIGNMENT_PAIRED_COLUMNS)
    frames = {name: frame for name, frame in ((PREDICTIONS_FILE, predictions), (ALIGNMENT_PREDICTIONS_FILE, alignment))
              if frame is not None}
    return Run(folder, Results.from_document(read_results(folder), frames, folder), predictions, alignment)


def _folder_of(results: Path | Results) -> Path:
    """A folder, or the one a ``Results`` was read from (the comparison pairs the predictions beside it)."""
    if not isinstance(results, Results):
        return results
    if results.path is None:
        raise UserError("these results were evaluated in memory and have no folder; write them with "
                        "dirti_bench.run(..., out=FOLDER) and pass that", "results")
    return results.path


def load_runs(dirs: list[Path]) -> list[Run]:
    runs = [_read_run(d) for d in dirs]
    for run in runs:  # results edited after their run are not compared
        check_saved_run(run.doc, run.predictions, run.alignment, run.path)
    labels = [f"{r.info.model if r.info.model is not None else '?'} · {_weights_name(r.info)}" for r in runs]
    for run, label in zip(runs, labels, strict=True):
        run.label = label if labels.count(label) == 1 else f"{label} ({run.path.name})"
    return runs


def choose_reference(runs: list[Run], reference: str | None) -> Run:
    """``--reference``: a run's folder name, its label, or its model when that is unique (default: the first)."""
    if reference is None:
        return runs[0]
    hits = [r for r in runs if reference in (r.path.name, r.label)]
    hits = hits or [r for r in runs if r.info.model == reference]
    if len(hits) != 1:
        names = ", ".join(r.path.name for r in runs)
        raise UserError(f"reference {reference!r} names {len(hits)} of the runs; pass one of: {names}", "reference")
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
    """Why ``run``'s ``sid`` cannot be paired with the reference's (None when it can): another dataset,
    label space, threshold or scenario option (validity.comparability)."""
    if ref.dataset != run.dataset:  # named both ways, as the DIFFERENT DATASETS banner does
        (ref_name, ref_sha), (name, sha) = ref.dataset, run.dataset
        both = (f"{ref_name} vs {name}" if ref_name != name
                else f"{ref_name} {str(ref_sha)[:12]} vs {str(sha)[:12]} (same name, other contents)")
        return f"another dataset (reference vs this run: {both})"
    a, b = ref.scenarios.get(sid), run.scenarios.get(sid)
    if a is None or b is None:
        return "not run"
    if a.task != b.task or (a.task in TASKS and a.labels != b.labels):
        return "another label space"
    differences = comparability(ref.info, a, run.info, b)
    return "; ".join(differences) if differences else None


def _delta_classification(ref: Run, run: Run, sid: str, seed: int) -> dict | str:
    """The paired test of run vs reference (formatted by ``_delta_text`` once its family is corrected),
    or why there is none."""
    a, b = _classification_rows(run, sid), _classification_rows(ref, sid)
    if a is None or b is None:
        return "no predictions"
    try:
        return compare(a, b, n_boot=N_BOOTSTRAP, seed=seed, labels=list(ref.scenarios[sid].labels) or None)
    except UserError:
        return "stimuli differ"


def _delta_text(test: dict | str) -> str:
    if isinstance(test, str):
        return test
    text = f"{test['accuracy_difference']:+.3f} {num(test['ci'])}"
    if "f1_macro_difference" in test:
        text += f"; macro-F1 {test['f1_macro_difference']:+.3f} {num(test['f1_macro_ci'])}"
    if test["mcnemar"] is not None:
        text += f"; McNemar p={test['mcnemar']['p_value']:.3g}"
        if "p_holm" in test:
            text += f", Holm p={test['p_holm']:.3g}, BH q={test['q_bh']:.3g}"
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


def _shown(value):
    return MISSING if value is None else value


def _runs_table(runs: list[Run], ref: Run) -> list:
    rows = [{"run": r.label + (" (reference)" if r is ref else ""), "folder": r.path.name,
             "model": _shown(r.info.model), "weights": _weights_name(r.info),
             "weights sha256": str(r.info.weights_sha256 or MISSING)[:12], "device": _shown(r.info.device),
             "dataset": _shown(r.info.dataset), "dataset sha256": str(r.info.dataset_sha256 or MISSING)[:12],
             "scenarios": len(r.scenarios), "zero-shot scoring": scoring_summary(r.results, short=True) or MISSING}
            for r in runs]
    return [Heading(2, "Runs"), Table(pd.DataFrame(rows).astype(str))]


def _banners(runs: list[Run], ref: Run) -> list:
    blocks = []
    smoke = [r.label for r in runs if r.info.smoke_run]
    if smoke:
        blocks.append(Banner(f"SMOKE RUNS: {', '.join(smoke)} use random weights; their numbers mean nothing."))
    other = [r for r in runs if r.dataset != ref.dataset]
    if other:
        names = "; ".join(f"{r.label}: {r.dataset[0]} ({str(r.dataset[1])[:12]})" for r in other)
        blocks.append(Banner(f"DIFFERENT DATASETS: the reference {ref.label} ran on {ref.dataset[0]} "
                             f"({str(ref.dataset[1])[:12]}), but {names}. Those runs are never paired with it; "
                             "only their unpaired scores are shown."))
    return blocks


def _best_vs_runner_up(best: Run, runner: Run, sid: str, metric: str, seed: int) -> float | None:
    """The p-value of best vs runner-up on the same stimuli: McNemar's exact test on correctness
    (classification), or a two-sided paired bootstrap p of the Spearman ρ difference (alignment)."""
    if metric in (ACCURACY, F1_MACRO):
        a, b = _classification_rows(best, sid), _classification_rows(runner, sid)
        if a is None or b is None:
            return None
        try:
            return compare(a, b, n_boot=1, seed=seed, mcnemar=True)["mcnemar"]["p_value"]
        except UserError:
            return None
    a, b = _alignment_scores(best, sid), _alignment_scores(runner, sid)
    if a is None or b is None or not a[0].index.equals(b[0].index) or not np.allclose(a[0], b[0]):
        return None
    rating, sa, sb = (np.asarray(x, float) for x in (a[0], a[1], b[1]))
    idx = np.random.default_rng(seed).integers(0, rating.size, size=(N_BOOTSTRAP, rating.size))
    with np.errstate(invalid="ignore"):
        draws = spearman(rating[idx], sa[idx], axis=-1) - spearman(rating[idx], sb[idx], axis=-1)
    draws = draws[np.isfinite(draws)]
    if not draws.size:
        return None
    return float(min(1.0, 2 * min((draws <= 0).mean(), (draws >= 0).mean())))


def _rankable(ref: Run, run: Run, sid: str, metric: str) -> bool:
    """A run competes for ★ in a row only on the reference's dataset and label space, with a valid value."""
    sc = run.scenarios.get(sid)
    if sc is None or pairing_problem(ref, run, sid) is not None or sc.suppressed(metric):
        return False
    value = sc.metrics.get(metric)
    return isinstance(value, int | float) and math.isfinite(value)


def _headline_table(runs: list[Run], metric: str, classification: bool, ref: Run | None = None) -> pd.DataFrame | None:
    """Scenarios x runs. ★ marks the best run of a row only among runs on the reference's dataset and
    label space, and only where it beats the runner-up after Holm's correction over the rows of this
    table (the family); otherwise the best value is marked "tied"."""
    ref = ref or runs[0]
    ids = [sid for sid in _scenario_ids(runs, classification)
           if any(sid in r.scenarios and metric in r.scenarios[sid].metrics for r in runs)]
    if not ids:
        return None
    seed = int(ref.info.seed or 0)
    leaders: dict[str, tuple[Run, float | None]] = {}
    for sid in ids:
        ranked = sorted((r for r in runs if _rankable(ref, r, sid, metric)),
                        key=lambda r: r.scenarios[sid].metrics[metric], reverse=True)
        if len(ranked) > 1:
            leaders[sid] = (ranked[0], _best_vs_runner_up(ranked[0], ranked[1], sid, metric, seed))
    tested = [sid for sid, (_, p) in leaders.items() if p is not None]
    holm = dict(zip(tested, adjust_pvalues([leaders[sid][1] for sid in tested])[0], strict=True))
    rows = []
    for sid in ids:
        row = {"scenario": sid}
        leader = leaders.get(sid, (None, None))[0]
        for run in runs:
            sc = run.scenarios.get(sid)
            cell = metric_with_ci(sc, metric) if sc is not None else "not run"
            if sc is not None and (problem := pairing_problem(ref, run, sid)) not in (None, "not run"):
                cell += f" ({NOT_COMPARABLE}: {problem})"
            codes = [c for c in sc.flag_codes if c != INTERCEPT_ONLY] if sc is not None else []
            if codes:
                cell += f" ({'; '.join(codes)})"
            if run is leader:
                cell += f" {BEST}" if holm.get(sid, 1.0) < 0.05 else " (best, tied after correction)"
            row[run.label] = cell
        if sid in holm:
            row["best vs runner-up: Holm p"] = f"{holm[sid]:.3g}"
        rows.append(row)
    return pd.DataFrame(rows).fillna(MISSING)


def _headlines(runs: list[Run], ref: Run | None = None) -> list:
    blocks = [Heading(2, "Headline metrics"),
              Para(f"Scenarios as rows, runs as columns; brackets: {interval_note()} (accuracy, macro-F1) or "
                   f"percentile bootstrap (ρ); {BEST}: the best run of the row among the runs on the reference's "
                   "dataset and label space, only where it beats the runner-up after Holm's correction over the "
                   "rows of its table (McNemar's exact test on the same stimuli for accuracy and macro-F1, a "
                   "paired bootstrap of the ρ difference for alignment); otherwise \"tied\". Flags in brackets: "
                   "degenerate (one class for ≥95% of the stimuli), below-chance, not-comparable; an intercept-only "
                   f"probe's ρ reads \"{NO_SIGNAL}\". Every metric of every run, with its flags, is in "
                   "leaderboard.csv.")]
    for metric, title, classification in MEASURES:
        frame = _headline_table(runs, metric, classification, ref)
        if frame is not None:
            blocks += [Heading(3, title), Table(frame)]
    return blocks


def _deltas(runs: list[Run], ref: Run) -> list:
    others = [r for r in runs if r is not ref]
    if not others:
        return []
    seed = int(ref.info.seed or 0)
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
    # one family: every McNemar test of a run against the reference in this table
    tests = [cell for row in rows for cell in row.values() if isinstance(cell, dict)]
    adjust_family(tests, "runs vs the reference (McNemar)", mcnemar_p)
    rows = [{key: _delta_text(cell) if isinstance(cell, dict) else cell for key, cell in row.items()} for row in rows]
    return [Heading(2, f"Difference to the reference ({ref.label})"),
            Para("Run minus reference on the same stimuli: accuracy and macro-F1 differences (or the Spearman ρ "
                 "difference for alignment) with paired bootstrap 95% CIs; McNemar's exact test for fixed classifiers "
                 "(zero-shot, one holdout split), with Holm-adjusted p and Benjamini-Hochberg q over every McNemar "
                 "test of this table (the family: runs vs the reference). A probe's alignment scores are averaged over its CV repeats "
                 "before pairing. Runs on another dataset or label space are not paired."),
            Table(pd.DataFrame(rows))]


def _heatmap_cell(ref: Run, run: Run, sid: str, classification: bool) -> tuple[float, str | None]:
    """(value, annotation): Cohen's κ (classification) or Spearman ρ (alignment), with its flags; an
    intercept-only probe's ρ is no value ("no signal")."""
    sc = run.scenarios.get(sid)
    if sc is None:
        return math.nan, None
    if classification:
        value = sc.kappa
    else:
        value = sc.metrics.get(SPEARMAN_RHO)
        if sc.suppressed(SPEARMAN_RHO):
            return math.nan, "no signal"
    value = math.nan if not isinstance(value, int | float) else float(value)
    marks = [c for c in sc.flag_codes if c != INTERCEPT_ONLY]
    if pairing_problem(ref, run, sid) not in (None, "not run"):
        marks.append(NOT_COMPARABLE)
    if not marks:
        return value, None
    return value, (MISSING if math.isnan(value) else f"{value:.2f}") + "\n" + ", ".join(marks)


def _heatmap(runs: list[Run], ref: Run | None = None) -> list:
    from .figures import heatmap_figure, png  # matplotlib loads only when a figure is drawn

    ref = ref or runs[0]
    rows, values, notes = [], [], []
    for classification in (True, False):
        for sid in _scenario_ids(runs, classification):
            rows.append(f"{sid} ({'κ' if classification else 'ρ'})")
            cells = [_heatmap_cell(ref, r, sid, classification) for r in runs]
            values.append([v for v, _ in cells])
            notes.append([a for _, a in cells])
    if not rows:
        return []
    grid = np.array(values, dtype=float)
    datasets = sorted({str(r.dataset[0]) for r in runs})
    image = png(heatmap_figure(grid, rows, [r.label for r in runs],
                               f"Chance-corrected headline per scenario and run (0 = chance)\n{len(runs)} runs · "
                               f"dataset {', '.join(datasets)}", "Cohen's κ / Spearman ρ (0 = chance)",
                               annotations=notes, limits=(-1.0, 1.0)))
    return [Heading(2, "Scenario × run"),
            Para("One chance-corrected scale for every row: Cohen's κ for classification (from each confusion matrix: "
                 "(observed − chance agreement) / (1 − chance agreement), so 2-, 6- and 11-class tasks read alike) "
                 "and Spearman ρ for alignment; 0 is chance, 1 perfect. Cells name their flags; an intercept-only "
                 "probe's ρ is left empty (no signal); not-comparable: another dataset or label space than the "
                 "reference."),
            Figure(f"{FIGURES_DIR}/heatmap.png", image, "Cohen's κ (classification) and Spearman ρ (alignment) per "
                                                      "scenario and run; 0 = chance")]


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
    return (_banners(runs, ref) + _runs_table(runs, ref) + _headlines(runs, ref) + _deltas(runs, ref)
            + _heatmap(runs, ref) + _details(runs, out))


def write_comparison(paths: list[Path | Results], out: Path, reference: str | None = None,
                     report: bool = True) -> Path:
    """leaderboard.csv and (with ``report``) report.md, report.html and figures/ into ``out``;
    returns report.md's path (the leaderboard's without ``report``). ``paths``: results folders, sweep
    folders, or ``Results`` read from a folder (``load_results``)."""
    runs = load_runs(find_run_dirs([_folder_of(p) for p in paths]))
    ref = choose_reference(runs, reference)
    out = report_dir(out)
    board = leaderboard_frame([r.doc for r in runs], reference=ref.doc)
    if not report:
        try:
            write_text(out / LEADERBOARD_FILE, board.to_csv(index=False))
        except OSError as exc:
            raise UserError(f"cannot write {out / LEADERBOARD_FILE} ({exc.strerror or exc}); pass a writable folder",
                            "out") from None
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
        raise UserError(f"cannot write the comparison into {out} ({exc.strerror or exc}); pass a writable folder",
                        "out") from None
    return out / REPORT_MD

