"""Printed text as ink masks: Pillow's FreeType rendering of the font Pillow ships (never a system font).

Renders are deterministic for a given Pillow version, so rasters stay a function of (seed, task, index).
Masks are cached per (text, size, rotation, blur); sizes are quantised so the cache is shared across
instances.
"""

from __future__ import annotations

from functools import lru_cache
from typing import cast

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFilter, ImageFont

_SUPERSAMPLE_BELOW = 10.0  # px: smaller text is drawn 4x larger and area-averaged down (a faithful smudge)


def quantise(size: float) -> float:
    """Font size in px rounded to a quarter pixel (the cache key)."""
    return max(0.25, round(size * 4.0) / 4.0)


@lru_cache(maxsize=64)
def font(size: float) -> ImageFont.FreeTypeFont:
    """Pillow's bundled scalable font at ``size`` px."""
    # Pillow types load_default() as FreeTypeFont | ImageFont because it falls back to the fixed-size bitmap
    # font when built without FreeType; with a size (which needs FreeType) it returns the FreeTypeFont.
    return cast(ImageFont.FreeTypeFont, ImageFont.load_default(size=size))


def _draw(text: str, size: float) -> npt.NDArray[np.uint8]:
    face = font(size)
    # Pillow types getbbox as floats (a stroke width may be fractional); without a stroke FreeType measures
    # whole pixels, so the box is ints (which Image.new needs).
    left, top, right, bottom = cast("tuple[int, int, int, int]", face.getbbox(text))
    pad = 1
    img = Image.new("L", (max(1, right - left + 2 * pad), max(1, bottom - top + 2 * pad)), 0)
    ImageDraw.Draw(img).text((pad - left, pad - top), text, font=face, fill=255)
    return np.asarray(img)


@lru_cache(maxsize=8192)
def text_mask(text: str, size: float, rotate: bool, blur: float = 0.0) -> npt.NDArray[np.float32]:
    """Ink coverage of ``text`` at font ``size`` px, rotated 90 degrees counter-clockwise when ``rotate``.

    In our orientation (depth along the width) text printed along the page reads bottom to top, which is
    the counter-clockwise rotation.

    Returns:
        float32 array in [0, 1], read-only (shared by the cache); shape (h, w) of the text's box.
    """
    size = quantise(size)
    if size < _SUPERSAMPLE_BELOW:
        big = Image.fromarray(_draw(text, size * 4.0))
        w, h = big.size
        big = big.crop((0, 0, -(-w // 4) * 4, -(-h // 4) * 4))  # pad to multiples of 4 (crop past the edge pads)
        img = big.reduce(4)
    else:
        img = Image.fromarray(_draw(text, size))
    if blur > 0:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    mask = np.asarray(img, dtype=np.float32) / 255.0
    if rotate:
        mask = np.rot90(mask)
    mask = np.ascontiguousarray(mask)
    mask.flags.writeable = False
    return mask
