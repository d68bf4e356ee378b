"""Where images decode: worker threads vs worker processes (same pixels), JPEGs decoded by
torchvision on a device (the GPU route, run here on the CPU: ``decode_jpeg`` takes the same code
path apart from the device), the flags that choose them, bounded memory, and image shards."""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import pytest
import torch
from PIL import Image

from dirti_bench.cli import main
from dirti_bench.data.pixels import UPRIGHT
from dirti_bench.encoding import imaging
from dirti_bench.encoding.imaging import (
    _upright,
    device_batch,
    encode_image_paths,
    plan_decode,
    resolve_gpu_decode,
    stack_batch,
)
from dirti_bench.encoding.models import ClipEncoder
from dirti_bench.errors import UserError
from dirti_bench.pipeline import RunConfig, image_shard

CUDA = torch.cuda.is_available()


def _encode(tiny_clip, paths, **kw):
    model, preprocess = tiny_clip
    route: dict = {}
    feats, _ = encode_image_paths(model, preprocess, paths, "cpu", batch_size=8, num_workers=kw.pop("workers", 2),
                                  progress=False, route=route, **kw)
    return feats, route


# ---------------------------------------------------------------- worker processes


@pytest.mark.parametrize("ahead", [0, imaging.PREFETCH_BATCHES])  # CPU mode; accelerator mode (workers resize)
def test_processes_give_bit_identical_embeddings_to_threads(tiny_clip, demo_stimuli, monkeypatch, ahead):
    monkeypatch.setattr(imaging, "decode_ahead", lambda device: ahead)
    paths = [s.path for s in demo_stimuli.stimuli][:19]  # 3 batches, the last one short
    threads, route_t = _encode(tiny_clip, paths, pool="threads")
    processes, route_p = _encode(tiny_clip, paths, pool="processes")
    assert (route_t["pool"], route_p["pool"]) == ("threads", "processes")
    assert threads.shape == (19, threads.shape[1]) and threads.shape[1] > 0
    assert np.array_equal(threads, processes)


@pytest.mark.slow  # each spawned worker imports torch afresh (~15 s on 2 cores): CI runs it (pytest -m slow)
def test_spawned_worker_processes_give_the_same_embeddings(tiny_clip, demo_stimuli, monkeypatch):
    """Where fork does not exist (macOS and Windows default to spawn) the workers start from a fresh
    interpreter and import what they run: the same pixels, so the same embeddings as threads."""
    import multiprocessing

    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    pools: dict = {}
    monkeypatch.setattr(imaging, "_PROCESS_POOLS", pools)  # a fresh pool, not the forked one of other tests
    paths = [s.path for s in demo_stimuli.stimuli][:10]
    try:
        spawned, route = _encode(tiny_clip, paths, pool="processes")
        (pool,) = pools.values()
        assert pool._mp_context.get_start_method() == "spawn" and route["pool"] == "processes"
    finally:
        for pool in pools.values():
            pool.shutdown(wait=True)
    threads, _ = _encode(tiny_clip, paths, pool="threads")
    assert np.array_equal(threads, spawned)


def test_a_preprocess_that_does_not_pickle_decodes_in_threads_and_says_so(tiny_clip, demo_stimuli):
    model, preprocess = tiny_clip
    paths = [s.path for s in demo_stimuli.stimuli][:4]
    route: dict = {}
    feats, _ = encode_image_paths(model, lambda im: preprocess(im), paths, "cpu", 8, 2, False,
                                  pool="processes", route=route)
    assert route["pool"] == "threads" and "cannot be sent to worker processes" in route["note"]
    assert feats.shape[0] == 4


def test_a_damaged_file_is_one_line_naming_it_from_a_worker_process(tiny_clip, demo_copy):
    bad = sorted(demo_copy.rglob("*.jpg"))[3]
    bad.write_bytes(b"not a jpeg")
    paths = sorted(demo_copy.rglob("*.jpg"))[:6]
    with pytest.raises(UserError, match=f"cannot decode image {bad}") as err:
        _encode(tiny_clip, paths, pool="processes")
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------- JPEGs on a device (run on the CPU here)


def _pil_crops(paths, preprocess):
    """open_clip's own preprocessing up to the uint8 crop (every pixel decoded, PIL resize + crop)."""
    steps = plan_decode(preprocess, "full").split.pil_steps
    crops = []
    for path in paths:
        with Image.open(path) as im:
            x = im.convert("RGB")
        for step in steps:
            x = step(x)
        crops.append(torch.from_numpy(np.array(x)).permute(2, 0, 1))
    return torch.stack(crops)


def test_device_jpeg_decode_follows_pil_within_two_levels(tiny_clip, dirti_sized_photos):
    _, preprocess = tiny_clip
    plan = plan_decode(preprocess, "tensor-resize")
    items, error = imaging._read_batch(dirti_sized_photos, plan)
    assert not error and [item[0] for item in items] == ["jpeg"] * len(dirti_sized_photos)
    crops = device_batch(items, plan, "cpu")
    pil = _pil_crops(dirti_sized_photos, preprocess)
    diff = (crops.int() - pil.int()).abs()
    assert crops.dtype == torch.uint8 and crops.shape == pil.shape
    # same libjpeg decode; torch's float bicubic vs PIL's fixed-point one, rounded: a level or two apart
    assert diff.max() <= 2 and diff.float().mean() < 0.5


def test_device_jpeg_route_stays_within_cosine_0999_of_open_clip(tiny_clip, dirti_sized_photos):
    model, preprocess = tiny_clip
    feats, route = _encode(tiny_clip, dirti_sized_photos, jpeg_device="cpu")
    assert route["jpeg_decode"] == "torchvision" and route["jpeg_device"] == "cpu"
    with torch.inference_mode():
        stock = model.encode_image(torch.stack([preprocess(Image.open(p)) for p in dirti_sized_photos])).numpy()
    stock /= np.linalg.norm(stock, axis=1, keepdims=True)
    assert (feats * stock).sum(axis=1).min() >= 0.999


def test_large_batches_decode_in_parts_of_bounded_size_with_the_same_pixels(tiny_clip, dirti_sized_photos, monkeypatch):
    _, preprocess = tiny_clip
    plan = plan_decode(preprocess, "tensor-resize")
    items, _ = imaging._read_batch(dirti_sized_photos, plan)
    whole = device_batch(items, plan, "cpu")
    calls = []
    real = imaging._decode_jpegs
    monkeypatch.setattr(imaging, "_decode_jpegs", lambda data, device: calls.append(len(data)) or real(data, device))
    monkeypatch.setattr(imaging, "DEVICE_DECODE_BYTES", 2 * 1024 * 768 * 3)  # two photos' decoded bytes
    assert torch.equal(device_batch(items, plan, "cpu"), whole)
    assert calls == [2, 2, 2]


@pytest.mark.parametrize("turn", sorted(UPRIGHT))
def test_exif_orientation_on_tensors_matches_pil(turn):
    rgb = np.random.default_rng(turn).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(rgb).transpose(UPRIGHT[turn]))
    got = _upright(torch.from_numpy(rgb).permute(2, 0, 1), turn).permute(1, 2, 0).numpy()
    assert np.array_equal(got, expected)


def test_a_rotated_photo_reaches_the_model_upright_on_the_device_route(tiny_clip, dirti_sized_photos, tmp_path):
    _, preprocess = tiny_clip
    turned = tmp_path / "turned.jpg"
    with Image.open(dirti_sized_photos[0]) as im:
        exif = im.getexif()
        exif[0x0112] = 6  # shown rotated by 90 degrees clockwise
        im.save(turned, exif=exif, quality=95)
    plan = plan_decode(preprocess, "full")  # every pixel decoded by PIL: the reference
    pil = stack_batch([imaging._decode_one(turned, plan)], plan.split)
    plan = plan_decode(preprocess, "tensor-resize")
    items, _ = imaging._read_batch([turned], plan)
    assert items[0][3] == 6
    crop = device_batch(items, plan, "cpu")
    assert (crop.int() - pil.int()).abs().max() <= 2
    unturned = device_batch([(*items[0][:3], 1, items[0][4])], plan, "cpu")
    assert (unturned.int() - pil.int()).abs().max() > 50  # the tag mattered


def test_other_files_decode_on_the_cpu_beside_device_jpegs(tiny_clip, dirti_sized_photos, tmp_path):
    _, preprocess = tiny_clip
    png = tmp_path / "photo.png"
    Image.open(dirti_sized_photos[0]).save(png)
    rgba = tmp_path / "alpha.png"
    Image.open(dirti_sized_photos[1]).convert("RGBA").save(rgba)
    paths = [dirti_sized_photos[2], png, rgba, dirti_sized_photos[3]]
    plan = plan_decode(preprocess, "tensor-resize")
    items, error = imaging._read_batch(paths, plan)
    assert not error and [item[0] for item in items] == ["jpeg", "crop", "crop", "jpeg"]
    crops = device_batch(items, plan, "cpu")
    cpu_path = stack_batch([imaging._decode_one(p, plan) for p in paths], plan.split, plan.tensor_resize)
    assert torch.equal(crops[1:3], cpu_path[1:3])  # the CPU route's pixels, bit for bit
    assert (crops[[0, 3]].int() - cpu_path[[0, 3]].int()).abs().max() <= 8  # PIL drafts; the device decodes all


def test_a_jpeg_the_device_cannot_decode_is_retried_on_the_cpu(tiny_clip, dirti_sized_photos, tmp_path):
    _, preprocess = tiny_clip
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(dirti_sized_photos[0].read_bytes()[:2000])  # a valid header, most of the data missing
    plan = plan_decode(preprocess, "tensor-resize")
    items, error = imaging._read_batch([dirti_sized_photos[1], broken], plan)
    assert not error and items[1][0] == "jpeg"
    with pytest.raises(UserError, match=f"cannot decode image {broken}") as err:
        device_batch(items, plan, "cpu")
    assert "\n" not in str(err.value)


def test_a_preprocess_without_the_batched_resize_decodes_jpegs_with_pil_and_says_so(tiny_clip, dirti_sized_photos):
    feats, route = _encode(tiny_clip, dirti_sized_photos[:2], jpeg_device="cpu", decode="jpeg-draft")
    assert route["jpeg_decode"] == "cpu-pil" and "not a resize + crop" in route["note"]
    assert feats.shape[0] == 2


# ---------------------------------------------------------------- bounded memory on every route


@pytest.mark.parametrize(("pool", "jpeg_device", "ahead"), [
    ("processes", None, 0), ("processes", None, imaging.PREFETCH_BATCHES),
    ("threads", "cpu", 0), ("threads", "cpu", imaging.PREFETCH_BATCHES)])
def test_every_route_holds_at_most_ahead_plus_one_batches(tiny_clip, demo_stimuli, monkeypatch, pool, jpeg_device, ahead):
    """Counted in this process as images handed to the decoders (decoded or being decoded) but not yet
    forwarded: a worker process cannot report back, so the count starts at submission."""
    model, preprocess = tiny_clip
    monkeypatch.setattr(imaging, "decode_ahead", lambda device: ahead)
    submitted = []
    executor = ThreadPoolExecutor if pool == "threads" else ProcessPoolExecutor
    real_submit = executor.submit

    def submit(self, fn, chunk):
        submitted.append(len(chunk))
        return real_submit(self, fn, chunk)

    monkeypatch.setattr(executor, "submit", submit)
    held = []

    class Counting(torch.nn.Module):
        def encode_image(self, x):
            held.append(sum(submitted) - 3 * len(held))  # handed out but not yet encoded, this batch included
            return model.encode_image(x)

    paths = [s.path for s in demo_stimuli.stimuli][:30]
    encode_image_paths(Counting(), preprocess, paths, "cpu", batch_size=3, num_workers=1, progress=False,
                       pool=pool, jpeg_device=jpeg_device)
    assert len(held) == 10 and sum(submitted) == 30
    assert max(held) <= 3 * (ahead + 1) < len(paths)


# ---------------------------------------------------------------- flags


def test_gpu_decode_on_without_cuda_is_a_user_error_naming_value_and_fix():
    with pytest.raises(UserError, match="gpu decode 'on' needs a CUDA device, but this run's device is 'cpu'") as err:
        resolve_gpu_decode("on", "cpu", "tensor-resize")
    assert err.value.option == "gpu_decode" and "device cuda" in str(err.value)
    with pytest.raises(UserError, match="decode path is 'full'"):
        resolve_gpu_decode("on", "cuda", "full")
    assert resolve_gpu_decode("auto", "cpu", "tensor-resize") is False
    assert resolve_gpu_decode("auto", "cuda", "tensor-resize") is True
    assert resolve_gpu_decode("auto", "cuda", "jpeg-draft") is False
    assert resolve_gpu_decode("off", "cuda", "tensor-resize") is False


@pytest.mark.skipif(CUDA, reason="checks the refusal on a machine without CUDA")
def test_cli_gpu_decode_on_without_cuda_exits_2_with_one_line(capsys, tmp_path):
    assert main(["run", "--demo", "--out", str(tmp_path / "out"), "--gpu-decode", "on", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: gpu decode 'on' needs a CUDA device")
    assert "--gpu-decode" in err[0] and not (tmp_path / "out").exists()


@pytest.mark.skipif(CUDA, reason="checks the refusal on a machine without CUDA")
def test_bench_on_cuda_without_cuda_exits_2_with_one_line(capsys):
    assert main(["bench", "--device", "cuda", "--model", "dirti-tiny", "--images", "6", "--no-warm",
                 "--no-first-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert [line for line in err if not line.startswith("bench: ")] == [err[-1]]
    assert err[-1].startswith("error: device 'cuda' is not available")


def test_crops_reused_from_an_earlier_model_are_recorded_as_such(tiny_clip, demo_stimuli):
    from dirti_bench.encoding.imaging import DecodedImages

    model, preprocess = tiny_clip
    paths = [s.path for s in demo_stimuli.stimuli][:4]
    decoded, routes = DecodedImages(), [{}, {}]
    for route in routes:
        encode_image_paths(model, preprocess, paths, "cpu", 8, 2, False, decoded=decoded, pool="processes",
                           route=route)
    assert "crops_reused" not in routes[0] and routes[1]["crops_reused"] is True
    assert decoded.reused == 4


def test_decode_options_reach_the_encoder_and_the_record():
    enc = ClipEncoder("dirti-tiny", "random", device="cpu", decode_pool="processes", gpu_decode="auto")
    assert enc.decode_options()["pool"] == "processes" and enc.decode_options()["jpeg_device"] is None
    record = enc.run_info()["image_decode"]
    assert record == {"pool": "processes", "gpu_decode": "off", "gpu_decode_requested": "auto",
                      "jpeg_decoder": "PIL on the CPU"}
    assert enc.preprocess_id == "open_clip-val+tensor-resize"  # off: the cache key of every CPU run
    with pytest.raises(UserError, match="unknown decode pool 'forks'"):
        ClipEncoder("dirti-tiny", "random", device="cpu", decode_pool="forks")
    with pytest.raises(UserError):
        RunConfig(demo=True, gpu_decode="sometimes")


# ---------------------------------------------------------------- image shards


@pytest.mark.parametrize("n", [1, 7, 60, 300])
@pytest.mark.parametrize("count", [1, 3, 8])
def test_image_shards_are_contiguous_disjoint_and_cover_the_set(n, count):
    ranges = [image_shard(n, (i, count)) for i in range(1, count + 1)]
    assert [i for r in ranges for i in r] == list(range(n))
    assert max(map(len, ranges)) - min(map(len, ranges)) <= 1


SCENARIOS = ["zeroshot-baseline", "knn-cv10-baseline", "align-disgust-zeroshot"]


@pytest.mark.slow  # three shards and two whole runs: CI runs it (pytest -m slow)
def test_three_shards_then_one_run_builds_no_model_and_matches_an_unsharded_run(tmp_path, monkeypatch, capsys):
    run = ["run", "--demo", "--no-report", "--no-progress", "--quiet", "--scenarios", *SCENARIOS]
    monkeypatch.setenv("DIRTI_BENCH_HOME", str(tmp_path / "plain-home"))
    assert main([*run, "--out", str(tmp_path / "plain")]) == 0
    monkeypatch.setenv("DIRTI_BENCH_HOME", str(tmp_path / "shared-home"))
    for i in (1, 2, 3):
        assert main([*run, "--shard", f"{i}/3", "--out", str(tmp_path / "unused")]) == 0
        assert f"shard {i}/3: images {20 * (i - 1) + 1}-{20 * i} of 60 in the embedding cache (20 encoded now" \
            in capsys.readouterr().out
    assert not (tmp_path / "unused").exists()  # a shard evaluates nothing and writes no results

    def no_model(self):
        raise AssertionError("the evaluation after the shards built the model")

    monkeypatch.setattr(ClipEncoder, "load", no_model)  # every image and prompt is cached: never built
    assert main([*run, "--out", str(tmp_path / "merged")]) == 0
    plain, merged = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("plain", "merged"))
    assert merged["run"]["image_forward_calls"] == 0 and plain["run"]["image_forward_calls"] > 0
    assert merged["run"]["text_forward_calls"] == 0 and plain["run"]["text_forward_calls"] > 0
    assert merged["run"]["forward_calls"] == 0 and merged["run"]["cache"]["misses"] == 0
    assert merged["run"]["cache"]["hits"] >= 60
    assert [s["metrics"] for s in merged["scenarios"].values()] == [s["metrics"] for s in plain["scenarios"].values()]
    features = [np.load(tmp_path / d / "features.npz")["features"] for d in ("plain", "merged")]
    assert features[0].shape[0] == 60 and np.array_equal(*features)


def test_a_shard_again_finds_its_images_and_prompts_cached(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DIRTI_BENCH_HOME", str(tmp_path / "home"))
    args = ["run", "--demo", "--no-progress", "--quiet", "--shard", "2/3", "--scenarios", *SCENARIOS]
    assert main(args) == 0
    # the study's 6 category prompts and the disgust pair's 2: the texts the evaluation will ask for
    assert "and the 8 prompt texts of the chosen scenarios (8 encoded now)" in capsys.readouterr().out
    assert main(args) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert "(0 encoded now, 20 found cached) and the 8 prompt texts of the chosen scenarios (0 encoded now)" in last
    assert "(no model forward: every image and prompt embedding is cached)" in last


@pytest.mark.parametrize(("args", "message"), [
    (["--shard", "4/3"], "error: shard '4/3' must be I/N with 1 <= I <= N"),
    (["--shard", "1/2", "--layers", "all"], "error: image shards fill the final-embedding cache only; run every layer"),
    (["--shard", "1/2", "--skip-existing"], "error: --skip-existing applies to a sweep"),
])
def test_image_shard_user_errors_are_one_line(capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.setenv("DIRTI_BENCH_HOME", str(tmp_path / "home"))
    assert main(["run", "--demo", "--no-progress", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message)


# ---------------------------------------------------------------- a large encode is stored part by part


def test_a_large_encode_is_stored_part_by_part_so_an_interruption_keeps_what_was_done(demo_stimuli, tmp_path,
                                                                                     monkeypatch):
    from dirti_bench.encoding import cache as cache_module
    from dirti_bench.encoding.cache import CachedEncoder

    paths = [s.path for s in demo_stimuli.stimuli][:20]
    whole = CachedEncoder(ClipEncoder("dirti-tiny", "random", device="cpu", batch_size=4, progress=False),
                          tmp_path / "whole").encode_images(paths)
    monkeypatch.setattr(cache_module, "IMAGE_PART", 10)  # parts of 8: two whole batches of 4
    clip = ClipEncoder("dirti-tiny", "random", device="cpu", batch_size=4, progress=False)
    encoder = CachedEncoder(clip, tmp_path / "parts")
    real, parts = clip.encode_images, []

    def failing_third(chunk):
        parts.append(len(chunk))
        if len(parts) == 3:
            raise KeyboardInterrupt
        return real(chunk)

    monkeypatch.setattr(clip, "encode_images", failing_third)
    with pytest.raises(KeyboardInterrupt):
        encoder.encode_images(paths)
    assert parts == [8, 8, 4]
    again = CachedEncoder(ClipEncoder("dirti-tiny", "random", device="cpu", batch_size=4, progress=False),
                          tmp_path / "parts")
    resumed = again.encode_images(paths)
    assert (again.cache.hits, again.cache.misses) == (16, 4)  # only the interrupted part is encoded again
    assert np.array_equal(resumed, whole)  # parts of whole batches: the embeddings of one call
