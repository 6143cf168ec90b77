"""Image decoding: formats by content, the size limit before decoding, orientation, colour modes."""

from __future__ import annotations

import time

import numpy as np
import pytest
from helpers import encode, png_header_only
from image_similarity.core.errors import RequestError
from image_similarity.core.images import open_checked, sniff_format, to_model_input
from PIL import Image

SIZE = 224


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "BMP"])
def test_each_supported_format_decodes_to_model_input(photos, fmt):
    pixels = to_model_input(encode(photos["coffee"], fmt), SIZE)
    assert pixels.shape == (SIZE, SIZE, 3) and pixels.dtype == np.uint8


def test_format_is_recognised_by_content_not_name(photos):
    assert sniff_format(encode(photos["coffee"], "PNG")) == "PNG"
    assert sniff_format(encode(photos["coffee"], "BMP")) == "BMP"
    assert sniff_format(encode(photos["coffee"], "JPEG")) == "JPEG"


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "TIFF"])
def test_other_formats_are_refused(photos, fmt):
    with pytest.raises(RequestError) as err:
        to_model_input(encode(photos["coffee"], fmt), SIZE)
    assert err.value.status == 422


def test_oversized_header_is_refused_before_decoding_pixels():
    bomb = png_header_only(50_000, 50_000)
    start = time.perf_counter()
    with pytest.raises(RequestError) as err:
        to_model_input(bomb, SIZE)
    assert time.perf_counter() - start < 1.0
    assert "4096" in err.value.message


def test_4096_px_is_accepted_and_4097_refused():
    assert open_checked(png_header_only(4096, 16)).size == (4096, 16)
    with pytest.raises(RequestError) as err:
        open_checked(png_header_only(16, 4097))
    assert "16 x 4097" in err.value.message


def test_exif_orientation_is_applied():
    # Left half black, right half white; EXIF orientation 6 means "rotate 90 degrees clockwise to display".
    pixels = np.zeros((300, 400, 3), np.uint8)
    pixels[:, 200:] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    shown = to_model_input(encode(pixels, "JPEG", quality=95, exif=exif.tobytes()), SIZE)
    top, bottom = shown[: SIZE // 2].mean(), shown[SIZE // 2 :].mean()
    assert top < 50 and bottom > 200  # rotated clockwise, the left (black) half is on top; unrotated, both ~127


def test_transparent_pixels_are_composited_on_white():
    rgba = Image.new("RGBA", (64, 64), (255, 0, 0, 0))
    pixels = to_model_input(encode(rgba, "PNG"), SIZE)
    assert pixels.min() == 255


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "LA", "1", "I;16"])
def test_colour_modes_become_rgb(photos, mode):
    image = Image.fromarray(photos["astronaut"])
    image = (
        Image.fromarray(np.asarray(image.convert("L"), np.uint16) * 257) if mode == "I;16" else image.convert(mode)
    )
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    pixels = to_model_input(encode(image, fmt), SIZE)
    assert pixels.shape == (SIZE, SIZE, 3)
    assert 20 < pixels.mean() < 235  # neither blank nor saturated: the content survived the conversion


def test_jpeg_decode_at_reduced_scale_matches_full_decode(photos):
    big = np.asarray(Image.fromarray(photos["astronaut"]).resize((1920, 1920)))
    reduced = to_model_input(encode(big, "JPEG", quality=95), SIZE).astype(float)
    full = np.asarray(Image.fromarray(big).resize((SIZE, SIZE), Image.Resampling.BILINEAR)).astype(float)
    assert np.abs(reduced - full).mean() < 4.0


def test_model_input_is_the_centre_square_and_v3s_squeeze_keeps_the_whole_image():
    stripes = np.zeros((200, 600, 3), np.uint8)
    stripes[:, :200, 0] = stripes[:, 200:400, 1] = stripes[:, 400:, 2] = 255  # red | green | blue
    data = encode(stripes, "PNG")
    centre = to_model_input(data, SIZE).astype(int)[:, 3:-3]  # the filter reaches a pixel past the box's edges
    assert (centre[..., 1] > 250).all() and centre[..., [0, 2]].max() < 5
    squeezed = to_model_input(data, SIZE, centre_crop=False)
    assert squeezed[:, 10, 0].min() > 250 and squeezed[:, SIZE // 2, 1].min() > 250 and squeezed[:, -10, 2].min() > 250
