"""Video Depth Anything: Depth Anything V2's encoder and DPT head with temporal attention.

Four motion modules sit in the head: on the two coarsest reassembled token maps and after the two
coarsest fusion blocks, so the frames of a window exchange information where the maps are small.
The encoder runs on each frame alone; `encode` and `decode` are separate so that the windowed
inference can reuse the encoder features of the frames two windows share, and the streaming mode
can feed one frame with the attention states of earlier ones.

Relative models predict relative disparity (larger = nearer), metric models depth in metres;
the two have identical weight names and shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .depth_anything import DepthAnythingConfig, DepthAnythingHead
from .dinov2 import PATCH_SIZE, DinoV2Encoder
from .motion_module import WINDOW, MotionModule

# The official configurations (those of Depth Anything V2), by encoder name.
VIDEO_DEPTH_ANYTHING_SIZES = {
    "vits": dict(embed_dim=384, depth=12, num_heads=6, features=64, out_channels=(48, 96, 192, 384)),
    "vitb": dict(embed_dim=768, depth=12, num_heads=12, features=128, out_channels=(96, 192, 384, 768)),
    "vitl": dict(embed_dim=1024, depth=24, num_heads=16, features=256, out_channels=(256, 512, 1024, 1024)),
}


@dataclass(frozen=True)
class VideoDepthAnythingConfig:
    embed_dim: int
    depth: int
    num_heads: int
    features: int
    out_channels: tuple[int, int, int, int]
    max_frames: int = WINDOW
    use_bn: bool = False

    def image_config(self) -> DepthAnythingConfig:
        """The per-frame part is Depth Anything V2's (same taps, same DPT head)."""
        return DepthAnythingConfig(
            version=2, embed_dim=self.embed_dim, depth=self.depth, num_heads=self.num_heads,
            features=self.features, out_channels=self.out_channels, use_bn=self.use_bn,
        )


class TemporalDepthHead(DepthAnythingHead):
    def __init__(self, cfg: VideoDepthAnythingConfig):
        super().__init__(cfg.image_config())
        oc, f = cfg.out_channels, cfg.features
        self.motion_modules = nn.ModuleList(MotionModule(c, cfg.max_frames) for c in (oc[2], oc[3], f, f))

    def forward(
        self, tokens: Sequence[torch.Tensor], grid_h: int, grid_w: int, frames: int,
        context: Sequence[torch.Tensor] | None = None, micro_batch: int = 4,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """tokens: the four tapped token maps (B*T, N, C). Returns (B*T, 1, h, w) and the motion
        modules' attention states (8 tensors: 4 modules x 2 attention blocks)."""
        levels = []
        for i, x in enumerate(tokens):
            x = x.transpose(1, 2).reshape(x.shape[0], x.shape[-1], grid_h, grid_w)
            levels.append(self.resize_layers[i](self.projects[i](x)))
        per_module = 2
        ctx = (lambda m: None) if context is None else (lambda m: context[m * per_module:(m + 1) * per_module])
        states: list[torch.Tensor] = []

        def temporal(m: int, x: torch.Tensor) -> torch.Tensor:
            out, s = self.motion_modules[m](x, frames, ctx(m))
            states.extend(s)
            return out

        sc = self.scratch
        levels[2] = temporal(0, levels[2])
        levels[3] = temporal(1, levels[3])
        l1, l2, l3, l4 = (getattr(sc, f"layer{i}_rn")(x) for i, x in enumerate(levels, start=1))
        p4 = temporal(2, sc.refinenet4(l4, size=l3.shape[2:]))
        p3 = temporal(3, sc.refinenet3(p4, l3, size=l2.shape[2:]))
        # The finest stages are per frame and by far the largest: run them a few frames at a time.
        outputs = []
        step = max(1, micro_batch)
        for s in range(0, p3.shape[0], step):
            p2 = sc.refinenet2(p3[s:s + step], l2[s:s + step], size=l1.shape[2:])
            out = sc.output_conv1(sc.refinenet1(p2, l1[s:s + step]))
            out = F.interpolate(out, (grid_h * PATCH_SIZE, grid_w * PATCH_SIZE), mode="bilinear", align_corners=True)
            outputs.append(sc.output_conv2(out))
        return torch.cat(outputs), states


class VideoDepthAnything(nn.Module):
    """Input (B, T, 3, H, W) normalised, H and W multiples of 14; output (B, T, H, W) >= 0."""

    def __init__(self, cfg: VideoDepthAnythingConfig):
        super().__init__()
        self.config = cfg
        self.taps = cfg.image_config().tap_layers
        self.pretrained = DinoV2Encoder(cfg.embed_dim, cfg.depth, cfg.num_heads)
        self.head = TemporalDepthHead(cfg)

    def encode(self, x: torch.Tensor, micro_batch: int = 0) -> list[torch.Tensor]:
        """Per-frame encoder features of (N, 3, H, W): four (N, tokens, C) maps."""
        step = micro_batch if micro_batch > 0 else x.shape[0]
        parts = [self.pretrained.intermediate_layers(x[s:s + step], self.taps) for s in range(0, x.shape[0], step)]
        return [torch.cat([p[i] for p in parts]) for i in range(len(self.taps))]

    def decode(
        self, features: Sequence[torch.Tensor], size: tuple[int, int], frames: int,
        context: Sequence[torch.Tensor] | None = None, micro_batch: int = 4,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Depth (B*T, H, W) of `frames`-long clips from their features, and the attention states."""
        grid_h, grid_w = size[0] // PATCH_SIZE, size[1] // PATCH_SIZE
        out, states = self.head(features, grid_h, grid_w, frames, context, micro_batch)
        if tuple(out.shape[-2:]) != tuple(size):
            out = F.interpolate(out, size=tuple(size), mode="bilinear", align_corners=True)
        return F.relu(out).squeeze(1), states

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        flat = x.flatten(0, 1)
        depth, _ = self.decode(self.encode(flat), tuple(flat.shape[-2:]), t)
        return depth.unflatten(0, (b, t))
