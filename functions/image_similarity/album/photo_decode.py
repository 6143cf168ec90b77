"""Local photo files -> the model's input, and their facts (size, format, capture date) for the duplicate report.

Local files are not API requests: the HTTP API keeps its 4,096 px, JPEG / PNG / BMP contract (core/images.py), while
files given to the command line or the Python API may be camera-size (up to LOCAL_MAX_PIXELS) and WebP, TIFF, GIF
(first frame) or HEIC / HEIF (with the `pillow-heif` plugin, a dependency of the CLI only). A file the API would
accept goes through the API's own decoder, so both give the same vector; anything else goes through `_decode_large`.

Memory: a JPEG is decoded at 1/2 to 1/8 scale by the DCT itself (a 100 MP JPEG costs a few MB). Other formats have no
reduced decode, so the whole image is decoded once and immediately reduced by a whole factor: the peak is its decoded
size plus one conversion (3 bytes a pixel for RGB, 6 at worst for 16-bit greyscale: 300 MB to 600 MB for 100 MP), and
only one such large decode runs at a time (LARGE_DECODE_LOCK), however many threads decode.
Decompression bombs are still refused: the pixel count comes from the header, before any pixel is decoded.
"""

from __future__ import annotations

import io
import struct
import threading
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from PIL import ExifTags, Image

from image_similarity.core.errors import unusable_image
from image_similarity.core.images import (
    SIGNATURES,
    centre_square,
    count_jpeg_scans,
    to_model_input,
    to_rgb,
)
from image_similarity.core.settings import MAX_IMAGE_SIDE, MAX_JPEG_SCANS

# A 100 MP medium-format camera (11,648 x 8,736) fits; anything larger is refused from its header.
LOCAL_MAX_PIXELS = 160_000_000
LOCAL_FORMATS = ("JPEG", "PNG", "BMP", "WEBP", "TIFF", "GIF", "HEIF")
# Full decodes above this size wait for each other: with one decoding thread per core, eight 100 MP PNGs at once
# would need several GB.
LARGE_DECODE_BYTES = 16_000_000 * 4
LARGE_DECODE_LOCK = threading.Lock()
# Brands of the ISO base media file format that name HEIF still images (HEIC from phones among them).
HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif")
MORE_SIGNATURES = {b"II*\x00": "TIFF", b"MM\x00*": "TIFF", b"GIF87a": "GIF", b"GIF89a": "GIF"}
# ImageOps.exif_transpose's table, applied here to the reduced image instead of the full one.
ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
DATE_TIME_ORIGINAL, DATE_TIME = 0x9003, 0x0132
API_UPLOAD_SIDE = 1024


@dataclass(frozen=True)
class PhotoFacts:
    """What the duplicate report shows of a file: upright pixel size, format and EXIF capture date (ISO 8601)."""

    width: int
    height: int
    format: str
    taken: str | None


def heif_available() -> bool:
    """Registers `pillow-heif` with Pillow on first use (it is an optional, CLI-only dependency)."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def is_heif(data: bytes) -> bool:
    return data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS


def known_format(data: bytes) -> str | None:
    """The format a file's first bytes name, for messages about damaged files."""
    if is_heif(data):
        return "HEIF"
    for magic, name in {**SIGNATURES, **MORE_SIGNATURES}.items():
        if data.startswith(magic):
            return name
    return "WEBP" if data[:4] == b"RIFF" and data[8:12] == b"WEBP" else None


def open_photo(data: bytes) -> Image.Image:
    """Open lazily (header only) in any local format; refuse bombs and over-long progressive JPEGs before decoding."""
    if is_heif(data) and not heif_available():
        raise unusable_image("reading HEIC / HEIF files needs the pillow-heif package: pip install pillow-heif")
    try:
        image = _open_header(data)
    except Exception as exc:  # Pillow raises many types for unknown or corrupt headers
        fmt = known_format(data)
        if fmt:
            raise unusable_image(f"the {fmt} image header could not be read: {_reason(exc)}") from exc
        raise unusable_image(
            "not an image file this program reads: JPEG, PNG, BMP, WebP, TIFF, GIF or HEIC (recognised by content)"
        ) from exc
    width, height = image.size
    if width * height > LOCAL_MAX_PIXELS:
        raise unusable_image(
            f"image is {width} x {height} px, more than {LOCAL_MAX_PIXELS // 1_000_000} megapixels: "
            "refused as a possible decompression bomb"
        )
    if min(width, height) < 1:
        raise unusable_image("image has no pixels")
    if image.format == "JPEG" and count_jpeg_scans(data, MAX_JPEG_SCANS) > MAX_JPEG_SCANS:
        raise unusable_image(
            f"the JPEG has more than {MAX_JPEG_SCANS} progressive scans (encoders write about 10): re-save it"
        )
    return image


def _open_header(data: bytes) -> Image.Image:
    """Image.open restricted to LOCAL_FORMATS, minus its decompression-bomb warning: warnings filters are
    process-wide, and the API's decoder (core.images.decode) turns that warning into an error while it runs, which
    would fail a camera-size photo opened at the same moment in another thread. The pixel limit is checked by
    open_photo right after, from the same header."""
    Image.init()
    prefix = data[:16]
    for fmt in LOCAL_FORMATS:
        if fmt not in Image.OPEN:  # HEIF without pillow-heif
            continue
        factory, accept = Image.OPEN[fmt]
        recognised = accept is None or accept(prefix)  # a string means "this format, but unsupported"
        if recognised and not isinstance(recognised, str):
            try:
                return factory(io.BytesIO(data), "")
            except (SyntaxError, IndexError, TypeError, struct.error):  # as Image.open: try the next format
                continue
    raise Image.UnidentifiedImageError("cannot identify the image file")


def photo_to_model_input(data: bytes, size: int) -> np.ndarray:
    """A (size, size, 3) uint8 array, like core.images.to_model_input but for any local photo."""
    image = open_photo(data)
    if image.format in SIGNATURES.values() and max(image.size) <= MAX_IMAGE_SIDE:
        return to_model_input(data, size)  # what the API accepts is decoded exactly as the API decodes it
    return centre_square(_decoded(image, size), size)  # the model's input policy, as to_model_input


def for_api(data: bytes) -> bytes:
    """What to send the HTTP API for a local file: the file itself if the API takes it, else an upright JPEG
    re-encoding small enough for its contract (the model sees 224 px; more detail than API_UPLOAD_SIDE is lost)."""
    image = open_photo(data)
    if image.format in SIGNATURES.values() and max(image.size) <= MAX_IMAGE_SIDE:
        return data
    buffer = io.BytesIO()
    preview(image, API_UPLOAD_SIDE).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def preview(image: Image.Image, side: int) -> Image.Image:
    """An opened photo as upright RGB within side x side (thumbnails, uploads), decoded at reduced scale."""
    small = _decoded(image, side // 2)
    small.thumbnail((side, side))
    return small


def _decoded(image: Image.Image, size: int) -> Image.Image:
    try:
        return _decode_large(image, size)
    except Exception as exc:  # truncated or corrupt pixel data
        raise unusable_image(f"the {image.format} image could not be decoded: {_reason(exc)}") from exc


def _decode_large(image: Image.Image, size: int) -> Image.Image:
    """Upright RGB, at least `size` px on its shorter side, through at most one full-size decode at a time."""
    orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    if image.format == "JPEG":
        image.draft("RGB", (size, size))  # the DCT decodes at 1/2 .. 1/8 scale: no full-size pixels exist
    large = image.format != "JPEG" and _decoded_bytes(image) > LARGE_DECODE_BYTES
    with LARGE_DECODE_LOCK if large else nullcontext():
        image = to_rgb(_reduced(image, size))
    return image.transpose(ORIENTATION[orientation]) if orientation in ORIENTATION else image


def _reduced(image: Image.Image, size: int) -> Image.Image:
    """Decode, then shrink by a whole factor that keeps the shorter side >= 2 x size (the resize then smooths)."""
    image.load()
    factor = min(image.size) // (2 * size)
    if factor < 2:
        return image
    if image.mode.startswith("I;16"):  # modes Image.reduce does not take
        image = image.convert("I")
    elif image.mode in ("P", "1"):
        image = to_rgb(image)
    return image.reduce(factor)


def _decoded_bytes(image: Image.Image) -> int:
    bands = len(image.getbands())
    depth = 2 if image.mode.startswith("I;16") else 4 if image.mode in ("I", "F") else 1
    return image.size[0] * image.size[1] * bands * depth


def photo_facts(data: bytes) -> PhotoFacts:
    """Header facts only; no pixel is decoded."""
    image = open_photo(data)
    exif = image.getexif()
    width, height = image.size
    if exif.get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8):  # stored on its side
        width, height = height, width
    fmt = "HEIC" if image.format == "HEIF" and data[8:12] in (b"heic", b"heix") else image.format
    return PhotoFacts(width, height, fmt, _taken(exif))


def _taken(exif: Image.Exif) -> str | None:
    """EXIF DateTimeOriginal (else DateTime) as ISO 8601, or None when absent or malformed."""
    text = exif.get_ifd(ExifTags.IFD.Exif).get(DATE_TIME_ORIGINAL) or exif.get(DATE_TIME)
    try:
        return datetime.strptime(str(text).strip("\x00 "), "%Y:%m:%d %H:%M:%S").isoformat()
    except ValueError:
        return None


def _reason(exc: Exception) -> str:
    """Pillow's message without the repr of our in-memory buffer ("<_io.BytesIO object at 0x...>")."""
    text = str(exc).split(" <_io.")[0].strip()
    return (text or type(exc).__name__)[:200]
