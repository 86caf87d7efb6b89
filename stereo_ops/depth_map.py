"""Any map to disparity: external depth or disparity maps (any IMAGE or MASK) to this pack's
disparity, (B, H, W) in [0, 1] with near = 1. Fitting a disparity to a latent grid is
`disparity.fit_disparity_to_grid`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F

from .disparity import (
    DEFAULT_GRID_FIT,
    disparity_batch_of,
    normalize_in_place,
    normalize_per_sample,
    normalize_whole_batch,
    resize_disparity,
    shrink_disparity,
)
from .frame_chunks import all_finite, chunk_length, frame_chunks
from .temporal import check_strength, smooth_over_time

Normalization = Literal["per image", "per batch", "none"]
NORMALIZATIONS: tuple[str, ...] = ("per image", "per batch", "none")
Conversion = Literal["linear", "depth"]
CONVERSIONS: tuple[str, ...] = ("linear", "depth")


def map_to_single_channel(depth: torch.Tensor, name: str = "depth") -> torch.Tensor:
    """IMAGE (B, H, W, C) or MASK (B, H, W) / (H, W) -> float (B, H, W); colour maps are averaged."""
    if not isinstance(depth, torch.Tensor):
        raise ValueError(f"{name} must be an IMAGE or MASK tensor, got {type(depth).__name__}")
    if depth.ndim == 2:
        depth = depth.unsqueeze(0)
    if depth.ndim == 4:
        channels = depth.shape[-1]
        if channels not in (1, 3, 4):
            raise ValueError(f"{name} has {channels} channels; give an IMAGE with 1, 3 or 4 channels or a MASK")
        # An alpha channel is not depth: average the colour channels only.
        depth = depth[..., : min(channels, 3)].float().mean(dim=-1)
    if depth.ndim != 3:
        raise ValueError(f"{name} must be an IMAGE (B, H, W, C) or a MASK (B, H, W); got {tuple(depth.shape)}")
    if depth.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(depth.shape)}")
    depth = depth.float()
    if not torch.isfinite(depth).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return depth


def gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, H, W) maps with edge replication; sigma in pixels."""
    if sigma <= 0:
        return maps
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=maps.dtype, device=maps.device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    out = maps.unsqueeze(1)
    out = F.conv2d(F.pad(out, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    out = F.conv2d(F.pad(out, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
    return out[:, 0]


def reciprocal_disparity(depth: torch.Tensor, normalization: Normalization, near_clip: float) -> torch.Tensor:
    """True disparity of a depth map (near = small): D = fB/Z, up to the scale the normalisation sets.

    Depth below `near_clip` (in the map's own units) counts as `near_clip`, so zeros and the
    nearest noise cannot take the whole range. With Z' = max(Z, near_clip):
      per image / per batch: D = (1/Z' - 1/Z'max) / (1/Z'min - 1/Z'max), extremes of the image or
        of the whole batch (a flat map gives 0);
      none: D = near_clip / Z', an absolute disparity (1 at the near clip) that no frame rescales.
    """
    if near_clip <= 0:
        raise ValueError(f"near_clip must be positive, got {near_clip}")
    inverse = 1.0 / depth.clamp_min(near_clip)
    if normalization == "none":
        return inverse * near_clip
    return normalize_per_sample(inverse) if normalization == "per image" else normalize_whole_batch(inverse)


def linear_disparity(maps: torch.Tensor, invert: bool, normalization: Normalization) -> torch.Tensor:
    """A disparity-like map (near = bright), or with `invert` a depth-like one, stretched to [0, 1].

    "none" only clamps (and inverts as 1 - d); the stretches negate before stretching to invert,
    so a flat map still maps to zero parallax.
    """
    if normalization == "none":
        d = maps.clamp(0.0, 1.0)
        return 1.0 - d if invert else d
    signed = -maps if invert else maps
    return normalize_per_sample(signed) if normalization == "per image" else normalize_whole_batch(signed)


def depth_map_to_disparity(
    depth: torch.Tensor,
    *,
    invert: bool = False,
    normalization: Normalization = "per image",
    gamma: float = 1.0,
    blur_sigma: float = 0.0,
    height: int = 0,
    width: int = 0,
    conversion: Conversion = "linear",
    near_clip: float = 0.01,
    temporal_smoothing: float = 0.0,
    scene_starts: Sequence[int] = (),
) -> torch.Tensor:
    """Any depth/disparity map to a (B, H, W) disparity in [0, 1] with near = 1.

    conversion "linear": the map is disparity-like (near = bright: MiDaS, Depth Anything V1/V2)
    and is stretched as it is, or with `invert` its linear inverse (Zmax - Z) / (Zmax - Zmin).
    conversion "depth": the map is true depth (near = small: Marigold, Depth Anything 3, metric
    depth) and becomes its reciprocal (see `reciprocal_disparity`); `invert` does not apply.
    Normalisation stretches each map (or the batch as a whole, for video) to [0, 1]; "none" only
    clamps. `temporal_smoothing` treats the batch as video frames in order and smooths each
    pixel over time (`smooth_over_time`) after the normalisation. `gamma` > 1 pushes mid depths
    back, < 1 pulls them forward. `height`/`width` 0 keep the map's size. `scene_starts` (the
    first frames of scenes) split a video: each scene is normalised and smoothed on its own.

    The result is the only clip-sized tensor made: it is filled a chunk of frames at a time and
    then normalised, smoothed and blurred in place.
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    if conversion not in CONVERSIONS:
        raise ValueError(f"conversion must be one of {CONVERSIONS}, got {conversion!r}")
    if gamma <= 0:
        raise ValueError(f"gamma must be positive, got {gamma}")
    if blur_sigma < 0:
        raise ValueError(f"blur must be 0 or positive, got {blur_sigma}")
    if height < 0 or width < 0:
        raise ValueError(f"height and width must be 0 (keep) or positive, got {height}x{width}")
    if conversion == "depth" and near_clip <= 0:
        raise ValueError(f"near_clip must be positive, got {near_clip}")
    check_strength(temporal_smoothing)
    depth = check_map_batch(depth)
    b = depth.shape[0]
    out_h, out_w = height or depth.shape[1], width or depth.shape[2]
    out = torch.empty((b, out_h, out_w), dtype=torch.float32, device=depth.device)
    chunk = chunk_length(max(depth[0].numel(), out_h * out_w))
    # Pass 1: each frame as the quantity that is stretched (or clamped), at the output size.
    for part in frame_chunks(b, chunk):
        d = map_to_single_channel(depth[part])
        d = resize_disparity(d, out_h, out_w)
        if conversion == "depth":
            d = 1.0 / d.clamp_min(near_clip)
            if normalization == "none":
                d = d * near_clip
        elif normalization == "none":
            d = d.clamp(0.0, 1.0)
            d = 1.0 - d if invert else d
        elif invert:
            d = -d
        out[part] = d
    # Pass 2: the stretch, with the extremes of each map or of each scene.
    if normalization != "none":
        normalize_in_place(out, normalization == "per batch", scene_starts, chunk)
    smooth_over_time(out, temporal_smoothing, inplace=True, starts=scene_starts)
    for part in frame_chunks(b, chunk):
        d = out[part]
        if gamma != 1.0:
            d.pow_(gamma)
        out[part] = gaussian_blur(d, blur_sigma).clamp_(0.0, 1.0)
    return out


def check_map_batch(depth: torch.Tensor, name: str = "depth") -> torch.Tensor:
    """An IMAGE or MASK map checked as `map_to_single_channel` does, without converting it."""
    if not isinstance(depth, torch.Tensor):
        raise ValueError(f"{name} must be an IMAGE or MASK tensor, got {type(depth).__name__}")
    if depth.ndim == 2:
        depth = depth.unsqueeze(0)
    if depth.ndim == 4 and depth.shape[-1] not in (1, 3, 4):
        raise ValueError(f"{name} has {depth.shape[-1]} channels; give an IMAGE with 1, 3 or 4 channels or a MASK")
    if depth.ndim not in (3, 4):
        raise ValueError(f"{name} must be an IMAGE (B, H, W, C) or a MASK (B, H, W); got {tuple(depth.shape)}")
    if depth.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(depth.shape)}")
    if depth.is_floating_point() and not all_finite(depth):
        raise ValueError(f"{name} contains NaN or infinite values")
    return depth


def prepare_disparity(
    disparity: torch.Tensor,
    height: int,
    width: int,
    *,
    invert: bool = False,
    normalize: bool = True,
    batch_size: int | None = None,
) -> torch.Tensor:
    """A MASK-like map ((H, W), (B, H, W) or (B, 1, H, W)) as a (B, height, width) disparity.

    `invert` turns a depth map (near = small) into disparity. With `normalize` each sample is
    stretched to the full [0, 1] range after resizing; otherwise values are only clamped.
    `batch_size` broadcasts a single map to B samples and rejects any other mismatch. It shrinks
    as the sampler does, so without `invert` and `normalize` it is `fit_disparity_to_grid`.
    """
    if height < 1 or width < 1:
        raise ValueError(f"target size must be positive, got {height}x{width}")
    d = shrink_disparity(disparity_batch_of(disparity, batch_size), height, width, DEFAULT_GRID_FIT)
    return linear_disparity(d, invert, "per image" if normalize else "none")
