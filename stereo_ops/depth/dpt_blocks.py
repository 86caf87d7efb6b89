"""Shared DPT decoder pieces: residual conv units, fusion blocks and the 'scratch' projections.

Names follow the official DPT / Depth Anything / MiDaS code so checkpoints load unchanged.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class ResidualConvUnit(nn.Module):
    def __init__(self, features: int, use_bn: bool):
        super().__init__()
        self.use_bn = use_bn
        self.conv1 = nn.Conv2d(features, features, 3, padding=1, bias=not use_bn)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1, bias=not use_bn)
        if use_bn:
            self.bn1 = nn.BatchNorm2d(features)
            self.bn2 = nn.BatchNorm2d(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(x))
        if self.use_bn:
            out = self.bn1(out)
        out = self.conv2(F.relu(out))
        if self.use_bn:
            out = self.bn2(out)
        return out + x


class FeatureFusionBlock(nn.Module):
    """Adds the skip path, refines, upsamples (to `size`, else 2x) and projects.

    `has_skip` False leaves out the skip path's unit (Depth Anything 3's coarsest block has none;
    the older checkpoints carry an unused one)."""

    def __init__(self, features: int, use_bn: bool, has_skip: bool = True):
        super().__init__()
        if has_skip:
            self.resConfUnit1 = ResidualConvUnit(features, use_bn)
        self.resConfUnit2 = ResidualConvUnit(features, use_bn)
        self.out_conv = nn.Conv2d(features, features, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None, size=None) -> torch.Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        if size is None:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        else:
            x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)
        return self.out_conv(x)


def reassemble_resizes(channels: Sequence[int]) -> nn.ModuleList:
    """The reassemble resampling of the four token maps of a ViT: up 4x, up 2x, as they are, down
    2x (`resize_layers` of Depth Anything and Depth Anything 3)."""
    return nn.ModuleList([
        nn.ConvTranspose2d(channels[0], channels[0], kernel_size=4, stride=4),
        nn.ConvTranspose2d(channels[1], channels[1], kernel_size=2, stride=2),
        nn.Identity(),
        nn.Conv2d(channels[3], channels[3], kernel_size=3, stride=2, padding=1),
    ])


class Scratch(nn.Module):
    """3x3 projections of the four feature levels to one width, and the four fusion blocks."""

    def __init__(self, in_channels: Sequence[int], features: int, use_bn: bool, coarsest_skip: bool = True):
        super().__init__()
        for i, ch in enumerate(in_channels, start=1):
            setattr(self, f"layer{i}_rn", nn.Conv2d(ch, features, 3, padding=1, bias=False))
        for i in range(1, 5):
            setattr(self, f"refinenet{i}", FeatureFusionBlock(features, use_bn, has_skip=i < 4 or coarsest_skip))

    def fuse(self, layers: Sequence[torch.Tensor], sized: bool) -> torch.Tensor:
        """Fuse coarse to fine; `sized` upsamples each level to the next one's exact size."""
        l1, l2, l3, l4 = (getattr(self, f"layer{i}_rn")(x) for i, x in enumerate(layers, start=1))
        p4 = self.refinenet4(l4, size=l3.shape[2:] if sized else None)
        p3 = self.refinenet3(p4, l3, size=l2.shape[2:] if sized else None)
        p2 = self.refinenet2(p3, l2, size=l1.shape[2:] if sized else None)
        return self.refinenet1(p2, l1)
