"""The scenario registry: every evaluation is data (id, task, evaluator, options).

pytest uses the ids as test ids (``pytest benchmarks -k disgust``) and
``dirti-bench run --scenarios`` selects from the same registry. Options not
given here take their defaults from ``contracts``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from .contracts import ALIGNMENT_TASK, DEFAULT_N_RATERS, Scenario
from .data.dirti import DIRTI_CATEGORIES
from .data.stimuli import DISGUST_RATING
from .errors import UserError
from .prompts import DEFAULT_PAIR, NAMED_ENSEMBLES, load_ensemble, neutral_pair, resolve_pair

# A task's name inside scenario ids (the study's "baseline" is the category task).
TASK_SUFFIX = {"category": "baseline", "disgust": "disgust", "disgust-binary": "disgust-binary"}
# DIRTI's rating columns -> short names used in scenario ids.
RATING_SHORT_NAMES = {
    "disg_mean_all": "disgust", "disg_mean_women": "disgust-women", "disg_mean_men": "disgust-men",
    "fear_mean_all": "fear", "val_mean_all": "valence", "aro_mean_all": "arousal",
}
# The study's k per task: 6 categories -> k=6, 12 disgust classes -> k=12.
STUDY_K = {"category": 6, "disgust": 12}


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
    out = [Scenario(f"align-{short}-zeroshot", ALIGNMENT_TASK, "align-zeroshot", {**common, "prompt_pair": pair},
                    f"zero-shot {short} score vs mean human rating {rating_column} (Spearman, Pearson)")]
    out.append(Scenario(f"align-{short}-probe", ALIGNMENT_TASK, "align-probe", common,
                        f"ridge regression from image features to {rating_column}, repeated stratified 10-fold CV"))
    return out


def _default_scenarios() -> list[Scenario]:
    s = [
        Scenario("zeroshot-baseline", "category", "zeroshot", {},
                 "6 categories, study wording 'This is a photo of {c}'"),
        Scenario("zeroshot-disgust", "disgust", "zeroshot", {},
                 "12 classes {neutral, disgusting} x category from the rating threshold"),
        Scenario("zeroshot-disgust-binary", "disgust-binary", "zeroshot", {}, "disgusting vs not"),
    ]
    for ensemble in NAMED_ENSEMBLES:
        s.append(Scenario(f"ensemble-baseline-{ensemble}", "category", "zeroshot", {"ensemble": ensemble},
                          f"6 categories, {ensemble} prompt ensemble"))
        s.append(Scenario(f"ensemble-disgust-{ensemble}", "disgust", "zeroshot", {"ensemble": ensemble},
                          f"12 disgust classes, {ensemble} prompt ensemble"))
    for task, k in STUDY_K.items():
        name = TASK_SUFFIX[task]
        s.append(Scenario(f"knn-split-{name}", task, "knn-split", {"k": k},
                          "study protocol: 70/30 stratified split, scaler inside the pipeline"))
        s.append(Scenario(f"knn-cv10-{name}", task, "knn-cv", {"k": k},
                          "stratified 10-fold CV, scaler inside the pipeline"))
        s.append(Scenario(f"linear-probe-cv10-{name}", task, "linear-probe-cv", {},
                          "logistic regression in stratified 10-fold CV"))
    s.extend(alignment_scenarios(DISGUST_RATING))
    return s


REGISTRY: dict[str, Scenario] = {sc.id: sc for sc in _default_scenarios()}


def register(scenario: Scenario) -> Scenario:
    REGISTRY[scenario.id] = scenario
    return scenario


def template_scenarios(path: str | Path) -> list[Scenario]:
    """Custom-ensemble scenarios for a user's prompt file; ids carry the file's stem."""
    ensemble = load_ensemble(path)  # validates the file (bad file -> error)
    stem = Path(path).stem
    tasks = ["category", "disgust"]
    if ensemble.per_class is not None:
        tasks = ["category"] if set(ensemble.per_class) <= set(DIRTI_CATEGORIES) else ["disgust"]
    return [Scenario(f"ensemble-{TASK_SUFFIX[t]}-{stem}", t, "zeroshot", {"ensemble": str(Path(path).resolve())},
                     f"custom prompt file {Path(path).name}") for t in tasks]


def data_scenarios(stimuli) -> list[Scenario]:
    """Alignment scenarios for a rated set's own rating columns (``stimuli.aligned_ratings``), except
    where a registry scenario already has that id."""
    out = []
    for column in stimuli.aligned_ratings:
        out += [s for s in alignment_scenarios(column) if s.id not in REGISTRY]
    return out


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
