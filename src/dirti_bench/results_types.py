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
from .validity import (
    NOT_COMPARABLE,
    chance_level,
    cohen_kappa,
    flag_codes,
    flag_text,
    flags_of,
    suppressed,
    value_with_ci,
    zero_width_reason,
)
from .validity import comparability as validity_comparability

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
    n_stimuli: int | None = None
    device_name: str | None = None  # the accelerator's or CPU's name
    weights_kind: str | None = None  # "file" for a checkpoint file, else an open_clip tag or hub id
    disgust_column: str | None = None  # a rated set's own disgust rating column (None: DIRTI's)
    rating_scale: list | None = None  # [low, high] of the set's rating scale
    projection: str | None = None  # the report's 2-D view the run asked for (umap / pca)
    precision: str | None = None  # fp32, bf16 or int8
    precision_check: dict | None = field(default=None, repr=False)  # a reduced precision's agreement with fp32
    throughput: dict | float | None = field(default=None, repr=False)  # encoding speed as measured
    prompt_files: list = field(default_factory=list, repr=False)  # each --templates file: what it made and skipped

    @classmethod
    def of(cls, run: RunInfo | Mapping) -> RunInfo:
        """``run`` as given, or typed from a run block held in memory."""
        return run if isinstance(run, RunInfo) else cls.from_json(run)

    @property
    def model_source(self) -> str:
        """A model sweep's run: the models file and line it came from (``FILE:LINE``; empty otherwise)."""
        sweep = self.details.get("sweep")
        return str(sweep.get("model_source", "")) if isinstance(sweep, Mapping) else ""

    @classmethod
    def from_json(cls, run: Mapping) -> RunInfo:
        names = [f.name for f in dataclasses.fields(cls)
                 if f.name not in ("details", "smoke_run", "versions", "prompt_files")]
        return cls(**{n: run.get(n) for n in names}, smoke_run=bool(run.get("smoke_run")),
                   versions=dict(run.get("versions") or {}), details=dict(run),
                   prompt_files=list(run.get("prompt_files") or []))


def _mapping(value) -> dict:
    """``value`` as a dict; anything else (absent, null, a wrong type in an edited file) as empty."""
    return dict(value) if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class ClassScores:
    """One class of a classification scenario: precision, recall, F1 and support as recorded (None
    where absent)."""

    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    support: int | None = None

    @property
    def empty(self) -> bool:
        """Zero stimuli of this class were evaluated (absent support is not zero)."""
        return self.support == 0

    @classmethod
    def from_json(cls, row: Mapping) -> ClassScores:
        return cls(*(row.get(name) for name in ("precision", "recall", "f1", "support")))


@dataclass(frozen=True)
class Penalty:
    """How a probe's penalty (ridge ``alpha``, logistic ``C``) was set: ``mode`` ``tuned`` (chosen in
    each training fold by ``method``; ``median``/``min``/``max`` over ``n_folds`` folds, ``n_strongest``
    of them at the strongest end of the grid) or ``fixed`` at ``value``."""

    name: str = "penalty"
    mode: str | None = None
    value: float | None = None
    method: str | None = None
    median: float | None = None
    min: float | None = None
    max: float | None = None
    n_folds: int | None = None
    n_strongest: int | None = None
    note: str | None = None

    @classmethod
    def from_json(cls, record: Mapping) -> Penalty:
        names = [f.name for f in dataclasses.fields(cls) if f.name != "name"]
        return cls(name=record.get("name", "penalty"), **{n: record.get(n) for n in names})


@dataclass(frozen=True)
class Calibration:
    """A zero-shot scenario's calibration record: the reliability tables (raw and temperature-scaled out
    of fold: lists of {mean_confidence, accuracy, ...} bins), the fitted temperature's median over its
    folds, and how the bins were drawn."""

    reliability: list
    reliability_calibrated: list
    temperature_median: float | None
    temperature_folds: int | None
    ece_bins: int | None
    binning: str | None

    @classmethod
    def from_json(cls, record: Mapping) -> Calibration:
        temperature = _mapping(record.get("temperature"))
        return cls(record.get("reliability", []), record.get("reliability_calibrated", []),
                   temperature.get("median"), temperature.get("folds"), record.get("ece_bins"), record.get("binning"))


@dataclass(frozen=True)
class Scoring:
    """How a zero-shot scenario turned cosines into probabilities: whose rule (``model`` or ``study``),
    logit scale and bias, softmax or sigmoid."""

    scoring: str | None
    logit_scale: float | None
    logit_bias: float | None
    probability_rule: str | None


@dataclass(frozen=True)
class SweepPoint:
    """One point of a threshold or template sweep: its name (``point``), ``kind`` (template sweeps:
    study / ensemble / template), the threshold and rule (threshold sweeps), its label space, metrics and
    95% intervals, ranks (template sweeps) and its McNemar test against the study wording
    (``vs_study``: p_value, p_holm, q_bh)."""

    point: str
    kind: str | None
    threshold: float | str | None
    rule: str | None
    n_classes: int | None
    dropped_classes: tuple[str, ...]
    class_counts: dict
    metrics: dict
    ci: dict
    rank: dict
    vs_study: dict

    def interval(self, name: str):
        """The metric's recorded [low, high] (as written); None where none was drawn."""
        return self.ci.get(name)

    @classmethod
    def from_json(cls, point: Mapping) -> SweepPoint:
        return cls(point.get("point"), point.get("kind"), point.get("threshold"), point.get("rule"),
                   point.get("n_classes"), tuple(point.get("dropped_classes") or ()),
                   _mapping(point.get("class_counts")), _mapping(point.get("metrics")), _mapping(point.get("ci")),
                   _mapping(point.get("rank")), _mapping(point.get("vs_study")))


@dataclass(frozen=True)
class TemplateChoice:
    """A template sweep's summary: each metric's spread over the templates (``distribution``: median,
    q1, q3, min, max), the study wording's rank among ``n_ranked``, the template each CV fold chose
    (``selection``: [{template, ...}]) and the in-sample best (optimistic: scored on the images it was
    picked on)."""

    distribution: dict
    study_rank: dict
    n_ranked: int | None
    selection: list
    in_sample_best: dict


@dataclass(frozen=True)
class Comparison:
    """One paired comparison results.json records (``comparisons``): scenario ``a`` minus ``b`` on the
    same stimuli, the accuracy (and macro-F1) difference with its paired bootstrap CI, McNemar's exact
    p where run, and its family's Holm p and BH q; ``kind`` names a prompt set against the study
    wording; ``skipped`` says why a pair could not be compared."""

    a: str | None
    b: str | None
    kind: str | None = None
    task: str | None = None
    prompt_set: str | None = None
    n: int | None = None
    accuracy_difference: float | None = None
    ci: list | None = None
    f1_macro_difference: float | None = None
    f1_macro_ci: list | None = None
    mcnemar_p: float | None = None
    p_holm: float | None = None
    q_bh: float | None = None
    family: str | None = None
    family_size: int | None = None
    skipped: str | None = None

    @classmethod
    def from_json(cls, record: Mapping) -> Comparison:
        names = [f.name for f in dataclasses.fields(cls) if f.name != "mcnemar_p"]
        return cls(**{n: record.get(n) for n in names}, mcnemar_p=_mapping(record.get("mcnemar")).get("p_value"))


@dataclass(frozen=True)
class ScenarioOutcome:
    """One scenario's result: its numbers, their 95% intervals, its validity flags ({flag, reason};
    empty when none applies) and its predictions (its rows of predictions.csv.gz, or of
    alignment_predictions.csv for an alignment scenario).

    The validity rules (validity.py) read the entry as results.json holds it; the methods here
    (``chance_level``, ``suppressed``, ``value_with_ci``, ``zero_width_reason``, ``flag_text``; and
    ``comparability`` below) are their typed entry points, and the properties below (``per_class_scores``,
    ``penalty``, ``calibration``, ``sweep_points``, ...) type what the evaluators record in ``extra``."""

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
    recorded_n: int | None = field(default=None, repr=False)  # ``n`` as recorded (None: absent)

    @property
    def is_classification(self) -> bool:
        return self.task != "alignment"

    @property
    def flag_codes(self) -> tuple[str, ...]:
        """The validity flags' codes, in order (empty when none applies; an older file's computed)."""
        return tuple(f["flag"] for f in self.flags)

    def metric(self, name: str) -> float | None:
        """The metric's value; None where the scenario has no number for it."""
        return as_number(self.metrics.get(name))

    def interval(self, name: str) -> tuple[float | None, float | None] | None:
        """The metric's 95% interval (low, high); None where none was drawn."""
        return self.ci.get(name)

    # ------------------------------------------------ validity (the rules of validity.py)

    @property
    def chance_level(self) -> float | None:
        """The majority class share (None for alignment or without per-class support)."""
        return chance_level(self.entry)

    def suppressed(self, metric: str) -> bool:
        """Whether ``metric`` is no finding (an intercept-only probe's correlation)."""
        return suppressed(self.entry, metric)

    def zero_width_reason(self, metric: str) -> str | None:
        """Why the metric's interval has zero width; None where it has width or none is recorded."""
        return zero_width_reason(self.entry, metric)

    def value_with_ci(self, metric: str, digits: int = 3, ci_digits: int = 2, short: bool = False) -> str:
        """The metric as a person reads it (validity.value_with_ci): value [CI], "no signal" for an
        intercept-only probe's correlation, a zero-width interval marked."""
        return value_with_ci(self.entry, metric, digits=digits, ci_digits=ci_digits, short=short)

    def flag_text(self, short: bool = False) -> str:
        """``degenerate; below-chance`` (short) or each flag with its reason; empty when none."""
        return flag_text(self.entry, short=short)

    @property
    def kappa(self) -> float | None:
        """Cohen's κ from the confusion matrix (None without one)."""
        return cohen_kappa(self.confusion)

    # ------------------------------------------------ what the evaluators record

    @property
    def per_class_scores(self) -> dict[str, ClassScores]:
        """Class -> its precision, recall, F1 and support, in the recorded order."""
        return {c: ClassScores.from_json(v) for c, v in self.per_class.items() if isinstance(v, Mapping)}

    @property
    def empty_classes(self) -> list[str]:
        """Classes with zero support in the evaluated set."""
        return [c for c, v in self.per_class_scores.items() if v.empty]

    @property
    def display_order(self) -> list | None:
        """The label space's order for figures (confusion matrices), where recorded."""
        return self.extra.get("display_order")

    @property
    def penalty(self) -> Penalty | None:
        """How a probe's penalty was chosen; None for anything but a supervised probe."""
        record = self.extra.get("penalty")
        return Penalty.from_json(record) if isinstance(record, Mapping) and record else None

    @property
    def calibration(self) -> Calibration | None:
        """The zero-shot calibration record (ECE/Brier are metrics); None where none was made."""
        record = self.extra.get("calibration")
        return Calibration.from_json(record) if isinstance(record, dict) else None

    @property
    def scoring(self) -> Scoring | None:
        """The zero-shot scoring rule; None where the scenario scored no prompts."""
        opts = self.options
        if "probability_rule" not in opts:
            return None
        return Scoring(opts.get("scoring"), opts.get("logit_scale"), opts.get("logit_bias"), opts.get("probability_rule"))

    @property
    def within_category(self) -> dict[str, dict]:
        """Category -> its alignment metrics within that category (empty where none were computed)."""
        within = self.extra.get("within_category")
        if isinstance(within, dict) and all(isinstance(v, dict) for v in within.values()):
            return dict(within)
        return {}

    @property
    def noise_ceiling_note(self) -> str | None:
        """Why no noise ceiling was estimated, where none was."""
        return self.extra.get("noise_ceiling") or None

    @property
    def sweep_kind(self) -> str | None:
        """``threshold`` or ``template`` for a sweep scenario, else None."""
        return self.extra.get("sweep")

    @property
    def is_sweep(self) -> bool:
        return isinstance(self.entry.get("sweep"), list)

    @property
    def sweep_points(self) -> tuple[SweepPoint, ...]:
        """A sweep's points in order (empty for any other scenario)."""
        points = self.entry.get("sweep")
        return tuple(SweepPoint.from_json(p) for p in points) if isinstance(points, list) else ()

    @property
    def template_choice(self) -> TemplateChoice:
        """A template sweep's summary (empty records for any other scenario)."""
        extra = self.extra
        return TemplateChoice(_mapping(extra.get("distribution")), _mapping(extra.get("study_rank")),
                              extra.get("n_ranked"), list(extra.get("selection") or []),
                              _mapping(extra.get("in_sample_best")))

    @classmethod
    def from_json(cls, sid: str, entry: Mapping, predictions: pd.DataFrame) -> ScenarioOutcome:
        n = entry.get("n")
        return cls(id=sid, task=entry.get("task", ""), labels=tuple(entry.get("labels") or ()),
                   n=int(n or 0), metrics=dict(entry.get("metrics") or {}),
                   ci={m: None if v is None else tuple(v) for m, v in (entry.get("ci") or {}).items()},
                   flags=tuple(flags_of(entry)), options=dict(entry.get("options") or {}),
                   per_class=dict(entry.get("per_class") or {}), confusion=list(entry.get("confusion") or []),
                   dropped_classes=tuple(entry.get("dropped_classes") or ()), extra=dict(entry.get("extra") or {}),
                   predictions=predictions, entry=dict(entry), recorded_n=n)


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

    @classmethod
    def of(cls, results: Results | Mapping) -> Results:
        """``results`` as given, or typed from a results.json document held in memory (a run being
        written, a test's document; no CSVs beside it)."""
        return results if isinstance(results, Results) else cls.from_document(results, {})

    @property
    def comparison_records(self) -> tuple[Comparison, ...]:
        """``comparisons`` typed, in the recorded order."""
        return tuple(Comparison.from_json(c) for c in self.comparisons if isinstance(c, Mapping))

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
        """predictions.csv.gz: scenario, stimulus, file_name, y_true, y_pred, confidence, fold."""
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


def comparability(run_a: RunInfo, a: ScenarioOutcome | None, run_b: RunInfo, b: ScenarioOutcome | None,
                  same_model: bool = False) -> list[str]:
    """Why two results of one scenario are not comparable (empty when they are): validity.comparability
    for typed results. ``same_model``: model or weights differences count too (a drift check)."""
    return validity_comparability(run_a.details, None if a is None else a.entry, run_b.details,
                                  None if b is None else b.entry, same_model=same_model)


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
        if other is not None and validity_comparability(reference.get("run") or {}, other, doc.get("run") or {}, sc):
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
    """What a report's run read back from a results folder offers beside its typed ``results``: its
    scenarios' outcomes, the written document and its run block (figure titles and the header read it)."""

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
    def scenarios(self) -> dict[str, ScenarioOutcome]:
        """Scenario id -> its typed outcome."""
        return self.results.scenarios
