"""Disparity maps: shape checks, per-sample normalisation and resizing to a latent grid.

A disparity map here is a float tensor of shape (B, H, W) with values in [0, 1], 1 = nearest.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_EPS = 1e-6


def as_disparity_batch(disparity: torch.Tensor, name: str = "disparity") -> torch.Tensor:
    """Return `disparity` as a float (B, H, W) tensor; accepts (H, W), (B, H, W) and (B, 1, H, W)."""
    if not isinstance(disparity, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(disparity).__name__}")
    if disparity.ndim == 2:
        disparity = disparity.unsqueeze(0)
    elif disparity.ndim == 4 and disparity.shape[1] == 1:
        disparity = disparity[:, 0]
    if disparity.ndim != 3:
        raise ValueError(
            f"{name} must have shape (H, W), (B, H, W) or (B, 1, H, W); got {tuple(disparity.shape)}. "
            "Pass a MASK or a single-channel map."
        )
    if disparity.shape[-1] < 1 or disparity.shape[-2] < 1 or disparity.shape[0] < 1:
        raise ValueError(f"{name} is empty: shape {tuple(disparity.shape)}")
    if not disparity.is_floating_point():
        disparity = disparity.float()
    if not torch.isfinite(disparity).all():
        raise ValueError(f"{name} contains NaN or infinite values; clean the map before using it")
    return disparity


# Values within this of [0, 1] count as inside (a map that went through 8-bit or half precision).
_RANGE_SLACK = 1e-3


def check_disparity_range(disparity: torch.Tensor, name: str = "disparity") -> torch.Tensor:
    """Refuse a map with values outside [0, 1] instead of clamping it (a 0..255 map or raw depth
    would lose all its depth); values within a rounding slack are clipped."""
    lo, hi = float(disparity.amin()), float(disparity.amax())
    if lo < -_RANGE_SLACK or hi > 1.0 + _RANGE_SLACK:
        raise ValueError(
            f"{name} has values from {lo:g} to {hi:g}, but a disparity map must lie in 0..1 (0 = far, "
            "1 = near). Pass the map through Stereo Depth to Disparity with normalization 'per image' "
            "(or 'per batch' for video) to rescale it; turn on invert there if near is dark."
        )
    return disparity.clamp(0.0, 1.0)


def normalize_per_sample(disparity: torch.Tensor) -> torch.Tensor:
    """Stretch each map of a (B, H, W) batch to [0, 1]; a flat map becomes all zeros (no parallax)."""
    flat = disparity.flatten(1)
    lo = flat.amin(dim=1).view(-1, 1, 1)
    hi = flat.amax(dim=1).view(-1, 1, 1)
    span = hi - lo
    out = (disparity - lo) / span.clamp_min(_EPS)
    return torch.where(span > _EPS, out, torch.zeros_like(out))


def normalize_whole_batch(disparity: torch.Tensor) -> torch.Tensor:
    """Stretch a (B, H, W) batch to [0, 1] with one min and max for all maps (video: no flicker)."""
    lo, hi = disparity.amin(), disparity.amax()
    span = hi - lo
    if span <= _EPS:
        return torch.zeros_like(disparity)
    return (disparity - lo) / span


def resize_disparity(disparity: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Resize a (B, H, W) map to (B, height, width); antialiased when shrinking to a latent grid."""
    if height < 1 or width < 1:
        raise ValueError(f"target size must be positive, got {height}x{width}")
    if tuple(disparity.shape[-2:]) == (height, width):
        return disparity
    shrinking = height < disparity.shape[-2] or width < disparity.shape[-1]
    out = F.interpolate(
        disparity.unsqueeze(1).float(),
        size=(height, width),
        mode="bilinear",
        align_corners=False,
        antialias=shrinking,
    )
    return out[:, 0].to(disparity.dtype)


def prepare_disparity(
    disparity: torch.Tensor,
    height: int,
    width: int,
    *,
    invert: bool = False,
    normalize: bool = True,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Turn any disparity or depth map into a (B, height, width) map in [0, 1] with near = 1.

    `invert` turns a depth map (near = small) into disparity. With `normalize` each sample is
    stretched to the full [0, 1] range after resizing; otherwise values are only clamped.
    `batch_size` broadcasts a single map to B samples and rejects any other mismatch.
    """
    d = as_disparity_batch(disparity)
    if batch_size is not None and d.shape[0] != batch_size:
        if d.shape[0] != 1:
            raise ValueError(
                f"disparity has {d.shape[0]} maps but {batch_size} are needed; "
                "give one map (used for every image) or one map per image"
            )
        d = d.expand(batch_size, -1, -1)
    d = resize_disparity(d, height, width)
    if normalize:
        # Negating before the stretch inverts while a flat map still maps to zero parallax.
        return normalize_per_sample(-d if invert else d)
    d = d.clamp(0.0, 1.0)
    return 1.0 - d if invert else d
