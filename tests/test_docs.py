"""The documentation stays true: the README is short and its quick start is what CI runs, the
generated pages (CLI, scenarios, the demo's sample output) match the code, and the site builds
with warnings as errors. Each failure names the one command that fixes it."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FIX = "run `python docs/gen_docs.py` and commit what it rewrote"


def _gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "docs" / "gen_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen_docs = _gen_docs()


def quick_start_commands() -> list[str]:
    text = README.read_text()
    section = text[text.index("## Quick start"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def _words(command: str) -> list[str]:
    """A command's words without pip's and pytest's -q (CI keeps its log short; a person sees progress)."""
    return [w for w in shlex.split(command) if w != "-q"]


def test_the_readme_is_at_most_150_lines():
    n = len(README.read_text().splitlines())
    assert n <= 150, f"README.md has {n} lines; move detail into docs/ (the README links every page)"


def test_the_quick_start_is_two_commands_and_ci_runs_exactly_them():
    commands = quick_start_commands()
    assert len(commands) == 2, commands
    ci_lines = [_words(line) for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    for command in commands:
        assert _words(command) in ci_lines, f"README's quick-start command is not in .ci/run: {command}"
    assert "run" in commands[0] and "--demo" in commands[0] and "pytest" in commands[1]


def test_ci_builds_the_docs_strictly_after_installing_the_docs_extra():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "mkdocs build --strict" in ci
    assert ci.index(".[dev,docs,hf]") < ci.index("mkdocs build --strict")
    assert "'.[dev,docs,hf]'" in quick_start_commands()[0]


def test_every_docs_page_the_readme_links_exists():
    links = re.findall(r"\]\(((?:docs/)[^)#]+)", README.read_text())
    assert links, "the README's documentation table links no docs/ page"
    missing = [link for link in links if not (ROOT / link).is_file()]
    assert not missing, f"README links missing pages: {missing}"


@pytest.mark.parametrize("page", ["cli", "scenarios"])
def test_the_generated_references_are_current(page):
    path = {"cli": gen_docs.CLI_MD, "scenarios": gen_docs.SCENARIOS_MD}[page]
    text = {"cli": gen_docs.cli_markdown, "scenarios": gen_docs.scenarios_markdown}[page]()
    assert path.read_text() == text, f"{path.relative_to(ROOT)} is stale: {FIX}"


def test_the_cli_reference_lists_every_option_of_every_command():
    from dirti_bench.cli import COMMANDS, build_parser

    text = gen_docs.CLI_MD.read_text()
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name in COMMANDS:
        section = text[text.index(f"## `dirti-bench {name}`"):]
        section = section[:section.find("\n## ", 1) if "\n## " in section[1:] else None]
        for action in sub.choices[name]._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert f"`{flag}" in section or f", {flag}" in section, f"{name} {flag} missing from cli.md"


def test_the_scenario_reference_lists_every_registry_scenario():
    from dirti_bench.scenarios import REGISTRY

    text = gen_docs.SCENARIOS_MD.read_text()
    assert all(f"| `{sid}` |" in text for sid in REGISTRY)


def test_a_stale_page_is_named_with_the_fix(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "cli.md"
    stale.write_text("old\n")
    monkeypatch.setattr(gen_docs, "CLI_MD", stale)
    monkeypatch.setattr(gen_docs, "SAMPLE_FILES", ())  # the demo sample has its own test
    monkeypatch.setattr(gen_docs, "SCENARIOS_MD", tmp_path / "scenarios.md")
    (tmp_path / "scenarios.md").write_text(gen_docs.scenarios_markdown())
    assert gen_docs.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert "cli.md" in err and "scenarios.md" not in err and "python docs/gen_docs.py" in err
    assert stale.read_text() == "old\n"  # --check writes nothing
    assert gen_docs.main([]) == 0 and stale.read_text() == gen_docs.cli_markdown()


def test_progress_bars_keep_their_bar_and_lose_their_timings():
    raw = "encoding images:   0%|   | 0/60 [00:00<?, ?img/s]\rencoding images: 100%|███| 60/60 [00:00<00:00, 532.72img/s]"
    assert gen_docs._last_frame(raw) == "encoding images: 100%|███| 60/60 [00:00<00:00, 532.72img/s]"


@pytest.mark.slow
def test_the_demo_sample_in_the_docs_is_what_a_fresh_demo_run_prints():
    """A real `dirti-bench run --demo` in a fresh cache home (30-70 s on 2 cores: slow, CI runs it);
    paths and timings masked."""
    holders = [p for p in gen_docs.SAMPLE_FILES if p.exists() and gen_docs.DEMO_START in p.read_text()]
    assert README in holders, "README.md lost its demo-output markers"
    sample = gen_docs.demo_sample()
    assert "$ dirti-bench run --demo" in sample and "results: results/results.json" in sample
    assert "~/.cache/dirti-bench/demo/seed-0" in sample and "[…]" in sample
    for path in holders:
        assert path.read_text() == gen_docs.with_demo_sample(path.read_text(), sample), \
            f"the demo sample in {path.relative_to(ROOT)} is stale: {FIX}"


def test_the_site_builds_with_warnings_as_errors(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    api = (tmp_path / "site" / "reference" / "api" / "index.html").read_text()
    assert "Scenario" in api  # mkdocstrings rendered the docstrings


def test_the_output_contract_page_names_every_file_and_column_the_code_writes():
    from dirti_bench import results

    page = (ROOT / "docs" / "reference" / "output.md").read_text()
    files = {name: value for name, value in vars(results).items() if name.endswith("_FILE") and isinstance(value, str)}
    missing = [f for f in files.values() if f"`{f}`" not in page]
    assert not missing, f"docs/reference/output.md does not describe {missing}"
    for name, columns in vars(results).items():
        if name.endswith("_COLUMNS") and name != "CLASSIFICATION_RESULT_COLUMNS" and isinstance(columns, list):
            assert ",".join(columns) in page, f"docs/reference/output.md lacks the {name} header {','.join(columns)}"
    from dirti_bench.evaluators import layer_classes, layer_eval, layerwise, rsa
    from dirti_bench.reporting import leaderboard

    for columns in (layerwise.LAYER_PREDICTION_COLUMNS, layer_eval.LAYER_SCORE_COLUMNS, rsa.RSA_COLUMNS,
                    layer_classes.LAYER_CLASS_PREDICTION_COLUMNS, layer_classes.LAYER_CLASS_SCORE_COLUMNS):
        assert ",".join(columns) in page, f"docs/reference/output.md lacks the layer-wise header {','.join(columns)}"
    assert leaderboard.LEADERBOARD_FILE in page and ",".join(leaderboard.LEADERBOARD_COLUMNS) in page


def test_the_schema_version_is_stated_in_the_docs_and_the_changelog():
    from dirti_bench.results import SCHEMA_VERSION

    page = (ROOT / "docs" / "reference" / "output.md").read_text()
    assert f"currently {SCHEMA_VERSION}" in page
    changelog = (ROOT / "CHANGELOG.md").read_text()
    unreleased = changelog[changelog.index("## [Unreleased]"):changelog.index("\n## [", changelog.index("## [Unreleased]") + 1)]
    assert f"schema version {SCHEMA_VERSION}" in unreleased, \
        "CHANGELOG.md's Unreleased section must state the output contract's schema version (results.SCHEMA_VERSION)"
