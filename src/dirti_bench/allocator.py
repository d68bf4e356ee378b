"""glibc's malloc, told to keep freed memory for reuse: CPU forwards stop re-faulting their pages.

A CPU forward allocates and frees tens of MB of activations per layer and batch. By default glibc
serves blocks that large from fresh ``mmap`` pages (zeroed by the kernel on first touch) until its
dynamic threshold has caught up, and trims its heap back to the system after frees, so the same
memory is faulted in again and again. Raising both thresholds keeps it, for a little more peak
RSS (what it saves, measured: docs/performance.md). PyTorch's CPU tuning guide gets the same from
jemalloc or tcmalloc; this needs neither.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
KEEP_BYTES = 1 << 30  # blocks below 1 GiB come from the heap, and up to 1 GiB free stays mapped


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; whether it applied (glibc only:
    elsewhere the platform's allocator is left as it is)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - glibc, not musl (whose mallopt does nothing)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, KEEP_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))
