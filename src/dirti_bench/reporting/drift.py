"""Metric drift: compare a results document with a committed baseline.

Every metric in ``scenarios[id]["metrics"]`` of every scenario present on both
sides is compared. A baseline is a results.json, or the slimmer file
``baseline_document`` writes; either may carry tolerances, most specific first:

  scenarios[id]["tolerances"][metric]  >  tolerances[metric]  >  the caller's default

The gate cannot pass by accident: a metric that is not a number (or null), a
scenario entry that is not an object, or a tolerance that is negative or not
finite is a user error (exit 2); so is a check that compared no metric, or a
``--metrics`` pattern that matched none. A baseline scenario or metric the
results lack fails the check unless missing ones are allowed; ``scope`` limits
the baseline to the scenarios a session set out to run (``pytest -k``).

A check is made only where it means something: results that differ from the baseline in
dataset, model, weights, a scenario's label space, threshold or configured options
(``validity.comparability``) are *not comparable*, which ``require_comparable`` turns into a user
error (exit 2) naming each difference, never "drift"; ``--accept-differences`` overrides it. A
baseline records each scenario's task, labels and configured options for this.
"""

from __future__ import annotations

import fnmatch
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tabulate import tabulate

from .. import jsonio
from ..errors import UserError
from ..results import check_scenarios, is_number
from ..validity import comparability, config_options

DEFAULT_TOLERANCE = 0.02
BASELINE_VERSION = 1
# What identifies the configuration a baseline came from; nothing time- or path-dependent.
IDENTITY_KEYS = ("model", "pretrained", "weights_sha256", "dataset", "dataset_sha256", "seed", "smoke_run")
BASELINE_FIX = "restore it from git or rewrite it with 'dirti-bench check-drift RESULTS_DIR --baseline FILE --update'"


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
    allow_missing: bool = False
    out_of_scope: list[str] = field(default_factory=list)  # baseline scenarios the session did not set out to run
    unmatched_patterns: list[str] = field(default_factory=list)  # --metrics patterns that matched no metric
    # what makes the results not comparable with the baseline: difference -> the scenarios it concerns
    not_comparable: dict[str, list[str]] = field(default_factory=dict)

    @property
    def lost(self) -> list[Missing]:
        """Baseline scenarios and metrics the results lack: they fail the check unless allowed."""
        return [m for m in self.missing if m.missing_in == "results"]

    @property
    def ok(self) -> bool:
        """True when every compared metric is within tolerance and nothing of the baseline is lost
        (or losing it is allowed); metrics new in the results are reported, not failed."""
        return not self.rows and (self.allow_missing or not self.lost)

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
                 + (" (fails the check; --allow-missing accepts it)" if m.missing_in == "results"
                    and not self.allow_missing else "")
                 for m in self.missing]
        if self.out_of_scope:
            lines.append(f"{len(self.out_of_scope)} baseline scenario(s) not selected in this session, not checked")
        return lines + [f"run.{key} differs: baseline {base!r}, results {now!r}"
                        for key, (base, now) in self.identity_differs.items()]

    def summary(self, baseline_name: str) -> str:
        """One line: no drift, or what failed."""
        if self.ok:
            return f"no drift: {self.checked} metrics within tolerance of {baseline_name}"
        parts = [f"{len(self.rows)} of {self.checked} metrics moved beyond tolerance"] if self.rows else []
        if self.lost and not self.allow_missing:
            parts.append(f"{len(self.lost)} scenario(s)/metric(s) of the baseline missing in the results")
        return f"drift: {'; '.join(parts)} of {baseline_name}"


def check_tolerance(value, where: str) -> float:
    """A finite, non-negative tolerance, or a UserError (NaN would make every comparison pass)."""
    if not is_number(value) or not math.isfinite(value) or value < 0:
        raise UserError(f"{where} must be a finite number >= 0, not {value!r}; use e.g. 0.02")
    return float(value)


def _metrics(scenario: dict) -> dict[str, float]:
    # null is how results.json writes an undefined (NaN) metric: compare it as NaN, so a
    # metric that turns undefined drifts instead of looking merely "missing".
    return {k: (math.nan if v is None else float(v)) for k, v in scenario["metrics"].items()}


def _tolerances(raw, where: str) -> dict[str, float]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UserError(f"{where} must map metric names to non-negative numbers, got {raw!r}; "
                        "fix the baseline file, e.g. {\"accuracy\": 0.01}")
    return {k: check_tolerance(v, f"{where}.{k}") for k, v in raw.items()}


def _selected(metric: str, patterns: Iterable[str] | None) -> bool:
    return patterns is None or any(fnmatch.fnmatchcase(metric, p) for p in patterns)


def _drifted(base: float, now: float, tolerance: float) -> bool:
    if not (math.isfinite(base) and math.isfinite(now)):  # NaN (undefined) or a hand-written Infinity
        return not (base == now or math.isnan(base) and math.isnan(now))
    return abs(now - base) > tolerance + 1e-12  # slack for float noise at exactly the tolerance


def check(results_doc: dict, baseline_doc: dict, tolerance: float = DEFAULT_TOLERANCE,
          metrics: Iterable[str] | None = None, baseline_name: str = "baseline",
          allow_missing: bool = False, scope: Iterable[str] | None = None,
          results_name: str = "results") -> DriftReport:
    """Compare every metric (or those matching ``metrics`` globs) of the shared scenarios.

    ``scope``: the scenario ids a session set out to run; baseline scenarios outside it are
    neither compared nor missing. Both documents are schema-checked first (UserError)."""
    tolerance = check_tolerance(tolerance, "the tolerance")
    patterns = list(metrics) if metrics is not None else None
    now_all = check_scenarios(results_doc, results_name)
    base_all = check_scenarios(baseline_doc, baseline_name, BASELINE_FIX)
    global_tol = _tolerances(baseline_doc.get("tolerances"), f"{baseline_name}: tolerances")
    report = DriftReport(allow_missing=allow_missing)
    if scope is not None:
        wanted = set(scope)
        report.out_of_scope = sorted(sid for sid in base_all if sid not in wanted)
        base_all = {sid: sc for sid, sc in base_all.items() if sid in wanted}
    base_run, now_run = baseline_doc.get("run"), results_doc.get("run")
    base_run, now_run = (r if isinstance(r, dict) else {} for r in (base_run, now_run))
    report.identity_differs = {k: (base_run[k], now_run[k]) for k in IDENTITY_KEYS
                               if k in base_run and k in now_run and base_run[k] != now_run[k]}
    for difference in comparability(base_run, None, now_run, None, same_model=True):
        report.not_comparable[f"run: {difference}"] = []
    for sid in now_all:
        if sid in base_all:
            for difference in comparability({}, base_all[sid], {}, now_all[sid]):
                report.not_comparable.setdefault(difference, []).append(sid)
    matched: set[str] = set()
    for sid in base_all:
        if sid not in now_all:
            report.missing.append(Missing(sid, None, "results"))
    for sid in now_all:
        if sid not in base_all:
            report.missing.append(Missing(sid, None, "baseline"))
            continue
        base_sc = base_all[sid]
        local_tol = _tolerances(base_sc.get("tolerances"), f"{baseline_name}: scenarios.{sid}.tolerances")
        now, base = _metrics(now_all[sid]), _metrics(base_sc)
        if patterns is not None:
            matched |= {p for p in patterns for m in (*now, *base) if fnmatch.fnmatchcase(m, p)}
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
    report.unmatched_patterns = [p for p in patterns or () if p not in matched]
    return report


def require_comparison(report: DriftReport, baseline_name: str, results_name: str = "the results") -> None:
    """A check that compared nothing is a user error, never a pass: an empty baseline, no shared
    scenario, or metric patterns that match no metric."""
    if report.unmatched_patterns:
        raise UserError(f"metrics {' '.join(report.unmatched_patterns)} matched no metric of {results_name} "
                        f"or {baseline_name}; use metric names such as accuracy or globs such as 'f1_*'", "metrics")
    if report.checked == 0:
        raise UserError(f"the drift check compared no metric: {results_name} and {baseline_name} share no "
                        "scenario with metrics; check that the baseline belongs to these results, or rewrite "
                        "it from these results", "update")


def require_comparable(report: DriftReport, baseline_name: str, results_name: str = "the results") -> None:
    """Results not comparable with the baseline are a user error naming each difference (baseline value
    first), never drift."""
    if not report.not_comparable:
        return
    parts = []
    for difference, ids in report.not_comparable.items():
        where = "" if not ids else f" in {ids[0]}" if len(ids) == 1 else f" in {len(ids)} scenarios ({ids[0]}, ...)"
        parts.append(difference.removeprefix("run: ") + where)
    raise UserError(f"{results_name} is not comparable with {baseline_name} (baseline vs results: "
                    f"{'; '.join(parts)}); check against a baseline of the same configuration, rewrite it from "
                    "these results, or accept the differences to compare anyway", ("update", "accept_differences"))


def baseline_document(results_doc: dict, previous: dict | None = None) -> dict:
    """A baseline from a results document: identity, each scenario's task, labels and configured options
    (what makes results comparable) and its metrics (no times, paths or caches).

    Tolerances of the previous baseline are kept, so ``--update`` never loosens or drops them.
    """
    run = results_doc.get("run") if isinstance(results_doc.get("run"), dict) else {}
    doc: dict = {"baseline_version": BASELINE_VERSION,
                 "run": {k: run[k] for k in IDENTITY_KEYS if k in run}}
    previous = previous or {}
    if previous.get("tolerances"):
        doc["tolerances"] = previous["tolerances"]
    old_scenarios = previous.get("scenarios") if isinstance(previous.get("scenarios"), dict) else {}
    scenarios = {}
    for sid, sc in sorted(check_scenarios(results_doc, "results").items()):
        configured = config_options()
        entry: dict = {key: sc[key] for key in ("task", "labels") if key in sc}
        if isinstance(sc.get("options"), dict):
            entry["options"] = {k: v for k, v in sorted(sc["options"].items()) if k in configured}
        entry["metrics"] = dict(sorted(sc["metrics"].items()))
        old = old_scenarios.get(sid)
        if isinstance(old, dict) and old.get("tolerances"):
            entry["tolerances"] = old["tolerances"]
        scenarios[sid] = entry
    doc["scenarios"] = scenarios
    return doc


def load_baseline(path: Path, allow_missing: bool = False) -> dict | None:
    try:
        doc = jsonio.loads(Path(path).read_text())
    except (FileNotFoundError, NotADirectoryError):  # no such file (or a file where a folder should be)
        if allow_missing:
            return None
        raise UserError(f"baseline {path} does not exist; create it by writing a baseline from the results",
                        "update") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"baseline {path} is not valid JSON ({exc}); restore it from git or delete it and "
                        "rewrite it from the results", "update") from None
    except IsADirectoryError:
        raise UserError(f"baseline {path} is a directory; pass the baseline JSON file") from None
    except OSError as exc:
        raise UserError(f"cannot read baseline {path} ({exc.strerror or exc}); check the path") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("scenarios"), dict):
        raise UserError(f"baseline {path} has no 'scenarios' mapping; restore it from git or delete it and "
                        "rewrite it from the results", "update")
    check_scenarios(doc, f"baseline {path}", BASELINE_FIX)
    _tolerances(doc.get("tolerances"), f"baseline {path}: tolerances")
    for sid, entry in doc["scenarios"].items():
        _tolerances(entry.get("tolerances"), f"baseline {path}: scenarios.{sid}.tolerances")
    return doc
