"""Full-resolution forward warp of images by a disparity map, with a z-buffer built by scatter.

Every row is warped on its own. Source pixel x lands at p(x) = x - a(x) (content moving left,
the right eye) or x + a(x) (moving right, the left eye). Each pair of neighbouring source pixels
(s, s + 1) spans a segment of the source surface that lands on [p(s), p(s + 1)]:

* a segment stretched to `MAX_STRETCH` pixels or more is a disocclusion and covers nothing
  (these targets become holes, for a model to inpaint);
* a folded segment (p(s + 1) <= p(s)) faces away from the new eye and covers nothing;
* any other segment covers at most two integer columns, and the source position u in [s, s + 1]
  that lands exactly on each of them follows by linear interpolation.

The z-buffer needs no depth: at a fixed target column j, a surface seen through source position
u has displacement a = u - j (content moving left), so the nearest surface is the one with the
largest u (for content moving right, the smallest). One `scatter_reduce(amax)` of u per
candidate set therefore resolves every collision, in any order, on any device, and leaves in
the buffer exactly the source position to sample. A pixel whose two segments are both rejected
(a one-pixel-wide object) still lands, as a point, on its nearest column.

The colours are then read at u with `grid_sample` along each row. The cost is a few dozen
tensor operations per block of rows, linear in the pixel count and independent of the largest
shift: about 4-5 times a plain `grid_sample` backward warp of the same image (bench/bench_warp.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .disparity import as_disparity_batch, check_disparity_range, resize_disparity
from .pixel_shift import ShiftResult
from .stereo_geometry import StereoGeometry

# A segment landing this many pixels wide or more tears: the surface is not continuous there.
MAX_STRETCH = 2.0
# Buffer value of a column nothing landed on: far outside the image, where sampling reads zero.
_UNSET = -(2.0**24)
# Elements per row block on a CPU (see forward_warp).
_CPU_BLOCK = 1 << 16


# A warped batch (B, C, H, W) and the boolean map (B, H, W) of the pixels it filled: the same
# result type as the latent pixel shift's.
WarpResult = ShiftResult


def source_positions(
    shift: torch.Tensor, direction: int = -1, source_mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """For every target pixel, the fractional source column it shows, and whether it shows any.

    `shift` (R, W) is a stack of rows, in float32 or float64; `direction` -1 moves content left,
    +1 right. `source_mask` (R, W) marks the source pixels that may move at all. Holes get a
    column far outside the image, where linear sampling reads zero.
    """
    u = torch.empty_like(shift)
    filled = torch.empty(shift.shape, device=shift.device, dtype=torch.bool)
    _land_rows(shift, direction, source_mask, u, filled, 1.0, 0.0)
    return u, filled


def _land_rows(
    shift: torch.Tensor,
    direction: int,
    source_mask: torch.Tensor | None,
    out: torch.Tensor,
    filled: torch.Tensor,
    scale: float,
    offset: float,
) -> None:
    """Write scale * u + offset (u: the source column each target shows) into `out` and whether
    anything landed into `filled`, both (R, W) and contiguous."""
    r, w = shift.shape
    dev, dt = shift.device, shift.dtype
    # Targets live in a buffer with two dump columns on each side: column j is entry j + 2.
    # Rejected and out-of-range candidates are routed to the dumps (index 0, or clamped), which
    # is cheaper than masking their values. Scalars are floats: comparing a float tensor with a
    # Python int takes a slower path.
    cols = torch.arange(w, device=dev, dtype=dt)
    q = torch.sub(cols + 2.0, shift) if direction < 0 else torch.add(shift, cols + 2.0)
    q0, q1 = q[:, :-1], q[:, 1:]
    span = q1 - q0
    seg_ok = (span - 0.5 * MAX_STRETCH).abs_() < 0.5 * MAX_STRETCH  # 0 < span < MAX_STRETCH
    if source_mask is not None:
        seg_ok &= source_mask[:, :-1] & source_mask[:, 1:]
    # ceil of the contiguous rows, then the view: on a strided input torch's ceil can be very slow.
    j0 = torch.ceil(q)[:, :-1]
    rest = torch.sub(q1, j0)  # how far the segment reaches past its first covered column
    ok_a = (rest >= 0.0) & seg_ok
    u = torch.sub(j0, q0).div_(span).add_(cols[:-1])  # the source position landing on j0
    t_a = torch.mul(j0, ok_a).clamp_(0.0, w + 3.0).long()

    # amax picks the nearest surface: the largest u moving left, the smallest moving right,
    # which is the largest v = (W - 1) - u.
    if direction > 0:
        u.neg_().add_(w - 1.0)
    best = torch.full((r, w + 4), _UNSET, device=dev, dtype=dt)
    flat = best.view(-1)
    best.scatter_reduce_(1, t_a, u, reduce="amax")
    # A second covered column only where a segment is stretched past one pixel: a few percent of
    # them on smooth surfaces, so they are gathered rather than scattered in full.
    row, col = ((rest >= 1.0) & seg_ok).nonzero(as_tuple=True)
    if row.numel():
        sel = (row, col)
        u_b = u[sel] + span[sel].reciprocal().mul_(1.0 if direction < 0 else -1.0)
        t_b = j0[sel].add_(1.0).clamp_(0.0, w + 3.0).long().add_(row * (w + 4))
        flat.scatter_reduce_(0, t_b, u_b, reduce="amax")

    lone = torch.ones((r, w), device=dev, dtype=torch.bool)
    lone[:, :-1] = ~seg_ok
    lone[:, 1:] &= ~seg_ok
    if source_mask is not None:
        lone &= source_mask
    # Lone pixels are rare (thin objects): handle just those, by their flat buffer index.
    row, col = lone.nonzero(as_tuple=True)
    if row.numel():
        t_p = torch.round(q[row, col]).clamp_(0.0, w + 3.0).long().add_(row * (w + 4))
        v = col.to(dt) if direction < 0 else (w - 1.0) - col.to(dt)
        flat.scatter_reduce_(0, t_p, v, reduce="amax")

    found = best[:, 2 : w + 2]
    torch.ge(found, 0.0, out=filled)
    # Unset columns hold _UNSET, which lands far outside the image: sampling there reads zero.
    if direction < 0:
        torch.mul(found, scale, out=out).add_(offset)
    else:  # found is v = (W - 1) - u
        torch.mul(found, -scale, out=out).add_((w - 1.0) * scale + offset)


def sample_rows(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of every row of `x` (B, C, H, W, any strides) at the columns of
    `grid` (B * H, 1, W, 2), in grid_sample's coordinates (align_corners, y = 0).

    Returns (B, C, H, W) stored as (B, H, C, W): grid_sample writes it that way, and the caller
    decides which layout to copy it into.
    """
    b, c, h, w = x.shape
    outs = []
    for i in range(b):
        # Each row is a one-pixel-high image, so the vertical coordinate is exact.
        rows = x[i].permute(1, 0, 2).unsqueeze(2)  # (H, C, 1, W)
        g = grid[i * h : (i + 1) * h]
        outs.append(F.grid_sample(rows, g, mode="bilinear", padding_mode="zeros", align_corners=True))
    out = outs[0].unsqueeze(0) if b == 1 else torch.stack(outs)
    return out.view(b, h, c, w).permute(0, 2, 1, 3)


def forward_warp(
    x: torch.Tensor,
    shift: torch.Tensor,
    direction: int = -1,
    source_mask: torch.Tensor | None = None,
) -> WarpResult:
    """Move every pixel of `x` (B, C, H, W) horizontally by `shift` (B, H, W) pixels.

    direction -1 moves content left (the right eye), +1 right (the left eye). Where surfaces
    collide the larger shift (the nearer one) wins; targets nothing lands on are zero and not
    `filled`. Pixels outside `source_mask` (B, H, W) move nowhere. Positions are computed in
    float32 (float64 for float64 input) whatever the dtype of `x`; the result has x's dtype.
    """
    if x.ndim != 4:
        raise ValueError(f"image must have shape (B, C, H, W), got {tuple(x.shape)}")
    b, c, h, w = x.shape
    if shift.shape != (b, h, w):
        raise ValueError(f"shift {tuple(shift.shape)} does not match the image {tuple(x.shape)}")
    if direction not in (-1, 1):
        raise ValueError(f"direction must be -1 (left) or +1 (right), got {direction}")
    work = torch.float64 if x.dtype == torch.float64 else torch.float32
    a = shift.to(device=x.device, dtype=work).reshape(b * h, w)
    mask = None
    if source_mask is not None:
        if source_mask.shape != shift.shape:
            raise ValueError(f"source_mask {tuple(source_mask.shape)} must match the shift {tuple(shift.shape)}")
        mask = source_mask.to(device=x.device, dtype=torch.bool).reshape(b * h, w)

    if w < 2:  # one column: a pixel stays if it lands on it; grid_sample cannot leave it empty
        filled = (a.abs() < 0.5).view(b, h, w)
        if mask is not None:
            filled &= mask.view(b, h, w)
        return WarpResult(x * filled.unsqueeze(1).to(x.dtype), filled)
    # grid_sample's grid, stored as two planes (x, then y = 0) so that each is written contiguously.
    planes = torch.empty((2, b * h, 1, w), device=x.device, dtype=work)
    planes[1].zero_()
    filled = torch.empty((b * h, w), device=x.device, dtype=torch.bool)
    gx = planes[0, :, 0]
    scale = 2.0 / (w - 1)
    if x.device.type != "cpu":
        _land_rows(a, direction, mask, gx, filled, scale, -1.0)
    else:
        # On a CPU, blocks of rows whose temporaries stay in cache run faster than whole-image
        # passes, which are bound by memory traffic and page faults. Each block's operations are
        # too small to gain from several threads; forking and joining them for every operation
        # costs more (far more on a loaded machine), so the blocks run on this thread alone.
        rows = max(1, _CPU_BLOCK // w)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for i in range(0, b * h, rows):
                part = slice(i, i + rows)
                block_mask = None if mask is None else mask[part]
                _land_rows(a[part], direction, block_mask, gx[part], filled[part], scale, -1.0)
        finally:
            torch.set_num_threads(threads)
    grid = planes.permute(1, 2, 3, 0)
    image = sample_rows(x.to(work), grid).to(x.dtype)
    return WarpResult(image, filled.view(b, h, w))


def dilate_mask(mask: torch.Tensor, pixels: int) -> torch.Tensor:
    """Grow a boolean or 0..1 (B, H, W) mask by `pixels` in every direction (square neighbourhood)."""
    if pixels <= 0:
        return mask
    k = 2 * int(pixels) + 1
    grown = F.max_pool2d(mask.unsqueeze(1).float(), k, stride=1, padding=int(pixels))[:, 0]
    return grown > 0.5 if mask.dtype == torch.bool else grown.to(mask.dtype)


@dataclass(frozen=True)
class StereoWarpResult:
    """Both eyes warped from one view, each with the map of the pixels it filled."""

    left: WarpResult
    right: WarpResult


def full_resolution_disparity(
    disparity: torch.Tensor, batch: int, height: int, width: int, name: str = "disparity"
) -> torch.Tensor:
    """A (1 or B, h, w) map in [0, 1] as a (B, height, width) float32 map, checked and resized."""
    # No rounding slack here: the divergence is the parallax of disparity 1, exceeded by any value above.
    d = check_disparity_range(as_disparity_batch(disparity, name), name, slack=0.0)
    if d.shape[0] not in (1, batch):
        raise ValueError(
            f"{name} has {d.shape[0]} maps for {batch} images; give one map (used for every image) "
            "or one map per image"
        )
    d = resize_disparity(d.float(), height, width)
    return d.expand(batch, -1, -1) if d.shape[0] != batch else d


def stereo_warp(
    image: torch.Tensor,
    disparity: torch.Tensor,
    divergence: float,
    convergence: float = 0.0,
    balance: float = 0.0,
    floating_window: bool = False,
) -> StereoWarpResult:
    """Both eyes of `image` (B, C, H, W, any strides) at full resolution, with the sampler's geometry.

    `disparity` is (H', W'), (B', H', W') or (B', 1, H', W') in [0, 1] (1 = nearest), B' = 1 or B,
    any size (resized to the image). Content moves left in the right eye by
    a = divergence% * W * (D - convergence); the left eye takes `balance` of it (moving right),
    the right eye the rest. balance 0 keeps the image as the left eye, untouched.
    `floating_window` fades crossed parallax to zero at the left and right borders, exactly as the
    sampler does with the same setting (`stereo_geometry.StereoGeometry`).
    """
    if image.ndim != 4:
        raise ValueError(f"image must have shape (B, C, H, W), got {tuple(image.shape)}")
    if not 0.0 <= balance <= 1.0:
        raise ValueError(f"balance must be in [0, 1], got {balance}")
    b, _, h, w = image.shape
    d = full_resolution_disparity(disparity, b, h, w).to(image.device)
    a = StereoGeometry(divergence, convergence, floating_window).displacement(d)
    keep = torch.ones((b, h, w), dtype=torch.bool, device=image.device)
    if divergence == 0.0:
        same = WarpResult(image, keep)
        return StereoWarpResult(same, same)
    left = WarpResult(image, keep) if balance == 0.0 else forward_warp(image, a * balance, direction=1)
    right = forward_warp(image, a * (1.0 - balance), direction=-1) if balance < 1.0 else WarpResult(image, keep)
    return StereoWarpResult(left, right)


def right_from_left(
    left: torch.Tensor,
    disparity: torch.Tensor,
    divergence: float,
    convergence: float = 0.0,
    balance: float = 0.0,
    floating_window: bool = False,
) -> WarpResult:
    """The right eye predicted from the left eye of a pair made with these settings.

    `disparity` is the map of the view the pair was made from (the centre view). With balance > 0
    the left eye is itself warped, so the map is first carried into the left eye, and the right
    eye is the left moved by the full parallax.
    """
    b, _, h, w = left.shape
    d = full_resolution_disparity(disparity, b, h, w).to(left.device)
    a = StereoGeometry(divergence, convergence, floating_window).displacement(d)
    if divergence == 0.0:
        return WarpResult(left, torch.ones((b, h, w), dtype=torch.bool, device=left.device))
    if balance == 0.0:
        return forward_warp(left, a, direction=-1)
    seen = forward_warp(a.unsqueeze(1), a * balance, direction=1)
    return forward_warp(left, seen.image[:, 0], direction=-1, source_mask=seen.filled)


def feather_into_holes(warped: torch.Tensor, holes: torch.Tensor, fill: torch.Tensor, feather: int) -> torch.Tensor:
    """`warped` (B, C, H, W) outside `holes` (B, H, W), exactly; `fill` inside, blended over
    `feather` pixels from the hole's rim with the warped pixels around it.

    The seam lies on the hole side only, so every pixel that the warp filled (both eyes see it)
    stays exact. A hole pixel takes the mean of the warped pixels in its (2 * feather + 1) window
    for the share of that window they cover, and `fill` for the rest: half and half at the rim,
    `fill` alone from `feather` pixels inside.
    """
    inside = holes.unsqueeze(1)
    if feather <= 0:
        return torch.where(inside, fill, warped)
    k, pad = 2 * int(feather) + 1, int(feather)
    seen = (~inside).to(warped.dtype)
    near = F.avg_pool2d(warped * seen, k, stride=1, padding=pad, count_include_pad=False)
    share = F.avg_pool2d(seen, k, stride=1, padding=pad, count_include_pad=False)
    return torch.where(inside, near + (1.0 - share) * fill, warped)


def refine_right(
    left: torch.Tensor,
    right: torch.Tensor,
    disparity: torch.Tensor,
    divergence: float,
    convergence: float = 0.0,
    balance: float = 0.0,
    feather: int = 4,
    floating_window: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Detail transfer: the right eye made of the full-resolution warp of `left` wherever the left
    eye sees the surface, and of `right` (the diffusion's own eye) in the disocclusions, with a
    seam feathered into the holes only (`feather_into_holes`). Both (B, C, H, W). Returns the new
    right eye and the holes (B, H, W, bool)."""
    if left.shape != right.shape:
        raise ValueError(f"left {tuple(left.shape)} and right {tuple(right.shape)} must have the same shape")
    warped = right_from_left(left, disparity, divergence, convergence, balance, floating_window)
    return feather_into_holes(warped.image.to(right.dtype), warped.holes, right, feather), warped.holes
