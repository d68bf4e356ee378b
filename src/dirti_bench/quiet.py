"""Library log lines and warnings held back while a library call may fail.

open_clip reports a failed weights download with ``logging.error`` on the root logger
(which configures logging on the spot and prints ``ERROR:root:...``), pooch announces
each download on a logger of its own, and libraries warn through ``warnings``. When
such a call fails, the user must see one line: our ``error:``. ``held_back()``
captures those records and warnings; when the block succeeds they are replayed as
they would have appeared (after it), when it raises they are dropped. Progress bars
(tqdm) write to the terminal directly and are untouched.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager


class _Capture(logging.Handler):
    """Keeps each record once (a record propagating through several swapped loggers comes by twice)."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not any(record is kept for kept in self.records):
            self.records.append(record)


def _loggers_with_handlers(extra) -> list[logging.Logger]:
    named = [lg for lg in list(logging.Logger.manager.loggerDict.values())
             if isinstance(lg, logging.Logger) and lg.handlers]
    out: list[logging.Logger] = []
    for logger in [logging.getLogger(), *named, *extra]:
        if not any(logger is seen for seen in out):
            out.append(logger)
    return out


@contextmanager
def held_back(*loggers: logging.Logger) -> Iterator[None]:
    """Hold back log records (the root logger, every logger with handlers, and ``loggers``, for
    libraries whose logger lives outside ``logging.getLogger``) and warnings raised in the block."""
    capture = _Capture()
    saved = [(logger, logger.handlers[:]) for logger in _loggers_with_handlers(loggers)]
    for logger, _ in saved:
        logger.handlers = [capture]
    try:
        with warnings.catch_warnings(record=True) as caught:  # the filters in force still apply
            yield
    finally:
        for logger, handlers in saved:
            logger.handlers = handlers
    # reached only on success: show what was held back, in order, through the original handlers
    by_name = {logger.name: logger for logger, _ in saved}
    for record in capture.records:
        logger = by_name.get(record.name) or logging.getLogger(record.name)
        logger.handle(record)
    for w in caught:
        warnings.showwarning(w.message, w.category, w.filename, w.lineno, w.file, w.line)
