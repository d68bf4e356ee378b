"""Prompts bound to a label space: study wording, single templates, ensembles.

A ``PromptSet`` lists prompts per class *in the label space's order*, so the
text embeddings' row i is class i by construction.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from . import jsonio
from .errors import UserError
from .labels import LabelSpace

STUDY_TEMPLATE = "This is a photo of {c}"
STUDY_DISGUST_TEMPLATE = "This is a disgusting photo of {c}"
PLACEHOLDER = "{c}"
NAMED_ENSEMBLES = {"clip80": "clip80.json", "affect": "affect.json"}
WRAPPER_KEYS = {"name", "source", "description", "templates"}
RATING_KEY = "rating"  # marks a prompt file as a high/low pair for an alignment scenario
PAIR_KEYS = ("high", "low")
# A brace field ("{0}", "{name}") or a lone brace: str.format syntax that fill() would copy into the
# prompt as written, so a template holding one other than {c} is a mistake to name, not to encode.
BRACE_FIELD = re.compile(r"\{[^{}]*\}|[{}]")


@dataclass(frozen=True)
class PromptSet:
    name: str
    classes: tuple[str, ...]
    prompts: tuple[tuple[str, ...], ...]  # prompts[i] are class i's prompts

    def all_prompts(self) -> list[str]:
        return [p for group in self.prompts for p in group]

    def class_of_prompt(self) -> list[int]:
        return [i for i, group in enumerate(self.prompts) for _ in group]

    def rows(self) -> tuple[tuple[str, str], ...]:
        """(class, prompt) for every prompt, in class order: the scenario's rows of prompts.csv."""
        return tuple((c, p) for c, group in zip(self.classes, self.prompts, strict=True) for p in group)


def fill(template: str, phrase: str) -> str:
    return template.replace(PLACEHOLDER, phrase)


def from_templates(space: LabelSpace, templates: list[str], name: str) -> PromptSet:
    return PromptSet(
        name=name,
        classes=tuple(space.names),
        prompts=tuple(tuple(fill(t, c.phrase) for t in templates) for c in space.classes),
    )


def study_prompts(space: LabelSpace) -> PromptSet:
    """The study's exact wording (with single spaces, unlike its plain disgust prompts)."""
    def prompt(cls) -> str:
        # a rated set's class_phrases where given ("an animal"), else the category's name
        phrase = cls.category_phrase or cls.category
        if space.task == "category":
            return fill(STUDY_TEMPLATE, phrase)
        if space.task == "disgust":
            return fill(STUDY_DISGUST_TEMPLATE if cls.disgusting else STUDY_TEMPLATE, phrase)
        return "This is a disgusting photo" if cls.disgusting else "This is a photo"

    return PromptSet("study", tuple(space.names), tuple((prompt(c),) for c in space.classes))


# ---------------------------------------------------------------- ensembles

@dataclass(frozen=True)
class Ensemble:
    """Templates with ``{c}`` (CLIP style) or a class -> prompts mapping (CuPL style)."""

    name: str
    source: str
    templates: tuple[str, ...] | None = None
    per_class: dict[str, tuple[str, ...]] | None = None
    rating: str | None = None  # a high/low prompt pair scores this rating column (an alignment file)

    @property
    def kind(self) -> str:
        if self.templates is not None:
            return "template list"
        return "high/low pair" if self.rating is not None else "per-class prompts"

    def bind(self, space: LabelSpace) -> PromptSet:
        if self.templates is not None:
            return from_templates(space, list(self.templates), self.name)
        known = set(space.names) | set(space.dropped)
        unknown = sorted(set(self.per_class) - known)
        if unknown:
            raise UserError(
                f"template file {self.source} names classes {unknown} that are not in the "
                f"{space.task} label space {space.names}; use those class names as keys"
            )
        missing = [n for n in space.names if n not in self.per_class]
        if missing:
            raise UserError(
                f"template file {self.source} has no prompts for classes {missing} of the "
                f"{space.task} label space; add a list for each"
            )
        return PromptSet(self.name, tuple(space.names), tuple(self.per_class[n] for n in space.names))


def _bad(source: str, what: str) -> UserError:
    return UserError(f"bad template file {source}: {what}")


def _line_of(text: str | None, value: str) -> str:
    """``line N: `` where ``value`` is written in the JSON ``text`` (empty where it cannot be found)."""
    for written in (json.dumps(value, ensure_ascii=False), json.dumps(value)):
        at = (text or "").find(written)
        if at >= 0:
            return f"line {text.count(chr(10), 0, at) + 1}: "
    return ""


def _check_braces(prompt: str, source: str, text: str | None, template: bool) -> None:
    """Refuse a brace field other than the one placeholder of a template (none in a per-class or
    rating-end prompt, which is used as written)."""
    field = next((m.group() for m in BRACE_FIELD.finditer(prompt) if not (template and m.group() == PLACEHOLDER)),
                 None)
    if field is None:
        return
    where = _line_of(text, prompt)
    if template:
        raise _bad(source, f"{where}template {prompt!r} has the field {field}; {PLACEHOLDER} (the class name) "
                           f"is the only field a template may hold: replace {field} by {PLACEHOLDER} or remove it")
    raise _bad(source, f"{where}prompt {prompt!r} has the field {field}; prompts given per class or per rating "
                       f"end are used as written: remove the braces ({PLACEHOLDER} works only in a list of templates)")


def parse_ensemble(data, name: str, source: str, text: str | None = None) -> Ensemble:
    """``text``: the file's JSON, so a bad prompt's error can name its line."""
    # A wrapper object {"name", "source", "templates"} around either form.
    if isinstance(data, dict) and "templates" in data and set(data) <= WRAPPER_KEYS:
        name = str(data.get("name", name))
        data = data["templates"]
    if isinstance(data, list):
        if not data:
            raise _bad(source, "the template list is empty; give at least one template with {c}")
        for t in data:
            if not isinstance(t, str) or not t.strip():
                raise _bad(source, f"entry {t!r} is not a non-empty string")
            if PLACEHOLDER not in t:
                raise _bad(source, f"template {t!r} has no {PLACEHOLDER} placeholder for the class name")
            _check_braces(t, source, text, template=True)
        return Ensemble(name=name, source=source, templates=tuple(data))
    if isinstance(data, dict) and RATING_KEY in data:
        return _parse_pair(data, name, source, text)
    if isinstance(data, dict):
        if not data:
            raise _bad(source, "the class -> prompts mapping is empty")
        per_class = {}
        for cls, prompts in data.items():
            if isinstance(prompts, str):
                prompts = [prompts]
            if not isinstance(prompts, list) or not prompts:
                raise _bad(source, f"class {cls!r} needs a non-empty list of prompts")
            if not all(isinstance(p, str) and p.strip() for p in prompts):
                raise _bad(source, f"class {cls!r} has a prompt that is not a non-empty string")
            for prompt in prompts:
                _check_braces(prompt, source, text, template=False)
            per_class[str(cls)] = tuple(prompts)
        return Ensemble(name=name, source=source, per_class=per_class)
    raise _bad(source, "expected a JSON list of templates or an object mapping class -> list of prompts")


def _parse_pair(data: dict, name: str, source: str, text: str | None = None) -> Ensemble:
    """``{"rating": COLUMN, "high": [...], "low": [...]}``: prompts for the two ends of a rating."""
    rating = data[RATING_KEY]
    if not isinstance(rating, str) or not rating.strip():
        raise _bad(source, f"'{RATING_KEY}' must name a rating column, e.g. \"fear_mean_all\"")
    keys = sorted(set(data) - {RATING_KEY})
    if keys != sorted(PAIR_KEYS):
        raise _bad(source, f"a file with a '{RATING_KEY}' key needs exactly a 'high' and a 'low' list of "
                           f"prompts beside it, not {keys}")
    pair = {}
    for side in PAIR_KEYS:
        prompts = [data[side]] if isinstance(data[side], str) else data[side]
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
            raise _bad(source, f"'{side}' needs a non-empty list of non-empty prompt strings")
        for prompt in prompts:
            _check_braces(prompt, source, text, template=False)
        pair[side] = tuple(prompts)
    return Ensemble(name=name, source=source, per_class=pair, rating=rating.strip())


def shipped_file(name: str) -> str:
    """Where a shipped ensemble's JSON lives (for messages that name it)."""
    return str(resources.files("dirti_bench.templates").joinpath(NAMED_ENSEMBLES[name]))


def load_ensemble(name_or_path: str | Path) -> Ensemble:
    """A shipped ensemble by name (``clip80``, ``affect``) or a user's JSON file."""
    key = str(name_or_path)
    if key in NAMED_ENSEMBLES:
        text = resources.files("dirti_bench.templates").joinpath(NAMED_ENSEMBLES[key]).read_text("utf-8")
        return parse_ensemble(json.loads(text), key, f"<shipped {key}>", text)
    path = Path(name_or_path)
    if not path.is_file():
        raise UserError(
            f"template file {path} not found; pass a JSON file or one of the shipped ensembles "
            f"({', '.join(NAMED_ENSEMBLES)})"
        )
    try:
        text = path.read_text("utf-8")
        data = jsonio.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _bad(str(path), f"not valid JSON ({exc}); fix the syntax") from None
    return parse_ensemble(data, path.stem, str(path), text)


# ---------------------------------------------------------------- rating prompt pairs

# Alignment scenarios score each image by a pair of prompt sets: "high" describes the top of the
# rating scale, "low" its bottom.
PROMPT_PAIRS: dict[str, dict[str, tuple[str, ...]]] = {
    # The study's own wording, plain vs disgusting (single spaces).
    "study": {"high": ("This is a disgusting photo",), "low": ("This is a photo",)},
    "disgust-neutral": {"high": ("a photo of something disgusting.",), "low": ("a photo of something neutral.",)},
    "fear": {"high": ("This is a frightening photo",), "low": ("This is a photo",)},
    "valence": {"high": ("This is a pleasant photo",), "low": ("This is an unpleasant photo",)},
    "arousal": {"high": ("This is an exciting photo",), "low": ("This is a calm photo",)},
}
# Pairs built by filling a shipped template ensemble with two phrases.
ENSEMBLE_PAIRS = {"affect": ("affect", "something disgusting", "something neutral")}
# The kind of a rating (the first word of its short name) -> its default pair.
DEFAULT_PAIR = {"disgust": "study", "fear": "fear", "valence": "valence", "arousal": "arousal"}


def neutral_pair(quality: str) -> dict:
    """A plain high/low pair for a rating without a pair of its own (``beauty``, ``dominance``)."""
    return {"name": "neutral", "high": [f"This is a photo high in {quality}"],
            "low": [f"This is a photo low in {quality}"]}


def resolve_pair(pair: str | Mapping) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """(name, high prompts, low prompts) of a named or explicit prompt pair."""
    if isinstance(pair, Mapping):
        high, low = pair.get("high"), pair.get("low")
        for side, prompts in (("high", high), ("low", low)):
            if (not isinstance(prompts, list | tuple) or not prompts
                    or not all(isinstance(p, str) and p.strip() for p in prompts)):
                raise UserError(f"prompt pair {dict(pair)!r}: '{side}' must be a non-empty list of prompts")
        return str(pair.get("name", "custom")), tuple(high), tuple(low)
    if pair in PROMPT_PAIRS:
        return pair, PROMPT_PAIRS[pair]["high"], PROMPT_PAIRS[pair]["low"]
    if pair in ENSEMBLE_PAIRS:
        ensemble, high, low = ENSEMBLE_PAIRS[pair]
        templates = load_ensemble(ensemble).templates
        return pair, tuple(fill(t, high) for t in templates), tuple(fill(t, low) for t in templates)
    known = ", ".join([*PROMPT_PAIRS, *ENSEMBLE_PAIRS])
    raise UserError(f"unknown prompt pair {pair!r}; use one of {known} or {{'high': [...], 'low': [...]}}")
