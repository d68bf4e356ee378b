"""Streaming image encoding: decode in a prefetch thread while the model runs the previous batch.

At most ``PREFETCH_BATCHES + 1`` batches of decoded images exist at any time, so
memory does not grow with the number of images.

Three decode paths (the one used is part of the embedding-cache key):

* ``full``           PIL decodes every pixel, then open_clip's own preprocess runs.
* ``jpeg-draft``     JPEGs are decoded at a reduced DCT scale (PIL ``draft``) that still
                     leaves every side >= the model's input size, then the same
                     preprocess runs. Decoding gets ~2x cheaper on 1024x768 photos.
* ``tensor-resize``  (default) the ``jpeg-draft`` decode, then open_clip's ``Resize`` +
                     ``CenterCrop`` run as one batched uint8 tensor op (torch's antialiased
                     bicubic follows PIL's: pixels differ by at most 1 level), ~5x cheaper
                     than PIL's resampling; a squashing family's ``Resize((s, s))`` (SigLIP,
                     CLIPA: no crop) likewise. Preprocesses of another shape fall back to
                     ``jpeg-draft``. ``dirti-bench bench`` prints the cosine to ``full``.

Where the decoding runs (``DECODE_POOLS``): worker threads (default; PIL releases the GIL while
it decodes) or worker processes (``processes``: no part of a decode waits on the GIL; the same
functions on the same bytes, so the same pixels bit for bit). With ``jpeg_device`` (the CLI's
``--gpu-decode``), JPEGs are decoded by torchvision's batched ``decode_jpeg`` on that device and
resized there by the same ``TensorResize`` (in float, rounded back to uint8); the workers then only
read the files' bytes and headers, and other files (PNG, CMYK JPEGs, transparency) decode on the CPU
as above. Every path decodes ``batch_size`` images at a time, at most ``ahead + 1`` batches held.

The preprocess is split in two: the PIL steps (resize, crop, RGB) run in the
decode threads, and ``ToTensor + Normalize`` run once per batch on the model's
device (the same values, bit for bit), so only uint8 crosses to an accelerator.
With ``tensor-resize`` the resize and crop become one torch op per batch: in the
main thread on CPU (between forwards, on every core), in the decode threads
beside an accelerator, so that the main thread only feeds it.
"""

from __future__ import annotations

import os
import pickle
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from ..data.pixels import orientation, to_rgb, too_large
from ..errors import UserError
from .precision import input_dtype
from .vectors import l2_normalise

DECODE_PATHS = ("tensor-resize", "jpeg-draft", "full")
DEFAULT_DECODE = "tensor-resize"
DECODE_POOLS = ("threads", "processes")  # where the CPU decodes run; same pixels either way
DEFAULT_DECODE_POOL = "threads"  # PIL decodes without the GIL: on 2 cores processes only add start-up and copies
GPU_DECODE = ("off", "on", "auto")  # JPEGs decoded on the CUDA device (auto: where the run is on CUDA)
DEFAULT_GPU_DECODE = "off"
PREFETCH_BATCHES = 2
# tensor-resize holds decodes at their drafted size until the batch is resized; a bigger one
# (a huge PNG, say) is resized by PIL in the decode thread instead, so memory stays bounded.
TENSOR_RESIZE_MAX_PIXELS = 4 * 1024 * 768


def check_decode(decode: str) -> str:
    if decode not in DECODE_PATHS:
        raise UserError(f"unknown decode path {decode!r}; choose one of {', '.join(DECODE_PATHS)}")
    return decode


def check_decode_pool(pool: str) -> str:
    if pool not in DECODE_POOLS:
        raise UserError(f"unknown decode pool {pool!r}; choose one of {', '.join(DECODE_POOLS)}", "decode_pool")
    return pool


def resolve_gpu_decode(gpu_decode: str, device: str, decode: str) -> bool:
    """Whether JPEGs decode on the CUDA device: ``on`` needs a CUDA run and the tensor-resize decode
    (the GPU feeds that batched resize), ``auto`` is on exactly where both hold."""
    if gpu_decode not in GPU_DECODE:
        raise UserError(f"unknown gpu decode {gpu_decode!r}; choose one of {', '.join(GPU_DECODE)}", "gpu_decode")
    if gpu_decode == "off":
        return False
    usable = device == "cuda" and decode == "tensor-resize"
    if gpu_decode == "on" and device != "cuda":
        raise UserError(f"gpu decode 'on' needs a CUDA device, but this run's device is {device!r}; run with "
                        "device cuda on a machine with a CUDA GPU, or set gpu decode to off or auto", "gpu_decode")
    if gpu_decode == "on" and decode != "tensor-resize":
        raise UserError(f"gpu decode 'on' feeds the batched tensor-resize decode, but the decode path is {decode!r}; "
                        "use decode tensor-resize or set gpu decode to off", ("gpu_decode", "decode"))
    return usable


def default_workers(ahead: int) -> int:
    """Decode threads: every core between forwards on CPU; beside an accelerator, every core but
    the one feeding it (a GPU can run ViT-B-32 faster than one core decodes photos)."""
    return cpu_threads() if ahead <= 0 else max(1, cpu_threads() - 1)


@dataclass(frozen=True)
class TensorResize:
    """open_clip's ``Resize(short side) -> CenterCrop(square)`` on a uint8 NCHW batch, or with
    ``squash`` its ``Resize((side, side))`` that squashes the whole image to the square."""

    short_side: int
    crop: int
    mode: str  # 'bicubic' or 'bilinear', antialiased as PIL always is
    squash: bool = False

    def resized_hw(self, h: int, w: int) -> tuple[int, int]:
        """torchvision's rule for ``Resize(int)``: the short side becomes ``short_side``, the long one is truncated."""
        if self.squash:
            return self.crop, self.crop
        if h <= w:
            return self.short_side, int(self.short_side * w / h)
        return int(self.short_side * h / w), self.short_side

    def __call__(self, x):
        """(n, 3, h, w) uint8 of one size -> (n, 3, crop, crop) uint8."""
        import torch.nn.functional as F

        h, w = self.resized_hw(*x.shape[-2:])
        if (h, w) != tuple(x.shape[-2:]):
            x = F.interpolate(x, size=(h, w), mode=self.mode, antialias=True)
        top, left = int(round((h - self.crop) / 2.0)), int(round((w - self.crop) / 2.0))  # CenterCrop's rounding
        return x[..., top:top + self.crop, left:left + self.crop]


def tensor_resize_for(pil_steps: tuple) -> TensorResize | None:
    """The batched equivalent of ``pil_steps`` if they are exactly Resize(int) -> CenterCrop(square),
    or a squashing Resize((s, s)) [-> open_clip's MaybeConvertMode('RGB')], else None."""
    from torchvision import transforms as T
    from torchvision.transforms import InterpolationMode

    steps = list(pil_steps)
    if steps and type(steps[-1]).__name__ == "MaybeConvertMode" and getattr(steps[-1], "mode", None) == "RGB":
        steps.pop()  # images are already RGB when they reach the steps
    modes = {InterpolationMode.BICUBIC: "bicubic", InterpolationMode.BILINEAR: "bilinear"}
    if len(steps) == 1 and type(steps[0]) is T.Resize:  # squash: both sides set, no crop
        size = steps[0].size
        if (isinstance(size, list | tuple) and len(size) == 2 and size[0] == size[1]
                and steps[0].max_size is None and steps[0].interpolation in modes):
            return TensorResize(int(size[0]), int(size[0]), modes[steps[0].interpolation], squash=True)
        return None
    if len(steps) != 2 or type(steps[0]) is not T.Resize or type(steps[1]) is not T.CenterCrop:
        return None
    resize, crop = steps
    short = _sizes(resize.size)
    if (len(short) != 1 or isinstance(resize.size, list | tuple) and len(resize.size) != 1
            or resize.max_size is not None or resize.interpolation not in modes):
        return None
    crop_hw = tuple(crop.size)
    if len(crop_hw) != 2 or crop_hw[0] != crop_hw[1] or crop_hw[0] > short[0]:
        return None  # a crop larger than the resized image would need CenterCrop's padding
    return TensorResize(short[0], crop_hw[0], modes[resize.interpolation])


@dataclass(frozen=True)
class SplitPreprocess:
    """open_clip's ``Compose`` as PIL steps + the batched tensor tail (None if it has another shape)."""

    pil_steps: tuple
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    input_size: int | None  # longest side the model's input needs; bounds the JPEG draft scale
    tensor_resize: TensorResize | None = None  # the PIL steps as one batched tensor op, where they allow it

    @property
    def batched_tail(self) -> bool:
        return self.mean is not None


def split_preprocess(preprocess) -> SplitPreprocess:
    from torchvision import transforms as T

    steps = tuple(getattr(preprocess, "transforms", ()))
    sizes = [s for step in steps for s in _sizes(getattr(step, "size", None))]
    input_size = max(sizes) if sizes else None
    if (len(steps) >= 2 and isinstance(steps[-2], T.ToTensor) and isinstance(steps[-1], T.Normalize)
            and not steps[-1].inplace and not any(isinstance(s, T.ToTensor | T.Normalize) for s in steps[:-2])):
        norm = steps[-1]
        return SplitPreprocess(steps[:-2], tuple(map(float, norm.mean)), tuple(map(float, norm.std)), input_size,
                               tensor_resize_for(steps[:-2]))
    return SplitPreprocess((preprocess,), None, None, input_size)


def _sizes(size) -> list[int]:
    if isinstance(size, int):
        return [size]
    if isinstance(size, list | tuple):
        return [int(s) for s in size if isinstance(s, int)]
    return []


def open_rgb(path: Path, draft_to: int | None) -> Image.Image:
    """Decoded upright 8-bit RGB image, whatever the file's mode (``data.pixels.to_rgb``); with
    ``draft_to``, JPEGs decode at the smallest DCT scale keeping both sides >= it."""
    try:
        with Image.open(path) as im:
            turn = orientation(im)  # from the header, before draft() and decoding
            if draft_to and im.format == "JPEG":
                im.draft("RGB", (draft_to, draft_to))
            return to_rgb(im, path, turn)
    except Image.DecompressionBombError as exc:
        raise too_large(path, exc) from None


@dataclass(frozen=True)
class DecodePlan:
    """How one decode path turns a file into a batch item."""

    split: SplitPreprocess
    draft_to: int | None  # JPEG draft target; None decodes every pixel
    tensor_resize: TensorResize | None  # resize + crop batched in ``stack_batch`` instead of PIL per image

    @property
    def pixels_key(self) -> tuple | None:
        """What the uint8 crops depend on (decode scale, resize + crop steps); None when the
        preprocess does not end in uint8 crops. Models of a sweep with equal keys share decodes."""
        if not self.split.batched_tail:
            return None
        return (self.draft_to, self.tensor_resize, tuple(repr(step) for step in self.split.pil_steps))


class DecodedImages:
    """uint8 crops kept across the models of a sweep, per ``DecodePlan.pixels_key``: each image is
    decoded and resized once per distinct preprocessing (300 DIRTI photos at 224 px: 45 MB)."""

    def __init__(self, max_bytes: int = 2 << 30):
        self.max_bytes = max_bytes
        self._crops: dict[tuple, dict[Path, object]] = {}
        self.decoded = 0  # images decoded (not served from here)
        self.reused = 0  # images served from here

    def nbytes(self) -> int:
        return sum(t.numel() for crops in self._crops.values() for t in crops.values())

    def get(self, key: tuple, paths: Sequence[Path]):
        """The crops of ``paths`` as one (n, 3, s, s) uint8 tensor, or None unless all are held."""
        import torch

        crops = self._crops.get(key, {})
        if not paths or any(Path(p) not in crops for p in paths):
            return None
        self.reused += len(paths)
        return torch.stack([crops[Path(p)] for p in paths])

    def put(self, key: tuple, paths: Sequence[Path], batch) -> None:
        self.decoded += len(paths)
        if self.nbytes() + batch.numel() > self.max_bytes:
            return  # past the budget: later models decode again rather than hold more memory
        crops = self._crops.setdefault(key, {})
        for path, crop in zip(paths, batch, strict=True):
            crops[Path(path)] = crop.clone()


def plan_decode(preprocess, decode: str) -> DecodePlan:
    split = split_preprocess(preprocess)
    check_decode(decode)
    return DecodePlan(split, None if decode == "full" else split.input_size,
                      split.tensor_resize if decode == "tensor-resize" else None)


def _decode_one(path: Path, plan: DecodePlan):
    x = open_rgb(path, plan.draft_to)
    if plan.tensor_resize is not None and x.width * x.height <= TENSOR_RESIZE_MAX_PIXELS:
        return np.asarray(x)  # resized with its batch in stack_batch
    for step in plan.split.pil_steps:
        x = step(x)
    if plan.split.batched_tail:
        if not isinstance(x, Image.Image) or x.mode != "RGB":
            raise ValueError("preprocess PIL steps did not return an RGB image")
        return np.asarray(x)
    return x


def _decode_batch(paths: Sequence[Path], plan: DecodePlan, stacked: bool = False):
    """Decoded items (with ``stacked``, already one batch tensor), or the first failure as a one-line
    message naming the file (raised in the main thread)."""
    items = []
    for path in paths:
        try:
            items.append(_decode_one(path, plan))
        except UserError as exc:  # a mode it cannot convert, a decompression bomb: already one line
            return None, str(exc)
        except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError... for damaged files
            return None, f"cannot decode image {path}: {exc}; replace the file with an intact copy"
    return (stack_batch(items, plan.split, plan.tensor_resize) if stacked else items), ""


JPEG_MODES = frozenset({"RGB", "L"})  # what decode_jpeg's RGB mode converts as PIL's convert("RGB") does


def _read_batch(paths: Sequence[Path], plan: DecodePlan):
    """The CPU side of the device decode, per image: ``("jpeg", path, bytes, orientation, pixels)``
    for a JPEG the device decodes (``pixels``: width x height from its header), else
    ``("crop", path, (3, s, s) uint8)`` decoded here as every other path does; or the first failure
    as one line (raised in the main thread)."""
    items = []
    for path in paths:
        try:
            with Image.open(path) as im:  # the header only: format, mode, size (bomb check), orientation
                device_decodes = im.format == "JPEG" and im.mode in JPEG_MODES and "transparency" not in im.info
                turn = orientation(im) if device_decodes else 1
                pixels = im.width * im.height
            if device_decodes:
                items.append(("jpeg", path, np.frombuffer(Path(path).read_bytes(), np.uint8), turn, pixels))
                continue
            crop = stack_batch([_decode_one(path, plan)], plan.split, plan.tensor_resize)[0]
            items.append(("crop", path, crop.numpy()))
        except Image.DecompressionBombError as exc:
            return None, str(too_large(path, exc))
        except UserError as exc:
            return None, str(exc)
        except Exception as exc:
            return None, f"cannot decode image {path}: {exc}; replace the file with an intact copy"
    return items, ""


# EXIF orientation -> the same transpose as data.pixels.UPRIGHT (PIL), on a (3, h, w) tensor
def _upright(x, turn: int):
    import torch

    if turn == 2:
        return x.flip(-1)
    if turn == 3:
        return x.flip(-2, -1)
    if turn == 4:
        return x.flip(-2)
    if turn == 5:
        return x.transpose(-2, -1)
    if turn == 6:
        return torch.rot90(x, -1, (-2, -1))
    if turn == 7:
        return x.transpose(-2, -1).flip(-2, -1)
    if turn == 8:
        return torch.rot90(x, 1, (-2, -1))
    return x


# Decoded RGB bytes one device decode call may hold (its float copy for the resize is 4x this): a
# batch of large photos is decoded in parts, so device memory does not grow with the photos' size.
DEVICE_DECODE_BYTES = 256 << 20


def device_batch(items: list, plan: DecodePlan, device: str):
    """``_read_batch`` items -> one (n, 3, s, s) uint8 tensor on ``device``: JPEGs decoded there by
    torchvision's batched ``decode_jpeg`` (in parts of at most ``DEVICE_DECODE_BYTES`` decoded),
    resized and cropped by the plan's ``TensorResize`` in float (a device's antialiased interpolation
    takes no uint8) and rounded back to uint8, the rest as decoded on the CPU. A JPEG the device cannot
    decode is retried on the CPU (PIL)."""
    import torch

    out = torch.empty((len(items), 3, plan.tensor_resize.crop, plan.tensor_resize.crop), dtype=torch.uint8,
                      device=device)
    for i, item in enumerate(items):
        if item[0] == "crop":
            out[i] = torch.from_numpy(item[2]).to(device)
    part: list[int] = []
    for i in [i for i, item in enumerate(items) if item[0] == "jpeg"]:
        if part and 3 * (sum(items[j][4] for j in part) + items[i][4]) > DEVICE_DECODE_BYTES:
            _decode_part(items, part, plan, device, out)
            part = []
        part.append(i)
    if part:
        _decode_part(items, part, plan, device, out)
    return out


def _decode_part(items: list, part: list[int], plan: DecodePlan, device: str, out) -> None:
    """Decode the JPEGs ``part`` (indices into ``items``) on ``device`` into their rows of ``out``."""
    import torch

    decoded = _decode_jpegs([torch.from_numpy(items[i][2].copy()) for i in part], device)
    groups: dict[tuple, list] = {}
    for i, image in zip(part, decoded, strict=True):
        if image is None:  # the device refused this file: decode it as every CPU path does
            batch, error = _decode_batch([items[i][1]], plan, stacked=True)
            if error:
                raise UserError(error)
            out[i] = batch[0].to(device)
            continue
        image = _upright(image, items[i][3])
        groups.setdefault(tuple(image.shape), []).append((i, image))
    del decoded
    for members in groups.values():
        x = torch.stack([image for _, image in members]).float()
        out[[i for i, _ in members]] = plan.tensor_resize(x).round_().clamp_(0, 255).to(torch.uint8)


def _decode_jpegs(data: list, device: str) -> list:
    """Decoded (3, h, w) uint8 tensors on ``device``, one call for the batch; where the batch call
    fails (a damaged file), each file alone, None for those that still fail."""
    from torchvision.io import ImageReadMode, decode_jpeg

    try:
        return list(decode_jpeg(data, mode=ImageReadMode.RGB, device=device))
    except (RuntimeError, ValueError):  # libjpeg / nvjpeg errors; a file the device decoder refuses
        decoded = []
        for one in data:
            try:
                decoded.append(decode_jpeg(one, mode=ImageReadMode.RGB, device=device))
            except (RuntimeError, ValueError):
                decoded.append(None)
        return decoded


def stack_batch(items: list, split: SplitPreprocess, tensor_resize: TensorResize | None = None):
    """Decoded items -> one (n, 3, s, s) uint8 tensor, resized and cropped when ``tensor_resize``
    (or, for a preprocess without the batched tail, its own tensors stacked)."""
    import torch

    if not split.batched_tail:
        return torch.stack(items)
    if tensor_resize is not None:
        return _resize_by_size(items, tensor_resize)
    return torch.from_numpy(np.stack(items)).permute(0, 3, 1, 2)


def normalise_batch(x, split: SplitPreprocess, device: str = "cpu", pin: bool = False):
    """uint8 NCHW -> normalised float NCHW on ``device`` by the exact ops of ToTensor + Normalize
    (the uint8 -> float copy is exact, and each op is correctly rounded on any device), so an
    accelerator does this work and only uint8 crosses the bus."""
    import torch

    if pin:
        x = x.contiguous().pin_memory()
    x = x.to(device, non_blocking=pin)
    if not split.batched_tail:
        return x
    out = torch.empty(x.shape, dtype=torch.get_default_dtype(), device=device)
    out.copy_(x)
    mean = torch.as_tensor(split.mean, dtype=out.dtype, device=device).view(1, -1, 1, 1)
    std = torch.as_tensor(split.std, dtype=out.dtype, device=device).view(1, -1, 1, 1)
    return out.div_(255).sub_(mean).div_(std)


def _resize_by_size(items: list[np.ndarray], resize: TensorResize):
    """(n, 3, crop, crop) uint8: each group of same-sized images resized as one tensor."""
    import torch

    groups: dict[tuple, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(item.shape, []).append(i)
    out = torch.empty((len(items), 3, resize.crop, resize.crop), dtype=torch.uint8)
    for index in groups.values():
        # HWC stacked then viewed as NCHW: channels-last memory, the layout of torch's fast uint8 kernel
        out[index] = resize(torch.from_numpy(np.stack([items[i] for i in index])).permute(0, 3, 1, 2))
    return out


def iter_batches(paths: Sequence[Path], batch_size: int, decode: Callable, workers: int,
                 ahead: int = PREFETCH_BATCHES, join: Callable | None = None,
                 pool: str = DEFAULT_DECODE_POOL) -> Iterator:
    """Decoded batches in order, each split over ``workers`` threads (or, with ``pool`` 'processes',
    worker processes: ``decode`` must then pickle). With ``ahead`` > 0 up to ``ahead`` batches decode
    while the caller uses the current one (at most ``ahead + 1`` held at once); with ``ahead`` = 0 the
    next batch starts only when the caller asks for it. ``join`` reassembles a batch from its parts
    (default: lists, interleaved back into order)."""
    join = join or _interleave
    chunks = [list(paths[i:i + batch_size]) for i in range(0, len(paths), batch_size)]
    if workers <= 0:
        for chunk in chunks:
            yield _checked(decode(chunk))
        return
    shared = check_decode_pool(pool) == "processes"  # a process pool outlives the call: forks cost
    executor = _process_pool(workers) if shared else ThreadPoolExecutor(max_workers=workers,
                                                                        thread_name_prefix="dirti-decode")
    pending: deque = deque()  # per batch: its parts' futures
    todo = iter(chunks)

    def submit_next() -> None:
        chunk = next(todo, None)
        if chunk is not None:
            pending.append([executor.submit(decode, chunk[i::workers]) for i in range(min(workers, len(chunk)))])

    try:
        for _ in range(max(ahead, 1)):
            submit_next()
        while pending:
            batch = join([_checked(part.result()) for part in pending.popleft()])
            if ahead > 0:
                submit_next()  # keep `ahead` batches decoding while the caller runs this one
            yield batch
            if ahead <= 0:
                submit_next()  # only now: on CPU, decoding beside the forward would slow it down
    except BrokenProcessPool:
        _PROCESS_POOLS.pop(workers, None)
        raise
    finally:
        for parts in pending:
            for fut in parts:
                fut.cancel()
        if shared:
            for parts in pending:  # let a cancelled batch's running parts finish before the next call
                wait(parts)
        else:
            executor.shutdown(wait=True, cancel_futures=True)


_PROCESS_POOLS: dict[int, ProcessPoolExecutor] = {}  # by worker count; reused by every later encode


def _process_pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes forked from this one, as torch's DataLoader does on Linux: nothing is imported
    again and no script is re-run (forkserver and spawn would re-run a caller's unguarded script);
    each worker then resizes with one torch thread. Where fork does not exist, spawn. Kept for the
    process's life (the models of a sweep, the rounds of a benchmark), ended at exit."""
    import multiprocessing

    if workers not in _PROCESS_POOLS:
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        _PROCESS_POOLS[workers] = ProcessPoolExecutor(max_workers=workers, initializer=_one_torch_thread,
                                                      mp_context=multiprocessing.get_context(method))
    return _PROCESS_POOLS[workers]


def _one_torch_thread() -> None:
    """Each worker process resizes with one thread: the processes are the parallelism."""
    import sys

    if "torch" in sys.modules:  # only the batch resize beside an accelerator uses torch here
        sys.modules["torch"].set_num_threads(1)


def _in_process(decode: Callable, chunk: list):
    """``decode`` in a worker process; a batch tensor travels back as a numpy array (a plain copy
    through the pipe rather than torch's shared-memory file handles)."""
    items, error = decode(chunk)
    if type(items).__name__ == "Tensor":
        items = items.numpy()
    return items, error


def picklable(obj) -> bool:
    try:
        pickle.dumps(obj)
    except Exception:  # a lambda or local class in a custom preprocess: PicklingError, AttributeError, TypeError
        return False
    return True


def _interleave(parts: list[list]) -> list:
    """Undo ``chunk[i::k]``: element j of the batch came from part j % k."""
    return [parts[j % len(parts)][j // len(parts)] for j in range(sum(map(len, parts)))]


def _join_tensors(parts: list):
    """Undo ``chunk[i::k]`` for parts that are already batch tensors."""
    import torch

    out = torch.empty((sum(len(p) for p in parts), *parts[0].shape[1:]), dtype=parts[0].dtype)
    for i, part in enumerate(parts):
        out[i::len(parts)] = part
    return out


def _checked(result):
    items, error = result
    if error:
        raise UserError(error)
    if isinstance(items, np.ndarray):  # a batch tensor back from a worker process
        import torch

        return torch.from_numpy(items)
    return items


def decode_ahead(device: str) -> int:
    """Batches to decode ahead of the forward. On CPU the forward already fills every core, and a
    decode thread beside it preempts torch's threads and stalls them at their barriers, so batches are
    decoded on all cores between forwards (``dirti-bench bench`` measures both against the bare forward).
    An accelerator leaves the cores free while it runs, so threads decode (and resize) ahead."""
    return 0 if device == "cpu" else PREFETCH_BATCHES


MIN_FORWARD_ROWS = 8  # CPU matmuls give bit-identical rows from this many rows up (batch 5 == 15; 1-3 differ)


def encode_image_paths(model, preprocess, paths: Sequence[Path], device: str, batch_size: int,
                       num_workers: int | None, progress: bool, decode: str = DEFAULT_DECODE,
                       decoded: DecodedImages | None = None, forward: Callable | None = None,
                       pool: str = DEFAULT_DECODE_POOL, jpeg_device: str | None = None,
                       route: dict | None = None) -> tuple[np.ndarray, int]:
    """L2-normalised image embeddings (n, d) and the number of forward passes. With ``decoded``,
    crops of an earlier model with the same preprocessing are reused and new ones kept. ``forward``
    replaces ``model.encode_image`` (the layer-wise run reads every block in the same forward).
    ``pool``: decode in worker threads or processes; ``jpeg_device``: decode JPEGs there with
    torchvision (``cuda``; ``cpu`` runs the same path on the CPU); ``route``, if given, is filled
    with the decode route that ran (and why it differs from the one asked for)."""
    import torch
    from tqdm.auto import tqdm

    if not paths:
        return np.zeros((0, 0), np.float32), 0
    plan = plan_decode(preprocess, decode)
    ahead = decode_ahead(device)
    workers = default_workers(ahead) if num_workers is None else num_workers
    route = route if route is not None else {}
    route.update(decode_route(plan, pool, jpeg_device, workers))
    pool, on_device = route["pool"], route["jpeg_decode"] != "cpu-pil"
    # Prefetching threads also resize + stack their part, leaving the main thread only to feed the
    # accelerator; on CPU (no prefetch) the main thread's torch ops use every core between forwards.
    stacked = ahead > 0 and workers > 0 and not on_device
    out, forwards = [], 0
    pin = device == "cuda" and not on_device
    dtype = input_dtype(getattr(model, "visual", model))  # bf16 models take bf16 images
    forward = forward or model.encode_image
    with torch.inference_mode(), tqdm(total=len(paths), desc="encoding images", unit="img",
                                      disable=not progress) as bar:
        key = plan.pixels_key if decoded is not None and not on_device else None
        held = decoded.get(key, paths) if key is not None else None
        if held is not None:
            route["crops_reused"] = True  # decoded for an earlier model of the sweep: nothing decodes now
            batches, stacked = (held[i:i + batch_size] for i in range(0, len(paths), batch_size)), True
        else:
            work = partial(_read_chunk, plan) if on_device else partial(_decode_chunk, plan, stacked)
            job = partial(_in_process, work) if pool == "processes" else work
            batches = iter_batches(paths, batch_size, job, workers,
                                   ahead=ahead, join=_join_tensors if stacked else None, pool=pool)
        for index, batch in enumerate(batches):
            if on_device:
                batch = device_batch(batch, plan, route["jpeg_device"])
            elif not stacked:
                batch = stack_batch(batch, plan.split, plan.tensor_resize)
            if key is not None and held is None:
                decoded.put(key, paths[index * batch_size:(index + 1) * batch_size], batch)
            images = normalise_batch(batch, plan.split, device, pin).to(dtype)
            if len(images) < MIN_FORWARD_ROWS:  # a batch of a few images takes other matmul kernels whose
                # last bits differ: pad it (repeating its last image), so no embedding depends on how batches fall
                pad = images[-1:].expand(MIN_FORWARD_ROWS - len(images), *images.shape[1:])
                out.append(forward(torch.cat([images, pad]))[:len(images)].float())
                if hasattr(forward, "trim_last"):  # a forward that keeps per-row state (layers) drops the pad too
                    forward.trim_last(len(images))
            else:
                out.append(forward(images).float())  # left on the device: no sync per batch
            forwards += 1
            bar.update(len(batch))
    return l2_normalise(torch.cat(out).cpu().numpy()), forwards


def _decode_chunk(plan: DecodePlan, stacked: bool, chunk: list):
    """A part of a batch for a pool (picklable; the module's functions looked up when it runs)."""
    return _decode_batch(chunk, plan, stacked)


def _read_chunk(plan: DecodePlan, chunk: list):
    return _read_batch(chunk, plan)


def decode_route(plan: DecodePlan, pool: str, jpeg_device: str | None, workers: int) -> dict:
    """What decodes the images: ``pool`` (threads, processes, or main-thread without workers),
    ``jpeg_decode`` ('cpu-pil' or 'torchvision'), ``jpeg_device``, and ``note`` where a request could
    not be served (a preprocess without the batched resize tail; one whose steps do not pickle)."""
    check_decode_pool(pool)
    route: dict = {"pool": pool if workers > 0 else "main-thread", "workers": workers, "jpeg_decode": "cpu-pil",
                   "jpeg_device": None}
    notes = []
    if jpeg_device is not None:
        if plan.tensor_resize is None or not plan.split.batched_tail:
            notes.append("JPEGs decoded by PIL on the CPU: this preprocess is not a resize + crop the device "
                         "decode can feed")
        else:
            route.update(jpeg_decode="torchvision", jpeg_device=jpeg_device)
    if route["pool"] == "processes" and not picklable(plan):
        route["pool"] = "threads"
        notes.append("decoded in threads: this preprocess cannot be sent to worker processes")
    if notes:
        route["note"] = "; ".join(notes)
    return route


def cpu_threads() -> int:
    """Cores this process may use (affinity-aware), for logging in the benchmark."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
