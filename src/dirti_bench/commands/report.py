from __future__ import annotations

from ..errors import UserError


def add_arguments(p) -> None:
    pass


def run(args) -> int:
    raise UserError("not implemented yet")
