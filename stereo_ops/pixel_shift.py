"""Stereo Pixel Shift: forward-warp one view into the other by a disparity map.

Geometry. The right camera sits to the right of the left one, so in the right view every point
appears further left, nearer points more. With D in [0, 1] (1 = nearest), divergence s (percent
of the width) and convergence c, a pixel at column x of the source moves left by

    a(x) = s_px * (D(x) - c),        s_px = s / 100 * width,

which is the reference implementation of StereoDiffusion (Wang et al., CVPRW 2024): it writes
`right[x - trunc(s_px * D(x))] = left[x]`, sweeping so that nearer pixels win where two land on
the same column, and leaves the columns that nothing lands on at zero (the holes). c = 0 puts the
farthest point at the screen plane (the paper); c = 1 puts the nearest point there.

Two modes:
* `integer` reproduces the reference exactly (offset = trunc(a), nearer wins, holes are zero).
* `subpixel` warps with fractional offsets: each pair of neighbouring source pixels spans a
  segment that lands between their mapped positions; targets inside a segment are sampled by
  linear interpolation, segments stretched by more than `_MAX_STRETCH` are disocclusions (holes),
  folded segments are hidden, and where several surfaces cover a target the nearest one wins.
  A 64-column latent then keeps a continuous depth instead of about six levels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

ShiftMode = Literal["integer", "subpixel"]
SHIFT_MODES: tuple[str, ...] = ("integer", "subpixel")

# A segment between two neighbouring source pixels that lands more than this many pixels wide is
# a disocclusion, not a slanted surface: its targets are holes for the model to inpaint.
_MAX_STRETCH = 2.0
# A lone pixel (no usable segment on either side) hides a segment only if it is at least this
# much nearer, so that on smooth surfaces the exact segment sample is preferred.
_POINT_MARGIN = 0.5


@dataclass(frozen=True)
class ShiftResult:
    """A warped view (B, C, H, W) and the boolean map (B, H, W) of the pixels the warp filled."""

    image: torch.Tensor
    filled: torch.Tensor

    @property
    def holes(self) -> torch.Tensor:
        return ~self.filled


@dataclass(frozen=True)
class StereoViews:
    left: ShiftResult
    right: ShiftResult


def max_shift_px(divergence: float, width: int) -> float:
    """The largest shift in pixels for a divergence given in percent of the width."""
    return float(divergence) / 100.0 * int(width)


def displacement(
    disparity: torch.Tensor, divergence: float, convergence: float = 0.0
) -> torch.Tensor:
    """Leftward displacement a(x) in pixels of a (B, H, W) disparity map, in float32."""
    d = disparity.float()
    if convergence != 0.0:
        d = d - float(convergence)
    return d * max_shift_px(divergence, disparity.shape[-1])


def _check_inputs(x: torch.Tensor, shift: torch.Tensor, source_mask: torch.Tensor | None) -> torch.Tensor:
    if x.ndim != 4:
        raise ValueError(f"view must have shape (B, C, H, W), got {tuple(x.shape)}")
    if shift.shape != (x.shape[0], x.shape[2], x.shape[3]):
        raise ValueError(
            f"disparity of shape {tuple(shift.shape)} does not match the view {tuple(x.shape)}; "
            "resize it with prepare_disparity first"
        )
    if source_mask is None:
        return torch.ones(shift.shape, dtype=torch.bool, device=x.device)
    if source_mask.shape != shift.shape:
        raise ValueError(f"source_mask {tuple(source_mask.shape)} must match the disparity {tuple(shift.shape)}")
    return source_mask.to(device=x.device, dtype=torch.bool)


def warp_left_integer(
    x: torch.Tensor, shift: torch.Tensor, source_mask: torch.Tensor | None = None
) -> ShiftResult:
    """Move each pixel left by trunc(shift) columns; nearer (larger shift) pixels win collisions.

    Pixels outside `source_mask` (B, H, W) are not moved anywhere.
    """
    valid = _check_inputs(x, shift, source_mask)
    w = x.shape[-1]
    offset = torch.trunc(shift).long()
    cols = torch.arange(w, device=x.device).expand_as(offset)
    target = cols - offset
    inside = (target >= 0) & (target < w) & valid
    # Two sources land on one column only if the right one moved further, i.e. is nearer:
    # the largest source column per target is the nearest pixel, as in the reference sweep.
    winner = torch.full_like(cols, -1)
    winner.scatter_reduce_(
        -1, target.clamp(0, w - 1), torch.where(inside, cols, -1), reduce="amax", include_self=True
    )
    filled = winner >= 0
    index = winner.clamp_min(0).unsqueeze(1).expand(-1, x.shape[1], -1, -1)
    image = torch.gather(x, -1, index) * filled.unsqueeze(1).to(x.dtype)
    return ShiftResult(image, filled)


def _gather_cols(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return torch.gather(t, -1, index)


def warp_left_subpixel(
    x: torch.Tensor, shift: torch.Tensor, source_mask: torch.Tensor | None = None
) -> ShiftResult:
    """Move each pixel left by a fractional shift with linear resampling and depth ordering.

    Pixels outside `source_mask` (B, H, W) are not moved anywhere.
    """
    valid_src = _check_inputs(x, shift, source_mask)
    b, c, h, w = x.shape
    shift = shift.float()
    cols = torch.arange(w, device=x.device, dtype=torch.float32).expand(b, h, w)
    pos = cols - shift  # where each source pixel lands

    best_key = torch.full((b, h, w), float("-inf"), device=x.device)
    best_u = torch.zeros((b, h, w), device=x.device)
    t = cols
    lo = int(torch.floor(shift.min()).item()) - 2
    hi = int(torch.ceil(shift.max()).item()) + 2
    icols = torch.arange(w, device=x.device).expand(b, h, w)

    # Segments [s, s+1] of the source; the one covering target t starts near s = t + shift.
    # Looping over the few possible offsets keeps every step a whole-image tensor operation.
    if w >= 2:
        for k in range(lo, hi + 1):
            s = icols + k
            valid = (s >= 0) & (s <= w - 2)
            s0 = s.clamp(0, max(w - 2, 0))
            p0 = _gather_cols(pos, s0)
            p1 = _gather_cols(pos, s0 + 1)
            span = p1 - p0
            both = _gather_cols(valid_src, s0) & _gather_cols(valid_src, s0 + 1)
            ok = valid & both & (span > 0) & (span <= _MAX_STRETCH) & (p0 <= t) & (t <= p1)
            frac = ((t - p0) / span.clamp_min(1e-6)).clamp(0.0, 1.0)
            a0 = _gather_cols(shift, s0)
            a1 = _gather_cols(shift, s0 + 1)
            key = a0 + (a1 - a0) * frac
            better = ok & (key > best_key)
            best_key = torch.where(better, key, best_key)
            best_u = torch.where(better, s0.float() + frac, best_u)

    # Lone pixels: a source whose rounded landing column is t, when no segment carries it.
    for k in range(lo, hi + 1):
        s = icols + k
        valid = (s >= 0) & (s <= w - 1)
        s0 = s.clamp(0, w - 1)
        p = _gather_cols(pos, s0)
        key = _gather_cols(shift, s0)
        ok = valid & _gather_cols(valid_src, s0) & (torch.round(p) == t) & (key > best_key + _POINT_MARGIN)
        best_key = torch.where(ok, key, best_key)
        best_u = torch.where(ok, s0.float(), best_u)

    filled = torch.isfinite(best_key)
    i0 = torch.floor(best_u).long().clamp(0, w - 1)
    i1 = (i0 + 1).clamp(max=w - 1)
    frac = (best_u - i0.float()).clamp(0.0, 1.0).unsqueeze(1).to(x.dtype)
    expand = (-1, c, -1, -1)
    v0 = torch.gather(x, -1, i0.unsqueeze(1).expand(*expand))
    v1 = torch.gather(x, -1, i1.unsqueeze(1).expand(*expand))
    image = torch.lerp(v0, v1, frac) * filled.unsqueeze(1).to(x.dtype)
    return ShiftResult(image, filled)


def warp_left(
    x: torch.Tensor,
    shift: torch.Tensor,
    mode: ShiftMode = "integer",
    source_mask: torch.Tensor | None = None,
) -> ShiftResult:
    """Move the content of `x` (B, C, H, W) left by `shift` (B, H, W) pixels (right-eye warp)."""
    if mode == "integer":
        return warp_left_integer(x, shift, source_mask)
    if mode == "subpixel":
        return warp_left_subpixel(x, shift, source_mask)
    raise ValueError(f"unknown shift mode {mode!r}; choose one of {', '.join(SHIFT_MODES)}")


def warp_right(
    x: torch.Tensor,
    shift: torch.Tensor,
    mode: ShiftMode = "integer",
    source_mask: torch.Tensor | None = None,
) -> ShiftResult:
    """Move the content right by `shift` (left-eye warp): the mirror image of `warp_left`."""
    mask = None if source_mask is None else source_mask.flip(-1)
    r = warp_left(x.flip(-1), shift.flip(-1), mode, mask)
    return ShiftResult(r.image.flip(-1), r.filled.flip(-1))


def stereo_pixel_shift(
    left: torch.Tensor,
    disparity: torch.Tensor,
    divergence: float,
    convergence: float = 0.0,
    mode: ShiftMode = "integer",
) -> ShiftResult:
    """The paper's Stereo Pixel Shift: the right view predicted from the left view.

    `left` is (B, C, H, W), `disparity` (B, H, W) in [0, 1] at the same H and W.
    """
    return warp_left(left, displacement(disparity, divergence, convergence), mode)


def stereo_views(
    center: torch.Tensor,
    disparity: torch.Tensor,
    divergence: float,
    convergence: float = 0.0,
    balance: float = 0.0,
    mode: ShiftMode = "integer",
) -> StereoViews:
    """Both eyes from one view: the left eye takes `balance` of the parallax, the right the rest.

    balance 0 keeps `center` as the left eye (the paper); 0.5 splits the parallax evenly, so each
    eye has half the holes.
    """
    if not 0.0 <= balance <= 1.0:
        raise ValueError(f"balance must be in [0, 1], got {balance}")
    a = displacement(disparity, divergence, convergence)
    if balance == 0.0:
        left = ShiftResult(center, torch.ones_like(a, dtype=torch.bool))
    else:
        left = warp_right(center, a * balance, mode)
    right = warp_left(center, a * (1.0 - balance), mode)
    return StereoViews(left, right)
