"""The output contract: ``results.json`` and ``predictions.csv`` (keep stable, extend only).

results.json
  run:       model, pretrained, weights_sha256, device, versions, dataset,
             dataset_sha256, seed, created, smoke_run, ...
  scenarios: id -> task, labels, n, metrics, per_class, confusion,
             dropped_classes, options, ci, (folds), (extra)
  (comparisons): list of paired comparisons {a, b, n, accuracy_a, accuracy_b,
             accuracy_difference, ci, mcnemar | null} or {a, b, skipped}
predictions.csv
  scenario, stimulus, y_true, y_pred, fold   (class names; fold empty for zero-shot)
prompts.csv
  scenario, class, prompt   (every prompt a zero-shot or alignment scenario encoded; class
                             "high"/"low" for an alignment prompt pair)
sweeps.csv
  scenario, point, metric, value, ci_low, ci_high   (one row per sweep point and metric;
                             n and n_classes have no CI)
sweep_predictions.csv
  scenario, point, stimulus, y_true, y_pred, fold   (each sweep point's predictions)

Every metric in results.json is recomputable from predictions.csv, and every
value in sweeps.csv (and a sweep's points in results.json) from
sweep_predictions.csv with the point's labels, with
scikit-learn (y_true first, labels= the scenario's labels, zero_division=0).
Files are staged and moved into place with results.json last, so a failed run
never leaves a half-written set.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from .contracts import ScenarioResult
from .errors import UserError

RESULTS_FILE = "results.json"
PREDICTIONS_FILE = "predictions.csv"
FEATURES_FILE = "features.npz"
STIMULI_FILE = "stimuli.csv"
PREDICTION_COLUMNS = ["scenario", "stimulus", "y_true", "y_pred", "fold"]
PROMPTS_FILE = "prompts.csv"
PROMPT_COLUMNS = ["scenario", "class", "prompt"]
SWEEPS_FILE = "sweeps.csv"
SWEEP_COLUMNS = ["scenario", "point", "metric", "value", "ci_low", "ci_high"]
SWEEP_PREDICTIONS_FILE = "sweep_predictions.csv"
SWEEP_PREDICTION_COLUMNS = ["scenario", "point", "stimulus", "y_true", "y_pred", "fold"]
# A sweep point's counts, written to sweeps.csv beside its metrics (without a CI).
SWEEP_COUNTS = ("n", "n_classes")
SCHEMA_VERSION = 1



def versions() -> dict[str, str]:
    # Installed distributions' metadata: no need to import torch/open_clip on a warm (all-cache) run.
    from importlib.metadata import version

    return {"python": platform.python_version(), "torch": version("torch"),
            "open_clip": version("open_clip_torch"), "sklearn": version("scikit-learn"),
            "numpy": np.__version__, "pandas": pd.__version__, "dirti_bench": __version__}


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None  # strict JSON has no NaN/inf: an undefined metric is null
    if isinstance(obj, Path):
        return str(obj)
    return obj


def predictions_frame(results: list[ScenarioResult]) -> pd.DataFrame:
    frames = [r.predictions for r in results if r.predictions is not None and len(r.predictions)]
    if not frames:
        return pd.DataFrame(columns=PREDICTION_COLUMNS)
    return pd.concat(frames, ignore_index=True)[PREDICTION_COLUMNS]


def prompts_frame(results: list[ScenarioResult]) -> pd.DataFrame:
    rows = [(r.id, cls, prompt) for r in results for cls, prompt in (r.prompts or ())]
    return pd.DataFrame(rows, columns=PROMPT_COLUMNS)


def sweeps_frame(results: list[ScenarioResult]) -> pd.DataFrame:
    """Tidy: one row per sweep point and metric (a point's ``metrics`` with their ``ci``, then its counts)."""
    rows = []
    for r in results:
        for point in r.sweep or ():
            for metric, value in point["metrics"].items():
                low, high = point.get("ci", {}).get(metric) or (None, None)
                rows.append((r.id, point["point"], metric, value, low, high))
            rows += [(r.id, point["point"], count, point[count], None, None) for count in SWEEP_COUNTS]
    return pd.DataFrame(rows, columns=SWEEP_COLUMNS).astype({"value": float, "ci_low": float, "ci_high": float})


def sweep_predictions_frame(results: list[ScenarioResult]) -> pd.DataFrame:
    frames = [r.sweep_predictions for r in results if r.sweep_predictions is not None and len(r.sweep_predictions)]
    if not frames:
        return pd.DataFrame(columns=SWEEP_PREDICTION_COLUMNS)
    return pd.concat(frames, ignore_index=True)[SWEEP_PREDICTION_COLUMNS]


def write_results(out_dir: Path, run: dict, results: list[ScenarioResult],
                  extra_files: dict[str, bytes] | None = None, comparisons: list[dict] | None = None) -> Path:
    """Write the contract into ``out_dir`` atomically (results.json moved in last)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = {"schema_version": SCHEMA_VERSION, "run": _jsonable(run),
           "scenarios": {r.id: _jsonable(r.to_json()) for r in results}}
    if comparisons is not None:  # paired scenario comparisons (dirti_bench.reporting.compare)
        doc["comparisons"] = _jsonable(comparisons)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=out_dir))
    try:
        predictions_frame(results).to_csv(staging / PREDICTIONS_FILE, index=False)
        prompts_frame(results).to_csv(staging / PROMPTS_FILE, index=False)
        sweeps_frame(results).to_csv(staging / SWEEPS_FILE, index=False)
        sweep_predictions_frame(results).to_csv(staging / SWEEP_PREDICTIONS_FILE, index=False)
        for name, blob in (extra_files or {}).items():
            (staging / name).write_bytes(blob)
        (staging / RESULTS_FILE).write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
        names = [p.name for p in staging.iterdir() if p.name != RESULTS_FILE] + [RESULTS_FILE]
        for name in names:
            os.replace(staging / name, out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


# ---------------------------------------------------------------- schema of what readers use

RESULTS_FIX = "re-run 'dirti-bench run' to regenerate it"


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _shown(value) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _require(ok: bool, source, key: str, what: str, value, fix: str) -> None:
    if not ok:
        raise UserError(f"{source}: {key} must be {what}, not {_shown(value)}; {fix}")


def _pair_or_null(v) -> bool:
    return v is None or isinstance(v, list) and len(v) == 2 and all(x is None or is_number(x) for x in v)


# key -> (check, what it must be); absent keys are fine (readers use defaults)
SCENARIO_SCHEMA = {
    "task": (lambda v: isinstance(v, str), "a string"),
    "labels": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of class names"),
    "n": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "per_class": (lambda v: isinstance(v, dict) and all(isinstance(x, dict) for x in v.values()),
                  "an object of per-class objects"),
    "confusion": (lambda v: isinstance(v, list) and all(isinstance(r, list) and all(is_number(x) for x in r)
                                                        for r in v), "a list of rows of numbers"),
    "dropped_classes": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of class names"),
    "options": (lambda v: isinstance(v, dict), "an object"),
    "ci": (lambda v: isinstance(v, dict) and all(_pair_or_null(x) for x in v.values()),
           "an object of [low, high] pairs"),
    "folds": (lambda v: isinstance(v, dict), "an object"),
    "extra": (lambda v: isinstance(v, dict), "an object"),
}
PRECISION_CHECK_KEYS = ("precision", "images", "min_cosine", "identical_predictions")
RUN_SCHEMA = {
    "seed": (lambda v: v is None or isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "versions": (lambda v: isinstance(v, dict), "an object"),
    "smoke_run": (lambda v: isinstance(v, bool), "true or false"),
    "precision_check": (lambda v: v is None or isinstance(v, dict) and all(k in v for k in PRECISION_CHECK_KEYS)
                        and all(is_number(v[k]) for k in PRECISION_CHECK_KEYS[1:]),
                        f"null or an object with {', '.join(PRECISION_CHECK_KEYS)}"),
}


def check_scenario_entry(sid: str, entry, source, fix: str = RESULTS_FIX) -> None:
    """One ``scenarios`` entry: an object whose ``metrics`` maps names to numbers (null: undefined)."""
    key = f"scenarios.{sid}"
    _require(isinstance(entry, dict), source, key, "an object", entry, fix)
    _require("metrics" in entry, source, f"{key}.metrics", "present", None, fix)
    _require(isinstance(entry["metrics"], dict), source, f"{key}.metrics", "an object", entry["metrics"], fix)
    for metric, value in entry["metrics"].items():
        _require(value is None or is_number(value), source, f"{key}.metrics.{metric}", "a number or null", value, fix)
    for name, (ok, what) in SCENARIO_SCHEMA.items():
        if name in entry:
            _require(ok(entry[name]), source, f"{key}.{name}", what, entry[name], fix)


def check_scenarios(doc, source, fix: str = RESULTS_FIX) -> dict:
    """``doc["scenarios"]``, each entry checked; a UserError naming the file and key otherwise."""
    _require(isinstance(doc, dict), source, "the document", "a JSON object", doc, fix)
    _require("scenarios" in doc, source, "'scenarios'", "present", None, fix)
    _require(isinstance(doc["scenarios"], dict), source, "scenarios", "an object (id -> scenario)",
             doc["scenarios"], fix)
    for sid, entry in doc["scenarios"].items():
        check_scenario_entry(sid, entry, source, fix)
    return doc["scenarios"]


def check_results_doc(doc, source) -> dict:
    """The keys of results.json its readers (report, check-drift) use, each of the right type."""
    check_scenarios(doc, source)
    _require("run" in doc, source, "'run'", "present", None, RESULTS_FIX)
    _require(isinstance(doc["run"], dict), source, "run", "an object", doc["run"], RESULTS_FIX)
    for name, (ok, what) in RUN_SCHEMA.items():
        if name in doc["run"]:
            _require(ok(doc["run"][name]), source, f"run.{name}", what, doc["run"][name], RESULTS_FIX)
    comparisons = doc.get("comparisons")
    _require(comparisons is None or isinstance(comparisons, list) and all(isinstance(c, dict) for c in comparisons),
             source, "comparisons", "a list of objects", comparisons, RESULTS_FIX)
    return doc


def read_results(results_dir: Path) -> dict:
    path = Path(results_dir)
    if path.is_dir():
        path = path / RESULTS_FILE
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"no {RESULTS_FILE} at {path}; pass a directory written by 'dirti-bench run'") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON ({exc}); re-run 'dirti-bench run' to regenerate it") from None
    except OSError as exc:
        raise UserError(f"cannot read {path} ({exc.strerror}); check the path and its permissions") from None
    if not isinstance(doc, dict) or "scenarios" not in doc or "run" not in doc:
        raise UserError(f"{path} lacks 'run'/'scenarios'; it is not a dirti-bench results file")
    return check_results_doc(doc, path)
