"""Metric drift: compare a results document with a committed baseline.

Every numeric metric in ``scenarios[id]["metrics"]`` of every scenario present
on both sides is compared. A baseline is a results.json, or the slimmer file
``baseline_document`` writes; either may carry tolerances, most specific first:

  scenarios[id]["tolerances"][metric]  >  tolerances[metric]  >  the caller's default
"""

from __future__ import annotations

import fnmatch
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tabulate import tabulate

from ..errors import UserError

DEFAULT_TOLERANCE = 0.02
BASELINE_VERSION = 1
# What identifies the configuration a baseline came from; nothing time- or path-dependent.
IDENTITY_KEYS = ("model", "pretrained", "weights_sha256", "dataset", "dataset_sha256", "seed", "smoke_run")


@dataclass(frozen=True)
class DriftRow:
    scenario: str
    metric: str
    baseline: float
    now: float
    delta: float
    tolerance: float


@dataclass(frozen=True)
class Missing:
    scenario: str
    metric: str | None  # None: the whole scenario is missing
    missing_in: str  # "results" or "baseline"


@dataclass
class DriftReport:
    """The drifted rows (iterating/len/bool act on them), plus what only one side had."""

    rows: list[DriftRow] = field(default_factory=list)
    missing: list[Missing] = field(default_factory=list)
    checked: int = 0
    identity_differs: dict[str, tuple] = field(default_factory=dict)  # run key -> (baseline, now)

    @property
    def ok(self) -> bool:
        """True when every compared metric is within tolerance (missing ones are reported, not failed)."""
        return not self.rows

    def __iter__(self) -> Iterator[dict]:
        return (asdict(r) for r in self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def table(self) -> str:
        if not self.rows:
            return "no drift"
        return tabulate([asdict(r) for r in self.rows], headers="keys", tablefmt="github", floatfmt=".4f")

    def notes(self) -> list[str]:
        lines = [f"{m.scenario}" + (f" / {m.metric}" if m.metric else "") + f": missing in {m.missing_in}"
                 for m in self.missing]
        return lines + [f"run.{key} differs: baseline {base!r}, results {now!r}"
                        for key, (base, now) in self.identity_differs.items()]


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numeric_metrics(scenario: dict) -> dict[str, float]:
    metrics = scenario.get("metrics", {}) if isinstance(scenario, dict) else {}
    # null is how results.json writes an undefined (NaN) metric: compare it as NaN, so a
    # metric that turns undefined drifts instead of looking merely "missing".
    return {k: (math.nan if v is None else float(v)) for k, v in metrics.items() if v is None or _is_number(v)}


def _tolerances(raw, where: str) -> dict[str, float]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(_is_number(v) and v >= 0 for v in raw.values()):
        raise UserError(f"{where} must map metric names to non-negative numbers, got {raw!r}; "
                        "fix the baseline file, e.g. {\"accuracy\": 0.01}")
    return {k: float(v) for k, v in raw.items()}


def _scenarios(doc, name: str) -> dict:
    scenarios = doc.get("scenarios") if isinstance(doc, dict) else None
    if not isinstance(scenarios, dict):
        raise UserError(f"{name} has no 'scenarios' mapping; pass a results.json or a baseline "
                        "written by 'dirti-bench check-drift --update'")
    return scenarios


def _selected(metric: str, patterns: Iterable[str] | None) -> bool:
    return patterns is None or any(fnmatch.fnmatchcase(metric, p) for p in patterns)


def _drifted(base: float, now: float, tolerance: float) -> bool:
    if math.isnan(base) or math.isnan(now):
        return math.isnan(base) != math.isnan(now)
    return abs(now - base) > tolerance + 1e-12  # slack for float noise at exactly the tolerance


def check(results_doc: dict, baseline_doc: dict, tolerance: float = DEFAULT_TOLERANCE,
          metrics: Iterable[str] | None = None, baseline_name: str = "baseline") -> DriftReport:
    """Compare every numeric metric (or those matching ``metrics`` globs) of the shared scenarios."""
    patterns = list(metrics) if metrics is not None else None
    now_all, base_all = _scenarios(results_doc, "results"), _scenarios(baseline_doc, baseline_name)
    global_tol = _tolerances(baseline_doc.get("tolerances"), f"{baseline_name}: 'tolerances'")
    report = DriftReport()
    base_run, now_run = baseline_doc.get("run") or {}, results_doc.get("run") or {}
    report.identity_differs = {k: (base_run[k], now_run[k]) for k in IDENTITY_KEYS
                               if k in base_run and k in now_run and base_run[k] != now_run[k]}
    for sid in base_all:
        if sid not in now_all:
            report.missing.append(Missing(sid, None, "results"))
    for sid in now_all:
        if sid not in base_all:
            report.missing.append(Missing(sid, None, "baseline"))
            continue
        base_sc = base_all[sid] if isinstance(base_all[sid], dict) else {}
        local_tol = _tolerances(base_sc.get("tolerances"), f"{baseline_name}: scenarios.{sid}.tolerances")
        now, base = _numeric_metrics(now_all[sid]), _numeric_metrics(base_sc)
        for metric in base:
            if metric not in now and _selected(metric, patterns):
                report.missing.append(Missing(sid, metric, "results"))
        for metric, value in now.items():
            if not _selected(metric, patterns):
                continue
            if metric not in base:
                report.missing.append(Missing(sid, metric, "baseline"))
                continue
            tol = local_tol.get(metric, global_tol.get(metric, tolerance))
            report.checked += 1
            if _drifted(base[metric], value, tol):
                report.rows.append(DriftRow(sid, metric, base[metric], value, value - base[metric], tol))
    return report


def baseline_document(results_doc: dict, previous: dict | None = None) -> dict:
    """A baseline from a results document: identity + metrics only (no times, paths or caches).

    Tolerances of the previous baseline are kept, so ``--update`` never loosens or drops them.
    """
    run = results_doc.get("run", {})
    doc: dict = {"baseline_version": BASELINE_VERSION,
                 "run": {k: run[k] for k in IDENTITY_KEYS if k in run}}
    previous = previous or {}
    if previous.get("tolerances"):
        doc["tolerances"] = previous["tolerances"]
    old_scenarios = previous.get("scenarios") if isinstance(previous.get("scenarios"), dict) else {}
    scenarios = {}
    for sid, sc in sorted(_scenarios(results_doc, "results").items()):
        entry: dict = {"metrics": dict(sorted(_numeric_metrics(sc).items()))}
        old = old_scenarios.get(sid)
        if isinstance(old, dict) and old.get("tolerances"):
            entry["tolerances"] = old["tolerances"]
        scenarios[sid] = entry
    doc["scenarios"] = scenarios
    return doc


def load_baseline(path: Path, allow_missing: bool = False) -> dict | None:
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        if allow_missing:
            return None
        raise UserError(f"baseline {path} does not exist; create it with 'dirti-bench check-drift RESULTS_DIR "
                        f"--baseline {path} --update'") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"baseline {path} is not valid JSON ({exc}); restore it from git or rewrite it with "
                        "--update after deleting it") from None
    except IsADirectoryError:
        raise UserError(f"baseline {path} is a directory; pass the baseline JSON file") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("scenarios"), dict):
        raise UserError(f"baseline {path} has no 'scenarios' mapping; restore it from git or rewrite it with "
                        "--update after deleting it")
    return doc
