"""Reduced-precision encoding (``--precision bf16|int8``): opt-in, never the default, never silent.

* ``bf16``  the model's weights and inputs in bfloat16; where the hardware has bf16
            arithmetic (a CUDA GPU that reports it, Apple MPS on macOS 14+, a CPU with
            AVX512-BF16 or AMX).
* ``int8``  dynamic int8 quantisation of the image tower's ``nn.Linear`` layers (weights int8,
            activations quantised per batch); torch's quantised kernels are CPU-only. Texts stay
            fp32: a few hundred prompts, encoded once, and open_clip's text tower reads its
            dtype from a Linear weight that quantisation replaces.

A reduced-precision run always measures its agreement with fp32 on a sample of the
images (min cosine of the embeddings, share of identical category zero-shot
predictions), prints it, and records it with the results.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..labels import build_label_space
from ..prompts import study_prompts

PRECISIONS = ("fp32", "bf16", "int8")
DEFAULT_PRECISION = "fp32"
AGREEMENT_IMAGES = 32  # images of the fp32 comparison: a few batches, so the check stays cheap

def spread_indices(n: int, k: int) -> list[int]:
    """k indices spread evenly over range(n) (all of them when k >= n)."""
    return list(range(n)) if k >= n else [round(i * n / k) for i in range(k)]


def check_precision(precision: str, device: str) -> str:
    """``precision`` if ``device`` (already resolved) can run it, else a UserError naming the way out."""
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "int8" and device != "cpu":
        raise UserError(f"precision int8 (dynamic int8 quantisation) runs on CPU kernels only, not on {device}; "
                        "use precision bf16 there, or device cpu", "precision")
    if precision == "bf16" and not bf16_supported(device):
        raise UserError(f"precision bf16 needs bf16 arithmetic, which this {device} lacks "
                        "(CUDA: torch.cuda.is_bf16_supported(); MPS: macOS 14+; CPU: AVX512-BF16 or AMX); "
                        "use precision fp32" + (" or int8" if device == "cpu" else ""), "precision")
    return precision


def bf16_supported(device: str) -> bool:
    import torch

    if device == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device == "mps":
        return torch.backends.mps.is_available() and torch.backends.mps.is_macos_or_newer(14, 0)
    return cpu_has_bf16()


def cpu_has_bf16() -> bool:
    """oneDNN's own test for native bf16 (AVX512-BF16 / AMX), the kernels bf16 linears use on CPU."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch built without oneDNN
        return False


def apply_precision(model, precision: str):
    """The model converted for ``precision`` (in place where torch allows it)."""
    import torch

    if precision == "bf16":
        return model.to(torch.bfloat16)
    if precision == "int8":
        import warnings

        from torch.ao.quantization import quantize_dynamic

        with warnings.catch_warnings():  # torch's notice that quantised tensors will move to torchao
            warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor.*deprecated", category=UserWarning)
            model.visual = quantize_dynamic(model.visual, {torch.nn.Linear}, dtype=torch.qint8)
    return model


def input_dtype(model):
    """The dtype images must have for ``model``: that of its first floating-point parameter."""
    import torch

    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


def agreement(fp32_encoder, reduced_encoder, paths: Sequence[Path], prompts: Sequence[str]) -> dict:
    """How closely ``reduced_encoder`` follows ``fp32_encoder`` on ``paths``: min cosine of the image
    embeddings, and the share of images whose zero-shot prediction over ``prompts`` is the same."""
    encoders = (fp32_encoder, reduced_encoder)
    forwards_before = sum(enc.forward_calls for enc in encoders)
    images = [enc.encode_images(paths) for enc in encoders]
    texts = [enc.encode_texts(prompts) for enc in encoders]
    preds = [np.argmax(img @ txt.T, axis=1) for img, txt in zip(images, texts, strict=True)]
    return {"precision": reduced_encoder.precision, "images": len(paths), "prompts": len(prompts),
            "min_cosine": float(np.min(np.sum(images[0] * images[1], axis=1))),
            "identical_predictions": float(np.mean(preds[0] == preds[1])),
            "forward_calls": sum(enc.forward_calls for enc in encoders) - forwards_before}



def category_agreement(fp32_encoder, reduced_encoder, stimuli, limit: int | None = AGREEMENT_IMAGES) -> dict:
    """``agreement`` on ``limit`` images spread over ``stimuli`` (all with None), zero-shot over the
    study's category prompts."""
    picked = spread_indices(len(stimuli), len(stimuli) if limit is None else limit)
    prompts = study_prompts(build_label_space(stimuli, "category")).all_prompts()
    return agreement(fp32_encoder, reduced_encoder, [stimuli.stimuli[i].path for i in picked], prompts)


def describe(check: dict) -> str:
    same = round(check["identical_predictions"] * check["images"])
    return (f"precision {check['precision']} vs fp32 on {check['images']} images: min cosine "
            f"{check['min_cosine']:.5f}, identical category predictions {check['identical_predictions']:.1%} "
            f"({same}/{check['images']})")
