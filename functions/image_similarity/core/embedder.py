"""The ONNX Runtime session that turns a batch of preprocessed images into L2-normalised embeddings."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

MODEL_DIR = Path(__file__).resolve().parents[1] / "model"


class ModelError(RuntimeError):
    """The model file is missing, altered, or failed to run: a server fault, never the client's."""


@dataclass(frozen=True)
class ModelInfo:
    version: str
    path: Path
    sha256: str
    input_name: str
    input_size: int
    output_name: str
    dim: int
    # Similarities above which two images are the same picture at 1 % / 0.1 % false positives, and the album rule's
    # certain threshold and margin ({"fpr_0.01", "fpr_0.001", "duplicates_certain", "duplicates_margin"}), calibrated
    # for this model file on held-out images (model/calibrate.py); GET /ping publishes them all.
    thresholds: dict[str, float]

    @classmethod
    def load(cls, model_dir: Path = MODEL_DIR) -> ModelInfo:
        manifest = json.loads((model_dir / "manifest.json").read_text())
        return cls(
            version=manifest["version"],
            path=model_dir / manifest["file"],
            sha256=manifest["sha256"],
            input_name=manifest["input"]["name"],
            input_size=manifest["input"]["size"],
            output_name=manifest["output"]["name"],
            dim=manifest["output"]["dim"],
            thresholds=dict(manifest["thresholds"]),
        )


class Embedder:
    """One ONNX Runtime session per process; `embed` takes uint8 RGB images of shape (N, size, size, 3)."""

    def __init__(self, info: ModelInfo, threads: int = 1):
        data = info.path.read_bytes()
        if hashlib.sha256(data).hexdigest() != info.sha256:
            raise ModelError(f"{info.path} does not match the sha256 in its manifest; rebuild with `make model`")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Spin-waiting threads double latency whenever another process holds the other core.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # A memory plan per batch size (1 and 2) kept ~40 MB more resident for no measurable speed (bench/PERF.md).
        options.enable_mem_pattern = False
        self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        self.info = info

    @property
    def input_size(self) -> int:
        return self.info.input_size

    def embed(self, images: np.ndarray) -> np.ndarray:
        try:
            (vectors,) = self.session.run([self.info.output_name], {self.info.input_name: images})
        except Exception as exc:  # ORT raises several unrelated types; all mean the same here
            raise ModelError(f"inference failed: {exc}") from exc
        return vectors
