"""The open_clip encoder factory: devices, weights sources, determinism, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dirti_bench.encoding.models import (
    ClipEncoder,
    WeightsSpec,
    checkpoint_sets_every_weight,
    describe_device,
    resolve_device,
    state_dict_sha256,
)
from dirti_bench.errors import UserError

TEXTS = ["This is a photo of food", "This is a disgusting photo of death"]


def tiny(**kw) -> ClipEncoder:
    return ClipEncoder("dirti-tiny", kw.pop("pretrained", "random"), device="cpu", progress=False,
                       num_workers=0, **kw)


def test_auto_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"


@pytest.mark.parametrize("device", ["cuda", "mps"])
def test_unavailable_device_is_a_user_error(monkeypatch, device):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(UserError, match=f"device '{device}' is not available.*use device cpu"):
        resolve_device(device)


def test_unknown_device_and_model_are_user_errors():
    with pytest.raises(UserError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    with pytest.raises(UserError, match="unknown model 'ViT-Nope'"):
        ClipEncoder("ViT-Nope", "random", device="cpu")


def test_run_info_names_the_hardware(monkeypatch):
    import os

    assert tiny().run_info()["device_name"].endswith(f", {os.cpu_count()} cores")
    # a GPU result names the card and CUDA version: results of two GPU generations differ in the last bits
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    assert describe_device("cuda") == "NVIDIA H100 80GB HBM3, CUDA 13.0"


def test_weights_spec_parses_every_source(tmp_path):
    ckpt = tmp_path / "w.pt"
    ckpt.write_bytes(b"x")
    assert WeightsSpec.parse("random").kind == "random"
    assert WeightsSpec.parse("openai").kind == "tag"
    assert WeightsSpec.parse("laion2b_s34b_b79k").kind == "tag"
    assert WeightsSpec.parse("hf-hub:timm/some-model").kind == "hf-hub"
    assert WeightsSpec.parse(str(ckpt)) == WeightsSpec("file", str(ckpt.resolve()))
    with pytest.raises(UserError, match="checkpoint file .*missing.pt not found"):
        WeightsSpec.parse(str(tmp_path / "missing.pt"))


def test_random_weights_are_seeded():
    a, b, c = tiny(seed=3), tiny(seed=3), tiny(seed=4)
    ea, eb, ec = (e.encode_texts(TEXTS) for e in (a, b, c))
    np.testing.assert_array_equal(ea, eb)
    assert not np.allclose(ea, ec)
    assert a.run_info()["weights_sha256"] == b.run_info()["weights_sha256"] != c.run_info()["weights_sha256"]
    assert a.run_info()["smoke_run"] is True


def test_embeddings_are_l2_normalised_float32(demo_stimuli):
    enc = tiny()
    paths = [s.path for s in demo_stimuli.stimuli[:5]]
    img, txt = enc.encode_images(paths), enc.encode_texts(TEXTS)
    for x, n in ((img, 5), (txt, 2)):
        assert x.dtype == np.float32 and x.shape == (n, 64)
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)


def test_checkpoint_file_gives_same_embeddings_as_in_memory_model(tmp_path, demo_stimuli):
    mem = tiny(seed=7)
    model = mem.load()
    ckpt = tmp_path / "tiny.pt"
    torch.save(model.state_dict(), ckpt)
    from_file = tiny(pretrained=str(ckpt))
    paths = [s.path for s in demo_stimuli.stimuli[:4]]
    np.testing.assert_allclose(from_file.encode_images(paths), mem.encode_images(paths), atol=1e-6)
    np.testing.assert_allclose(from_file.encode_texts(TEXTS), mem.encode_texts(TEXTS), atol=1e-6)
    info = from_file.run_info()
    import hashlib

    assert info["weights_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert info["smoke_run"] is False
    assert state_dict_sha256(from_file.load()) == state_dict_sha256(model)


TINY_RESNET = {"embed_dim": 32, "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 16},
               "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}


@pytest.fixture(scope="module")
def tiny_resnet(tmp_path_factory):
    """A ModifiedResNet CLIP (batch norms, attention pooling) small enough to build in a test."""
    import json

    import open_clip

    folder = tmp_path_factory.mktemp("configs")
    (folder / "test-tiny-resnet.json").write_text(json.dumps(TINY_RESNET))
    open_clip.add_model_config(folder)
    return "test-tiny-resnet"


def _counting_initialiser(monkeypatch) -> list:
    """Count torch's kaiming_uniform_ calls (every nn.Linear and conv draws its weights with it)."""
    calls, original = [], torch.nn.init.kaiming_uniform_

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(torch.nn.init, "kaiming_uniform_", counted)
    return calls


@pytest.mark.parametrize("model", ["dirti-tiny", "resnet"])
def test_checkpoint_load_skips_random_init_and_equals_open_clips_own_load(model, tmp_path, tiny_resnet,
                                                                           monkeypatch):
    import open_clip

    name = tiny_resnet if model == "resnet" else model
    torch.manual_seed(5)
    ckpt = tmp_path / "w.pt"
    torch.save(open_clip.create_model(name).state_dict(), ckpt)
    stock = open_clip.create_model_and_transforms(name, pretrained=str(ckpt))[0].eval()
    calls = _counting_initialiser(monkeypatch)
    loaded = ClipEncoder(name, str(ckpt), device="cpu", progress=False).load()
    assert calls == []  # nothing drawn that the checkpoint overwrites
    # Every parameter and every buffer (non-persistent ones such as attention masks included) as open_clip's load.
    for ours, theirs in ((loaded.named_parameters(), stock.named_parameters()),
                         (loaded.named_buffers(), stock.named_buffers())):
        ours, theirs = dict(ours), dict(theirs)
        assert ours.keys() == theirs.keys()
        for key in ours:
            assert torch.equal(ours[key], theirs[key]), key
    images = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(loaded.encode_image(images), stock.encode_image(images))
    # After the build every initialiser is torch's again: seeded random weights still draw them.
    ClipEncoder(name, "random", device="cpu", progress=False).load()
    assert calls


def test_only_strictly_loaded_weights_skip_random_init(tmp_path):
    assert checkpoint_sets_every_weight(WeightsSpec("tag", "openai"))
    assert checkpoint_sets_every_weight(WeightsSpec("hf-hub", "hf-hub:org/repo"))
    assert checkpoint_sets_every_weight(WeightsSpec("file", str(tmp_path / "w.safetensors")))
    assert not checkpoint_sets_every_weight(WeightsSpec("file", str(tmp_path / "big_vision.npz")))
    assert not checkpoint_sets_every_weight(WeightsSpec("random", "random"))


def test_truncated_checkpoint_is_a_user_error(tmp_path):
    ckpt = tmp_path / "tiny.pt"
    torch.save(tiny().load().state_dict(), ckpt)
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 3])
    with pytest.raises(UserError, match=r"cannot load checkpoint .*tiny.pt .*truncated"):
        tiny(pretrained=str(ckpt)).load()


def test_unavailable_pretrained_tag_is_a_user_error_offline():
    # dirti-tiny has no published weights; offline, any tag must fail fast with the way out.
    with pytest.raises(UserError, match="cannot get 'openai' weights for dirti-tiny.*local checkpoint as pretrained weights"):
        tiny(pretrained="openai").load()


@pytest.mark.parametrize(("model", "pretrained", "pattern"), [
    ("ViT-B-32-quickgelu", "openai", r"cannot get 'openai' weights for ViT-B-32-quickgelu .*offline, pass the path to a local checkpoint"),
    ("ViT-B-32", "hf-hub:timm/vit_base_patch32_clip_224.openai",
     r"cannot load hf-hub:timm/vit_base_patch32_clip_224.openai .*local checkpoint as pretrained weights"),
])
def test_hub_weights_offline_fail_fast_with_the_way_out(model, pretrained, pattern):
    # HF_HUB_OFFLINE=1 (conftest): no DNS retries, one precise error instead.
    with pytest.raises(UserError, match=pattern):
        ClipEncoder(model, pretrained, device="cpu", progress=False).load()


@pytest.mark.parametrize("cycle", [False, True])
def test_release_frees_the_model_even_in_a_reference_cycle(cycle):
    import weakref

    enc = tiny()
    model = enc.load()
    if cycle:
        model.visual.owner = [model]  # a cycle only the garbage collector can free
    ref = weakref.ref(model)
    del model
    enc.release()
    assert ref() is None and enc._model is None


def test_prompt_embeddings_do_not_depend_on_the_callers_thread_limit():
    """Evaluators encode prompts inside a one-thread limit, image shards and the precision check
    outside it; the cache keeps whichever came first, so both must give the same bits."""
    from threadpoolctl import threadpool_limits

    texts = [f"This is a photo of {c}" for c in ("food", "animals", "body products", "injuries/infections", "death",
                                                 "hygiene")]  # the demo's category prompts, one call
    encoder = ClipEncoder("dirti-tiny", "random", device="cpu")
    with threadpool_limits(limits=1):
        limited = encoder.encode_texts(texts)
    with threadpool_limits(limits=2):
        assert np.array_equal(encoder.encode_texts(texts), limited)
