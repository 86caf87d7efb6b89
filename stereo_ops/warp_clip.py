"""The full-resolution warp and refine over a whole clip (B, H, W, C), a chunk of frames at a time.

The results are allocated once at their final size and layout (the stereo batch of 2B frames,
channels last) and filled chunk by chunk, so the memory beyond the clip and the results depends
on the chunk length, not on the number of frames.
"""

from __future__ import annotations

import torch

from .disparity import as_disparity_batch, resize_disparity
from .frame_chunks import all_finite, chunk_length, frame_chunks, min_max
from .stereo_geometry import StereoGeometry
from .warp import dilate_mask, forward_warp, refine_right, stereo_warp


def check_clip_disparity(disparity: torch.Tensor, frames: int, name: str = "disparity") -> torch.Tensor:
    """A (1 or B, h, w) map in [0, 1] for `frames` frames, checked a chunk at a time (not copied)."""
    if isinstance(disparity, torch.Tensor) and disparity.ndim == 4 and disparity.shape[1] == 1:
        disparity = disparity[:, 0]
    if isinstance(disparity, torch.Tensor) and disparity.ndim == 3 and disparity.is_floating_point():
        if not all_finite(disparity):
            raise ValueError(f"{name} contains NaN or infinite values; clean the map before using it")
        d = disparity
    else:
        d = as_disparity_batch(disparity, name)
    if d.shape[0] not in (1, frames):
        raise ValueError(
            f"{name} has {d.shape[0]} maps for {frames} images; give one map (used for every image) "
            "or one map per image"
        )
    lo, hi = min_max(d)
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"{name} has values from {lo:g} to {hi:g}, but a disparity map must lie in 0..1 (0 = far, "
            "1 = near). Pass the map through Stereo Depth to Disparity with normalization 'per image' "
            "(or 'per batch' for video) to rescale it; turn on invert there if near is dark."
        )
    return d


def _maps_for(d: torch.Tensor, part: slice) -> torch.Tensor:
    return d if d.shape[0] == 1 else d[part]


def warp_clip(
    image: torch.Tensor,
    disparity: torch.Tensor,
    divergence: float,
    convergence: float = 0.0,
    balance: float = 0.0,
    grow_holes: int = 0,
    chunk: int | None = None,
    floating_window: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stereo Warp of frames (B, H, W, C): the stereo batch (2B, H, W, C) and its holes (2B, H, W)
    as float 0/1, grown by `grow_holes` pixels. Chunked or whole, the result is the same."""
    if image.ndim != 4:
        raise ValueError(f"image must have shape (B, H, W, C), got {tuple(image.shape)}")
    b, h, w, c = image.shape
    d = check_clip_disparity(disparity, b)
    chunk = chunk or chunk_length(h * w * (c + 8))
    stereo = torch.empty((2 * b, h, w, c), dtype=image.dtype, device=image.device)
    holes = torch.empty((2 * b, h, w), dtype=torch.float32, device=image.device)
    for part in frame_chunks(b, chunk):
        views = stereo_warp(
            image[part].permute(0, 3, 1, 2), _maps_for(d, part), divergence, convergence, balance, floating_window
        )
        right = slice(b + part.start, b + part.stop)
        stereo[part] = views.left.image.permute(0, 2, 3, 1)
        stereo[right] = views.right.image.permute(0, 2, 3, 1)
        holes[part] = dilate_mask(views.left.holes, grow_holes)
        holes[right] = dilate_mask(views.right.holes, grow_holes)
    return stereo, holes


def refine_clip(
    left: torch.Tensor,
    right: torch.Tensor,
    disparity: torch.Tensor,
    divergence: float,
    convergence: float = 0.0,
    balance: float = 0.0,
    feather: int = 4,
    chunk: int | None = None,
    floating_window: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stereo Refine of N pairs (N, H, W, C): the stereo batch (2N, H, W, C) with refined right
    eyes, and the holes (N, H, W) as float 0/1."""
    if left.shape != right.shape or left.ndim != 4:
        raise ValueError(f"left {tuple(left.shape)} and right {tuple(right.shape)} must be equal (N, H, W, C) batches")
    n, h, w, c = left.shape
    d = check_clip_disparity(disparity, n)
    chunk = chunk or chunk_length(h * w * (c + 8))
    stereo = torch.empty((2 * n, h, w, c), dtype=left.dtype, device=left.device)
    holes = torch.empty((n, h, w), dtype=torch.float32, device=left.device)
    stereo[:n] = left
    for part in frame_chunks(n, chunk):
        refined, hole = refine_right(
            left[part].permute(0, 3, 1, 2), right[part].permute(0, 3, 1, 2), _maps_for(d, part),
            divergence, convergence, balance, feather, floating_window,
        )
        stereo[n + part.start:n + part.stop] = refined.permute(0, 2, 3, 1)
        holes[part] = hole
    return stereo, holes


def eye_disparity(
    disparity: torch.Tensor, divergence: float, convergence: float, balance: float, right: bool,
    floating_window: bool = False,
) -> torch.Tensor:
    """The centre disparity (H, W) moved into one eye's pixels, as Stereo Warp moves the image."""
    d = disparity.float().unsqueeze(0)
    a = StereoGeometry(divergence, convergence, floating_window).displacement(d)
    share = (1.0 - balance) if right else balance
    if share == 0.0 or divergence == 0.0:
        return d[0]
    return forward_warp(d.unsqueeze(1), a * share, direction=-1 if right else 1).image[0, 0]


def fill_clip(
    stereo: torch.Tensor,
    holes: torch.Tensor,
    disparity: torch.Tensor,
    divergence: float,
    convergence: float = 0.0,
    balance: float = 0.0,
    starts: tuple[int, ...] | list[int] = (),
    on_frame=None,
    floating_window: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Temporal hole fill (`temporal_fill`) of both eyes of a warped stereo clip (2N, H, W, C)
    with its holes (2N, H, W) and the centre disparity it was warped with. Returns the filled
    stereo batch and the masks (2N, H, W) of the hole pixels no frame showed. `on_frame` is
    called after each frame step (two per frame of each eye that has holes)."""
    from .motion import background_motion
    from .temporal_fill import far_weight, temporal_fill

    n = stereo.shape[0] // 2
    if stereo.ndim != 4 or stereo.shape[0] != 2 * n or n == 0:
        raise ValueError(f"stereo must be a stereo batch (2N, H, W, C), got {tuple(stereo.shape)}")
    if holes.shape != stereo.shape[:3]:
        raise ValueError(f"holes {tuple(holes.shape)} must match the stereo batch {tuple(stereo.shape[:3])}: "
                         "connect the holes output of the Stereo Warp that made it")
    h, w = stereo.shape[1:3]
    d = check_clip_disparity(disparity, n)
    out = stereo.clone()
    unseen = torch.zeros(holes.shape, dtype=torch.float32, device=stereo.device)

    def centre_map(t: int) -> torch.Tensor:
        return resize_disparity(_maps_for(d, slice(t, t + 1))[:1].float(), h, w)[0]

    # The background moves alike in both eyes: one estimate per frame, on the eye with fewer holes.
    track_right = balance > 0.5
    track = slice(n, 2 * n) if track_right else slice(0, n)
    motions: dict[int, torch.Tensor] = {}

    def motion(t: int) -> torch.Tensor:
        if t not in motions:
            known = holes[track][t] < 0.5
            disparity_t = eye_disparity(centre_map(t), divergence, convergence, balance, track_right, floating_window)
            motions[t] = background_motion(stereo[track][t - 1].permute(2, 0, 1), stereo[track][t].permute(2, 0, 1),
                                           far_weight(known, disparity_t), holes[track][t - 1] < 0.5)
        return motions[t]

    for eye, right in ((slice(0, n), False), (slice(n, 2 * n), True)):
        eye_holes = holes[eye]
        if not bool((eye_holes > 0.5).any()):
            continue
        view_of = out[eye]

        def frame(t: int, view_of=view_of, eye_holes=eye_holes, right=right):
            # One frame, channels first and contiguous: the fill's many per-pixel selections run
            # several times faster than on the stereo batch's channels-last layout.
            return (view_of[t].permute(2, 0, 1).contiguous(), eye_holes[t] > 0.5,
                    eye_disparity(centre_map(t), divergence, convergence, balance, right, floating_window))

        temporal_fill(frame, n, view_of.permute(0, 3, 1, 2), unseen[eye], -1 if right else 1, starts, on_frame, motion)
    return out, unseen
