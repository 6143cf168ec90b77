"""Duplicates as a complete, honest result: every group with the copy to keep first and each image's facts, every
skipped file with its reason, and the run's model, threshold and counts. `to_json()` is the `duplicates --json`
document; the HTML report and the moves are built from the same object."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from image_similarity.album.bulk_embed import EmbedRun
from image_similarity.album.duplicates import find_groups
from image_similarity.album.embedding import Embedding
from image_similarity.album.image_files import find_images, is_url
from image_similarity.album.keep import DEFAULT_KEEP, Candidate, choose
from image_similarity.album.library import Library, load_library
from image_similarity.album.library_match import LibraryMatch, library_matches
from image_similarity.album.pair_check import PairChecker, Progress, no_progress, picture
from image_similarity.album.photo_decode import PhotoFacts, photo_facts
from image_similarity.core.errors import RequestError
from image_similarity.core.score import similarity
from image_similarity.core.settings import (
    DUPLICATE_CERTAIN_THRESHOLD,
    DUPLICATE_CHECK_FLOOR,
    DUPLICATE_MARGIN,
    DUPLICATE_THRESHOLD,
    LIBRARY_MATCH_THRESHOLD,
)

FACT_READERS = 8


@dataclass(frozen=True)
class ImageEntry:
    """One file of a group. `similarity` is its score against the kept copy; `identical`: the same bytes as it."""

    path: str
    similarity: float
    identical: bool
    bytes: int | None
    facts: PhotoFacts | None

    def to_json(self) -> dict[str, Any]:
        facts = self.facts
        return {
            "path": self.path,
            "similarity": round(self.similarity, 5),
            "identical": self.identical,
            "width": facts.width if facts else None,
            "height": facts.height if facts else None,
            "bytes": self.bytes,
            "format": facts.format if facts else None,
            "taken": facts.taken if facts else None,
        }


@dataclass(frozen=True)
class Group:
    """`images[0]` is the copy to keep; the others are the suggested moves."""

    images: list[ImageEntry]

    @property
    def keep(self) -> str:
        return self.images[0].path

    @property
    def movable(self) -> list[ImageEntry]:
        return self.images[1:]

    @property
    def reclaimable_bytes(self) -> int:
        return sum(image.bytes or 0 for image in self.movable)


@dataclass(frozen=True)
class DuplicateResult:
    model_version: str
    threshold: float
    keep_rule: str
    scanned: int
    skipped: list[tuple[str, str]]
    groups: list[Group]
    against: str | None = None
    margin: float | None = None  # how far an album pair must stand out (find_groups); None against a library
    certain: float | None = None  # from this score a pair matches whatever else; None when the score alone decides
    pixel_check: bool = False  # whether candidate pairs were also checked by their pixels (album/pair_check.py)

    @property
    def images_in_groups(self) -> int:
        return sum(len(g.images) for g in self.groups)

    @property
    def reclaimable_bytes(self) -> int:
        return sum(g.reclaimable_bytes for g in self.groups)

    def to_json(self) -> dict[str, Any]:
        return {
            "model_version": self.model_version,
            "threshold": self.threshold,
            "margin": self.margin,
            "certain": self.certain,
            "pixel_check": self.pixel_check,
            "keep_rule": self.keep_rule,
            "against": self.against,
            "scanned": self.scanned,
            "embedded": self.scanned - len(self.skipped),
            "images_in_groups": self.images_in_groups,
            "reclaimable_bytes": self.reclaimable_bytes,
            "skipped": [{"path": path, "reason": reason} for path, reason in self.skipped],
            "groups": [{"keep": g.keep, "images": [image.to_json() for image in g.images]} for g in self.groups],
        }


def find_duplicates(
    *folders: str | Path,
    threshold: float | None = None,
    keep: str = DEFAULT_KEEP,
    against: str | Path | None = None,
    embedding: Embedding | None = None,
    margin: float = DUPLICATE_MARGIN,
    certain: float = DUPLICATE_CERTAIN_THRESHOLD,
    pixel_check: bool = True,
    progress: Progress = no_progress,
) -> DuplicateResult:
    """Group the duplicates among the images under `folders`, with the copy to keep by the `keep` rule.

    `threshold` defaults to DUPLICATE_THRESHOLD, and a pair must also stand out from its pictures' neighbourhoods by
    `margin` unless it scores `certain`, or its pixels agree (`pixel_check`: album/duplicates.py, find_groups; from
    DUPLICATE_CHECK_FLOOR, or from `threshold` when one is given; `progress` hears of each pair checked). With
    `against` (a folder, or a vectors file
    written by `image-similarity embed --out`), only the new images that match a library image are reported, each
    group kept by its library image: from `certain`, or from the check's floor when the pixel check agrees, or at
    `threshold` (default LIBRARY_MATCH_THRESHOLD) when the check is off or cannot read the pictures
    (album/library_match.py). `embedding` defaults to the local model with the user's vector cache.
    """
    embedding = embedding or Embedding.local()
    locations = find_images([str(f) if is_url(str(f)) else str(Path(f).expanduser()) for f in folders])
    library = load_library(str(Path(against).expanduser()), embedding) if against is not None else None
    if library is not None:
        in_library = set(library.locations)
        locations = [loc for loc in locations if loc not in in_library]
    check_floor = DUPLICATE_CHECK_FLOOR if threshold is None else threshold  # a threshold given holds for the check too
    if threshold is None:
        threshold = DUPLICATE_THRESHOLD if library is None else LIBRARY_MATCH_THRESHOLD
    run = embedding.run(locations)
    # One checker for both modes: library_matches asks about library row j as len(run.locations) + j
    locations_checked = run.locations + (library.locations if library is not None else [])
    check = PairChecker(lambda row: _picture(locations_checked[row], embedding.read),
                        progress=progress) if pixel_check else None
    with ThreadPoolExecutor(FACT_READERS) as pool:
        if library is None:
            groups = [_album_group(run, g.members, keep, embedding.read, pool)
                      for g in find_groups(run.vectors, threshold, run.keys, margin, certain, check, check_floor)]
        else:
            matches = library_matches(run.vectors, run.keys, library.vectors, library.keys, threshold, certain, check,
                                      check_floor)
            groups = _library_groups(run, library, matches, embedding.read, pool)
    return DuplicateResult(
        model_version=embedding.backend.version,
        threshold=threshold,
        keep_rule="library" if library else keep,
        scanned=len(locations),
        skipped=run.failures,
        groups=sorted(groups, key=lambda g: g.keep),
        against=str(against) if against is not None else None,
        margin=None if library else margin,
        certain=certain if library is None or pixel_check else None,
        pixel_check=pixel_check,
    )


@dataclass(frozen=True)
class _File:
    facts: PhotoFacts | None
    bytes: int | None
    modified: float | None


def _file(location: str, read: Callable[[str], bytes]) -> _File:
    """The file's header facts; a file that vanished or cannot be opened since it was embedded has none."""
    try:
        data = read(location)
    except RequestError:
        return _File(None, None, None)
    try:
        facts = photo_facts(data)
    except RequestError:
        facts = None
    try:
        modified = None if is_url(location) else os.stat(location).st_mtime
    except OSError:  # removed in the meantime: the rules fall back to the other facts
        modified = None
    return _File(facts, len(data), modified)


def _picture(location: str, read: Callable[[str], bytes]) -> Image.Image | None:
    """The upright picture the pixel check compares, or None for a file that vanished or broke since it was embedded."""
    try:
        return picture(read(location))
    except RequestError:
        return None


def _album_group(
    run: EmbedRun, rows: list[int], rule: str, read: Callable[[str], bytes], pool: ThreadPoolExecutor
) -> Group:
    files = list(pool.map(lambda row: _file(run.locations[row], read), rows))
    candidates = [
        Candidate(order, f.facts.width * f.facts.height if f.facts else 0, f.bytes or 0,
                  f.facts.taken if f.facts else None, f.modified)
        for order, f in zip(rows, files, strict=True)
    ]
    kept = rows[choose(candidates, rule)]
    entries = [
        ImageEntry(run.locations[row], similarity(run.vectors[row], run.vectors[kept]),
                   row != kept and run.keys[row] == run.keys[kept], f.bytes, f.facts)
        for row, f in zip(rows, files, strict=True)
    ]
    ordered = sorted(range(len(rows)), key=lambda i: (rows[i] != kept, -entries[i].similarity, rows[i]))
    return Group([entries[i] for i in ordered])


def _library_groups(
    run: EmbedRun, library: Library, matches: list[LibraryMatch], read: Callable[[str], bytes],
    pool: ThreadPoolExecutor,
) -> list[Group]:
    """Each matching new image joins the group of its library image, strongest first."""
    by_library: dict[int, list[LibraryMatch]] = {}
    for m in matches:
        by_library.setdefault(m.library_row, []).append(m)
    groups = []
    for library_row, news in by_library.items():
        location = library.locations[library_row]
        kept = _File(None, None, None) if is_url(location) else _file(location, read)  # facts of local files only
        news = sorted(news, key=lambda m: (-m.score, m.row))
        files = list(pool.map(lambda m: _file(run.locations[m.row], read), news))
        entries = [ImageEntry(location, 1.0, False, kept.bytes, kept.facts)]
        entries += [ImageEntry(run.locations[m.row], m.score, m.identical, f.bytes, f.facts)
                    for m, f in zip(news, files, strict=True)]
        groups.append(Group(entries))
    return groups
