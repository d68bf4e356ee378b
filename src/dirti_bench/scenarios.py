"""The scenario registry: every evaluation is data (id, task, evaluator, options).

pytest uses the ids as test ids (``pytest benchmarks -k disgust``) and
``dirti-bench run --scenarios`` selects from the same registry. Options not
given here take their defaults from ``contracts``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .contracts import ALIGNMENT_TASK, DEFAULT_N_RATERS, Scenario
from .data.stimuli import DISGUST_RATING, StimulusSet
from .errors import UserError
from .labels import DEFAULT_THRESHOLD, TASKS, build_label_space, candidate_classes
from .prompts import (
    DEFAULT_PAIR,
    NAMED_ENSEMBLES,
    Ensemble,
    load_ensemble,
    neutral_pair,
    resolve_pair,
    shipped_file,
)

# A task's name inside scenario ids (the study's "baseline" is the category task).
TASK_SUFFIX = {"category": "baseline", "disgust": "disgust", "disgust-binary": "disgust-binary"}
# DIRTI's rating columns -> short names used in scenario ids.
RATING_SHORT_NAMES = {
    "disg_mean_all": "disgust", "disg_mean_women": "disgust-women", "disg_mean_men": "disgust-men",
    "fear_mean_all": "fear", "val_mean_all": "valence", "aro_mean_all": "arousal",
}
# The study's k per task: 6 categories -> k=6, 12 disgust classes -> k=12.
STUDY_K = {"category": 6, "disgust": 12}
# The tasks every template ensemble is swept on (each template alone, and a cross-validated choice).
SWEEP_TASKS = ("category", "disgust")


def rating_short_name(column: str) -> str:
    """``disg_mean_all`` -> ``disgust``; other columns -> a lower-case slug (``Fear Mean`` -> ``fear-mean``)."""
    if column in RATING_SHORT_NAMES:
        return RATING_SHORT_NAMES[column]
    slug = re.sub(r"[^a-z0-9]+", "-", column.lower()).strip("-")
    if not slug:
        raise UserError(f"rating column {column!r} has no letters or digits to name a scenario; rename it")
    return slug


def default_prompt_pair(column: str) -> str | Mapping:
    """The pair for the rating's kind (disgust, fear, valence, arousal), else a neutral high/low pair."""
    short = rating_short_name(column)
    return DEFAULT_PAIR.get(short.split("-")[0]) or neutral_pair(short.replace("-", " "))


def alignment_scenarios(rating_column: str, prompt_pair: str | Mapping | None = None,
                        n_raters: int = DEFAULT_N_RATERS, sd_column: str | None = None) -> list[Scenario]:
    """``align-<short>-zeroshot`` and ``align-<short>-probe`` for one rating column.

    ``prompt_pair`` defaults to the pair for the rating's kind (disgust, fear,
    valence, arousal), else a neutral "high/low in <rating>" pair; give a name from
    ``prompts.PROMPT_PAIRS`` or ``{"high": [...], "low": [...]}`` to choose another.
    """
    short = rating_short_name(rating_column)
    pair = prompt_pair if prompt_pair is not None else default_prompt_pair(rating_column)
    common = {"rating": rating_column, "n_raters": n_raters, **({"sd_column": sd_column} if sd_column else {})}
    resolve_pair(pair)  # a bad pair fails when the scenario is made, not mid-run
    return [Scenario(f"align-{short}-zeroshot", ALIGNMENT_TASK, "align-zeroshot", {**common, "prompt_pair": pair}),
            Scenario(f"align-{short}-probe", ALIGNMENT_TASK, "align-probe", common)]


LAYER_CONTROLS = ("pixels", "random-init")  # --controls: the layer probe's controls, each a scenario


def layer_scenarios(rating_column: str, mode: str | None = None, layers: bool = True,
                    controls: Iterable[str] = ()) -> list[Scenario]:
    """``layers-<short>`` (every layer, the best chosen inside each training fold) and the controls
    asked for: ``pixels-<short>`` (image statistics, no model), ``random-init-<short>`` (the same
    architecture with random weights, several seeds)."""
    short = rating_short_name(rating_column)
    common = {"rating": rating_column}
    with_mode = {**common, **({"mode": mode} if mode else {})}
    unknown = sorted(set(controls) - set(LAYER_CONTROLS))
    if unknown:
        raise UserError(f"unknown control {unknown[0]!r}; choose from {', '.join(LAYER_CONTROLS)}", "controls")
    out = []
    if layers:
        out.append(Scenario(f"layers-{short}", ALIGNMENT_TASK, "align-layers", with_mode))
    if "pixels" in controls:
        out.append(Scenario(f"pixels-{short}", ALIGNMENT_TASK, "align-pixels", common))
    if "random-init" in controls:
        out.append(Scenario(f"random-init-{short}", ALIGNMENT_TASK, "align-random-init", with_mode))
    return out


def probe_layer_scenarios(mode: str | None = None) -> list[Scenario]:
    """``linear-probe-layers-<task>``: the linear probe on every layer, the layer chosen inside each
    training fold, on the category and disgust tasks (what ``--layers all`` adds beside layers-<rating>)."""
    options = {"mode": mode} if mode else {}
    return [Scenario(f"linear-probe-layers-{TASK_SUFFIX[task]}", task, "probe-layers", options) for task in STUDY_K]


def knn_layer_scenarios(mode: str | None = None) -> list[Scenario]:
    """``knn-layers-<task>``: the study's KNN (its k per task) on every layer, the layer chosen inside each
    training fold, on the category and disgust tasks (what ``--layers all`` adds beside the linear probe's)."""
    options = {"mode": mode} if mode else {}
    return [Scenario(f"knn-layers-{TASK_SUFFIX[task]}", task, "knn-layers", {"k": k, **options})
            for task, k in STUDY_K.items()]


def classifier_control_scenarios(controls: Iterable[str], mode: str | None = None) -> list[Scenario]:
    """The controls of the probe per layer on the category and disgust tasks: ``linear-probe-pixels-<task>``
    (the logistic probe on image statistics, no model) and ``linear-probe-random-init-<task>`` (the probe
    per layer on the same architecture with random weights, several seeds)."""
    unknown = sorted(set(controls) - set(LAYER_CONTROLS))
    if unknown:
        raise UserError(f"unknown control {unknown[0]!r}; choose from {', '.join(LAYER_CONTROLS)}", "controls")
    options = {"mode": mode} if mode else {}
    out = []
    for task in STUDY_K:
        if "pixels" in controls:
            out.append(Scenario(f"linear-probe-pixels-{TASK_SUFFIX[task]}", task, "probe-pixels", {}))
        if "random-init" in controls:
            out.append(Scenario(f"linear-probe-random-init-{TASK_SUFFIX[task]}", task, "probe-random-init", options))
    return out


def template_sweeps(ensemble: str, stem: str, what: str) -> list[Scenario]:
    """``template-sweep-<task>-<stem>``: each template of ``ensemble`` alone, on each sweep task."""
    return [Scenario(f"template-sweep-{TASK_SUFFIX[t]}-{stem}", t, "template-sweep", {"ensemble": ensemble},
                     f"templates of {what}") for t in SWEEP_TASKS]


def _default_scenarios() -> list[Scenario]:
    s = [
        # The study-replica scenarios score as the study did (100 x cosine, softmax): their numbers
        # sit beside the published ones. Every other zero-shot scenario follows the model.
        Scenario("zeroshot-baseline", "category", "zeroshot", {"scoring": "study"}),
        Scenario("zeroshot-disgust", "disgust", "zeroshot", {"scoring": "study"}),
        Scenario("zeroshot-disgust-binary", "disgust-binary", "zeroshot", {}),
    ]
    for ensemble in NAMED_ENSEMBLES:
        s.append(Scenario(f"ensemble-baseline-{ensemble}", "category", "zeroshot", {"ensemble": ensemble}))
        s.append(Scenario(f"ensemble-disgust-{ensemble}", "disgust", "zeroshot", {"ensemble": ensemble}))
    for ensemble in NAMED_ENSEMBLES:
        s += template_sweeps(ensemble, ensemble, f"the shipped {ensemble} ensemble")
    for task in ("disgust", "disgust-binary"):
        s.append(Scenario(f"threshold-sweep-{TASK_SUFFIX[task]}", task, "threshold-sweep", {}))
    for task, k in STUDY_K.items():
        name = TASK_SUFFIX[task]
        s.append(Scenario(f"knn-split-{name}", task, "knn-split", {"k": k}, "the study's protocol"))
        s.append(Scenario(f"knn-cv10-{name}", task, "knn-cv", {"k": k}))
        s.append(Scenario(f"linear-probe-cv10-{name}", task, "linear-probe-cv", {}))
    s.extend(alignment_scenarios(DISGUST_RATING))
    return s


def _by_id(scenarios: Iterable[Scenario]) -> dict[str, Scenario]:
    """Scenarios by id; two with one id is an error, never a silent replacement."""
    out: dict[str, Scenario] = {}
    for scenario in scenarios:
        if scenario.id in out:
            raise UserError(f"two scenarios have the id {scenario.id!r}; give each scenario its own id")
        out[scenario.id] = scenario
    return out


REGISTRY: dict[str, Scenario] = _by_id(_default_scenarios())


# ---------------------------------------------------------------- prompt files (--templates)

@dataclass(frozen=True)
class PromptFilePlan:
    """What one prompt file makes: its scenarios, and the tasks it skips with the reason."""

    path: Path
    kind: str  # Ensemble.kind
    scenarios: tuple[Scenario, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()  # (task, why)
    resolved: bool = True  # False: a per-class or pair file before the stimuli are known

    def line(self) -> str:
        made = ", ".join(s.id for s in self.scenarios) or "no scenario"
        skipped = "; ".join(f"{task} ({why})" for task, why in self.skipped) or "no task"
        return f"prompt file {self.path} ({self.kind}): made {made}; skipped {skipped}"

    def to_json(self) -> dict:
        return {"file": str(self.path), "kind": self.kind, "scenarios": [s.id for s in self.scenarios],
                "skipped": {task: why for task, why in self.skipped}}


def _available_spaces(stimuli: StimulusSet | None, threshold) -> tuple[dict, dict[str, str]]:
    """The classification tasks' label spaces on ``stimuli`` (at the run's threshold), and why the
    others cannot be built there (e.g. a set without a disgust rating)."""
    spaces, unavailable = {}, {}
    if stimuli is None:
        return spaces, unavailable
    for task in TASKS:
        try:
            spaces[task] = build_label_space(stimuli, task, threshold=threshold)
        except UserError as exc:
            unavailable[task] = str(exc)
    return spaces, unavailable


def _per_class_task(ensemble: Ensemble, stimuli: StimulusSet, spaces: dict) -> str:
    """The task whose class names the file's keys are: DIRTI's or the loaded set's own categories."""
    keys = set(ensemble.per_class)
    candidates = {t: [c.name for c in candidate_classes(t, stimuli.categories)] for t in spaces}
    fits = [t for t in spaces if keys <= set(candidates[t])]
    if not fits:
        known = "; ".join(f"{t}: {names}" for t, names in candidates.items())
        raise UserError(f"prompt file {ensemble.source}: its keys {sorted(keys)} match no task of {stimuli.name} "
                        f"(keys must be the class names of one task: {known}); rename the keys, or add "
                        f"a \"rating\" key to a high/low pair")
    complete = [t for t in fits if set(spaces[t].names) <= keys]
    if complete:
        return complete[0]
    task = min(fits, key=lambda t: len(set(spaces[t].names) - keys))
    missing = [n for n in spaces[task].names if n not in keys]
    raise UserError(f"prompt file {ensemble.source} covers the {task} task only partly: no prompts for "
                    f"{missing}; add a list of prompts for each")


def prompt_file_plan(path: str | Path, stimuli: StimulusSet | None = None,
                     threshold: float | str = DEFAULT_THRESHOLD) -> PromptFilePlan:
    """The scenarios a user's prompt file makes (ids carry the file's stem).

    A template list makes ``ensemble-<task>-<stem>`` on every classification task and
    ``template-sweep-<task>-<stem>`` on the sweep tasks. Per-class prompts make the
    ensemble scenario of the one task whose class names the keys are; a ``rating`` +
    high/low pair makes ``align-<rating>-zeroshot-<stem>``. Without ``stimuli`` the file
    is only checked: per-class and pair files need the set's label spaces and ratings.
    """
    ensemble = load_ensemble(path)  # validates the file (bad file -> error)
    path = Path(path)
    stem, source = path.stem, str(path.resolve())
    spaces, unavailable = _available_spaces(stimuli, threshold)
    if ensemble.templates is None and stimuli is None:
        return PromptFilePlan(path, ensemble.kind, resolved=False)
    made, skipped = [], []
    if ensemble.rating is not None:
        rating = ensemble.rating
        try:
            stimuli.require_rating(rating)
        except UserError as exc:
            raise UserError(f"prompt file {path}: {exc}") from None
        pair = {side: list(ensemble.per_class[side]) for side in ("high", "low")}
        made.append(Scenario(f"align-{rating_short_name(rating)}-zeroshot-{stem}", ALIGNMENT_TASK, "align-zeroshot",
                             {"rating": rating, "prompt_pair": pair}, f"the high/low prompts of {path.name}"))
        skipped += [(t, "a high/low pair scores a rating, not classes") for t in TASKS]
        return PromptFilePlan(path, ensemble.kind, tuple(made), tuple(skipped))
    if ensemble.templates is not None:
        tasks = [t for t in TASKS if stimuli is None or t in spaces]
        skipped += [(t, f"cannot be built on this set: {unavailable[t]}") for t in TASKS if t in unavailable]
    else:
        tasks = [_per_class_task(ensemble, stimuli, spaces)]
        skipped += [(t, f"the keys are the {tasks[0]} classes") for t in TASKS if t not in tasks]
        skipped.append(("template sweep", "per-class prompts have no templates to take one at a time"))
    for task in tasks:
        made.append(Scenario(f"ensemble-{TASK_SUFFIX[task]}-{stem}", task, "zeroshot", {"ensemble": source},
                             f"prompt file {path.name}"))
    if ensemble.templates is not None:
        made += [s for s in template_sweeps(source, stem, path.name) if s.task in tasks]
        skipped.append((ALIGNMENT_TASK, "a template list has no high/low pair; give {\"rating\", \"high\", \"low\"}"))
    return PromptFilePlan(path, ensemble.kind, tuple(made), tuple(skipped))


def template_scenarios(path: str | Path, stimuli: StimulusSet | None = None,
                       threshold: float | str = DEFAULT_THRESHOLD) -> list[Scenario]:
    """The scenarios of ``prompt_file_plan``."""
    return list(prompt_file_plan(path, stimuli, threshold).scenarios)


def _maker(scenario: Scenario) -> str:
    """Which file makes a registry scenario (for messages about clashing ids)."""
    ensemble = getattr(scenario.options, "ensemble", None)
    if ensemble in NAMED_ENSEMBLES:
        return f"the shipped ensemble file {shipped_file(ensemble)}"
    return "the built-in scenario registry"


def check_prompt_file_ids(plans: Iterable[PromptFilePlan]) -> None:
    """A prompt file may not replace a shipped scenario or another file's: its stem names its ids."""
    makers = {sid: _maker(sc) for sid, sc in REGISTRY.items()}
    for plan in plans:
        for scenario in plan.scenarios:
            other = makers.get(scenario.id)
            if other is not None and other != f"prompt file {plan.path}":
                raise UserError(f"prompt file {plan.path} and {other} both make scenario {scenario.id}; "
                                f"rename {plan.path.name} (its stem names its scenarios)")
            makers[scenario.id] = f"prompt file {plan.path}"


def alignment_ids(rating_column: str) -> tuple[str, str]:
    """The ids ``alignment_scenarios`` makes for a column, without making the scenarios."""
    short = rating_short_name(rating_column)
    return f"align-{short}-zeroshot", f"align-{short}-probe"


def data_scenarios(stimuli, wanted=None) -> list[Scenario]:
    """Alignment scenarios for a rated set's own rating columns (``stimuli.aligned_ratings``), except
    where a registry scenario already has that id. ``wanted`` (id -> bool) limits them to those a
    selection can match, so a set with thousands of columns makes no scenario nobody asked for."""
    out = []
    for column in stimuli.aligned_ratings:
        if wanted is not None and not any(wanted(sid) for sid in alignment_ids(column)):
            continue
        out += [s for s in alignment_scenarios(column) if s.id not in REGISTRY]
    return out


def matches_any(patterns: Iterable[str] | None):
    """id -> whether ``select(patterns)`` could choose it (every id when ``patterns`` is None)."""
    if not patterns:
        return lambda sid: True
    patterns = list(patterns)
    return lambda sid: any(fnmatch.fnmatchcase(sid, p) for p in patterns)


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
