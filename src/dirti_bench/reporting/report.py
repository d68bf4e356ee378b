"""``report.md`` + self-contained ``report.html`` (+ PNG figures) from one or more results dirs.

Several results directories (models, devices, prompt sets) are shown side by
side: every table gets a ``run`` column when there is more than one. Each
section renders whatever subset of scenarios a directory holds.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import StagedDir, write_bytes, write_text
from ..data.stimuli import DISGUST_RATING
from ..encoding.precision import describe as describe_precision
from ..errors import UserError
from ..evaluators.consistency import check_saved_run
from ..labels import TASKS
from ..results import (
    ACCURACY,
    ALIGNMENT_COLUMNS,
    ALIGNMENT_PREDICTIONS_FILE,
    BALANCED_ACCURACY,
    F1_MACRO,
    FEATURES_FILE,
    LAYER_CLASS_SCORES_FILE,
    LAYER_SCORES_FILE,
    PRECISION_MACRO,
    PREDICTION_COLUMNS,
    PREDICTIONS_FILE,
    PROMPT_COLUMNS,
    PROMPTS_FILE,
    RECALL_MACRO,
    SPEARMAN_RHO,
    STIMULI_FILE,
    read_results,
)
from ..results_types import Penalty, ReadBack, Results, ScenarioOutcome
from ..validity import NO_SIGNAL, interval_note
from .compare import PROMPT_KIND
from .console import figure_title, scoring_summary
from .findings import finding_lines
from .formats import FIGURES_DIR, MISSING, figure_path, metric_with_ci, num
from .projection import MIN_POINTS, PROJECTIONS, project
from .prompt_report import prompt_sections
from .published import (
    DEFAULT_WORDING,
    HEADLINE,
    PUBLISHED_TABLES,
    STUDY_WORDING,
    is_dirti_run,
    rederived_clip_baseline,
    swap_note,
)
from .render import Banner, Drawing, Figure, Heading, Para, Table, to_html, to_markdown

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
TITLE = "dirti-bench report"

CLASSIFICATION_METRICS = ((ACCURACY, "accuracy"), (BALANCED_ACCURACY, "balanced acc."),
                          (PRECISION_MACRO, "macro P"), (RECALL_MACRO, "macro R"), (F1_MACRO, "macro F1"))


@dataclass
class RunData(ReadBack):
    """One run as the report reads it: its typed ``results`` and the files beside them."""

    path: Path
    results: Results
    predictions: pd.DataFrame | None
    features: tuple[np.ndarray, list[str]] | None
    stimuli: pd.DataFrame | None
    alignment: pd.DataFrame | None = None  # alignment_predictions.csv
    prompts: pd.DataFrame | None = None  # prompts.csv, every cell a string
    label: str = ""
    layer_scores: pd.DataFrame | None = None  # layer_scores.csv of a layer-wise run
    layer_class_scores: pd.DataFrame | None = None  # layer_class_scores.csv: the classifiers per layer


def _read_csv(path: Path, columns: list[str], text: bool = False) -> pd.DataFrame | None:
    """The CSV with at least ``columns``; ``text``: every cell a string, none read as missing."""
    if not path.is_file():
        return None
    try:
        frame = (pd.read_csv(path, dtype=str, keep_default_na=False) if text
                 else pd.read_csv(path, dtype={"stimulus": str}))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not a readable CSV ({exc}); re-run 'dirti-bench run' to regenerate it") from None
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise UserError(f"{path} lacks the columns {absent}; re-run 'dirti-bench run' to regenerate it")
    return frame


def _read_features(path: Path) -> tuple[np.ndarray, list[str]] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            features, ids = np.asarray(npz["features"], dtype=np.float32), [str(s) for s in npz["stimulus"]]
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path} is not a features file ({exc}); re-run 'dirti-bench run' to regenerate it") from None
    if features.ndim != 2 or len(features) != len(ids) or not np.isfinite(features).all():
        raise UserError(f"{path} holds features of shape {features.shape} for {len(ids)} stimuli (or non-finite "
                        "values); re-run 'dirti-bench run' to regenerate it")
    return features, ids


def load_run(results_dir: Path | Results, shown_as: Path | None = None) -> RunData:
    """A results directory's files (or those beside a ``Results`` read from one); ``shown_as``: the
    path the report names (a staged run's final one)."""
    if isinstance(results_dir, Results):
        if results_dir.path is None:
            raise UserError("these results were evaluated in memory and have no folder (the report draws from "
                            "the files beside results.json); write them with dirti_bench.run(..., out=FOLDER) and "
                            "pass that", "results")
        results_dir = results_dir.path
    results_dir = Path(results_dir)
    doc = read_results(results_dir)  # UserError for a missing or invalid directory
    base = results_dir if results_dir.is_dir() else results_dir.parent
    predictions = _read_csv(base / PREDICTIONS_FILE, PREDICTION_COLUMNS)
    alignment = _read_csv(base / ALIGNMENT_PREDICTIONS_FILE, ALIGNMENT_COLUMNS)
    check_saved_run(doc, predictions, alignment, base)  # results edited after the run are not rendered
    frames = {name: frame for name, frame in ((PREDICTIONS_FILE, predictions), (ALIGNMENT_PREDICTIONS_FILE, alignment))
              if frame is not None}
    return RunData(Path(shown_as) if shown_as is not None else base, Results.from_document(doc, frames, base),
                   predictions,
                   _read_features(base / FEATURES_FILE), _read_csv(base / STIMULI_FILE, ["stimulus"]), alignment,
                   _read_csv(base / PROMPTS_FILE, PROMPT_COLUMNS, text=True),
                   layer_scores=_read_csv(base / LAYER_SCORES_FILE, ["scenario", "weights", "layer", "depth",
                                                                     "pearson_r", "ci_low", "ci_high"]),
                   layer_class_scores=_read_csv(base / LAYER_CLASS_SCORES_FILE, ["scenario", "weights", "layer", "depth",
                                                                                 "accuracy", "accuracy_ci_low",
                                                                                 "accuracy_ci_high"]))


def _label_runs(runs: list[RunData]) -> None:
    """``model · weights · device``; the directory name is added where that is not unique."""
    labels = [" · ".join(str(v) for v in (r.info.model or "?", r.info.pretrained or "?", r.info.device or "?"))
              for r in runs]
    for i, run in enumerate(runs):
        run.label = labels[i] if labels.count(labels[i]) == 1 else f"{run.path.name}: {labels[i]}"
    seen: dict[str, int] = {}
    for i, run in enumerate(runs):  # identical directory names too: number them
        seen[run.label] = seen.get(run.label, 0) + 1
        if seen[run.label] > 1:
            run.label = f"{run.label} ({i + 1})"


# ---------------------------------------------------------------- formatting helpers


def _zero_width_notes(runs: list[RunData], metrics, only: str | None = None) -> list:
    """One line per scenario whose shown interval has zero width, saying why (never shown without it)."""
    lines = []
    for run in runs:
        for sid, sc in run.scenarios.items():
            if only is not None and sid != only:
                continue
            reasons = {sc.zero_width_reason(m) for m in metrics} - {None}
            lines += [f"{sid}" + (f" ({run.label})" if len(runs) > 1 else "") + f": {r}" for r in sorted(reasons)]
    return [Para("Zero-width intervals: " + "; ".join(lines) + ".")] if lines else []


def _is_dirti(run: RunData) -> bool:
    """Whether a run's stimuli are DIRTI (or a DIRTI-shaped subset such as the demo), recognised by their
    contents, not their folder's name: exactly DIRTI's six categories and DIRTI's disgust rating column."""
    return is_dirti_run(run)


def _shown(value):
    """A run-block value as the header shows it: the mark for missing where the run did not record it."""
    return MISSING if value is None else value


def _flatten(row: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out |= _flatten(value, f"{name} ")
        elif value is not None:  # absent, e.g. no McNemar test for CV scenarios
            out[name] = value
    return out


def _scenario_ids(runs: list[RunData], classification: bool) -> list[str]:
    """Scenario ids of every run, in order of first appearance: the classification ones or the others."""
    ids: dict[str, None] = {}
    for run in runs:
        for outcome in run.results:
            if (outcome.task in TASKS) == classification:
                ids[outcome.id] = None
    return list(ids)


def _with_run(runs: list[RunData], row: dict, run: RunData) -> dict:
    return {"run": run.label, **row} if len(runs) > 1 else row


# ---------------------------------------------------------------- sections


def _header(runs: list[RunData]) -> list:
    blocks = []
    for run in runs:
        if run.info.smoke_run:
            blocks.append(Banner(f"SMOKE RUN ({run.label}): random weights ({run.info.pretrained}), "
                                 "so these numbers mean nothing; they only show that the pipeline runs."))
        check = run.info.precision_check
        if check:
            blocks.append(Banner(f"REDUCED PRECISION ({run.label}): {describe_precision(check)}."))
    rows = []
    for run in runs:
        r = run.info
        rows.append({
            "run": run.label, "results": str(run.path), "model": _shown(r.model),
            "weights": _shown(r.pretrained), "weights sha256": str(r.weights_sha256 or MISSING)[:12],
            "device": " · ".join(str(v) for v in (r.device, r.device_name) if v) or MISSING,
            "dataset": _shown(r.dataset),
            "dataset sha256": str(r.dataset_sha256 or MISSING)[:12],
            "n stimuli": _shown(r.n_stimuli), "seed": _shown(r.seed),
            "zero-shot scoring": scoring_summary(run.results) or MISSING,
            "created": _shown(r.created),
            "versions": ", ".join(f"{k} {v}" for k, v in r.versions.items()) or MISSING,
        })
    return blocks + [Heading(2, "Runs"), Table(pd.DataFrame(rows).astype(str))]


def _dropped_and_empty(runs: list[RunData]) -> list:
    rows = []
    for run in runs:
        for outcome in run.results:
            empty = outcome.empty_classes
            dropped = list(outcome.dropped_classes)
            if dropped or empty:
                rows.append(_with_run(runs, {"scenario": outcome.id, "dropped (no stimuli in the label space)":
                                             ", ".join(dropped) or MISSING,
                                             "empty (zero support in the evaluated set)": ", ".join(empty) or MISSING},
                                      run))
    blocks = [Heading(2, "Dropped or empty classes")]
    if not rows:
        return blocks + [Para("No class was dropped or empty in any scenario.")]
    n = len({r["scenario"] for r in rows})
    return blocks + [Banner(f"{n} scenario(s) lost or never saw some classes; their macro averages cover fewer "
                            "classes than the label space names."), Table(pd.DataFrame(rows))]


def _headline(runs: list[RunData]) -> list:
    rows = []
    for sid in _scenario_ids(runs, classification=True):
        for run in runs:
            outcome = run.results.scenarios.get(sid)
            if outcome is None:
                continue
            chance = outcome.chance_level
            row = {"scenario": sid, "task": outcome.task or MISSING,
                   "n": MISSING if outcome.recorded_n is None else outcome.recorded_n,
                   "classes": len(outcome.labels), "chance": num(chance) if chance is not None else MISSING}
            row |= {header: metric_with_ci(outcome, metric) for metric, header in CLASSIFICATION_METRICS}
            row["flags"] = outcome.flag_text() or MISSING
            rows.append(_with_run(runs, row, run))
    blocks = [Heading(2, "Headline metrics")]
    if not rows:
        return blocks + [Para("No classification scenario in these results.")]
    return blocks + [Para(f"Macro averages over the scenario's classes; chance: the majority class share (what "
                          f"always guessing that class scores); brackets: {interval_note()}, for accuracy and "
                          "macro F1 where recorded; flags: see Findings."),
                     Table(pd.DataFrame(rows).astype(str))] + _zero_width_notes(runs, (ACCURACY, F1_MACRO))


def _study(runs: list[RunData]) -> list:
    runs = [run for run in runs if _is_dirti(run)]
    if not runs:  # another rated set: DIRTI's published tables do not apply to it
        return []
    rows = []
    corrected = rederived_clip_baseline()
    for table, method, sid, *published in PUBLISHED_TABLES:
        base = {"table": table, "protocol": method}
        rows.append(base | {"source": "published"} | {m: num(v, 2) for m, v in zip(HEADLINE, published, strict=True)})
        if sid == "zeroshot-baseline":
            rows.append(base | {"source": "published, re-derived (P/R unswapped)"}
                        | {m: num(corrected[m]) if m in corrected else MISSING for m in HEADLINE})
        for run in runs:
            sc = run.scenarios.get(sid)
            source = f"this run: {sid}" + (f" ({run.label})" if len(runs) > 1 else "")
            values = {m: num(sc.metrics.get(m)) if sc else "not run" for m in HEADLINE}
            rows.append(base | {"source": source} | values)
    frame = pd.DataFrame(rows).rename(columns={"precision_macro": "macro P", "recall_macro": "macro R",
                                               "f1_macro": "macro F1"})
    blocks = [Heading(2, "Comparison with the original study"),
              Para("The study's Table 1 (6 categories) and Table 2 (12 disgust classes) next to this run's "
                   "scenarios for the same protocols: CLIP ↔ zeroshot-baseline / zeroshot-disgust, "
                   "KNN ↔ knn-split-baseline / knn-split-disgust."),
              Table(frame), Para(swap_note())]
    if any(r.info.smoke_run for r in runs):
        blocks.append(Banner("Smoke run: random weights are not comparable with the study's ViT-B/32."))
    return blocks


def _quote(prompts) -> str:
    prompts = [str(p) for p in prompts or []]
    if not prompts:
        return "?"
    more = f" (+{len(prompts) - 1} more)" if len(prompts) > 1 else ""
    return f"'{prompts[0]}'{more}"


def score_label(outcome: ScenarioOutcome, repeated: bool) -> str:
    """What an alignment scenario's model score is, in words (the y axis of its scatter)."""
    opts = outcome.options
    if "prompts_high" in opts:
        high, low = _quote(opts.get("prompts_high")), _quote(opts.get("prompts_low"))
        if opts.get("score") == "cosine-diff":
            return f"cos(image, {high}) − cos(image, {low})"
        if opts.get("score") == "probability" and opts.get("probability_rule") == "sigmoid":
            return f"sigmoid P({high}) (the model's own rule; {low} not used)"
        return f"P({high}) vs {low}"
    rating = opts.get("rating", "the rating")
    return f"ridge prediction of {rating} (out-of-fold" + (", mean over CV repeats)" if repeated else ")")


def _rating_scale(run: RunData) -> tuple[float, float] | None:
    scale = run.info.rating_scale
    if isinstance(scale, list | tuple) and len(scale) == 2 and all(isinstance(v, int | float) for v in scale):
        return float(scale[0]), float(scale[1])
    return None


def _alignment_title(run: RunData, outcome: ScenarioOutcome) -> str:
    metrics = outcome.metrics
    ci = outcome.interval(SPEARMAN_RHO)
    rho = f"Spearman ρ = {num(metrics.get(SPEARMAN_RHO), 2)}"
    if outcome.suppressed(SPEARMAN_RHO):  # an intercept-only probe's ρ is an artefact of its folds
        rho = f"{NO_SIGNAL} (intercept-only probe; ρ not a finding)"
    elif isinstance(ci, list | tuple) and len(ci) == 2 and all(isinstance(v, int | float) for v in ci):
        rho += f" (95% CI {ci[0]:.2f} to {ci[1]:.2f})"
    ceiling = metrics.get("noise_ceiling_spearman")
    ceiling_text = f"noise ceiling {num(ceiling, 2)}" if isinstance(ceiling, int | float) else "noise ceiling not estimated"
    return figure_title(run.info, f"{outcome.id}: {rho}; {ceiling_text}")


def _alignment_scatter(run: RunData, outcome: ScenarioOutcome, path: str) -> Figure | Para:
    sid = outcome.id
    if run.alignment is None:
        return Para(f"No scatter plot for {sid}: {ALIGNMENT_PREDICTIONS_FILE} is missing in {run.path}.")
    rows = run.alignment[run.alignment["scenario"] == sid]
    human = pd.to_numeric(rows["rating"], errors="coerce")
    model = pd.to_numeric(rows["score"], errors="coerce")
    points = pd.DataFrame({"stimulus": rows["stimulus"].astype(str), "category": rows["category"].astype(str),
                           "human": human, "model": model}).dropna()
    if points.empty:
        return Para(f"No scatter plot for {sid}: its predictions hold no numeric rating/score pairs.")
    repeated = points["stimulus"].duplicated().any()
    # CV repeats -> one point per stimulus
    points = points.groupby(["stimulus", "category"], sort=False)[["human", "model"]].mean().reset_index()
    rating = outcome.options.get("rating", "human rating")
    probe = "prompts_high" not in outcome.options
    figure = Drawing("alignment_figure", (points["human"].to_numpy(), points["model"].to_numpy(),
                                          points["category"].tolist(), _alignment_title(run, outcome)),
                     dict(xlabel=f"mean human rating ({rating})", ylabel=score_label(outcome, repeated),
                          scale=_rating_scale(run), identity_line=probe))
    return Figure(path, figure, f"{sid}: mean human rating vs model score, one point per stimulus")


def ceiling_note(sc: ScenarioOutcome) -> str | None:
    """The noise ceiling's assumption in words, for the report next to the ceiling."""
    opts = sc.options
    if "n_raters" not in opts:
        return None
    if not isinstance(sc.metrics.get("noise_ceiling_spearman"), int | float):
        note = sc.noise_ceiling_note
        return f"Noise ceiling {note}." if note else None
    n, source = opts.get("n_raters"), opts.get("n_raters_source") or "scenario option"
    given = source in ("--n-raters", "scenario option")
    how = f"given by {source}" if given else f"assumed {n}: {source}"
    return (f"Noise ceiling: simulated split halves of {n} raters per image from the per-image SDs in "
            f"{opts.get('sd_column')} ({how}); more raters give a higher ceiling.")


def _other_scenarios(runs: list[RunData]) -> list:
    ids = _scenario_ids(runs, classification=False)
    if not ids:
        return []
    blocks = [Heading(2, "Alignment with human ratings"), Para(ALIGNMENT_METRICS_NOTE)]
    for sid in ids:
        present = [r for r in runs if sid in r.scenarios]
        metrics = list(dict.fromkeys(m for r in present for m in r.scenarios[sid].metrics))
        frame = pd.DataFrame({"metric": metrics} | {
            (r.label if len(runs) > 1 else "value [95% CI]"): [metric_with_ci(r.scenarios[sid], m) for m in metrics]
            for r in present})
        blocks += [Heading(3, sid), Table(frame)] + _zero_width_notes(
            [r for r in present], metrics, only=sid)
        for run in present:
            sc = run.scenarios[sid]
            prefix = f"{run.label}: " if len(runs) > 1 else ""
            flags = sc.flag_text()
            texts = (f"Flags: {flags}." if flags else None, _probe_sentence(sc), _r2_statement(sc), ceiling_note(sc))
            blocks += [Para(prefix + text) for text in texts if text]
            within = sc.within_category
            if within:
                table = pd.DataFrame([{"category": c} | {k: NO_SIGNAL if sc.suppressed(k) else num(v)
                                                         for k, v in row.items()} for c, row in within.items()])
                blocks += [Para(f"Within each category ({run.label}):"), Table(table)]
            blocks.append(_alignment_scatter(run, sc, figure_path(f"alignment-{sid}", runs, run)))
    return blocks


ALIGNMENT_METRICS_NOTE = (
    "Probe metrics are out of fold, averaged over CV repeats: R², Pearson's r, Spearman's rho, RMSE, "
    "r2_intercept_only (the R² of predicting each training fold's mean on the same folds) and the probe's "
    "r2_gain_over_intercept_only (paired bootstrap CI). The noise ceilings "
    "are sqrt of the split-half reliability of the mean ratings (halves simulated from the per-image SDs, "
    "Spearman-Brown corrected): noise_ceiling_pearson from the halves' Pearson r, noise_ceiling_spearman "
    "from their Spearman rho; *_over_ceiling is the correlation divided by its ceiling.")


def _penalty_range(penalty: Penalty) -> str:
    name = penalty.name
    if penalty.mode != "tuned":
        return f"{name} fixed at {num(penalty.value, 4)} (scenario option, not tuned)"
    text = (f"chosen inside each training fold only, never seeing its test fold ({penalty.method}): {name} "
            f"median {penalty.median:.3g}, range {penalty.min:.3g}–{penalty.max:.3g} over "
            f"{penalty.n_folds} folds")
    return text + (f"; {penalty.note}" if penalty.note else "")


def _probe_sentence(sc: ScenarioOutcome) -> str | None:
    """One sentence on what a probe fitted and how its penalty was chosen (from the recorded options)."""
    options = sc.options
    model = str(options.get("model", ""))
    if "layer_rule" in options:  # the layer-wise scenarios say what they chose themselves
        from .layer_figures import layer_sentence

        return layer_sentence(sc)
    if "Ridge" in model:
        fitted = (f"Ridge regression ({model}) from the image features to {options.get('rating', 'the rating')} "
                  f"in {options.get('repeats', '?')}× repeated stratified {options.get('folds_used', '?')}-fold CV")
        name = "alpha"
    elif "LogisticRegression" in model:
        fitted = (f"Multinomial logistic regression ({model}, L2) on the image features in stratified "
                  f"{options.get('folds_effective', '?')}-fold CV")
        name = "C"
    else:
        return None
    penalty = sc.penalty or Penalty(name=name, mode="fixed", value=options.get(name))
    return f"{fitted}; penalty {_penalty_range(penalty)}."


def _r2_statement(sc: ScenarioOutcome) -> str | None:
    """Say so when a probe's out-of-fold R² is <= 0, and whether it is below the intercept-only model
    by more than its own bootstrap CI."""
    metrics = sc.metrics
    r2 = metrics.get("r2")
    if r2 is None or r2 > 0:
        return None
    rating = sc.options.get("rating", "the rating")
    base = metrics.get("r2_intercept_only")
    text = f"R² = {r2:.3f} ≤ 0: out of fold the probe predicts {rating} no better than the training-fold mean"
    if base is None:
        return text + "."
    text += f" (intercept-only model on the same folds: R² = {base:.3f})"
    high = (sc.interval("r2_gain_over_intercept_only") or [None, None])[1]
    if high is not None and high < 0:
        return text + (", and below it by more than noise (the paired 95% CI of the difference lies below 0): "
                       "the probe overfits, so this measures its penalty, not the features.")
    text += (": within noise of predicting the mean, so the features carry no linearly decodable information "
             "about this rating at this sample size.")
    penalty = sc.penalty or Penalty()
    if penalty.mode == "tuned" and penalty.n_strongest == penalty.n_folds:
        text += (" Every fold predicts its training mean, so r and rho here only reflect how the training means "
                 "differ between folds (negative by construction), not the features.")
    return text


def _probe_penalties(runs: list[RunData]) -> list:
    """Each supervised probe: what was fitted, and the penalty each training fold chose."""
    rows = []
    for run in runs:
        for sid, sc in run.scenarios.items():
            sentence = _probe_sentence(sc)
            if sentence:
                rows.append(_with_run(runs, {"scenario": sid, "what was fitted and how the penalty was chosen":
                                             sentence}, run))
    if not rows:
        return []
    return [Heading(2, "Probe penalties"), Table(pd.DataFrame(rows))]


def _comparisons(runs: list[RunData]) -> list:
    rows = []
    for run in runs:
        for comparison in run.results.comparisons:
            if comparison.get("kind") == PROMPT_KIND:  # shown with the prompt sections
                continue
            flat = {k: num(v) for k, v in _flatten(comparison).items()}
            rows.append(_with_run(runs, flat, run))
    if not rows:
        return []
    frame = pd.DataFrame(rows).fillna(MISSING)
    return [Heading(2, "Paired comparisons"),
            Para("Same stimuli, two scenarios: accuracy difference (a − b) with a paired percentile bootstrap CI "
                 "(the same stimuli resampled for both) and, for fixed classifiers, McNemar's exact test; p_holm "
                 "(Holm) and q_bh (Benjamini-Hochberg) correct its p_value within the family named."), Table(frame)]


def _throughput(runs: list[RunData]) -> list:
    rows = []
    for run in runs:
        throughput = run.info.throughput
        if isinstance(throughput, dict):
            rows += [_with_run(runs, {"measure": k, "value": num(v)}, run) for k, v in _flatten(throughput).items()]
        elif throughput is not None:
            rows.append(_with_run(runs, {"measure": "throughput", "value": num(throughput)}, run))
    if not rows:
        return []
    return [Heading(2, "Encoding throughput"), Table(pd.DataFrame(rows))]


def _profile_section(runs: list[RunData], grouped_of, render, heading: str, intro: str, missing=None) -> list:
    """A heading and its intro, then per run (named when there are several) one table of every group's
    rows and each group's figure. ``grouped_of(run)``: group -> by_kind, empty where the run has none;
    ``render(group, by_kind, run)``: (rows, figure, file stem, caption); ``missing``: what stands in a
    cell no row fills."""
    blocks = []
    for run in runs:
        grouped = grouped_of(run)
        if not grouped:
            continue
        from .figures import png  # matplotlib loads only when a figure is drawn

        rows, figures = [], []
        for group, by_kind in grouped.items():
            group_rows, figure, stem, caption = render(group, by_kind, run)
            rows += group_rows
            figures.append(Figure(figure_path(stem, runs, run), png(figure), caption))  # png closes the figure
        if not blocks:
            blocks += [Heading(2, heading), Para(intro)]
        if len(runs) > 1:
            blocks.append(Para(f"**{run.label}**"))
        table = pd.DataFrame(rows)
        blocks += [Table(table if missing is None else table.fillna(missing)), *figures]
    return blocks


def _layer_profiles(runs: list[RunData]) -> list:
    """Per rating: the layer profile figure and one row with the nested and superlative layer choices,
    their gap, the random-init band and the pixel baseline, each with its CI."""
    from .layer_figures import (
        LayerOutcome,
        group_by_rating,
        layer_figure_name,
        layer_kind,
        layer_profile_figure,
        layer_summary_row,
    )

    def grouped_of(run: RunData) -> dict:
        outcomes = [sc for sc in run.results if layer_kind(sc.id) and "layer_rule" in sc.options]
        if not outcomes or run.layer_scores is None:
            return {}
        return group_by_rating(LayerOutcome.from_outcome(sc, run.layer_scores) for sc in outcomes)

    def render(rating: str, by_kind: dict, run: RunData):
        return ([layer_summary_row(by_kind, rating)], layer_profile_figure(by_kind, rating, run.info),
                layer_figure_name(rating).removesuffix(".png"),
                f"{rating}: out-of-fold Pearson r of the ridge probe per layer vs depth (95% bootstrap CI band), the "
                "nested choice (line, CI band), the superlative choice (star), the random-init band over seeds and "
                "the pixel baseline")

    return _profile_section(
        runs, grouped_of, render, "Layer profiles",
        "Which layer carries each rating: a ridge probe on every layer of the image tower. The headline (nested) "
        "picks the layer with the best leave-one-out r inside each training fold, so its r is out of fold; the "
        "superlative layer is the published choice, the best layer picked on the same scores it reports, so "
        "superlative - nested is how optimistic that choice is. Random-init: the same architecture with seeded "
        "random weights, the band is the min-max of the nested r over seeds. Pixels: the same probe on low-level "
        "image statistics, no model. CIs: percentile bootstrap over stimuli (differences paired). Every per-layer "
        "score recomputes from layer_predictions.csv.")


def _class_layer_profiles(runs: list[RunData]) -> list:
    """Per classification task: the layer-profile figure of the classifiers per layer and one row with
    their nested and superlative choices, the gap, the random-init band and the pixel probe."""
    from .layer_figures import (
        class_layer_figure_name,
        class_layer_kind,
        class_layer_profile_figure,
        class_layer_summary_rows,
        class_outcome_from_outcome,
        group_by_task,
    )

    def grouped_of(run: RunData) -> dict:
        ids = [sid for sid in run.scenarios if class_layer_kind(sid)]
        if not ids or run.layer_class_scores is None:
            return {}
        return group_by_task(class_outcome_from_outcome(run.scenarios[sid], run.layer_class_scores) for sid in ids)

    def render(task: str, by_kind: dict, run: RunData):
        return (class_layer_summary_rows(by_kind, task), class_layer_profile_figure(by_kind, task, run.info),
                class_layer_figure_name(task).removesuffix(".png"),
                f"{task} task: out-of-fold accuracy per layer vs depth (95% stratified bootstrap CI bands), the nested "
                "choices (lines), the superlative layers (stars), the random-init band over seeds and the "
                "pixel-statistics probe")

    return _profile_section(
        runs, grouped_of, render, "Layer profiles of the classes",
        "Which layer carries the classes: the logistic probe and the KNN on every layer of the image tower. The "
        "headline (nested) picks the layer with the best inner-CV accuracy inside each training fold, so its "
        "accuracy is out of fold; the superlative layer is the best layer picked on the same out-of-fold scores it "
        "reports, so superlative - nested is how optimistic that choice is. Random-init: the probe per layer on the "
        "same architecture with seeded random weights (band: min-max of the nested accuracy over seeds); pixels: "
        "the probe on low-level image statistics, no model. CIs: 95% percentile bootstrap resampling the stimuli "
        "within each true class (differences paired). Every per-layer score recomputes from "
        "layer_class_predictions.csv.", missing=MISSING)


def _per_class(runs: list[RunData]) -> list:
    blocks = [Heading(2, "Per-class results")]
    for sid in _scenario_ids(runs, classification=True):
        blocks.append(Heading(3, sid))
        for run in runs:
            sc = run.scenarios.get(sid)
            if sc is None:
                continue
            if len(runs) > 1:
                blocks.append(Para(f"Run: {run.label}"))
            rows = [{"class": c, "precision": num(v.precision), "recall": num(v.recall),
                     "f1": num(v.f1), "support": num(v.support),
                     "note": "EMPTY: no stimuli evaluated" if v.empty else ""}
                    for c, v in sc.per_class_scores.items()]
            rows += [{"class": c, "precision": MISSING, "recall": MISSING, "f1": MISSING, "support": "0",
                      "note": "DROPPED from the label space"} for c in sc.dropped_classes]
            if rows:
                blocks.append(Table(pd.DataFrame(rows)))
            labels, confusion = list(sc.labels), sc.confusion
            if labels and confusion and len(confusion) == len(labels) and not sc.is_sweep:  # sweeps: own figures
                title = figure_title(run.info, f"{sid}: confusion matrix", sc.flag_codes)
                figure = Drawing("confusion_figure", (labels, confusion, title),
                                 dict(order=sc.display_order, dropped=list(sc.dropped_classes)))
                blocks.append(Figure(figure_path(f"confusion-{sid}", runs, run), figure,
                                     f"{sid}: confusion matrix (rows true, columns predicted; colour = share "
                                     "of the true class, numbers = counts)"))
    return blocks


# the calibration table's columns: (label, metric), each shown with its bootstrap CI
CALIBRATION_COLUMNS = (("ECE", "ece"), ("ECE calibrated", "ece_calibrated"), ("Brier", "brier"),
                       ("Brier calibrated", "brier_calibrated"))


def _calibration(runs: list[RunData]) -> list:
    """Zero-shot confidences: ECE and Brier raw and temperature-calibrated, with a reliability diagram."""
    rows, figures = [], []
    for sid in _scenario_ids(runs, classification=True):
        for run in runs:
            sc = run.scenarios.get(sid)
            record = sc.calibration if sc is not None else None
            if record is None:
                continue
            opts = sc.options
            rows.append(_with_run(runs, {
                "scenario": sid, "scoring": f"{opts.get('scoring', '?')}: {opts.get('probability_rule', '?')}, "
                                            f"scale {num(opts.get('logit_scale'))}, bias {num(opts.get('logit_bias'))}",
                **{label: sc.value_with_ci(name, ci_digits=3) for label, name in CALIBRATION_COLUMNS},
                "median T": num(record.temperature_median), "T folds": num(record.temperature_folds)}, run))
            # the legend is what a pasted PNG keeps: each ECE with its 95% bootstrap interval
            panels = [{"label": f"raw (ECE {sc.value_with_ci('ece', ci_digits=3)}, 95% CI)",
                       "table": record.reliability},
                      {"label": f"temperature, out-of-fold (ECE {sc.value_with_ci('ece_calibrated', ci_digits=3)}, 95% CI)",
                       "table": record.reliability_calibrated}]
            if all(isinstance(p["table"], list) and p["table"] for p in panels):
                figure = Drawing("reliability_figure", (panels, figure_title(run.info, f"{sid}: reliability", sc.flag_codes)))
                figures.append(Figure(figure_path(f"reliability-{sid}", runs, run), figure,
                                      f"{sid}: reliability diagram, {record.ece_bins} equal-mass bins"))
    if not rows:
        return []
    binning = next((sc.calibration.binning for run in runs for sc in run.results if sc.calibration is not None), "")
    return [Heading(2, "Calibration of zero-shot confidences"),
            Para("Can the confidences be trusted? Expected calibration error (ECE) of the top-label probability, "
                 f"bins {binning}; Brier score summed over classes (one-vs-rest). 'calibrated': one temperature "
                 f"fitted on the CV training folds only and applied to the held-out fold. Brackets: {interval_note()}, "
                 "the accuracy CI's draws, the fitted temperatures held fixed. Probabilities per class (everything "
                 "here recomputes from them): probabilities.csv.gz."),
            Table(pd.DataFrame(rows))] + figures


def _projection(runs: list[RunData], method: str | None, reporter=None) -> list:
    """Each run's image features in 2-D: ``method``, else what the run recorded (umap by default)."""
    blocks = [Heading(2, "Projection of the image features")]
    for run in runs:
        chosen = method or run.info.projection or "umap"
        chosen = chosen if chosen in PROJECTIONS else "umap"
        prefix = f"{run.label}: " if len(runs) > 1 else ""
        reason = None
        if run.features is None:
            reason = f"no {FEATURES_FILE} in {run.path}"
        elif run.stimuli is None or "category" not in run.stimuli:
            reason = f"no {STIMULI_FILE} with a category column in {run.path}"
        elif len(run.features[0]) < MIN_POINTS:
            reason = f"only {len(run.features[0])} stimuli (a projection needs at least {MIN_POINTS})"
        if reason:
            blocks.append(Para(f"{prefix}{chosen.upper()} skipped: {reason}."))
            continue
        features, ids = run.features
        table = run.stimuli.assign(stimulus=run.stimuli["stimulus"].astype(str)).set_index("stimulus")
        table = table.reindex(ids)
        column = run.info.disgust_column or DISGUST_RATING  # a rated set's own disgust column
        rating = None
        if column in table:
            rating = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)
            if np.isnan(rating).any() and table[column].notna().all():
                raise UserError(f"{run.path / STIMULI_FILE} column {column!r} holds non-numbers; "
                                "re-run 'dirti-bench run' to regenerate it")
        seed = int(run.info.seed or 0)
        if reporter is not None:  # a UMAP fit of thousands of points takes minutes (cached afterwards)
            reporter.stage(f"{prefix}projection: {chosen.upper()} of {len(ids)} image embeddings")
        embedding, axes = project(features, chosen, seed=seed)
        what = f"{chosen.upper()} of {len(ids)} image embeddings" + (f" (random_state={seed})" if chosen == "umap" else "")
        figure = Drawing("projection_figure", (embedding, table["category"].fillna("unknown").astype(str).tolist(),
                                               rating, column, figure_title(run.info, what).replace("\n", " — ")),
                         dict(axis_names=axes))
        caption = f"{prefix}{chosen.upper()} of the image features, coloured by category" + (
            f" and by {column}" if rating is not None else f" (no {column} column)")
        blocks.append(Figure(figure_path(chosen, runs, run), figure, caption))
        if chosen == "pca":
            blocks.append(Para("PCA keeps the first run fast; 'dirti-bench report RESULTS_DIR --projection umap' "
                               "(or 'dirti-bench run --projection umap') draws the UMAP."))
    return blocks


def _skipped(runs: list[RunData]) -> list:
    rows = []
    for run in runs:
        rows += [_with_run(runs, {"scenario": sid, "why it cannot run on this data": str(reason)}, run)
                 for sid, reason in run.results.skipped.items()]
    if not rows:
        return []
    return [Heading(2, "Skipped scenarios"),
            Para("The data cannot support these scenarios; every other scenario ran."), Table(pd.DataFrame(rows))]


def _findings(runs: list[RunData]) -> list:
    """The generated Findings block (reporting/findings.py), first in the report."""
    blocks = [Heading(2, "Findings")]
    for run in runs:
        if len(runs) > 1:
            blocks.append(Para(f"**{run.label}**"))
        blocks += [Para(f"- {line}") for line in finding_lines(run.results)]
    return blocks


def _default_wording(block):
    """A block with "study wording" called "default wording": on another set than DIRTI the fixed wording
    is built from the set's class names (or class_phrases), not the study's."""
    def name(text: str) -> str:
        return text.replace(STUDY_WORDING, DEFAULT_WORDING).replace("Study wording", "Default wording")

    if isinstance(block, Heading):
        return Heading(block.level, name(block.text))
    if isinstance(block, Para | Banner):
        return type(block)(name(block.text))
    if isinstance(block, Table):
        return Table(block.frame.rename(columns=lambda c: name(str(c))).map(lambda v: name(str(v))))
    if isinstance(block, Figure):
        return Figure(block.file, block.png, name(block.caption))
    return block


def build_blocks(runs: list[RunData], projection: str | None = None, reporter=None) -> list:
    _label_runs(runs)
    if not any(_is_dirti(run) for run in runs):
        return [_default_wording(b) for b in _build_blocks(runs, projection, reporter)]
    return _build_blocks(runs, projection, reporter)


def _build_blocks(runs: list[RunData], projection: str | None = None, reporter=None) -> list:
    return (_findings(runs) + _header(runs) + _skipped(runs) + _dropped_and_empty(runs) + _headline(runs) + prompt_sections(runs)
            + _study(runs) + _other_scenarios(runs) + _layer_profiles(runs) + _class_layer_profiles(runs) + _probe_penalties(runs) + _comparisons(runs) + _throughput(runs)
            + _calibration(runs) + _per_class(runs) + _projection(runs, projection, reporter))


def report_dir(out: Path) -> Path:
    """``out`` as the folder a report goes into; a file in its place is the user's to move."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"report output {out} is a file; pass a directory as the report's folder", "out")
    return out


def write_report(results_dirs: list[Path | Results], out: Path, shown_as: list[Path] | None = None,
                 projection: str | None = None, reporter=None, jobs: int | None = None,
                 figure_cache: bool = True) -> Path:
    """Render everything in memory, then write figures, report.md and report.html atomically.

    ``results_dirs``: results folders, or ``Results`` read from one (``load_results``);
    ``shown_as``: the paths the report names for ``results_dirs`` (a run writes into a staging
    folder first); ``projection``: umap or pca (default: what each run recorded, else umap).
    ``reporter``: shows the figures' progress; ``jobs``: worker processes drawing the figures
    (default ``figures.figure_jobs``; the bytes do not depend on it); ``figure_cache``: reuse unchanged
    figures from the cache home (``figures.drawing_key``). Returns the path of report.md.
    A failure while rendering leaves no new file behind, and the
    figures folder is replaced whole, so no figure of an earlier report survives.
    """
    if not results_dirs:
        raise UserError("no results directory given; pass one or more directories written by 'dirti-bench run'")
    out = report_dir(out)
    if projection is not None and projection not in PROJECTIONS:
        raise UserError(f"unknown projection {projection!r}; choose one of {', '.join(PROJECTIONS)}")
    shown = list(shown_as) if shown_as is not None else [None] * len(results_dirs)
    # before any figure is drawn: an unwritable folder is one error line, not minutes of work first
    existing = next(p for p in [out, *out.parents] if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise UserError(f"cannot write the report into {out} ({existing} is not a writable folder); pass a "
                        "writable folder", "out")
    folder = out / FIGURES_DIR
    if folder.is_dir() and any(folder.iterdir()) and not (out / REPORT_MD).exists() and not (out / REPORT_HTML).exists():
        raise UserError(f"{folder} holds files that no dirti-bench report wrote (the report replaces its figures "
                        "folder whole); pass another report folder", "out")
    blocks = build_blocks([load_run(d if isinstance(d, Results) else Path(d), s) for d, s in zip(results_dirs, shown, strict=True)], projection,
                          reporter)
    if any(isinstance(b, Figure) for b in blocks):
        from .figure_cache import draw_blocks  # matplotlib loads only when a figure must be drawn

        blocks = draw_blocks(blocks, jobs, reporter, cache=figure_cache)
    html, markdown = to_html(TITLE, blocks), to_markdown(TITLE, blocks)
    figures = [block for block in blocks if isinstance(block, Figure)]
    try:
        out.mkdir(parents=True, exist_ok=True)
        if figures or (out / FIGURES_DIR).exists():
            with StagedDir(out / FIGURES_DIR) as staged:
                for block in figures:
                    write_bytes(staged.path / Path(block.file).relative_to(FIGURES_DIR), block.png)
                staged.commit()
        write_text(out / REPORT_HTML, html)
        write_text(out / REPORT_MD, markdown)
    except OSError as exc:
        raise UserError(f"cannot write the report into {out} ({exc.strerror or exc}); pass a writable folder",
                        "out") from None
    return out / REPORT_MD
