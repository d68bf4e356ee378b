"""JSON text from files a user hands us (sidecars, templates, baselines, results.json, caches)."""

from __future__ import annotations

import json


def loads(text: str | bytes):
    """``json.loads``, where nesting deeper than Python's recursion limit (``[[[[...``) is one more
    ``json.JSONDecodeError`` (so every loader's "not valid JSON" line covers it), not a RecursionError."""
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply to read (hundreds of levels of [ or {)", "", 0) from None
