"""Image pipeline: same embeddings as open_clip's preprocess + encode_image, bounded memory, clear errors."""

from __future__ import annotations

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from dirti_bench import imaging
from dirti_bench.demo import make_demo
from dirti_bench.encoders import ClipEncoder, register_model_configs
from dirti_bench.errors import UserError
from dirti_bench.imaging import (
    encode_image_paths,
    iter_batches,
    open_rgb,
    split_preprocess,
    to_batch,
)


@pytest.fixture(scope="module")
def tiny():
    register_model_configs()
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("dirti-tiny", pretrained=None)
    return model.eval(), preprocess


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Six DIRTI-sized (1024x768) JPEGs, one per category."""
    root = make_demo(tmp_path_factory.mktemp("big"), seed=3, n_disgust=1, n_neutral=0, size=(1024, 768))
    return sorted(root.rglob("*.jpg"))


def _stock(model, preprocess, paths) -> np.ndarray:
    with torch.inference_mode():
        x = torch.stack([preprocess(Image.open(p)) for p in paths])
        feats = model.encode_image(x).numpy()
    return feats / np.linalg.norm(feats, axis=1, keepdims=True)


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_full_decode_equals_open_clip(tiny, demo_stimuli, workers):
    model, preprocess = tiny
    paths = [s.path for s in demo_stimuli.stimuli][:13]
    feats, forwards = encode_image_paths(model, preprocess, paths, "cpu", batch_size=4,
                                         num_workers=workers, progress=False, decode="full")
    assert forwards == 4
    np.testing.assert_allclose(feats, _stock(model, preprocess, paths), atol=1e-5)


def test_batched_tail_is_bit_identical_to_totensor_normalize(tiny, demo_stimuli):
    _, preprocess = tiny
    split = split_preprocess(preprocess)
    assert split.batched_tail and split.input_size == 64
    paths = [s.path for s in demo_stimuli.stimuli][:3]
    items = []
    for p in paths:
        x = open_rgb(p, None)
        for step in split.pil_steps:
            x = step(x)
        items.append(np.asarray(x))
    assert torch.equal(to_batch(items, split), torch.stack([preprocess(Image.open(p)) for p in paths]))


def test_jpeg_draft_decodes_smaller_but_never_below_the_input_size(photos):
    full, draft = open_rgb(photos[0], None), open_rgb(photos[0], 224)
    assert full.size == (1024, 768)
    assert draft.size == (512, 384)  # 1/2 DCT scale; 1/4 (256x192) would be below 224
    assert open_rgb(photos[0], 400).size == (1024, 768)  # 1/2 would give 384 < 400


def test_jpeg_draft_stays_within_cosine_0999_of_open_clip(tiny, photos):
    model, preprocess = tiny
    feats, _ = encode_image_paths(model, preprocess, photos, "cpu", batch_size=4, num_workers=1,
                                  progress=False, decode="jpeg-draft")
    stock = _stock(model, preprocess, photos)
    assert (feats * stock).sum(axis=1).min() >= 0.999
    assert not np.allclose(feats, stock, atol=1e-6)  # the shortcut really ran


def test_png_is_never_drafted(tmp_path):
    path = tmp_path / "x.png"
    Image.new("RGB", (1024, 768), (10, 20, 30)).save(path)
    assert open_rgb(path, 224).size == (1024, 768)


@pytest.mark.parametrize("workers", [0, 1])
def test_corrupt_image_is_a_user_error_naming_the_file(tiny, demo_copy, workers):
    model, preprocess = tiny
    paths = sorted(demo_copy.rglob("*.jpg"))[:6]
    paths[4].write_bytes(paths[4].read_bytes()[:300])  # truncated JPEG
    with pytest.raises(UserError, match=rf"cannot decode image {paths[4]}.*replace the file") as err:
        encode_image_paths(model, preprocess, paths, "cpu", batch_size=2, num_workers=workers, progress=False)
    assert "\n" not in str(err.value)


def test_prefetch_is_bounded():
    """Decoding runs at most PREFETCH_BATCHES + 1 batches ahead of the consumer."""
    started = []

    def decode(chunk):
        started.append(chunk)
        return list(chunk), ""

    paths = list(range(40))
    ahead = []
    for consumed, batch in enumerate(iter_batches(paths, 2, decode, workers=2), start=1):
        ahead.append(len(started) - consumed)
        assert batch == paths[2 * consumed - 2:2 * consumed]
    assert len(started) == 20
    assert max(ahead) <= imaging.PREFETCH_BATCHES


@pytest.mark.parametrize("workers", [1, 3])
def test_split_batches_come_back_whole_and_in_order(workers):
    """CPU mode (ahead=0): each batch is shared out over the threads and reassembled in order."""
    decoded = []

    def decode(chunk):
        decoded.extend(chunk)
        return [x * 10 for x in chunk], ""

    batches = list(iter_batches(list(range(11)), 4, decode, workers=workers, ahead=0))
    assert batches == [[0, 10, 20, 30], [40, 50, 60, 70], [80, 90, 100]]
    assert sorted(decoded) == list(range(11))


@pytest.mark.parametrize("ahead", [0, imaging.PREFETCH_BATCHES])  # CPU mode, accelerator mode
def test_encoding_streams_instead_of_holding_every_image(tiny, demo_stimuli, monkeypatch, ahead):
    model, preprocess = tiny
    monkeypatch.setattr(imaging, "decode_ahead", lambda device: ahead)
    decoded = []
    real = imaging._decode_one
    monkeypatch.setattr(imaging, "_decode_one", lambda *a: decoded.append(1) or real(*a))
    held = []

    class Counting(torch.nn.Module):
        def encode_image(self, x):
            held.append(len(decoded) - 3 * len(held))  # decoded but not yet encoded, this batch included
            return model.encode_image(x)

    paths = [s.path for s in demo_stimuli.stimuli][:30]
    encode_image_paths(Counting(), preprocess, paths, "cpu", batch_size=3, num_workers=1, progress=False)
    assert len(held) == 10
    assert max(held) <= 3 * (ahead + 1) < len(paths)


def test_unusual_preprocess_runs_whole_in_the_decode_thread(tiny, demo_stimuli):
    model, preprocess = tiny

    def custom(im):
        return preprocess(im.rotate(90))

    assert not split_preprocess(custom).batched_tail
    paths = [s.path for s in demo_stimuli.stimuli][:5]
    feats, _ = encode_image_paths(model, custom, paths, "cpu", batch_size=2, num_workers=1,
                                  progress=False, decode="full")
    with torch.inference_mode():
        ref = model.encode_image(torch.stack([custom(Image.open(p).convert("RGB")) for p in paths])).numpy()
    np.testing.assert_allclose(feats, ref / np.linalg.norm(ref, axis=1, keepdims=True), atol=1e-5)


def test_decode_path_is_part_of_the_cache_key_and_run_info():
    draft = ClipEncoder("dirti-tiny", "random", device="cpu")
    full = ClipEncoder("dirti-tiny", "random", device="cpu", decode="full")
    assert draft.identity()["preprocess"] == draft.run_info()["preprocess"] == "open_clip-val+jpeg-draft"
    assert full.identity()["preprocess"] == full.run_info()["preprocess"] == "open_clip-val"
    with pytest.raises(UserError, match="unknown decode path 'fast'"):
        ClipEncoder("dirti-tiny", "random", device="cpu", decode="fast")


def test_no_paths_no_forward(tiny):
    model, preprocess = tiny
    feats, forwards = encode_image_paths(model, preprocess, [], "cpu", 4, 1, False)
    assert feats.shape == (0, 0) and forwards == 0
