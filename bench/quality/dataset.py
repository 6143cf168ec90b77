"""The benchmark set: each original as a PNG file, and seeded transformed copies as JPEG files (as users send)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .sources import SOURCES, Source, load_rgb
from .transforms import TRANSFORMS

SEED = 20240611
COPY_JPEG_QUALITY = 95  # the file format of every copy; the transforms that compress harder do so themselves


@dataclass(frozen=True)
class BenchSet:
    originals: list[bytes]
    names: list[str]
    copies: list[bytes]
    labels: np.ndarray  # index of each copy's original
    kinds: np.ndarray  # transform name of each copy


def encode(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **({"quality": COPY_JPEG_QUALITY} if fmt == "JPEG" else {}))
    return buf.getvalue()


def generate(sources: tuple[Source, ...] = SOURCES, transforms: tuple[str, ...] = tuple(TRANSFORMS),
             variants: int = 3, seed: int = SEED, out_dir: Path | None = None) -> BenchSet:
    """`variants` copies of every original per transform; the same arguments always give the same bytes."""
    originals, names, copies, labels, kinds = [], [], [], [], []
    for i, source in enumerate(sources):
        image = load_rgb(source)
        originals.append(encode(image, "PNG"))
        names.append(source.name)
        for kind in transforms:
            for v in range(variants):
                # Seeded by position in the full lists, so a subset (the test's) reproduces the full set's copies.
                rng = np.random.default_rng([seed, SOURCES.index(source), tuple(TRANSFORMS).index(kind), v])
                copies.append(encode(TRANSFORMS[kind](image, rng), "JPEG"))
                labels.append(i)
                kinds.append(kind)
    if out_dir is not None:
        _write(out_dir, names, originals, copies, labels, kinds)
    return BenchSet(originals, names, copies, np.array(labels), np.array(kinds))


def _write(out_dir: Path, names, originals, copies, labels, kinds) -> None:
    """Keep the images on disk so a person can look at what was measured."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, data in zip(names, originals, strict=True):
        (out_dir / f"{name}.png").write_bytes(data)
    counter: dict[tuple[int, str], int] = {}
    for data, label, kind in zip(copies, labels, kinds, strict=True):
        v = counter[(label, kind)] = counter.get((label, kind), -1) + 1
        (out_dir / f"{names[label]}__{kind}{v}.jpg").write_bytes(data)
