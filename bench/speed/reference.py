"""The reference product's pipeline, rebuilt here only to be timed against ours (the service never contains it):
full Pillow decode, `cv2.resize(pixels / 255.0, (448, 448))` in float64, float32 NCHW, the network at 448, batch 1."""

from __future__ import annotations

import io
import sys
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_SIZE = 448


def reference_model(cache_dir: Path) -> Path:
    """Our backbone exported at 448 x 448 with the reference's float [0, 1] NCHW input (torch: a bench dependency)."""
    path = cache_dir / f"reference-{REFERENCE_SIZE}.onnx"
    if path.exists():
        return path
    import torch

    sys.path.insert(0, str(ROOT / "model"))
    from build import SPEC, EmbeddingNet, load_backbone

    class FloatInput(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = EmbeddingNet(load_backbone(REFERENCE_SIZE), SPEC).eval()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net((x * 255.0).permute(0, 2, 3, 1))

    cache_dir.mkdir(parents=True, exist_ok=True)
    dummy = torch.zeros(1, 3, REFERENCE_SIZE, REFERENCE_SIZE)
    tmp = path.with_suffix(".tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the exporter's constant-folding notes, not faults
        torch.onnx.export(FloatInput().eval(), (dummy,), str(tmp), input_names=["input"], output_names=["output"],
                          opset_version=17, dynamo=False)
    tmp.replace(path)
    return path


class ReferencePipeline:
    def __init__(self, model: Path, threads: int):
        options = ort.SessionOptions()
        # Same threads and spinning as ours, so the ratio measures the pipeline, not the thread settings.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        self.threads = threads

    def run(self, data: bytes) -> dict[str, float]:
        cv2.setNumThreads(self.threads)
        t0 = time.perf_counter()
        pixels = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        t1 = time.perf_counter()
        resized = cv2.resize(pixels / 255.0, (REFERENCE_SIZE, REFERENCE_SIZE))
        batch = resized.transpose(2, 0, 1)[np.newaxis].astype(np.float32)
        t2 = time.perf_counter()
        self.session.run(["output"], {"input": batch})
        t3 = time.perf_counter()
        return {"decode": t1 - t0, "preprocess": t2 - t1, "inference": t3 - t2}
