"""Image preparation for the depth networks and mapping their output back to the image grid.

Sizes follow the official `Resize` transform (keep aspect ratio, round to a multiple of the
patch grid); resampling is torch bicubic, the kernel the official OpenCV INTER_CUBIC also uses.
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import torch
import torch.nn.functional as F

from ..frame_chunks import all_finite

ResizeMethod = Literal["lower_bound", "minimal", "upper_bound"]
MIN_IMAGE_SIDE = 4


def check_image_batch(image: torch.Tensor, name: str = "image") -> torch.Tensor:
    """Validate a ComfyUI IMAGE batch (B, H, W, 3) and return it as float."""
    if not isinstance(image, torch.Tensor):
        raise ValueError(f"{name} must be an IMAGE tensor, got {type(image).__name__}")
    if image.ndim == 3:
        image = image.unsqueeze(0)
    if image.ndim != 4:
        raise ValueError(f"{name} must have shape (B, H, W, C); got {tuple(image.shape)}")
    b, h, w, c = image.shape
    if c != 3:
        what = {1: "grayscale (1 channel)", 4: "RGBA (4 channels)"}.get(c, f"{c} channels")
        raise ValueError(
            f"{name} is {what}; depth estimation needs an RGB image with 3 channels. "
            "Convert it first (drop the alpha channel, or repeat a gray channel three times)."
        )
    if b < 1 or min(h, w) < MIN_IMAGE_SIDE:
        raise ValueError(
            f"{name} is {w}x{h} pixels (batch {b}); depth estimation needs at least "
            f"{MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} pixels and one image."
        )
    if not image.is_floating_point():
        image = image.float()
    if not all_finite(image):
        raise ValueError(f"{name} contains NaN or infinite values")
    return image


def _to_multiple(x: float, multiple: int, min_val: int = 0) -> int:
    y = round(x / multiple) * multiple  # round half to even, as numpy's round in the official code
    if y < min_val:
        y = math.ceil(x / multiple) * multiple
    return int(y)


def _nearest_multiple(x: int, multiple: int) -> int:
    down = (x // multiple) * multiple
    up = down + multiple
    return max(multiple, up if up - x <= x - down else down)


def network_size(height: int, width: int, target: int, multiple: int, method: ResizeMethod) -> tuple[int, int]:
    """The (height, width) the network sees for an image of `height` x `width`.

    lower_bound (Depth Anything): the shorter side reaches `target`; minimal (MiDaS): the scale
    closer to 1 of the two that would fit each side to `target`; upper_bound (Depth Anything 3):
    the longer side reaches `target`, then each side goes to its nearest multiple (ties up).
    """
    if method == "upper_bound":
        scale = target / max(height, width)
        h, w = (height, width) if max(height, width) == target else (round(height * scale), round(width * scale))
        return _nearest_multiple(h, multiple), _nearest_multiple(w, multiple)
    scale_h, scale_w = target / height, target / width
    if method == "lower_bound":
        scale = max(scale_h, scale_w)
        return _to_multiple(scale * height, multiple, target), _to_multiple(scale * width, multiple, target)
    scale = scale_w if abs(1 - scale_w) < abs(1 - scale_h) else scale_h
    return (max(multiple, _to_multiple(scale * height, multiple)), max(multiple, _to_multiple(scale * width, multiple)))


def _area_weights(n_in: int, n_out: int, device, dtype) -> torch.Tensor:
    """(n_out, n_in) box-filter weights: each output pixel is the mean of the input span it covers,
    fractional pixels weighted by their overlap (OpenCV's INTER_AREA when shrinking)."""
    scale = n_in / n_out
    start = torch.arange(n_out, device=device, dtype=torch.float64)[:, None] * scale
    left = torch.arange(n_in, device=device, dtype=torch.float64)[None]
    overlap = (torch.minimum(left + 1, start + scale) - torch.maximum(left, start)).clamp_min(0)
    return (overlap / scale).to(dtype)


def area_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Shrink (B, C, H, W) to `size` by exact area averaging (both sides at most their input)."""
    wh = _area_weights(x.shape[-2], size[0], x.device, x.dtype)
    ww = _area_weights(x.shape[-1], size[1], x.device, x.dtype)
    return torch.einsum("oh,bchw,pw->bcop", wh, x, ww)


def to_network_input(
    image: torch.Tensor, size: tuple[int, int], mean: Sequence[float], std: Sequence[float],
    downscale: str = "bicubic",
) -> torch.Tensor:
    """(B, H, W, 3) in [0, 1] -> normalised (B, 3, h, w) at the network's size.

    Enlarging is bicubic; shrinking is bicubic too, or area averaging with `downscale` "area"
    (Depth Anything 3's official preprocessing)."""
    x = image.permute(0, 3, 1, 2)
    if tuple(x.shape[-2:]) != tuple(size):
        shrink = size[0] <= x.shape[-2] and size[1] <= x.shape[-1]
        if downscale == "area" and shrink:
            x = area_resize(x, size)
        else:
            x = F.interpolate(x, size=size, mode="bicubic", align_corners=False)
    mean_t = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean_t) / std_t


def to_image_grid(prediction: torch.Tensor, height: int, width: int, mode: str) -> torch.Tensor:
    """(B, h, w) network output -> (B, height, width) float32 with the official upsampling."""
    x = prediction.float().unsqueeze(1)
    if mode == "bicubic":
        x = F.interpolate(x, size=(height, width), mode="bicubic", align_corners=False)
    else:
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=True)
    return x[:, 0]
