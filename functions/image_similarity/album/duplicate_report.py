"""A self-contained HTML page of a duplicate result that a person can act on: a summary (groups, images, the bytes the
suggested moves would free, every skipped file), each group with its kept copy first and marked, sorting by group
size or bytes, and 50 groups a page, so an album of thousands of groups stays quick. Thumbnails are embedded as data
URIs (the page can be moved or mailed) and decoded lazily by the browser."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from image_similarity.album.duplicate_finder import DuplicateResult, ImageEntry
from image_similarity.album.image_files import is_url
from image_similarity.album.photo_decode import open_photo, preview
from image_similarity.core.errors import RequestError

THUMBNAIL_SIDE = 200
GROUPS_PER_PAGE = 50
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
.summary { background: #f4f6f8; padding: .6em 1em; border-radius: 6px; }
.summary b { font-size: 1.15em; }
.controls { margin: 1em 0; display: flex; gap: .5em; align-items: center; flex-wrap: wrap; }
.group { border-top: 1px solid #ccc; padding: .8em 0; }
.group h2 { font-size: 1.05em; margin: 0 0 .5em; }
.row { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; width: 212px; padding: 4px; border: 2px solid transparent; border-radius: 6px; }
figure.keep { border-color: #2e7d32; background: #eef7ee; }
figure img { max-width: 200px; max-height: 200px; display: block; border: 1px solid #ddd; }
figcaption { font-size: 12px; overflow-wrap: normal; word-break: normal; overflow: hidden; }
.folder { color: #666; }
.folder span, .fact { white-space: nowrap; }
.name { display: block; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; font-weight: 600; }
.badge { display: inline-block; padding: 0 .4em; border-radius: 3px; font-size: 11px; font-weight: bold; }
.badge.keep { background: #2e7d32; color: white; }
.badge.move { background: #b0bec5; }
.badge.same { background: #ffe082; }
.missing { width: 200px; height: 120px; background: #eee; display: flex; align-items: center; justify-content: center; }
"""
# Paging and sorting; without JavaScript every group is simply shown in one long page.
SCRIPT = """
const groups = Array.from(document.querySelectorAll("section.group"));
const perPage = PER_PAGE;
let page = 0;
function show() {
  const pages = Math.max(1, Math.ceil(groups.length / perPage));
  page = Math.min(Math.max(page, 0), pages - 1);
  groups.forEach((g, i) => { g.hidden = Math.floor(i / perPage) !== page; });
  document.getElementById("page").textContent = `page ${page + 1} of ${pages}`;
  document.getElementById("prev").disabled = page === 0;
  document.getElementById("next").disabled = page === pages - 1;
}
function sortBy(key) {
  groups.sort((a, b) => (Number(b.dataset[key]) - Number(a.dataset[key])) || (b.dataset.order - a.dataset.order));
  const list = document.getElementById("groups");
  groups.forEach(g => list.appendChild(g));
  page = 0;
  show();
}
document.getElementById("sort").addEventListener("change", e => sortBy(e.target.value));
document.getElementById("prev").addEventListener("click", () => { page -= 1; show(); });
document.getElementById("next").addEventListener("click", () => { page += 1; show(); });
document.querySelector(".controls").hidden = false;
show();
""".replace("PER_PAGE", str(GROUPS_PER_PAGE))


def thumbnail(data: bytes, side: int = THUMBNAIL_SIDE) -> str | None:
    """A JPEG data URI of the image's upright thumbnail, or None if it cannot be opened."""
    try:
        small = preview(open_photo(data), side)
    except RequestError:  # damaged since it was embedded: the page shows a placeholder instead of failing
        return None
    buf = io.BytesIO()
    small.save(buf, "JPEG", quality=80)
    return f"data:image/jpeg;base64,{base64.b64encode(buf.getvalue()).decode()}"


def write_report(path: Path, result: DuplicateResult, read: Callable[[str], bytes], workers: int = 4) -> None:
    paths = [image.path for group in result.groups for image in group.images]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        thumbs = dict(zip(paths, pool.map(lambda p: _thumbnail_of(p, read), paths), strict=True))
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8"><title>Duplicate images</title>',
        f"<style>{STYLE}</style></head><body>",
        "<h1>Duplicate images</h1>",
        _summary(result),
        ('<div class="controls" hidden><label>Sort groups by <select id="sort">'
        '<option value="order">folder order</option><option value="size">group size</option>'
        '<option value="bytes">bytes to free</option></select></label>'
        '<button id="prev">previous</button><span id="page"></span><button id="next">next</button></div>'),
        '<div id="groups">',
    ]
    for number, group in enumerate(result.groups, 1):
        parts.append(
            # data-order is negated so that every sort key orders from the largest value down
            f'<section class="group" data-order="{-number}" data-size="{len(group.images)}" '
            f'data-bytes="{group.reclaimable_bytes}"><h2>Group {number}: {len(group.images)} images, '
            f"{_size(group.reclaimable_bytes)} to free</h2><div class=\"row\">"
        )
        for index, image in enumerate(group.images):
            parts.append(_figure(image, index == 0, thumbs.get(image.path)))
        parts.append("</div></section>")
    parts += ["</div>", f"<script>{SCRIPT}</script>", "</body></html>"]
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")


def _summary(result: DuplicateResult) -> str:
    against = f" against the library {html.escape(result.against)}" if result.against else ""
    margin = "" if result.margin is None else f", margin {result.margin:.3f}"
    margin += "" if result.certain is None else f", certain from {result.certain:.4f}"
    margin += ", pixel check on" if result.pixel_check else ""
    lines = [
        '<div class="summary">',
        (f"<p><b>{len(result.groups)} groups</b>, <b>{result.images_in_groups} images</b>; moving the copies not kept "
        f"would free <b>{_size(result.reclaimable_bytes)}</b>.</p>"),
        (f"<p>{result.scanned} files scanned{against}, {len(result.skipped)} skipped. Threshold "
        f"{result.threshold:.3f}{margin}; kept copy by rule <i>{html.escape(result.keep_rule)}</i>; model "
        f"{html.escape(result.model_version)}. Each score is the image's similarity (0 to 1) to the kept copy.</p>"),
    ]
    if result.skipped:
        items = "".join(f"<li>{_path(p)}: {html.escape(reason)}</li>" for p, reason in result.skipped)
        lines.append(f"<details><summary>{_count(len(result.skipped), 'skipped file')}</summary><ul>{items}</ul>"
                     "</details>")
    lines.append("</div>")
    return "\n".join(lines)


def _thumbnail_of(location: str, read: Callable[[str], bytes]) -> str | None:
    try:
        return thumbnail(read(location))
    except RequestError:  # gone since it was embedded
        return None


def _figure(image: ImageEntry, kept: bool, thumb: str | None) -> str:
    name = html.escape(image.path)
    if thumb is None:
        picture = '<div class="missing">no preview</div>'
    else:
        picture = f'<a href="{_href(image.path)}"><img src="{thumb}" alt="{name}" loading="lazy"></a>'
    badge = ('<span class="badge keep">KEEP</span>' if kept
             else '<span class="badge same">identical</span>' if image.identical
             else '<span class="badge move">move</span>')
    facts = image.facts
    details = [f"{facts.width} x {facts.height} px", facts.format] if facts else []
    if image.bytes is not None:
        details.append(_size(image.bytes))
    if facts and facts.taken:
        details.append(facts.taken.replace("T", " "))
    facts_line = ", ".join(f'<span class="fact">{html.escape(d)}</span>' for d in details)
    return (
        f'<figure class="{"keep" if kept else "copy"}">{picture}<figcaption>{badge} '
        f'<span class="score">{image.similarity:.4f}</span> {_path(image.path)}'
        f"<br>{facts_line}</figcaption></figure>"
    )


def _path(location: str) -> str:
    """The folder may break after any "/" (never at a hyphen), the file name never breaks (its end is elided, the
    title holds it)."""
    folder, slash, name = location.rpartition("/")
    crumbs = "<wbr>".join(f"<span>{html.escape(part)}/</span>" for part in folder.split("/")) if slash else ""
    return (f'<span class="folder">{crumbs}</span><span class="name" title="{html.escape(location, quote=True)}">'
            f"{html.escape(name)}</span>")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _size(count: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def _href(location: str) -> str:
    if is_url(location):
        return html.escape(location, quote=True)
    return html.escape(Path(location).resolve().as_uri(), quote=True)
