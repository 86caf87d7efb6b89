"""A flat stereo pair placed as a floating screen in VR180 (180 x 180 degree equirectangular) views.

Each eye's output pixel is a direction on the front hemisphere: longitude from -90 to +90 degrees
left to right, latitude from +90 to -90 degrees top to bottom. The flat image hangs on the plane at
distance 1 straight ahead, centred, `fov` degrees wide; its height follows its aspect ratio. Every
output pixel looks along its ray, meets that plane, and reads the source there (bilinear); rays that
miss the image see black. Both eyes use the same screen, so the pair's own parallax sets the depth
relative to it, as on a cinema screen.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

MIN_FOV, MAX_FOV = 10.0, 170.0


def check_fov(fov: float, name: str = "fov") -> None:
    if not MIN_FOV <= fov <= MAX_FOV:
        raise ValueError(
            f"{name} must be between {MIN_FOV:g} and {MAX_FOV:g} degrees (the screen's width as an angle); got {fov}"
        )


def auto_eye_size(width: int, fov: float) -> int:
    """Equirect size per eye (square, even) that keeps the source's pixel density at the centre."""
    check_fov(fov)
    size = math.pi * width / (2.0 * math.tan(math.radians(fov) / 2.0))
    return max(2, 2 * round(size / 2))


def equirect_rays(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(longitude, latitude) in radians at the centres of a size x size 180 x 180 equirect."""
    centres = (torch.arange(size, dtype=torch.float64) + 0.5) / size - 0.5  # -0.5 .. 0.5
    lon = centres * math.pi
    lat = -centres * math.pi
    return lon.expand(size, size), lat[:, None].expand(size, size)


@lru_cache(maxsize=8)
def screen_grid(size: int, height: int, width: int, fov: float) -> torch.Tensor:
    """grid_sample coordinates (1, size, size, 2) into a height x width source; outside the source
    they lie beyond [-1, 1], where grid_sample reads zeros."""
    check_fov(fov)
    lon, lat = equirect_rays(size)
    x = torch.cos(lat) * torch.sin(lon)
    y = torch.sin(lat)
    z = torch.cos(lat) * torch.cos(lon)
    half_w = math.tan(math.radians(fov) / 2.0)  # plane units from the centre to the side edge
    half_h = half_w * height / width
    safe_z = z.clamp_min(1e-9)
    gx = (x / safe_z) / half_w
    gy = -(y / safe_z) / half_h  # grid_sample's y grows downwards
    grid = torch.stack([gx, gy], dim=-1)
    grid[z <= 0] = 3.0  # behind the viewer (only at the hemisphere's rim): outside
    return grid.float()[None]


def flat_to_vr180(images: torch.Tensor, fov: float, size: int | None = None) -> torch.Tensor:
    """(B, H, W, C) flat images -> (B, size, size, C) 180 x 180 equirect views, black outside."""
    if images.ndim != 4:
        raise ValueError(f"images must be a batch (B, H, W, C); got shape {tuple(images.shape)}")
    _, h, w, _ = images.shape
    size = auto_eye_size(w, fov) if size is None else size
    if size < 2:
        raise ValueError(f"size must be at least 2 pixels; got {size}")
    grid = screen_grid(size, h, w, float(fov)).to(images.device)
    source = images.movedim(-1, 1)
    out = F.grid_sample(
        source.float(), grid.expand(source.shape[0], -1, -1, -1),
        mode="bilinear", padding_mode="zeros", align_corners=False,
    )
    return out.movedim(1, -1).to(images.dtype)
