"""Eye order from occlusion geometry, not from the sign of the parallax.

Convergence shifts every parallax by the same amount, so the sign says nothing about which image
is the left eye. Occlusions do. Beside a depth edge, a strip of the farther surface is seen by one
eye only: in the left view it lies left of the near object, in the right view right of it. In
both views the strip continues the FARTHER surface. When the eyes are swapped, matching still
finds the same correspondences, but with every parallax negated: what it calls far is really
near, so the strips now continue the surface it calls NEAR, which is physically impossible (a far
surface cannot hide a near one).

A strip is a run of pixels of one row that fail the left-right check, with trusted pixels of
two different parallaxes beyond it on both sides. The run's width must fit the parallax jump
(an occluded strip is as wide as the jump, less what the matching window eats). Each strip votes
by which side's colour it resembles, the farther or the nearer, and the vote over all strips of
both views decides. The sides are read a little away from the strip, beyond the matching
window, where window matching may have spread the near surface's parallax over the far one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# Pixels skipped between a strip and the band read beside it, and the band's width.
SIDE_MARGIN = 3
SIDE_BAND = 4
# Smallest parallax jump (pixels of the matched level) that makes an occlusion worth a vote.
MIN_JUMP = 1.5
# A vote counts when the strip is this much closer (relatively) to one side than to the other.
MIN_PREFERENCE = 0.1
# The decision: at least this many votes, and a mean vote beyond this.
MIN_VOTES = 12
DECISIVE_SCORE = 0.3


@dataclass(frozen=True)
class EyeOrder:
    """`verdict` is "correct", "swapped" or "undetermined"; `score` is the mean vote in [-1, 1]
    (+1: every strip continues the farther surface, as in a correct pair); `votes` counts them."""

    verdict: str
    score: float
    votes: int


def _row_sums(x: np.ndarray) -> np.ndarray:
    """Prefix sums along rows with a leading zero column: sum of [a, b) = s[..., b] - s[..., a]."""
    out = np.zeros(x.shape[:-1] + (x.shape[-1] + 1,), dtype=np.float64)
    np.cumsum(x, axis=-1, out=out[..., 1:])
    return out


def strip_votes(
    occluded: torch.Tensor, trusted: torch.Tensor, parallax: torch.Tensor, rgb: torch.Tensor, far_side: int
) -> np.ndarray:
    """Votes (+1 correct .. -1 swapped) of the occluded strips of one view.

    `occluded`, `trusted` (h, w) bool; `parallax` (h, w), larger = farther as matched; `rgb`
    (3, h, w). `far_side` is where the farther surface must lie for a strip to be an occlusion
    in this view: -1 (left of the strip, the left view) or +1 (right, the right view).
    """
    occ = occluded.numpy()
    h, w = occ.shape
    edges = np.diff(np.pad(occ.astype(np.int8), ((0, 0), (1, 1))), axis=1)
    rows, starts = np.nonzero(edges == 1)
    _, ends = np.nonzero(edges == -1)  # same row-major order: one end per start
    gap, band = SIDE_MARGIN, SIDE_BAND
    keep = (starts - gap - band >= 0) & (ends + gap + band <= w)
    rows, starts, ends = rows[keep], starts[keep], ends[keep]
    if rows.size == 0:
        return np.zeros(0)

    ok = trusted.numpy().astype(np.float64)
    count = _row_sums(ok)
    psum = _row_sums(parallax.numpy() * ok)
    colour = _row_sums(rgb.numpy().astype(np.float64))  # (3, h, w + 1)

    def band_sum(table, a, b):
        return table[..., rows, b] - table[..., rows, a]

    la, lb = starts - gap - band, starts - gap
    ra, rb = ends + gap, ends + gap + band
    n_left, n_right = band_sum(count, la, lb), band_sum(count, ra, rb)
    enough = (n_left >= band - 1) & (n_right >= band - 1)
    p_left = band_sum(psum, la, lb) / np.maximum(n_left, 1)
    p_right = band_sum(psum, ra, rb) / np.maximum(n_right, 1)
    jump = (p_left - p_right) * (-far_side)  # far side's parallax minus near side's
    width = ends - starts
    fits = enough & (jump >= MIN_JUMP) & (width <= jump + 2)

    strip = band_sum(colour, starts, ends) / np.maximum(width, 1)
    left = band_sum(colour, la, lb) / band
    right = band_sum(colour, ra, rb) / band
    d_left = np.abs(strip - left).sum(axis=0)
    d_right = np.abs(strip - right).sum(axis=0)
    d_far, d_near = (d_left, d_right) if far_side < 0 else (d_right, d_left)
    vote = (d_near - d_far) / (d_near + d_far + 1e-6)
    return vote[fits & (np.abs(vote) >= MIN_PREFERENCE)]


def eye_order(
    left_occluded: torch.Tensor,
    left_trusted: torch.Tensor,
    left_parallax: torch.Tensor,
    left_rgb: torch.Tensor,
    right_occluded: torch.Tensor,
    right_trusted: torch.Tensor,
    right_parallax: torch.Tensor,
    right_rgb: torch.Tensor,
) -> EyeOrder:
    """Vote over the occluded strips of both views. Parallax p = x_right - x_left in both (left
    reference and right reference), so larger p is farther in both."""
    votes = np.concatenate([
        strip_votes(left_occluded, left_trusted, left_parallax, left_rgb, far_side=-1),
        strip_votes(right_occluded, right_trusted, right_parallax, right_rgb, far_side=+1),
    ])
    n = int(votes.size)
    score = float(np.mean(np.sign(votes))) if n else 0.0
    if n >= MIN_VOTES and score >= DECISIVE_SCORE:
        verdict = "correct"
    elif n >= MIN_VOTES and score <= -DECISIVE_SCORE:
        verdict = "swapped"
    else:
        verdict = "undetermined"
    return EyeOrder(verdict, score, n)
