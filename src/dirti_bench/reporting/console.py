"""What a run says on the terminal: one line per stage, progress bars, and the summary table.

A ``Reporter`` is passed down the pipeline instead of printing from evaluators, so one
run (or one of many, each into its own folder) is told the same way everywhere:

* ``normal``: stage lines and progress bars on stderr, the summary on stdout;
* ``quiet``:  only the summary (with the skipped scenarios' reasons and the output paths);
* ``silent``: nothing (``pytest benchmarks`` prints its own summary at the end of the session).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from ..errors import one_line
from ..labels import TASKS
from ..results import ACCURACY, F1_MACRO, SPEARMAN_RHO
from ..results_types import Results, RunInfo, Scoring
from ..validity import INTERCEPT_ONLY, interval_note
from .formats import MISSING

MODES = ("normal", "quiet", "silent")


class Reporter:
    def __init__(self, mode: str = "normal", progress: bool = True):
        if mode not in MODES:
            raise ValueError(f"unknown reporter mode {mode!r}; choose one of {', '.join(MODES)}")
        self.mode = mode
        self.progress = progress
        self.written: Path | None = None  # set once a run's output folder is in place

    @property
    def shows_progress(self) -> bool:
        return self.mode == "normal" and self.progress

    def stage(self, text: str) -> None:
        """One line about what the run is doing (stderr; normal mode only)."""
        if self.mode == "normal":
            print(one_line(text), file=sys.stderr, flush=True)

    def bar(self, items: Iterable, total: int | None = None, desc: str = ""):
        """``items`` with a progress bar on stderr where progress is shown; without, a stage line."""
        from tqdm.auto import tqdm

        if not self.shows_progress:
            self.stage(f"{desc}: {total}" if total is not None else desc)
        return tqdm(items, total=total, desc=desc, disable=not self.shows_progress, file=sys.stderr,
                    unit="", leave=True, dynamic_ncols=True)

    def error(self, text: str) -> None:
        """One ``error:`` line that does not stop the run (a model of a sweep); shown in every mode."""
        print(f"error: {one_line(text)}", file=sys.stderr, flush=True)

    def skipped(self, skipped: Mapping[str, str]) -> None:
        for line in skipped_lines(skipped):
            self.stage(line)

    def summary(self, doc: Results | dict) -> None:
        """The summary table of a run's results (or a results.json document), on stdout."""
        if self.mode == "silent":
            return
        print(summary_text(doc, with_skipped=self.mode == "quiet"), file=sys.stdout, flush=True)

    def outputs(self, out: Path, report: bool, replaced: bool) -> None:
        """Where the results went (part of the summary, so quiet runs print it too)."""
        self.written = Path(out)
        if replaced:
            self.stage(f"replaced the earlier results in {out}")
        if self.mode == "silent":
            return
        lines = [f"results: {one_line(Path(out) / 'results.json')}"]
        if report:
            lines.append(f"report:  {one_line(Path(out) / 'report.html')}")
        print("\n".join(lines), file=sys.stdout, flush=True)


def skipped_lines(skipped: Mapping[str, str]) -> list[str]:
    """One line per distinct reason: which scenarios cannot run, and why."""
    by_reason: dict[str, list[str]] = {}
    for sid, reason in skipped.items():
        by_reason.setdefault(reason, []).append(sid)
    lines = []
    for reason, ids in by_reason.items():
        count = f"{len(ids)} scenarios" if len(ids) > 1 else "1 scenario"
        lines.append(one_line(f"skipped {count} ({', '.join(ids)}): {reason}"))
    return lines


def _shown(value) -> str:
    return MISSING if value is None else value


def weights_label(run: RunInfo | Mapping, short: bool = False) -> str:
    """``weights openai``, or the loud mark of a random-weights smoke run."""
    run = RunInfo.of(run)
    if run.smoke_run:
        return "random weights — smoke run" + ("" if short else ", numbers mean nothing")
    return f"weights {_shown(run.pretrained)}"


def figure_title(run: RunInfo | Mapping, what: str, flags: Sequence[str] = ()) -> str:
    """A figure's title: what it shows, then model · weights · dataset of the run (results.json's
    ``run``), so the figure stands alone on a slide. ``flags``: the validity flag codes of the
    scenario it shows, named after what it shows as the summary and report beside it name them (an
    intercept-only probe's figure says "no signal" in its own words instead)."""
    run = RunInfo.of(run)
    marks = [f for f in flags if f != INTERCEPT_ONLY]
    what += f" — flags: {', '.join(marks)}" if marks else ""
    return f"{what}\n{_shown(run.model)} · {weights_label(run, short=True)} · {_shown(run.dataset)}"


def _scoring_rule(scoring: Scoring) -> str:
    """One zero-shot scenario's scoring as its results record it (options scoring, logit_scale,
    logit_bias, probability_rule)."""
    scale, bias, rule = scoring.logit_scale, scoring.logit_bias, scoring.probability_rule
    scale = f"{scale:.3g}" if isinstance(scale, int | float) else MISSING
    bias = f" {bias:+.3g}" if isinstance(bias, int | float) else ""
    whose = {"model": "the model's own", "study": "the study's fixed"}.get(scoring.scoring, str(scoring.scoring))
    return f"{whose} {scale} × cos{bias}, {rule}"


def scoring_summary(results: Results | Mapping, short: bool = False) -> str | None:
    """Which scoring rule the run's zero-shot scenarios used, e.g. ``the model's own 14.3 × cos, softmax
    (11 scenarios); the study's fixed 100 × cos, softmax (zeroshot-baseline, zeroshot-disgust)``; None
    where no scenario scored prompts. ``short``: counts only (a table cell)."""
    groups: dict[str, list[str]] = {}
    for outcome in Results.of(results):
        if outcome.scoring is not None:
            groups.setdefault(_scoring_rule(outcome.scoring), []).append(outcome.id)
    if not groups:
        return None
    parts = []
    for rule, ids in groups.items():
        many = short or len(ids) > 3
        parts.append(f"{rule} ({len(ids)} scenario{'s' if len(ids) > 1 else ''})" if many
                     else f"{rule} ({', '.join(ids)})")
    return "; ".join(parts)


def run_title(run: RunInfo | Mapping) -> str:
    """``model · weights · dataset (n images) · device``: what produced these numbers."""
    run = RunInfo.of(run)
    reduced = f" · {run.precision}, checked against fp32" if run.precision not in (None, "fp32") else ""
    return (f"{_shown(run.model)} · {weights_label(run)} · {_shown(run.dataset)} "
            f"({_shown(run.n_stimuli)} images) · {_shown(run.device)}{reduced}")


def summary_rows(results: Results | Mapping, deltas: Mapping[str, str] | None = None) -> list[dict]:
    """One row per scenario: its headline numbers as ``validity.value_with_ci`` shows them, its chance
    level, its difference to the study wording (``deltas``) and its validity flags."""
    rows = []
    deltas = deltas or {}
    for outcome in Results.of(results):
        classification = outcome.task in TASKS
        chance = outcome.chance_level
        rows.append({
            "scenario": one_line(outcome.id), "task": one_line(outcome.task or MISSING),
            "n": str(MISSING if outcome.recorded_n is None else outcome.recorded_n),
            "classes": str(len(outcome.labels)) if classification else MISSING,
            "chance": f"{chance:.3f}" if chance is not None else MISSING,
            "accuracy [95% CI]": outcome.value_with_ci(ACCURACY) if classification else MISSING,
            "macro-F1 [95% CI]": outcome.value_with_ci(F1_MACRO) if classification else MISSING,
            "ρ [95% CI]": MISSING if classification else outcome.value_with_ci(SPEARMAN_RHO, short=True),
            "Δ acc. vs study": deltas.get(outcome.id, MISSING),
            "flags": outcome.flag_text(short=True) or MISSING,
        })
    return rows


def summary_table(results: Results | Mapping, deltas: Mapping[str, str] | None = None) -> str:
    from tabulate import tabulate

    rows = summary_rows(results, deltas)
    if not rows:
        return "(no scenario results)"
    return tabulate([list(r.values()) for r in rows], headers=list(rows[0]), disable_numparse=True,
                    colalign=("left", "left", "right", "right", "right", "left", "left", "left", "left", "left"))


SUMMARY_NOTE = (f"chance: the majority class share; brackets: {interval_note()}; (zero width): no stratified "
                "draw can vary the score; Δ acc. vs study: accuracy minus the study wording's on the same "
                "stimuli, McNemar p Holm-corrected within the task's prompt sets.\nFindings:")


def summary_note(results: Results | Mapping) -> str:
    """SUMMARY_NOTE with the fixed wording named as the report names it (``published.wording_name``)."""
    from .published import STUDY_WORDING, wording_name

    return SUMMARY_NOTE.replace(STUDY_WORDING, wording_name(results))


def summary_text(results: Results | Mapping, with_skipped: bool = True) -> str:
    """Title line, one row per scenario with its headline metric and 95% CI, skipped scenarios, then
    the Findings block. ``results``: typed, or a results.json document (a run writing it)."""
    from .findings import findings_text, study_deltas

    results = Results.of(results)
    lines = ["", one_line(run_title(results.run))]
    scoring = scoring_summary(results)
    if scoring:
        lines.append(one_line(f"zero-shot scoring: {scoring}"))
    lines.append(summary_table(results, study_deltas(results)))
    if with_skipped:
        lines += skipped_lines(results.skipped)
    if len(results):
        lines.append(summary_note(results))
        lines.append(findings_text(results).removeprefix("Findings:\n"))
    return "\n".join(lines)
