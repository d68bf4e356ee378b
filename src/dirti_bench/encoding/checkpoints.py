"""A local checkpoint checked against the architecture it is loaded into, before open_clip loads it.

open_clip resizes a checkpoint's text and image position embeddings to the architecture's
silently, and nothing in a state dict says which activation it was trained with, so a
mismatched ``--model`` gives wrong features without a word. Checked here, each a one-line error:

* embedding size: the text projection's output width against the config's ``embed_dim``;
* context length: the text position embedding's rows against ``text_cfg.context_length``;
* activation (QuickGELU or GELU), which the weights cannot show, from metadata: an
  ``open_clip_config.json`` beside the file (how open_clip publishes checkpoints) states
  ``quick_gelu``; a TorchScript archive is OpenAI's release format, trained with QuickGELU;
  a file whose sha256 is one of open_clip's own releases (the hash open_clip checks a download
  against: the folder of an ``openaipublic`` URL, the ``-<hex>`` suffix of an
  ``mlfoundations`` release) is that release, and its pretrained config says ``quick_gelu``.

An open_clip *tag* (``--pretrained openai``) is checked from open_clip's pretrained config for
the tag (``open_clip.get_pretrained_cfg``: ``quick_gelu`` True for every ``openai`` tag and the
QuickGELU-trained LAION ones): ``ViT-B-32`` with ``openai`` is the mismatch open_clip users keep reporting, which
open_clip itself only warns about; here it is an error naming ``ViT-B-32-quickgelu``.

What stays undetectable, and why: a bare state dict (``.pt``/``.bin``/``.safetensors``) with no
config beside it that is not byte-identical to an open_clip release, e.g. a fine-tune of OpenAI's
weights saved with ``torch.save(model.state_dict())``, or a release re-saved (hash changed) or
fetched only from the Hugging Face hub (its pretrained config records no hash). QuickGELU and GELU
have no parameters, so the tensors are identical either way, and a forward pass cannot decide on
its own: both activations give finite, plausible features from the same weights, and the
statistics that would separate them (zero-shot accuracy, the embeddings of a reference image)
are only known for published weights, which the hash already identifies.

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


def _release_hash(url: str) -> str | None:
    """The sha256 (or its prefix) open_clip checks a download of ``url`` against, as
    ``open_clip.pretrained.download_pretrained_from_url`` reads it; None where it checks none."""
    parts = url.rstrip("/").split("/")
    if "openaipublic" in url and len(parts) >= 2:
        return parts[-2].lower()
    if "mlfoundations" in url:
        suffix = Path(parts[-1]).stem.split("-")[-1].lower()
        return suffix if suffix and all(c in "0123456789abcdef" for c in suffix) else None
    return None


def known_release(sha256: str | None) -> tuple[str, str, dict] | None:
    """(model, tag, pretrained config) of the open_clip release whose recorded hash the file's
    sha256 matches, or None."""
    if not sha256:
        return None
    import open_clip

    sha256 = sha256.lower()
    for model, tag in open_clip.list_pretrained():
        cfg = open_clip.get_pretrained_cfg(model, tag)
        expected = _release_hash(cfg.get("url") or "")
        if expected and len(expected) >= 8 and sha256.startswith(expected):
            return model, tag, cfg
    return None


def tag_mismatch(model_name: str, tag: str) -> str | None:
    """An open_clip pretrained tag trained with another activation than ``model_name`` uses (open_clip's
    own pretrained config for the tag), or None (also for a tag open_clip does not know: its load says so)."""
    import open_clip

    cfg, pretrained = open_clip.get_model_config(model_name), open_clip.get_pretrained_cfg(model_name, tag)
    if cfg is None or not pretrained:
        return None
    # Only what the tag states: open_clip marks QuickGELU-trained releases with quick_gelu True; a tag without
    # the key says nothing (e.g. roberta-ViT-B-32's, whose own config is QuickGELU), so it is not judged.
    trained, wants = pretrained.get("quick_gelu"), bool(cfg.get("quick_gelu", False))
    if trained is None or bool(trained) == wants:
        return None
    names = ("QuickGELU", "GELU") if trained else ("GELU", "QuickGELU")
    return (f"it was trained with {names[0]} (open_clip's pretrained config of tag {tag!r}) but {model_name} "
            f"uses {names[1]}")


def checkpoint_mismatch(path: Path, model_name: str, sha256: str | None = None) -> str | None:
    """What about the checkpoint at ``path`` does not fit ``model_name``'s config, or None.
    ``sha256``: the file's, to recognise an open_clip release (``known_release``)."""
    import open_clip

    cfg = open_clip.get_model_config(model_name)
    if cfg is None:
        return None
    found = []
    quick = _trained_quick_gelu(path)
    release = known_release(sha256) if quick is None else None
    if release is not None:
        quick = (bool(release[2].get("quick_gelu", False)), f"its sha256 is open_clip's release {release[0]} / "
                 f"{release[1]}")
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
