"""transformers-format CLIP and SigLIP directories behind the same encoder interface: a small
random model saved with save_pretrained gives the embeddings of a direct transformers forward."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

transformers = pytest.importorskip("transformers")  # the [hf] extra

from dirti_bench.encoding.cache import CachedEncoder  # noqa: E402
from dirti_bench.encoding.models import ClipEncoder, WeightsSpec  # noqa: E402
from dirti_bench.errors import UserError  # noqa: E402

TOWER = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)


def clip_tokenizer(folder):
    """CLIP's own BPE vocabulary (open_clip ships it), as a transformers CLIPTokenizer: offline."""
    from open_clip.tokenizer import SimpleTokenizer

    simple = SimpleTokenizer()
    names = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}  # transformers' spelling
    (folder / "vocab.json").write_text(json.dumps({names.get(k, k): v for k, v in simple.encoder.items()}))
    merges = sorted(simple.bpe_ranks, key=simple.bpe_ranks.get)
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    return transformers.CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))


def saved(tmp_path, kind: str):
    torch.manual_seed(0)
    folder = tmp_path / kind
    folder.mkdir()
    tokenizer = clip_tokenizer(tmp_path)
    if kind == "clip":
        config = transformers.CLIPConfig(text_config=dict(vocab_size=49408, max_position_embeddings=77, **TOWER),
                                         vision_config=dict(image_size=32, patch_size=8, **TOWER), projection_dim=16)
        model = transformers.CLIPModel(config)
        processor = transformers.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    else:
        config = transformers.SiglipConfig(
            text_config=dict(vocab_size=49408, max_position_embeddings=16, pad_token_id=49407, eos_token_id=49407,
                             bos_token_id=49406, **TOWER),
            vision_config=dict(image_size=32, patch_size=8, **TOWER))
        model = transformers.SiglipModel(config)
        with torch.no_grad():
            model.logit_bias.fill_(-3.0)
        processor = transformers.SiglipImageProcessor(size={"height": 32, "width": 32})
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, model.eval(), processor, tokenizer


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf-photos")
    rng = np.random.default_rng(0)
    paths = []
    for i, size in enumerate([(80, 50), (50, 90), (64, 64)]):
        yy, xx = np.mgrid[0:size[1], 0:size[0]]
        smooth = np.sin(xx / 7.0)[..., None] * 90 + np.cos(yy / 9.0)[..., None] * 60 + [120, 110, 100]
        path = folder / f"{i}.png"
        Image.fromarray(np.clip(smooth + rng.normal(0, 10, smooth.shape), 0, 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def features(out):
    return (out if hasattr(out, "shape") else out.pooler_output).detach().numpy()


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_embeddings_equal_a_direct_transformers_forward(tmp_path, photos, kind):
    folder, model, processor, tokenizer = saved(tmp_path, kind)
    assert WeightsSpec.parse(str(folder)).kind == "transformers"
    encoder = ClipEncoder(kind, str(folder), device="cpu", progress=False, decode="full")
    texts = ["a photo of food", "This is a disgusting photo of death"]
    ours_text = encoder.encode_texts(texts)
    length = model.config.text_config.max_position_embeddings
    ids = tokenizer(texts, padding="max_length", max_length=length, truncation=True, return_tensors="pt")
    with torch.no_grad():
        direct_text = features(model.get_text_features(input_ids=ids["input_ids"]))
    np.testing.assert_allclose(ours_text, unit(direct_text), atol=1e-5)
    ours_images = encoder.encode_images(photos)
    pixels = processor([Image.open(p).convert("RGB") for p in photos], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        direct_images = unit(features(model.get_image_features(pixel_values=pixels)))
    # the processor's own resampling (PIL, numpy) against torchvision's: the same images within rounding
    assert (ours_images * direct_images).sum(axis=1).min() > 0.9999
    # the default decode shortcut: squash (SigLIP) runs as the tensor op, the processor's crop (CLIP)
    # falls back to PIL steps; both within the documented cosine 0.999
    fast = ClipEncoder(kind, str(folder), device="cpu", progress=False)
    assert (fast.encode_images(photos) * direct_images).sum(axis=1).min() > 0.999
    scoring = encoder.scoring()
    assert scoring["rule"] == ("sigmoid" if kind == "siglip" else "softmax")
    assert scoring["logit_scale"] == pytest.approx(model.logit_scale.detach().exp().item())
    if kind == "siglip":
        assert scoring["logit_bias"] == pytest.approx(-3.0)


def test_the_cache_is_keyed_by_the_weights_sha256(tmp_path, photos):
    import hashlib

    folder, *_ = saved(tmp_path, "clip")
    encoder = ClipEncoder("clip", str(folder), device="cpu", progress=False)
    weights = folder / "model.safetensors"
    assert encoder.identity()["weights"] == f"sha256:{hashlib.sha256(b'model.safetensors' + weights.read_bytes()).hexdigest()}"
    cached = CachedEncoder(encoder, tmp_path / "cache")
    first = cached.encode_texts(["a photo"])
    again = CachedEncoder(ClipEncoder("clip", str(folder), device="cpu", progress=False), tmp_path / "cache")
    np.testing.assert_array_equal(again.encode_texts(["a photo"]), first)
    assert again.encoder._model is None  # served from the cache


def test_a_directory_without_processor_config_is_a_user_error(tmp_path):
    folder, *_ = saved(tmp_path, "clip")
    (folder / "preprocessor_config.json").unlink()
    with pytest.raises(UserError, match="no preprocessor_config.json"):
        ClipEncoder("clip", str(folder), device="cpu", progress=False).identity()
