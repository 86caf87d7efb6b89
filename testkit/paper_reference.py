"""An independent, deliberately plain restatement of the reference implementation's pixel shift.

Per pixel, in Python loops, as the StereoDiffusion reference code does it: the right view gets
`right[col + int(D * s_px)] = left[col]` with s_px = -divergence / 100 * width, sweeping left to
right so that later (nearer) pixels overwrite earlier ones; untouched pixels stay zero.
Used by the tests as ground truth and by bench/ as the baseline.
"""

from __future__ import annotations

import torch


def reference_right_view(left: torch.Tensor, disparity: torch.Tensor, divergence: float = 8.0) -> torch.Tensor:
    """left (B, C, H, W), disparity (B, H, W) already in [0, 1]."""
    b, c, h, w = left.shape
    out = torch.zeros_like(left)
    s_px = -(divergence / 100.0) * w
    cols = range(w) if s_px < 0 else range(w - 1, -1, -1)
    for bi in range(b):
        for row in range(h):
            for col in cols:
                col_d = col + int(disparity[bi, row, col] * s_px)
                if 0 <= col_d < w:
                    out[bi, :, row, col_d] = left[bi, :, row, col]
    return out
