"""A local checkpoint checked against the architecture it is loaded into, before open_clip loads it.

open_clip resizes a checkpoint's text and image position embeddings to the architecture's
silently, and nothing in a state dict says which activation it was trained with, so a
mismatched ``--model`` gives wrong features without a word. Checked here, each a one-line error:

* embedding size: the text projection's output width against the config's ``embed_dim``;
* context length: the text position embedding's rows against ``text_cfg.context_length``;
* activation (QuickGELU or GELU), which the weights cannot show, from metadata: an
  ``open_clip_config.json`` beside the file (how open_clip publishes checkpoints) states
  ``quick_gelu``; a TorchScript archive is OpenAI's release format, trained with QuickGELU.
  A bare state dict without either is not checked for its activation (nothing to read it from;
  a forward pass cannot tell on its own which activation random or fine-tuned weights expect).

Shapes are read without loading the tensors (the safetensors header; ``torch.load`` with mmap).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

OPEN_CLIP_CONFIG = "open_clip_config.json"


def _shapes(path: Path) -> dict[str, tuple[int, ...]] | None:
    """Parameter name -> shape, without reading the tensors; None where the file is not a state dict."""
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        import torch

        loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # not ours to diagnose: open_clip's load says what is wrong with the file
        return None
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict):
        return None
    prefix = "module."
    return {k[len(prefix):] if k.startswith(prefix) else k: tuple(getattr(v, "shape", ())) for k, v in loaded.items()}


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any("/code/" in name for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _trained_quick_gelu(path: Path) -> tuple[bool, str] | None:
    """(whether the checkpoint was trained with QuickGELU, where that was read), or None if unknown."""
    beside = path.parent / OPEN_CLIP_CONFIG
    if beside.is_file():
        try:
            config = json.loads(beside.read_text())
            cfg = config.get("model_cfg", config)
            return bool(cfg.get("quick_gelu", False)), f"{beside.name} beside it"
        except (OSError, ValueError, AttributeError):
            pass
    if _is_torchscript(path):
        return True, "a TorchScript archive, OpenAI's release format"
    return None


def checkpoint_mismatch(path: Path, model_name: str) -> str | None:
    """What about the checkpoint at ``path`` does not fit ``model_name``'s config, or None."""
    import open_clip

    cfg = open_clip.get_model_config(model_name)
    if cfg is None:
        return None
    found = []
    quick = _trained_quick_gelu(path)
    wants_quick = bool(cfg.get("quick_gelu", False))
    if quick is not None and quick[0] != wants_quick:
        trained, built = ("QuickGELU", "GELU") if quick[0] else ("GELU", "QuickGELU")
        found.append(f"it was trained with {trained} ({quick[1]}) but {model_name} uses {built}")
    shapes = _shapes(path) or {}
    embed = cfg.get("embed_dim")
    if "text_projection" in shapes and len(shapes["text_projection"]) == 2:
        got = shapes["text_projection"][1]
    elif "text.text_projection.weight" in shapes:
        got = shapes["text.text_projection.weight"][0]
    else:
        got = None
    if embed and got is not None and got != embed:
        found.append(f"embedding size {got}, {model_name} has {embed}")
    context = cfg.get("text_cfg", {}).get("context_length", 77)
    rows = next((shapes[k][0] for k in ("positional_embedding", "text.positional_embedding") if k in shapes), None)
    if rows is not None and rows != context:
        found.append(f"context length {rows}, {model_name} has {context}")
    return "; ".join(found) or None


def suggestion(model_name: str, mismatch: str) -> str:
    """The --model to try, where the mismatch is only the activation and its twin exists."""
    import open_clip

    if "QuickGELU" in mismatch and "embedding" not in mismatch and "context" not in mismatch:
        twin = model_name[:-len("-quickgelu")] if model_name.endswith("-quickgelu") else f"{model_name}-quickgelu"
        if twin in open_clip.list_models():
            return f"pass --model {twin}"
    return "pass the --model this checkpoint was trained as"
