"""Truncated text encoding: same embeddings as open_clip's encode_text, stock path when unsafe."""

from __future__ import annotations

import numpy as np
import open_clip
import pytest
import torch

from dirti_bench.encoding.models import register_model_configs
from dirti_bench.encoding.text import encode_texts, text_path, truncation_blocker

# Lengths from 2 to past the context window (the tokenizer cuts it), in shuffled order.
PROMPTS = [
    "a photo of food.",
    "dirt",
    "This is a disgusting photo of injuries/infections",
    " ".join(["very"] * 90) + " rotten food",
    "a low resolution photo of the body products.",
    "a tattoo of a death.",
    "itap of a hygiene.",
    "a photo of the hard to see disgusting animals, taken on a rainy day in a dark alley",
]


def _model(name: str, **kwargs):
    register_model_configs()
    torch.manual_seed(0)
    model = open_clip.create_model(name, pretrained=None, **kwargs).eval()
    return model, open_clip.get_tokenizer(name)


def _unit(x) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _stock(model, tokenizer, texts) -> np.ndarray:
    with torch.inference_mode():
        return model.encode_text(tokenizer(texts)).numpy()


@pytest.fixture(scope="module")
def tiny():
    return _model("dirti-tiny")


@pytest.mark.parametrize("batch_size", [3, 256])
def test_truncated_equals_open_clip_on_tiny(tiny, batch_size):
    model, tokenizer = tiny
    assert truncation_blocker(model) is None
    ours, forwards = encode_texts(model, tokenizer, PROMPTS, "cpu", batch_size=batch_size)
    assert forwards == -(-len(PROMPTS) // batch_size)
    assert np.abs(_unit(ours) - _unit(_stock(model, tokenizer, PROMPTS))).max() <= 1e-4


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
def test_truncated_equals_open_clip_on_vit_b32():
    model, tokenizer = _model("ViT-B-32")
    assert text_path(model) == "truncated"
    texts = PROMPTS[:4]
    ours, _ = encode_texts(model, tokenizer, texts, "cpu")
    assert np.abs(_unit(ours) - _unit(_stock(model, tokenizer, texts))).max() <= 1e-4


def test_custom_text_clip_is_truncated_too():
    model, tokenizer = _model("dirti-tiny", force_custom_text=True)
    assert type(model).__name__ == "CustomTextCLIP"
    assert truncation_blocker(model) is None
    ours, _ = encode_texts(model, tokenizer, PROMPTS, "cpu")
    assert np.abs(_unit(ours) - _unit(_stock(model, tokenizer, PROMPTS))).max() <= 1e-4


def test_transformer_sees_only_the_longest_real_prompt(tiny):
    model, tokenizer = tiny
    seen = []
    hook = model.transformer.register_forward_hook(lambda mod, args, out: seen.append(args[0].shape[1]))
    try:
        encode_texts(model, tokenizer, ["a photo of food.", "dirt"], "cpu")
        encode_texts(model, tokenizer, ["a photo of food.", "dirt"], "cpu", truncate=False)
    finally:
        hook.remove()
    longest = int(tokenizer(["a photo of food."]).argmax(dim=-1)) + 1  # position of end-of-text
    assert seen == [longest, model.context_length]


def test_short_prompts_are_batched_together_and_returned_in_input_order(tiny):
    model, tokenizer = tiny
    texts = [PROMPTS[3], "dirt", PROMPTS[7], "food"]
    seen = []
    hook = model.transformer.register_forward_hook(lambda mod, args, out: seen.append(args[0].shape[1]))
    try:
        ours, forwards = encode_texts(model, tokenizer, texts, "cpu", batch_size=2)
    finally:
        hook.remove()
    assert forwards == 2
    # "dirt" and "food" are sorted into one batch, cut to start + word + end-of-text.
    assert seen == [int(tokenizer(["dirt", "food"]).argmax(dim=-1).max()) + 1, model.context_length]
    np.testing.assert_allclose(_unit(ours), _unit(_stock(model, tokenizer, texts)), atol=1e-5)


@pytest.mark.parametrize("breaks, reason", [
    (lambda m: setattr(m, "text_pool_type", "last"), "pooling"),
    (lambda m: m.attn_mask.zero_(), "not causal"),
])
def test_unsafe_towers_fall_back_to_stock(breaks, reason):
    model, tokenizer = _model("dirti-tiny")
    breaks(model)
    assert reason in truncation_blocker(model)
    assert text_path(model) == "stock"
    seen = []
    hook = model.transformer.register_forward_hook(lambda mod, args, out: seen.append(args[0].shape[1]))
    try:
        ours, _ = encode_texts(model, tokenizer, PROMPTS[:3], "cpu")
    finally:
        hook.remove()
    assert seen == [model.context_length]
    np.testing.assert_allclose(ours, _stock(model, tokenizer, PROMPTS[:3]), atol=1e-6)


def test_unknown_model_types_use_their_own_encode_text():
    class Other(torch.nn.Module):
        def encode_text(self, tokens):
            return tokens[:, :3].float() + 1

    model = Other()
    assert "not an open_clip causal TextTransformer" in truncation_blocker(model)
    out, forwards = encode_texts(model, lambda texts: torch.tensor([[len(t), 0, 0, 0] for t in texts]),
                                 ["ab", "abcd"], "cpu")
    np.testing.assert_array_equal(out, [[3, 1, 1], [5, 1, 1]])
    assert forwards == 1


def test_no_texts_no_forward(tiny):
    model, tokenizer = tiny
    out, forwards = encode_texts(model, tokenizer, [], "cpu")
    assert out.shape == (0, 0) and forwards == 0
