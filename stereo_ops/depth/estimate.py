"""Running a depth network over an image batch and turning its output into a disparity map."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..disparity import normalize_per_sample, normalize_whole_batch
from .common import DepthArchitecture
from .preprocess import check_image_batch, network_size, to_image_grid, to_network_input


def predict(
    model: nn.Module,
    arch: DepthArchitecture,
    image: torch.Tensor,
    resolution: int = 0,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    batch_size: int = 1,
    on_batch: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Raw network output (relative disparity, larger = nearer) for a (B, H, W, 3) batch.

    `resolution` is the network's target size (0 = the model's native size). The result is a
    float32 (B, H, W) map on the image's device, at the image's own size.
    """
    image = check_image_batch(image)
    if resolution < 0:
        raise ValueError(f"resolution must be 0 (native) or positive, got {resolution}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    target = resolution or arch.native_size
    if target < arch.multiple:
        raise ValueError(f"resolution {target} is below the network's minimum of {arch.multiple} pixels")
    b, h, w, _ = image.shape
    size = network_size(h, w, target, arch.multiple, arch.resize_method)
    param = next(model.parameters())
    device = torch.device(device) if device is not None else param.device
    dtype = dtype or param.dtype
    outputs = []
    with torch.inference_mode():
        for start in range(0, b, batch_size):
            chunk = image[start:start + batch_size].to(device=device, dtype=torch.float32)
            x = to_network_input(chunk, size, arch.mean, arch.std, arch.downscale).to(dtype)
            pred = model(x)
            outputs.append(to_image_grid(pred, h, w, arch.upsample).to(image.device))
            if on_batch is not None:
                on_batch(chunk.shape[0])
    return torch.cat(outputs, dim=0)


def relative_to_disparity(prediction: torch.Tensor, per_batch: bool = False) -> torch.Tensor:
    """Stretch relative disparity to [0, 1], near = 1: each map alone, or the batch as a whole
    (video frames keep one scale and do not flicker)."""
    return normalize_whole_batch(prediction) if per_batch else normalize_per_sample(prediction)


def estimate_disparity(
    model: nn.Module, arch: DepthArchitecture, image: torch.Tensor, resolution: int = 0,
    per_batch: bool = False, **kwargs,
) -> torch.Tensor:
    """(B, H, W) disparity in [0, 1], near = 1, at the image's size."""
    return relative_to_disparity(predict(model, arch, image, resolution, **kwargs), per_batch)
