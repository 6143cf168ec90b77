"""int8 version of the fp32 embedding graph: static QDQ quantization, calibrated on images the quality benchmark
never uses (bench/quality/sources.py lists its photos; tests/test_model_build.py checks the two stay apart).

Every photo that scikit-image, scikit-learn and matplotlib ship is a benchmark image (or, for scikit-image's
`motorcycle_right`, the stereo twin of one), so calibration draws on what is left: scikit-image's face crops
(`lfw_subset`), its retina crop (`microaneurysms`) and synthetic images, plus seeded procedural scenes. Min/max
calibration only needs each activation's range, and these cover it: the quality benchmark decides whether they do.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
from image_similarity.core.images import to_model_input
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    create_calibrator,
    quantize_static,
)
from onnxruntime.quantization.calibrate import TensorsData, save_tensors_data
from onnxruntime.quantization.shape_inference import quant_pre_process
from PIL import Image

SEED = 20240611
CROPS_PER_IMAGE = 2
# The scikit-image loaders calibration may use; none of them is a benchmark source.
SKIMAGE_IMAGES = ("microaneurysms", "checkerboard", "shepp_logan_phantom")
FACE_TILES = 8  # lfw_subset's 25 x 25 faces, tiled 8 x 8 per image: a contact sheet of 64 faces
PROCEDURAL_SCENES = 12
# Ranges are rounded outwards to 1/32 of their power of two (at most 3 % wider): the last bits of a min/max depend
# on the CPU's SIMD width, and the rounding keeps the built file the same bytes on every machine.
RANGE_GRID_BITS = 5


def _rgb(pixels: np.ndarray) -> np.ndarray:
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        pixels = np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8)
    return np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels[..., :3]


def _face_sheets() -> list[np.ndarray]:
    from skimage import data

    faces = data.lfw_subset()
    per_sheet = FACE_TILES * FACE_TILES
    sheets = []
    for start in range(0, len(faces) - per_sheet + 1, per_sheet):
        tiles = faces[start:start + per_sheet].reshape(FACE_TILES, FACE_TILES, 25, 25)
        sheets.append(_rgb(tiles.transpose(0, 2, 1, 3).reshape(FACE_TILES * 25, FACE_TILES * 25)))
    return sheets


def _procedural_scene(rng: np.random.Generator, side: int = 384) -> np.ndarray:
    """Smooth colour fields at a few scales, a horizon, a few shapes and sensor noise: photo-like statistics."""
    image = np.zeros((side, side, 3), np.float32)
    for cells, weight in ((2, 0.5), (8, 0.3), (32, 0.15), (side // 4, 0.05)):
        field = rng.uniform(0, 255, (cells, cells, 3)).astype(np.uint8)
        image += weight * np.asarray(Image.fromarray(field).resize((side, side), Image.BICUBIC), np.float32)
    horizon = int(rng.integers(side // 4, 3 * side // 4))
    image[horizon:] *= rng.uniform(0.4, 0.9, 3).astype(np.float32)
    yy, xx = np.mgrid[:side, :side]
    for _ in range(int(rng.integers(2, 6))):
        cy, cx, r = [*rng.integers(0, side, 2).tolist(), int(rng.integers(side // 16, side // 4))]
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0, 255, 3)
    image += rng.normal(0, 4, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def sources(rng: np.random.Generator) -> list[np.ndarray]:
    from skimage import data

    images = [_rgb(getattr(data, name)()) for name in SKIMAGE_IMAGES]
    return images + _face_sheets() + [_procedural_scene(rng) for _ in range(PROCEDURAL_SCENES)]


def calibration_images(size: int) -> np.ndarray:
    """Seeded crops (60-100 % of each side) of the calibration sources, through the service's own preprocessing."""
    rng = np.random.default_rng(SEED)
    batch = []
    for pixels in sources(rng):
        h, w = pixels.shape[:2]
        for _ in range(CROPS_PER_IMAGE):
            ch, cw = int(h * rng.uniform(0.6, 1.0)), int(w * rng.uniform(0.6, 1.0))
            y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            buf = io.BytesIO()
            Image.fromarray(pixels[y:y + ch, x:x + cw]).save(buf, "PNG")
            batch.append(to_model_input(buf.getvalue(), size))
    return np.stack(batch)


class _OneByOne(CalibrationDataReader):
    def __init__(self, name: str, images: np.ndarray):
        self.items = iter([{name: images[i:i + 1]} for i in range(len(images))])

    def get_next(self) -> dict | None:
        return next(self.items, None)


def _outward(value: float, up: bool) -> float:
    if value == 0.0:
        return 0.0
    step = 2.0 ** (np.floor(np.log2(abs(value))) - RANGE_GRID_BITS)
    return float((np.ceil if up else np.floor)(value / step) * step)


def _rounded(ranges: TensorsData) -> TensorsData:
    rounded = {}
    for name, data in ranges.data.items():
        low, high = (np.asarray(v).reshape(-1)[0] for v in data.range_value)
        rounded[name] = (np.array(_outward(float(low), up=False), np.float32),
                         np.array(_outward(float(high), up=True), np.float32))
    return TensorsData(CalibrationMethod.MinMax, rounded)


def quantize(fp32_path: Path, out_path: Path, input_name: str, images: np.ndarray) -> None:
    """Write the int8 graph of `fp32_path` to `out_path`: uint8 input and float output unchanged."""
    with tempfile.TemporaryDirectory() as tmp:
        prepared, cache = Path(tmp) / "prepared.onnx", Path(tmp) / "ranges.json"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        # Every op type ORT can quantize, not the convolutions alone: those lost more (see build.MIN_INT8_COSINE).
        calibrator = create_calibrator(prepared, None, augmented_model_path=str(Path(tmp) / "aug.onnx"),
                                       calibrate_method=CalibrationMethod.MinMax)
        calibrator.collect_data(_OneByOne(input_name, images))
        save_tensors_data(_rounded(calibrator.compute_data()), cache)
        # 7-bit weights (reduce_range): x86 CPUs without VNNI (AVX2 only, as some Lambda hosts are) saturate
        # u8 x s8 products in 16 bits; with 7 bits they cannot, so every host computes the same integers.
        quantize_static(str(prepared), str(out_path), None, quant_format=QuantFormat.QDQ,
                        per_channel=True, reduce_range=True,
                        weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                        calibration_cache_path=cache)
