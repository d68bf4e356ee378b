"""pytest plugin for tests/ and benchmarks/ (loaded with ``-p dirti_bench.pytest_plugin`` from
pyproject's addopts; tox's device environments rely on it).

``DIRTI_BENCH_DEVICE`` (set by ``tox -e cuda`` / ``tox -e mps``) names the device
the benchmark session runs on. On a machine without it, every device-bound test
(benchmarks/ and tests marked ``device``) is skipped with one folded line of
reason, instead of failing or silently running on the CPU.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DEVICE_ENV = "DIRTI_BENCH_DEVICE"


def pytest_configure(config):
    config.addinivalue_line("markers", f"device: runs on ${DEVICE_ENV}; skipped where that device is missing")
    config.addinivalue_line("markers", "perf: asserts timings or runs at full size; deselected by default, run with 'pytest -m perf'")
    config.addinivalue_line("markers", "slow: a heavy end-to-end case (subprocess runs, full reports, sweeps); "
                                       "deselected by default, run with 'pytest -m slow' (CI runs them)")
    # umap's numba kernels compile once and are cached here across sessions (see dirti_bench.reporting.projection).
    if getattr(config, "cache", None) is not None:  # absent with -p no:cacheprovider
        os.environ.setdefault("NUMBA_CACHE_DIR", str(config.cache.mkdir("numba")))


def device_skip_reason(device: str | None) -> str | None:
    """None if ``device`` is usable here (or not requested), else a one-line reason."""
    if not device or device in ("auto", "cpu"):
        return None
    from dirti_bench.encoding.models import resolve_device
    from dirti_bench.errors import UserError

    try:
        resolve_device(device)
    except UserError as exc:
        return f"{DEVICE_ENV}={device}: {exc}"
    return None


_REASON: dict[str, str | None] = {}


def pytest_runtest_setup(item):
    """Skip device-bound tests from here (not a fixture) so pytest folds them into one line."""
    benchmarks = item.config.rootpath / "benchmarks"
    bound = item.get_closest_marker("device") is not None or benchmarks in Path(item.path).parents
    if not bound:
        return
    device = os.environ.get(DEVICE_ENV)
    if device not in _REASON:
        _REASON[device] = device_skip_reason(device)
    if _REASON[device]:
        pytest.skip(_REASON[device])
