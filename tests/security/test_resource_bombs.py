"""Resource bombs are refused quickly with a 4xx that names the limit, and the process's memory stays bounded.

All bombs run in one subprocess (tests/security/bombs.py) that measures each one's peak RSS on its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import bombs
import pytest
from image_similarity.core.settings import MAX_BODY_BYTES

HERE = Path(__file__).resolve().parent
# Refusals read headers only: a little more than the request's own JSON parse.
REFUSED_PEAK_MB = 40
# An image inside the limits decodes for real: 4096 x 4096 RGB is 48 MB, plus the resize and the model.
ACCEPTED_PEAK_MB = 250


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> dict[str, dict]:
    folder = tmp_path_factory.mktemp("bombs")
    for name, build in bombs.BOMBS.items():
        (folder / name).write_bytes(build())
    run = subprocess.run(
        [sys.executable, str(HERE / "bombs.py"), str(folder)], check=False, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    results = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    return {r["name"]: r for r in results}


def refused(measured: dict, name: str, status: int, *words: str) -> dict:
    result = measured[name]
    assert result["status"] == status, result
    for word in words:
        assert word in result["message"], result
    assert result["seconds"] < 1.0, result
    assert result["peak_growth_mb"] < REFUSED_PEAK_MB, result
    return result


def test_bomb_png_header_declaring_50000x50000_px(measured):
    refused(measured, "png_header_50000x50000", 422, "4096")


def test_bomb_bmp_header_declaring_50000x50000_px(measured):
    refused(measured, "bmp_header_50000x50000", 422, "4096")


def test_bomb_jpeg_header_declaring_65000x65000_px(measured):
    refused(measured, "jpeg_header_65000x65000", 422, "4096")


def test_bomb_image_4097_px(measured):
    refused(measured, "image_4097_px", 422, "4097 x 16", "4096")


def test_bomb_strip_1x60000_px(measured):
    refused(measured, "strip_1x60000_px", 422, "1 x 60000", "4096")


def test_bomb_jpeg_with_1000_progressive_scans(measured):
    refused(measured, "jpeg_1000_progressive_scans", 422, "more than 50 progressive scans")


def test_bomb_png_decompression_bomb(measured):
    """8192 x 8192 zero pixels in 70 KB: refused from the header, nothing inflated."""
    refused(measured, "png_decompression_bomb_8192_px", 422, "8192 x 8192", "4096")


def test_bomb_png_text_chunk_inflating_to_200_mb(measured):
    refused(measured, "png_text_chunk_bomb", 422, "too large")


def test_bomb_body_over_the_6_mb_limit(measured):
    refused(measured, "body_over_6_mb", 413, str(MAX_BODY_BYTES))


def test_bomb_deeply_nested_json(measured):
    refused(measured, "json_nested_100000_deep", 400, "nested too deeply")


def test_bomb_deeply_nested_json_in_a_field(measured):
    refused(measured, "json_nested_in_a_field", 400, "nested too deeply")


def test_bomb_compressible_image_inside_the_limits_is_answered_in_bounded_memory(measured):
    result = measured["png_4096_px_zeros_within_limits"]
    assert result["status"] == 200, result
    assert result["peak_growth_mb"] < ACCEPTED_PEAK_MB, result
    assert result["seconds"] < 5.0, result


# The decoded image itself is the one full-size copy: 4096 x 4096 is 16 MB as a palette, 32 MB as LA or 16-bit grey,
# 64 MB as RGBA. Converted whole, these peaked at 176-228 MB.
CONVERTED_PEAK_MB = 100


@pytest.mark.parametrize("name", ["palette_4096_px_transparent", "palette_4096_px_transparent_rotated_with_text",
                                  "rgba_4096_px", "la_4096_px", "grey_16_bit_4096_px"])
def test_bomb_image_needing_a_mode_conversion_is_converted_in_bands(measured, name):
    result = measured[name]
    assert result["status"] == 200, result
    assert result["peak_growth_mb"] < CONVERTED_PEAK_MB, result


def test_bomb_png_text_chunks_over_2_mb_in_all(measured):
    refused(measured, "palette_4096_px_text_over_2_mb", 422, "text chunks")


def test_bomb_bmp_rle8_decoded_in_python_is_refused_over_a_megapixel(measured):
    refused(measured, "bmp_rle8_4096_px", 422, "run-length-encoded", "PNG")


def test_bomb_json_with_400000_unknown_keys_is_refused_before_it_is_parsed(measured):
    result = refused(measured, "json_400000_unknown_keys", 400, "far more strings")
    assert result["seconds"] < 0.1, result
