"""A self-contained HTML page of the duplicate groups: thumbnails side by side with their scores and file facts,
so a person can decide what to delete. Thumbnails are embedded as data URIs, so the page can be moved or mailed."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, ImageOps

from image_similarity.album.duplicates import DuplicateGroup
from image_similarity.core.errors import RequestError

THUMBNAIL_SIDE = 200
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
.group { border-top: 1px solid #ccc; padding: .8em 0; }
.row { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; width: 210px; }
figure img { max-width: 200px; max-height: 200px; display: block; border: 1px solid #ddd; }
figcaption { font-size: 12px; word-break: break-all; }
.score { font-weight: bold; }
.missing { width: 200px; height: 120px; background: #eee; display: flex; align-items: center; justify-content: center; }
"""


def thumbnail(data: bytes, side: int = THUMBNAIL_SIDE) -> tuple[str, str] | None:
    """(JPEG data URI, "W x H px") of an image's upright thumbnail, or None if it cannot be opened."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            image.draft("RGB", (side, side))  # JPEG: decode at a reduced scale
            small = ImageOps.exif_transpose(image).convert("RGB")
            small.thumbnail((side, side))
    # Pillow's errors for damaged files; the page then shows a placeholder instead of failing.
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    buf = io.BytesIO()
    small.save(buf, "JPEG", quality=80)
    return f"data:image/jpeg;base64,{base64.b64encode(buf.getvalue()).decode()}", f"{width} x {height} px"


def write_report(
    path: Path,
    groups: list[DuplicateGroup],
    locations: list[str],
    read: Callable[[str], bytes],
    threshold: float,
    scanned: int,
    workers: int = 4,
) -> None:
    rows = sorted({i for group in groups for i in group.members})
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        thumbs = dict(zip(rows, pool.map(lambda i: _thumbnail_of(locations[i], read), rows), strict=True))
    members = sum(len(g.members) for g in groups)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8"><title>Duplicate images</title>',
        f"<style>{STYLE}</style></head><body>",
        "<h1>Duplicate images</h1>",
        f"<p>{len(groups)} groups, {members} images, out of {scanned} scanned; threshold {threshold:.3f}.",
        "Scores are each image's similarity (0 to 1) to the first image of its group.</p>",
    ]
    for number, group in enumerate(groups, 1):
        parts.append(f'<section class="group"><h2>Group {number} ({len(group.members)} images)</h2><div class="row">')
        for row, score in zip(group.members, group.scores, strict=True):
            parts.append(_figure(locations[row], score, thumbs[row]))
        parts.append("</div></section>")
    parts.append("</body></html>")
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")


def _thumbnail_of(location: str, read: Callable[[str], bytes]) -> tuple[str, str, int] | None:
    try:
        data = read(location)
    except RequestError:  # gone since it was embedded: show a placeholder, not a failed report
        return None
    made = thumbnail(data)
    return (*made, len(data)) if made else None


def _figure(location: str, score: float, thumb: tuple[str, str, int] | None) -> str:
    name = html.escape(location)
    if thumb is None:
        picture = '<div class="missing">no preview</div>'
        facts = ""
    else:
        uri, size, length = thumb
        picture = f'<a href="{_href(location)}"><img src="{uri}" alt="{name}" loading="lazy"></a>'
        facts = f"<br>{size}, {length / 1024:.0f} KiB"
    return f'<figure>{picture}<figcaption><span class="score">{score:.4f}</span> {name}{facts}</figcaption></figure>'


def _href(location: str) -> str:
    if "://" in location:
        return html.escape(location, quote=True)
    return html.escape(Path(location).resolve().as_uri(), quote=True)
