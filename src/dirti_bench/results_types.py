"""Results read back typed: ``Results`` (a run's results.json with its contract CSVs), ``RunInfo``
(the run block) and ``ScenarioOutcome`` (one scenario's numbers, intervals, flags, options and
predictions); ``load_results`` reads a results folder into them. The report, the comparison and the
Python API read these, not the JSON document's dicts. ``leaderboard_frame`` is leaderboard.csv's
builder (one tidy row per run, scenario and metric), here because ``Results.metrics_frame`` is it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .results import (
    ALIGNMENT_PREDICTIONS_FILE,
    LAYER_CLASS_PREDICTIONS_FILE,
    LAYER_CLASS_SCORES_FILE,
    LAYER_PREDICTIONS_FILE,
    LAYER_RSA_FILE,
    LAYER_SCORES_FILE,
    PREDICTIONS_FILE,
    PROBABILITIES_FILE,
    PROMPTS_FILE,
    SWEEP_PREDICTIONS_FILE,
    SWEEPS_FILE,
    read_contract_frames,
    read_results,
)
from .validity import NOT_COMPARABLE, comparability, flag_codes, suppressed

LEADERBOARD_COLUMNS = ["model", "pretrained", "weights_sha256", "scenario", "task", "metric", "value",
                       "ci_low", "ci_high", "flag"]


@dataclass(frozen=True)
class RunInfo:
    """results.json's run block: what the numbers came from (``details`` holds every key)."""

    model: str | None
    pretrained: str | None
    weights_sha256: str | None
    device: str | None
    dataset: str | None
    dataset_sha256: str | None
    seed: int | None
    smoke_run: bool
    created: str | None
    versions: dict
    details: dict = field(repr=False)

    @classmethod
    def from_json(cls, run: Mapping) -> RunInfo:
        names = [f.name for f in dataclasses.fields(cls) if f.name not in ("details", "smoke_run", "versions")]
        return cls(**{n: run.get(n) for n in names}, smoke_run=bool(run.get("smoke_run")),
                   versions=dict(run.get("versions") or {}), details=dict(run))


@dataclass(frozen=True)
class ScenarioOutcome:
    """One scenario's result: its numbers, their 95% intervals, its validity flags ({flag, reason};
    empty when none applies) and its predictions (its rows of predictions.csv, or of
    alignment_predictions.csv for an alignment scenario)."""

    id: str
    task: str
    labels: tuple[str, ...]
    n: int
    metrics: dict[str, float | None]
    ci: dict[str, tuple[float | None, float | None] | None]
    flags: tuple[dict, ...]
    options: dict
    per_class: dict = field(repr=False)
    confusion: list = field(repr=False)
    dropped_classes: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict, repr=False)
    predictions: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    entry: dict = field(default_factory=dict, repr=False)  # as results.json holds it (validity's checks read it)

    @property
    def is_classification(self) -> bool:
        return self.task != "alignment"

    @property
    def flag_codes(self) -> tuple[str, ...]:
        """The validity flags' codes, in order (empty when none applies; an older file's computed)."""
        return tuple(flag_codes(self.entry))

    def metric(self, name: str) -> float | None:
        """The metric's value; None where the scenario has no number for it."""
        return as_number(self.metrics.get(name))

    def interval(self, name: str) -> tuple[float | None, float | None] | None:
        """The metric's 95% interval (low, high); None where none was drawn."""
        return self.ci.get(name)

    @classmethod
    def from_json(cls, sid: str, entry: Mapping, predictions: pd.DataFrame) -> ScenarioOutcome:
        return cls(id=sid, task=entry.get("task", ""), labels=tuple(entry.get("labels") or ()),
                   n=int(entry.get("n") or 0), metrics=dict(entry["metrics"]),
                   ci={m: None if v is None else tuple(v) for m, v in (entry.get("ci") or {}).items()},
                   flags=tuple(entry.get("flags") or ()), options=dict(entry.get("options") or {}),
                   per_class=dict(entry.get("per_class") or {}), confusion=list(entry.get("confusion") or []),
                   dropped_classes=tuple(entry.get("dropped_classes") or ()), extra=dict(entry.get("extra") or {}),
                   predictions=predictions, entry=dict(entry))


@dataclass(frozen=True)
class Results:
    """A run's results, typed: ``run`` (RunInfo), ``scenarios`` (id -> ScenarioOutcome), ``skipped``
    (id -> why the data could not support it) and ``comparisons``. The ``*_frame()`` methods return
    the tidy frames of the output contract's CSV files (the same builders write them); ``document``
    is the results.json document."""

    run: RunInfo
    scenarios: dict[str, ScenarioOutcome]
    skipped: dict[str, str]
    comparisons: list[dict]
    document: dict = field(repr=False)
    frames: dict[str, pd.DataFrame] = field(repr=False)
    path: Path | None = field(default=None, repr=False)  # the results folder read (None: evaluated in memory)

    @classmethod
    def from_document(cls, doc: Mapping, frames: Mapping[str, pd.DataFrame], path: Path | None = None) -> Results:
        by_file = {sid: PREDICTIONS_FILE if entry.get("task") != "alignment" else ALIGNMENT_PREDICTIONS_FILE
                   for sid, entry in doc["scenarios"].items()}
        scenarios = {}
        for sid, entry in doc["scenarios"].items():
            table = frames.get(by_file[sid], pd.DataFrame())
            rows = table[table["scenario"] == sid].reset_index(drop=True) if "scenario" in table else table
            scenarios[sid] = ScenarioOutcome.from_json(sid, entry, rows)
        return cls(run=RunInfo.from_json(doc.get("run", {})), scenarios=scenarios,
                   skipped=dict(doc.get("skipped") or {}), comparisons=list(doc.get("comparisons") or []),
                   document=dict(doc), frames=dict(frames), path=path)

    def __getitem__(self, scenario_id: str) -> ScenarioOutcome:
        if scenario_id not in self.scenarios:
            raise KeyError(f"no scenario {scenario_id!r} in these results; they hold {', '.join(self.scenarios)}")
        return self.scenarios[scenario_id]

    def __iter__(self) -> Iterator[ScenarioOutcome]:
        return iter(self.scenarios.values())

    def __len__(self) -> int:
        return len(self.scenarios)

    def metrics_frame(self) -> pd.DataFrame:
        """One row per scenario and metric, with its CI and flag: leaderboard.csv's shape."""
        return leaderboard_frame([self.document])

    def _frame(self, name: str) -> pd.DataFrame:
        return self.frames.get(name, pd.DataFrame()).copy()

    def predictions_frame(self) -> pd.DataFrame:
        """predictions.csv: scenario, stimulus, file_name, y_true, y_pred, confidence, fold."""
        return self._frame(PREDICTIONS_FILE)

    def alignment_frame(self) -> pd.DataFrame:
        """alignment_predictions.csv: scenario, stimulus, category, rating, score, repeat, fold."""
        return self._frame(ALIGNMENT_PREDICTIONS_FILE)

    def prompts_frame(self) -> pd.DataFrame:
        """prompts.csv: scenario, class, prompt (every prompt a scenario encoded)."""
        return self._frame(PROMPTS_FILE)

    def sweeps_frame(self) -> pd.DataFrame:
        """sweeps.csv: scenario, point, metric, value, ci_low, ci_high."""
        return self._frame(SWEEPS_FILE)

    def sweep_predictions_frame(self) -> pd.DataFrame:
        """sweep_predictions.csv: scenario, point, stimulus, y_true, y_pred, fold."""
        return self._frame(SWEEP_PREDICTIONS_FILE)

    def probabilities_frame(self) -> pd.DataFrame:
        """probabilities.csv.gz: each zero-shot class's logit and probability per stimulus."""
        return self._frame(PROBABILITIES_FILE)

    def layer_scores_frame(self) -> pd.DataFrame:
        """layer_scores.csv (a run with ``layers="all"`` or ``controls``): one row per layer-wise
        scenario, weights and layer: depth, out-of-fold Pearson r with its bootstrap CI, the published
        all-data leave-one-out r; empty without layer-wise scenarios."""
        return self._frame(LAYER_SCORES_FILE)

    def layer_predictions_frame(self) -> pd.DataFrame:
        """layer_predictions.csv: scenario, weights, layer, depth, kind (cv / loo-all-data), stimulus,
        fold, rating, prediction; every layer score recomputes from it."""
        return self._frame(LAYER_PREDICTIONS_FILE)

    def layer_class_scores_frame(self) -> pd.DataFrame:
        """layer_class_scores.csv: one row per classifier-per-layer scenario (or control), weights and
        layer: depth, out-of-fold accuracy, balanced accuracy and macro F1 with their stratified bootstrap
        CIs, how many outer folds chose the layer; empty without such scenarios."""
        return self._frame(LAYER_CLASS_SCORES_FILE)

    def layer_class_predictions_frame(self) -> pd.DataFrame:
        """layer_class_predictions.csv: scenario, weights, kind (layer / nested / final), layer, depth,
        stimulus, fold, y_true, y_pred, confidence; every per-layer score recomputes from it."""
        return self._frame(LAYER_CLASS_PREDICTIONS_FILE)

    def layer_rsa_frame(self) -> pd.DataFrame:
        """layer_rsa.csv: each layer's RDM vs the human rating-profile RDM (Spearman, permutation p,
        bootstrap CI); empty when no layer features were read."""
        return self._frame(LAYER_RSA_FILE)


def load_results(path: str | Path) -> Results:
    """A results folder (or its results.json) that ``run`` or ``dirti-bench run`` wrote, typed;
    a file that is not one is a UserError naming it."""
    path = Path(path)
    folder = path.parent if path.is_file() else path
    doc = read_results(path)
    return Results.from_document(doc, read_contract_frames(folder), path=folder)


# ---------------------------------------------------------------- leaderboard.csv

def as_number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _flags(doc: dict, sid: str, sc: dict, reference: dict | None) -> str:
    codes = flag_codes(sc)
    if reference is not None and reference is not doc:
        other = (reference.get("scenarios") or {}).get(sid)
        if other is not None and comparability(reference.get("run") or {}, other, doc.get("run") or {}, sc):
            codes.append(NOT_COMPARABLE)
    return ";".join(codes)


def leaderboard_frame(docs: list[dict], reference: dict | None = None) -> pd.DataFrame:
    """One row per (run, scenario, numeric metric) of ``docs`` (results.json documents); ``reference``:
    the document the others are compared with (default: the first)."""
    rows = []
    reference = reference if reference is not None else (docs[0] if docs else None)
    for doc in docs:
        run = doc.get("run", {})
        for sid, sc in doc.get("scenarios", {}).items():
            cis = sc.get("ci") or {}
            flag = _flags(doc, sid, sc, reference)
            for metric, raw in (sc.get("metrics") or {}).items():
                value = as_number(raw) if raw is not None else math.nan
                if value is None:
                    continue
                ci = [None, None] if suppressed(sc, metric) else cis.get(metric) or [None, None]
                low, high = (as_number(v) for v in ci) if len(ci) == 2 else (None, None)
                rows.append({"model": run.get("model"), "pretrained": run.get("pretrained"),
                             "weights_sha256": run.get("weights_sha256") or "", "scenario": sid,
                             "task": sc.get("task"), "metric": metric, "value": value,
                             "ci_low": math.nan if low is None else low, "ci_high": math.nan if high is None else high,
                             "flag": flag})
    frame = pd.DataFrame(rows, columns=LEADERBOARD_COLUMNS)
    return frame.astype({"value": float, "ci_low": float, "ci_high": float, "flag": str})


class ReadBack:
    """What a report's run read back from a results folder offers beside its typed ``results``: the
    written document, its run block and each scenario's entry, for the checks that read them whole
    (validity, findings, the scoring summary, figure titles)."""

    results: Results

    @property
    def info(self) -> RunInfo:
        return self.results.run

    @property
    def doc(self) -> dict:
        """results.json as written."""
        return self.results.document

    @property
    def run(self) -> dict:
        """The run block as written."""
        return self.results.run.details

    @property
    def scenarios(self) -> dict[str, dict]:
        """Scenario id -> its results.json entry (what validity's checks read)."""
        return {sid: outcome.entry for sid, outcome in self.results.scenarios.items()}
