"""The report's prompt-engineering sections: what was asked, under which label-space rule, and
how much the wording and the threshold matter.

* prompt files: what each ``--templates`` file made and skipped;
* label spaces: each classification scenario's threshold and rule, class counts, dropped
  classes with their reason, the folds a CV scenario really ran, KNN's tied votes;
* two scores, two chance levels: the study's category and disgust tasks side by side;
* prompts: the study wording in full, each other prompt set's size with a few examples;
* threshold and template sweeps, and every prompt set against the study wording (forest plot).

Each section reads only results.json and the CSVs beside it, so ``dirti-bench report``
renders old and new results alike (a section without data is left out).
"""

from __future__ import annotations

import pandas as pd

from ..labels import TASKS
from ..results import ACCURACY, BALANCED_ACCURACY, F1_MACRO, PROMPTS_FILE
from ..results_types import Comparison, ScenarioOutcome, SweepPoint
from .compare import PROMPT_KIND
from .console import figure_title
from .formats import MISSING, figure_path, num, with_interval
from .published import DEFAULT_WORDING, STUDY_WORDING, is_dirti_run, wording_name
from .render import Drawing, Figure, Heading, Para, Table

STUDY_THRESHOLD = 5.0
EXAMPLES = 3  # prompts shown per ensemble; the rest are in prompts.csv
BEST_WORST = 5


# ---------------------------------------------------------------- helpers

def _metric(sc: ScenarioOutcome | SweepPoint, name: str) -> str:
    # Without validity.value_with_ci's zero-width mark: these tables carry no zero-width notes (yet).
    return with_interval(sc.metrics.get(name), sc.interval(name))


def _prefix(runs, run) -> str:
    return f"{run.label}: " if len(runs) > 1 else ""


def _frame(rows: list[dict], runs, run_of: list) -> pd.DataFrame:
    """Rows as a table of strings, with a ``run`` column when several runs are shown."""
    if len(runs) > 1:
        rows = [{"run": r.label, **row} for r, row in zip(run_of, rows, strict=True)]
    return pd.DataFrame(rows).fillna(MISSING).astype(str)


def _prompts_table(run) -> pd.DataFrame | None:
    """prompts.csv as loaded with the run (every cell a string), or None where the run has none."""
    return run.prompts


# ---------------------------------------------------------------- prompt files

def prompt_files(runs) -> list:
    rows, owners = [], []
    for run in runs:
        for plan in run.info.prompt_files:
            skipped = plan.get("skipped") or {}
            rows.append({"file": plan.get("file"), "kind": plan.get("kind"),
                         "made": ", ".join(plan.get("scenarios") or []) or "no scenario",
                         "skipped": "; ".join(f"{t} ({why})" for t, why in skipped.items()) or "no task"})
            owners.append(run)
    if not rows:
        return []
    return [Heading(2, "Prompt files"),
            Para("Each --templates file: the scenarios it made and the tasks it skipped (also printed on stderr)."),
            Table(_frame(rows, runs, owners))]


# ---------------------------------------------------------------- label spaces

def _folds(options: dict, per_class: dict) -> str:
    """``per_class``: class -> ClassScores."""
    asked, used = options.get("folds"), options.get("folds_effective")
    if used is None:
        if options.get("n_test") is not None:
            return f"holdout {options.get('n_train')}/{options.get('n_test')}"
        return MISSING
    if asked is not None and used < asked:
        smallest = min((0 if v.support is None else v.support for v in per_class.values()), default=0)
        return f"{used} of {asked} asked (smallest class: {smallest} stimuli)"
    return str(used)


def _ties(options: dict, n) -> str:
    if "tied_votes" not in options:
        return MISSING
    return f"{options['tied_votes']} of {n} ({options.get('tie_break', 'lowest-id')})"


def label_spaces(runs) -> list:
    rows, owners = [], []
    for run in runs:
        for sid, sc in run.scenarios.items():
            if sc.task not in TASKS:
                continue
            opts = sc.options
            rule = opts.get("threshold_rule")
            threshold = MISSING if rule is None else (
                f"{num(opts.get('threshold'), 2)} ({'mean+1sd of the ratings' if rule == 'mean+1sd' else 'fixed'})")
            reasons = opts.get("dropped_reasons") or {}
            dropped = "; ".join(f"{c}: {reasons.get(c, 'dropped')}" for c in sc.dropped_classes)
            counts = ", ".join(f"{c} {v.support}" for c, v in sc.per_class_scores.items())
            rows.append({"scenario": sid, "task": sc.task, "rating": opts.get("rating") or MISSING,
                         "threshold (rule)": threshold, "classes": len(sc.labels),
                         "stimuli per class": counts or MISSING, "dropped (reason)": dropped or MISSING,
                         "folds run": _folds(opts, sc.per_class_scores),
                         "KNN tied votes": _ties(opts, sc.recorded_n)})
            owners.append(run)
    if not rows:
        return []
    return [Heading(2, "Label spaces"),
            Para("Each classification scenario's rule: the disgust threshold (a rating is disgusting at or above "
                 "it) and how it was set, the classes and their stimuli, classes dropped and why, the folds a CV "
                 "scenario actually ran, and how many KNN predictions were tied votes (settled by the scenario's "
                 "tie_break: lowest-id is scikit-learn's rule and the study's, nearest gives the tie to the nearest "
                 "neighbour's class)."),
            Table(_frame(rows, runs, owners))]


# ---------------------------------------------------------------- chance levels

CHANCE_SCENARIOS = ("zeroshot-baseline", "zeroshot-disgust", "zeroshot-disgust-binary")


def chance_levels(runs) -> list:
    rows, owners = [], []
    for run in runs:
        for sid in CHANCE_SCENARIOS:
            sc = run.scenarios.get(sid)
            if sc is None or not sc.labels:
                continue
            support = [0 if v.support is None else v.support for v in sc.per_class_scores.values()]
            k = len(sc.labels)
            rows.append({"scenario": sid, "classes": k, "chance (1/classes)": num(1 / k),
                         "majority class share": num(max(support) / sum(support)) if sum(support) else MISSING,
                         "accuracy": _metric(sc, ACCURACY), "macro F1": _metric(sc, F1_MACRO)})
            owners.append(run)
    if len(rows) < 2:
        return []
    return [Heading(2, "Study wording on each task: two scores, two chance levels"),
            Para("The study contrasts its category and disgust prompts, but the two tasks have different label "
                 "spaces (and chance levels), so they are not paired in a test: each score stands beside its own "
                 "chance level."),
            Table(_frame(rows, runs, owners))]


# ---------------------------------------------------------------- prompts

def _prompt_rows(run) -> dict[str, list[tuple[str, str]]]:
    table = _prompts_table(run)
    if table is None:
        return {}
    return {sid: list(zip(g["class"], g["prompt"], strict=True)) for sid, g in table.groupby("scenario", sort=False)}


def prompts_shown(runs) -> list:
    study_rows, set_rows, study_owners, set_owners = [], [], [], []
    for run in runs:
        by_scenario = _prompt_rows(run)
        for sid, sc in run.scenarios.items():
            prompts = by_scenario.get(sid)
            if not prompts or sc.is_sweep:
                continue
            opts = sc.options
            is_study = opts.get("prompt_set") == "study" or opts.get("prompt_pair") == "study"
            if is_study:
                study_rows += [{"scenario": sid, "class": c, "prompt": p} for c, p in prompts]
                study_owners += [run] * len(prompts)
                continue
            per_class = pd.Series([c for c, _ in prompts]).value_counts()
            examples = " · ".join(p for _, p in prompts[:EXAMPLES])  # the first class's first prompts
            set_rows.append({"scenario": sid, "prompt set": opts.get("prompt_set") or opts.get("prompt_pair") or
                             MISSING, "prompts": len(prompts), "per class": num(int(per_class.max()))
                             if per_class.nunique() == 1 else f"{per_class.min()}–{per_class.max()}",
                             "examples": examples})
            set_owners.append(run)
    if not study_rows and not set_rows:
        return []
    blocks = [Heading(2, "Prompts")]
    if study_rows:
        blocks += [Para("The study's wording, in full, for each class:"), Table(_frame(study_rows, runs, study_owners))]
    if set_rows:
        blocks += [Para(f"Other prompt sets: their size and a few examples; every prompt of every scenario is in "
                        f"{PROMPTS_FILE} (scenario, class, prompt)."), Table(_frame(set_rows, runs, set_owners))]
    return blocks


# ---------------------------------------------------------------- threshold sweeps

def _sweeps(run, kind: str) -> list[tuple[str, ScenarioOutcome]]:
    return [(sid, sc) for sid, sc in run.scenarios.items() if sc.is_sweep and sc.sweep_kind == kind]


def threshold_sweeps(runs) -> list:
    """Per run, each threshold sweep's table and one figure. The study's threshold is marked only on
    DIRTI (recognised by its contents): elsewhere the fixed threshold is this run's, not a study's."""
    blocks = []
    for run in runs:
        sweeps = _sweeps(run, "threshold")
        if not sweeps:
            continue
        study = STUDY_THRESHOLD if is_dirti_run(run) else None
        panels = []
        for sid, sc in sweeps:
            points = sc.sweep_points
            rows = [{"point": p.point, "threshold": num(p.threshold, 2), "classes": p.n_classes,
                     "dropped": ", ".join(p.dropped_classes) or MISSING,
                     "stimuli per class": ", ".join(f"{c} {n}" for c, n in p.class_counts.items()),
                     "accuracy": _metric(p, ACCURACY), "balanced acc.": _metric(p, BALANCED_ACCURACY),
                     "macro F1": _metric(p, F1_MACRO)}
                    for p in points]
            blocks += [Heading(3, f"{_prefix(runs, run)}{sid}"), Table(pd.DataFrame(rows).astype(str))]
            numeric = [p for p in points if isinstance(p.threshold, int | float)]
            measures = (ACCURACY, BALANCED_ACCURACY, F1_MACRO)
            panels.append({"title": sid, "x": [p.threshold for p in numeric],
                           "metrics": {m: [p.metrics[m] for p in numeric] for m in measures},
                           "ci": {m: [p.ci[m] for p in numeric] for m in measures},
                           "rule_points": [(p.threshold, p.point) for p in numeric if p.rule != "fixed"]})
            reference, rule = sc.options.get("threshold"), sc.options.get("threshold_rule")
            if rule == "fixed" and isinstance(reference, int | float) and reference != study:  # --threshold
                panels[-1]["rule_points"].append((reference, "this run's threshold"))
        figure = Drawing("threshold_sweep_figure", (panels, study,
                                                    figure_title(run.info, "zero-shot score vs disgust threshold")))
        lines = (f"dashed: the study's {study:g}, dotted: a data-driven rule" if study is not None
                 else "dotted: this run's threshold or a data-driven rule")
        blocks.append(Figure(figure_path("threshold-sweeps", runs, run), figure,
                             f"{_prefix(runs, run)}score vs disgust threshold (95% CI bands); {lines}"))
    if not blocks:
        return []
    wording = " or ".join(dict.fromkeys(STUDY_WORDING if is_dirti_run(run) else DEFAULT_WORDING
                                        for run in runs if _sweeps(run, "threshold")))
    return [Heading(2, "Threshold sweeps"),
            Para(f"The zero-shot disgust tasks with the {wording} at each threshold: the label space is rebuilt "
                 "at every point, and classes a threshold empties are dropped and listed. Points and predictions: "
                 "sweeps.csv and sweep_predictions.csv.gz.")] + blocks


# ---------------------------------------------------------------- template sweeps

def _template_table(points: list[SweepPoint]) -> pd.DataFrame:
    return pd.DataFrame([{"rank": p.rank.get(ACCURACY, MISSING), "template": p.point,
                          "accuracy": _metric(p, ACCURACY), "macro F1": _metric(p, F1_MACRO),
                          "macro F1 rank": p.rank.get(F1_MACRO, MISSING),
                          "vs study: McNemar p": num(p.vs_study.get("p_value")),
                          "Holm p": num(p.vs_study.get("p_holm")),
                          "BH q": num(p.vs_study.get("q_bh"))} for p in points]).astype(str)


def _summary(sc: ScenarioOutcome) -> str:
    choice, opts = sc.template_choice, sc.options
    dist = choice.distribution
    parts = []
    for name, label in (("accuracy", "accuracy"), ("f1_macro", "macro F1")):
        d = dist.get(name)
        if d:
            parts.append(f"{label} over templates: median {num(d['median'])} (quartiles {num(d['q1'])}–"
                         f"{num(d['q3'])}, range {num(d['min'])}–{num(d['max'])})")
    rank, ranked = choice.study_rank, choice.n_ranked
    text = f"{opts.get('n_templates', MISSING)} templates; " + "; ".join(parts) + "."
    if rank:
        text += (f" The study wording ranks {rank.get('accuracy')} of {ranked} by accuracy and "
                 f"{rank.get('f1_macro')} of {ranked} by macro F1.")
    return text


def _selection(sc: ScenarioOutcome) -> str:
    choice, opts = sc.template_choice, sc.options
    chosen = pd.Series([s["template"] for s in choice.selection]).value_counts()
    picks = "; ".join(f"'{t}' on {n} fold(s)" for t, n in chosen.items())
    best = choice.in_sample_best
    return (f"Cross-validated choice (the headline): the best template on the training folds "
            f"({opts.get('folds_effective')} stratified folds, by {opts.get('select_by', 'accuracy')}), scored on the "
            f"held-out fold: accuracy {_metric(sc, ACCURACY)}, macro F1 {_metric(sc, F1_MACRO)}. Chosen: {picks}. "
            f"The in-sample best ('{best.get('template')}', accuracy {num(best.get('accuracy'))}) is optimistic: "
            "it was picked on the images it is scored on.")


def _metrics_of(point: SweepPoint | None) -> dict:
    return point.metrics if point is not None else {}


def template_sweeps(runs) -> list:
    blocks = []
    for run in runs:
        sweeps = _sweeps(run, "template")
        if not sweeps:
            continue
        panels = []
        for sid, sc in sweeps:
            points = sc.sweep_points
            templates = [p for p in points if p.kind == "template"]
            refs = {p.kind: p for p in points if p.kind in ("study", "ensemble")}
            by = sc.options.get("select_by", ACCURACY)
            ordered = sorted(templates, key=lambda p: (p.rank.get(by, 0), templates.index(p)))
            reference = pd.DataFrame([{"prompt set": label, "accuracy": _metric(src, ACCURACY),
                                       "macro F1": _metric(src, F1_MACRO)}
                                      for label, src in (("study wording", refs.get("study")),
                                                         ("full ensemble", refs.get("ensemble")),
                                                         ("cross-validated choice", sc)) if src]).astype(str)
            blocks += [Heading(3, f"{_prefix(runs, run)}{sid}"), Para(_summary(sc)), Para(_selection(sc)),
                       Table(reference)]
            if len(ordered) <= 2 * BEST_WORST:
                blocks += [Para(f"All {len(ordered)} templates (in-sample, ranked by {by}):"),
                           Table(_template_table(ordered))]
            else:
                blocks += [Para(f"Best {BEST_WORST} templates (in-sample, ranked by {by}):"),
                           Table(_template_table(ordered[:BEST_WORST])),
                           Para(f"Worst {BEST_WORST} templates:"), Table(_template_table(ordered[-BEST_WORST:]))]
            panels.append({"title": sid, "metrics": {m: [p.metrics[m] for p in templates] for m in (ACCURACY, F1_MACRO)},
                           "references": {wording_name(run.results): _metrics_of(refs.get("study")),
                                          "full ensemble": _metrics_of(refs.get("ensemble")),
                                          "CV choice": sc.metrics}})
        figure = Drawing("template_sweep_figure", (panels, figure_title(run.info, "each template alone (one dot each)")))
        blocks.append(Figure(figure_path("template-sweeps", runs, run), figure,
                             f"{_prefix(runs, run)}score of each template alone, with the study wording, the full "
                             "ensemble and the cross-validated choice"))
    if not blocks:
        return []
    return [Heading(2, "Template sweeps"),
            Para("Each template of an ensemble alone as a 1-prompt classifier, on the same images and label space; "
                 "vs study: McNemar's exact test against the sweep's study wording, Holm p and BH q over the "
                 "sweep's templates (one family per sweep: with dozens of templates some win by chance). "
                 "Every template's scores: sweeps.csv; its predictions: sweep_predictions.csv.gz.")] + blocks


# ---------------------------------------------------------------- prompt sets vs the study wording

def _delta(comparison: Comparison, name: str):
    value, ci = ((comparison.accuracy_difference, comparison.ci) if name == ACCURACY
                 else (comparison.f1_macro_difference, comparison.f1_macro_ci))
    return None if value is None or not ci else (value, ci[0], ci[1])


def _label(comparison: Comparison) -> str:
    chosen = "template chosen" in str(comparison.prompt_set)
    return f"{comparison.a} (CV choice)" if chosen else comparison.a


def prompt_comparisons(runs) -> list:
    blocks, rows, owners = [], [], []
    for run in runs:
        found = [c for c in run.results.comparison_records if c.kind == PROMPT_KIND and c.skipped is None]
        if not found:
            continue
        for c in found:
            rows.append({"task": c.task, "prompt set": c.a, "vs": c.b, "n": c.n,
                         "Δ accuracy [95% CI]": with_interval(c.accuracy_difference, c.ci),
                         "Δ macro F1 [95% CI]": with_interval(c.f1_macro_difference, c.f1_macro_ci),
                         "McNemar p": num(c.mcnemar_p), "Holm p": num(c.p_holm),
                         "BH q": num(c.q_bh), "family": MISSING if c.family is None else c.family})
            owners.append(run)
        tasks = list(dict.fromkeys(c.task for c in found))
        panels = [{"title": task, "rows": [{"label": _label(c), "accuracy": _delta(c, ACCURACY),
                                            "f1_macro": _delta(c, F1_MACRO)} for c in found if c.task == task]}
                  for task in tasks]
        wording = wording_name(run.results)  # the report's one name for it: "default wording" off DIRTI
        figure = Drawing("forest_figure", (panels, figure_title(run.info, f"prompt sets minus the {wording}"), wording))
        blocks.append(Figure(figure_path("prompt-sets-vs-study", runs, run), figure,
                             f"{_prefix(runs, run)}Δ accuracy and Δ macro F1 against the study wording, 95% paired "
                             "bootstrap CI, one panel per task"))
    if not rows:
        return []
    return [Heading(2, "Prompt sets against the study wording"),
            Para("Each prompt set minus the study wording on the same label space and stimuli: paired bootstrap "
                 "95% CIs (the same resampled stimuli for both) and McNemar's exact test on the discordant "
                 "stimuli, its p-value Holm-adjusted (Holm p) and Benjamini-Hochberg-adjusted (BH q) within the "
                 "family of prompt sets tested against the same study wording. Ensembles and single templates are fixed in advance; a template sweep's entry is its "
                 "cross-validated choice, never the in-sample best."), Table(_frame(rows, runs, owners))] + blocks


def prompt_sections(runs) -> list:
    """Every section of this module, in report order."""
    return (prompt_files(runs) + label_spaces(runs) + chance_levels(runs) + prompts_shown(runs)
            + threshold_sweeps(runs) + template_sweeps(runs) + prompt_comparisons(runs))
