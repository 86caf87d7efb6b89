"""Parallax as colour: red in front of the screen (crossed), blue behind it (uncrossed), white at
the screen plane, saturated at +-`scale_pct` of the width. Pixels without a trusted match show
the image itself, grey and dimmed, so that the map reads at a glance where it was measured."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .stereo_match import MatchLevel, luma

CROSSED_RGB = (0.85, 0.1, 0.05)
UNCROSSED_RGB = (0.05, 0.25, 0.9)


def colour_scale(parallax_pct: dict[str, float], budget: tuple[float, float]) -> float:
    """The colour scale, in % of the width: covers the measured range and the budget, rounded up
    to 0.5, 1, 2, 2.5 or 5 times a power of ten so the legend reads simply."""
    reach = max(abs(parallax_pct["min"]), abs(parallax_pct["max"]), budget[0], budget[1], 0.1)
    power = 10.0 ** math.floor(math.log10(reach))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if reach <= step * power + 1e-9:
            return step * power
    return 10.0 * power


def colourise(pct: torch.Tensor, scale_pct: float) -> torch.Tensor:
    """RGB (3, ...) of parallax values in % of the width."""
    t = (pct / scale_pct).clamp(-1.0, 1.0)
    crossed = torch.tensor(CROSSED_RGB).view(3, *([1] * t.ndim))
    uncrossed = torch.tensor(UNCROSSED_RGB).view(3, *([1] * t.ndim))
    target = torch.where(t < 0, crossed, uncrossed)
    a = t.abs().unsqueeze(0)
    return (1.0 - a) + a * target


def heat_map(m: MatchLevel, left: torch.Tensor, scale_pct: float) -> torch.Tensor:
    """Heat map (3, H, W) of the left view's parallax at the size of `left` (3, H, W)."""
    _, height, width = left.shape
    pct = m.parallax * (m.scale / width * 100.0)
    pct = F.interpolate(pct[None, None], size=(height, width), mode="bilinear", align_corners=False)[0, 0]
    trusted = F.interpolate(m.valid.float()[None, None], size=(height, width), mode="nearest")[0, 0] > 0.5
    colour = colourise(pct, scale_pct)
    grey = (0.15 + 0.35 * luma(left.float())).unsqueeze(0).expand(3, -1, -1)
    return torch.where(trusted.unsqueeze(0), colour, grey)


def colour_bar(length: int, scale_pct: float) -> torch.Tensor:
    """A horizontal bar (3, length) from -scale_pct (left end) to +scale_pct (right end)."""
    pct = torch.linspace(-scale_pct, scale_pct, length)
    return colourise(pct, scale_pct)
