"""Prompt comparison with the Python API: does a prompt ensemble beat the study's wording?

Runs the category and disgust zero-shot scenarios with the study's wording and with each shipped
prompt ensemble (clip80, affect) on one stimulus set, then prints

1. accuracy and macro F1 per prompt set, each with its 95% CI and validity flag, and
2. the paired comparisons the run made against the study wording (difference in accuracy with
   its CI, McNemar's test and its Holm-adjusted p-value within the family of prompt sets).

Nothing is written (evaluate() works in memory). Defaults: the offline demo set and the tiny
random-weights test model, so it runs anywhere in seconds, and its numbers mean nothing; give
--data PATH/TO/DIRTI --model ViT-B-32-quickgelu --pretrained openai for a real comparison.

    python examples/prompt_comparison.py
    python examples/prompt_comparison.py --data ~/data/DIRTI --model ViT-B-32-quickgelu --pretrained openai
"""

from __future__ import annotations

import argparse

import pandas as pd

import dirti_bench as db

PROMPT_SETS = {"study": "zeroshot-{task}", "clip80": "ensemble-{task}-clip80", "affect": "ensemble-{task}-affect"}
TASKS = ("baseline", "disgust")  # scenario id parts: the category task, the 12-class disgust task
METRICS = ("accuracy", "f1_macro")


def scenario_table(results: db.Results) -> pd.DataFrame:
    """One row per task and prompt set: each metric with its CI, from the tidy metrics frame."""
    metrics = results.metrics_frame()
    rows = []
    for task in TASKS:
        for prompts, pattern in PROMPT_SETS.items():
            sid = pattern.format(task=task)
            picked = metrics[(metrics["scenario"] == sid) & metrics["metric"].isin(METRICS)]
            row = {"task": task, "prompts": prompts, "flag": ", ".join(f["flag"] for f in results[sid].flags)}
            for m in picked.itertuples():
                row[m.metric] = f"{m.value:.3f} [{m.ci_low:.2f}, {m.ci_high:.2f}]"
            rows.append(row)
    return pd.DataFrame(rows, columns=["task", "prompts", *METRICS, "flag"])


def comparison_table(results: db.Results) -> pd.DataFrame:
    """The paired comparisons the run made between these scenarios (prompt set vs the study wording)."""
    chosen = {pattern.format(task=task) for pattern in PROMPT_SETS.values() for task in TASKS}
    rows = [c for c in results.comparisons if c.get("a") in chosen and c.get("b") in chosen and "skipped" not in c]
    frame = pd.json_normalize(rows)
    keep = {"prompt_set": "prompts", "b": "vs", "n": "n", "accuracy_difference": "accuracy Δ", "ci": "95% CI",
            "mcnemar.p_value": "McNemar p", "p_holm": "p (Holm)", "family_size": "family"}
    if not len(frame):
        return frame
    frame = frame[[c for c in keep if c in frame]].rename(columns=keep)
    frame["95% CI"] = [f"[{low:.2f}, {high:.2f}]" for low, high in frame["95% CI"]]
    return frame


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="demo", help="'demo', 'dirti' or a DIRTI folder / rated set (default: demo)")
    parser.add_argument("--model", default="dirti-tiny", help="open_clip model name (default: dirti-tiny)")
    parser.add_argument("--pretrained", default="random", help="weights (default: random)")
    args = parser.parse_args(argv)
    scenarios = [pattern.format(task=task) for task in TASKS for pattern in PROMPT_SETS.values()]
    results = db.evaluate(data=args.data, model=args.model, pretrained=args.pretrained, scenarios=scenarios)
    run = results.run
    print(f"{run.model} · {run.pretrained} weights · {run.dataset} ({run.details.get('n_stimuli')} images)"
          + (" · random weights: a smoke run, its numbers mean nothing" if run.smoke_run else ""))
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(scenario_table(results).to_string(index=False))
        print()
        comparisons = comparison_table(results)
        print(comparisons.to_string(index=False) if len(comparisons) else "no paired comparisons")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
