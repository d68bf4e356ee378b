"""Shared fixtures: an offline, isolated environment and a generated DIRTI-layout set."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from dirti_bench.data.demo import make_demo
from dirti_bench.data.dirti import load_dirti

# huggingface_hub reads these when it is first imported (open_clip imports it), so they are set
# before any test runs; isolated_env below repeats them per test for code that reads them later.
os.environ["HF_HUB_OFFLINE"] = "1"
SESSION_HF_HOME = tempfile.mkdtemp(prefix="dirti-bench-tests-hf-")
os.environ["HF_HOME"] = SESSION_HF_HOME

# Nothing listens on the discard port of loopback: a download a test did not mean to make is refused
# at once instead of reaching Zenodo.
UNREACHABLE_ZENODO = "http://127.0.0.1:9"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No network and none of the user's caches: Hugging Face offline with its own empty home, the
    Zenodo URL on a closed loopback port, and a fresh dirti-bench cache per test."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for var, folder in (("HF_HOME", "hf"), ("TORCH_HOME", "torch"), ("XDG_CACHE_HOME", "xdg-cache"),
                        ("DIRTI_BENCH_HOME", "home")):
        monkeypatch.setenv(var, str(tmp_path / folder))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("DIRTI_BENCH_ZENODO_URL", UNREACHABLE_ZENODO)
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


@pytest.fixture(autouse=True, scope="session")
def _no_leftover_hf_home():
    """The session's private Hugging Face home goes when the session ends."""
    yield
    shutil.rmtree(SESSION_HF_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_clip():
    """The seeded ``dirti-tiny`` open_clip model (eval mode) and its preprocess, built once."""
    import open_clip
    import torch

    from dirti_bench.encoding.models import register_model_configs

    register_model_configs()
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("dirti-tiny", pretrained=None)
    return model.eval(), preprocess


@pytest.fixture(scope="session")
def dirti_sized_photos(tmp_path_factory):
    """Six DIRTI-sized (1024x768) JPEGs, one per category."""
    root = make_demo(tmp_path_factory.mktemp("big"), seed=3, n_disgust=1, n_neutral=0, size=(1024, 768))
    return sorted(root.rglob("*.jpg"))
