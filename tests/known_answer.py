"""A known-answer encoder: a test double with the encoder interface that returns
constructed embeddings, so the right answer of every evaluator is known.

Images get the one-hot vector of their true class (optionally plus noise);
prompts get the one-hot vector of the class they were written for. A perfect
oracle therefore scores accuracy 1.0; feeding it the prompts in another order
than the label space scores ~0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np


class KnownAnswerEncoder:
    def __init__(self, image_vectors: Mapping[str, np.ndarray], text_vector: Callable[[str], np.ndarray],
                 name: str = "known-answer", logit_scale: float = 100.0, logit_bias: float | None = None,
                 rule: str = "softmax"):
        self.image_vectors = {Path(k).name: np.asarray(v, np.float32) for k, v in image_vectors.items()}
        self.text_vector = text_vector
        self.name = name
        self.forward_calls = 0
        # The scoring a trained model would report (encoding.models.model_scoring): CLIP-like by default.
        self.logit_scale, self.logit_bias, self.rule = logit_scale, logit_bias, rule

    def scoring(self) -> dict:
        return {"logit_scale": self.logit_scale, "logit_bias": self.logit_bias, "rule": self.rule,
                "source": "constructed"}

    def identity(self) -> dict:
        return {"model": self.name, "weights": "constructed", "preprocess": "none"}

    def run_info(self) -> dict:
        return {"model": self.name, "pretrained": "constructed", "weights_sha256": None,
                "device": "cpu", "smoke_run": False, "seed": 0}

    @staticmethod
    def _norm(x: np.ndarray) -> np.ndarray:
        return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)

    def encode_images(self, paths: Sequence[Path]) -> np.ndarray:
        self.forward_calls += 1
        return self._norm(np.stack([self.image_vectors[Path(p).name] for p in paths]))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.forward_calls += 1
        return self._norm(np.stack([self.text_vector(t) for t in texts]))


def one_hot(i: int, dim: int) -> np.ndarray:
    v = np.full(dim, 1e-3, np.float32)
    v[i] = 1.0
    return v


def oracle(stimuli, space, prompt_set, noise: float = 0.0, seed: int = 0, invert: bool = False):
    """Images -> one-hot of their true class in ``space``; each prompt -> one-hot of its class.

    ``invert=True`` maps class i's prompts to class n-1-i: the label-mapping
    mistake, which must score ~0.
    """
    rng = np.random.default_rng(seed)
    n = len(space.names)
    dim = max(n, 2)
    by_id = {s.id: s for s in stimuli.stimuli}
    images = {}
    for sid, y in zip(space.stimulus_ids, space.y_true, strict=True):
        images[by_id[sid].path.name] = one_hot(int(y), dim) + noise * rng.standard_normal(dim).astype(np.float32)
    prompt_class = {}
    for i, group in enumerate(prompt_set.prompts):
        for p in group:
            prompt_class[p] = (n - 1 - i) if invert else i
    return KnownAnswerEncoder(images, lambda t: one_hot(prompt_class[t], dim))
