"""The benchmark's original photos: only images that a PyPI package ships inside its wheel, under a licence that
allows reuse. Each entry names its package and licence (bench/README.md lists them for people)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Source:
    name: str
    package: str
    license: str
    load: Callable[[], np.ndarray]


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from skimage import data

        image = getattr(data, name)()
        return image[0] if isinstance(image, tuple) else image  # stereo_motorcycle: the left view only

    return load


def _package_file(package: str, path: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        with resources.files(package).joinpath(path).open("rb") as fh:
            return np.asarray(Image.open(fh).convert("RGB"))

    return load


# scikit-image's bundled photos (licences from each loader's docstring). Left out: `cat` (the same photo as
# `chelsea`), `stereo_motorcycle`'s right view (a near-duplicate of the left), the tiny `microaneurysms` crop and the
# synthetic / binary images (`binary_blobs`, `checkerboard`, `shepp_logan_phantom`).
_SKIMAGE = {
    "astronaut": "public domain (NASA)",
    "brick": "CC0 (CC0Textures)",
    "camera": "CC0 (Lav Varshney)",
    "cell": "CC0",
    "chelsea": "CC0 (Stefan van der Walt)",
    "clock": "public domain (Stefan van der Walt)",
    "coffee": "CC0 (Rachel Michetti)",
    "coins": "no copyright restrictions (Brooklyn Museum)",
    "colorwheel": "scikit-image's BSD-3-Clause (no separate licence stated)",
    "grass": "CC0 (CC0Textures)",
    "gravel": "CC0 (CC0Textures)",
    "horse": "CC0 (Andreas Preuss)",
    "hubble_deep_field": "public domain (NASA/ESA)",
    "immunohistochemistry": "no copyright restrictions",
    "logo": "scikit-image's BSD-3-Clause (the project's own logo)",
    "moon": "scikit-image's BSD-3-Clause (no separate licence stated)",
    "page": "scikit-image's BSD-3-Clause (no separate licence stated)",
    "retina": "CC0 / public domain (Häggström, Wikimedia)",
    "rocket": "public domain (SpaceX)",
    "stereo_motorcycle": "Middlebury 2014 stereo data set, shipped by scikit-image (left view)",
    "text": "public domain",
}

SOURCES: tuple[Source, ...] = (
    *(Source(name, "scikit-image", lic, _skimage(name)) for name, lic in _SKIMAGE.items()),
    Source("china", "scikit-learn", "CC-BY-2.0 (danielbuechele, Flickr)",
           _package_file("sklearn.datasets", "images/china.jpg")),
    Source("flower", "scikit-learn", "CC-BY-2.0 (vultilion, Flickr)",
           _package_file("sklearn.datasets", "images/flower.jpg")),
    Source("grace_hopper", "matplotlib", "public domain (US Navy photo)",
           _package_file("matplotlib", "mpl-data/sample_data/grace_hopper.jpg")),
)


def load_rgb(source: Source) -> Image.Image:
    """The photo as an RGB PIL image: greyscale is replicated, alpha composited on white."""
    pixels = source.load()
    if pixels.dtype == bool:
        pixels = pixels.astype(np.uint8) * 255
    elif pixels.dtype != np.uint8:
        pixels = (np.clip(pixels, 0, 1) * 255).astype(np.uint8) if pixels.dtype.kind == "f" else pixels.astype(np.uint8)
    if pixels.ndim == 2:
        return Image.fromarray(pixels).convert("RGB")
    if pixels.shape[2] == 4:
        rgba = Image.fromarray(pixels, "RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return Image.fromarray(pixels[..., :3]).convert("RGB")
