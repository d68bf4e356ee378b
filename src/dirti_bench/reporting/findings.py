"""The Findings block: what a run found, in a few generated lines, at the top of the report and after
the terminal summary.

Per task (label space): the best prompt set against the study wording (Δ accuracy, its paired CI,
the raw and Holm-corrected McNemar p) where one differs after correction, else "no prompt set
differs from the study wording after correction"; the threshold and its rule. Per alignment
scenario: ρ and r against the raters' noise ceiling (or "no signal" for an intercept-only probe).
Then every validity flag (validity.py) with its reason.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from ..labels import TASKS
from ..results import ACCURACY, PEARSON_R, SPEARMAN_RHO
from ..results_types import Comparison, Results, ScenarioOutcome
from ..validity import FLAG_RULES, NO_SIGNAL, adjust_comparisons, significant
from .compare import PROMPT_KIND
from .published import wording_name


def _p(value) -> str:
    return "–" if not isinstance(value, int | float) else f"{value:.3g}"


def prompt_findings(results: Results | Mapping) -> dict[str, list[Comparison]]:
    """Study-wording scenario id -> its prompt-set comparisons (one family each)."""
    comparisons = [dict(c) for c in Results.of(results).comparisons if isinstance(c, Mapping)]
    if any("skipped" not in c and "family" not in c for c in comparisons):  # written before the corrections
        adjust_comparisons(comparisons, PROMPT_KIND)
    by_study: dict[str, list[Comparison]] = {}
    for c in map(Comparison.from_json, comparisons):
        if c.kind == PROMPT_KIND and c.skipped is None:
            by_study.setdefault(str(c.b), []).append(c)
    return by_study


def study_deltas(results: Results | Mapping) -> dict[str, str]:
    """Scenario id -> its Δ accuracy to the study wording with the Holm p ("study wording" for the study's own)."""
    results = Results.of(results)
    out = {}
    for study, tests in prompt_findings(results).items():
        if study in results.scenarios:
            out[study] = f"({wording_name(results)})"
        for c in tests:
            out[str(c.a)] = f"{c.accuracy_difference or 0:+.3f} (Holm p {_p(c.p_holm)})"
    return out


def _threshold_text(outcome: ScenarioOutcome) -> str:
    opts = outcome.options
    if opts.get("threshold") is None:
        return ""
    rule = opts.get("threshold_rule") or "given"
    return (f"; threshold {opts['threshold']:g} on {opts.get('rating', 'the rating')} ({rule} rule: a stimulus is "
            "disgusting when its mean rating is >= the threshold)")


def finding_lines(results: Results | Mapping, grouped: bool = False) -> list[str]:
    """The Findings block as plain lines; ``grouped``: one line per flag naming its scenarios (the
    terminal), else one per flagged scenario with its reason (the report)."""
    results = Results.of(results)
    lines = []
    wording = wording_name(results)
    for study, tests in prompt_findings(results).items():
        sc = results.scenarios.get(study) or ScenarioOutcome.from_json(study, {}, pd.DataFrame())
        chance = sc.chance_level
        task = sc.task or "?"
        head = (f"{task} ({len(sc.labels)} classes, chance {chance:.3f}" if chance is not None else f"{task} (")
        head += f"{_threshold_text(sc)}); {wording} {study}: accuracy {sc.value_with_ci(ACCURACY)}"
        winners = [c for c in tests if significant(c)]
        family = tests[0].family or "prompt sets vs the study wording"
        if not winners:
            lines.append(f"{head}. No prompt set differs from the {wording} after correction "
                         f"(Holm over {len(tests)} prompt sets, family: {family}).")
            continue
        best = max(winners, key=lambda c: c.accuracy_difference or 0)
        ci = best.ci or [None, None]
        lines.append(f"{head}. Best prompt set {best.a}: Δ accuracy {best.accuracy_difference or 0:+.3f} "
                     f"[{ci[0]:.2f}, {ci[1]:.2f}], McNemar p {_p(best.mcnemar_p)}, "
                     f"Holm p {_p(best.p_holm)}, BH q {_p(best.q_bh)} (family: {family}, "
                     f"{best.family_size} tests).")
    for sc in results:
        if sc.task in TASKS:
            continue
        if sc.suppressed(SPEARMAN_RHO):
            lines.append(f"{sc.id}: {NO_SIGNAL} (ρ and r not shown as findings; R² "
                         f"{sc.metrics.get('r2', float('nan')):.3f}).")
            continue
        text = f"{sc.id}: ρ {sc.value_with_ci(SPEARMAN_RHO)}, r {sc.value_with_ci(PEARSON_R)}"
        ceiling_rho, ceiling_r = sc.metrics.get("noise_ceiling_spearman"), sc.metrics.get("noise_ceiling_pearson")
        if isinstance(ceiling_rho, int | float) and isinstance(ceiling_r, int | float):
            text += f" against noise ceilings ρ {ceiling_rho:.3f}, r {ceiling_r:.3f}"
        else:
            text += " (noise ceiling not estimated)"
        lines.append(text + ".")
    if grouped:  # one line per flag: its rule and the scenarios it marks
        marked: dict[str, list[str]] = {}
        for sc in results:
            for code in sc.flag_codes:
                marked.setdefault(code, []).append(sc.id)
        lines += [f"flag {code} ({FLAG_RULES.get(code, code)}): {', '.join(ids)}." for code, ids in marked.items()]
    else:
        lines += [f"flag {flag['flag']}: {sc.id}: {flag['reason']}." for sc in results for flag in sc.flags]
    return lines or ["No prompt set compared with the fixed wording, no alignment scenario and no flag in this run."]


def findings_text(results: Results | Mapping) -> str:
    """The terminal's Findings: flags grouped one line each (the report gives every flag's reason)."""
    return "\n".join(["Findings:"] + [f"- {line}" for line in finding_lines(results, grouped=True)])
