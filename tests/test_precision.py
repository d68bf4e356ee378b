"""--precision bf16|int8: opt-in, refused where the hardware lacks it, always checked against fp32."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dirti_bench.cli import main
from dirti_bench.encoding import precision
from dirti_bench.encoding.models import ClipEncoder
from dirti_bench.encoding.precision import agreement, check_precision, describe
from dirti_bench.errors import UserError


def run_demo(capsys, out, *args):
    code = main(["run", "--demo", "--no-progress", "--out", str(out), "--scenarios", "zeroshot-baseline", *args])
    captured = capsys.readouterr()
    return code, captured.err, (json.loads((out / "results.json").read_text())["run"] if code == 0 else None)


class FixedEncoder:
    """Known answer: returns the given image/text embeddings."""

    def __init__(self, images, texts, name="fp32"):
        self.images, self.texts, self.precision, self.forward_calls = np.asarray(images), np.asarray(texts), name, 0

    def encode_images(self, paths):
        self.forward_calls += 1
        return self.images[: len(paths)]

    def encode_texts(self, texts):
        self.forward_calls += 1
        return self.texts


def test_agreement_of_identical_encoders_is_perfect():
    eye = np.eye(4)
    check = agreement(FixedEncoder(eye, eye), FixedEncoder(eye, eye, "bf16"), ["a", "b", "c", "d"], list("wxyz"))
    assert check == {"precision": "bf16", "images": 4, "prompts": 4, "min_cosine": 1.0,
                     "identical_predictions": 1.0, "forward_calls": 4}


def test_agreement_counts_changed_predictions_and_the_worst_cosine():
    eye = np.eye(4)
    moved = eye.copy()
    moved[2] = [0, -1, 0, 0]  # image 2 now points away from class 2 and towards nothing it had
    moved[3] = [0.6, 0, 0, 0.8]  # image 3 keeps its class, cosine 0.8
    check = agreement(FixedEncoder(eye, eye), FixedEncoder(moved, eye, "int8"), list("abcd"), list("wxyz"))
    assert check["identical_predictions"] == 0.75
    assert check["min_cosine"] == 0.0
    assert describe(check).startswith("precision int8 vs fp32 on 4 images: min cosine 0.00000, identical "
                                      "category predictions 75.0% (3/4)")


@pytest.mark.parametrize(("value", "device", "fix"), [
    ("fp16", "cpu", "choose one of fp32, bf16, int8"),
    ("int8", "cuda", "use precision bf16 there, or device cpu"),
    ("int8", "mps", "use precision bf16 there, or device cpu"),
])
def test_unusable_precisions_are_user_errors(value, device, fix):
    with pytest.raises(UserError, match=fix):
        check_precision(value, device)


def test_bf16_is_refused_where_the_hardware_has_no_bf16(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    with pytest.raises(UserError, match="lacks.*AVX512-BF16 or AMX.*use precision fp32 or int8"):
        check_precision("bf16", "cpu")
    code, err, _ = run_demo(capsys, tmp_path / "out", "--device", "cpu", "--precision", "bf16")
    assert code == 2
    assert [line for line in err.splitlines() if line.startswith("error:")] == [err.strip()]
    assert "precision bf16 needs" in err and "(command-line option --precision)" in err and not (tmp_path / "out").exists()


def test_fp32_keeps_its_cache_key_and_reduced_precisions_get_their_own():
    keys = {p: ClipEncoder("dirti-tiny", "random", device="cpu", precision=p).identity() for p in ("fp32", "int8")}
    assert "precision" not in keys["fp32"]  # caches written before --precision existed stay valid
    assert keys["int8"] == {**keys["fp32"], "precision": "int8"}


@pytest.mark.slow  # heavy: out of the default run, CI runs it (pytest -m slow)
@pytest.mark.parametrize("value", ["int8", "bf16"])
def test_reduced_precision_run_prints_and_records_its_agreement(monkeypatch, capsys, tmp_path, value):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)  # emulated where the CPU lacks it: slow, same numbers
    code, err, run = run_demo(capsys, tmp_path / value, "--device", "cpu", "--precision", value)
    assert code == 0, err
    check = run["precision_check"]
    assert run["precision"] == check["precision"] == value
    assert check["images"] == precision.AGREEMENT_IMAGES and check["prompts"] == 6  # the six categories
    assert 0.99 <= check["min_cosine"] <= 1.0
    assert 0.0 <= check["identical_predictions"] <= 1.0
    assert describe(check) in err
    _, _, fp32 = run_demo(capsys, tmp_path / "fp32", "--device", "cpu")
    assert fp32["precision"] == "fp32" and fp32["precision_check"] is None
    assert fp32["weights_sha256"] == run["weights_sha256"]  # the weights as loaded, before conversion
    assert fp32["cache"]["dir"] != run["cache"]["dir"]


def test_reduced_precision_embeddings_really_differ_from_fp32(demo_stimuli):
    paths = [s.path for s in demo_stimuli.stimuli][:8]
    feats = {p: ClipEncoder("dirti-tiny", "random", device="cpu", progress=False, precision=p).encode_images(paths)
             for p in ("fp32", "int8")}
    assert feats["int8"].dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(feats["int8"], axis=1), 1.0, atol=1e-5)
    assert not np.allclose(feats["fp32"], feats["int8"], atol=1e-6)
    assert (feats["fp32"] * feats["int8"]).sum(axis=1).min() > 0.99
