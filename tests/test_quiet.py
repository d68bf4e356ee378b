"""Library log lines and warnings are held back on failure paths (one ``error:`` line, ours) and
shown as before when the call succeeds."""

from __future__ import annotations

import logging
import sys
import warnings
from contextlib import contextmanager

import pytest

from dirti_bench.cli import main
from dirti_bench.quiet import held_back


class LibraryFailure(Exception):
    pass


@contextmanager
def fresh_process_logging():
    """The root logger without handlers, as in a fresh 'dirti-bench' process. pytest attaches its
    capture handlers for every test phase, so this runs inside the test body; whatever handler a
    library's ``logging.error`` adds (basicConfig, bound to the captured stderr) goes afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers = []
    try:
        yield root
    finally:
        root.handlers = saved


def own_library_logger() -> logging.Logger:
    """A logger outside logging.getLogger with its own stderr handler, as pooch's is."""
    logger = logging.Logger("own-library")
    logger.addHandler(logging.StreamHandler(sys.stderr))
    return logger


def test_failure_drops_root_and_library_logger_lines_and_warnings(capsys):
    own = own_library_logger()
    with fresh_process_logging() as root, warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        with pytest.raises(LibraryFailure), held_back(own):
            logging.error("Failed to download weights")  # unheld: configures the root logger, prints ERROR:root:
            own.warning("Downloading file 'x' ...")
            warnings.warn("a library warning", UserWarning, stacklevel=1)
            raise LibraryFailure
        assert root.handlers == []  # nothing configured behind the user's back
    assert shown == []
    assert capsys.readouterr().err == ""
    assert len(own.handlers) == 1 and type(own.handlers[0]) is logging.StreamHandler


def test_without_it_the_same_lines_would_show(capsys):
    """The failure test above can fail: unheld, these calls print."""
    own = own_library_logger()
    with fresh_process_logging():
        logging.error("Failed to download weights")
        own.warning("Downloading file 'x' ...")
    err = capsys.readouterr().err
    assert "ERROR:root:Failed to download weights" in err and "Downloading file 'x' ..." in err


def test_success_shows_what_was_held_back(capsys):
    own = own_library_logger()
    with fresh_process_logging(), warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        with held_back(own):
            logging.warning("Model initialized randomly.")
            own.warning("Downloading file 'x' ...")
            warnings.warn("a library warning", UserWarning, stacklevel=1)
            assert capsys.readouterr().err == "" and shown == []  # held back while the call runs
    err = capsys.readouterr().err
    assert "Model initialized randomly." in err and "Downloading file 'x' ..." in err
    assert [str(w.message) for w in shown] == ["a library warning"]


def test_offline_tag_download_failure_is_one_error_line(tmp_path, capsys):
    """open_clip logs 'ERROR:root:Failed to download weights ...' before raising; only ours shows."""
    with fresh_process_logging():
        code = main(["run", "--demo", "--model", "ViT-B-32-quickgelu", "--pretrained", "openai", "--no-progress",
                     "--scenarios", "zeroshot-baseline", "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    lines = [line for line in (captured.out + captured.err).splitlines() if line.strip()]
    # the run's own stage lines, then only our error: no library log line in between
    assert code == 2 and [line.split(":")[0] for line in lines[:-1]] == ["stimuli", "model", "images"], lines
    assert lines[-1].startswith("error: cannot get 'openai' weights"), lines
    assert not (tmp_path / "out").exists()
