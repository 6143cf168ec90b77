"""Which images a folder-scale command works on: files and URLs as given, folders walked for image files."""

from __future__ import annotations

import os
from pathlib import Path

from image_similarity.core.contract import URL_SCHEMES

# Folders are filtered by name so that notes, sidecars and system files are not reported as broken images;
# a file named explicitly is always tried (formats are recognised by content, not by name).
IMAGE_SUFFIXES = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".dib", ".webp", ".tif", ".tiff", ".gif", ".heic", ".heif",
})


class AlbumInputError(ValueError):
    """The command line names nothing to work on: a missing path, or folders without a single image file."""


def is_url(location: str) -> bool:
    return location.lower().startswith(tuple(f"{scheme}://" for scheme in URL_SCHEMES))


def find_images(inputs: list[str]) -> list[str]:
    """Expand folders (recursively, skipping hidden entries, sorted) and keep each location once, in order.

    A path that does not exist, or a folder holding no image file, is an error rather than an empty result: a
    mistyped name must not look like an album without duplicates."""
    found: list[str] = []
    for item in inputs:
        if is_url(item) or Path(item).is_file():
            found.append(item)
        elif Path(item).is_dir():
            images = walk(Path(item))
            if not images:
                raise AlbumInputError(
                    f"{item}: no image files in this folder (looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
                )
            found.extend(images)
        else:
            raise AlbumInputError(f"{item}: no such file or folder")
    return list(dict.fromkeys(found))


def walk(folder: Path) -> list[str]:
    images = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES:
                images.append(str(Path(root) / name))
    return images
