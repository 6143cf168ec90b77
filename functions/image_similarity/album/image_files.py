"""Which images a folder-scale command works on: files and URLs as given, folders walked for image files."""

from __future__ import annotations

import os
from pathlib import Path

from image_similarity.core.contract import URL_SCHEMES

# Folders are filtered by name so that notes, sidecars and system files are not reported as broken images;
# a file named explicitly is always tried (the service recognises formats by content, not by name).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".dib"})


def is_url(location: str) -> bool:
    return location.lower().startswith(tuple(f"{scheme}://" for scheme in URL_SCHEMES))


def find_images(inputs: list[str]) -> list[str]:
    """Expand folders (recursively, skipping hidden entries, sorted) and keep each location once, in order."""
    found: list[str] = []
    for item in inputs:
        if not is_url(item) and Path(item).is_dir():
            found.extend(walk(Path(item)))
        else:
            found.append(item)
    return list(dict.fromkeys(found))


def walk(folder: Path) -> list[str]:
    images = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES:
                images.append(str(Path(root) / name))
    return images
