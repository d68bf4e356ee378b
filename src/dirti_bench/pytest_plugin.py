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
    if not config.pluginmanager.has_plugin("dirti-bench-one-round-tables"):
        config.pluginmanager.register(OneRoundTables(), "dirti-bench-one-round-tables")
    # umap's numba kernels compile once and are cached here across sessions (see dirti_bench.reporting.projection).
    if getattr(config, "cache", None) is not None:  # absent with -p no:cacheprovider
        os.environ.setdefault("NUMBA_CACHE_DIR", str(config.cache.mkdir("numba")))


class OneRoundTables:
    """pytest-benchmark's timing table only for benchmarks measured over more than one round: a
    single round (the correctness checks of the default run) has no spread and means nothing as a
    timing, so its row is left out, with one line saying so."""

    @pytest.hookimpl(tryfirst=True)  # before pytest-benchmark draws its table
    def pytest_terminal_summary(self, terminalreporter, config):
        session = getattr(config, "_benchmarksession", None)
        if session is None or not getattr(session, "groups", None):
            return
        kept, dropped = [], 0
        for name, rows in session.groups:
            timed = [row for row in rows if row.get("rounds", 0) > 1]
            dropped += len(rows) - len(timed)
            if timed:
                kept.append((name, timed))
        session.groups = kept
        if dropped:
            terminalreporter.write_line(f"pytest-benchmark: {dropped} benchmark(s) ran one round each (no timing "
                                        "to read), so they are left out of its table; 'pytest -m perf' times them")


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
