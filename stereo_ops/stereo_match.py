"""Dense horizontal matching of a stereo pair, coarse to fine, from its pixels alone.

Parallax here is p = x_right - x_left in pixels: a left pixel at column x shows the same surface
as the right pixel at x + p. p < 0 is crossed (in front of the screen), p > 0 uncrossed.

The method, chosen to be robust on photos and fast on one CPU thread:

* Each eye becomes a grey image normalised to zero mean and unit contrast in a small window, so
  that a brightness or contrast difference between the eyes (exposure, vignetting, a colour
  grade on one eye) changes no cost. Flat areas stay near zero, where every shift costs the same.
* A pyramid of area-downscaled images. The coarsest level (about 128 px wide) searches every
  shift up to `MAX_PARALLAX` of the width and a few rows of vertical offset; the vertical offset
  with the lowest total cost is kept for all levels. Every other level but the finest searches
  every shift of the parallax range found below it, widened, so that thin structures missed at a
  coarse level are found again; the finest level (at most `FINE_WIDTH` wide) refines +-2 pixels
  around the level below, both eyes as reference, with sub-pixel (equiangular) interpolation.
* Costs are box-filtered absolute differences (SAD) of the normalised images.
* A pixel is trusted when the left and right reference agree (left-right check: occlusions and
  mismatches fail it), when its window has contrast, and when its best shift is clearly better
  than any other shift at the level below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# The finest level matched, in pixels of width: parallax is measured to a fraction of a pixel
# there, so at 1024 px the result is accurate to about a quarter of a full-resolution pixel times
# two, far below the 0.25 % of the width that matters for viewing.
FINE_WIDTH = 512
COARSE_WIDTH = 128
# Largest parallax searched, as a fraction of the width, either sign. The paper's setting gives
# 8 %; a pair beyond 20 % cannot be fused anywhere.
MAX_PARALLAX = 0.2
# Largest vertical offset searched, as a fraction of the height (at least 2 coarse rows).
MAX_VERTICAL = 0.03
# Normalisation window radius and aggregation window radius, in pixels of each level.
NORM_RADIUS = 3
AGG_RADIUS = 2
FINE_RADIUS = 2
# Contrast (standard deviation, image values 0..1) below which a window is textureless.
MIN_CONTRAST = 0.012
# Cost of comparing with a column outside the other image (normalised values are ~N(0, 1), so a
# random pair of pixels costs about 1.1).
OUTSIDE_COST = 1.5
# A trusted pixel's best cost must be below this fraction of its best cost at a distinct shift.
UNIQUENESS = 0.92
# Semi-global smoothness penalties, in units of the mean absolute difference of normalised pixels.
SGM_P1 = 0.05
SGM_P2 = 0.3
# A trusted match costs less than this (two unrelated windows cost about 1.1; sensor noise and
# resampling about 0.1 to 0.3).
MAX_COST = 0.5
# Neighbourhood (radius, finest-level pixels) whose extreme coarse answers are tried as well.
HYPOTHESIS_RADIUS = 4
# Left-right check tolerance, in pixels of the finest level.
LR_TOLERANCE = 1.0


@dataclass(frozen=True)
class MatchLevel:
    """One matched level: images and matches at its own size (h, w)."""

    scale: float  # full-resolution pixels per pixel of this level
    left_rgb: torch.Tensor  # (3, h, w)
    right_rgb: torch.Tensor  # (3, h, w), not shifted vertically
    left_norm: torch.Tensor  # (h, w) normalised grey images (see `normalise`)
    right_norm: torch.Tensor  # (h, w), not shifted vertically
    parallax: torch.Tensor  # (h, w) left reference: left x matches right x + p
    parallax_right: torch.Tensor  # (h, w) right reference: right x matches left x - p
    valid: torch.Tensor  # (h, w) bool, trusted left-reference matches
    valid_right: torch.Tensor  # (h, w) bool, trusted right-reference matches
    consistent: torch.Tensor  # (h, w) bool, left-right check passed (left reference)
    consistent_right: torch.Tensor  # (h, w) bool
    textured: torch.Tensor  # (h, w) bool, left window has contrast
    vertical: float  # vertical offset of the right eye in rows of this level (right y = left y + v)


def luma(rgb: torch.Tensor) -> torch.Tensor:
    """Grey (h, w) of an RGB (3, h, w) image."""
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _box_1d(x: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    """Windowed sum along `dim` (-1 or -2) over [i - r, i + r] clipped to the array, by a running
    sum: the cost per pixel does not grow with the window."""
    k = 2 * radius + 1
    pad = (radius + 1, radius) if dim == -1 else (0, 0, radius + 1, radius)
    csum = torch.cumsum(F.pad(x, pad), dim=dim)
    n = csum.shape[dim]
    return csum.narrow(dim, k, n - k) - csum.narrow(dim, 0, n - k)


def _box(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over a (2r+1)^2 window of every channel of x (C, h, w); borders average what exists."""
    h, w = x.shape[-2:]
    ones_h = _box_1d(torch.ones(1, h), radius, -1)[0]
    ones_w = _box_1d(torch.ones(1, w), radius, -1)[0]
    total = _box_1d(_box_1d(x, radius, -1), radius, -2)
    return total.div_(ones_h.view(h, 1) * ones_w.view(1, w))


def local_contrast(grey: torch.Tensor, radius: int = NORM_RADIUS) -> tuple[torch.Tensor, torch.Tensor]:
    """Local mean and standard deviation (h, w) of a grey image."""
    stats = _box(torch.stack([grey, grey * grey]), radius)
    mean = stats[0]
    std = (stats[1] - mean * mean).clamp_min(0.0).sqrt()
    return mean, std


def normalise(grey: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-mean, unit-contrast grey image, and its local contrast."""
    mean, std = local_contrast(grey)
    return (grey - mean) / (std + MIN_CONTRAST), std


def shift_rows(x: torch.Tensor, rows: int) -> torch.Tensor:
    """x (..., h, w) read `rows` rows further down (out[y] = x[y + rows]), edges repeated."""
    if rows == 0:
        return x
    h = x.shape[-2]
    idx = (torch.arange(h) + rows).clamp_(0, h - 1)
    return x.index_select(-2, idx)


def shift_rows_linear(x: torch.Tensor, rows: float) -> torch.Tensor:
    """`shift_rows` by a fractional number of rows, with linear interpolation."""
    low = math.floor(rows)
    frac = rows - low
    out = shift_rows(x, low)
    if frac > 1e-6:
        out = torch.lerp(out, shift_rows(x, low + 1), frac)
    return out


def _fine_vertical(nl: torch.Tensor, nr: torch.Tensor, textured: torch.Tensor, base: torch.Tensor, rows: int) -> float:
    """The vertical offset at the finest level, to a fraction of a row: the coarse offset is only
    known to a coarse row, and a row of error spoils fine texture's matches."""
    weight = textured.float()
    total = weight.sum().clamp_min(1.0)
    costs = []
    for dv in (-1, 0, 1):
        vol = _local_costs(nl, shift_rows(nr, rows + dv), base, 1, AGG_RADIUS, 1)
        costs.append(float((vol.amin(dim=0) * weight).sum() / total))
    best = min(range(3), key=costs.__getitem__)
    if costs[best] >= 0.98 * costs[1]:  # no clear gain: stay (a flat image has equal costs)
        best = 1
    if best != 1:  # the minimum lies a whole row away: move there, no interpolation
        return float(rows + best - 1)
    cm, c0, cp = costs
    curve = cm - 2 * c0 + cp
    return rows + (max(-0.5, min(0.5, 0.5 * (cm - cp) / curve)) if curve > 1e-9 else 0.0)


def _full_costs(nl: torch.Tensor, nr: torch.Tensor, lo: int, hi: int, radius: int) -> torch.Tensor:
    """Aggregated costs (D, h, w) of left reference shifts lo..hi: left x against right x + d."""
    h, w = nl.shape
    vol = torch.full((hi - lo + 1, h, w), OUTSIDE_COST)
    for i, d in enumerate(range(lo, hi + 1)):
        if d >= 0:
            if d < w:
                torch.sub(nl[:, : w - d], nr[:, d:], out=vol[i, :, : w - d]).abs_()
        elif -d < w:
            torch.sub(nl[:, -d:], nr[:, : w + d], out=vol[i, :, -d:]).abs_()
    return _box(vol, radius)


def _right_reference(vol: torch.Tensor, lo: int) -> torch.Tensor:
    """The same costs seen from the right eye: right x against left x - d, i.e. vol[d] at x - d."""
    out = torch.full_like(vol, OUTSIDE_COST * 2)
    w = vol.shape[-1]
    for i in range(vol.shape[0]):
        d = lo + i
        if d >= 0:
            if d < w:
                out[i, :, d:] = vol[i, :, : w - d]
        elif -d < w:
            out[i, :, : w + d] = vol[i, :, -d:]
    return out


def semi_global(vol: torch.Tensor, p1: float = SGM_P1, p2: float = SGM_P2) -> torch.Tensor:
    """Semi-global aggregation (Hirschmueller) of costs (D, h, w) along four paths: rows both ways
    and columns both ways. A shift change of one step costs p1, a larger jump p2, so periodic
    textures and small ambiguous patches follow their surroundings while depth edges stay sharp."""
    total = torch.zeros_like(vol)
    for dim in (2, 1):  # along rows (x), then along columns (y)
        n = vol.shape[dim]
        for order in (range(n), range(n - 1, -1, -1)):
            prev = None
            for i in order:
                cost = vol.select(dim, i)
                if prev is None:
                    cur = cost.clone()
                else:
                    low = prev.amin(0, keepdim=True)
                    best = torch.minimum(prev, low + p2)
                    best[1:] = torch.minimum(best[1:], prev[:-1] + p1)
                    best[:-1] = torch.minimum(best[:-1], prev[1:] + p1)
                    cur = best.sub_(low).add_(cost)
                total.select(dim, i).add_(cur)
                prev = cur
    return total


def _winner(vol: torch.Tensor, lo: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer best shift (h, w) and whether it is unique (clearly better than a distinct shift)."""
    best_cost, best = vol.min(dim=0)
    # Second best at least two shifts away: neighbours of the best are always close to it.
    masked = vol.clone()
    for step in (-1, 0, 1):
        masked.scatter_(0, (best + step).clamp_(0, vol.shape[0] - 1).unsqueeze(0), math.inf)
    unique = best_cost < UNIQUENESS * masked.amin(dim=0)
    return (best + lo).float(), unique


def _best(vol: torch.Tensor, lo: int) -> torch.Tensor:
    """Integer best shift (h, w)."""
    return (vol.argmin(dim=0) + lo).float()


def _upsample(x: torch.Tensor, h: int, w: int, factor: float) -> torch.Tensor:
    """A map (h0, w0) of a coarser level at size (h, w), its values scaled by `factor`."""
    return F.interpolate(x[None, None], size=(h, w), mode="nearest")[0, 0] * factor


def _local_costs(a: torch.Tensor, b: torch.Tensor, base: torch.Tensor, sign: int, radius: int, reach: int):
    """Aggregated costs (2*reach+1, h, w) of a pixel x of `a` against b at x + sign * (base + k)."""
    h, w = a.shape
    cols = torch.arange(w).view(1, w)
    out = torch.empty((2 * reach + 1, h, w))
    for i, k in enumerate(range(-reach, reach + 1)):
        target = cols + sign * (base + k)
        inside = (target >= 0) & (target < w)
        picked = torch.gather(b, 1, target.clamp(0, w - 1))
        diff = (a - picked).abs_()
        out[i] = torch.where(inside, diff, torch.full_like(diff, OUTSIDE_COST))
    return _box(out, radius)


def _refine(vol: torch.Tensor, base: torch.Tensor, reach: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sub-pixel best shift from local costs (equiangular fit, which suits absolute differences),
    and its cost."""
    best_cost, k = vol.min(dim=0)
    km = (k - 1).clamp(0, 2 * reach)
    kp = (k + 1).clamp(0, 2 * reach)
    cm = vol.gather(0, km.unsqueeze(0))[0]
    cp = vol.gather(0, kp.unsqueeze(0))[0]
    interior = (k > 0) & (k < 2 * reach)
    spread = torch.maximum(cm, cp) - best_cost
    frac = torch.where(interior & (spread > 1e-9), 0.5 * (cm - cp) / spread.clamp_min(1e-9), torch.zeros_like(spread))
    return base.float() + (k - reach).float() + frac.clamp(-0.5, 0.5), best_cost


def _max_filter(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Largest value in a (2r+1)^2 window, as two separable passes (far cheaper than one)."""
    k = 2 * radius + 1
    x = F.max_pool2d(x, (1, k), 1, (0, radius))
    return F.max_pool2d(x, (k, 1), 1, (radius, 0))


def _refine_hypotheses(a: torch.Tensor, b: torch.Tensor, base: torch.Tensor, sign: int):
    """Sub-pixel shifts of `a` against `b` near the level below's answer at the pixel, or at the
    largest or smallest answer around it: near depth edges the coarse windows spread one
    surface's shift over its neighbour, and only the neighbour's own shift can undo that."""
    r = HYPOTHESIS_RADIUS
    wide = base.float().unsqueeze(0)
    hi = _max_filter(wide, r)[0].long()
    lo = _max_filter(-wide, r)[0].neg().long()
    best_p, best_cost = _refine(_local_costs(a, b, base, sign, FINE_RADIUS, 2), base, 2)
    for other in (hi, lo):
        p, cost = _refine(_local_costs(a, b, other, sign, FINE_RADIUS, 2), other, 2)
        better = cost < best_cost
        best_p = torch.where(better, p, best_p)
        best_cost = torch.where(better, cost, best_cost)
    return best_p, best_cost


def _lr_consistent(p: torch.Tensor, p_other: torch.Tensor, sign: int) -> torch.Tensor:
    """Whether p (reference eye) agrees with p_other at the matched column (x + sign * p)."""
    h, w = p.shape
    cols = torch.arange(w).view(1, w)
    target = torch.round(cols + sign * p).long()
    inside = (target >= 0) & (target < w)
    other = torch.gather(p_other, 1, target.clamp(0, w - 1))
    return inside & ((p - other).abs() <= LR_TOLERANCE)


def _robust_range(p: torch.Tensor, trusted: torch.Tensor) -> tuple[float, float]:
    """Parallax range (lo, hi) of the trusted pixels, beyond a few stray matches."""
    values = p[trusted] if int(trusted.sum()) >= 16 else p.flatten()
    lo, hi = torch.quantile(values, torch.tensor([0.002, 0.998])).tolist()
    return lo, hi


def pyramid(image: torch.Tensor) -> list[torch.Tensor]:
    """Area-downscaled levels (3, h, w) from the finest matched one (width <= FINE_WIDTH) to the
    coarsest (width <= COARSE_WIDTH), each half the one before."""
    levels = [image]
    while levels[-1].shape[-1] > FINE_WIDTH:
        levels[-1] = F.avg_pool2d(levels[-1].unsqueeze(0), 2, ceil_mode=True)[0]
    while levels[-1].shape[-1] > COARSE_WIDTH and min(levels[-1].shape[-2:]) >= 64:
        levels.append(F.avg_pool2d(levels[-1].unsqueeze(0), 2, ceil_mode=True)[0])
    return levels


def _coarse_search(nl: torch.Tensor, nr: torch.Tensor, textured: torch.Tensor):
    """At the coarsest level: the vertical offset (rows) with the lowest total best cost, then both
    eyes' integer winners and the left winner's uniqueness at that offset."""
    h, w = nl.shape
    reach = max(2, math.ceil(MAX_PARALLAX * w))
    vreach = max(2, math.ceil(MAX_VERTICAL * h))
    weight = textured.float()
    best = None
    # Smallest offsets first, and a larger one must be clearly better: a flat image stays at 0.
    for v in sorted(range(-vreach, vreach + 1), key=abs):
        vol = _full_costs(nl, shift_rows(nr, v), -reach, reach, AGG_RADIUS + 1)
        score = float((vol.amin(dim=0) * weight).sum() / weight.sum().clamp_min(1.0))
        if best is None or score < 0.98 * best[0]:
            best = (score, v, vol)
    _, v, vol = best
    vol = semi_global(vol)
    p, unique = _winner(vol, -reach)
    p_right = _best(_right_reference(vol, -reach), -reach)
    return v, p, p_right, unique


def match_pair(left: torch.Tensor, right: torch.Tensor) -> MatchLevel:
    """Match a pair of RGB images (3, H, W) in 0..1; returns the finest level's matches."""
    lefts, rights = pyramid(left.float()), pyramid(right.float())
    norm_l = [normalise(luma(a)) for a in lefts]
    norm_r = [normalise(luma(b)) for b in rights]
    coarse_h = lefts[-1].shape[-2]

    def rows_at(level: int) -> int:
        return round(v * lefts[level].shape[-2] / coarse_h)

    (nl, std), (nr, _) = norm_l[-1], norm_r[-1]
    v, p, p_right, unique = _coarse_search(nl, nr, std > MIN_CONTRAST)
    # Middle levels: every shift of the range found below, widened for what it missed.
    for level in range(len(lefts) - 2, 0, -1):
        (nl, _), (nr, _) = norm_l[level], norm_r[level]
        w = nl.shape[-1]
        factor = w / p.shape[-1]
        lo, hi = _robust_range(p, unique)
        margin = 0.25 * (hi - lo) + 2
        lo = max(math.floor((lo - margin) * factor), -w + 1)
        hi = min(math.ceil((hi + margin) * factor), w - 1)
        vol = _full_costs(nl, shift_rows(nr, rows_at(level)), lo, hi, AGG_RADIUS)
        p, unique = _winner(vol, lo)
        p_right = _best(_right_reference(vol, lo), lo)

    # Finest level: +-2 around the level below, from both eyes, sub-pixel.
    (nl, std), (nr, std_r) = norm_l[0], norm_r[0]
    h, w = nl.shape
    factor = w / p.shape[-1]
    base_l = torch.round(_upsample(p, h, w, factor)).long()
    v0 = _fine_vertical(nl, nr, std > MIN_CONTRAST, base_l, rows_at(0))
    nr_v, std_r = shift_rows_linear(nr, v0), shift_rows_linear(std_r, v0)
    base_r = torch.round(_upsample(p_right, h, w, factor)).long()
    unique = _upsample(unique.float(), h, w, 1.0) > 0.5
    p, cost = _refine_hypotheses(nl, nr_v, base_l, 1)
    p_right, cost_right = _refine_hypotheses(nr_v, nl, base_r, -1)

    consistent = _lr_consistent(p, p_right, 1)
    consistent_right = _lr_consistent(p_right, p, -1)
    # Near a side edge a pixel may have no partner at all; it still finds a best match there, and
    # the partner's partner can agree by chance, so such bands are not trusted.
    lo, hi = _robust_range(p, consistent)
    cols = torch.arange(w).view(1, w)
    consistent &= (cols + hi < w) & (cols + lo >= 0)
    consistent_right &= (cols - hi >= 0) & (cols - lo < w)
    textured = std > MIN_CONTRAST
    return MatchLevel(
        scale=left.shape[-1] / w,
        left_rgb=lefts[0],
        right_rgb=rights[0],
        left_norm=nl,
        right_norm=nr,
        parallax=p,
        parallax_right=p_right,
        valid=consistent & textured & unique & (cost < MAX_COST),
        valid_right=consistent_right & (std_r > MIN_CONTRAST) & (cost_right < MAX_COST),
        consistent=consistent,
        consistent_right=consistent_right,
        textured=textured,
        vertical=v0,
    )
