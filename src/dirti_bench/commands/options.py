"""Option types shared by the subcommands: a bad value is argparse's one ``error:`` line, before any work."""

from __future__ import annotations

import argparse

SEED_LIMIT = 2**32  # numpy's and torch's seeds: 0 <= seed < 2**32


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def positive_int(text: str) -> int:
    value = _int(text)
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def non_negative_int(text: str) -> int:
    value = _int(text)
    if value is None or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 0")
    return value


def seed(text: str) -> int:
    value = _int(text)
    if value is None or not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"{text!r} is not a seed; use an integer from 0 to {SEED_LIMIT - 1}")
    return value
