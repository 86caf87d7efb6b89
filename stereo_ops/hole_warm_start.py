"""Temporally stable holes on the diffusion path: a frame's right-view holes start from an earlier
frame's result carried to this frame, instead of from fresh noise.

The content the shift uncovers in the right view (background beside a near object) is unknown in
the left view of its own frame, so each frame's fill is the model's own invention; started from
independent noise, it changes from frame to frame (flicker). Started from the earlier frame's
right latent, moved by the frames' motion and noised back to the shift's level with the same
noise, the holes of neighbouring frames begin alike and end alike. The visible pixels are untouched.

Motion between frames is one global translation per frame pair, measured on the input latents
(the encoded frames) by phase correlation: it carries a panning camera's background; for a still
camera it is zero.
"""

from __future__ import annotations

import torch


def global_shift(source: torch.Tensor, target: torch.Tensor, max_shift: int | None = None) -> tuple[int, int]:
    """The integer (dy, dx) that moves `source` (C, H, W) onto `target` by phase correlation:
    target(y, x) ~ source(y - dy, x - dx). (0, 0) for frames without structure (an empty latent)."""
    if source.shape != target.shape or source.ndim != 3:
        raise ValueError(f"global_shift needs two (C, H, W) frames of one shape, got {tuple(source.shape)}, {tuple(target.shape)}")
    a = source.float() - source.float().mean(dim=(-2, -1), keepdim=True)
    b = target.float() - target.float().mean(dim=(-2, -1), keepdim=True)
    if float(a.abs().max()) == 0.0 or float(b.abs().max()) == 0.0:
        return 0, 0
    cross = torch.fft.fft2(b) * torch.fft.fft2(a).conj()
    cross = (cross / cross.abs().clamp_min(1e-12)).sum(dim=0)
    surface = torch.fft.ifft2(cross).real
    h, w = surface.shape
    if max_shift is not None:  # only shifts up to max_shift are credible
        dy = torch.arange(h).view(-1, 1)
        dx = torch.arange(w).view(1, -1)
        dy, dx = torch.minimum(dy, h - dy), torch.minimum(dx, w - dx)
        surface = surface.masked_fill((dy > max_shift) | (dx > max_shift), float("-inf"))
    peak = int(surface.argmax())
    dy, dx = peak // w, peak % w
    return (dy - h if dy > h // 2 else dy), (dx - w if dx > w // 2 else dx)


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
