"""Image pipeline: same embeddings as open_clip's preprocess + encode_image, bounded memory, clear errors."""

from __future__ import annotations

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from dirti_bench.encoding import imaging
from dirti_bench.encoding.imaging import (
    TensorResize,
    encode_image_paths,
    iter_batches,
    normalise_batch,
    open_rgb,
    plan_decode,
    split_preprocess,
    stack_batch,
    tensor_resize_for,
)
from dirti_bench.encoding.models import ClipEncoder
from dirti_bench.errors import UserError


def to_batch(items, split, tensor_resize=None):
    """The normalised float batch the CPU path hands to the model."""
    return normalise_batch(stack_batch(items, split, tensor_resize), split)


def _stock(model, preprocess, paths) -> np.ndarray:
    with torch.inference_mode():
        x = torch.stack([preprocess(Image.open(p)) for p in paths])
        feats = model.encode_image(x).numpy()
    return feats / np.linalg.norm(feats, axis=1, keepdims=True)


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_full_decode_equals_open_clip(tiny_clip, demo_stimuli, workers):
    model, preprocess = tiny_clip
    paths = [s.path for s in demo_stimuli.stimuli][:13]
    feats, forwards = encode_image_paths(model, preprocess, paths, "cpu", batch_size=4,
                                         num_workers=workers, progress=False, decode="full")
    assert forwards == 4
    np.testing.assert_allclose(feats, _stock(model, preprocess, paths), atol=1e-5)


def test_batched_tail_is_bit_identical_to_totensor_normalize(tiny_clip, demo_stimuli):
    _, preprocess = tiny_clip
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


def test_jpeg_draft_decodes_smaller_but_never_below_the_input_size(dirti_sized_photos):
    full, draft = open_rgb(dirti_sized_photos[0], None), open_rgb(dirti_sized_photos[0], 224)
    assert full.size == (1024, 768)
    assert draft.size == (512, 384)  # 1/2 DCT scale; 1/4 (256x192) would be below 224
    assert open_rgb(dirti_sized_photos[0], 400).size == (1024, 768)  # 1/2 would give 384 < 400


def test_jpeg_draft_stays_within_cosine_0999_of_open_clip(tiny_clip, dirti_sized_photos):
    model, preprocess = tiny_clip
    feats, _ = encode_image_paths(model, preprocess, dirti_sized_photos, "cpu", batch_size=4, num_workers=1,
                                  progress=False, decode="jpeg-draft")
    stock = _stock(model, preprocess, dirti_sized_photos)
    assert (feats * stock).sum(axis=1).min() >= 0.999
    assert not np.allclose(feats, stock, atol=1e-6)  # the shortcut really ran


def test_png_is_never_drafted(tmp_path):
    path = tmp_path / "x.png"
    Image.new("RGB", (1024, 768), (10, 20, 30)).save(path)
    assert open_rgb(path, 224).size == (1024, 768)


@pytest.mark.parametrize("workers", [0, 1])
def test_corrupt_image_is_a_user_error_naming_the_file(tiny_clip, demo_copy, workers):
    model, preprocess = tiny_clip
    paths = sorted(demo_copy.rglob("*.jpg"))[:6]
    paths[4].write_bytes(paths[4].read_bytes()[:300])  # truncated JPEG
    with pytest.raises(UserError, match=rf"cannot decode image {paths[4]}.*replace the file") as err:
        encode_image_paths(model, preprocess, paths, "cpu", batch_size=2, num_workers=workers, progress=False)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("workers", [1, 2])
def test_prefetch_is_bounded(workers):
    """Decoding runs at most PREFETCH_BATCHES + 1 batches ahead of the consumer, every batch split over the threads."""
    started = []

    def decode(part):
        started.append(part)
        return list(part), ""

    paths = list(range(40))
    ahead = []
    for consumed, batch in enumerate(iter_batches(paths, 4, decode, workers=workers), start=1):
        ahead.append(len({p[0] // 4 for p in started}) - consumed)  # batches begun but not yet handed over
        assert batch == paths[4 * consumed - 4:4 * consumed]
    assert len(started) == 10 * workers and sorted(x for p in started for x in p) == paths
    assert max(ahead) <= imaging.PREFETCH_BATCHES


def test_cpu_mode_starts_the_next_batch_only_when_asked():
    started = []

    def decode(part):
        started.append(part)
        return list(part), ""

    batches = iter_batches(list(range(12)), 4, decode, workers=2, ahead=0)
    assert next(batches) == [0, 1, 2, 3]
    assert len(started) == 2  # the forward of batch 1 runs with no decoding beside it
    assert next(batches) == [4, 5, 6, 7] and len(started) == 4


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
def test_encoding_streams_instead_of_holding_every_image(tiny_clip, demo_stimuli, monkeypatch, ahead):
    model, preprocess = tiny_clip
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


def test_unusual_preprocess_runs_whole_in_the_decode_thread(tiny_clip, demo_stimuli):
    model, preprocess = tiny_clip

    def custom(im):
        return preprocess(im.rotate(90))

    assert not split_preprocess(custom).batched_tail
    paths = [s.path for s in demo_stimuli.stimuli][:5]
    feats, _ = encode_image_paths(model, custom, paths, "cpu", batch_size=2, num_workers=1,
                                  progress=False, decode="full")
    with torch.inference_mode():
        ref = model.encode_image(torch.stack([custom(Image.open(p).convert("RGB")) for p in paths])).numpy()
    np.testing.assert_allclose(feats, ref / np.linalg.norm(ref, axis=1, keepdims=True), atol=1e-5)


@pytest.mark.parametrize(("decode", "preprocess_id"), [("tensor-resize", "open_clip-val+tensor-resize"),
                                                     ("jpeg-draft", "open_clip-val+jpeg-draft"),
                                                     ("full", "open_clip-val")])
def test_decode_path_is_part_of_the_cache_key_and_run_info(decode, preprocess_id):
    encoder = ClipEncoder("dirti-tiny", "random", device="cpu", decode=decode)
    assert encoder.identity()["preprocess"] == encoder.run_info()["preprocess"] == preprocess_id


def test_default_decode_is_tensor_resize_and_unknown_paths_are_user_errors():
    assert ClipEncoder("dirti-tiny", "random", device="cpu").decode == imaging.DEFAULT_DECODE == "tensor-resize"
    with pytest.raises(UserError, match="unknown decode path 'fast'"):
        ClipEncoder("dirti-tiny", "random", device="cpu", decode="fast")


def test_no_paths_no_forward(tiny_clip):
    model, preprocess = tiny_clip
    feats, forwards = encode_image_paths(model, preprocess, [], "cpu", 4, 1, False)
    assert feats.shape == (0, 0) and forwards == 0


# ---------------------------------------------------------------- tensor-resize

VIT_B_32_VAL = open_clip.image_transform(224, is_train=False)  # ViT-B-32's preprocess, without the model


def _pil_steps(path, split, draft_to):
    x = open_rgb(path, draft_to)
    for step in split.pil_steps:
        x = step(x)
    return np.asarray(x)


def test_tensor_resize_is_found_for_open_clip_val_preprocessing(tiny_clip):
    assert split_preprocess(VIT_B_32_VAL).tensor_resize == TensorResize(224, 224, "bicubic")
    assert split_preprocess(tiny_clip[1]).tensor_resize == TensorResize(64, 64, "bicubic")


@pytest.mark.parametrize("steps", [
    lambda T: [T.Resize((224, 224)), T.CenterCrop(224)],  # squash: both sides given
    lambda T: [T.Resize(224, max_size=300), T.CenterCrop(224)],
    lambda T: [T.Resize(200), T.CenterCrop(224)],  # crop larger than the image: CenterCrop pads
    lambda T: [T.Resize(224, interpolation=T.InterpolationMode.NEAREST), T.CenterCrop(224)],
    lambda T: [T.Resize(224), T.CenterCrop((224, 200))],
    lambda T: [T.Resize(224), T.RandomCrop(224)],
    lambda T: [T.Resize(224), T.CenterCrop(224), T.Grayscale(3)],
])
def test_tensor_resize_declines_other_preprocessing(steps):
    from torchvision import transforms as T

    assert tensor_resize_for(tuple(steps(T))) is None


@pytest.mark.parametrize("size", [(1024, 768), (768, 1024), (256, 192), (300, 300), (97, 131), (267, 200)])
def test_tensor_resize_pixels_follow_pil_within_one_level(tmp_path, size):
    """Down- and upscaling, landscape, portrait, square, an odd crop margin (299 - 224): PIL's resampling."""
    rng = np.random.default_rng(sum(size))
    yy, xx = np.mgrid[0:size[1], 0:size[0]]
    smooth = (np.sin(xx / 17.0)[..., None] * 90 + np.cos(yy / 23.0)[..., None] * 60 + [120, 110, 100])
    pixels = np.clip(smooth + rng.normal(0, 25, smooth.shape), 0, 255).astype(np.uint8)
    path = tmp_path / "x.png"
    Image.fromarray(pixels).save(path)
    split = split_preprocess(VIT_B_32_VAL)
    ours = to_batch([np.asarray(open_rgb(path, None))], split, split.tensor_resize)
    pil = to_batch([_pil_steps(path, split, None)], split)
    levels = ((ours - pil) * torch.tensor(split.std).view(1, 3, 1, 1) * 255).abs()
    assert ours.shape == pil.shape == (1, 3, 224, 224)
    assert levels.max() <= 1 + 1e-3
    assert (levels > 0.5).float().mean() < 0.02  # almost every pixel identical


def test_mixed_sizes_in_one_batch_each_resize_as_if_alone(tmp_path):
    sizes = [(1024, 768), (640, 480), (1024, 768), (480, 640)]
    arrays = [np.asarray(Image.effect_mandelbrot(s, (-2, -1.5, 1, 1.5), 30 + i).convert("RGB"))
              for i, s in enumerate(sizes)]
    resize = TensorResize(224, 224, "bicubic")
    split = split_preprocess(VIT_B_32_VAL)
    together = to_batch(arrays, split, resize)
    alone = torch.cat([to_batch([a], split, resize) for a in arrays])
    assert torch.equal(together, alone)


def test_tensor_resize_stays_within_cosine_0999_of_open_clip(tiny_clip, dirti_sized_photos):
    model, preprocess = tiny_clip
    feats = {decode: encode_image_paths(model, preprocess, dirti_sized_photos, "cpu", batch_size=4, num_workers=1,
                                        progress=False, decode=decode)[0] for decode in ("tensor-resize", "jpeg-draft")}
    stock = _stock(model, preprocess, dirti_sized_photos)
    assert (feats["tensor-resize"] * stock).sum(axis=1).min() >= 0.999
    assert not np.allclose(feats["tensor-resize"], feats["jpeg-draft"], atol=1e-7)  # the tensor op really ran


def test_decodes_too_big_to_hold_are_resized_by_pil_in_the_thread(tiny_clip, dirti_sized_photos, monkeypatch):
    _, preprocess = tiny_clip
    plan = plan_decode(preprocess, "tensor-resize")
    assert imaging._decode_one(dirti_sized_photos[0], plan).shape == (96, 128, 3)  # drafted for a 64-px input, held
    monkeypatch.setattr(imaging, "TENSOR_RESIZE_MAX_PIXELS", 128 * 96 - 1)
    item = imaging._decode_one(dirti_sized_photos[0], plan)
    np.testing.assert_array_equal(item, _pil_steps(dirti_sized_photos[0], plan.split, plan.draft_to))
    # a PIL-resized item passes the batch op unchanged
    assert torch.equal(to_batch([item], plan.split, plan.tensor_resize), to_batch([item], plan.split))


def test_tensor_resize_falls_back_to_jpeg_draft_for_other_preprocessing(tiny_clip, dirti_sized_photos):
    model, preprocess = tiny_clip

    def custom(im):
        return preprocess(im.rotate(90))

    runs = [encode_image_paths(model, custom, dirti_sized_photos[:3], "cpu", batch_size=2, num_workers=1, progress=False,
                               decode=decode)[0] for decode in ("tensor-resize", "jpeg-draft")]
    np.testing.assert_array_equal(*runs)


@pytest.mark.parametrize("decode", ["tensor-resize", "jpeg-draft", "full", "custom"])
def test_prefetch_mode_stacks_in_the_threads_and_gives_the_same_embeddings(tiny_clip, dirti_sized_photos, demo_stimuli,
                                                                          monkeypatch, decode):
    """Accelerator mode (threads decode ahead, resize and stack their part) = CPU mode, bit for bit."""
    model, preprocess = tiny_clip
    if decode == "custom":
        preprocess, decode = (lambda im, stock=preprocess: stock(im.rotate(90))), "full"
    paths = [*dirti_sized_photos, *(s.path for s in demo_stimuli.stimuli[:7])]  # 1024x768 and 256x192 in one batch
    runs = {}
    real = imaging._decode_batch
    for ahead in (0, imaging.PREFETCH_BATCHES):
        monkeypatch.setattr(imaging, "decode_ahead", lambda device, ahead=ahead: ahead)
        stacked = []
        monkeypatch.setattr(imaging, "_decode_batch", lambda *a, seen=stacked: seen.append(a[-1]) or real(*a))
        runs[ahead] = encode_image_paths(model, preprocess, paths, "cpu", batch_size=5, num_workers=3,
                                         progress=False, decode=decode)
        assert set(stacked) == {ahead > 0}
    np.testing.assert_array_equal(runs[0][0], runs[imaging.PREFETCH_BATCHES][0])
    assert runs[0][1] == runs[imaging.PREFETCH_BATCHES][1] == 3


def test_parts_stacked_by_threads_are_joined_back_in_order():
    batch = torch.arange(7 * 2).view(7, 2)
    parts = [batch[i::3] for i in range(3)]
    assert torch.equal(imaging._join_tensors(parts), batch)
