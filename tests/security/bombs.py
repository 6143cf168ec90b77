"""Resource bombs: small files that declare or expand into huge images, and request bodies built to exhaust memory or
stack. Each builder returns a complete request body; none needs more than a few megabytes to build.

Run as a script (`python bombs.py DIR`), it is the subprocess that measures them: it builds the service, then for each
body in DIR resets the process's peak RSS (Linux `clear_refs`), answers the request and prints one JSON line with the
status, message, seconds and peak RSS, so each bomb's memory is measured on its own.
"""

from __future__ import annotations

import io
import json
import re
import struct
import sys
import time
import zlib
from base64 import b64encode
from collections.abc import Callable
from pathlib import Path

from PIL import Image, PngImagePlugin


def body(image: bytes) -> bytes:
    return json.dumps({"img": b64encode(image).decode()}).encode()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png(width: int, height: int, colour_type: int = 0, rows: int | None = None, extra: bytes = b"") -> bytes:
    """A greyscale (0) or RGB (2) PNG of zero pixels; `rows` limits how many rows of pixel data are really there."""
    channels = {0: 1, 2: 3}[colour_type]
    packer = zlib.compressobj(9)
    row = b"\x00" * (1 + width * channels)
    idat = b"".join(packer.compress(row) for _ in range(height if rows is None else rows)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + extra + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    )


def bmp_header_only(width: int, height: int) -> bytes:
    """A 24-bit BMP whose headers declare width x height and that carries no pixel data at all."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info), 0, 0, 14 + len(info)) + info


def jpeg_header(width: int, height: int) -> bytes:
    """A baseline JPEG frame header declaring width x height, then the end of the file."""
    sof = struct.pack(">BHHB", 8, height, width, 1) + bytes([1, 0x11, 0])
    return b"\xff\xd8" + b"\xff\xc0" + struct.pack(">H", 2 + len(sof)) + sof + b"\xff\xd9"


def progressive_scans(scans: int) -> bytes:
    """A flat 4096 px progressive JPEG with its last (tiny) scan repeated: each repeat is a pass over every block."""
    out = io.BytesIO()
    Image.new("RGB", (4096, 4096), (128, 128, 128)).save(out, "JPEG", progressive=True, quality=90)
    data = out.getvalue()
    last = data[data.rindex(b"\xff\xda") : -2]
    return data[:-2] + last * scans + b"\xff\xd9"


def ztxt_bomb() -> bytes:
    """A 64 x 64 PNG carrying a compressed text chunk that inflates to 200 MB."""
    packer = zlib.compressobj(9)
    text = b"".join(packer.compress(b"\x00" * 1_000_000) for _ in range(200)) + packer.flush()
    return png(64, 64, extra=png_chunk(b"zTXt", b"comment\x00\x00" + text))


def saved(image: Image.Image, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", **options)
    return out.getvalue()


def palette_with_transparency(rotated: bool = False, text_chunks: int = 0) -> bytes:
    """A 4096 px palette PNG whose index 0 is transparent: a few KB that every RGB conversion multiplies by 4 to 12.
    `rotated` adds an EXIF orientation (6: turn 90 degrees), `text_chunks` zTXt chunks of 1 MB each inflated."""
    image = Image.new("P", (4096, 4096), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.paste(1, (0, 0, 2048, 4096))
    info = PngImagePlugin.PngInfo()
    for i in range(text_chunks):
        info.add_text(f"note{i}", "x" * (1024 * 1024 - 16), zip=True)
    exif = Image.Exif()
    if rotated:
        exif[0x0112] = 6
    return saved(image, transparency=0, pnginfo=info, exif=exif)


def flat(mode: str, colour: int | tuple) -> bytes:
    """A 4096 px PNG of one colour in `mode` (RGBA, LA, I;16): all compress to a few KB."""
    return saved(Image.new(mode, (4096, 4096), colour))


def bmp_rle8(width: int, height: int) -> bytes:
    """An 8-bit RLE BMP of one colour: each row one run of 255 pixels after another, then end of line."""
    row = b"\xff\x00" * (width // 255) + bytes([width % 255, 0]) * (width % 255 > 0) + b"\x00\x00"
    pixels = row * height + b"\x00\x01"
    palette = b"\x00\x00\x00\x00" * 256
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(pixels), 2835, 2835, 256, 0)
    offset = 14 + len(info) + len(palette)
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + info + palette + pixels


def unknown_keys(count: int) -> bytes:
    return json.dumps({f"k{i}": 1 for i in range(count)}).encode()


def nested_json(depth: int) -> bytes:
    return b'{"url": ' + b"[" * depth + b"]" * depth + b"}"


BOMBS: dict[str, Callable[[], bytes]] = {
    "png_header_50000x50000": lambda: body(png(50_000, 50_000, rows=4)),
    "bmp_header_50000x50000": lambda: body(bmp_header_only(50_000, 50_000)),
    "jpeg_header_65000x65000": lambda: body(jpeg_header(65_000, 65_000)),
    "image_4097_px": lambda: body(png(4097, 16)),
    "strip_1x60000_px": lambda: body(png(1, 60_000)),
    "jpeg_1000_progressive_scans": lambda: body(progressive_scans(1000)),
    "png_decompression_bomb_8192_px": lambda: body(png(8192, 8192)),
    "png_text_chunk_bomb": lambda: body(ztxt_bomb()),
    "png_4096_px_zeros_within_limits": lambda: body(png(4096, 4096, colour_type=2)),
    "palette_4096_px_transparent": lambda: body(palette_with_transparency()),
    "palette_4096_px_transparent_rotated_with_text": lambda: body(palette_with_transparency(True, 1)),
    "palette_4096_px_text_over_2_mb": lambda: body(palette_with_transparency(False, 3)),
    "rgba_4096_px": lambda: body(flat("RGBA", (10, 20, 30, 128))),
    "la_4096_px": lambda: body(flat("LA", (10, 128))),
    "grey_16_bit_4096_px": lambda: body(flat("I;16", 40000)),
    "bmp_rle8_4096_px": lambda: body(bmp_rle8(4096, 4096)),
    "json_400000_unknown_keys": lambda: unknown_keys(400_000),
    "body_over_6_mb": lambda: json.dumps({"img": "A" * (6 * 1024 * 1024)}).encode(),
    "json_nested_100000_deep": lambda: b"[" * 100_000 + b"]" * 100_000,
    "json_nested_in_a_field": lambda: nested_json(50_000),
}


def _status_kb(field: str) -> int:
    return int(re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE).group(1))


def measure(folder: Path) -> None:
    from image_similarity.core.service import build_service
    from image_similarity.core.settings import Settings

    service = build_service(Settings(threads=1))
    service.handle(body(png(64, 64)))  # warm the model so its first-run allocations are not charged to a bomb
    for path in sorted(folder.iterdir()):
        request = path.read_bytes()
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        before = _status_kb("VmRSS")
        start = time.monotonic()
        response = service.handle(request)
        seconds = time.monotonic() - start
        del request
        print(json.dumps({
            "name": path.name, "status": response.status, "message": response.body.get("message", ""),
            "seconds": seconds, "rss_mb": before / 1024, "peak_growth_mb": (_status_kb("VmHWM") - before) / 1024,
        }), flush=True)


if __name__ == "__main__":
    measure(Path(sys.argv[1]))
