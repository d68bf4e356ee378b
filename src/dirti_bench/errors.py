"""The one exception type a user can fix.

The CLI turns it into a single ``error: ...`` line and exit code 2; every
message names the offending file or value and says how to fix it.
"""


class UserError(Exception):
    """A problem with the user's input, environment or options (exit code 2)."""


class LabelConsistencyError(ValueError):
    """Prompts, ground truth and predictions do not share one label space."""


class ScenarioNotRunnable(UserError):
    """The data cannot support a scenario (one category, no disgust rating, too few examples).

    A run checks this for every scenario before encoding, skips those that cannot run with one
    line of reason, records them in results.json under ``skipped``, and runs the rest.
    """
