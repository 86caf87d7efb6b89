"""Frame batches in chunks: memory that depends on the chunk, not on the clip.

A node that takes a video as one frame batch holds the clip and its result anyway; anything else
it allocates should be bounded by a chunk of frames. These helpers split a batch into chunks,
pick a chunk length from a memory budget, and run the whole-batch checks (finite values, range)
one chunk at a time, so that even a check never makes a temporary the size of the clip.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

# Working memory a chunk may take, as the float32 size of its frames. Per-frame work (warps,
# resizes, blurs) makes several temporaries of this size, so the real peak is a small multiple.
CHUNK_BYTES = 32 << 20


def chunk_length(frame_elements: int, budget_bytes: int | None = None) -> int:
    """Frames per chunk whose float32 copy fits `budget_bytes` (default `CHUNK_BYTES`; at least one frame)."""
    budget = CHUNK_BYTES if budget_bytes is None else budget_bytes
    return max(1, budget // max(1, 4 * int(frame_elements)))


def frame_chunks(frames: int, length: int, starts: Sequence[int] = ()) -> Iterator[slice]:
    """Consecutive slices of at most `length` frames covering range(frames). A chunk never
    crosses one of `starts` (the first frames of scenes), so each scene begins a chunk."""
    if length < 1:
        raise ValueError(f"chunk length must be at least 1, got {length}")
    bounds = sorted({0, frames, *(s for s in starts if 0 < s < frames)})
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        for i in range(lo, hi, length):
            yield slice(i, min(i + length, hi))


def scene_slices(frames: int, starts: Sequence[int] = ()) -> list[slice]:
    """The scenes of a clip of `frames` frames whose scenes begin at `starts` (0 implied)."""
    bounds = sorted({0, frames, *(s for s in starts if 0 < s < frames)})
    return [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]


def all_finite(x: torch.Tensor, length: int | None = None) -> bool:
    """Whether a (B, ...) tensor has no NaN or infinity, checked a chunk of frames at a time."""
    if x.ndim == 0 or not x.is_floating_point():
        return bool(torch.isfinite(x).all()) if x.is_floating_point() else True
    length = length or chunk_length(x[0].numel())
    return all(bool(torch.isfinite(x[part]).all()) for part in frame_chunks(x.shape[0], length))


def min_max(x: torch.Tensor, length: int | None = None) -> tuple[float, float]:
    """The smallest and largest value of a (B, ...) tensor, a chunk of frames at a time."""
    length = length or chunk_length(x[0].numel())
    lo, hi = float("inf"), float("-inf")
    for part in frame_chunks(x.shape[0], length):
        a, b = torch.aminmax(x[part].float() if not x.is_floating_point() else x[part])
        lo, hi = min(lo, float(a)), max(hi, float(b))
    return lo, hi
