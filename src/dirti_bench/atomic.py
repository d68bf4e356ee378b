"""Atomic file writes: a reader sees the old file or the whole new one, never half."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temp path beside ``target``; it replaces ``target`` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_bytes(target: Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: Path, text: str) -> None:
    write_bytes(target, text.encode("utf-8"))


@contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold Ctrl-C (and SIGTERM, which the CLI turns into the same interrupt) back for a few
    renames, so an interrupt never lands between them."""
    import signal
    import threading

    block = hasattr(signal, "pthread_sigmask") and threading.current_thread() is threading.main_thread()
    if block:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        if block:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


class StagedDir:
    """A folder written beside ``target`` that replaces it whole, or not at all.

    ``with StagedDir(out) as staged: write into staged.path; staged.commit()``. Until
    ``commit`` the target is untouched (an error or Ctrl-C removes the staging folder);
    ``commit`` swaps the new folder in and removes the earlier one, so no file of an earlier
    run survives next to the new one. Returns whether an earlier folder was replaced.
    """

    def __init__(self, target: Path):
        target = Path(target)
        # A link to a folder: replace the folder it names, not the link.
        self.target = target.resolve() if target.is_symlink() else target
        self.path: Path | None = None
        self.committed = False

    def __enter__(self) -> StagedDir:
        parent = self.target.parent
        parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.staging-", dir=parent))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.path, 0o777 & ~umask)  # mkdtemp makes 0700; give the folder normal permissions
        return self

    def commit(self, keep: Callable[[Path], bool] | None = None) -> bool:
        """Swap the staged folder in. ``keep(entry)``: entries of the earlier folder to carry over
        into the new one (where it has none of that name), e.g. another run's results nested in it."""
        old = None
        with _sigint_deferred():
            if self.target.exists() or self.target.is_symlink():
                old = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.old-", dir=self.target.parent))
                os.replace(self.target, old / "previous")
            try:
                os.replace(self.path, self.target)
            except BaseException:
                if old is not None:
                    os.replace(old / "previous", self.target)
                raise
            self.committed = True
            if old is not None and keep is not None and (old / "previous").is_dir():
                for entry in sorted((old / "previous").iterdir()):
                    if keep(entry) and not (self.target / entry.name).exists():
                        os.replace(entry, self.target / entry.name)
        if old is not None:
            _remove_tree(old)
        return old is not None

    def __exit__(self, *exc) -> None:
        if not self.committed and self.path is not None:
            _remove_tree(self.path)


def _remove_tree(path: Path) -> None:
    import shutil

    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)
