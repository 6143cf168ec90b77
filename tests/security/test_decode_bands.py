"""Images converted band by band at a reduced size (finding 2 of issue 18) keep their content: transparency on
white, EXIF orientation applied, the reduction matching a whole-image conversion."""

from __future__ import annotations

import numpy as np
from helpers import encode
from image_similarity.core.images import decode, to_rgb
from PIL import Image


def palette_half_transparent(width: int, height: int) -> Image.Image:
    image = Image.new("P", (width, height), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.paste(1, (0, 0, width // 2, height))  # left half red, right half index 0 (transparent)
    return image


def test_rotated_transparent_palette_image_is_upright_and_on_white():
    exif = Image.Exif()
    exif[0x0112] = 6  # display turned 90 degrees clockwise: the left half ends on top
    data = encode(palette_half_transparent(1200, 600), "PNG", transparency=0, exif=exif)
    pixels = np.asarray(decode(data, 224))
    height, width, _ = pixels.shape
    assert width < height
    assert (pixels[: height // 2 - 2] == [255, 0, 0]).all()
    assert (pixels[height // 2 + 2 :] == [255, 255, 255]).all()


def test_reduced_band_conversion_matches_the_whole_image_conversion(photos):
    rgba = Image.fromarray(photos["astronaut"]).convert("RGBA")  # 512 px, reduced by 2 for a 224 px model
    rgba.putalpha(Image.linear_gradient("L").resize(rgba.size))
    whole = np.asarray(to_rgb(rgba).reduce(2), dtype=np.int16)
    banded = np.asarray(decode(encode(rgba, "PNG"), 224), dtype=np.int16)
    assert banded.shape == whole.shape
    assert np.abs(banded - whole).max() <= 1
