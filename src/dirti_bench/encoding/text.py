"""Text encoding with each batch cut to its longest real prompt.

open_clip pads every prompt to the context length (77). CLIP's text tower is
causal and pools at the end-of-text position, so the output there never sees
the padding after it: running only the first ``max(EOT position) + 1``
columns gives the same embeddings for a fraction of the work. Prompts are
sorted by length before batching so each batch is cut as short as possible.

This is done only for towers whose structure is known to allow it (checked by
``truncation_blocker``); anything else goes through ``model.encode_text``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

TEXT_BATCH = 256
POOLS_AT_EOT = ("argmax", "eos")


@dataclass(frozen=True)
class TextTower:
    """The parts of an open_clip causal text transformer the truncated forward needs."""

    token_embedding: object
    positional_embedding: object
    transformer: object
    ln_final: object
    text_projection: object
    attn_mask: object
    pool_type: str
    eos_id: int | None


def text_tower(model) -> TextTower | None:
    """The model's text tower if truncation is exact for it, else None (see ``truncation_blocker``)."""
    return _inspect(model)[0]


def truncation_blocker(model) -> str | None:
    """Why truncation is not safe for this model (None when it is)."""
    return _inspect(model)[1]


def _inspect(model) -> tuple[TextTower | None, str | None]:
    from open_clip.model import CLIP, CustomTextCLIP
    from open_clip.transformer import TextTransformer

    if isinstance(model, CLIP) and type(model).encode_text is CLIP.encode_text:
        parts = model
        pool, eos = getattr(model, "text_pool_type", None), getattr(model, "text_eos_id", None)
    elif (isinstance(model, CustomTextCLIP) and type(model).encode_text is CustomTextCLIP.encode_text
          and type(getattr(model, "text", None)) is TextTransformer):
        parts = model.text
        if parts.cls_emb is not None or parts.use_pad_mask:
            return None, "text tower appends a CLS token or masks padding"
        pool, eos = parts.pool_type, getattr(parts, "eos_id", None)
    else:
        return None, f"{type(model).__name__} text tower is not an open_clip causal TextTransformer"
    if pool not in POOLS_AT_EOT:
        return None, f"text pooling {pool!r} does not read the end-of-text position"
    mask = getattr(parts, "attn_mask", None)
    if mask is None or not _is_causal(mask):
        return None, "text attention is not causal"
    blocks = getattr(parts.transformer, "resblocks", None)
    if blocks is None or not all(_per_token_block(b) for b in blocks):
        return None, "text transformer has blocks of an unknown type"
    tower = TextTower(parts.token_embedding, parts.positional_embedding, parts.transformer, parts.ln_final,
                      parts.text_projection, mask, pool, eos)
    return tower, None


def _is_causal(mask) -> bool:
    import torch

    n = mask.shape[-1]
    if mask.ndim != 2 or mask.shape[0] != n:
        return False
    expected = torch.full((n, n), float("-inf"), dtype=mask.dtype, device=mask.device).triu_(1)
    return bool(torch.equal(mask, expected))


def _per_token_block(block) -> bool:
    # Only attention mixes positions in these blocks; everything else is per token.
    from open_clip.transformer import CustomResidualAttentionBlock, ResidualAttentionBlock

    return type(block) in (ResidualAttentionBlock, CustomResidualAttentionBlock)


def pool_positions(tokens, pool_type: str, eos_id: int | None):
    """Index each row is pooled at, by open_clip's own rule."""
    if pool_type == "argmax":
        return tokens.argmax(dim=-1)
    return (tokens == eos_id).int().argmax(dim=-1)


def encode_truncated(tower: TextTower, tokens):
    """open_clip's ``encode_text`` on ``tokens`` cut after the last pooled position (unnormalised)."""
    import torch
    from open_clip.transformer import text_global_pool

    length = int(pool_positions(tokens, tower.pool_type, tower.eos_id).max()) + 1
    tokens = tokens[:, :length]
    cast = tower.transformer.get_cast_dtype()
    x = tower.token_embedding(tokens).to(cast) + tower.positional_embedding[:length].to(cast)
    x = tower.transformer(x, attn_mask=tower.attn_mask[:length, :length])
    x = tower.ln_final(x)
    x = text_global_pool(x, tokens, tower.pool_type, eos_token_id=tower.eos_id)
    proj = tower.text_projection
    if proj is not None:
        x = proj(x) if isinstance(proj, torch.nn.Module) else x @ proj
    return x


def encode_texts(model, tokenizer, texts: Sequence[str], device: str, truncate: bool = True,
                 batch_size: int = TEXT_BATCH) -> tuple[np.ndarray, int]:
    """Unnormalised text embeddings (float32, input order) and the number of forward passes."""
    import torch

    if not texts:
        return np.zeros((0, 0), np.float32), 0
    tower = text_tower(model) if truncate else None
    tokens = tokenizer(list(texts))
    if tower is not None:  # similar lengths together: each batch is cut to its own longest prompt
        order = torch.argsort(pool_positions(tokens, tower.pool_type, tower.eos_id), stable=True)
    else:
        order = torch.arange(len(texts))
    chunks, forwards = [], 0
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokens[order[start:start + batch_size]].to(device)
            feats = encode_truncated(tower, batch) if tower is not None else model.encode_text(batch)
            chunks.append(feats.float().cpu())
            forwards += 1
    feats = torch.cat(chunks)
    out = torch.empty_like(feats)
    out[order] = feats  # back to input order
    return out.numpy(), forwards


def text_path(model) -> str:
    """'truncated' or 'stock': recorded in run info so a reader knows which forward ran."""
    return "truncated" if text_tower(model) is not None else "stock"
