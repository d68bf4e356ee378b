"""How an image file becomes the RGB pixels a model sees, whatever its PIL mode.

open_clip's preprocess calls ``convert("RGB")``. That is right for RGB, L, 1, CMYK,
YCbCr and HSV, and silently wrong elsewhere: 16-bit and float pixels are clipped (a
16-bit photo turns white), alpha is dropped (transparent pixels show whatever colour
they happen to hold) and LAB channels are copied as if they were RGB. Here instead:

* 16-bit greyscale (``I;16*``, and ``I`` holding 0..65535, the mode older Pillow gives
  16-bit PNGs) is scaled by the 16-bit range, ``round(v * 255 / 65535)``: the range of
  the data type, not the image's own min/max, so a 16-bit file looks like its 8-bit
  export (a dim photo stays dim).
* float greyscale (``F``) in 0..1 is scaled by 255.
* transparency (RGBA, LA, PA, a palette or colour key with a transparent entry) is
  composited on white, as a viewer shows a transparent image on a page.
* LAB goes through littlecms to sRGB.
* the EXIF orientation tag is applied, so the model sees the photo upright as a viewer
  (and a rater) does; open_clip's own preprocess ignores the tag.

Anything else (``I`` outside 0..65535, ``F`` outside 0..1 or with NaN, unknown modes)
is refused with a ``UserError`` that says how to re-save the file. The loaders check
the mode (``check_pixels``) before anything is encoded; ``to_rgb`` converts at decode
time. ``PIXEL_RULES`` names these rules in the embedding cache key.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import UserError

PIXEL_RULES = "rgb-v2"  # bump when a rule here changes any file's pixels: it is part of the cache key
BACKGROUND = (255, 255, 255)
DIRECT_MODES = frozenset({"RGB", "L", "1", "CMYK", "YCbCr", "HSV", "RGBX"})  # PIL's convert("RGB") is right
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "PA"})
CHECKED_MODES = frozenset({"I", "F"})  # convertible only for some pixel values
SUPPORTED_MODES = DIRECT_MODES | SIXTEEN_BIT_MODES | ALPHA_MODES | CHECKED_MODES | {"P", "LAB"}
ORIENTATION_TAG = 0x0112
# EXIF orientation -> the transpose that shows the image upright (as PIL's ImageOps.exif_transpose).
UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
           5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
           8: Image.Transpose.ROTATE_90}
RESAVE = "re-save it as an 8-bit RGB (or 16-bit greyscale) PNG or JPEG"


def refuse(path, why: str) -> UserError:
    return UserError(f"image {path} {why}; {RESAVE}")


def check_pixels(im: Image.Image, path: Path | str) -> None:
    """Refuse an image ``to_rgb`` cannot convert, from its header (``I`` and ``F`` need their pixels)."""
    if im.mode not in SUPPORTED_MODES:
        raise refuse(path, f"has pixel mode {im.mode!r}, which dirti-bench cannot convert to RGB")
    if im.mode in CHECKED_MODES:
        _greyscale_to_8bit(im, path)


def orientation(im: Image.Image) -> int:
    """The EXIF orientation tag (1 = upright, also when there is no EXIF or it is unreadable)."""
    try:
        value = im.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # a damaged EXIF block: PIL raises several types; the pixels are still usable
        return 1
    return value if isinstance(value, int) else 1


def to_rgb(im: Image.Image, path: Path | str = "", turn: int | None = None) -> Image.Image:
    """``im`` as upright 8-bit RGB by the rules above. ``turn``: the EXIF orientation, when the caller
    read it before drafting or converting (``None``: read it from ``im``)."""
    turn = orientation(im) if turn is None else turn
    mode = im.mode
    if "transparency" in im.info and mode in ("P", "L", "RGB"):  # a transparent palette entry or colour key
        im, mode = im.convert("RGBA"), "RGBA"
    elif "transparency" in im.info and (mode in SIXTEEN_BIT_MODES or mode == "I"):  # a 16-bit colour key
        alpha = Image.fromarray(((np.asarray(im) != im.info["transparency"]) * 255).astype(np.uint8), "L")
        im, mode = Image.merge("LA", (_greyscale_to_8bit(im, path), alpha)), "LA"
    if mode in DIRECT_MODES or mode == "P":
        rgb = im.convert("RGB")  # a copy even for RGB: the caller may close the file
    elif mode in ALPHA_MODES:
        rgba = im.convert("RGBA")
        rgb = Image.new("RGB", rgba.size, BACKGROUND)
        rgb.paste(rgba, mask=rgba.getchannel("A"))
    elif mode in SIXTEEN_BIT_MODES or mode in CHECKED_MODES:
        rgb = _greyscale_to_8bit(im, path).convert("RGB")
    elif mode == "LAB":
        rgb = _lab_to_rgb(im, path)
    else:
        raise refuse(path, f"has pixel mode {mode!r}, which dirti-bench cannot convert to RGB")
    method = UPRIGHT.get(turn)
    return rgb.transpose(method) if method is not None else rgb


def _greyscale_to_8bit(im: Image.Image, path) -> Image.Image:
    values = np.asarray(im)
    if im.mode == "F":
        if not np.isfinite(values).all() or values.size and (values.min() < 0 or values.max() > 1):
            raise refuse(path, "holds float pixels outside 0..1 (or NaN), so their brightness scale is unknown")
        return Image.fromarray(np.rint(values * 255).astype(np.uint8), "L")
    if values.size and (values.min() < 0 or values.max() > 65535):
        raise refuse(path, f"holds 32-bit pixels outside the 16-bit range ({values.min()}..{values.max()})")
    wide = values.astype(np.uint32)
    return Image.fromarray(((wide * 255 + 32767) // 65535).astype(np.uint8), "L")


def _lab_to_rgb(im: Image.Image, path) -> Image.Image:
    try:
        from PIL import ImageCms

        transform = ImageCms.buildTransform(ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"),
                                            "LAB", "RGB")
        return ImageCms.applyTransform(im, transform)
    except Exception as exc:  # Pillow built without littlecms, or a profile it cannot build
        raise refuse(path, f"is a LAB image and littlecms cannot convert it here ({exc})") from None


def too_large(path, exc: Exception) -> UserError:
    """PIL's DecompressionBombError as one line: the file, PIL's limit, the fix."""
    limit = 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else "its"
    size = str(exc).split(",")[0]  # "Image size (N pixels) exceeds limit of M pixels"
    return UserError(f"image {path} is too large to decode safely ({size}; PIL refuses more than {limit} pixels "
                     "as a decompression-bomb guard); downscale it, the model sees a few hundred pixels a side")
