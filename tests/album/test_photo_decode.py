"""Local photos are not API requests: camera-size files and more formats are read by album.photo_decode, within a
stated memory bound, while bombs are still refused and the HTTP API's own decoder keeps its 4,096 px contract."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from helpers import png_header_only
from image_similarity.album import photo_decode
from image_similarity.album.photo_decode import for_api, open_photo, photo_facts, photo_to_model_input
from image_similarity.core.errors import RequestError
from image_similarity.core.images import to_model_input
from image_similarity.core.score import similarity
from PIL import Image

# Peak resident memory of one decode in a fresh process (Pillow's pixel buffers are not seen by tracemalloc).
MEASURE = """
import json, sys
from pathlib import Path
from image_similarity.album.photo_decode import photo_to_model_input
def high_water():
    return int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) * 1024
data = Path(sys.argv[1]).read_bytes()
before = high_water()
photo_to_model_input(data, 224)
print(json.dumps({"peak_bytes": high_water() - before}))
"""


def peak_decode_bytes(path: Path) -> int:
    answer = subprocess.run([sys.executable, "-c", MEASURE, str(path)], check=True, capture_output=True, text=True)
    return json.loads(answer.stdout)["peak_bytes"]


def test_the_api_decoder_still_refuses_what_local_files_may_be(album):
    data = (album.root / "2023" / "astronaut.jpg").read_bytes()
    with pytest.raises(RequestError, match="the longest side may be at most 4096 px"):
        to_model_input(data, 224)
    assert photo_to_model_input(data, 224).shape == (224, 224, 3)


def test_a_100_megapixel_jpeg_embeds_like_its_downscaled_copy(album, service):
    big = (album.root / "2024" / "IMG_0001.jpg").read_bytes()
    with open_photo(big) as image:
        assert image.size[0] * image.size[1] >= 100_000_000
        buffer = io.BytesIO()
        image.draft("RGB", (1500, 1050))
        image.resize((1500, 1050)).save(buffer, "JPEG", quality=95)
    vectors = service.embedder.embed(np.stack([photo_to_model_input(big, 224), to_model_input(buffer.getvalue(), 224)]))
    assert similarity(vectors[0], vectors[1]) > 0.99


def test_a_file_the_api_accepts_gives_the_api_s_exact_pixels(album):
    data = (album.root / "misc" / "rocket.jpg").read_bytes()
    np.testing.assert_array_equal(photo_to_model_input(data, 224), to_model_input(data, 224))


def test_memory_stays_within_the_stated_bound(tmp_path):
    """A 100 MP JPEG is decoded at 1/8 scale (a few MB); a 100 MP PNG once at full size, 3 bytes a pixel for RGB,
    within the documented bound of 6 bytes a pixel."""
    width, height = 12_000, 8_400
    jpeg, png = tmp_path / "big.jpg", tmp_path / "big.png"
    Image.new("RGB", (width, height), (90, 140, 200)).save(jpeg, quality=90)
    rows = zlib.compress((b"\x00" + b"\x5a\x8c\xc8" * width) * height, 1)  # filter byte + one RGB row, repeated
    png.write_bytes(png_header_only(width, height, colour_type=2, idat=rows))
    assert peak_decode_bytes(jpeg) < 40_000_000
    assert 3 * width * height * 0.9 < peak_decode_bytes(png) < 6 * width * height


@pytest.mark.parametrize(("width", "height"), [(20_000, 20_000), (13_000, 13_000)])
def test_bombs_are_refused_from_the_header(width, height):
    with pytest.raises(RequestError, match="more than 160 megapixels: refused as a possible decompression bomb"):
        photo_to_model_input(png_header_only(width, height), 224)


def test_camera_size_photos_open_while_the_api_decoder_runs_in_another_thread(album):
    """The API's decoder makes Pillow's bomb warning an error (process-wide) while it runs; a 100 MP photo opened
    meanwhile must still be read."""
    big = (album.root / "2024" / "IMG_0001.jpg").read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # what core.images.decode sets
        assert open_photo(big).size == (12_000, 8_400)


def test_heic_without_the_plugin_says_how_to_get_it(album, monkeypatch):
    monkeypatch.setattr(photo_decode, "heif_available", lambda: False)
    with pytest.raises(RequestError, match="needs the pillow-heif package: pip install pillow-heif"):
        open_photo((album.root / "formats" / "cat.heic").read_bytes())


def test_exif_orientation_is_applied_to_large_photos_and_their_facts():
    pixels = np.zeros((3000, 5000, 3), np.uint8)
    pixels[:, :2500] = 255  # left half white: upright after a 90 degree turn, the top half is white
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display turned 90 degrees clockwise
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG", exif=exif)
    data = buffer.getvalue()
    facts = photo_facts(data)
    assert (facts.width, facts.height, facts.format, facts.taken) == (3000, 5000, "PNG", None)
    upright = photo_to_model_input(data, 224).mean(axis=(1, 2))
    assert upright[:100].mean() > 200 and upright[-100:].mean() < 50


def test_non_api_files_are_re_encoded_for_the_remote_api(album):
    for name in ("formats/cat.heic", "2024/IMG_0001.jpg", "2023/astronaut-edit.png"):
        sent = for_api((album.root / name).read_bytes())
        with Image.open(io.BytesIO(sent)) as image:
            assert image.format == "JPEG" and max(image.size) <= photo_decode.API_UPLOAD_SIDE
    rocket = (album.root / "misc" / "rocket.jpg").read_bytes()
    assert for_api(rocket) is rocket  # what the API takes goes as it is


def test_damaged_pixel_data_of_a_large_file_is_a_clear_reason():
    with pytest.raises(RequestError, match=r"^the PNG image could not be decoded: "):
        photo_to_model_input(png_header_only(5000, 4000), 224)  # a valid header, then no pixel data at all
