"""A local checkpoint that does not fit the named architecture is one error line naming the
mismatch (activation, embedding size, context length), never silently resized or mis-activated."""

from __future__ import annotations

import json

import open_clip
import pytest
import torch

from dirti_bench.cli import main
from dirti_bench.encoding.checkpoints import checkpoint_mismatch
from dirti_bench.encoding.models import ClipEncoder, register_model_configs
from dirti_bench.errors import UserError


def save(tmp_path, model_name: str, file_name: str = "w.pt", folder: str = "ckpt", **model_kwargs):
    register_model_configs()
    torch.manual_seed(0)
    model = open_clip.create_model(model_name, **model_kwargs)
    folder = tmp_path / folder
    folder.mkdir()
    path = folder / file_name
    if file_name.endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    else:
        torch.save(model.state_dict(), path)
    return path


def published_beside(path, quick_gelu: bool):
    """open_clip's way of publishing a checkpoint: its config, quick_gelu included, in the same folder."""
    cfg = dict(open_clip.get_model_config("dirti-tiny"), quick_gelu=quick_gelu)
    (path.parent / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": {}}))


def test_a_quickgelu_checkpoint_in_a_gelu_architecture_is_an_error_naming_both(tmp_path):
    path = save(tmp_path, "dirti-tiny-quickgelu")
    published_beside(path, quick_gelu=True)
    with pytest.raises(UserError, match=r"does not match dirti-tiny: it was trained with QuickGELU "
                                        r"\(open_clip_config.json beside it\) but dirti-tiny uses GELU; "
                                        r"pass --model dirti-tiny-quickgelu"):
        ClipEncoder("dirti-tiny", str(path), device="cpu", progress=False).load()
    # the matching architecture loads, and so does the reverse check
    ClipEncoder("dirti-tiny-quickgelu", str(path), device="cpu", progress=False).load()
    published_beside(path, quick_gelu=False)
    assert "trained with GELU" in checkpoint_mismatch(path, "dirti-tiny-quickgelu")


def test_the_cli_says_it_in_one_line_and_exit_2(tmp_path, capsys):
    path = save(tmp_path, "dirti-tiny-quickgelu")
    published_beside(path, quick_gelu=True)
    out = tmp_path / "out"
    code = main(["run", "--demo", "--model", "dirti-tiny", "--pretrained", str(path), "--no-progress",
                 "--out", str(out), "--scenarios", "zeroshot-baseline"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    errors = [line for line in err if line.startswith("error:")]
    assert len(errors) == 1 and errors[0] == err[-1] and "QuickGELU" in errors[0]
    assert errors[0].startswith("error: checkpoint ") and not any("Traceback" in line for line in err)
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("file_name", ["w.pt", "w.safetensors"])
def test_context_length_and_embedding_size_are_read_from_the_state_dict(tmp_path, file_name):
    shorter = save(tmp_path, "dirti-tiny", file_name, text_cfg={**open_clip.get_model_config("dirti-tiny")["text_cfg"],
                                                                "context_length": 64})
    with pytest.raises(UserError, match="context length 64, dirti-tiny has 77"):
        ClipEncoder("dirti-tiny", str(shorter), device="cpu", progress=False).load()
    narrower = save(tmp_path, "dirti-tiny", file_name, "narrow", embed_dim=32)
    assert checkpoint_mismatch(narrower, "dirti-tiny") == "embedding size 32, dirti-tiny has 64"
    # a SigLIP-style text tower (CustomTextCLIP) keeps its projection elsewhere; read there too
    assert checkpoint_mismatch(save(tmp_path, "dirti-tiny-sig", file_name, "sig"), "dirti-tiny-sig") is None
    narrow_sig = save(tmp_path, "dirti-tiny-sig", file_name, "sig32", embed_dim=32)
    assert checkpoint_mismatch(narrow_sig, "dirti-tiny-sig") == "embedding size 32, dirti-tiny-sig has 64"


def test_a_matching_checkpoint_passes_and_a_bare_state_dict_is_not_judged_on_activation(tmp_path):
    path = save(tmp_path, "dirti-tiny")
    assert checkpoint_mismatch(path, "dirti-tiny") is None
    # no metadata: the activation cannot be read from the weights, so it is not claimed either way
    assert checkpoint_mismatch(path, "dirti-tiny-quickgelu") is None


def test_an_openai_tag_in_a_gelu_architecture_is_an_error_before_any_download(monkeypatch):
    """The QuickGELU mismatch open_clip only warns about: ``--pretrained openai`` with ``ViT-B-32`` (GELU) instead of ViT-B-32-quickgelu.
    Read from open_clip's own pretrained config for the tag, before any download is attempted."""
    from dirti_bench.encoding.checkpoints import tag_mismatch

    def no_download(*args, **kwargs):
        raise AssertionError("the mismatch must be caught before open_clip builds or downloads anything")

    monkeypatch.setattr(open_clip, "create_model_and_transforms", no_download)
    with pytest.raises(UserError, match=r"pretrained tag openai does not match ViT-B-32: it was trained with "
                                        r"QuickGELU \(open_clip's pretrained config of tag 'openai'\) but ViT-B-32 "
                                        r"uses GELU; pass --model ViT-B-32-quickgelu"):
        ClipEncoder("ViT-B-32", "openai", device="cpu", progress=False).load()
    assert open_clip.get_pretrained_cfg("ViT-B-32", "openai")["quick_gelu"] is True  # the metadata relied on
    assert tag_mismatch("ViT-B-32-quickgelu", "openai") is None and tag_mismatch("RN50-quickgelu", "openai") is None
    assert "trained with QuickGELU" in tag_mismatch("RN50", "openai")
    assert "trained with QuickGELU" in tag_mismatch("ViT-B-32", "laion400m_e32")  # a QuickGELU LAION release
    assert tag_mismatch("ViT-B-32", "laion2b_s34b_b79k") is None  # trained with GELU, as ViT-B-32 is
    assert tag_mismatch("ViT-B-32", "no-such-tag") is None  # open_clip's own load names an unknown tag


def test_a_bare_state_dict_that_is_an_open_clip_release_is_judged_by_its_release(tmp_path, monkeypatch):
    """A file byte-identical to an open_clip release (its sha256 matches the hash open_clip checks the
    download against) carries that release's quick_gelu; the same weights re-saved do not."""
    from dirti_bench.encoding.checkpoints import known_release
    from dirti_bench.encoding.models import file_sha256

    path = save(tmp_path, "dirti-tiny-quickgelu")
    sha = file_sha256(path)
    release = {"url": f"https://github.com/mlfoundations/open_clip/releases/download/v0/tiny-quickgelu-{sha[:8]}.pt",
               "quick_gelu": True}
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, "dirti-tiny", {"made_up_release": release})
    assert known_release(sha)[:2] == ("dirti-tiny", "made_up_release")
    assert known_release("f" * 64) is None
    with pytest.raises(UserError, match=r"trained with QuickGELU \(its sha256 is open_clip's release dirti-tiny / "
                                        r"made_up_release\) but dirti-tiny uses GELU"):
        ClipEncoder("dirti-tiny", str(path), device="cpu", progress=False).load()
    ClipEncoder("dirti-tiny-quickgelu", str(path), device="cpu", progress=False).load()
    # re-saved (another hash) and without a config beside it: undetectable, so not claimed
    resaved = tmp_path / "resaved.pt"
    torch.save({**torch.load(path, weights_only=True), "logit_scale": torch.tensor(3.0)}, resaved)
    assert checkpoint_mismatch(resaved, "dirti-tiny", file_sha256(resaved)) is None
