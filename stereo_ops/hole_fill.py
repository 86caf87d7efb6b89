"""Filling the disocclusions of a warped view from its own pixels (one frame at a time).

A disocclusion shows the surface behind the object beside it, so it is filled from its
background side: in the right eye (content moved left) the hole opens on the right of a nearer
object, and each hole pixel takes the first known pixel to its right; in the left eye, to its
left. This is the per-frame fill that the temporal fill (`temporal_fill`) starts from and is
measured against.
"""

from __future__ import annotations

import torch


def background_side_index(known: torch.Tensor, direction: int) -> torch.Tensor:
    """For every pixel of (..., W) rows, the column of the known pixel that fills it: itself when
    known, else the nearest known pixel on its background side (right of it for direction -1,
    the right eye; left for +1), else on the other side; -1 where a row has none."""
    w = known.shape[-1]
    cols = torch.arange(w, device=known.device).expand_as(known)
    big = torch.full_like(cols, w)
    # Nearest known at or after each column, and at or before it.
    after = torch.where(known, cols, big).flip(-1).cummin(-1).values.flip(-1)
    before = torch.where(known, cols, -torch.ones_like(cols)).cummax(-1).values
    if direction < 0:
        return torch.where(after < w, after, before)
    return torch.where(before >= 0, before, torch.where(after < w, after, -torch.ones_like(cols)))


def background_side_fill(
    view: torch.Tensor, holes: torch.Tensor, direction: int = -1, extra: torch.Tensor | None = None
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """`view` (C, H, W) with the pixels of `holes` (H, W) taken from the background side of each
    row (see `background_side_index`); rows with no known pixel stay as they are. With `extra`
    (K, H, W) maps (e.g. the disparity), those are filled alike and returned as well."""
    index = background_side_index(~holes, direction)
    ok = index >= 0
    take = index.clamp_min(0).unsqueeze(0)
    filled = torch.where(ok, view.gather(-1, take.expand_as(view)), view)
    if extra is None:
        return filled
    return filled, torch.where(ok, extra.gather(-1, take.expand_as(extra)), extra)
