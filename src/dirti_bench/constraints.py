"""What a setting's value may be, as objects (scikit-learn's ``Interval``/``StrOptions`` style).

One set of constraint objects checks every way a value arrives: an evaluator's options and a
``RunConfig`` when they are constructed (``check_fields`` in ``__post_init__``), a rated set's
sidecar and a results.json when they are read (``check_value``). Each constraint says in words
what it accepts (``str``), whether a value passes (``accepts``), the value as stored (``coerce``:
an int for a float setting becomes a float, a list a tuple), and values it refuses
(``invalid_examples``), from which the tests generate bad input for every setting.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

CONSTRAINTS = "constraints"  # the dataclass field metadata key


class Constraint:
    def accepts(self, value) -> bool:
        raise NotImplementedError

    def coerce(self, value):
        return value

    def invalid_examples(self) -> list:
        return [object()]


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclass(frozen=True)
class Interval(Constraint):
    """An int (``kind=int``) or a finite number (``kind=float``; ints pass, stored as float) within
    ``low``/``high`` (None: unbounded); ``closed`` says which ends belong: both, left, right, neither."""

    kind: type
    low: float | None = None
    high: float | None = None
    closed: str = "both"

    def accepts(self, value) -> bool:
        if not (_is_int(value) if self.kind is int else _is_real(value) and math.isfinite(value)):
            return False
        if self.low is not None and (value < self.low or value == self.low and self.closed in ("right", "neither")):
            return False
        return not (self.high is not None
                    and (value > self.high or value == self.high and self.closed in ("left", "neither")))

    def coerce(self, value):
        return int(value) if self.kind is int else float(value)

    def __str__(self) -> str:
        what = "an integer" if self.kind is int else "a number"
        left = ">=" if self.closed in ("both", "left") else ">"
        right = "<=" if self.closed in ("both", "right") else "<"
        if self.low is not None and self.high is not None:
            brackets = ("[" if left == ">=" else "(") + f"{self.low:g}, {self.high:g}" + ("]" if right == "<=" else ")")
            return f"{what} in {brackets}"
        if self.low is not None:
            return f"{what} {left} {self.low:g}"
        if self.high is not None:
            return f"{what} {right} {self.high:g}"
        return what

    def invalid_examples(self) -> list:
        out = ["3", True, None]
        if self.kind is int:
            out.append(2.5)
        else:
            out.append(math.nan)
        if self.low is not None:
            out.append(self.low - 1 if self.closed in ("both", "left") else self.low)
        if self.high is not None:
            out.append(self.high + 1 if self.closed in ("both", "right") else self.high)
        return out


@dataclass(frozen=True)
class StrOptions(Constraint):
    """One of ``options`` (exactly as written)."""

    options: tuple[str, ...]

    def accepts(self, value) -> bool:
        return isinstance(value, str) and value in self.options

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(o) for o in self.options)

    def invalid_examples(self) -> list:
        return ["no-such-choice", 1]


@dataclass(frozen=True)
class Text(Constraint):
    """A string; ``non_empty``: with something besides white space."""

    non_empty: bool = True

    def accepts(self, value) -> bool:
        return isinstance(value, str) and (not self.non_empty or bool(value.strip()))

    def __str__(self) -> str:
        return "a non-empty string" if self.non_empty else "a string"

    def invalid_examples(self) -> list:
        return [3, ["a"], *([" "] if self.non_empty else [])]


@dataclass(frozen=True)
class IsNone(Constraint):
    def accepts(self, value) -> bool:
        return value is None

    def __str__(self) -> str:
        return "None"

    def invalid_examples(self) -> list:
        return []  # None is refused only by the other constraints of a setting


@dataclass(frozen=True)
class Boolean(Constraint):
    def accepts(self, value) -> bool:
        return isinstance(value, bool)

    def __str__(self) -> str:
        return "true or false"

    def invalid_examples(self) -> list:
        return ["yes", 1]


@dataclass(frozen=True)
class PathLike(Constraint):
    """A path (a string or ``os.PathLike``), stored as a ``Path``."""

    def accepts(self, value) -> bool:
        return isinstance(value, str | Path) and bool(str(value).strip())

    def coerce(self, value):
        return Path(value)

    def __str__(self) -> str:
        return "a path"

    def invalid_examples(self) -> list:
        return [3, ""]


@dataclass(frozen=True)
class AnyMapping(Constraint):
    """A mapping (``values``: whose every value one of these constraints accepts), stored as a dict."""

    values: tuple[Constraint, ...] = ()
    what: str = "an object"

    def accepts(self, value) -> bool:
        if not isinstance(value, Mapping):
            return False
        return not self.values or all(any(c.accepts(v) for c in self.values) for v in value.values())

    def coerce(self, value):
        return dict(value)

    def __str__(self) -> str:
        return self.what

    def invalid_examples(self) -> list:
        return [3, "x"]


@dataclass(frozen=True)
class ListOf(Constraint):
    """A list or tuple whose every item one of ``items`` accepts, stored as a tuple (each item
    coerced); ``min_len``/``length`` bound its size, ``unique`` refuses repeats, ``increasing``
    asks for items in strictly rising order."""

    items: tuple[Constraint, ...]
    min_len: int = 0
    length: int | None = None
    unique: bool = False
    increasing: bool = False
    what: str | None = None
    container: type = tuple  # what the coerced value is (a RunConfig keeps lists)

    def _item(self, value):
        for c in self.items:
            if c.accepts(value):
                return True, c.coerce(value)
        return False, value

    def accepts(self, value) -> bool:
        if not isinstance(value, list | tuple) or len(value) < self.min_len:
            return False
        if self.length is not None and len(value) != self.length:
            return False
        checked = [self._item(v) for v in value]
        if not all(ok for ok, _ in checked):
            return False
        items = [v for _, v in checked]
        if self.unique and len({repr(v) for v in items}) != len(items):
            return False
        return not (self.increasing and any(a >= b for a, b in zip(items, items[1:], strict=False)))

    def coerce(self, value):
        return self.container(self._item(v)[1] for v in value)

    def __str__(self) -> str:
        if self.what:
            return self.what
        size = f"{self.length} " if self.length else "a non-empty list of " if self.min_len else "a list of "
        items = " or ".join(str(c) for c in self.items)
        return f"{size}{items}" + (", each once" if self.unique else "")

    def invalid_examples(self) -> list:
        bad_item = next((x for c in self.items for x in c.invalid_examples()
                         if x is not None and not any(o.accepts(x) for o in self.items)), object())
        out = ["x", [bad_item]]
        if self.min_len or self.length:
            out.append([])
        return out


def describe(constraints) -> str:
    """What the constraints accept, in words (None, a setting's "leave it out", goes unsaid)."""
    shown = [c for c in constraints if not isinstance(c, IsNone)] or constraints
    return " or ".join(str(c) for c in shown)


def check_value(name: str, value, constraints, where: str = ""):
    """``value`` as stored, or a UserError naming the setting, the value and what it must be."""
    for constraint in constraints:
        if constraint.accepts(value):
            return constraint.coerce(value)
    raise UserError(f"{where}option {name}={_shown(value)} must be {describe(constraints)}", name)


def check_document_value(source, key: str, value, constraints, fix: str):
    """A key of a file a user wrote or a run wrote: a UserError naming the file, the key and the fix."""
    for constraint in constraints:
        if constraint.accepts(value):
            return constraint.coerce(value)
    raise UserError(f"{source}: {key} must be {describe(constraints)}, not {_shown(value)}; {fix}")


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def param(default=dataclasses.MISSING, *constraints: Constraint, default_factory=dataclasses.MISSING):
    """A dataclass field with the constraints its value must meet (checked by ``check_fields``)."""
    return dataclasses.field(default=default, default_factory=default_factory,
                             metadata={CONSTRAINTS: tuple(constraints)})


def field_constraints(cls_or_obj) -> dict[str, tuple[Constraint, ...]]:
    """Each field's constraints (empty for a field declared without ``param``)."""
    return {f.name: f.metadata.get(CONSTRAINTS, ()) for f in dataclasses.fields(cls_or_obj)}


def check_fields(obj, where: str = "") -> None:
    """Check (and coerce in place) every constrained field of the dataclass ``obj``."""
    for name, constraints in field_constraints(obj).items():
        if constraints:
            object.__setattr__(obj, name, check_value(name, getattr(obj, name), constraints, where))
