"""Temporal smoothing of per-frame maps (video disparity that does not flicker)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .frame_chunks import scene_slices


def check_strength(strength: float) -> None:
    if not 0.0 <= strength < 1.0:
        raise ValueError(f"temporal smoothing must be in [0, 1), got {strength}")


def smooth_forward(maps: torch.Tensor, strength: float, previous: torch.Tensor | None = None) -> torch.Tensor:
    """The forward pass y[t] = s*y[t-1] + (1-s)*x[t] over a chunk of frames, in place.

    `previous` is the last output of the chunk before (None at the start of a scene); the
    returned last frame is the state to pass to the next chunk, so a clip smoothed chunk by chunk
    equals the clip smoothed whole, exactly.
    """
    keep = 1.0 - strength
    for t in range(maps.shape[0]):
        if previous is not None:
            maps[t].mul_(keep).add_(previous, alpha=strength)
        previous = maps[t]
    return previous


def smooth_backward(maps: torch.Tensor, strength: float, following: torch.Tensor | None = None) -> torch.Tensor:
    """The same pass backwards in time, in place; `following` is the first frame of the chunk after."""
    keep = 1.0 - strength
    for t in range(maps.shape[0] - 1, -1, -1):
        if following is not None:
            maps[t].mul_(keep).add_(following, alpha=strength)
        following = maps[t]
    return following


def smooth_over_time(
    maps: torch.Tensor, strength: float, *, inplace: bool = False, starts: Sequence[int] = ()
) -> torch.Tensor:
    """Zero-phase exponential smoothing of a (T, H, W) frame sequence along T.

    A forward pass y[t] = s*y[t-1] + (1-s)*x[t] followed by the same pass backwards, so the result
    lags neither behind nor ahead of the motion (a one-way average would trail moving objects).
    Each output is a convex combination of the inputs: values stay in the inputs' range, and a
    still sequence is unchanged. `strength` 0 is off; 0.5 averages over about 3 frames each way,
    0.9 over about 19 (1 + 2s/(1-s)). Each scene (split at `starts`, the first frames of scenes)
    is smoothed on its own, so nothing blends across a scene cut. Works frame by frame in place,
    so a long clip needs no copy beyond the output (none with `inplace`).
    """
    check_strength(strength)
    if maps.ndim < 1:
        raise ValueError("maps must have a leading frame dimension")
    out = maps if inplace else maps.clone()
    if strength == 0.0 or out.shape[0] < 2:
        return out
    for scene in scene_slices(out.shape[0], starts):
        smooth_forward(out[scene], strength)
        smooth_backward(out[scene], strength)
    return out
