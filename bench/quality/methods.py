"""The methods compared: ONNX embedding graphs fed by the service's own decoding, and the baselines.

Every method maps image files to L2-normalised vectors, so a score is always `0.5 + 0.5 * cos` (the API's
similarity). For the 64-bit perceptual hash, bits as +-1 make that score exactly `1 - hamming / 64`.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from pathlib import Path

import imagehash
import numpy as np
import onnxruntime as ort
from image_similarity.core.images import to_model_input
from PIL import Image

TIMING_ROUNDS = 40
EMBED_BATCH = 16  # images decoded and run at a time


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


@dataclass
class Method:
    name: str
    note: str = ""
    ms_per_image: float = field(default=float("nan"), init=False)

    def embed(self, files: list[bytes]) -> np.ndarray:
        raise NotImplementedError


@dataclass
class OnnxEmbedding(Method):
    """An embedding graph with a fixed square uint8 NHWC input, one thread, as the service runs it."""

    path: Path = Path()
    size: int = 224
    centre_crop: bool = True  # the service's preprocessing since v4; False squeezes the whole image (v3 and older)

    def __post_init__(self) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        # What `run_once` times until `embed` sees a real image (vectors may come from the benchmark's cache);
        # the networks' time does not depend on the pixels.
        self.sample = np.zeros((1, self.size, self.size, 3), np.uint8)

    def embed(self, files: list[bytes]) -> np.ndarray:
        # Decoded a batch at a time: the test split's copies decoded at once held about 7 GB at 448 px, and the
        # benchmark was killed for memory beside a training run.
        vectors = []
        for i in range(0, len(files), EMBED_BATCH):
            pixels = np.stack([to_model_input(data, self.size, centre_crop=self.centre_crop)
                               for data in files[i:i + EMBED_BATCH]])
            vectors.append(self.session.run(None, {self.input_name: pixels})[0])
            self.sample = pixels[:1]
        return _unit(np.concatenate(vectors))

    def run_once(self) -> float:
        """Seconds of the network alone on one image (decoding is the same for every network)."""
        start = time.perf_counter()
        self.session.run(None, {self.input_name: self.sample})
        return time.perf_counter() - start


def time_networks(models: list[OnnxEmbedding], rounds: int = TIMING_ROUNDS) -> None:
    """Set each model's ms/image: the fastest of many runs, interleaved round by round across the models, so that
    other jobs on the shared cores slow every model alike and the fastest run is the least disturbed one."""
    best = dict.fromkeys(range(len(models)), float("inf"))
    for _ in range(rounds):
        for i, model in enumerate(models):
            best[i] = min(best[i], *(model.run_once() for _ in range(3)))
    for i, model in enumerate(models):
        model.ms_per_image = best[i] * 1000


@dataclass
class PerceptualHash(Method):
    def embed(self, files: list[bytes]) -> np.ndarray:
        start = time.perf_counter()
        bits = [imagehash.phash(Image.open(io.BytesIO(data)).convert("RGB")).hash.ravel() for data in files]
        self.ms_per_image = (time.perf_counter() - start) * 1000 / len(files)
        return _unit(np.where(np.array(bits), 1.0, -1.0))


@dataclass
class TinyImage(Method):
    """The whole image shrunk to 16 x 16 RGB, mean removed: the classic near-duplicate baseline."""

    def embed(self, files: list[bytes]) -> np.ndarray:
        start = time.perf_counter()
        tiles = [np.asarray(Image.open(io.BytesIO(data)).convert("RGB").resize((16, 16), Image.Resampling.BOX),
                            np.float32).ravel() for data in files]
        self.ms_per_image = (time.perf_counter() - start) * 1000 / len(files)
        vectors = np.array(tiles)
        return _unit(vectors - vectors.mean(axis=1, keepdims=True))
