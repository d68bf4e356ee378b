"""Every model family runs offline on random weights, preprocessed and scored as it was trained:
ViT (QuickGELU and not), ResNet, ConvNeXt, SigLIP and SigLIP2, through tiny configs of the same
tower types (encoding/families.py)."""

from __future__ import annotations

import json

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from dirti_bench.cli import main
from dirti_bench.data.demo import make_demo
from dirti_bench.encoding.families import (
    FAMILY_RULES,
    TINY_FAMILIES,
    family_preprocess,
    full_decode_reason,
)
from dirti_bench.encoding.imaging import (
    encode_image_paths,
    normalise_batch,
    open_rgb,
    split_preprocess,
    stack_batch,
)
from dirti_bench.encoding.models import ClipEncoder, model_scoring, register_model_configs

DEFAULT = {"mean": open_clip.OPENAI_DATASET_MEAN, "std": open_clip.OPENAI_DATASET_STD, "interpolation": "bicubic",
           "resize_mode": "shortest"}
SIGMOID = {"dirti-tiny-sig", "dirti-tiny-sig2"}


def _published(name: str) -> list[dict]:
    from open_clip.pretrained import get_pretrained_cfg, list_pretrained_tags_by_model

    out = []
    for tag in list_pretrained_tags_by_model(name):
        cfg = get_pretrained_cfg(name, tag)
        out.append({"mean": tuple(cfg.get("mean", DEFAULT["mean"])), "std": tuple(cfg.get("std", DEFAULT["std"])),
                    "interpolation": cfg.get("interpolation", "bicubic"),
                    "resize_mode": cfg.get("resize_mode", "shortest")})
    return out


def test_family_rules_match_the_preprocessing_of_every_published_tag():
    """The name rule gives what open_clip's own table gives each tag of the families it covers,
    and the families it leaves to the defaults (CLIP ViT, ResNet, ConvNeXt) use the defaults."""
    names = [n for n in open_clip.list_models() if any(p.search(n) for p, _ in FAMILY_RULES)]
    names += [real for real in TINY_FAMILIES.values() if real not in names]
    checked = 0
    for name in names:
        want = family_preprocess(name) or DEFAULT
        want = {k: tuple(v) if isinstance(v, list | tuple) else v for k, v in want.items()}
        for published in _published(name):
            assert published == want, name
            checked += 1
    assert checked > 10


@pytest.fixture(scope="module")
def tiny_encoders():
    register_model_configs()
    encoders = {}
    for name in TINY_FAMILIES:
        encoder = ClipEncoder(name, "random", device="cpu", progress=False)
        encoder.load()
        encoders[name] = encoder
    return encoders


@pytest.fixture(scope="module")
def wide_photos(tmp_path_factory):
    """Non-square JPEGs (landscape 4:3, downscaled to 224) and a portrait PNG (upscaled)."""
    root = make_demo(tmp_path_factory.mktemp("families"), seed=5, n_disgust=1, n_neutral=0, size=(400, 300))
    paths = sorted(root.rglob("*.jpg"))[:4]
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:211, 0:131]  # photo-like: smooth shading plus grain (as tests/test_imaging.py)
    smooth = np.sin(xx / 17.0)[..., None] * 90 + np.cos(yy / 23.0)[..., None] * 60 + [120, 110, 100]
    portrait = tmp_path_factory.mktemp("portrait") / "tall.png"
    Image.fromarray(np.clip(smooth + rng.normal(0, 25, smooth.shape), 0, 255).astype(np.uint8)).save(portrait)
    return [*paths, portrait]


@pytest.mark.parametrize("name", list(TINY_FAMILIES))
def test_each_family_builds_with_its_own_towers_scoring_and_preprocessing(tiny_encoders, name):
    encoder = tiny_encoders[name]
    model, real = encoder._model, TINY_FAMILIES[name]
    cfg = open_clip.get_model_config(name)
    real_cfg = open_clip.get_model_config(real)
    # the same kind of towers and activation as the family it stands for
    for key in ("quick_gelu", "custom_text", "init_logit_bias"):
        assert cfg.get(key) == real_cfg.get(key), (name, key)
    for key in ("timm_pool", "timm_proj"):
        assert cfg["vision_cfg"].get(key) == real_cfg["vision_cfg"].get(key), (name, key)
    assert isinstance(cfg["vision_cfg"].get("layers"), list) == isinstance(real_cfg["vision_cfg"].get("layers"), list)
    for key in ("no_causal_mask", "pool_type", "proj_bias", "act_kwargs", "context_length"):
        assert cfg["text_cfg"].get(key) == real_cfg["text_cfg"].get(key), (name, key)
    # scored by its training objective
    assert model_scoring(model)["rule"] == ("sigmoid" if name in SIGMOID else "softmax")
    # preprocessed as the family: SigLIP squashes with mean/std 0.5, the others crop with OpenAI's
    split = split_preprocess(encoder._preprocess)
    want = family_preprocess(real) or DEFAULT
    np.testing.assert_allclose(split.mean, want["mean"])
    np.testing.assert_allclose(split.std, want["std"])
    assert split.tensor_resize is not None and split.tensor_resize.squash == (want["resize_mode"] == "squash")
    assert ("family_preprocess" in encoder.identity()) == (name in SIGMOID)


@pytest.mark.parametrize("name", list(TINY_FAMILIES))
def test_the_fast_decode_matches_each_familys_own_preprocessing(tiny_encoders, wide_photos, name):
    """On non-square images: at the real family's 224-px preprocessing, pixels within one level of
    its PIL steps (landscape and portrait, down- and upscaled); at the tiny model, embeddings within
    cosine 0.999 of open_clip's own preprocess + encode_image (the documented tolerance)."""
    encoder = tiny_encoders[name]
    model, preprocess = encoder._model, encoder._preprocess
    family = family_preprocess(name) or DEFAULT
    real = open_clip.image_transform(224, is_train=False, mean=family["mean"], std=family["std"],
                                     interpolation=family["interpolation"], resize_mode=family["resize_mode"])
    split = split_preprocess(real)
    assert split.tensor_resize is not None
    for path in wide_photos:
        x = open_rgb(path, None)
        ours = normalise_batch(stack_batch([np.asarray(x)], split, split.tensor_resize), split)
        for step in split.pil_steps:
            x = step(x)
        pil = normalise_batch(stack_batch([np.asarray(x)], split), split)
        assert ours.shape == pil.shape == (1, 3, 224, 224)
        levels = ((ours - pil) * torch.tensor(split.std).view(1, 3, 1, 1) * 255).abs()
        assert levels.max() <= 1 + 1e-3, path.name
    decode = encoder.decode  # the fast path, or the full decode a family falls back to
    assert (decode == "full") == (full_decode_reason(name) is not None) == (name == "dirti-tiny-convnext")
    fast = encode_image_paths(model, preprocess, wide_photos, "cpu", batch_size=8, num_workers=1, progress=False,
                              decode=decode)[0]
    with torch.inference_mode():
        stock = model.encode_image(torch.stack([preprocess(Image.open(p)) for p in wide_photos])).numpy()
    stock /= np.linalg.norm(stock, axis=1, keepdims=True)
    assert (fast * stock).sum(axis=1).min() >= 0.999
    if decode == "full":  # the fallback is needed: the shortcut really leaves the tolerance for this family
        shortcut = encode_image_paths(model, preprocess, wide_photos, "cpu", batch_size=8, num_workers=1,
                                      progress=False, decode="tensor-resize")[0]
        assert (shortcut * stock).sum(axis=1).min() < 0.999
        assert "full decode" in encoder.run_info()["decode_fallback"]


@pytest.mark.parametrize("name", list(TINY_FAMILIES))
def test_each_family_runs_the_demo_end_to_end(tmp_path, name):
    out = tmp_path / "out"
    code = main(["run", "--demo", "--model", name, "--no-progress", "--quiet", "--no-report", "--out", str(out),
                 "--scenarios", "zeroshot-disgust-binary", "align-disgust-zeroshot", "knn-cv10-baseline"])
    assert code == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["run"]["model"] == name
    rule = "sigmoid" if name in SIGMOID else "softmax"
    assert doc["run"]["scoring"]["rule"] == rule
    for sid in ("zeroshot-disgust-binary", "align-disgust-zeroshot"):
        assert doc["scenarios"][sid]["options"]["probability_rule"] == rule
    assert np.isfinite(doc["scenarios"]["align-disgust-zeroshot"]["metrics"]["spearman_rho"])
    assert ("alternative_score" in doc["scenarios"]["align-disgust-zeroshot"].get("extra", {})) == (rule == "sigmoid")
