"""Depth Anything V1 and V2: a DINOv2 encoder and a DPT head predicting relative disparity.

The two versions share every parameter name and shape; they differ only in which encoder
blocks feed the head (V1: the last four, V2: four spread over the depth).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .dinov2 import PATCH_SIZE, DinoV2Encoder
from .dpt_blocks import Scratch, reassemble_resizes


@dataclass(frozen=True)
class DepthAnythingConfig:
    version: int  # 1 or 2
    embed_dim: int
    depth: int
    num_heads: int
    features: int
    out_channels: tuple[int, int, int, int]
    use_bn: bool = False
    use_clstoken: bool = False

    @property
    def tap_layers(self) -> list[int]:
        if self.version == 1:
            return list(range(self.depth - 4, self.depth))
        if self.depth == 24:  # the official ViT-L taps, which are not evenly spread
            return [4, 11, 17, 23]
        return [self.depth * k // 4 - 1 for k in range(1, 5)]


# The official configurations, by encoder name.
DEPTH_ANYTHING_SIZES = {
    "vits": dict(embed_dim=384, depth=12, num_heads=6, features=64, out_channels=(48, 96, 192, 384)),
    "vitb": dict(embed_dim=768, depth=12, num_heads=12, features=128, out_channels=(96, 192, 384, 768)),
    "vitl": dict(embed_dim=1024, depth=24, num_heads=16, features=256, out_channels=(256, 512, 1024, 1024)),
}


class DepthAnythingHead(nn.Module):
    def __init__(self, cfg: DepthAnythingConfig):
        super().__init__()
        dim, oc = cfg.embed_dim, cfg.out_channels
        self.use_clstoken = cfg.use_clstoken
        self.projects = nn.ModuleList(nn.Conv2d(dim, c, 1) for c in oc)
        self.resize_layers = reassemble_resizes(oc)
        if cfg.use_clstoken:
            self.readout_projects = nn.ModuleList(
                nn.Sequential(nn.Linear(2 * dim, dim), nn.GELU()) for _ in oc
            )
        self.scratch = Scratch(oc, cfg.features, cfg.use_bn)
        self.scratch.output_conv1 = nn.Conv2d(cfg.features, cfg.features // 2, 3, padding=1)
        self.scratch.output_conv2 = nn.Sequential(
            nn.Conv2d(cfg.features // 2, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 1, 1),
            nn.ReLU(),
            nn.Identity(),
        )

    def forward(self, tokens: Sequence[tuple[torch.Tensor, torch.Tensor]], grid_h: int, grid_w: int) -> torch.Tensor:
        levels = []
        for i, (x, cls) in enumerate(tokens):
            if self.use_clstoken:
                x = self.readout_projects[i](torch.cat((x, cls.unsqueeze(1).expand_as(x)), -1))
            x = x.transpose(1, 2).reshape(x.shape[0], x.shape[-1], grid_h, grid_w)
            levels.append(self.resize_layers[i](self.projects[i](x)))
        out = self.scratch.output_conv1(self.scratch.fuse(levels, sized=True))
        out = F.interpolate(out, (grid_h * PATCH_SIZE, grid_w * PATCH_SIZE), mode="bilinear", align_corners=True)
        return self.scratch.output_conv2(out)


class DepthAnything(nn.Module):
    """Input (B, 3, H, W) normalised, H and W multiples of 14; output (B, H, W) disparity >= 0."""

    def __init__(self, cfg: DepthAnythingConfig):
        super().__init__()
        self.config = cfg
        self.pretrained = DinoV2Encoder(cfg.embed_dim, cfg.depth, cfg.num_heads)
        self.depth_head = DepthAnythingHead(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid_h, grid_w = x.shape[-2] // PATCH_SIZE, x.shape[-1] // PATCH_SIZE
        tokens = self.pretrained.intermediate_layers(x, self.config.tap_layers, with_class_token=True)
        return F.relu(self.depth_head(tokens, grid_h, grid_w)).squeeze(1)
