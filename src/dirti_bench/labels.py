"""One label space: the only source of class ids for prompts, truth and reports.

The original study built 12 disgust prompts as [disgusting x 6, plain x 6]
while its truth ids ran [plain x 6, disgusting x 6], and lost an empty class
from its report. Here a ``LabelSpace`` owns the classes, their order, and the
assignment of every stimulus; everything downstream asks it for ids.

Class order (stable, documented): ``category`` follows ``DIRTI_CATEGORIES``
(food, animals, body products, injuries/infections, death, hygiene);
``disgust`` lists the six plain classes in that order, then the six
"disgusting <category>" classes; ``disgust-binary`` is [not disgusting,
disgusting]. The ``drop`` policy removes empty classes without reordering the rest.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from .data.stimuli import StimulusSet
from .errors import LabelConsistencyError, UserError

TASKS = ("category", "disgust", "disgust-binary")  # the classification tasks; alignment is continuous
BINARY_CLASSES = ("not disgusting", "disgusting")
EMPTY_CLASS_POLICIES = ("drop", "keep")
DEFAULT_THRESHOLD = 5.0


@dataclass(frozen=True)
class LabelClass:
    name: str
    phrase: str  # what fills ``{c}`` in a generic template
    category: str | None = None  # None for the binary task
    disgusting: bool | None = None  # None for the category task
    category_phrase: str | None = None  # the category's phrase (class_phrases), for the fixed wordings


@dataclass(frozen=True)
class LabelSpace:
    task: str
    classes: tuple[LabelClass, ...]
    dropped: tuple[str, ...]
    stimulus_ids: tuple[str, ...]  # stimuli that carry a class in this space, in set order
    y_true: np.ndarray  # class index per stimulus_ids entry
    threshold: float | None = None
    threshold_rule: str | None = None
    policy: str = "drop"
    rating: str | None = None  # the rating column behind the threshold (None for the category task)
    drop_reasons: tuple[tuple[str, str], ...] = ()  # (class, why) for classes dropped after building
    categories: tuple[str, ...] = ()  # the stimulus set's category order (figures group classes by it)

    def without(self, names: Sequence[str], reason: str) -> LabelSpace:
        """This space minus ``names`` and their stimuli (ids re-indexed); they join ``dropped``."""
        names = [n for n in self.names if n in set(names)]
        if not names:
            return self
        keep_cls = [i for i, n in enumerate(self.names) if n not in names]
        new_id = {old: new for new, old in enumerate(keep_cls)}
        keep = [j for j, y in enumerate(self.y_true) if int(y) in new_id]
        return replace(
            self, classes=tuple(self.classes[i] for i in keep_cls), dropped=self.dropped + tuple(names),
            stimulus_ids=tuple(self.stimulus_ids[j] for j in keep),
            y_true=np.array([new_id[int(self.y_true[j])] for j in keep], dtype=int),
            drop_reasons=self.drop_reasons + tuple((n, reason) for n in names),
        )

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    def __len__(self) -> int:
        return len(self.classes)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise LabelConsistencyError(f"class {name!r} is not in the {self.task} label space {self.names}") from None

    def decode(self, ids: Sequence[int]) -> list[str]:
        names = self.names
        return [names[i] for i in ids]

    def support(self) -> dict[str, int]:
        counts = np.bincount(self.y_true, minlength=len(self.classes))
        return dict(zip(self.names, counts.tolist(), strict=True))

    def display_order(self) -> list[str]:
        """Class names as figures show them: each category's plain and disgusting class side by side
        (the disgust task), else the space's own order."""
        if self.task != "disgust":
            return list(self.names)
        categories = list(dict.fromkeys([*self.categories, *(c.category for c in self.classes)]))
        ranked = sorted(self.classes, key=lambda c: (categories.index(c.category), bool(c.disgusting)))
        return [c.name for c in ranked]

    def options(self) -> dict:
        return {"task": self.task, "threshold": self.threshold, "threshold_rule": self.threshold_rule,
                "empty_class_policy": self.policy, "rating": self.rating}


THRESHOLD_RULES = ("mean+1sd",)


def check_threshold(threshold: float | str) -> float | str:
    """A threshold spec as given by a user or a scenario: a finite number, or the rule ``mean+1sd``
    (computed from the data when the label space is built). Numeric strings become floats."""
    value = float("nan")
    if isinstance(threshold, str):
        rule = threshold.strip().lower().replace(" ", "")
        if rule in {"mean+1sd", "mean+sd"}:
            return "mean+1sd"
        try:
            value = float(rule)
        except ValueError:
            pass
    elif isinstance(threshold, int | float) and not isinstance(threshold, bool):
        value = float(threshold)
    if not math.isfinite(value):
        raise UserError(f"threshold {threshold!r} is neither a finite number nor 'mean+1sd'; use e.g. 5.0 or mean+1sd")
    return value


def resolve_threshold(stimuli: StimulusSet, threshold: float | str, rating: str) -> tuple[float, str]:
    """A number, or ``mean+1sd`` computed from the data (as the study motivated 5.0).

    The SD is the sample SD (ddof=1) over all stimuli of the set.
    """
    spec = check_threshold(threshold)
    if spec == "mean+1sd":
        values = stimuli.ratings(rating)
        if len(values) < 2:
            raise UserError(f"threshold mean+1sd needs at least 2 rated stimuli, {stimuli.name} has "
                            f"{len(values)}; give a number such as 5.0")
        return float(values.mean() + values.std(ddof=1)), "mean+1sd"
    return spec, "fixed"


def _require_ratings(stimuli: StimulusSet, rating: str) -> str:
    """The resolved column; every stimulus needs a value (a missing one would silently fall on
    either side of the threshold)."""
    rating = stimuli.require_rating(rating)
    missing = [s.id for s in stimuli.stimuli if rating not in s.ratings]
    if missing:
        raise UserError(f"{len(missing)} stimuli of {stimuli.name} have no {rating!r} rating "
                        f"(ids {missing[:10]}); fill them in or pick another rating column")
    return rating


def class_name(task: str, category: str | None, disgusting: bool | None) -> str:
    """The one naming rule: a stimulus's (or a candidate's) class name in ``task``."""
    if task == "category":
        return category
    if task == "disgust":
        return f"disgusting {category}" if disgusting else category
    return BINARY_CLASSES[int(bool(disgusting))]


def candidate_classes(task: str, categories: Sequence[str],
                      phrases: Mapping[str, str] | None = None) -> list[LabelClass]:
    """Every class ``task`` can have over ``categories``, in the documented order; ``phrases``: a
    rated set's class_phrases (category -> what fills ``{c}``), a category's name where absent."""
    phrase = dict(phrases or {})
    if task == "category":
        return [LabelClass(c, phrase.get(c, c), category=c, category_phrase=phrase.get(c, c)) for c in categories]
    if task == "disgust":
        # Documented order: the plain classes in category order, then the disgusting ones.
        return [LabelClass(class_name(task, c, d), class_name(task, phrase.get(c, c), d), category=c, disgusting=d,
                           category_phrase=phrase.get(c, c))
                for d in (False, True) for c in categories]
    if task == "disgust-binary":
        phrases = ("something", "something disgusting")  # what fills {c} in a generic template
        return [LabelClass(class_name(task, None, d), phrases[d], disgusting=d) for d in (False, True)]
    raise UserError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")


def build_label_space(
    stimuli: StimulusSet,
    task: str,
    threshold: float | str = DEFAULT_THRESHOLD,
    empty: str = "drop",
    rating: str | None = None,
) -> LabelSpace:
    """Assign every stimulus exactly one class of ``task``.

    Disgusting means mean rating >= threshold (never hand-typed index lists);
    the rating is ``rating`` or else the set's ``disgust_column``.
    ``empty='drop'`` removes classes without stimuli from prompts and truth and
    lists them in ``dropped``; ``'keep'`` keeps them with support 0 (their
    prompts stay as distractors).
    """
    if empty not in EMPTY_CLASS_POLICIES:
        raise UserError(f"empty-class policy {empty!r} unknown; choose one of {', '.join(EMPTY_CLASS_POLICIES)}")
    candidates = candidate_classes(task, stimuli.categories, dict(stimuli.class_phrases))
    thr, rule = (None, None)
    rating = rating or stimuli.disgust_column
    if task != "category":
        rating = _require_ratings(stimuli, rating)
        thr, rule = resolve_threshold(stimuli, threshold, rating)

    assigned = [class_name(task, s.category, None if task == "category" else s.ratings[rating] >= thr)
                for s in stimuli.stimuli]
    unknown = sorted({n for n in assigned} - {c.name for c in candidates})
    if unknown:
        raise UserError(f"stimuli carry categories {unknown} outside the set's categories {list(stimuli.categories)}")
    present = set(assigned)
    if empty == "drop":
        classes = tuple(c for c in candidates if c.name in present)
        dropped = tuple(c.name for c in candidates if c.name not in present)
    else:
        classes, dropped = tuple(candidates), ()
    names = [c.name for c in classes]
    y_true = np.array([names.index(n) for n in assigned], dtype=int)
    return LabelSpace(
        task=task, classes=classes, dropped=dropped,
        stimulus_ids=tuple(s.id for s in stimuli.stimuli), y_true=y_true,
        threshold=thr, threshold_rule=rule, policy=empty, rating=None if task == "category" else rating,
        categories=tuple(stimuli.categories),
    )


def check_consistency(space: LabelSpace, prompt_classes: Sequence[str], y_true=None, y_pred=None) -> None:
    """Raise unless prompts, truth and predictions share ``space`` exactly.

    Catches the original study's mistakes: prompts in another order than the
    truth ids, a class missing from prompts or space, ids outside the space.
    """
    names = space.names
    prompt_classes = list(prompt_classes)
    if prompt_classes != names:
        missing = [n for n in names if n not in prompt_classes]
        extra = [n for n in prompt_classes if n not in names]
        if missing or extra:
            raise LabelConsistencyError(
                f"prompt classes differ from the {space.task} label space: "
                f"missing prompts for {missing}, prompts for unknown classes {extra}"
            )
        repeated = sorted({n for n in prompt_classes if prompt_classes.count(n) > 1})
        if repeated:
            raise LabelConsistencyError(
                f"prompt classes list {repeated} more than once; the {space.task} label space "
                f"has each class once: {names}"
            )
        first = next(i for i, (a, b) in enumerate(zip(prompt_classes, names, strict=True)) if a != b)
        raise LabelConsistencyError(
            f"prompt classes are ordered differently from the {space.task} label space: "
            f"position {first} is {prompt_classes[first]!r} in the prompts but {names[first]!r} in the space"
        )
    for what, ids in (("y_true", y_true), ("y_pred", y_pred)):
        if ids is None:
            continue
        ids = np.asarray(ids)
        if ids.size and ids.dtype.kind not in "iu":
            raise LabelConsistencyError(f"{what} holds {ids.dtype} values, not integer class ids of the "
                                        f"{space.task} label space 0..{len(names) - 1}")
        if ids.size and (ids.min() < 0 or ids.max() >= len(names)):
            bad = sorted({int(i) for i in ids.ravel() if not (0 <= i < len(names))})[:10]
            raise LabelConsistencyError(
                f"{what} holds ids {bad} outside the {space.task} label space 0..{len(names) - 1}"
            )
