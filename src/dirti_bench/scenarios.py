"""The scenario registry: every evaluation is data (id, task, evaluator, options).

pytest uses the ids as test ids (``pytest benchmarks -k disgust``) and
``dirti-bench run --scenarios`` selects from the same registry.
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType

import numpy as np

from .errors import UserError
from .labels import DEFAULT_THRESHOLD, LabelSpace, build_label_space
from .prompts import NAMED_ENSEMBLES, load_ensemble

# evaluator name -> "module:function"; each module is one evaluation task.
EVALUATORS = {
    "zeroshot": "dirti_bench.evaluators.zeroshot:evaluate",
    "knn-split": "dirti_bench.evaluators.knn:evaluate_split",
    "knn-cv": "dirti_bench.evaluators.knn:evaluate_cv",
    "linear-probe-cv": "dirti_bench.evaluators.probe:evaluate_cv",
    "align-zeroshot": "dirti_bench.evaluators.alignment:evaluate_zeroshot",
    "align-probe": "dirti_bench.evaluators.alignment:evaluate_probe",
}


@dataclass(frozen=True)
class Scenario:
    id: str
    task: str
    evaluator: str
    options: Mapping = field(default_factory=dict)
    description: str = ""

    def __post_init__(self):
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    def evaluate(self, ctx):
        module, func = EVALUATORS[self.evaluator].split(":")
        return getattr(importlib.import_module(module), func)(self, ctx)


TASK_SUFFIX = {"category": "baseline", "disgust": "disgust", "disgust-binary": "disgust-binary"}
DISGUST_DEFAULTS = {"threshold": DEFAULT_THRESHOLD, "empty_class_policy": "drop"}


def _default_scenarios() -> list[Scenario]:
    s = [
        Scenario("zeroshot-baseline", "category", "zeroshot", {"logit_scale": 100.0},
                 "6 categories, study wording 'This is a photo of {c}'"),
        Scenario("zeroshot-disgust", "disgust", "zeroshot", {"logit_scale": 100.0, **DISGUST_DEFAULTS},
                 "12 classes {neutral, disgusting} x category from the rating threshold"),
        Scenario("zeroshot-disgust-binary", "disgust-binary", "zeroshot",
                 {"logit_scale": 100.0, **DISGUST_DEFAULTS}, "disgusting vs not"),
    ]
    for ensemble in NAMED_ENSEMBLES:
        s.append(Scenario(f"ensemble-baseline-{ensemble}", "category", "zeroshot",
                          {"logit_scale": 100.0, "ensemble": ensemble}, f"6 categories, {ensemble} prompt ensemble"))
        s.append(Scenario(f"ensemble-disgust-{ensemble}", "disgust", "zeroshot",
                          {"logit_scale": 100.0, "ensemble": ensemble, **DISGUST_DEFAULTS},
                          f"12 disgust classes, {ensemble} prompt ensemble"))
    for task, k in (("category", 6), ("disgust", 12)):
        extra = DISGUST_DEFAULTS if task == "disgust" else {}
        name = TASK_SUFFIX[task]
        s.append(Scenario(f"knn-split-{name}", task, "knn-split",
                          {"k": k, "test_size": 0.3, "split_seed": 42, "small_class_policy": "reduce-folds", **extra},
                          "study protocol: 70/30 stratified split, scaler inside the pipeline"))
        s.append(Scenario(f"knn-cv10-{name}", task, "knn-cv",
                          {"k": k, "folds": 10, "split_seed": 42, "small_class_policy": "reduce-folds", **extra},
                          "stratified 10-fold CV, scaler inside the pipeline"))
        s.append(Scenario(f"linear-probe-cv10-{name}", task, "linear-probe-cv",
                          {"folds": 10, "split_seed": 42, "small_class_policy": "reduce-folds", **extra},
                          "logistic regression in stratified 10-fold CV"))
    # align-disgust-zeroshot / -probe; another rating: register each of alignment_scenarios(column).
    # The module is light: its stats load when a scenario runs.
    from .evaluators.alignment import alignment_scenarios

    s.extend(alignment_scenarios("disg_mean_all"))
    return s


REGISTRY: dict[str, Scenario] = {sc.id: sc for sc in _default_scenarios()}


def register(scenario: Scenario) -> Scenario:
    if scenario.evaluator not in EVALUATORS:
        raise ValueError(f"unknown evaluator {scenario.evaluator!r}")
    REGISTRY[scenario.id] = scenario
    return scenario


def template_scenarios(path: str | Path) -> list[Scenario]:
    """Custom-ensemble scenarios for a user's prompt file; ids carry the file's stem."""
    ensemble = load_ensemble(path)  # validates the file (bad file -> error)
    stem = Path(path).stem
    tasks = ["category", "disgust"]
    if ensemble.per_class is not None:
        from .stimuli import DIRTI_CATEGORIES

        tasks = ["category"] if set(ensemble.per_class) <= set(DIRTI_CATEGORIES) else ["disgust"]
    return [Scenario(f"ensemble-{TASK_SUFFIX[t]}-{stem}", t, "zeroshot",
                     {"logit_scale": 100.0, "ensemble": str(Path(path).resolve()),
                      **(DISGUST_DEFAULTS if t == "disgust" else {})},
                     f"custom prompt file {Path(path).name}") for t in tasks]


def select(patterns: Iterable[str] | None, extra: Iterable[Scenario] = ()) -> list[Scenario]:
    """Scenarios by id or glob pattern (``knn-*``); None -> all, in registry order."""
    available = {**REGISTRY, **{s.id: s for s in extra}}
    if not patterns:
        return list(available.values())
    chosen: dict[str, Scenario] = {}
    for pattern in patterns:
        hits = [sid for sid in available if fnmatch.fnmatchcase(sid, pattern)]
        if not hits:
            raise UserError(f"unknown scenario {pattern!r}; known ids: {', '.join(available)}")
        for sid in hits:
            chosen[sid] = available[sid]
    return list(chosen.values())


@dataclass
class EvalContext:
    """What evaluators read: the stimuli, their image features, the (cached) encoder."""

    stimuli: object  # StimulusSet
    encoder: object
    image_features: np.ndarray
    seed: int = 0
    _spaces: dict = field(default_factory=dict)

    @cached_property
    def _row(self) -> dict[str, int]:
        return {s.id: i for i, s in enumerate(self.stimuli.stimuli)}

    def rating_column(self, scenario: Scenario) -> str:
        """The scenario's rating; DIRTI's disgust column stands for a rated set's own disgust column."""
        return self.stimuli.resolve_rating(scenario.options.get("rating", "disg_mean_all"))

    def label_space(self, scenario: Scenario) -> LabelSpace:
        opts = scenario.options
        key = (scenario.task, opts.get("threshold", DEFAULT_THRESHOLD), opts.get("empty_class_policy", "drop"),
               self.rating_column(scenario))
        if key not in self._spaces:
            self._spaces[key] = build_label_space(self.stimuli, key[0], threshold=key[1], empty=key[2], rating=key[3])
        return self._spaces[key]

    def features_for(self, space: LabelSpace) -> np.ndarray:
        return self.image_features[[self._row[sid] for sid in space.stimulus_ids]]
