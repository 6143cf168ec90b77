"""The benchmark's test files: real photos (scikit-image's) scaled to camera sizes, with sensor-like noise so the
encoders see photo-like detail instead of smooth upscaled gradients that decode unrealistically fast."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

# name, format, width, height, save options
SPECS = (
    ("640 px JPEG", "JPEG", 640, 480, {"quality": 90}),
    ("1920 px JPEG", "JPEG", 1920, 1440, {"quality": 90}),
    ("4000x3000 JPEG", "JPEG", 4000, 3000, {"quality": 90}),
    ("1920 px PNG", "PNG", 1920, 1440, {}),
    ("1920 px BMP", "BMP", 1920, 1440, {}),
)
NOISE_SIGMA = 4.0


@dataclass(frozen=True)
class Sample:
    name: str
    fmt: str
    width: int
    height: int
    data: bytes


def photo(width: int, height: int, seed: int = 0) -> np.ndarray:
    from skimage import data

    base = Image.fromarray(data.coffee()).resize((width, height), Image.Resampling.BICUBIC)
    noise = np.random.default_rng(seed).normal(0.0, NOISE_SIGMA, (height, width, 3)).astype(np.float32)
    return np.clip(np.asarray(base, dtype=np.float32) + noise, 0, 255).astype(np.uint8)


def encode(pixels: np.ndarray, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt, **options)
    return buf.getvalue()


def make_samples() -> list[Sample]:
    return [Sample(name, fmt, w, h, encode(photo(w, h), fmt, **opts)) for name, fmt, w, h, opts in SPECS]
