"""The one exception type a user can fix.

The CLI turns it into a single ``error: ...`` line and exit code 2; every
message names the offending file or value and says how to fix it.
"""


class UserError(Exception):
    """A problem with the user's input, environment or options (exit code 2)."""


class LabelConsistencyError(ValueError):
    """Prompts, ground truth and predictions do not share one label space."""
