"""What every depth network module shares: the architecture record, errors, constants.

A leaf module: it imports no network, so the networks and the detection can all import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from torch import nn

SUPPORTED = (
    "Depth Anything V2 (vits, vitb, vitl): depth_anything_v2_vit{s,b,l}.pth or its .safetensors conversions",
    "Depth Anything V1 (vits, vitb, vitl): depth_anything_vit{s,b,l}14.pth",
    "Depth Anything 3 (DA3MONO-LARGE, DA3METRIC-LARGE, DA3-SMALL, DA3-BASE): model.safetensors",
    "MiDaS v3 DPT-Large-384 (dpt_large_384.pt) and DPT-Hybrid-384 (dpt_hybrid_384.pt)",
    "MiDaS v3.1 DPT-BEiT-L-512 (dpt_beit_large_512.pt)",
    "Video Depth Anything (vits, vitb, vitl; relative and metric): video_depth_anything_vit{s,b,l}.pth, "
    "metric_video_depth_anything_vit{s,b,l}.pth",
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DepthArchitecture:
    """A detected network: how to build it, how to feed it and what it predicts."""

    # depth_anything_v1, depth_anything_v2, da3_mono, da3_metric, da3_any_view, midas_dpt_large,
    # midas_dpt_hybrid, midas_beit_large
    family: str
    name: str  # for people, e.g. "Depth Anything V2 ViT-S"
    config: object
    native_size: int
    multiple: int
    resize_method: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    upsample: str  # how the official code brings the prediction back to the image size
    build: Callable[[object], nn.Module] = field(repr=False, compare=False)
    # "disparity": larger = nearer (relative inverse depth); "depth": distance, larger = farther;
    # "metric_depth": distance in metres once multiplied by focal length (pixels) / metric_focal_divisor
    # (a divisor of 0: the output is in metres already).
    output: str = "disparity"
    metric_focal_divisor: float = 0.0
    # A clip model (Video Depth Anything): it runs on frame sequences in order, not on single images.
    temporal: bool = False
    downscale: str = "bicubic"  # resampling when the network input is smaller: bicubic or area
    unused_prefixes: tuple[str, ...] = ()  # checkpoint parts this single-image network does not run

    def create(self) -> nn.Module:
        return self.build(self.config)


class UnsupportedCheckpoint(ValueError):
    pass


def unsupported_message(reason: str) -> str:
    return reason + ". Supported depth models:\n  - " + "\n  - ".join(SUPPORTED)


def heads_for(dim: int) -> int:
    """Attention heads of the ViTs used here: 64 channels per head (1 head below 64 channels)."""
    heads = max(1, dim // 64)
    return heads if dim % heads == 0 else 1
