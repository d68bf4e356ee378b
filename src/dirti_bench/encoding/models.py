"""Encoders: a name -> model factory over open_clip, and the caching wrapper.

Every encoder offers the same small interface, which the known-answer test
double in ``tests/`` also implements:

    identity() -> dict               what determines its embeddings (cache key)
    encode_images(paths) -> (n, d)   L2-normalised float32
    encode_texts(texts) -> (m, d)    L2-normalised float32
    run_info() -> dict               model, pretrained, weights_sha256, device, ...
    scoring() -> dict                the model's own logit scale, bias and probability rule
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..constraints import Interval, check_value
from ..data.pixels import PIXEL_RULES
from ..data.stimuli import file_sha256
from ..errors import UserError
from ..quiet import held_back
from . import register_with_open_clip
from .families import family_preprocess, full_decode_reason, register_tiny_timm_models
from .imaging import (
    DEFAULT_DECODE,
    DEFAULT_DECODE_POOL,
    DEFAULT_GPU_DECODE,
    DecodedImages,
    check_decode,
    check_decode_pool,
    encode_image_paths,
    resolve_gpu_decode,
)
from .precision import DEFAULT_PRECISION, apply_precision, check_precision
from .text import encode_texts, text_path
from .vectors import l2_normalise

TINY_MODEL = "dirti-tiny"
# what a run on DIRTI uses unless told otherwise: the study's model, OpenAI's ViT-B/32, which was trained with
# QuickGELU; open_clip's plain ViT-B-32 uses GELU, so 'openai' weights in it give wrong features (open_clip issue
# 771, refused by checkpoints.tag_mismatch)
DEFAULT_MODEL = "ViT-B-32-quickgelu"
DEFAULT_PRETRAINED = "openai"
DEVICES = ("auto", "cpu", "cuda", "mps")
DEFAULT_BATCH_SIZE = 32
BATCH_SIZE = (Interval(int, 1),)


def register_model_configs() -> None:
    """Import open_clip with the suite's JSON configs (``dirti-tiny``) in its registry (importing this
    package registers them already; this makes sure, and loads open_clip)."""
    import open_clip  # noqa: F401  (the package's import hook registers the configs)

    register_with_open_clip()
    register_tiny_timm_models()  # the image tower dirti-tiny-sig* names


def known_model(name: str) -> bool:
    """Whether open_clip knows ``name``. Its config folder is read first, so a warm run (all cache
    hits) does not pay for importing open_clip; anything not found there gets the full check."""
    from importlib.util import find_spec

    spec = find_spec("open_clip")
    folders = [Path(p) / "model_configs" for p in (spec.submodule_search_locations or [])] if spec else []
    if name == TINY_MODEL or any((folder / f"{name}.json").is_file() for folder in folders):
        return True
    register_model_configs()
    import open_clip

    return name in open_clip.list_models()


def _cpu_only_machine() -> bool:
    """Linux without NVIDIA, AMD (ROCm) or WSL GPU device nodes, and torch not yet loaded: torch could
    only answer cpu, so a warm run (all embeddings cached) need not import it to ask."""
    import glob
    import sys

    if "torch" in sys.modules or not sys.platform.startswith("linux"):
        return False
    return not (glob.glob("/dev/nvidia*") or os.path.exists("/dev/kfd") or os.path.exists("/dev/dxg"))


def resolve_device(device: str) -> str:
    if device not in DEVICES:
        raise UserError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if device == "cpu" or device == "auto" and _cpu_only_machine():
        return "cpu"  # always there; skipping the torch import keeps warm re-runs fast
    import torch

    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if device == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if device == "cuda" and not cuda:
        raise UserError("device 'cuda' is not available on this machine (torch.cuda.is_available() is False); "
                        "use device cpu or auto, or install a CUDA build of torch", "device")
    if device == "mps" and not mps:
        raise UserError("device 'mps' is not available on this machine (torch.backends.mps.is_available() is False); "
                        "use device cpu or auto", "device")
    return device


def describe_device(device: str) -> str:
    """The hardware behind a resolved ``device``, for the record: embeddings differ in the last bits
    between GPU generations and CUDA versions, so a result names them (e.g. 'NVIDIA H100 80GB HBM3,
    CUDA 13.0')."""
    if device == "cuda":
        import torch

        return f"{torch.cuda.get_device_name()}, CUDA {torch.version.cuda}"
    if device == "mps":
        return f"Apple {platform.machine()}, macOS {platform.mac_ver()[0]}"
    return f"{_cpu_model() or platform.machine()}, {os.cpu_count()} cores"


def _cpu_model() -> str | None:
    try:  # Linux names the CPU model here; elsewhere platform.processor() is the best there is
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")


def looks_like_checkpoint(pretrained: str) -> bool:
    """Whether a ``--pretrained`` value is meant as a file (a path or a checkpoint suffix), not a tag."""
    return "/" in pretrained or os.sep in pretrained or pretrained.endswith(CHECKPOINT_SUFFIXES)


@dataclass(frozen=True)
class WeightsSpec:
    """How ``--pretrained`` was given: ``random``, a local file, an ``hf-hub:`` id, or an open_clip tag."""

    kind: str  # random | file | hf-hub | tag
    value: str

    @classmethod
    def parse(cls, pretrained: str) -> WeightsSpec:
        if pretrained == "random":
            return cls("random", "random")
        if pretrained.startswith("hf-hub:"):
            return cls("hf-hub", pretrained)
        if Path(pretrained).expanduser().is_file() or looks_like_checkpoint(pretrained):
            path = Path(pretrained).expanduser()
            from .hf import is_transformers_dir

            if is_transformers_dir(path):  # config.json + weights, loaded with transformers ([hf] extra)
                return cls("transformers", str(path.resolve()))
            if path.exists() and not path.is_file():  # a folder, FIFO or device: never read (a FIFO would block)
                what = "a directory" if path.is_dir() else "not a regular file"
                raise UserError(f"checkpoint {path} is {what}; pass as pretrained weights the checkpoint file itself "
                                "(.pt, .bin, .safetensors)", "pretrained")
            if not path.is_file():
                raise UserError(f"checkpoint file {path} not found; pass as pretrained weights an existing file, "
                                "an open_clip tag such as 'openai', or 'random'", "pretrained")
            return cls("file", str(path.resolve()))
        return cls("tag", pretrained)


RANDOM_WEIGHTS_WARNING = "No pretrained weights loaded"


@contextmanager
def random_weights_quietly(random: bool = True):
    """Building a model with random weights on purpose: drop open_clip's "No pretrained weights
    loaded" warning (it logs through the root logger), which would only read like an error."""
    if not random:
        yield
        return

    def keep(record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(RANDOM_WEIGHTS_WARNING)

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


# torch's in-place random initialisers; skip_random_init turns them into no-ops.
TORCH_INITIALISERS = ("uniform_", "normal_", "trunc_normal_", "constant_", "zeros_", "ones_", "eye_",
                      "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_")


def checkpoint_sets_every_weight(weights: WeightsSpec) -> bool:
    """Whether open_clip loads these weights as a full state dict with ``strict=True`` (tags, hf-hub
    ids, ``.pt``/``.bin``/``.safetensors`` files): then every parameter and persistent buffer of the
    built model is overwritten. A big_vision ``.npz`` goes through a converter without that check."""
    if weights.kind == "file":
        return Path(weights.value).suffix.lower() not in (".npz", ".npy")
    return weights.kind in ("tag", "hf-hub")


@contextmanager
def skip_random_init(skip: bool = True):
    """Build a model without drawing random initial weights that a checkpoint overwrites at once:
    the draws are most of open_clip's build time for a checkpoint (ViT-B-32 on CPU: ~0.9 of
    ~1.5 s). Only for weights where ``checkpoint_sets_every_weight``: the strict load then
    replaces every value the skipped initialisers would have drawn (tests/test_encoder.py checks
    the loaded model equals open_clip's own load, buffers included). The patch is process-wide
    while it lasts: nothing else in dirti-bench builds a model meanwhile."""
    if not skip:
        yield
        return
    import torch.nn.init
    import torch.nn.modules.activation  # MultiheadAttention binds xavier_uniform_ and constant_ by name

    def no_draw(tensor, *args, **kwargs):
        return tensor

    saved = [(module, name, getattr(module, name)) for module in (torch.nn.init, torch.nn.modules.activation)
             for name in TORCH_INITIALISERS if hasattr(module, name)]
    try:
        for module, name, _ in saved:
            setattr(module, name, no_draw)
        yield
    finally:
        for module, name, original in saved:
            setattr(module, name, original)


class ClipEncoder:
    """open_clip model built lazily, so a warm cache never loads weights."""

    def __init__(self, model: str = DEFAULT_MODEL, pretrained: str = DEFAULT_PRETRAINED, device: str = "auto",
                 seed: int = 0, batch_size: int = DEFAULT_BATCH_SIZE, num_workers: int | None = None,
                 progress: bool = True, decode: str = DEFAULT_DECODE, precision: str = DEFAULT_PRECISION,
                 decoded: DecodedImages | None = None, weights_sha256: str | None = None,
                 decode_pool: str = DEFAULT_DECODE_POOL, gpu_decode: str = DEFAULT_GPU_DECODE):
        self.model_name = model
        self.weights = WeightsSpec.parse(pretrained)
        if self.weights.kind not in ("hf-hub", "transformers") and not known_model(model):
            raise UserError(f"unknown model {model!r}; pick one of open_clip.list_models() "
                            f"(e.g. ViT-B-32, {TINY_MODEL}) or pass the weights as hf-hub:ORG/REPO", "model")
        self.device = resolve_device(device)
        self.seed = seed
        self.batch_size = check_value("batch_size", batch_size, BATCH_SIZE)
        self.num_workers = num_workers
        self.decode = check_decode(decode)
        # A family the decode shortcuts do not serve within their tolerance decodes in full (and says so).
        self.decode_fallback = full_decode_reason(model) if self.decode != "full" else None
        self.decode_pool = check_decode_pool(decode_pool)
        self.gpu_decode_request = gpu_decode
        # JPEGs decoded on the CUDA device, feeding the batched resize (not where the family decodes in full)
        self.gpu_decode = (resolve_gpu_decode(gpu_decode, self.device, self.decode) and not self.decode_fallback
                           and self.weights.kind != "transformers")
        self.decode_route: dict = {}  # what the last image encode ran (pool, JPEG decoder), filled by it
        if self.decode_fallback:
            self.decode = "full"
        self.precision = check_precision(precision, self.device)
        self.precision_check: dict | None = None  # agreement with fp32, set by the runner for bf16/int8
        self.text_path: str | None = None  # 'truncated' | 'stock' once the model is built
        self.progress = progress
        self.decoded = decoded  # crops shared with the other models of a sweep
        self.forward_calls = 0
        self.image_forward_calls = 0  # of forward_calls, those of the image tower
        self.text_forward_calls = 0  # and those of the text tower
        self._model = None
        self._preprocess = None
        self._tokenizer = None
        self._scoring: dict | None = None  # read from the model when it is built
        # A sweep hashes its checkpoint files ahead, in the background; given, it is not read again.
        self._weights_sha256 = weights_sha256 if self.weights.kind == "file" and weights_sha256 \
            else self.weights_file_sha256()

    # ---------------------------------------------------------------- identity

    @property
    def smoke_run(self) -> bool:
        return self.weights.kind == "random"

    def weights_file_sha256(self) -> str | None:
        if self.weights.kind == "transformers":
            from .hf import weights_sha256

            return weights_sha256(Path(self.weights.value))
        if self.weights.kind != "file":
            return None
        return file_sha256(Path(self.weights.value))

    def identity(self) -> dict:
        from importlib.metadata import version

        weights = {"random": f"random:seed={self.seed}", "file": f"sha256:{self._weights_sha256}",
                   "hf-hub": self.weights.value, "tag": f"tag:{self.weights.value}",
                   "transformers": f"sha256:{self._weights_sha256}"}[self.weights.kind]
        identity = {"model": self.model_name, "weights": weights, "open_clip": version("open_clip_torch"),
                    "preprocess": self.preprocess_id, "pixels": PIXEL_RULES}
        if self.precision != DEFAULT_PRECISION:  # fp32 keys stay what they were before precisions existed
            identity["precision"] = self.precision
        if self.weights.kind == "transformers":  # its own processor config, and transformers' version
            from importlib.metadata import version as installed

            from .hf import processor_config

            identity["transformers"] = installed("transformers")
            identity["processor"] = processor_config(Path(self.weights.value))
        if self.family_preprocess:  # only families open_clip would otherwise preprocess as OpenAI CLIP
            identity["family_preprocess"] = self.family_preprocess
        return identity

    @property
    def family_preprocess(self) -> dict | None:
        """The family's own preprocessing, applied where open_clip does not take it from a pretrained
        tag (random weights, a local checkpoint file); a tag or hf-hub id brings its own."""
        if self.weights.kind not in ("random", "file"):
            return None
        return family_preprocess(self.model_name)

    @property
    def preprocess_id(self) -> str:
        # The decode path changes pixels, so it is part of the cache key (the pool does not: same pixels).
        base = "open_clip-val" if self.decode == "full" else f"open_clip-val+{self.decode}"
        return base + ("+gpu-jpeg" if self.gpu_decode else "")

    def image_decode(self) -> dict:
        """Which decode route runs (recorded in results.json): the worker pool, and whether JPEGs
        are decoded on the GPU (as asked, and as it ran in this process's last encode)."""
        ran = {k: v for k, v in self.decode_route.items()
               if k in ("pool", "workers", "jpeg_decode", "note", "crops_reused")}
        return {"pool": self.decode_pool, "gpu_decode": "on" if self.gpu_decode else "off",
                "gpu_decode_requested": self.gpu_decode_request,
                "jpeg_decoder": "torchvision decode_jpeg on cuda" if self.gpu_decode else "PIL on the CPU",
                **({"ran": ran} if ran else {})}

    def decode_options(self) -> dict:
        """encode_image_paths' decode settings for this encoder."""
        return {"num_workers": self.num_workers, "progress": self.progress, "decode": self.decode,
                "decoded": self.decoded, "pool": self.decode_pool,
                "jpeg_device": self.device if self.gpu_decode else None, "route": self.decode_route}

    @property
    def weights_sha256(self) -> str | None:
        return self._weights_sha256

    def run_info(self) -> dict:
        return {"model": self.model_name, "pretrained": self.weights.value, "weights_kind": self.weights.kind,
                "weights_sha256": self._weights_sha256, "device": self.device,
                "device_name": describe_device(self.device), "smoke_run": self.smoke_run,
                "seed": self.seed, "preprocess": self.preprocess_id, "pixels": PIXEL_RULES,
                "text_encoding": self.text_path, "scoring": self._scoring,
                "precision": self.precision, "precision_check": self.precision_check,
                "image_decode": self.image_decode(), "image_forward_calls": self.image_forward_calls,
                "text_forward_calls": self.text_forward_calls,
                **({"family_preprocess": self.family_preprocess} if self.family_preprocess else {}),
                **({"decode_fallback": f"full decode: {self.decode_fallback}"} if self.decode_fallback else {})}

    # ---------------------------------------------------------------- model

    def load(self):
        if self._model is not None:
            return self._model
        register_model_configs()
        import open_clip
        import torch

        if self.weights.kind in ("file", "tag"):
            self._check_checkpoint()
        if self.weights.kind == "transformers":
            return self._load_transformers()
        name, pretrained = self.model_name, self.weights.value
        if self.weights.kind == "random":
            torch.manual_seed(self.seed)
            pretrained = None
        elif self.weights.kind == "hf-hub":
            name, pretrained = self.weights.value, None
        try:
            # open_clip logs 'ERROR:root:...' before raising: held back, the user gets our one line.
            # Random weights are asked for on purpose: the run says so in a line of its own, so
            # open_clip's "No pretrained weights loaded" warning would only read like an error.
            with held_back(), random_weights_quietly(self.weights.kind == "random"), \
                    skip_random_init(checkpoint_sets_every_weight(self.weights)):
                family = self.family_preprocess or {}
                model, _, preprocess = open_clip.create_model_and_transforms(
                    name, pretrained=pretrained, device=self.device, image_mean=family.get("mean"),
                    image_std=family.get("std"), image_interpolation=family.get("interpolation"),
                    image_resize_mode=family.get("resize_mode"))
        except UserError:
            raise
        except Exception as exc:  # open_clip/torch/hub raise many types; all are the user's to fix
            raise UserError(self._load_error(exc), "model" if self.weights.kind == "random" else "pretrained") from None
        model.eval()
        if self._weights_sha256 is None:  # of the weights as loaded, before any precision change
            self._weights_sha256 = state_dict_sha256(model)
        model = apply_precision(model, self.precision)
        self._model, self._preprocess = model, preprocess
        self._tokenizer = open_clip.get_tokenizer(name)
        self.text_path = text_path(model)
        self._scoring = model_scoring(model)
        return model

    def scoring(self) -> dict:
        """The model's own zero-shot scoring (builds the model if it is not built yet)."""
        self.load()
        return self._scoring

    def _load_transformers(self):
        from . import hf

        if self.precision != DEFAULT_PRECISION:
            raise UserError(f"precision {self.precision} is not supported for transformers directories; use fp32",
                            "precision")
        model, preprocess, tokenize, _ = hf.load(Path(self.weights.value), self.device)
        self._model, self._preprocess, self._tokenizer = model, preprocess, tokenize
        self.text_path = "stock"
        self._scoring = model_scoring(model)
        return model

    def _check_checkpoint(self) -> None:
        """A checkpoint whose activation, embedding size or context length does not fit the named
        architecture is the user's to fix, before open_clip would resize or load it silently."""
        from .checkpoints import checkpoint_mismatch, suggestion, tag_mismatch

        if self.weights.kind == "tag":  # before any download: open_clip itself only warns
            mismatch, what = tag_mismatch(self.model_name, self.weights.value), "pretrained tag"
        else:
            mismatch = checkpoint_mismatch(Path(self.weights.value), self.model_name, self._weights_sha256)
            what = "checkpoint"
        if mismatch:
            raise UserError(f"{what} {self.weights.value} does not match {self.model_name}: {mismatch}; "
                            f"{suggestion(self.model_name, mismatch)}", "model")

    def _load_error(self, exc: Exception) -> str:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if self.weights.kind == "file":
            return (f"cannot load checkpoint {self.weights.value} ({first}); the file is truncated or not an "
                    f"open_clip checkpoint for {self.model_name}: re-download it or pass the matching model")
        if self.weights.kind == "tag":
            return (f"cannot get '{self.weights.value}' weights for {self.model_name} ({first}); offline, pass "
                    "the path to a local checkpoint as pretrained weights, or try the demo set")
        if self.weights.kind == "hf-hub":
            return (f"cannot load {self.weights.value} ({first}); offline, pass the path to a local "
                    "checkpoint as pretrained weights, or try the demo set")
        return f"cannot build {self.model_name} ({first}); check the model name"

    # ---------------------------------------------------------------- encoding

    def encode_images(self, paths: Sequence[Path]) -> np.ndarray:
        model = self.load()
        feats, forwards = encode_image_paths(model, self._preprocess, paths, device=self.device,
                                             batch_size=self.batch_size, **self.decode_options())
        self.forward_calls += forwards
        self.image_forward_calls += forwards
        return feats

    def release(self) -> None:
        """Drop the model (and its accelerator memory), so the next model of a sweep does not sit
        beside it; a later encode builds it again."""
        if self._model is None:
            return
        import weakref

        model = weakref.ref(self._model)
        self._model = self._preprocess = self._tokenizer = None
        if model() is not None:  # kept alive by a reference cycle: only the collector frees it
            import gc

            gc.collect()  # a full collection costs ~0.2 s per model, so only when needed
        if self.device == "cuda":
            import torch

            torch.cuda.empty_cache()

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """On one CPU thread wherever they are encoded (an evaluator, an image shard, the precision check):
        on two the text tower's sums split differently and an embedding differs in its last float32
        digits, so whichever caller first put a prompt in the cache would decide the run's numbers."""
        from threadpoolctl import threadpool_limits

        model = self.load()
        with threadpool_limits(limits=1):
            feats, forwards = encode_texts(model, self._tokenizer, texts, device=self.device)
        self.forward_calls += forwards
        self.text_forward_calls += forwards
        return l2_normalise(feats) if len(feats) else feats


def model_scoring(model) -> dict:
    """The logit scale and bias an open_clip model was trained with, and its probability rule: a
    model with a learned ``logit_bias`` (SigLIP, SigLIP2: ``init_logit_bias`` in its config) was
    trained with a per-class sigmoid, any other with a softmax across classes (contrastive CLIP).
    open_clip keeps the scale as its logarithm and applies ``exp`` in its forward."""
    bias = getattr(model, "logit_bias", None)
    scale = float(model.logit_scale.detach().float().exp().item())
    rule = "softmax" if bias is None else "sigmoid"
    return {"logit_scale": scale, "logit_bias": None if bias is None else float(bias.detach().float().item()),
            "rule": rule, "source": f"read from the model ({'logit_bias present: sigmoid' if bias is not None else 'no logit_bias: softmax'})"}


def state_dict_sha256(model) -> str:
    h = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def fp32_twin(clip):
    """An fp32 ClipEncoder with ``clip``'s model, weights, device and decode path."""
    return ClipEncoder(clip.model_name, clip.weights.value, device=clip.device, seed=clip.seed,
                       batch_size=clip.batch_size, num_workers=clip.num_workers, progress=False, decode=clip.decode,
                       decode_pool=clip.decode_pool, gpu_decode=clip.gpu_decode_request)


class ModelObjectEncoder(ClipEncoder):
    """The encoder seam: a model object the caller built, encoded as any open_clip model is.

    ``model``: anything with open_clip's ``encode_image(images)`` and ``encode_text(tokens)`` (a
    torch module; put it on its device and in eval mode first). ``preprocess``: a PIL image -> image
    tensor callable (open_clip's transform; applied as given). ``tokenizer``: list of strings ->
    token tensor (``open_clip.get_tokenizer(name)``). A ``logit_scale`` (and ``logit_bias``) on the
    model sets its zero-shot scoring, as for open_clip; without them the study's 100 x cosine with a
    softmax is used. The weights are hashed for the record; nothing is read from or written to the
    embedding cache (the caller may change the object between calls).
    """

    cache_embeddings = False

    def __init__(self, model, preprocess, tokenizer, name: str | None = None,
                 batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = False):
        for what, value in (("encode_image", getattr(model, "encode_image", None)),
                            ("encode_text", getattr(model, "encode_text", None))):
            if not callable(value):
                raise UserError(f"the model object {type(model).__name__} has no {what}() method; pass an "
                                "open_clip-style model (open_clip.create_model_and_transforms gives one)", "model")
        for what, value in (("preprocess", preprocess), ("tokenizer", tokenizer)):
            if not callable(value):
                raise UserError(f"{what} {value!r} is not callable; pass the model's own {what} "
                                "(open_clip.create_model_and_transforms / open_clip.get_tokenizer)", what)
        # Every setting a ClipEncoder has, as for an fp32 model with the caller's preprocessing (decode
        # "full"); nothing is built (the tiny model's name only stands in until replaced below).
        super().__init__(TINY_MODEL, "random", device="cpu", batch_size=batch_size, progress=progress, decode="full")
        self.model_name = name or type(model).__name__
        self.weights = WeightsSpec("object", "a model object")
        parameter = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
        self.device = parameter.device.type if parameter is not None else "cpu"
        self._model, self._preprocess, self._tokenizer = model, preprocess, tokenizer
        self.text_path = text_path(model)
        self._scoring = model_scoring(model) if hasattr(model, "logit_scale") else {
            "logit_scale": 100.0, "logit_bias": None, "rule": "softmax",
            "source": "the model object has no logit_scale: the study's 100 x cosine with a softmax"}
        self._weights_sha256 = state_dict_sha256(model) if hasattr(model, "state_dict") else None

    @property
    def smoke_run(self) -> bool:
        return False

    def load(self):
        return self._model

    def identity(self) -> dict:
        return {"model": self.model_name, "weights": f"sha256:{self._weights_sha256}", "preprocess": "caller's",
                "pixels": PIXEL_RULES}
