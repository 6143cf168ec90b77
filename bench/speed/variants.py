"""The shipped int8 model (model/quantize.py) and an fp16 variant beside the fp32 graph they come from: speed
(interleaved, 1 thread, batch 1), agreement with fp32, and retrieval quality on the quality benchmark
(bench/quality). A variant is worth shipping only if it is faster and loses less than `MAX_MAP_LOSS` mAP.

    .venv/bin/python -m bench.speed.variants      # from the repository root; writes bench/out/variants.json
"""

from __future__ import annotations

import json
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from image_similarity.core.embedder import ModelInfo
from onnxruntime.transformers.float16 import convert_float_to_float16

from bench.quality.__main__ import evaluate
from bench.quality.dataset import generate
from bench.quality.hygiene import without
from bench.quality.methods import OnnxEmbedding

from .timing import interleave

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "model"))
from build import SHIPPED_VERSION, build_copydetect, sample_images

ROOT = Path(__file__).resolve().parents[2]

OUT = ROOT / "bench" / "out"
MAX_MAP_LOSS = 0.005
MIN_SPEEDUP = 1.1  # below this a variant is within the shared machine's noise: not worth a second model file


def build_fp16(fp32: Path, out: Path) -> Path:
    path = out / "fp16.onnx"
    onnx.save(convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True), str(path))
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
        fp32 = Path(tmp) / "fp32.onnx"
        build_copydetect(fp32)
        paths = {
            f"fp32 (`{SHIPPED_VERSION}` before quantization)": fp32,
            f"int8, shipped (`{info.version}`)": info.path,
            "fp16 (fp32 in/out)": build_fp16(fp32, Path(tmp)),
        }
        sessions = {name: session(path) for name, path in paths.items()}
        probe = sample_images(info.input_size)
        reference = sessions[next(iter(paths))].run(None, {info.input_name: probe})[0]
        one = probe[:1]
        timing = interleave({name: lambda s=s: s.run(None, {info.input_name: one}) for name, s in sessions.items()},
                            reps=40, warmup=3)
        bench = generate(variants=1)
        everything = without(bench, [])  # the generated set has no same-picture originals to leave out
        rows = []
        for name, path in paths.items():
            vectors = sessions[name].run(None, {info.input_name: probe})[0]
            quality = evaluate(OnnxEmbedding(name, path=path, size=info.input_size), bench, everything)[0]["overall"]
            rows.append({"variant": name, "ms": timing[name]["total"], "mAP": quality["mAP"],
                         "min_cosine_to_fp32": float(np.min(np.sum(vectors * reference, axis=1))),
                         "bytes": path.stat().st_size})
    base = rows[0]
    print(f"\n## Model variants (quality: bench/quality, {len(bench.copies)} copies; cosine on 4 sample photos)\n")
    print("| variant | ms (1 thread, batch 1) | speed-up | mAP | mAP change | min cos to fp32 | MB | qualifies |")
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
          + (", ".join(r["variant"] for r in rows if r["adopt"]) or "none") + ". int8 calibration: model/quantize.py "
          "(images the quality benchmark does not use).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
