"""Disocclusions of a warped video that do not flicker: background carried over time.

A hole of a warped eye shows background that the centre camera did not see in this frame. In
a video it often saw it a few frames earlier or later, before an object moved in front of it or
after it moved away. So each eye keeps a background plate in its own pixels:

* every frame the plate is carried along by the background's own motion (`motion.py`: an affine
  map estimated on the visible far pixels), and takes the frame's visible pixels, except where
  it already holds a farther surface (a near object passing in front does not overwrite the
  background it hides, by the disparity warped along with the image);
* a hole shows the plate where the plate holds a surface that was really seen. Two passes, one
  backwards in time, one forwards, let a hole show background seen before or after it;
* the rest (never seen in the scene) gets the per-frame fill from its background side
  (`hole_fill.py`) once, and that fill is then carried along like a seen background, so it moves
  with the scene instead of being invented again every frame.

State is one plate per eye: the memory does not depend on the clip's length. Scenes (split at
`starts`, the first frames after scene cuts) are filled independently: the plate restarts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .frame_chunks import scene_slices
from .hole_fill import background_side_fill
from .motion import background_motion, invert_affine, warp_affine

# A visible pixel replaces a seen plate pixel unless it is nearer than it by more than this
# (disparity units, 0..1): a surface at about the plate's depth is the same background, seen again.
NEARER = 0.05
_NONE, _INVENTED, _SEEN = 0, 1, 2


@dataclass
class _Plate:
    colour: torch.Tensor  # (C, H, W)
    disparity: torch.Tensor  # (H, W)
    flag: torch.Tensor  # (H, W) uint8: _NONE, _INVENTED, _SEEN
    prev_view: torch.Tensor  # the frame the plate is aligned with, and its known pixels
    prev_known: torch.Tensor


def far_weight(known: torch.Tensor, disparity: torch.Tensor) -> torch.Tensor:
    """The visible pixels in the farther half of the visible disparity: the background to track."""
    if not bool(known.any()):
        return known
    limit = torch.quantile(disparity[known].float()[:100_000], 0.5)
    return known & (disparity <= limit + 1e-4)


def _carry(plate: _Plate, view: torch.Tensor, known: torch.Tensor, disparity: torch.Tensor,
           affine: torch.Tensor | None) -> _Plate:
    """The plate moved into the pixels of `view` by the background motion between the two frames
    (`affine`: from this frame's pixels to the plate's; estimated here when None)."""
    if affine is None:
        affine = background_motion(plate.prev_view, view, far_weight(known, disparity), plate.prev_known)
    have = (plate.flag > _NONE).to(view.dtype)
    seen = (plate.flag == _SEEN).to(view.dtype)
    stack = torch.cat([plate.colour * have, (plate.disparity * have).unsqueeze(0), have.unsqueeze(0), seen.unsqueeze(0)])
    moved = warp_affine(stack.unsqueeze(0), affine)[0]
    c = view.shape[0]
    weight = moved[c + 1]
    good = weight > 0.5
    inv = 1.0 / weight.clamp_min(1e-6)
    flag = torch.where(good & (moved[c + 2] * inv > 0.5), _SEEN, torch.where(good, _INVENTED, _NONE)).to(torch.uint8)
    return _Plate(moved[:c] * inv, moved[c] * inv, flag, plate.prev_view, plate.prev_known)


def _observe(plate: _Plate | None, view: torch.Tensor, known: torch.Tensor, disparity: torch.Tensor,
             affine: torch.Tensor | None = None) -> _Plate:
    """The plate carried to this frame and updated with its visible pixels."""
    if plate is None:
        plate = _Plate(torch.zeros_like(view), torch.zeros_like(disparity),
                       torch.zeros(known.shape, dtype=torch.uint8, device=view.device), view, known)
    else:
        plate = _carry(plate, view, known, disparity, affine)
    take = known & ((plate.flag != _SEEN) | (disparity <= plate.disparity + NEARER))
    plate.colour = torch.where(take, view, plate.colour)
    plate.disparity = torch.where(take, disparity, plate.disparity)
    plate.flag = torch.where(take, _SEEN, plate.flag).to(torch.uint8)
    plate.prev_view, plate.prev_known = view, known
    return plate


FrameSource = Callable[[int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def temporal_fill(
    frame: FrameSource,
    frames: int,
    out: torch.Tensor,
    unseen: torch.Tensor,
    direction: int = -1,
    starts: Sequence[int] = (),
    on_frame: Callable[[], None] | None = None,
    motion: Callable[[int], torch.Tensor] | None = None,
) -> None:
    """Fill the holes of a warped eye over a clip, writing each frame into `out[t]` (C, H, W).

    `frame(t)` gives frame t's warped view (C, H, W), its holes (H, W, bool) and its disparity in
    the eye's own pixels (H, W); it is asked twice per frame, so it may compute them on demand
    (and its view may be `out[t]` itself). `direction` is the way content moved (-1 right eye, +1
    left eye). `unseen` (T, H, W) receives 1 at the hole pixels that no frame of the scene showed
    (filled by invention), 0 elsewhere. Only the holes of `out` are written: visible pixels stay
    exactly as they are. `on_frame` is called after each of the 2T frame steps (progress, interrupts).
    `motion(t)`, when given, is the background motion from frame t's pixels to frame t - 1's
    (`motion.background_motion`), for t > 0 (so that the eyes of a pair can share one estimate);
    otherwise each pass estimates it.
    """
    def step(t: int, towards: int) -> torch.Tensor | None:
        if motion is None:
            return None
        return motion(t) if towards < t else invert_affine(motion(towards))

    for scene in scene_slices(frames, starts):
        plate = None
        # Backwards: what later frames show of each hole, marked in `unseen` for the forward pass.
        for t in range(scene.stop - 1, scene.start - 1, -1):
            view, holes, disparity = frame(t)
            plate = _observe(plate, view, ~holes, disparity, step(t, t + 1) if plate is not None else None)
            later = holes & (plate.disparity <= _background_disparity(disparity, holes, direction) + NEARER) \
                & (plate.flag == _SEEN)
            out[t] = torch.where(later, plate.colour, view)
            unseen[t] = later.to(unseen.dtype)
            if on_frame is not None:
                on_frame()
        plate = None
        for t in range(scene.start, scene.stop):
            view, holes, disparity = frame(t)
            plate, result, invented = forward_step(plate, view, holes, disparity, direction, out[t].to(view.dtype),
                                                   unseen[t] > 0.5, step(t, t - 1) if plate is not None else None)
            out[t] = result
            unseen[t] = invented.to(unseen.dtype)
            if on_frame is not None:
                on_frame()


def forward_step(
    plate: _Plate | None, view: torch.Tensor, holes: torch.Tensor, disparity: torch.Tensor, direction: int,
    base: torch.Tensor | None = None, seen_later: torch.Tensor | None = None, affine: torch.Tensor | None = None,
) -> tuple[_Plate, torch.Tensor, torch.Tensor]:
    """One frame of the forward pass: the plate carried to this frame and updated, the filled view
    and the mask of the hole pixels filled by invention (carried or new).

    `base` is the view with the backward pass's fills (the holes in `seen_later`) already in; a
    stream, which has no backward pass, gives neither and gets the forward-only fill: background
    seen in earlier frames of the shot, else the per-frame fill carried along with the scene."""
    plate = _observe(plate, view, ~holes, disparity, affine)
    base = view if base is None else base
    # A hole shows what lies behind the object beside it: the plate's surface may fill it only
    # if it is no nearer than the hole's background side (not the object itself, which the
    # plate may hold from a frame where the object stood there).
    background = _background_disparity(disparity, holes, direction)
    behind = plate.disparity <= background + NEARER
    seen_before = holes & behind & (plate.flag == _SEEN)
    later = holes & ~seen_before & seen_later if seen_later is not None else torch.zeros_like(holes)
    result = torch.where(seen_before, plate.colour, base)
    carried = holes & ~seen_before & ~later & behind & (plate.flag == _INVENTED)
    result = torch.where(carried, plate.colour, result)
    new = holes & ~(seen_before | later | carried)
    if bool(new.any()):
        result = torch.where(new, background_side_fill(result, new, direction), result)
    # What this frame added to the plate: the background seen later, and the invention.
    added = later | new
    plate.colour = torch.where(added, result, plate.colour)
    plate.disparity = torch.where(added, background, plate.disparity)
    plate.flag = torch.where(later, _SEEN, torch.where(new, _INVENTED, plate.flag)).to(torch.uint8)
    return plate, result, carried | new


def _background_disparity(disparity: torch.Tensor, holes: torch.Tensor, direction: int) -> torch.Tensor:
    """The disparity of each hole's background side (the visible pixels keep their own)."""
    return background_side_fill(disparity.unsqueeze(0), holes, direction)[0]
