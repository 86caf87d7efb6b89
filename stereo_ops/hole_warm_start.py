"""Temporally stable holes on the diffusion path: a frame's right-view holes start from an earlier
frame's result carried to this frame, instead of from fresh noise.

The content the shift uncovers in the right view (background beside a near object) is unknown in
the left view of its own frame, so each frame's fill is the model's own invention; started from
independent noise, it changes from frame to frame (flicker). Started from the earlier frame's
right latent, moved by the frames' motion and noised back to the shift's level with the same
noise, the holes of neighbouring frames begin alike and end alike. The visible pixels are untouched.

Motion between frames is one global translation per frame pair, measured on the input latents
(the encoded frames) by block matching with a median, so that the background decides: it carries
a panning camera's background; for a still camera it is zero.
"""

from __future__ import annotations

import torch


def global_shift(source: torch.Tensor, target: torch.Tensor, max_shift: int = 8) -> tuple[int, int]:
    """The integer (dy, dx), each within +-max_shift, that moves `source` (C, H, W) onto `target`:
    target(y, x) ~ source(y - dy, x - dx). The median over the overlap of the per-pixel difference
    decides, so the background wins over objects that move on their own. (0, 0) for frames
    without structure (an empty latent)."""
    if source.shape != target.shape or source.ndim != 3:
        raise ValueError(f"global_shift needs two (C, H, W) frames of one shape, got {tuple(source.shape)}, {tuple(target.shape)}")
    source, target = source.float(), target.float()
    if float(source.std()) == 0.0 or float(target.std()) == 0.0:
        return 0, 0
    h, w = source.shape[-2:]
    limit_y, limit_x = min(max_shift, h // 2), min(max_shift, w // 2)
    best, best_cost = (0, 0), float("inf")
    for dy in range(-limit_y, limit_y + 1):
        for dx in range(-limit_x, limit_x + 1):
            moved = source[:, max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
            seen = target[:, max(dy, 0):h - max(-dy, 0), max(dx, 0):w - max(-dx, 0)]
            cost = float((moved - seen).abs().mean(dim=0).median())
            # ties go to the smaller motion
            if cost < best_cost - 1e-7 * max(abs(cost), 1.0):
                best, best_cost = (dy, dx), cost
    return best


def carry(frame: torch.Tensor, shift: tuple[int, int]) -> torch.Tensor:
    """`frame` (..., H, W) translated by (dy, dx) whole pixels; what enters from the border is the
    border's nearest pixel."""
    dy, dx = shift
    h, w = frame.shape[-2:]
    rows = (torch.arange(h, device=frame.device) - dy).clamp(0, h - 1)
    cols = (torch.arange(w, device=frame.device) - dx).clamp(0, w - 1)
    return frame.index_select(-2, rows).index_select(-1, cols)


def warm_holes(view: torch.Tensor, holes: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """`view` (N, C, h, w) with its holes (N, h, w) replaced by `start` (N, C, h, w)."""
    return torch.where(holes.unsqueeze(1).to(view.device), start.to(view), view)


def hole_flicker(frames: torch.Tensor, holes: torch.Tensor, shifts: list[tuple[int, int]] | None = None) -> float:
    """Mean absolute frame-to-frame change of `frames` (T, C, H, W) over the pixels that are holes
    (T, H, W) in both frames of a pair, after moving the earlier frame by that pair's motion
    (`shifts[t]` from frame t to t + 1; none: a still camera)."""
    total, count = 0.0, 0
    for t in range(frames.shape[0] - 1):
        shift = (0, 0) if shifts is None else shifts[t]
        earlier, earlier_holes = carry(frames[t], shift), carry(holes[t].float(), shift) > 0.5
        both = (earlier_holes & holes[t + 1]).unsqueeze(0).expand_as(frames[t + 1])
        total += float((frames[t + 1] - earlier).abs()[both].sum())
        count += int(both.sum())
    if count == 0:
        raise ValueError("no pixel is a hole in two consecutive frames")
    return total / count
