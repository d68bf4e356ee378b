"""The output contract: ``results.json``, ``predictions.csv.gz`` and ``alignment_predictions.csv``
(keep stable, extend only).

results.json
  run:       model, pretrained, weights_sha256, device, versions, dataset,
             dataset_sha256, seed, created, smoke_run, ...
  scenarios: id -> task, labels, n, metrics, per_class, confusion,
             dropped_classes, options, ci, (folds), (extra), flags (validity.py: [{flag, reason}])
  skipped:   id -> why the data cannot support that scenario ({} when none was skipped)
  (comparisons): list of paired comparisons {a, b, n, accuracy_a, accuracy_b,
             accuracy_difference, ci, mcnemar | null, (family, family_size, p_holm, q_bh)}
             or {a, b, skipped}
predictions.csv.gz         (classification scenarios; gzip-compressed CSV like sweep_predictions.csv.gz:
                             a plain CSV was 16 MB at 10k images; read in one pandas/R call)
  scenario, stimulus, file_name, y_true, y_pred, confidence, fold
  class names; confidence = the predicted class's probability (zero-shot softmax,
  KNN vote share, probe probability); fold an integer, empty for fixed classifiers
alignment_predictions.csv  (alignment scenarios)
  scenario, stimulus, category, rating, score, repeat, fold
  rating = the mean human rating, score = the model's; repeat and fold integers
  for the cross-validated probe, empty for zero-shot
prompts.csv
  scenario, class, prompt   (every prompt a zero-shot or alignment scenario encoded; class
                             "high"/"low" for an alignment prompt pair, whose scores are the
                             alignment_predictions.csv rows of the same scenario)
sweeps.csv
  scenario, point, metric, value, ci_low, ci_high   (one row per sweep point and metric;
                             n and n_classes have no CI)
sweep_predictions.csv.gz   (gzip-compressed CSV: one row per sweep point and stimulus, 200+ rows
                             per image, so 84% of a plain run's output; pandas.read_csv(path) and
                             R's read.csv(path) read it in one call, as they read a plain CSV)
  scenario, point, stimulus, y_true, y_pred, fold   (each sweep point's predictions; fold an
                             integer or empty, as in predictions.csv.gz)
probabilities.csv.gz       (zero-shot scenarios; tidy: one row per stimulus and class; gzip-compressed
                             CSV like sweep_predictions.csv.gz, read in one pandas/R call)
  scenario, stimulus, class, logit, probability, calibrated_probability, calibration_fold
                             logit = scale * cos + bias as scored (options record scale, bias and
                             probability_rule); probability by that rule; calibrated_probability
                             from the temperature fitted on the other folds, calibration_fold the
                             held-out fold it was in. ECE and Brier recompute from it. Written at
                             float32 precision (the shortest text that gives the float32 back):
                             float32 logits exactly (read them as float32), the probabilities
                             rounded to ~7 digits; the exact float64 probabilities recompute from
                             the logits by the rule (calibrated: logit / the fold's temperature,
                             extra.calibration.temperature.per_fold).

Stimulus ids are integers in every file (and in features.npz) when every id of the set
is one, else strings. Every metric in results.json is recomputable from the CSVs with
scikit-learn / scipy (y_true first, labels= the scenario's labels, zero_division=0),
and every value in sweeps.csv (and a sweep's points in results.json) from
sweep_predictions.csv.gz with the point's labels.
``write_results`` fills a folder; ``pipeline.write_run`` stages that folder beside
the output directory and swaps it in whole, so a failed or interrupted run leaves
the earlier results as they were.
"""

from __future__ import annotations

import json
import platform
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__, jsonio
from .constraints import AnyMapping, Boolean, Constraint, Interval, IsNone, ListOf, Text, describe
from .contracts import ScenarioResult
from .errors import UserError
from .validity import with_flags

# Metric names: the keys of a scenario's "metrics" and "ci" in results.json, spelled once here for
# the evaluators that compute them and the report, console and comparison that read them.
ACCURACY = "accuracy"
BALANCED_ACCURACY = "balanced_accuracy"
PRECISION_MACRO = "precision_macro"
RECALL_MACRO = "recall_macro"
F1_MACRO = "f1_macro"
SPEARMAN_RHO = "spearman_rho"
PEARSON_R = "pearson_r"

RESULTS_FILE = "results.json"
PREDICTIONS_FILE = "predictions.csv.gz"
FEATURES_FILE = "features.npz"
STIMULI_FILE = "stimuli.csv"
ALIGNMENT_PREDICTIONS_FILE = "alignment_predictions.csv"
PREDICTION_COLUMNS = ["scenario", "stimulus", "file_name", "y_true", "y_pred", "confidence", "fold"]
ALIGNMENT_COLUMNS = ["scenario", "stimulus", "category", "rating", "score", "repeat", "fold"]
# What an evaluator's classification frame holds; file_name is joined from the stimulus set on writing.
CLASSIFICATION_RESULT_COLUMNS = [c for c in PREDICTION_COLUMNS if c != "file_name"]
PROMPTS_FILE = "prompts.csv"
PROMPT_COLUMNS = ["scenario", "class", "prompt"]
SWEEPS_FILE = "sweeps.csv"
SWEEP_COLUMNS = ["scenario", "point", "metric", "value", "ci_low", "ci_high"]
SWEEP_PREDICTIONS_FILE = "sweep_predictions.csv.gz"
# mtime 0: the same predictions give the same bytes (gzip would stamp the time of writing)
GZIP = {"method": "gzip", "mtime": 0}
SWEEP_PREDICTION_COLUMNS = ["scenario", "point", "stimulus", "y_true", "y_pred", "fold"]
PROBABILITIES_FILE = "probabilities.csv.gz"  # one row per stimulus and class: 153 MB plain at 10k images
PROBABILITY_COLUMNS = ["scenario", "stimulus", "class", "logit", "probability", "calibrated_probability",
                       "calibration_fold"]
# A sweep point's counts, written to sweeps.csv beside its metrics (without a CI).
# The layer-wise scenarios' files (written only when a run has them; see layer_frames).
LAYER_PREDICTIONS_FILE = "layer_predictions.csv"
LAYER_SCORES_FILE = "layer_scores.csv"
LAYER_RSA_FILE = "layer_rsa.csv"
# The classifier-per-layer scenarios' and their controls' (class names, not ratings: files of their own).
LAYER_CLASS_PREDICTIONS_FILE = "layer_class_predictions.csv"
LAYER_CLASS_SCORES_FILE = "layer_class_scores.csv"
SWEEP_COUNTS = ("n", "n_classes")
SCHEMA_VERSION = 4
_INTEGER_ID = re.compile(r"(0|[1-9][0-9]{0,17})")



class ResultsView:
    """What a run read back from disk shows of its results.json (``doc``): the run block and the
    scenarios, empty when absent."""

    doc: dict

    @property
    def run(self) -> dict:
        return self.doc.get("run", {})

    @property
    def scenarios(self) -> dict:
        return self.doc.get("scenarios", {})


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


def ids_are_integers(ids: Iterable[str]) -> bool:
    """Whether every id reads back as the same integer (DIRTI's ``1001``; not ``007`` or ``a1``)."""
    ids = [str(i) for i in ids]
    return bool(ids) and all(_INTEGER_ID.fullmatch(i) for i in ids)


def typed_ids(ids: Iterable[str], integers: bool) -> np.ndarray:
    """Stimulus ids as every output file holds them: int64 when the set's ids are integers, else str."""
    ids = [str(i) for i in ids]
    return np.array([int(i) for i in ids], dtype=np.int64) if integers else np.array(ids, dtype=str)


def _nullable_int(values) -> pd.Series:
    """Integers with empty cells for missing values (written as ``3`` or nothing, never ``3.0``)."""
    cells = [None if v is None or (isinstance(v, str) and not v.strip()) or pd.isna(v) else int(v) for v in values]
    return pd.Series(pd.array(cells, dtype="Int64"))


def predictions_frame(results: list[ScenarioResult], file_names: Mapping[str, str] | None = None,
                      integer_ids: bool = False) -> pd.DataFrame:
    """Classification rows of every result, typed for pandas and R."""
    frames = [r.predictions for r in results
              if r.is_classification and r.predictions is not None and len(r.predictions)]
    if not frames:
        return pd.DataFrame(columns=PREDICTION_COLUMNS)
    frame = pd.concat(frames, ignore_index=True)
    ids = frame["stimulus"].astype(str)
    names = file_names or {}
    frame["file_name"] = [names.get(i, "") for i in ids]
    frame["stimulus"] = typed_ids(ids, integer_ids)
    frame["confidence"] = pd.to_numeric(frame["confidence"]).astype(float)
    frame["fold"] = _nullable_int(frame["fold"])
    return frame[PREDICTION_COLUMNS]


def alignment_frame(results: list[ScenarioResult], integer_ids: bool = False) -> pd.DataFrame:
    """Alignment rows of every result: one per stimulus (and CV repeat), numbers as numbers."""
    frames = [r.predictions for r in results
              if not r.is_classification and r.predictions is not None and len(r.predictions)]
    if not frames:
        return pd.DataFrame(columns=ALIGNMENT_COLUMNS)
    frame = pd.concat(frames, ignore_index=True)
    frame["stimulus"] = typed_ids(frame["stimulus"].astype(str), integer_ids)
    frame["rating"] = frame["rating"].astype(float)
    frame["score"] = frame["score"].astype(float)
    frame["repeat"] = _nullable_int(frame["repeat"])
    frame["fold"] = _nullable_int(frame["fold"])
    return frame[ALIGNMENT_COLUMNS]


def results_document(run: dict, results: list[ScenarioResult], comparisons: list[dict] | None = None,
                     skipped: Mapping[str, str] | None = None) -> dict:
    """What results.json holds, JSON-ready (the terminal summary reads the same document)."""
    doc = {"schema_version": SCHEMA_VERSION, "run": _jsonable(run),
           "scenarios": {r.id: with_flags(_jsonable(r.to_json())) for r in results}, "skipped": dict(skipped or {})}
    if comparisons is not None:  # paired scenario comparisons (dirti_bench.reporting.compare)
        doc["comparisons"] = _jsonable(comparisons)
    return doc


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


def _stacked_rows(results: list[ScenarioResult], attribute: str, columns: list[str], fold_column: str,
                  integer_ids: bool) -> pd.DataFrame:
    """The scenarios' per-stimulus frames held in ``attribute``, stacked, ids and folds typed as in
    predictions.csv.gz (an empty frame with the columns when no scenario has one)."""
    frames = [f for f in (getattr(r, attribute) for r in results) if f is not None and len(f)]
    if not frames:
        return pd.DataFrame(columns=columns)
    frame = pd.concat(frames, ignore_index=True)
    frame["stimulus"] = typed_ids(frame["stimulus"].astype(str), integer_ids)
    frame[fold_column] = _nullable_int(frame[fold_column])
    return frame[columns]


def sweep_predictions_frame(results: list[ScenarioResult], integer_ids: bool = False) -> pd.DataFrame:
    """Every sweep point's predictions, ids and folds typed as in predictions.csv.gz."""
    return _stacked_rows(results, "sweep_predictions", SWEEP_PREDICTION_COLUMNS, "fold", integer_ids)


def probabilities_frame(results: list[ScenarioResult], integer_ids: bool = False) -> pd.DataFrame:
    """Every zero-shot scenario's class probabilities, ids typed as in predictions.csv.gz."""
    return _stacked_rows(results, "probabilities", PROBABILITY_COLUMNS, "calibration_fold", integer_ids)


# The contract's CSV files (the Python API's Results reads the same frames, in memory or from them).
CONTRACT_CSVS = (PREDICTIONS_FILE, ALIGNMENT_PREDICTIONS_FILE, PROMPTS_FILE, SWEEPS_FILE, SWEEP_PREDICTIONS_FILE,
                 PROBABILITIES_FILE)


def contract_frames(results: list[ScenarioResult], file_names: Mapping[str, str] | None = None,
                    integer_ids: bool = False) -> dict[str, pd.DataFrame]:
    """Each CSV file of the contract as the frame written to it (file name -> frame)."""
    return {PREDICTIONS_FILE: predictions_frame(results, file_names, integer_ids),
            ALIGNMENT_PREDICTIONS_FILE: alignment_frame(results, integer_ids),
            PROMPTS_FILE: prompts_frame(results),
            SWEEPS_FILE: sweeps_frame(results),
            SWEEP_PREDICTIONS_FILE: sweep_predictions_frame(results, integer_ids),
            PROBABILITIES_FILE: probabilities_frame(results, integer_ids)}


def layer_frames(results: list[ScenarioResult], integer_ids: bool = False) -> dict[str, pd.DataFrame]:
    """layer_predictions.csv and layer_scores.csv (the ridge probe per layer) and layer_class_predictions.csv
    and layer_class_scores.csv (the classifiers per layer) as frames (file name -> frame): every layer-wise
    scenario's rows, concatenated, stimulus ids typed as in the other files; empty when no scenario
    read layers."""
    frames = {}
    for predictions_file, scores_file, predictions_of, scores_of in (
            (LAYER_PREDICTIONS_FILE, LAYER_SCORES_FILE, "layer_predictions", "layer_scores"),
            (LAYER_CLASS_PREDICTIONS_FILE, LAYER_CLASS_SCORES_FILE, "layer_class_predictions", "layer_class_scores")):
        with_layers = [r for r in results if getattr(r, scores_of, None) is not None]
        if not with_layers:
            continue
        predictions = pd.concat([getattr(r, predictions_of) for r in with_layers], ignore_index=True)
        predictions["stimulus"] = typed_ids(predictions["stimulus"], integer_ids)
        frames |= {predictions_file: predictions,
                   scores_file: pd.concat([getattr(r, scores_of) for r in with_layers], ignore_index=True)}
    return frames


_INTEGER_COLUMNS = ("fold", "repeat", "calibration_fold")


def read_contract_frames(results_dir: Path) -> dict[str, pd.DataFrame]:
    """The contract's CSV files of a results folder as frames typed as they were written (integer
    columns with empty cells as pandas' nullable Int64); a file an older run did not write is empty."""
    frames = {}
    for name in CONTRACT_CSVS:
        path = Path(results_dir) / name
        try:
            frame = pd.read_csv(path) if path.is_file() else pd.DataFrame()
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
            raise UserError(f"cannot read {path} ({str(exc).strip()}); {RESULTS_FIX}") from None
        for column in _INTEGER_COLUMNS:
            if column in frame:
                frame[column] = _nullable_int(frame[column]).to_numpy()
        frames[name] = frame
    for name in (LAYER_PREDICTIONS_FILE, LAYER_SCORES_FILE, LAYER_RSA_FILE, LAYER_CLASS_PREDICTIONS_FILE,
                 LAYER_CLASS_SCORES_FILE):  # only a layer-wise run has them
        path = Path(results_dir) / name
        if path.is_file():
            try:
                frames[name] = pd.read_csv(path)
            except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
                raise UserError(f"cannot read {path} ({str(exc).strip()}); {RESULTS_FIX}") from None
    return frames


def float32_precision(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """``frame`` with ``columns`` as float32, so the CSV holds ~7-9 digits per value, not float64's 17:
    at 10k images the probabilities' full float64 text was half a run's output (44 of 88 MB, gzip'd).
    A ``logit`` column computed in float32 loses nothing (it stays float64 where it would)."""
    out = frame.copy()
    for column in columns:
        values = out[column].to_numpy(dtype=np.float64)
        narrow = values.astype(np.float32)
        if column != "logit" or np.array_equal(narrow.astype(np.float64), values, equal_nan=True):
            out[column] = narrow
    return out


def write_results(out_dir: Path, run: dict, results: list[ScenarioResult],
                  extra_files: dict[str, bytes] | None = None, comparisons: list[dict] | None = None,
                  skipped: Mapping[str, str] | None = None, file_names: Mapping[str, str] | None = None,
                  integer_ids: bool = False) -> Path:
    """Write the contract into ``out_dir`` (pipeline.write_run gives it a staging folder that is
    swapped in whole; results.json is written last either way)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = results_document(run, results, comparisons, skipped)
    for name, frame in contract_frames(results, file_names, integer_ids).items():
        if name == PROBABILITIES_FILE:
            frame = float32_precision(frame, ("logit", "probability", "calibrated_probability"))
        frame.to_csv(out_dir / name, index=False, compression=GZIP if name.endswith(".gz") else None)
    for name, blob in (extra_files or {}).items():
        (out_dir / name).write_bytes(blob)
    (out_dir / RESULTS_FILE).write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
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


def _check(source, key: str, value, constraints, fix: str = RESULTS_FIX) -> None:
    """``value`` of ``key`` against its constraints (the objects options and sidecars are checked with)."""
    _require(any(c.accepts(value) for c in constraints), source, key, describe(constraints), value, fix)


PRECISION_CHECK_KEYS = ("precision", "images", "min_cosine", "identical_predictions")


@dataclass(frozen=True)
class PrecisionCheck(Constraint):
    """A reduced-precision run's agreement with fp32 (encoding.precision): an object of its numbers."""

    def accepts(self, value) -> bool:
        return (isinstance(value, dict) and all(k in value for k in PRECISION_CHECK_KEYS)
                and all(is_number(value[k]) for k in PRECISION_CHECK_KEYS[1:]))

    def __str__(self) -> str:
        return f"null or an object with {', '.join(PRECISION_CHECK_KEYS)}"


@dataclass(frozen=True)
class FlagObject(Constraint):
    """One validity flag of a scenario (validity.py): an object whose "flag" is a string."""

    def accepts(self, value) -> bool:
        return isinstance(value, dict) and isinstance(value.get("flag"), str)

    def __str__(self) -> str:
        return "a {flag, reason} object"


_NUMBER = Interval(float)
_NAMES = ListOf((Text(non_empty=False),), what="a list of class names")
_OBJECT = AnyMapping()
# key -> its constraints; absent keys are fine (readers use defaults)
SCENARIO_SCHEMA = {
    "task": (Text(non_empty=False),),
    "labels": (_NAMES,),
    "n": (Interval(int),),
    "per_class": (AnyMapping((_OBJECT,), what="an object of per-class objects"),),
    "confusion": (ListOf((ListOf((_NUMBER,)),), what="a list of rows of numbers"),),
    "dropped_classes": (_NAMES,),
    "options": (_OBJECT,),
    "ci": (AnyMapping((IsNone(), ListOf((IsNone(), _NUMBER), length=2)), what="an object of [low, high] pairs"),),
    "folds": (_OBJECT,),
    "extra": (_OBJECT,),
    "flags": (ListOf((FlagObject(),), what="a list of {flag, reason} objects"),),
}
RUN_SCHEMA = {
    "seed": (IsNone(), Interval(int)),
    "versions": (_OBJECT,),
    "smoke_run": (Boolean(),),
    "precision_check": (IsNone(), PrecisionCheck()),
}


def check_scenario_entry(sid: str, entry, source, fix: str = RESULTS_FIX) -> None:
    """One ``scenarios`` entry: an object whose ``metrics`` maps names to numbers (null: undefined)."""
    key = f"scenarios.{sid}"
    _require(isinstance(entry, dict), source, key, "an object", entry, fix)
    _require("metrics" in entry, source, f"{key}.metrics", "present", None, fix)
    _require(isinstance(entry["metrics"], dict), source, f"{key}.metrics", "an object", entry["metrics"], fix)
    for metric, value in entry["metrics"].items():
        _require(value is None or is_number(value), source, f"{key}.metrics.{metric}", "a number or null", value, fix)
    for name, constraints in SCENARIO_SCHEMA.items():
        if name in entry:
            _check(source, f"{key}.{name}", entry[name], constraints, fix)


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
    for name, constraints in RUN_SCHEMA.items():
        if name in doc["run"]:
            _check(source, f"run.{name}", doc["run"][name], constraints)
    skipped = doc.get("skipped")
    _require(skipped is None or isinstance(skipped, dict) and all(isinstance(v, str) for v in skipped.values()),
             source, "skipped", "an object (id -> why it was skipped)", skipped, RESULTS_FIX)
    comparisons = doc.get("comparisons")
    _require(comparisons is None or isinstance(comparisons, list) and all(isinstance(c, dict) for c in comparisons),
             source, "comparisons", "a list of objects", comparisons, RESULTS_FIX)
    return doc


def read_results(results_dir: Path) -> dict:
    path = Path(results_dir)
    if path.is_dir():
        path = path / RESULTS_FILE
    try:
        doc = jsonio.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"no {RESULTS_FILE} at {path}; pass a directory written by 'dirti-bench run'") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON ({exc}); re-run 'dirti-bench run' to regenerate it") from None
    except OSError as exc:
        raise UserError(f"cannot read {path} ({exc.strerror}); check the path and its permissions") from None
    if not isinstance(doc, dict) or "scenarios" not in doc or "run" not in doc:
        raise UserError(f"{path} lacks 'run'/'scenarios'; it is not a dirti-bench results file")
    return check_results_doc(doc, path)
