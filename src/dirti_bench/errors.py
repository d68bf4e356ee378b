"""The one exception type a user can fix.

The library's messages are neutral (an API caller never typed ``--out``): a message names the
offending file or value and says how to fix it, and ``option`` names the setting to change by its
Python name (``out``, ``n_raters``). The CLI turns the error into a single ``error: ...`` line,
adds the command-line flag for ``option``, and exits with code 2.
"""

import re


class UserError(ValueError):
    """A problem with the user's input, environment or options (exit code 2).

    ``option``: the setting that fixes it, by its keyword name (``RunConfig``'s field or an
    evaluator option), or a tuple of names where the message offers several fixes; None where no
    setting does.
    """

    def __init__(self, message: str, option: str | tuple[str, ...] | None = None):
        super().__init__(message)
        self.option = option


class LabelConsistencyError(ValueError):
    """Prompts, ground truth and predictions do not share one label space."""


class ScenarioNotRunnable(UserError):
    """The data cannot support a scenario (one category, no disgust rating, too few examples).

    A run checks this for every scenario before encoding, skips those that cannot run with one
    line of reason, records them in results.json under ``skipped``, and runs the rest.
    """


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text) -> str:
    """``text`` with every control character escaped (a newline as ``\\n``): a file name, folder or
    set name holding a newline cannot turn one error or stage line into two, or forge an
    ``error:`` line in a summary."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text))
