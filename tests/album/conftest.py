"""A generated photo album: camera-size JPEGs (one of 100 MP) with EXIF dates, a byte-identical copy, a small
low-quality copy, a PNG over the API's 4,096 px, one photo as WebP / TIFF / GIF (animated) / HEIC, loners, broken files
(truncated, not an image, a decompression bomb), and an empty folder beside it. Built once per test session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pillow_heif
import pytest
from helpers import png_header_only
from image_similarity.adapters import cli
from PIL import Image
from skimage import data

TAKEN = {"IMG_0001.jpg": "2024:05:01 10:00:00", "IMG_0001-small.jpg": "2024:06:01 09:30:00",
         "astronaut.jpg": "2023:01:01 12:00:00"}


def photo(name: str) -> Image.Image:
    pixels = getattr(data, name)()
    return Image.fromarray(pixels if pixels.ndim == 3 else np.stack([pixels] * 3, axis=-1)).convert("RGB")


def save_jpeg(image: Image.Image, path: Path, quality: int = 90) -> None:
    exif = Image.Exif()
    if path.name in TAKEN:
        exif.get_ifd(0x8769)[0x9003] = TAKEN[path.name]  # Exif IFD: DateTimeOriginal
    image.save(path, "JPEG", quality=quality, exif=exif)


@dataclass(frozen=True)
class Album:
    root: Path
    empty: Path
    groups: dict[str, list[str]]  # name -> sorted paths of the planted group
    loners: list[str]
    broken: dict[str, str]  # path -> a phrase its skip reason contains


@pytest.fixture(scope="session")
def album(tmp_path_factory) -> Album:
    root = tmp_path_factory.mktemp("album")
    for folder in ("2024", "2023", "formats", "misc", "broken"):
        (root / folder).mkdir()
    coffee = photo("coffee")
    save_jpeg(coffee.resize((12000, 8400), Image.Resampling.BILINEAR), root / "2024" / "IMG_0001.jpg")  # 100.8 MP
    (root / "2024" / "copy of IMG_0001.jpg").write_bytes((root / "2024" / "IMG_0001.jpg").read_bytes())
    save_jpeg(coffee.resize((1200, 840)), root / "2024" / "IMG_0001-small.jpg", quality=30)
    astronaut = photo("astronaut")
    save_jpeg(astronaut.resize((6000, 4000), Image.Resampling.BILINEAR), root / "2023" / "astronaut.jpg")
    astronaut.resize((5000, 3333)).save(root / "2023" / "astronaut-edit.png", compress_level=1)
    cat = photo("chelsea")
    cat.save(root / "formats" / "cat.webp", quality=85)
    cat.save(root / "formats" / "cat.tiff")
    other = photo("rocket").resize(cat.size)
    cat.save(root / "formats" / "cat.gif", save_all=True, append_images=[other])  # first frame: the cat
    pillow_heif.register_heif_opener()
    cat.save(root / "formats" / "cat.heic", quality=85)
    for name in ("rocket", "camera"):
        save_jpeg(photo(name), root / "misc" / f"{name}.jpg")
    (root / "broken" / "truncated.jpg").write_bytes((root / "misc" / "rocket.jpg").read_bytes()[:300])
    (root / "broken" / "notes.jpg").write_text("not an image, though named like one")
    (root / "broken" / "bomb.png").write_bytes(png_header_only(20_000, 20_000))
    (root / "broken" / "readme.txt").write_text("not named like an image: never tried, never counted")
    empty = tmp_path_factory.mktemp("empty")
    (empty / "notes.txt").write_text("a folder without images")

    def paths(*names: str) -> list[str]:
        return sorted(str(root / name) for name in names)

    return Album(
        root=root,
        empty=empty,
        groups={
            "coffee": paths("2024/IMG_0001.jpg", "2024/copy of IMG_0001.jpg", "2024/IMG_0001-small.jpg"),
            "astronaut": paths("2023/astronaut.jpg", "2023/astronaut-edit.png"),
            "cat": paths("formats/cat.webp", "formats/cat.tiff", "formats/cat.gif", "formats/cat.heic"),
        },
        loners=paths("misc/rocket.jpg", "misc/camera.jpg"),
        broken={str(root / "broken" / "truncated.jpg"): "JPEG image header could not be read",
                str(root / "broken" / "notes.jpg"): "not an image file",
                str(root / "broken" / "bomb.png"): "decompression bomb"},
    )


@pytest.fixture
def run_cli(monkeypatch, service, tmp_path):
    """The CLI in this process on the session's service, with a vector cache of its own under this test's tmp_path."""
    monkeypatch.setattr(cli.common, "default_service", lambda: service)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    return cli.main


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Path:
    """One cache for the tests that only read the album, so its camera-size photos are decoded once per session."""
    return tmp_path_factory.mktemp("album-cache")
