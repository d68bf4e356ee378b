"""``report.md`` + self-contained ``report.html`` (+ PNG figures) from one or more results dirs.

Several results directories (models, devices, prompt sets) are shown side by
side: every table gets a ``run`` column when there is more than one. Each
section renders whatever subset of scenarios a directory holds.
"""

from __future__ import annotations

import math
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import write_bytes, write_text
from ..data.stimuli import DISGUST_RATING
from ..encoding.precision import describe as describe_precision
from ..errors import UserError
from ..labels import TASKS
from ..results import FEATURES_FILE, PREDICTIONS_FILE, STIMULI_FILE, read_results
from .projection import MIN_POINTS, umap_projection
from .published import HEADLINE, PUBLISHED_TABLES, rederived_clip_baseline, swap_note
from .render import Banner, Figure, Heading, Para, Table, to_html, to_markdown

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
FIGURES_DIR = "figures"
TITLE = "dirti-bench report"

CLASSIFICATION_METRICS = (("accuracy", "accuracy"), ("balanced_accuracy", "balanced acc."),
                          ("precision_macro", "macro P"), ("recall_macro", "macro R"), ("f1_macro", "macro F1"))
MISSING = "–"


@dataclass
class RunData:
    path: Path
    doc: dict
    predictions: pd.DataFrame | None
    features: tuple[np.ndarray, list[str]] | None
    stimuli: pd.DataFrame | None
    label: str = ""

    @property
    def run(self) -> dict:
        return self.doc.get("run", {})

    @property
    def scenarios(self) -> dict:
        return self.doc.get("scenarios", {})


def _read_csv(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path, dtype={"stimulus": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not a readable CSV ({exc}); re-run 'dirti-bench run' to regenerate it") from None


def _read_features(path: Path) -> tuple[np.ndarray, list[str]] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            return np.asarray(npz["features"], dtype=np.float32), [str(s) for s in npz["stimulus"]]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path} is not a features file ({exc}); re-run 'dirti-bench run' to regenerate it") from None


def load_run(results_dir: Path) -> RunData:
    results_dir = Path(results_dir)
    doc = read_results(results_dir)  # UserError for a missing or invalid directory
    base = results_dir if results_dir.is_dir() else results_dir.parent
    return RunData(base, doc, _read_csv(base / PREDICTIONS_FILE), _read_features(base / FEATURES_FILE),
                   _read_csv(base / STIMULI_FILE))


def _label_runs(runs: list[RunData]) -> None:
    """``model · weights · device``; the directory name is added where that is not unique."""
    labels = [f"{r.run.get('model', '?')} · {r.run.get('pretrained', '?')} · {r.run.get('device', '?')}" for r in runs]
    for i, run in enumerate(runs):
        run.label = labels[i] if labels.count(labels[i]) == 1 else f"{run.path.name}: {labels[i]}"
    seen: dict[str, int] = {}
    for i, run in enumerate(runs):  # identical directory names too: number them
        seen[run.label] = seen.get(run.label, 0) + 1
        if seen[run.label] > 1:
            run.label = f"{run.label} ({i + 1})"


# ---------------------------------------------------------------- formatting helpers


def _num(value, digits: int = 3) -> str:
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    if isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, int | float) for v in value):
        return f"[{_num(value[0], digits)}, {_num(value[1], digits)}]"
    return str(value)


def _with_ci(scenario: dict, metric: str) -> str:
    value = scenario.get("metrics", {}).get(metric)
    if value is None:
        return MISSING
    ci = scenario.get("ci", {}).get(metric)
    return _num(value) + (f" {_num(ci)}" if ci else "")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


def _flatten(row: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out |= _flatten(value, f"{name} ")
        elif value is not None:  # absent, e.g. no McNemar test for CV scenarios
            out[name] = value
    return out


def _is_classification(scenario: dict) -> bool:
    return scenario.get("task") in TASKS


def _scenario_ids(runs: list[RunData], classification: bool) -> list[str]:
    ids: dict[str, None] = {}
    for run in runs:
        for sid, sc in run.scenarios.items():
            if _is_classification(sc) == classification:
                ids[sid] = None
    return list(ids)


def _with_run(runs: list[RunData], row: dict, run: RunData) -> dict:
    return {"run": run.label, **row} if len(runs) > 1 else row


# ---------------------------------------------------------------- sections


def _header(runs: list[RunData]) -> list:
    blocks = []
    for run in runs:
        if run.run.get("smoke_run"):
            blocks.append(Banner(f"SMOKE RUN ({run.label}): random weights ({run.run.get('pretrained')}), "
                                 "so these numbers mean nothing; they only show that the pipeline runs."))
        check = run.run.get("precision_check")
        if check:
            blocks.append(Banner(f"REDUCED PRECISION ({run.label}): {describe_precision(check)}."))
    rows = []
    for run in runs:
        r, versions = run.run, run.run.get("versions", {})
        rows.append({
            "run": run.label, "results": str(run.path), "model": r.get("model", MISSING),
            "weights": r.get("pretrained", MISSING), "weights sha256": str(r.get("weights_sha256") or MISSING)[:12],
            "device": r.get("device", MISSING), "dataset": r.get("dataset", MISSING),
            "dataset sha256": str(r.get("dataset_sha256") or MISSING)[:12],
            "n stimuli": r.get("n_stimuli", MISSING), "seed": r.get("seed", MISSING),
            "created": r.get("created", MISSING),
            "versions": ", ".join(f"{k} {v}" for k, v in versions.items()) or MISSING,
        })
    return blocks + [Heading(2, "Runs"), Table(pd.DataFrame(rows).astype(str))]


def _dropped_and_empty(runs: list[RunData]) -> list:
    rows = []
    for run in runs:
        for sid, sc in run.scenarios.items():
            empty = [c for c, v in sc.get("per_class", {}).items() if v.get("support", 1) == 0]
            dropped = list(sc.get("dropped_classes", []))
            if dropped or empty:
                rows.append(_with_run(runs, {"scenario": sid, "dropped (no stimuli in the label space)":
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
            sc = run.scenarios.get(sid)
            if sc is None:
                continue
            row = {"scenario": sid, "task": sc.get("task", MISSING), "n": sc.get("n", MISSING),
                   "classes": len(sc.get("labels", []))}
            row |= {header: _with_ci(sc, metric) for metric, header in CLASSIFICATION_METRICS}
            rows.append(_with_run(runs, row, run))
    blocks = [Heading(2, "Headline metrics")]
    if not rows:
        return blocks + [Para("No classification scenario in these results.")]
    return blocks + [Para("Macro averages over the scenario's classes; brackets: 95% bootstrap CI where recorded."),
                     Table(pd.DataFrame(rows).astype(str))]


def _study(runs: list[RunData]) -> list:
    rows = []
    corrected = rederived_clip_baseline()
    for table, method, sid, *published in PUBLISHED_TABLES:
        base = {"table": table, "protocol": method}
        rows.append(base | {"source": "published"} | {m: _num(v, 2) for m, v in zip(HEADLINE, published, strict=True)})
        if sid == "zeroshot-baseline":
            rows.append(base | {"source": "published, re-derived (P/R unswapped)"}
                        | {m: _num(corrected[m]) if m in corrected else MISSING for m in HEADLINE})
        for run in runs:
            sc = run.scenarios.get(sid)
            source = f"this run: {sid}" + (f" ({run.label})" if len(runs) > 1 else "")
            values = {m: _num(sc["metrics"].get(m)) if sc else "not run" for m in HEADLINE}
            rows.append(base | {"source": source} | values)
    frame = pd.DataFrame(rows).rename(columns={"precision_macro": "macro P", "recall_macro": "macro R",
                                               "f1_macro": "macro F1"})
    blocks = [Heading(2, "Comparison with the original study"),
              Para("The study's Table 1 (6 categories) and Table 2 (12 disgust classes) next to this run's "
                   "scenarios for the same protocols: CLIP ↔ zeroshot-baseline / zeroshot-disgust, "
                   "KNN ↔ knn-split-baseline / knn-split-disgust."),
              Table(frame), Para(swap_note())]
    if any(r.run.get("smoke_run") for r in runs):
        blocks.append(Banner("Smoke run: random weights are not comparable with the study's ViT-B/32."))
    return blocks


def _alignment_scatter(run: RunData, sid: str, sc: dict, name: str) -> Figure | Para:
    if run.predictions is None:
        return Para(f"No scatter plot for {sid}: {PREDICTIONS_FILE} is missing in {run.path}.")
    rows = run.predictions[run.predictions["scenario"] == sid]
    human = pd.to_numeric(rows["y_true"], errors="coerce")
    model = pd.to_numeric(rows["y_pred"], errors="coerce")
    points = pd.DataFrame({"stimulus": rows["stimulus"].astype(str), "human": human, "model": model}).dropna()
    if points.empty:
        return Para(f"No scatter plot for {sid}: its predictions hold no numeric rating/score pairs.")
    repeated = points["stimulus"].duplicated().any()
    points = points.groupby("stimulus", sort=False).mean().reset_index()  # CV repeats -> one point each
    categories = None
    if run.stimuli is not None and "category" in run.stimuli:
        lookup = dict(zip(run.stimuli["stimulus"].astype(str), run.stimuli["category"].astype(str), strict=True))
        categories = [lookup.get(s, "unknown") for s in points["stimulus"]]
    from .figures import alignment_png  # matplotlib loads only when a figure is drawn

    rating = sc.get("options", {}).get("rating", "human rating")
    png = alignment_png(points["human"].to_numpy(), points["model"].to_numpy(), categories,
                        f"{sid}: human {rating} vs model score", xlabel=f"human rating ({rating})",
                        ylabel="model score" + (" (mean over CV repeats)" if repeated else ""))
    return Figure(f"{FIGURES_DIR}/{name}.png", png, f"{sid}: human rating vs model score, one point per stimulus")


def _other_scenarios(runs: list[RunData]) -> list:
    ids = _scenario_ids(runs, classification=False)
    if not ids:
        return []
    blocks = [Heading(2, "Alignment with human ratings"), Para(ALIGNMENT_METRICS_NOTE)]
    for sid in ids:
        present = [r for r in runs if sid in r.scenarios]
        metrics = list(dict.fromkeys(m for r in present for m in r.scenarios[sid].get("metrics", {})))
        frame = pd.DataFrame({"metric": metrics} | {
            (r.label if len(runs) > 1 else "value [95% CI]"): [_with_ci(r.scenarios[sid], m) for m in metrics]
            for r in present})
        blocks += [Heading(3, sid), Table(frame)]
        for run in present:
            sc = run.scenarios[sid]
            prefix = f"{run.label}: " if len(runs) > 1 else ""
            blocks += [Para(prefix + text) for text in (_probe_sentence(sc), _r2_statement(sc)) if text]
            within = sc.get("extra", {}).get("within_category")
            if isinstance(within, dict) and within and all(isinstance(v, dict) for v in within.values()):
                table = pd.DataFrame([{"category": c} | {k: _num(v) for k, v in row.items()}
                                      for c, row in within.items()])
                blocks += [Para(f"Within each category ({run.label}):"), Table(table)]
            name = _slug(f"alignment-{sid}" + (f"-{run.label}" if len(runs) > 1 else ""))
            blocks.append(_alignment_scatter(run, sid, sc, name))
    return blocks


ALIGNMENT_METRICS_NOTE = (
    "Probe metrics are out of fold, averaged over CV repeats: R², Pearson's r, Spearman's rho, RMSE, "
    "r2_intercept_only (the R² of predicting each training fold's mean on the same folds) and the probe's "
    "r2_gain_over_intercept_only (paired bootstrap CI). The noise ceilings "
    "are sqrt of the split-half reliability of the mean ratings (halves simulated from the per-image SDs, "
    "Spearman-Brown corrected): noise_ceiling_pearson from the halves' Pearson r, noise_ceiling_spearman "
    "from their Spearman rho; *_over_ceiling is the correlation divided by its ceiling.")


def _penalty_range(penalty: dict) -> str:
    name = penalty.get("name", "penalty")
    if penalty.get("mode") != "tuned":
        return f"{name} fixed at {_num(penalty.get('value'), 4)} (scenario option, not tuned)"
    text = (f"chosen inside each training fold only, never seeing its test fold ({penalty['method']}): {name} "
            f"median {penalty['median']:.3g}, range {penalty['min']:.3g}–{penalty['max']:.3g} over "
            f"{penalty['n_folds']} folds")
    return text + (f"; {penalty['note']}" if penalty.get("note") else "")


def _probe_sentence(sc: dict) -> str | None:
    """One sentence on what a probe fitted and how its penalty was chosen (from the recorded options)."""
    options = sc.get("options", {})
    model = str(options.get("model", ""))
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
    penalty = sc.get("extra", {}).get("penalty") or {"name": name, "mode": "fixed", "value": options.get(name)}
    return f"{fitted}; penalty {_penalty_range(penalty)}."


def _r2_statement(sc: dict) -> str | None:
    """Say so when a probe's out-of-fold R² is <= 0, and whether it is below the intercept-only model
    by more than its own bootstrap CI."""
    metrics = sc.get("metrics", {})
    r2 = metrics.get("r2")
    if r2 is None or r2 > 0:
        return None
    rating = sc.get("options", {}).get("rating", "the rating")
    base = metrics.get("r2_intercept_only")
    text = f"R² = {r2:.3f} ≤ 0: out of fold the probe predicts {rating} no better than the training-fold mean"
    if base is None:
        return text + "."
    text += f" (intercept-only model on the same folds: R² = {base:.3f})"
    high = (sc.get("ci", {}).get("r2_gain_over_intercept_only") or [None, None])[1]
    if high is not None and high < 0:
        return text + (", and below it by more than noise (the paired 95% CI of the difference lies below 0): "
                       "the probe overfits, so this measures its penalty, not the features.")
    text += (": within noise of predicting the mean, so the features carry no linearly decodable information "
             "about this rating at this sample size.")
    penalty = sc.get("extra", {}).get("penalty") or {}
    if penalty.get("mode") == "tuned" and penalty.get("n_strongest") == penalty.get("n_folds"):
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
        for comparison in run.doc.get("comparisons") or []:
            flat = {k: _num(v) for k, v in _flatten(comparison).items()}
            rows.append(_with_run(runs, flat, run))
    if not rows:
        return []
    frame = pd.DataFrame(rows).fillna(MISSING)
    return [Heading(2, "Paired comparisons"),
            Para("Same stimuli, two scenarios: accuracy difference (a − b) with a paired bootstrap CI and, "
                 "for fixed classifiers, McNemar's exact test."), Table(frame)]


def _throughput(runs: list[RunData]) -> list:
    rows = []
    for run in runs:
        throughput = run.run.get("throughput")
        if isinstance(throughput, dict):
            rows += [_with_run(runs, {"measure": k, "value": _num(v)}, run) for k, v in _flatten(throughput).items()]
        elif throughput is not None:
            rows.append(_with_run(runs, {"measure": "throughput", "value": _num(throughput)}, run))
    if not rows:
        return []
    return [Heading(2, "Encoding throughput"), Table(pd.DataFrame(rows))]


def _per_class(runs: list[RunData]) -> list:
    from .figures import confusion_png  # matplotlib loads only when a figure is drawn

    blocks = [Heading(2, "Per-class results")]
    for sid in _scenario_ids(runs, classification=True):
        blocks.append(Heading(3, sid))
        for run in runs:
            sc = run.scenarios.get(sid)
            if sc is None:
                continue
            if len(runs) > 1:
                blocks.append(Para(f"Run: {run.label}"))
            rows = [{"class": c, "precision": _num(v.get("precision")), "recall": _num(v.get("recall")),
                     "f1": _num(v.get("f1")), "support": _num(v.get("support")),
                     "note": "EMPTY: no stimuli evaluated" if v.get("support", 1) == 0 else ""}
                    for c, v in sc.get("per_class", {}).items()]
            rows += [{"class": c, "precision": MISSING, "recall": MISSING, "f1": MISSING, "support": "0",
                      "note": "DROPPED from the label space"} for c in sc.get("dropped_classes", [])]
            if rows:
                blocks.append(Table(pd.DataFrame(rows)))
            labels, confusion = sc.get("labels", []), sc.get("confusion", [])
            if labels and confusion and len(confusion) == len(labels):
                title = f"{sid}" + (f"\n{run.label}" if len(runs) > 1 else "")
                name = _slug(f"confusion-{sid}" + (f"-{run.label}" if len(runs) > 1 else ""))
                blocks.append(Figure(f"{FIGURES_DIR}/{name}.png", confusion_png(labels, confusion, title),
                                     f"{sid}: confusion matrix (rows true, columns predicted)"))
    return blocks


def _umap(runs: list[RunData]) -> list:
    blocks = [Heading(2, "UMAP projection of the image features")]
    for run in runs:
        prefix = f"{run.label}: " if len(runs) > 1 else ""
        reason = None
        if run.features is None:
            reason = f"no {FEATURES_FILE} in {run.path}"
        elif run.stimuli is None or "category" not in run.stimuli:
            reason = f"no {STIMULI_FILE} with a category column in {run.path}"
        elif len(run.features[0]) < MIN_POINTS:
            reason = f"only {len(run.features[0])} stimuli (UMAP needs at least {MIN_POINTS})"
        if reason:
            blocks.append(Para(f"{prefix}UMAP skipped: {reason}."))
            continue
        from .figures import umap_png  # matplotlib loads only when a figure is drawn

        features, ids = run.features
        table = run.stimuli.assign(stimulus=run.stimuli["stimulus"].astype(str)).set_index("stimulus")
        table = table.reindex(ids)
        column = run.run.get("disgust_column") or DISGUST_RATING  # a rated set's own disgust column
        rating = table[column].to_numpy(dtype=float) if column in table else None
        seed = int(run.run.get("seed", 0) or 0)
        embedding = umap_projection(features, seed=seed)
        title = f"{prefix}UMAP of {len(ids)} image embeddings (random_state={seed})"
        png = umap_png(embedding, table["category"].fillna("unknown").astype(str).tolist(), rating,
                       column, title)
        name = _slug("umap" + (f"-{run.label}" if len(runs) > 1 else ""))
        caption = f"{prefix}UMAP of the image features, coloured by category" + (
            f" and by {column}" if rating is not None else f" (no {column} column)")
        blocks.append(Figure(f"{FIGURES_DIR}/{name}.png", png, caption))
    return blocks


def build_blocks(runs: list[RunData]) -> list:
    _label_runs(runs)
    return (_header(runs) + _dropped_and_empty(runs) + _headline(runs) + _study(runs) + _other_scenarios(runs)
            + _probe_penalties(runs) + _comparisons(runs) + _throughput(runs) + _per_class(runs) + _umap(runs))


def write_report(results_dirs: list[Path], out: Path) -> Path:
    """Render everything in memory, then write figures, report.md and report.html atomically.

    Returns the path of report.md. A failure while rendering leaves no new file behind.
    """
    if not results_dirs:
        raise UserError("no results directory given; pass one or more directories written by 'dirti-bench run'")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"report output {out} is a file; pass a directory with --out")
    blocks = build_blocks([load_run(Path(d)) for d in results_dirs])
    html, markdown = to_html(TITLE, blocks), to_markdown(TITLE, blocks)
    try:
        for block in blocks:
            if isinstance(block, Figure):
                write_bytes(out / block.file, block.png)
        write_text(out / REPORT_HTML, html)
        write_text(out / REPORT_MD, markdown)
    except OSError as exc:
        raise UserError(f"cannot write the report into {out} ({exc.strerror or exc}); pass a writable --out") from None
    return out / REPORT_MD
