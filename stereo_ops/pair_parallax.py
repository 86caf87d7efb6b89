"""The horizontal parallax range of a stereo pair, measured from its pixels by block matching.

Parallax here is x_right - x_left of a scene point, as a fraction of the image width: negative
(crossed) content appears in front of the screen, zero on it, positive (uncrossed) behind it.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

MATCH_WIDTH = 256  # pixels: the pair is matched at this width at most
SEARCH_FRACTION = 0.1  # largest parallax searched, as a fraction of the width
_WINDOW = 7  # box side of the matching cost
_MIN_TEXTURE = 0.02  # mean |horizontal gradient| (0..1 grey) for a pixel to vote
_DISTINCT = 0.4  # a vote counts when its best cost is below this fraction of the median cost
_MIN_VOTES = 0.01  # fraction of pixels that must vote for a measurement


def _grey(image: Image.Image, width: int, height: int) -> np.ndarray:
    return np.asarray(image.convert("L").resize((width, height), Image.Resampling.BOX), dtype=np.float32) / 255.0


def _box_mean(x: np.ndarray, size: int) -> np.ndarray:
    pad = size // 2
    padded = np.pad(x, pad, mode="edge")
    c = np.cumsum(np.cumsum(np.pad(padded, ((1, 0), (1, 0))), axis=0), axis=1)
    h, w = x.shape
    return (c[size:size + h, size:size + w] - c[:h, size:size + w] - c[size:size + h, :w] + c[:h, :w]) / (size * size)


def _box_sum(x: np.ndarray, size: int) -> np.ndarray:
    """Sum over a size x size box, zero outside the image."""
    pad = size // 2
    c = np.cumsum(np.cumsum(np.pad(x, ((pad + 1, pad), (pad + 1, pad))), axis=0), axis=1)
    h, w = x.shape
    return c[size:size + h, size:size + w] - c[:h, size:size + w] - c[size:size + h, :w] + c[:h, :w]


def _median_of_votes(best: np.ndarray, votes: np.ndarray, n_shifts: int, size: int = 5) -> np.ndarray:
    """Median shift index of the votes around each pixel (by counting, the shifts being few):
    single mismatches do not survive it. Only meaningful where `votes` is true."""
    counts = np.cumsum([_box_sum((votes & (best == k)).astype(np.int32), size) for k in range(n_shifts)], axis=0)
    return np.argmax(counts >= (counts[-1] + 1) // 2, axis=0)


def _finite_median(costs: np.ndarray) -> np.ndarray:
    """Median over the first axis of the finite entries (shifts that leave the image are inf)."""
    ordered = np.sort(costs, axis=0)
    middle = (np.isfinite(costs).sum(axis=0) - 1) // 2
    return np.take_along_axis(ordered, np.maximum(middle, 0)[None], axis=0)[0]


def _consistent(costs: np.ndarray, shifts: np.ndarray, best: np.ndarray) -> np.ndarray:
    """Left-right check: the right pixel a left pixel matches must match it back (within a pixel).
    What only one eye sees (occlusions, differing content) fails it instead of voting at random."""
    k_count, h, w = costs.shape
    from_right = np.full_like(costs, np.inf)
    for k, s in enumerate(shifts):
        # cost of the right pixel xr against the left pixel xr - s
        lo, hi = max(0, s), min(w, w + s)
        if hi > lo:
            from_right[k][:, lo:hi] = costs[k][:, lo - s:hi - s]
    best_right = np.argmin(from_right, axis=0)
    x = np.arange(w)[None, :]
    matched = np.clip(x + shifts[best], 0, w - 1)
    back = np.take_along_axis(best_right, matched, axis=1)
    return np.abs(shifts[back] - shifts[best]) <= 1


def horizontal_parallax_range(
    left: Image.Image, right: Image.Image, low: float = 2.0, high: float = 98.0
) -> tuple[float, float] | None:
    """(nearest, farthest) parallax as robust percentiles over textured pixels, in fractions of the
    width; None where too little of the pair has texture to match (flat or blank images)."""
    width, height = left.size
    scale = min(1.0, MATCH_WIDTH / width)
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    a, b = _grey(left, w, h), _grey(right, w, h)
    reach = max(1, int(np.ceil(SEARCH_FRACTION * w)))
    shifts = np.arange(-reach, reach + 1)
    costs = np.full((len(shifts), h, w), np.inf, dtype=np.float32)
    for k, s in enumerate(shifts):
        # the left pixel at x is compared with the right pixel at x + s
        lo, hi = max(0, -s), min(w, w - s)
        if hi <= lo:
            continue
        diff = np.ones((h, w), dtype=np.float32)
        diff[:, lo:hi] = np.abs(a[:, lo:hi] - b[:, lo + s:hi + s])
        costs[k] = _box_mean(diff, _WINDOW)
        costs[k][:, :lo] = np.inf
        costs[k][:, hi:] = np.inf
    best = np.argmin(costs, axis=0)
    best_cost = np.take_along_axis(costs, best[None], axis=0)[0]
    median = _finite_median(costs)
    gradient = np.zeros_like(a)
    gradient[:, 1:] = np.abs(np.diff(a, axis=1))
    texture = _box_mean(gradient, _WINDOW)
    votes = (texture > _MIN_TEXTURE) & (best_cost < _DISTINCT * median) & _consistent(costs, shifts, best)
    if votes.sum() < max(1, _MIN_VOTES * votes.size):
        return None
    parallax = shifts[_median_of_votes(best, votes, len(shifts))][votes] / w
    return float(np.percentile(parallax, low)), float(np.percentile(parallax, high))
