"""Model families: each scored and preprocessed as it was trained, and tiny stand-ins for tests.

open_clip takes a family's preprocessing (mean/std, resize mode, interpolation) from the
pretrained *tag*; a model built with random weights or from a local checkpoint file gets
OpenAI CLIP's defaults, which is wrong for SigLIP (squash to the square, mean/std 0.5) and
CLIPA. ``family_preprocess`` states each family's rule from its name alone (no import, so a
warm run stays cheap); tests/test_families.py checks the rule against the preprocessing of
every published tag of those families in open_clip's own table.

The ``dirti-tiny-*`` configs (model_configs/) are the real families with tiny widths: the
same tower types, activation, pooling, logit bias and preprocessing, so tests of every
family run in seconds on two cores. They derive from:
"""

from __future__ import annotations

import re

# tiny config -> the open_clip architecture whose towers, activation and preprocessing it copies
TINY_FAMILIES = {
    "dirti-tiny": "ViT-B-32",
    "dirti-tiny-quickgelu": "ViT-B-32-quickgelu",
    "dirti-tiny-rn50": "RN50",
    "dirti-tiny-convnext": "convnext_base_w",
    "dirti-tiny-sig": "ViT-B-16-SigLIP",
    "dirti-tiny-sig2": "ViT-B-16-SigLIP2",
}
# The SigLIP stand-ins are not named "siglip": for such a name open_clip fetches SigLIP's own
# tokenizer from Hugging Face (offline: impossible); they use CLIP's tokenizer, padded to the
# context length as SigLIP's text tower expects.
__doc__ += "".join(f"\n* ``{tiny}``: ``{real}``" for tiny, real in TINY_FAMILIES.items()) + "\n"

INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# (name pattern, preprocessing) in order; the first match wins; no match: open_clip's defaults
# (OpenAI mean/std, bicubic, shortest side + centre crop), right for CLIP ViT, ResNet, ConvNeXt.
FAMILY_RULES = (
    (re.compile(r"siglip", re.IGNORECASE),
     {"mean": INCEPTION_MEAN, "std": INCEPTION_STD, "interpolation": "bicubic", "resize_mode": "squash"}),
    (re.compile(r"CLIPA", re.IGNORECASE),
     {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "interpolation": "bilinear", "resize_mode": "squash"}),
)

TINY_VIT_SIGLIP = "vit_dirti_tiny_patch16_siglip_64"

# Families whose embeddings moved beyond the decode shortcuts' tolerance (cosine 0.999 to the full
# decode) in tests/test_families.py: they fall back to the full decode. ConvNeXt: the JPEG draft
# decode (reduced DCT scale) alone gave cosine 0.9985 on 4:3 photos; ViT, ResNet and SigLIP >= 0.9999.
FULL_DECODE_FAMILIES = (
    (re.compile(r"convnext", re.IGNORECASE),
     "ConvNeXt: the JPEG draft decode moved embeddings beyond cosine 0.999 of the full decode"),
)


def full_decode_reason(model_name: str) -> str | None:
    """Why this family must decode every pixel (the shortcuts fall back), or None."""
    model_name = TINY_FAMILIES.get(model_name, model_name)
    return next((why for pattern, why in FULL_DECODE_FAMILIES if pattern.search(model_name)), None)


def family_preprocess(model_name: str) -> dict | None:
    """The family's own preprocessing where it differs from open_clip's defaults, else None."""
    model_name = TINY_FAMILIES.get(model_name, model_name)
    for pattern, preprocess in FAMILY_RULES:
        if pattern.search(model_name):
            return dict(preprocess)
    return None


def register_tiny_timm_models() -> None:
    """timm's SigLIP image tower (a ViT without class token, attention-pool 'map' head) at tiny
    width, for ``dirti-tiny-sig*``: timm has no SigLIP smaller than base."""
    import timm
    from timm.models import register_model

    if timm.list_models(TINY_VIT_SIGLIP):
        return

    def vit_dirti_tiny_patch16_siglip_64(pretrained: bool = False, **kwargs):
        from timm.models.vision_transformer import VisionTransformer

        if pretrained:
            raise ValueError(f"{TINY_VIT_SIGLIP} is a test model and has no pretrained weights")
        # vit_base_patch16_siglip_224's arguments with widths cut: no class token, 'map' pooling
        args = dict(img_size=64, patch_size=16, embed_dim=64, depth=2, num_heads=2, class_token=False,
                    global_pool="map")
        for timm_only in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):  # create_model's, not the ViT's
            kwargs.pop(timm_only, None)
        return VisionTransformer(**{**args, **kwargs})

    vit_dirti_tiny_patch16_siglip_64.__name__ = TINY_VIT_SIGLIP
    register_model(vit_dirti_tiny_patch16_siglip_64)
