"""Image bytes -> the model's input: recognise the format by content, check the size from the header before any
pixel is decoded, decode no more than the model needs, orient, flatten to RGB on white, resize."""

from __future__ import annotations

import io
import re
import warnings

import numpy as np
from PIL import ExifTags, Image, PngImagePlugin

from image_similarity.core.errors import reason, unusable_image
from image_similarity.core.settings import MAX_IMAGE_SIDE, MAX_JPEG_SCANS

# Magic numbers of the formats the API accepts; Pillow is told to try only the one the content names.
SIGNATURES = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG", b"BM": "BMP"}
WHITE = (255, 255, 255)
# In JPEG entropy-coded data a 0xFF byte is followed by 0x00 (stuffing), a restart marker or more 0xFF fill bytes;
# anything else starts the next marker.
NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
SOS, EOI = 0xDA, 0xD9
# Pillow decodes run-length-encoded BMPs (RLE8, RLE4) in Python: a 4096 px one in 16 KB took 1.3 s, a 4096 px JPEG
# 0.02 s. At most 1024 x 1024 px of them (about 0.08 s).
BMP_RLE = (1, 2)
MAX_RLE_PIXELS = 1024 * 1024
# Rows converted at a time: a mode conversion copies one band, never the whole image (a 4096 px palette PNG with
# transparency peaked at 224 MB converted whole).
BAND_ROWS = 256
# EXIF orientation -> the transposition that makes the image upright (EXIF 2.32, tag 0x0112).
UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
           5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
           8: Image.Transpose.ROTATE_90}
# PNG text chunks (tEXt, zTXt, iTXt) are metadata the model never sees: Pillow allows 64 MB of them per image.
# Each chunk keeps Pillow's own 1 MB cap (an ICC profile shares it).
PngImagePlugin.MAX_TEXT_MEMORY = 2 * PngImagePlugin.MAX_TEXT_CHUNK


def sniff_format(data: bytes) -> str:
    for magic, name in SIGNATURES.items():
        if data.startswith(magic):
            return name
    raise unusable_image("unsupported image format: send a JPEG, PNG or BMP file (recognised by content, not name)")


def open_checked(data: bytes, max_side: int = MAX_IMAGE_SIDE) -> Image.Image:
    """Open lazily (header only) and refuse images over the size limit before decoding any pixel."""
    fmt = sniff_format(data)
    if fmt == "JPEG" and count_jpeg_scans(data, MAX_JPEG_SCANS) > MAX_JPEG_SCANS:
        raise unusable_image(
            f"the JPEG has more than {MAX_JPEG_SCANS} progressive scans (encoders write about 10): re-save it"
        )
    try:
        image = Image.open(io.BytesIO(data), formats=[fmt])
    except Image.DecompressionBombError as exc:  # Pillow's own guard fires first for absurd sizes
        raise unusable_image(f"image is far larger than {max_side} x {max_side} px: {reason(exc)}") from exc
    except Exception as exc:  # Pillow raises many types for corrupt headers; all mean "not a valid image"
        raise unusable_image(f"the {fmt} image header could not be read: {reason(exc)}") from exc
    width, height = image.size
    if max(width, height) > max_side:
        raise unusable_image(
            f"image is {width} x {height} px; the longest side may be at most {max_side} px: downscale it first"
        )
    if min(width, height) < 1:
        raise unusable_image("image has no pixels")
    if fmt == "BMP" and image.info.get("compression") in BMP_RLE and width * height > MAX_RLE_PIXELS:
        raise unusable_image(f"run-length-encoded BMPs may have at most {MAX_RLE_PIXELS} pixels: save it as PNG")
    return image


def count_jpeg_scans(data: bytes, stop_after: int) -> int:
    """Start-of-scan markers, found by walking the segments (an SOS inside EXIF or ICC data is not counted);
    stops counting past `stop_after`. A broken structure ends the walk: the decoder reports it."""
    scans, i = 0, 2
    while i + 4 <= len(data) and scans <= stop_after:
        if data[i] != 0xFF:
            break
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker == EOI:
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # standalone markers carry no length
            i += 2
            continue
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
        if marker == SOS:
            scans += 1
            found = NEXT_MARKER.search(data, i)
            if found is None:
                break
            i = found.start()
    return scans


def to_model_input(data: bytes, size: int, max_side: int = MAX_IMAGE_SIDE, centre_crop: bool = True) -> np.ndarray:
    """Decode `data` into a (size, size, 3) uint8 RGB array: the centre square of the image (the model's training
    policy since v4, model/MODEL_CARD.md); `centre_crop=False` squeezes the whole image, as models up to v3 did."""
    image = decode(data, size, max_side)
    return centre_square(image, size) if centre_crop else square_pixels(image, size)


def decode(data: bytes, size: int, max_side: int = MAX_IMAGE_SIDE) -> Image.Image:
    """Decode to upright RGB; a JPEG at the smallest 1/2, 1/4 or 1/8 scale whose sides both stay >= size, other
    formats not in RGB reduced by the largest whole factor that keeps both sides >= size while they are converted."""
    image = open_checked(data, max_side)
    fmt = image.format
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            if fmt == "JPEG":
                # The resize to `size` discards the rest anyway; the DCT skips it at a fraction of the cost.
                image.draft(image.mode, (size, size))
            image.load()
            orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
            image = image if image.mode == "RGB" else flatten(image, size)
            # Turned after the reduction: the same pixels, a smaller copy.
            return image.transpose(UPRIGHT[orientation]) if orientation in UPRIGHT else image
    except Exception as exc:  # truncated or corrupt pixel data
        raise unusable_image(f"the {fmt} image could not be decoded: {reason(exc)}") from exc


def flatten(image: Image.Image, size: int) -> Image.Image:
    """RGB on white, reduced by the largest whole factor that keeps both sides >= `size`, converted one band of rows
    at a time: the only full-size copy is the decoded image itself."""
    width, height = image.size
    factor = max(1, min(width, height) // size)
    rows = factor * max(1, BAND_ROWS // factor)  # whole reduction blocks per band
    flat = Image.new("RGB", (-(-width // factor), -(-height // factor)), WHITE)
    for top in range(0, height, rows):
        band = to_rgb(image.crop((0, top, width, min(height, top + rows))))
        flat.paste(band.reduce(factor) if factor > 1 else band, (0, top // factor))
    return flat


def square_pixels(image: Image.Image, size: int) -> np.ndarray:
    """One uint8 resize straight to the model's square input; the graph itself normalises in float32."""
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def centre_square(image: Image.Image, size: int) -> np.ndarray:
    """Short side to `size`, then the centre `size` x `size`: borders, bezels and chrome around a copy fall away
    while the picture keeps its proportions. One resize from the matching source box, no intermediate image."""
    side = min(image.size)
    left, top = (image.width - side) / 2, (image.height - side) / 2
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + side, top + side)),
                      dtype=np.uint8)


def to_rgb(image: Image.Image) -> Image.Image:
    """Greyscale, palette, CMYK, 16-bit and alpha images become RGB; transparency is composited on white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # Pillow's own I -> L conversion clips instead of scaling 16-bit samples.
        pixels = np.asarray(image, dtype=np.uint32) >> 8
        image = Image.fromarray(pixels.astype(np.uint8), "L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, WHITE)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image if image.mode == "RGB" else image.convert("RGB")

