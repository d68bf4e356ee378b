"""The package's shape: imports flow one way along the pipeline, with no cycle (function-level
imports included), nothing points outside the repository, and comments cite no issue numbers."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "dirti_bench"

# Lower layers never import higher ones: stimuli -> label space -> prompts -> encoder (+cache)
# -> contracts -> results -> evaluators / scenarios -> reporting -> pipeline -> commands.
LAYERS = [
    ("dirti_bench", "dirti_bench.errors", "dirti_bench.constraints", "dirti_bench.paths", "dirti_bench.atomic"),
    ("dirti_bench.data",),
    ("dirti_bench.labels",),
    ("dirti_bench.prompts", "dirti_bench.templates"),
    ("dirti_bench.encoding", "dirti_bench.model_configs"),
    ("dirti_bench.contracts",),
    ("dirti_bench.results", "dirti_bench.results_types", "dirti_bench.validity"),
    ("dirti_bench.evaluators", "dirti_bench.scenarios"),
    ("dirti_bench.reporting",),
    ("dirti_bench.pipeline", "dirti_bench.bench", "dirti_bench.sweep"),
    ("dirti_bench.commands", "dirti_bench.cli", "dirti_bench.pytest_plugin", "dirti_bench.api"),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


def resolve(module: str, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The package modules an import statement runs (submodules named in ``from X import y`` too)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "dirti_bench"]
    if node.level:
        base = module.split(".") if is_package(module) else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join([*base, node.module] if node.module else base)
    else:
        target = node.module or ""
    if target.split(".")[0] != "dirti_bench":
        return []
    return [target] + [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]


def edges() -> dict[str, set[str]]:
    """Module -> the package modules it imports, with the parent packages Python runs first."""
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):  # function-level imports too
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in resolve(name, node):
                    parts = target.split(".")
                    targets |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & MODULES.keys()
        graph[name] = targets - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def layer(name: str) -> int:
    hits = [i for i, prefixes in enumerate(LAYERS) for p in prefixes if name == p or name.startswith(p + ".")]
    return max(hits)


def test_the_import_graph_has_no_cycle():
    assert find_cycle(edges()) is None, " -> ".join(find_cycle(edges()))


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_imports_flow_one_way_along_the_pipeline():
    wrong = sorted(f"{m} (layer {layer(m)}) imports {t} (layer {layer(t)})"
                   for m, targets in edges().items() for t in targets if layer(t) > layer(m))
    assert not wrong, "\n".join(wrong)


def test_every_module_has_a_layer_and_the_pipeline_has_its_packages():
    for name in MODULES:
        layer(name)  # raises on a module no layer names
    for package in ("data", "encoding", "evaluators", "reporting", "commands"):
        assert is_package(f"dirti_bench.{package}")


def test_package_inits_import_no_package_module():
    """A package's __init__ importing its modules would make every submodule import all of them
    (the standard library is fine: encoding's registers its model configs with open_clip)."""
    for name, path in MODULES.items():
        if path.name == "__init__.py" and name != "dirti_bench":
            tree = ast.parse(path.read_text())
            own = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)
                   and (isinstance(n, ast.ImportFrom) and (n.level or (n.module or "").startswith("dirti_bench"))
                        or isinstance(n, ast.Import) and any(a.name.startswith("dirti_bench") for a in n.names))]
            assert not own, name


SOURCES = [p for folder in ("src", "tests", "benchmarks") for p in (REPO / folder).rglob("*.py")]
OUTSIDE_PATH = re.compile(r"(?<![\w.~-])/(?:work|home|Users|root|mnt|srv|opt|private)/\w")
ISSUE_NUMBER = re.compile(r"\bissues?\s*#?\d+|\bgh-\d+", re.IGNORECASE)


@pytest.mark.parametrize("pattern, what", [(OUTSIDE_PATH, "an absolute path outside the repository"),
                                           (ISSUE_NUMBER, "an issue number")])
def test_no_source_file_points_outside_the_repository_or_at_issue_numbers(pattern, what):
    hits = [f"{p.relative_to(REPO)}:{i}: {line.strip()}" for p in SOURCES if p.name != Path(__file__).name
            for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not hits, f"{what}:\n" + "\n".join(hits)


def test_the_patterns_match_what_they_must():
    assert OUTSIDE_PATH.search("see /work/shared/STUDY.md") and not OUTSIDE_PATH.search("reports/study.md")
    assert ISSUE_NUMBER.search("(issue 6)") and not ISSUE_NUMBER.search("an issue with the data")


def test_the_study_facts_live_in_the_repository():
    study = REPO / "reports" / "study.md"
    assert "Published numbers" in study.read_text()
    assert "reports/study.md" in (PACKAGE / "reporting" / "published.py").read_text()
