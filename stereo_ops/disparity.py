"""Disparity maps: shape checks, normalisation, and fitting a map to a latent grid.

Any external map becomes disparity in `depth_map`; a disparity map becomes the grid a sampler
shifts with in `fit_disparity_to_grid` (here), the one place that decides how it shrinks.

A disparity map here is a float tensor of shape (B, H, W) with values in [0, 1], 1 = nearest.
"""

from __future__ import annotations

from typing import Literal

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


def check_disparity_range(
    disparity: torch.Tensor, name: str = "disparity", slack: float = _RANGE_SLACK
) -> torch.Tensor:
    """Refuse a map with values outside [0, 1] instead of clamping it (a 0..255 map or raw depth
    would lose all its depth); values within `slack` of the range are clipped."""
    lo, hi = float(disparity.amin()), float(disparity.amax())
    if lo < -slack or hi > 1.0 + slack:
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


def disparity_batch_of(disparity: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """`as_disparity_batch`, with a single map broadcast to `batch_size` maps (other counts refused)."""
    d = as_disparity_batch(disparity)
    if batch_size is not None and d.shape[0] != batch_size:
        if d.shape[0] != 1:
            raise ValueError(
                f"disparity has {d.shape[0]} maps but {batch_size} are needed; "
                "give one map (used for every image) or one map per image"
            )
        d = d.expand(batch_size, -1, -1)
    return d


# How a map shrinks to the latent grid. An average (bilinear, area) mixes a thin near object with
# the background behind it and lowers its peak: a pole one latent pixel wide keeps only half its
# shift at worst. "max" keeps, in every latent cell, the nearest value the cell covers, so the pole
# keeps its full shift, but it also pulls smooth slopes forward. "edge-aware" (the default) takes the
# nearest value only in cells that straddle an edge and the average elsewhere: full shift on thin
# objects, no bias on slopes (bench/bench_disparity_grid.py measures the four).
GridFit = Literal["bilinear", "area", "max", "edge-aware"]
GRID_FITS: tuple[str, ...] = ("bilinear", "area", "max", "edge-aware")
DEFAULT_GRID_FIT: GridFit = "edge-aware"
# edge-aware: a cell whose values span more than this is an edge and takes its nearest value.
_EDGE_SPAN = 0.1


def shrink_disparity(disparity: torch.Tensor, height: int, width: int, method: GridFit) -> torch.Tensor:
    """Resize a (B, H, W) map to (B, height, width) with one of GRID_FITS (bilinear when growing)."""
    if method not in GRID_FITS:
        raise ValueError(f"grid fit must be one of {', '.join(GRID_FITS)}, got {method!r}")
    shrinking = height < disparity.shape[-2] or width < disparity.shape[-1]
    if method == "bilinear" or not shrinking or tuple(disparity.shape[-2:]) == (height, width):
        return resize_disparity(disparity, height, width)
    d = disparity.unsqueeze(1).float()
    if method == "area":
        out = F.adaptive_avg_pool2d(d, (height, width))
    else:
        near = F.adaptive_max_pool2d(d, (height, width))
        if method == "max":
            out = near
        else:
            far = -F.adaptive_max_pool2d(-d, (height, width))
            out = torch.where(near - far > _EDGE_SPAN, near, F.adaptive_avg_pool2d(d, (height, width)))
    return out[:, 0].to(disparity.dtype)


def fit_disparity_to_grid(
    disparity: torch.Tensor,
    height: int,
    width: int,
    *,
    batch_size: int | None = None,
    method: GridFit = DEFAULT_GRID_FIT,
) -> torch.Tensor:
    """A disparity map (near = 1, any size) as the (B, height, width) map a sampler shifts with.

    Accepts (H, W), (B, H, W) and (B, 1, H, W); `batch_size` broadcasts a single map to B samples
    and rejects any other mismatch. Values are clamped to [0, 1] after resizing.
    """
    d = disparity_batch_of(disparity, batch_size)
    if height < 1 or width < 1:
        raise ValueError(f"target size must be positive, got {height}x{width}")
    return shrink_disparity(d, height, width, method).clamp(0.0, 1.0)


def normalize_in_place(
    disparity: torch.Tensor, per_batch: bool, starts: tuple[int, ...] | list[int] = (), chunk: int | None = None
) -> torch.Tensor:
    """`normalize_per_sample` or `normalize_whole_batch` of a float (B, H, W) batch, in place.

    Per batch, each scene (the batches between `starts`, the first frames of scenes) gets its own
    scale, exactly as if it were a clip of its own; the extremes are found first, then applied a
    chunk of frames at a time, so no temporary is larger than a chunk.
    """
    from .frame_chunks import chunk_length, frame_chunks, min_max, scene_slices

    chunk = chunk or chunk_length(disparity[0].numel())
    if not per_batch:
        for i in range(disparity.shape[0]):
            lo, hi = torch.aminmax(disparity[i])
            span = float(hi - lo)
            if span > _EPS:
                disparity[i].sub_(lo).div_(span)
            else:
                disparity[i].zero_()
        return disparity
    for scene in scene_slices(disparity.shape[0], starts):
        part = disparity[scene]
        lo, hi = min_max(part, chunk)
        span = hi - lo
        for sub in frame_chunks(part.shape[0], chunk):
            if span <= _EPS:
                part[sub].zero_()
            else:
                part[sub].sub_(lo).div_(span)
    return disparity
