"""What a run says on the terminal: one line per stage, the summary table, --quiet, --help,
--version and the scenarios preview. Tests read the terminal output as a user would."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dirti_bench.cli import build_parser, main
from dirti_bench.reporting.console import skipped_lines, summary_rows, summary_text

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ["zeroshot-baseline", "knn-cv10-disgust", "align-disgust-zeroshot"]


def cell(value: float, ci: list[float]) -> str:
    return f"{value:.3f} [{ci[0]:.2f}, {ci[1]:.2f}]"


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_a_demo_run_talks_in_stages_then_prints_the_summary(tmp_path):
    """A real process: what a newcomer sees after 'dirti-bench run --demo' (no library warnings)."""
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-m", "dirti_bench.cli", "run", "--demo", "--no-progress", "--out", str(out),
                           "--scenarios", *SCENARIOS], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    # open_clip's own "No pretrained weights loaded" warning is replaced by one line of ours
    assert "WARNING" not in proc.stderr and "No pretrained weights" not in proc.stderr + proc.stdout
    stages = proc.stderr.splitlines()
    assert re.fullmatch(r"stimuli: 60 images, 6 categories, 11 rating columns \(disgust: disg_mean_all\) from "
                        r"dirti-demo-seed0 \(.+\)", stages[0]), stages[0]
    assert stages[1] == "model: dirti-tiny · weights random · device cpu"
    assert stages[2].startswith("random weights (seed 0): a smoke run") and "mean nothing" in stages[2]
    assert stages[3] == "images: 0 of 60 embeddings cached, encoding 60"
    assert stages[4] == "scenarios: 3"
    assert stages[5] == "writing the report (PCA projection of the image features)"
    assert stages[6] == "projection: PCA of 60 image embeddings"
    assert re.fullmatch(r"drawing figures: \d+", stages[7]), stages[7]  # --no-progress: one line, no bar
    assert len(stages) == 8

    doc = json.loads((out / "results.json").read_text())
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "dirti-tiny · random weights — smoke run, numbers mean nothing · dirti-demo-seed0 (60 images) · cpu"
    # which scoring rule each zero-shot scenario used, as results.json records it
    scored = {sid: sc["options"] for sid, sc in doc["scenarios"].items() if "probability_rule" in sc.get("options", {})}
    assert lines[1] == ("zero-shot scoring: the study's fixed 100 × cos, softmax (zeroshot-baseline); the model's own "
                        f"{scored['align-disgust-zeroshot']['logit_scale']:.3g} × cos, softmax (align-disgust-zeroshot)")
    assert lines[2].split() == ["scenario", "task", "n", "classes", "chance", "accuracy", "[95%", "CI]", "macro-F1",
                                "[95%", "CI]", "ρ", "[95%", "CI]", "Δ", "acc.", "vs", "study", "flags"]
    rows = {line.split()[0]: line for line in lines[4:7]}
    assert list(rows) == SCENARIOS
    for sid in ("zeroshot-baseline", "knn-cv10-disgust"):
        sc = doc["scenarios"][sid]
        assert cell(sc["metrics"]["accuracy"], sc["ci"]["accuracy"]) in rows[sid]
        assert cell(sc["metrics"]["f1_macro"], sc["ci"]["f1_macro"]) in rows[sid]
        assert f" {sc['n']} " in rows[sid] and f" {len(sc['labels'])} " in rows[sid]
    align = doc["scenarios"]["align-disgust-zeroshot"]
    assert cell(align["metrics"]["spearman_rho"], align["ci"]["spearman_rho"]) in rows["align-disgust-zeroshot"]
    # the chance level (majority class share) of each classification, from its per-class support
    for sid in ("zeroshot-baseline", "knn-cv10-disgust"):
        support = [v["support"] for v in doc["scenarios"][sid]["per_class"].values()]
        assert f" {max(support) / sum(support):.3f} " in rows[sid]
    assert lines[7].startswith("chance: the majority class share; brackets: 95% percentile bootstrap CI, 1000 draws")
    findings = lines[lines.index("Findings:") + 1:-2]
    assert any(line.startswith("- align-disgust-zeroshot: ρ ") for line in findings)
    # one line per flag, naming every scenario results.json flags with it
    marked = {}
    for sid, sc in doc["scenarios"].items():
        for f in sc["flags"]:
            marked.setdefault(f["flag"], []).append(sid)
    assert [line.split(" (")[0].removeprefix("- flag ") for line in findings if line.startswith("- flag ")] == list(marked)
    for code, ids in marked.items():
        assert next(line for line in findings if line.startswith(f"- flag {code} ")).endswith(f": {', '.join(ids)}.")
    assert lines[-2:] == [f"results: {out / 'results.json'}", f"report:  {out / 'report.html'}"]


def test_quiet_prints_only_the_summary_and_paths(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", "--demo", "--quiet", "--no-report", "--out", str(out), "--scenarios", "zeroshot-baseline"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    lines = captured.out.strip().splitlines()
    assert lines[0].startswith("dirti-tiny · random weights — smoke run") and lines[2].startswith("scenario ")
    assert lines[1] == "zero-shot scoring: the study's fixed 100 × cos, softmax (zeroshot-baseline)"
    assert lines[4].startswith("zeroshot-baseline ") and lines[-1] == f"results: {out / 'results.json'}"
    assert "Findings:" in lines


def test_a_second_run_says_it_replaced_the_earlier_results(tmp_path, capsys):
    out = tmp_path / "out"
    for _ in range(2):
        assert main(["run", "--demo", "--no-progress", "--no-report", "--out", str(out),
                     "--scenarios", "zeroshot-baseline"]) == 0
    err = capsys.readouterr().err
    assert err.count(f"replaced the earlier results in {out}") == 1
    assert "images: 60 of 60 embeddings cached\n" in err  # the second run's cache line


def test_version():
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0


def test_version_text(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    from dirti_bench import __version__

    assert capsys.readouterr().out.strip() == f"dirti-bench {__version__}"


def _subparsers(parser):
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return action.choices


def test_every_option_of_every_command_is_explained_with_its_default():
    parser = build_parser()
    top = parser.format_help()
    assert "Benchmark CLIP-family models on the DIRTI disgust photos" in top and "dirti-bench run --demo" in top
    assert "--version" in top
    for name, sub in _subparsers(parser).items():
        for action in sub._actions:
            if action.dest == "help":
                continue
            assert action.help and len(action.help) > 10, (name, action.dest)
            has_default = action.default is not None and action.default is not False and action.option_strings
            if has_default:
                assert "default" in sub._get_formatter()._get_help_string(action), (name, action.dest)
    run_help = " ".join(_subparsers(parser)["run"].format_help().split())
    assert "--seed SEED seeds everything random: the demo set's photos and ratings, random weights" in run_help
    assert "(default: 0)" in run_help and "(default: results)" in run_help and "(default: auto)" in run_help
    assert "--no-progress no progress bars" in run_help and "--no-report write results, CSVs and features" in run_help
    assert "--quiet print only the summary table" in run_help
    assert "umap (the first use compiles" in run_help and "pca with --demo" in run_help


def test_scenarios_previews_what_templates_and_ratings_add(tmp_path, capsys):
    prompts = tmp_path / "mine.json"
    prompts.write_text(json.dumps(["a photo of {c}.", "a close-up photo of {c}."]))
    assert main(["scenarios", "--templates", str(prompts), "--ratings", "fear_mean_all", "Dominance"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()[2:]
    # a template list makes an ensemble on every classification task and a template sweep on the sweep tasks
    assert [r.split()[0] for r in rows] == ["ensemble-baseline-mine", "ensemble-disgust-mine",
                                            "ensemble-disgust-binary-mine", "template-sweep-baseline-mine",
                                            "template-sweep-disgust-mine", "align-fear-zeroshot",
                                            "align-fear-probe", "align-dominance-zeroshot", "align-dominance-probe"]
    assert f"--templates {prompts}" in rows[0] and "--ratings fear_mean_all" in rows[5]
    assert main(["scenarios", "--templates", str(tmp_path / "missing.json")]) == 2
    assert main(["scenarios", "knn-*"]) == 0
    listed = [r.split()[0] for r in capsys.readouterr().out.strip().splitlines()[2:]]
    assert listed == ["knn-split-baseline", "knn-cv10-baseline", "knn-split-disgust", "knn-cv10-disgust"]


def test_a_template_with_a_positional_field_is_one_error_line(tmp_path, capsys):
    prompts = tmp_path / "mine.json"
    prompts.write_text('[\n "a photo of {c}.",\n "a {0} photo of {c}."\n]')
    assert main(["scenarios", "--templates", str(prompts)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: bad template file {prompts}: line 3: template 'a {{0}} photo of {{c}}.' "
                           "has the field {0}") and "replace {0} by {c} or remove it" in line


def test_summary_rows_from_a_results_document():
    doc = {"run": {"model": "ViT-B-32", "pretrained": "openai", "dataset": "dirti", "n_stimuli": 300,
                   "device": "cuda", "smoke_run": False},
           "scenarios": {
               "zeroshot-baseline": {"task": "category", "n": 300, "labels": ["a"] * 6,
                                     "metrics": {"accuracy": 0.5512, "f1_macro": 0.4}, "ci": {"accuracy": [0.5, 0.6]}},
               "align-disgust-probe": {"task": "alignment", "n": 300, "labels": ["a"] * 6,
                                       "metrics": {"spearman_rho": 0.61}, "ci": {"spearman_rho": [0.52, 0.68]}}},
           "skipped": {"zeroshot-disgust": "no disgust rating", "knn-cv10-disgust": "no disgust rating"}}
    rows = summary_rows(doc)
    assert rows[0]["accuracy [95% CI]"] == "0.551 [0.50, 0.60]" and rows[0]["macro-F1 [95% CI]"] == "0.400"
    assert rows[0]["ρ [95% CI]"] == "–" and rows[0]["classes"] == "6"
    assert rows[1]["ρ [95% CI]"] == "0.610 [0.52, 0.68]" and rows[1]["accuracy [95% CI]"] == "–"
    text = summary_text(doc)
    assert "ViT-B-32 · weights openai · dirti (300 images) · cuda" in text and "smoke" not in text
    assert "skipped 2 scenarios (zeroshot-disgust, knn-cv10-disgust): no disgust rating" in text.splitlines()
    assert text.strip().splitlines()[-1] == "- align-disgust-probe: ρ 0.610 [0.52, 0.68], r – (noise ceiling not estimated)."
    assert skipped_lines({"x": "one reason", "y": "another"}) == ["skipped 1 scenario (x): one reason",
                                                                  "skipped 1 scenario (y): another"]


def test_the_summary_and_runs_tables_name_each_scoring_rule():
    """Model-own (scale, bias, sigmoid) and the study's fixed 100 + softmax, from the scenarios' options."""
    from dirti_bench.reporting.console import scoring_summary

    def zeroshot(scoring, scale, bias, rule):
        return {"task": "category", "n": 10, "labels": ["a", "b"], "metrics": {"accuracy": 0.5},
                "options": {"scoring": scoring, "logit_scale": scale, "logit_bias": bias, "probability_rule": rule}}

    doc = {"run": {"model": "ViT-B-16-SigLIP", "pretrained": "webli", "dataset": "dirti", "n_stimuli": 10},
           "scenarios": {"zeroshot-baseline": zeroshot("study", 100.0, None, "softmax"),
                         **{f"ensemble-{i}": zeroshot("model", 112.7, -16.5, "sigmoid") for i in range(4)},
                         "knn-split-baseline": {"task": "category", "n": 10, "labels": ["a", "b"],
                                                "metrics": {"accuracy": 0.5}, "options": {"k": 5}}}}
    line = "the study's fixed 100 × cos, softmax (zeroshot-baseline); the model's own 113 × cos -16.5, sigmoid (4 scenarios)"
    assert scoring_summary(doc) == line
    assert summary_text(doc).splitlines()[2] == f"zero-shot scoring: {line}"
    assert scoring_summary(doc, short=True).startswith("the study's fixed 100 × cos, softmax (1 scenario); ")
    assert scoring_summary({"scenarios": {"knn": {"options": {"k": 5}}}}) is None  # nothing scored prompts
