"""The contracts every stage shares: scenarios and their typed options, the evaluation
context, the encoder interface and a scenario's result.

A scenario's options are a frozen dataclass per evaluator. Each default is
defined here once; an unknown or ill-typed option is a ``UserError`` naming
the scenario and the key, so a typo such as ``fold=5`` can never be ignored.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from .constraints import (
    AnyMapping,
    Constraint,
    Interval,
    IsNone,
    ListOf,
    StrOptions,
    Text,
    check_fields,
    param,
)
from .data.stimuli import DISGUST_RATING, StimulusSet
from .errors import ScenarioNotRunnable, UserError
from .labels import (
    DEFAULT_THRESHOLD,
    EMPTY_CLASS_POLICIES,
    TASKS,
    LabelSpace,
    build_label_space,
    check_threshold,
)

ALIGNMENT_TASK = "alignment"
ALL_TASKS = (*TASKS, ALIGNMENT_TASK)
SMALL_CLASS_POLICIES = ("reduce-folds", "drop")
# An alignment zero-shot score: the model's probability of the "high" prompt under its scoring rule,
# the 2-way softmax P(high) whatever the model (the study-era rule), or cos(high) - cos(low).
SCORE_RULES = ("probability", "softmax", "cosine-diff")
# How zero-shot logits become probabilities: "model" reads the model's own logit scale and bias and
# follows its training objective (softmax for contrastive CLIP, a per-class sigmoid for SigLIP);
# "study" is the replicated study's fixed 100 x cosine with a softmax.
SCORINGS = ("model", "study")
PROBABILITY_RULES = ("softmax", "sigmoid")
# How KNN settles a vote that several classes share: scikit-learn's rule (the lowest class id, the
# study's behaviour) or the tied class of the nearest neighbour.
TIE_BREAKS = ("lowest-id", "nearest")
# The disgust thresholds a threshold sweep visits: the rating scale's middle range in half steps
# around the study's 5.0, plus the data-driven rule the study motivated 5.0 with.
DEFAULT_SWEEP_THRESHOLDS = (3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0, 6.5, 7.0, "mean+1sd")
SELECTION_METRICS = ("accuracy", "f1_macro")
DEFAULT_SPLIT_SEED = 42
DEFAULT_FOLDS = 10
DEFAULT_LOGIT_SCALE = 100.0  # CLIP's learned temperature, fixed as the study did
DEFAULT_N_BOOT = 1000
# Raters per image behind DIRTI's means. The DIRTI paper's number was not verified here: 30 is an
# assumption, and every alignment result records it and where it came from.
DEFAULT_N_RATERS = 30
TUNED = "tuned"  # a probe's penalty chosen by cross-validation (LOGISTIC_C, RIDGE_ALPHA)


# ---------------------------------------------------------------- options

@dataclass(frozen=True)
class Threshold(Constraint):
    """A disgust threshold: a finite number (a numeric string too) or the rule ``mean+1sd``."""

    def accepts(self, value) -> bool:
        try:
            check_threshold(value)
        except UserError:
            return False
        return True

    def coerce(self, value):
        return check_threshold(value)

    def __str__(self) -> str:
        return "a finite number or 'mean+1sd'"

    def invalid_examples(self) -> list:
        return ["median", float("inf"), None, True]


THRESHOLD = (Threshold(),)
SEED = (Interval(int, 0, 2**32 - 1),)  # numpy's and scikit-learn's seeds
LOGIT_SCALE = (Interval(float, 0.0, closed="left"),)
FOLDS = (Interval(int, 2),)
PROMPT_SOURCE = (IsNone(), Text())  # a shipped ensemble name or a prompt file path
RATING = (Text(),)
COUNT = (Interval(int, 1),)
# A probe's penalty: TUNED (chosen by cross-validation inside each training fold, evaluators/penalty.py)
# or a fixed number, for comparison with a fixed-penalty probe.
LOGISTIC_C = (StrOptions((TUNED,)), Interval(float, 0.0, closed="right"))
RIDGE_ALPHA = (StrOptions((TUNED,)), Interval(float, 0.0))


@dataclass(frozen=True)
class Options:
    """Base of every evaluator's options: each field's constraints (``constraints.param``) are
    checked when an instance is made, however it is made (keywords, a mapping, ``with_options``)."""

    def __post_init__(self):
        check_fields(self)

    def to_dict(self) -> dict:
        """Options as results.json records them (unset optional values left out)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]


@dataclass(frozen=True)
class LabelSpaceOptions(Options):
    """How a classification scenario builds its label space (the threshold matters for disgust tasks)."""

    threshold: float | str = param(DEFAULT_THRESHOLD, *THRESHOLD)  # a number, or "mean+1sd" of the rating
    empty_class_policy: str = param("drop", StrOptions(EMPTY_CLASS_POLICIES))
    rating: str = param(DISGUST_RATING, *RATING)  # stands for a rated set's own disgust column


@dataclass(frozen=True)
class ZeroShotOptions(LabelSpaceOptions):
    scoring: str = param("model", StrOptions(SCORINGS))
    logit_scale: float | None = param(None, IsNone(), *LOGIT_SCALE)  # None: the scoring rule's own
    ensemble: str | None = param(None, *PROMPT_SOURCE)
    template: str | None = param(None, *PROMPT_SOURCE)  # one template with {c}


@dataclass(frozen=True)
class ThresholdSweepOptions(ZeroShotOptions):
    """Zero-shot at each threshold of ``thresholds``; ``threshold`` is the reference point (the headline)."""

    thresholds: tuple[float | str, ...] = param(DEFAULT_SWEEP_THRESHOLDS,
                                                ListOf(THRESHOLD, min_len=1, unique=True))


@dataclass(frozen=True)
class TemplateSweepOptions(LabelSpaceOptions):
    """Each template of ``ensemble`` alone, and the template chosen by cross-validation (the headline)."""

    ensemble: str = param("clip80", Text())  # a shipped ensemble name or a prompt file path with a template list
    scoring: str = param("model", StrOptions(SCORINGS))
    logit_scale: float | None = param(None, IsNone(), *LOGIT_SCALE)  # None: the scoring rule's own
    folds: int = param(DEFAULT_FOLDS, *FOLDS)
    split_seed: int = param(DEFAULT_SPLIT_SEED, *SEED)
    select_by: str = param("accuracy", StrOptions(SELECTION_METRICS))


@dataclass(frozen=True)
class SupervisedOptions(LabelSpaceOptions):
    split_seed: int = param(DEFAULT_SPLIT_SEED, *SEED)
    small_class_policy: str = param("reduce-folds", StrOptions(SMALL_CLASS_POLICIES))


@dataclass(frozen=True)
class KnnSplitOptions(SupervisedOptions):
    k: int = param(6, *COUNT)
    test_size: float = param(0.3, Interval(float, 0.0, 1.0, closed="neither"))
    tie_break: str = param("lowest-id", StrOptions(TIE_BREAKS))


@dataclass(frozen=True)
class KnnCvOptions(SupervisedOptions):
    k: int = param(6, *COUNT)
    folds: int = param(DEFAULT_FOLDS, *FOLDS)
    tie_break: str = param("lowest-id", StrOptions(TIE_BREAKS))


@dataclass(frozen=True)
class ProbeCvOptions(SupervisedOptions):
    folds: int = param(DEFAULT_FOLDS, *FOLDS)
    C: float | str = param(TUNED, *LOGISTIC_C)  # inverse L2 penalty (TUNED: inner CV on each training fold)


@dataclass(frozen=True)
class AlignmentOptions(Options):
    rating: str = param(DISGUST_RATING, *RATING)
    n_boot: int = param(DEFAULT_N_BOOT, *COUNT)
    n_raters: int = param(DEFAULT_N_RATERS, Interval(int, 2))  # the split-half noise ceiling needs two
    # where n_raters came from (an option, the CLI's flag); None: the default
    n_raters_source: str | None = param(None, IsNone(), Text())
    sd_column: str | None = param(None, IsNone(), Text())  # per-image SD of the rating; None: guessed from DIRTI's naming
    ceiling_sims: int = param(1000, *COUNT)


@dataclass(frozen=True)
class AlignZeroShotOptions(AlignmentOptions):
    # a name from prompts.PROMPT_PAIRS or {"high": [...], "low": [...]}
    prompt_pair: str | Mapping = param("study", Text(), AnyMapping(what="a mapping {'high': [...], 'low': [...]}"))
    score: str = param("probability", StrOptions(SCORE_RULES))
    scoring: str = param("model", StrOptions(SCORINGS))
    logit_scale: float | None = param(None, IsNone(), *LOGIT_SCALE)  # None: the scoring rule's own
    n_perm: int = param(1000, *COUNT)


@dataclass(frozen=True)
class AlignProbeOptions(AlignmentOptions):
    folds: int = param(DEFAULT_FOLDS, *FOLDS)
    repeats: int = param(3, *COUNT)
    split_seed: int = param(DEFAULT_SPLIT_SEED, *SEED)
    alpha: float | str = param(TUNED, *RIDGE_ALPHA)  # ridge penalty (TUNED: leave-one-out on each training fold)


def parse_options(cls: type[Options], scenario_id: str, raw: Mapping) -> Options:
    """``raw`` (a mapping from a file or the CLI) as ``cls``: every key known, every value checked
    against its field's constraints (by the constructor, as any other way of making options)."""
    names = cls.keys()
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise UserError(f"scenario {scenario_id}: unknown option {unknown[0]!r}; {cls.__name__} takes {', '.join(names)}",
                        unknown[0])
    try:
        return cls(**raw)
    except UserError as exc:
        raise UserError(f"scenario {scenario_id}: {exc}", exc.option) from None


LAYER_MODES = ("token", "srp")  # encoding/layers.py: a pooled token per layer, or the whole map by SRP


@dataclass(frozen=True)
class AlignLayersOptions(AlignmentOptions):
    """A ridge probe on every layer of the image tower, the layer chosen inside each training fold
    (evaluators/layerwise.py); ``mode``: how each layer becomes one vector per image."""

    mode: str = param("token", StrOptions(LAYER_MODES))
    srp_seed: int = param(0, *SEED)
    folds: int = param(DEFAULT_FOLDS, *FOLDS)
    split_seed: int = param(DEFAULT_SPLIT_SEED, *SEED)


@dataclass(frozen=True)
class ProbeLayersOptions(ProbeCvOptions):
    """The logistic probe on every layer of the image tower, the layer chosen inside each training fold
    by inner stratified CV accuracy (evaluators/layer_eval.py). C is fixed by default: a C tuned per
    layer inside each inner fold multiplies the fits by the grid (pass C: tuned for it)."""

    C: float | str = param(1.0, *LOGISTIC_C)
    mode: str = param("token", StrOptions(LAYER_MODES))
    srp_seed: int = param(0, *SEED)


@dataclass(frozen=True)
class KnnLayersOptions(KnnCvOptions):
    """knn-cv's KNN on every layer of the image tower, the layer chosen inside each training fold by
    inner stratified CV accuracy (evaluators/layer_eval.py)."""

    mode: str = param("token", StrOptions(LAYER_MODES))
    srp_seed: int = param(0, *SEED)


@dataclass(frozen=True)
class PixelBaselineOptions(AlignmentOptions):
    """Low-level image statistics (no model) in the same ridge probe: does the model beat pixels?"""

    folds: int = param(DEFAULT_FOLDS, *FOLDS)
    split_seed: int = param(DEFAULT_SPLIT_SEED, *SEED)


@dataclass(frozen=True)
class RandomInitOptions(AlignLayersOptions):
    """The same architecture with seeded random weights, one run of the layer probe per seed."""

    seeds: tuple[int, ...] = param((1, 2, 3), ListOf(SEED, min_len=1, unique=True))


@dataclass(frozen=True)
class ProbePixelsOptions(ProbeCvOptions):
    """The logistic probe on low-level image statistics (no model), on the folds of the probe per layer,
    the model's final embedding in the same probe beside it: does the model beat pixels at the classes?"""

    C: float | str = param(1.0, *LOGISTIC_C)


@dataclass(frozen=True)
class ProbeRandomInitOptions(ProbeLayersOptions):
    """The same architecture with seeded random weights, the logistic probe per layer (layer chosen
    inside each training fold) once per seed."""

    seeds: tuple[int, ...] = param((1, 2, 3), ListOf(SEED, min_len=1, unique=True))


# ---------------------------------------------------------------- evaluators

@dataclass(frozen=True)
class EvaluatorSpec:
    """One evaluator, all a scenario needs of it: its name (``Scenario.evaluator``), its options
    class, the function that runs a scenario, the check that raises ScenarioNotRunnable where the
    data cannot support one (it reads only the stimuli, so a run makes it before encoding), and what
    a scenario of it measures, worded from its options (``dirti-bench scenarios``).

    ``features_only``: its scenarios read nothing of the context but the stimuli, their final image
    features and the seed (no encoder, no layer features), so a large run may evaluate them in worker
    processes beside the main one (``evaluators.workers``); ``evaluate`` must then be importable by
    name (a module-level function)."""

    name: str
    options: type[Options]
    evaluate: Callable[[Scenario, EvalContext], ScenarioResult]
    check_runnable: Callable[[Scenario, EvalContext], object]
    describe: Callable[[Scenario], str]
    # The texts it will encode, as its ``encode_texts`` calls in order, from the stimuli alone (no
    # feature, no model): image shards encode them ahead. None: not known ahead (the evaluation encodes them).
    texts: Callable[[Scenario, EvalContext], list[list[str]]] | None = None
    features_only: bool = False


# name -> spec; filled by register_evaluator (the built-in evaluators: BUILTIN_EVALUATORS)
EVALUATORS: dict[str, EvaluatorSpec] = {}
# The module that registers the built-in evaluators. It sits above this one (evaluators need the
# contracts), so it is loaded on first lookup, as a plugin would be, not imported here.
BUILTIN_EVALUATORS = "dirti_bench.evaluators.registry"


def register_evaluator(spec: EvaluatorSpec) -> EvaluatorSpec:
    """Add ``spec`` to the evaluators; a name taken already is an error, never a silent replacement."""
    taken = EVALUATORS.get(spec.name)
    if taken is not None:
        raise UserError(f"evaluator {spec.name!r} is registered already (by {taken.evaluate.__module__}); "
                        "give the new evaluator another name")
    EVALUATORS[spec.name] = spec
    return spec


def evaluators() -> dict[str, EvaluatorSpec]:
    """Every registered evaluator (the built-in ones loaded on first use)."""
    if BUILTIN_EVALUATORS not in sys.modules:
        importlib.import_module(BUILTIN_EVALUATORS)
    return EVALUATORS


def evaluator_spec(name: str, scenario_id: str | None = None) -> EvaluatorSpec:
    specs = evaluators()
    if name not in specs:
        where = f"scenario {scenario_id}: " if scenario_id else ""
        raise UserError(f"{where}unknown evaluator {name!r}; choose one of {', '.join(specs)}")
    return specs[name]


# ---------------------------------------------------------------- scenarios

@dataclass(frozen=True)
class Scenario:
    """One evaluation as data: id, task, evaluator and its validated options."""

    id: str
    task: str
    evaluator: str
    options: Any = None  # an Options instance; a mapping is validated into one
    description: str = ""  # a note beside what ``summary`` words from the options (e.g. the prompt file)

    def __post_init__(self):
        spec = evaluator_spec(self.evaluator, self.id)
        if self.task not in ALL_TASKS:
            raise UserError(f"scenario {self.id}: unknown task {self.task!r}; choose one of {', '.join(ALL_TASKS)}")
        cls = spec.options
        opts = self.options
        if opts is None:
            opts = cls()
        elif isinstance(opts, Mapping):
            opts = parse_options(cls, self.id, opts)
        elif type(opts) is not cls:
            raise UserError(f"scenario {self.id}: options must be {cls.__name__}, not {type(opts).__name__}")
        object.__setattr__(self, "options", opts)

    @property
    def is_classification(self) -> bool:
        return self.task in TASKS

    @property
    def summary(self) -> str:
        """What the scenario measures, worded from its evaluator and options (then its own note)."""
        what = evaluator_spec(self.evaluator).describe(self)
        return f"{what}; {self.description}" if self.description else what

    def with_options(self, **changes) -> Scenario:
        """A copy with ``changes`` applied to the options (validated like any option)."""
        return dataclasses.replace(self, options={**dataclasses.asdict(self.options), **changes})


# ---------------------------------------------------------------- encoders

@runtime_checkable
class Encoder(Protocol):
    """What evaluators and the pipeline need from a model (``encoding.models.ClipEncoder``, the
    embedding cache's wrapper, and the known-answer test double all provide it)."""

    forward_calls: int

    def identity(self) -> dict:
        """What determines its embeddings (the cache key)."""

    def encode_images(self, paths: Sequence[Path]) -> np.ndarray:
        """(n, d) L2-normalised float32."""

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(m, d) L2-normalised float32."""

    def run_info(self) -> dict:
        """model, pretrained, weights_sha256, device, ..."""

    # Optional (not a protocol member, so older encoders still satisfy the protocol):
    #   scoring() -> {"logit_scale": float, "logit_bias": float | None, "rule": "softmax" | "sigmoid"}
    # the model's own zero-shot scoring (read by ``encoder_scoring``).


@dataclass(frozen=True)
class ModelScoring:
    """How zero-shot logits (``scale * cos + bias``) become probabilities, and where that came from."""

    scoring: str  # "model" | "study"
    logit_scale: float
    logit_bias: float | None
    rule: str  # "softmax" | "sigmoid"
    source: str

    def to_dict(self) -> dict:
        return {"scoring": self.scoring, "logit_scale": self.logit_scale, "logit_bias": self.logit_bias,
                "probability_rule": self.rule, "scoring_source": self.source}


def encoder_scoring(encoder) -> ModelScoring:
    """The encoder's own scoring; an encoder that does not report one is scored as the study was,
    and the record says so."""
    report = getattr(encoder, "scoring", None)
    info = report() if callable(report) else None
    if not info:
        return ModelScoring("model", DEFAULT_LOGIT_SCALE, None, "softmax",
                            "the encoder reports no scale: the study's fixed 100 with a softmax")
    rule = info.get("rule", "softmax")
    if rule not in PROBABILITY_RULES:
        raise ValueError(f"encoder scoring rule {rule!r} is not one of {PROBABILITY_RULES}")
    bias = info.get("logit_bias")
    return ModelScoring("model", float(info["logit_scale"]), None if bias is None else float(bias), rule,
                        info.get("source", "read from the model"))


def resolve_scoring(options, encoder) -> ModelScoring:
    """A zero-shot scenario's scoring: its ``scoring`` option, with a fixed ``logit_scale`` option
    replacing the rule's own scale."""
    if options.scoring == "study":
        scoring = ModelScoring("study", DEFAULT_LOGIT_SCALE, None, "softmax",
                               "the study's fixed 100 x cosine with a softmax (scoring=study)")
    else:
        scoring = encoder_scoring(encoder)
    if options.logit_scale is not None:
        scoring = dataclasses.replace(scoring, logit_scale=float(options.logit_scale),
                                      source=f"{scoring.source}; scale fixed by option logit_scale")
    return scoring


@dataclass
class EvalContext:
    """What evaluators read: the stimuli, their image features, the (cached) encoder."""

    stimuli: StimulusSet
    encoder: Encoder
    image_features: np.ndarray
    seed: int = 0
    _spaces: dict = field(default_factory=dict)
    layers: dict = field(default_factory=dict)  # (weights, layer mode) -> encoding.layers.LayerFeatures

    @cached_property
    def _row(self) -> dict[str, int]:
        return {s.id: i for i, s in enumerate(self.stimuli.stimuli)}

    def rating_column(self, scenario: Scenario) -> str:
        """The scenario's rating; DIRTI's disgust column stands for a rated set's own disgust column."""
        return self.stimuli.resolve_rating(scenario.options.rating)

    def rated_column(self, scenario: Scenario) -> str:
        """The scenario's rating column, or ScenarioNotRunnable where the set has none."""
        stimuli, column = self.stimuli, self.rating_column(scenario)
        if column in stimuli.rating_columns:
            return column
        if scenario.options.rating == DISGUST_RATING:
            raise ScenarioNotRunnable(f"{stimuli.name} has no disgust rating (no {DISGUST_RATING!r} column, no "
                                      "'disgust_column' in its dirti-bench.json)")
        raise ScenarioNotRunnable(f"{stimuli.name} has no rating column {column!r}")

    def label_space(self, scenario: Scenario) -> LabelSpace:
        """The scenario's label space before any evaluator drops classes (built once per rule)."""
        opts = scenario.options
        if scenario.task != "category":
            self.rated_column(scenario)
        key = (scenario.task, opts.threshold, opts.empty_class_policy,
               None if scenario.task == "category" else self.rating_column(scenario))
        if key not in self._spaces:
            self._spaces[key] = build_label_space(self.stimuli, key[0], threshold=key[1], empty=key[2], rating=key[3])
        return self._spaces[key]

    def features_for(self, space: LabelSpace) -> np.ndarray:
        return self.image_features[[self._row[sid] for sid in space.stimulus_ids]]


# ---------------------------------------------------------------- results

@dataclass
class ScenarioResult:
    id: str
    task: str
    labels: list[str]
    n: int
    metrics: dict[str, float]
    per_class: dict[str, dict] = field(default_factory=dict)
    confusion: list[list[int]] = field(default_factory=list)
    dropped_classes: list[str] = field(default_factory=list)
    options: dict = field(default_factory=dict)
    ci: dict[str, list[float]] = field(default_factory=dict)
    folds: dict | None = None
    extra: dict = field(default_factory=dict)
    predictions: pd.DataFrame | None = None
    # The classes the prompts were written for (zero-shot): checked against the labels, not written.
    prompt_classes: tuple[str, ...] | None = None
    # Every prompt the scenario encoded, as (class, prompt) rows of prompts.csv ("high"/"low" for alignment).
    prompts: tuple[tuple[str, str], ...] | None = None
    # A sweep's points (results.json "sweep"; sweeps.csv) and their predictions (sweep_predictions.csv.gz).
    sweep: list[dict] | None = None
    sweep_predictions: pd.DataFrame | None = None
    # Zero-shot: every class's logit and probability per stimulus (probabilities.csv.gz).
    probabilities: pd.DataFrame | None = None
    # A layer-wise probe's per-layer predictions (layer_predictions.csv) and profile (layer_scores.csv).
    layer_predictions: pd.DataFrame | None = None
    layer_scores: pd.DataFrame | None = None
    # A classifier-per-layer scenario's (or its control's) predictions and profile
    # (layer_class_predictions.csv, layer_class_scores.csv).
    layer_class_predictions: pd.DataFrame | None = None
    layer_class_scores: pd.DataFrame | None = None

    @property
    def is_classification(self) -> bool:
        return self.task in TASKS

    def to_json(self) -> dict:
        out = {
            "task": self.task, "labels": list(self.labels), "n": int(self.n),
            "metrics": self.metrics, "per_class": self.per_class, "confusion": self.confusion,
            "dropped_classes": list(self.dropped_classes), "options": self.options, "ci": self.ci,
        }
        if self.folds is not None:
            out["folds"] = self.folds
        if self.extra:
            out["extra"] = self.extra
        if self.sweep is not None:
            out["sweep"] = self.sweep
        return out
