"""int8 and fp16 variants of the shipped model: speed beside fp32 (interleaved, 1 thread, batch 1), agreement
with fp32, and retrieval quality on the quality benchmark (bench/quality). A variant is worth adopting only if it
is faster and loses less than `MAX_MAP_LOSS` mAP.

    .venv/bin/python -m bench.speed.variants      # from the repository root; writes bench/out/variants.json
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from image_similarity.embedder import ModelInfo
from image_similarity.images import to_model_input
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process
from onnxruntime.transformers.float16 import convert_float_to_float16
from PIL import Image

from bench.quality.__main__ import evaluate
from bench.quality.dataset import generate
from bench.quality.methods import OnnxEmbedding
from bench.quality.sources import SOURCES

from .samples import encode
from .timing import interleave

OUT = Path(__file__).resolve().parents[1] / "out"
MAX_MAP_LOSS = 0.005
MIN_SPEEDUP = 1.1  # below this a variant is within the shared machine's noise: not worth a second model file


def calibration_images(size: int, count: int = 32) -> np.ndarray:
    """Crops of scikit-image photos the quality benchmark does not use, so calibration never sees a test image."""
    import skimage

    used = {source.name for source in SOURCES}
    folder = Path(skimage.__file__).parent / "data"
    files = sorted(p for p in folder.glob("*.*") if p.suffix in (".png", ".jpg") and p.stem not in used)
    rng = np.random.default_rng(0)
    images = []
    for path in files:
        pixels = np.asarray(Image.open(path).convert("RGB"))
        for _ in range(max(1, count // len(files))):
            h, w = pixels.shape[:2]
            ch, cw = int(h * rng.uniform(0.6, 1.0)), int(w * rng.uniform(0.6, 1.0))
            y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
            images.append(to_model_input(encode(pixels[y:y + ch, x:x + cw], "PNG"), size))
    return np.stack(images)


class Batches(CalibrationDataReader):
    def __init__(self, name: str, images: np.ndarray):
        self.items = iter([{name: images[i:i + 1]} for i in range(len(images))])

    def get_next(self) -> dict | None:
        return next(self.items, None)


def build_int8(info: ModelInfo, out: Path) -> Path:
    prepared = out / "prepared.onnx"
    quant_pre_process(str(info.path), str(prepared), skip_symbolic_shape=True)
    path = out / "int8.onnx"
    quantize_static(str(prepared), str(path), Batches(info.input_name, calibration_images(info.input_size)),
                    quant_format=QuantFormat.QDQ, per_channel=True, weight_type=QuantType.QInt8,
                    activation_type=QuantType.QUInt8)
    return path


def build_fp16(info: ModelInfo, out: Path) -> Path:
    path = out / "fp16.onnx"
    onnx.save(convert_float_to_float16(onnx.load(str(info.path)), keep_io_types=True), str(path))
    return path


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main() -> int:
    info = ModelInfo.load()
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        paths = {"fp32": info.path, "int8 (static QDQ, per channel)": build_int8(info, Path(tmp)),
                 "fp16 (fp32 in/out)": build_fp16(info, Path(tmp))}
        sessions = {name: session(path) for name, path in paths.items()}
        probe = calibration_images(info.input_size, 16)
        reference = sessions["fp32"].run(None, {info.input_name: probe})[0]
        one = probe[:1]
        timing = interleave({name: lambda s=s: s.run(None, {info.input_name: one}) for name, s in sessions.items()},
                            reps=40, warmup=3)
        bench = generate(variants=1)
        rows = []
        for name, path in paths.items():
            vectors = sessions[name].run(None, {info.input_name: probe})[0]
            quality = evaluate(OnnxEmbedding(name, path=path, size=info.input_size), bench)["overall"]
            rows.append({"variant": name, "ms": timing[name]["total"], "mAP": quality["mAP"],
                         "min_cosine_to_fp32": float(np.min(np.sum(vectors * reference, axis=1))),
                         "bytes": path.stat().st_size})
    base = rows[0]
    print(f"\n## Model variants (`{info.version}`; quality: bench/quality, {len(bench.copies)} copies)\n")
    print("| variant | ms (1 thread, batch 1) | speed-up | mAP | mAP change | min cos to fp32 | MB | adopt |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        loss = base["mAP"] - r["mAP"]
        speedup = base["ms"] / r["ms"]
        adopt = r is not base and loss < MAX_MAP_LOSS and speedup >= MIN_SPEEDUP
        r.update(speedup=speedup, map_change=-loss, adopt=adopt)
        print(f"| {r['variant']} | {r['ms']:.2f} | {r['speedup']:.2f} | {r['mAP']:.4f} | {-loss:+.4f} | "
              f"{r['min_cosine_to_fp32']:.4f} | {r['bytes'] / 1e6:.1f} | {'yes' if adopt else 'no'} |")
    OUT.mkdir(exist_ok=True)
    (OUT / "variants.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"\nQualifies (faster by >= {MIN_SPEEDUP}x, loses < {MAX_MAP_LOSS} mAP): "
          + (", ".join(r["variant"] for r in rows if r["adopt"]) or "none") + ". Calibration: crops of "
          "scikit-image photos the quality benchmark does not use.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
