"""Shared fixtures: an offline, isolated environment and a generated DIRTI-layout set."""

from __future__ import annotations

import shutil

import pytest

from dirti_bench.demo import make_demo
from dirti_bench.stimuli import load_dirti


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No network (a missing weight fails fast) and a fresh cache per test."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DIRTI_BENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    return tmp_path


@pytest.fixture(scope="session")
def demo_master(tmp_path_factory):
    """The seed-0 demo set, generated once per session; copy it before modifying."""
    return make_demo(tmp_path_factory.mktemp("demo") / "dirti", seed=0)


@pytest.fixture
def demo_copy(demo_master, tmp_path):
    """A private, writable copy of the demo set."""
    dest = tmp_path / "dirti"
    shutil.copytree(demo_master, dest)
    return dest


@pytest.fixture(scope="session")
def demo_stimuli(demo_master):
    return load_dirti(demo_master)
