"""Every PIL mode becomes the right RGB pixels (or a one-line refusal before anything is encoded):
16-bit and float greyscale scaled by their type's range, transparency on white, EXIF orientation
applied, decompression bombs refused by name."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from dirti_bench.cli import main
from dirti_bench.data.pixels import BACKGROUND, PIXEL_RULES, check_pixels, to_rgb
from dirti_bench.data.stimuli import verify_image
from dirti_bench.encoding.imaging import DECODE_PATHS, open_rgb
from dirti_bench.encoding.models import ClipEncoder
from dirti_bench.errors import UserError


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def grey_photo(tmp_path_factory):
    """A demo photo as 8-bit greyscale and the same pixels as a 16-bit PNG (v * 257, exact)."""
    from dirti_bench.data.demo import make_demo

    root = make_demo(tmp_path_factory.mktemp("grey") / "d", seed=5, n_disgust=1, n_neutral=0)
    photo = sorted(root.rglob("*.jpg"))[2]
    grey8 = np.asarray(Image.open(photo).convert("L"))
    folder = tmp_path_factory.mktemp("pairs")
    Image.fromarray(grey8, "L").save(folder / "grey8.png")
    Image.fromarray(grey8.astype(np.uint16) * 257).save(folder / "grey16.png")
    Image.new("L", (grey8.shape[1], grey8.shape[0]), 255).save(folder / "white.png")
    return folder


@pytest.mark.parametrize("decode", DECODE_PATHS)
def test_a_16_bit_image_embeds_like_its_8_bit_version_not_like_white(grey_photo, decode):
    assert Image.open(grey_photo / "grey16.png").mode == "I;16"
    encoder = ClipEncoder("dirti-tiny", "random", device="cpu", progress=False, decode=decode)
    eight, sixteen, white = encoder.encode_images([grey_photo / n for n in ("grey8.png", "grey16.png", "white.png")])
    assert float(eight @ sixteen) >= 0.999
    assert float(white @ sixteen) < float(eight @ sixteen) - 1e-3  # the embedding sees the content


def test_16_bit_scaling_uses_the_type_range_exactly():
    ramp = np.arange(0, 65536, 257, dtype=np.uint16).reshape(16, 16)  # 256 levels v * 257
    rgb = np.asarray(to_rgb(Image.fromarray(ramp)))
    assert rgb.dtype == np.uint8 and (rgb == np.arange(256, dtype=np.uint8).reshape(16, 16, 1)).all()
    dim = np.full((4, 4), 1000, np.uint16)  # no stretching to the image's own range: stays dim
    assert (np.asarray(to_rgb(Image.fromarray(dim))) == 4).all()


def test_32_bit_integer_and_float_greyscale():
    as_int = Image.fromarray(np.array([[0, 65535]], np.int32))
    assert as_int.mode == "I" and np.asarray(to_rgb(as_int))[0, :, 0].tolist() == [0, 255]
    as_float = Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32))
    assert as_float.mode == "F" and np.asarray(to_rgb(as_float))[0, :, 0].tolist() == [0, 128, 255]
    for bad in (np.array([[-5, 70000]], np.int32), np.array([[0.0, 3.0]], np.float32),
                np.array([[np.nan, 0.5]], np.float32)):
        with pytest.raises(UserError, match="re-save it as"):
            to_rgb(Image.fromarray(bad), "x.tif")


def _half_transparent() -> Image.Image:
    """Left half opaque red, right half fully transparent black."""
    rgba = np.zeros((4, 8, 4), np.uint8)
    rgba[:, :4] = (200, 10, 10, 255)
    return Image.fromarray(rgba, "RGBA")


def _expect_on_white(rgb: Image.Image, left=(200, 10, 10)) -> None:
    px = np.asarray(rgb)
    assert rgb.mode == "RGB" and (px[:, :4] == left).all() and (px[:, 4:] == BACKGROUND).all()


def test_transparency_is_composited_on_white_for_every_alpha_form(tmp_path):
    rgba = _half_transparent()
    _expect_on_white(to_rgb(rgba))
    la = Image.merge("LA", (rgba.convert("L"), rgba.getchannel("A")))
    _expect_on_white(to_rgb(la), left=(np.asarray(la)[0, 0, 0],) * 3)
    palette = rgba.convert("RGB").quantize(2)  # palette image with a transparent entry, saved as PNG
    transparent_index = int(np.asarray(palette)[0, 7])
    palette.save(tmp_path / "p.png", transparency=transparent_index)
    with Image.open(tmp_path / "p.png") as im:
        assert im.mode == "P"
        _expect_on_white(to_rgb(im))
    key = rgba.convert("RGB")  # an RGB PNG whose colour key (black) is transparent
    key.save(tmp_path / "key.png", transparency=(0, 0, 0))
    with Image.open(tmp_path / "key.png") as im:
        _expect_on_white(to_rgb(im))
    # an opaque image composites to itself
    assert (np.asarray(to_rgb(rgba.convert("RGB").convert("RGBA"))) == np.asarray(rgba.convert("RGB"))).all()


@pytest.mark.parametrize("mode", ["L", "1", "CMYK", "YCbCr", "HSV"])
def test_modes_pil_converts_correctly_are_converted_by_pil(mode):
    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 256, (8, 8, 3), np.uint8), "RGB").convert(mode)
    assert (np.asarray(to_rgb(im)) == np.asarray(im.convert("RGB"))).all()


def test_lab_goes_to_srgb_not_a_channel_copy():
    white, grey = Image.new("LAB", (2, 2), (255, 128, 128)), Image.new("LAB", (2, 2), (128, 128, 128))
    assert (np.abs(np.asarray(to_rgb(white)).astype(int) - 255) <= 2).all()
    px = np.asarray(to_rgb(grey)).astype(int)
    assert px.max() - px.min() <= 2 and 100 < px.mean() < 140  # a neutral mid grey


@pytest.mark.parametrize("draft_to", [None, 32])
def test_exif_orientation_is_applied_on_every_decode_path(tmp_path, draft_to):
    rng = np.random.default_rng(1)
    upright = Image.fromarray(np.kron(rng.integers(0, 256, (6, 8, 3), np.uint8), np.ones((16, 16, 1), np.uint8)))
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what a camera held sideways stores
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    stored.save(tmp_path / "turned.jpg", exif=exif, quality=95)
    shown = open_rgb(tmp_path / "turned.jpg", draft_to)
    assert shown.size == (upright.size if draft_to is None else (64, 48))  # landscape again (drafted: 1/2 scale)
    expected = upright.resize(shown.size, Image.Resampling.BOX)
    diff = np.abs(np.asarray(shown).astype(int) - np.asarray(expected).astype(int)).mean()
    assert diff < 8  # JPEG noise only


def test_plain_jpegs_decode_exactly_as_before(demo_stimuli):
    """No EXIF, RGB: the pixels (so the demo's embeddings and the drift baseline) do not change."""
    for s in demo_stimuli.stimuli[:5]:
        with Image.open(s.path) as im:
            assert (np.asarray(open_rgb(s.path, None)) == np.asarray(im.convert("RGB"))).all()


def test_the_pixel_rules_are_part_of_the_cache_key_and_run_info():
    encoder = ClipEncoder("dirti-tiny", "random", device="cpu")
    assert encoder.identity()["pixels"] == encoder.run_info()["pixels"] == PIXEL_RULES


# ---------------------------------------------------------------- refusals before encoding


def _save_mode_i(path, values):
    Image.fromarray(np.asarray(values, np.int32)).save(path)


def test_a_mode_without_a_conversion_is_refused_by_name():
    odd = Image.new("La", (2, 2))  # premultiplied grey + alpha: no file format decodes to it
    for action in (lambda: check_pixels(odd, "odd.png"), lambda: to_rgb(odd, "odd.png")):
        with pytest.raises(UserError, match=r"image odd\.png has pixel mode 'La'.*re-save it as"):
            action()


def test_unconvertible_pixels_are_refused_at_load_time(tmp_path):
    _save_mode_i(tmp_path / "neg.tif", [[-3, 5], [7, 100000]])
    with pytest.raises(UserError, match=r"neg\.tif holds 32-bit pixels outside the 16-bit range"):
        verify_image(tmp_path / "neg.tif")
    _save_mode_i(tmp_path / "ok.tif", [[0, 5], [7, 65535]])
    verify_image(tmp_path / "ok.tif")


def test_cli_refuses_an_unconvertible_image_before_encoding_anything(demo_copy, tmp_path, capsys):
    victim = sorted((demo_copy / "DIRTI Database").glob("*.jpg"))[3]
    victim.unlink()
    _save_mode_i(victim.with_suffix(".tif"), [[-1, 2], [3, 4]])
    code = main(["run", "--data", str(demo_copy), "--model", "dirti-tiny", "--pretrained", "random",
                 "--no-progress", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and error_lines(err) == [error_lines(err)[0]] and error_lines(err)[0].startswith("error: ")
    assert victim.with_suffix(".tif").name in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "home" / "embeddings").exists()


@pytest.fixture
def small_bomb_limit(monkeypatch):
    """PIL refuses images over 2 * MAX_IMAGE_PIXELS; a small limit stands in for a 20000 x 20000 file."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)


def test_a_decompression_bomb_is_one_line_naming_the_file_and_the_limit(tmp_path, small_bomb_limit):
    path = tmp_path / "huge.png"
    buf = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buf, "PNG")
    path.write_bytes(buf.getvalue())
    for action in (lambda: verify_image(path), lambda: open_rgb(path, None)):
        with pytest.raises(UserError) as err:
            action()
        message = str(err.value)
        assert str(path) in message and "2000 pixels" in message and "downscale" in message
        assert "\n" not in message


def test_cli_run_with_a_decompression_bomb_is_exit_2(demo_copy, tmp_path, capsys, monkeypatch):
    victim = sorted((demo_copy / "DIRTI Database").glob("*.jpg"))[0]
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20000)  # the demo's 256x192 pass, this one does not
    Image.new("RGB", (300, 300), (9, 9, 9)).save(victim)
    code = main(["run", "--data", str(demo_copy), "--model", "dirti-tiny", "--pretrained", "random",
                 "--no-progress", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and len(error_lines(err)) == 1 and victim.name in err and "decompression-bomb" in err
    assert not (tmp_path / "out").exists()

