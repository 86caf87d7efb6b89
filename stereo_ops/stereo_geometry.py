"""One stereo geometry for every stage: the latent shift of the sampler and the full-resolution
warps (Stereo Warp, Stereo Refine) turn a disparity map into the same displacement field.

A geometry is either explicit (divergence and convergence as typed) or derived from a display
target: the largest divergence, with its convergence, that keeps the disparity present within the
display's comfortable parallax budget (`comfort.auto_settings`). The range of the disparity is
read from the map as given, before any resizing, over the whole batch (a video gets one geometry
for all its frames). A sampler and its refine that get the same map and the same target therefore
derive the same settings.

The floating window keeps content that touches the left or right frame edge from coming in front
of the screen there: the crossed part of the displacement (a > 0: the point floats in front) fades
to zero at the two border columns, with a smooth ramp over a band next to each edge; uncrossed
content (behind the screen, seen through the window) is not touched. This is the edge treatment
that 2D-to-3D converters apply by reshaping the depth near the borders (iw3's
--preserve-screen-border), rather than the film practice of masking one eye with black bands,
which would crop the image. The band is wide enough, relative to the largest crossed parallax
the geometry can produce, that the ramp never folds the warp: its slope stays below 1 pixel per
pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .comfort import DISPLAY_PRESETS, Display, ParallaxBudget, auto_settings, disparity_range, parallax_budget
from .pixel_shift import displacement

# The floating window's ramp is at least this fraction of the width on each side.
WINDOW_BAND = 0.05
# ... and at least this many times the largest crossed parallax, so that the smoothstep ramp
# (largest slope 1.5 / band) stays below 1 pixel per pixel: 1.5 / 2 = 0.75.
_WINDOW_BAND_PER_PARALLAX = 2.0


@dataclass(frozen=True)
class DisplayTarget:
    """What a user asks for instead of percentages: comfortable for this display, and whether the
    floating window is on."""

    display: Display
    floating_window: bool = True

    @property
    def budget(self) -> ParallaxBudget:
        return parallax_budget(self.display)


def display_target(preset: str, floating_window: bool = True) -> DisplayTarget:
    if preset not in DISPLAY_PRESETS:
        raise ValueError(f"display: unknown preset {preset!r}; choose one of {', '.join(DISPLAY_PRESETS)}")
    return DisplayTarget(DISPLAY_PRESETS[preset], floating_window)


def window_keep(width: int, band_fraction: float, device=None) -> torch.Tensor:
    """The share (W,) of crossed parallax kept in each column: 0 at the two border columns,
    rising smoothly to 1 at `band_fraction` of the width from each edge."""
    cols = torch.arange(width, device=device, dtype=torch.float32)
    from_edge = torch.minimum(cols, (width - 1) - cols)
    t = (from_edge / max(band_fraction * width, 1e-6)).clamp(0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def floating_window(shift: torch.Tensor, band_fraction: float = WINDOW_BAND) -> torch.Tensor:
    """The displacement `shift` (..., W) (a > 0 crossed) with its crossed part faded to zero at the
    left and right border columns."""
    keep = window_keep(shift.shape[-1], band_fraction, shift.device).to(shift.dtype)
    return torch.where(shift > 0, shift * keep, shift)


@dataclass(frozen=True)
class StereoGeometry:
    """Divergence (% of the width), convergence (the disparity at the screen plane) and whether the
    floating window is on: everything that turns a disparity map into a displacement field."""

    divergence: float
    convergence: float = 0.0
    floating_window: bool = False

    @property
    def window_band(self) -> float:
        """The floating window's band as a fraction of the width (a property of the geometry, not
        of the grid, so that the latent and the full-resolution warp fade alike)."""
        largest_crossed = self.divergence / 100.0 * max(0.0, 1.0 - self.convergence)
        return max(WINDOW_BAND, _WINDOW_BAND_PER_PARALLAX * largest_crossed)

    @property
    def moves(self) -> bool:
        return self.divergence != 0.0

    def displacement(self, disparity: torch.Tensor) -> torch.Tensor:
        """The leftward displacement a (B, H, W) in pixels of the right eye for a (B, H, W) map."""
        a = displacement(disparity, self.divergence, self.convergence)
        if self.floating_window and self.moves:
            a = floating_window(a, self.window_band)
        return a

    def describe(self) -> str:
        window = ", floating window" if self.floating_window else ""
        return f"divergence {self.divergence:.3f} %, convergence {self.convergence:.3f}{window}"


def geometry_for(
    disparity: torch.Tensor | None,
    divergence: float,
    convergence: float,
    target: DisplayTarget | None = None,
) -> StereoGeometry:
    """The geometry for this map: the explicit settings, or, with a display target, the automatic
    ones from the map's robust disparity range (over the whole batch)."""
    if target is None:
        return StereoGeometry(float(divergence), float(convergence), False)
    if disparity is None:
        raise ValueError("display: automatic settings need the disparity map they are computed from")
    lo, hi = disparity_range(disparity)
    auto_divergence, auto_convergence = auto_settings(target.budget, lo, hi)
    return StereoGeometry(auto_divergence, auto_convergence, target.floating_window)
