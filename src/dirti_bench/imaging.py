"""Streaming image decoding + encoding: batches from disk, never every decoded image at once."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import UserError


class ImageFiles:
    """Map-style dataset of preprocessed images; failures travel back as messages, not exceptions,
    so a corrupt file surfaces as one ``error:`` line naming it, even from a worker process."""

    def __init__(self, paths: Sequence[Path], preprocess):
        self.paths = list(paths)
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i):
        try:
            with Image.open(self.paths[i]) as im:
                return self.preprocess(im.convert("RGB")), ""
        except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError... for damaged files
            return None, f"{self.paths[i]}: {exc}"


def _collate(batch):
    import torch

    errors = [err for _, err in batch if err]
    if errors:
        return None, errors
    return torch.stack([x for x, _ in batch]), []


def default_workers() -> int:
    import os

    return min(4, max(0, (os.cpu_count() or 1) - 1))


def encode_image_paths(model, preprocess, paths: Sequence[Path], device: str, batch_size: int,
                       num_workers: int | None, progress: bool) -> tuple[np.ndarray, int]:
    import torch
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from .encoders import l2_normalise

    if not paths:
        return np.zeros((0, 0), np.float32), 0
    workers = default_workers() if num_workers is None else num_workers
    loader = DataLoader(ImageFiles(paths, preprocess), batch_size=batch_size, num_workers=workers,
                        collate_fn=_collate, pin_memory=device == "cuda", shuffle=False)
    out, forwards = [], 0
    with torch.inference_mode(), tqdm(total=len(paths), desc="encoding images", unit="img",
                                      disable=not progress) as bar:
        for images, errors in loader:
            if errors:
                raise UserError(f"cannot decode image {errors[0]}; replace the file with an intact copy")
            feats = model.encode_image(images.to(device, non_blocking=True))
            out.append(feats.float().cpu().numpy())
            forwards += 1
            bar.update(len(images))
    return l2_normalise(np.concatenate(out)), forwards
