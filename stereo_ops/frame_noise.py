"""Noise per frame: what a frame of a clip gets is fixed by the seed and its frame index alone.

A clip sampled in chunks must give every frame the same noise whatever the chunk size, so no
noise may be drawn for a whole batch at once:

* start noise: frame i gets the i-th draw of one frame's shape from one generator seeded with the
  seed, which is the noise the host gives the latent's image i when it draws per image (the
  `batch_index` path of its noise preparation). When one frame's latent holds a multiple of 16
  values, that is also the noise it draws for a whole batch at once (the CPU generator turns
  uniforms into normals in blocks of 16), so the frames' start noise is the plain sampler's;
* noise added during the steps (ancestral and SDE solvers) and the deblur fill of the holes:
  each frame has a generator of its own, seeded by `frame_seed`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Callable

import torch

# Odd 64-bit constant (2^64 / golden ratio): consecutive frames get seeds far apart, so frame i of
# seed s does not reuse the streams of frame 0 of seed s + i.
_FRAME_STRIDE = 0x9E3779B97F4A7C15
_SEED_RANGE = 1 << 64


def frame_seed(seed: int, index: int) -> int:
    """The seed of frame `index`'s own noise streams; frame 0 keeps `seed` itself."""
    if index < 0:
        raise ValueError(f"frame index must be at least 0, got {index}")
    return (int(seed) + int(index) * _FRAME_STRIDE) % _SEED_RANGE


def _generator(seed: int, device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(int(seed))


class StartNoise:
    """Start noise of a clip, frame by frame, in any order of requests with memory for the frames
    drawn ahead only: frame i is the i-th draw of `frame_shape` from the generator seeded with
    `seed` (on the CPU, as the host draws it)."""

    def __init__(self, seed: int, frame_shape: Sequence[int], dtype: torch.dtype = torch.float32) -> None:
        self.frame_shape = (1, *frame_shape)
        self.dtype = dtype
        self._generator = _generator(seed, "cpu")
        self._drawn = 0
        self._kept: dict[int, torch.Tensor] = {}

    def frames(self, indices: Sequence[int], later: Sequence[int] = ()) -> torch.Tensor:
        """Noise of frames `indices` (k, *frame_shape); `later` are frames still to be asked for,
        kept when they are drawn now on the way."""
        wanted = set(int(i) for i in indices) | set(int(i) for i in later)
        out = []
        for index in (int(i) for i in indices):
            if index < 0:
                raise ValueError(f"frame index must be at least 0, got {index}")
            while self._drawn <= index:
                noise = torch.randn(self.frame_shape, generator=self._generator, dtype=self.dtype)
                if self._drawn in wanted:
                    self._kept[self._drawn] = noise
                self._drawn += 1
            if index not in self._kept:
                raise ValueError(f"frame {index}'s noise was drawn already and not kept; name it in `later`")
            out.append(self._kept[index])
        for index in set(int(i) for i in indices) - set(int(i) for i in later):
            self._kept.pop(index, None)
        return torch.cat(out, dim=0)


def step_noise_sampler(like: torch.Tensor, seed: int, indices: Sequence[int]) -> Callable[..., torch.Tensor]:
    """A noise sampler for the solver's own steps: rows of `like` are frames `indices`, each with
    its own generator on `like`'s device (a per-frame form of the host's default noise sampler)."""
    if len(indices) != like.shape[0]:
        raise ValueError(f"{len(indices)} frame indices for a batch of {like.shape[0]}")
    generators = [_generator(frame_seed(seed, i), like.device) for i in indices]
    shape = (1, *like.shape[1:])

    def sample(sigma=None, sigma_next=None) -> torch.Tensor:
        return torch.cat([
            torch.randn(shape, generator=g, dtype=like.dtype, layout=like.layout, device=like.device)
            for g in generators
        ], dim=0)

    return sample


def frame_noise(seed: int, indices: Sequence[int], shape: Sequence[int], rows_per_frame: int = 1,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(rows_per_frame, k, *shape): one fixed draw per frame from its own generator (on the CPU)."""
    out = []
    for index in indices:
        g = _generator(frame_seed(seed, index), "cpu")
        out.append(torch.randn((rows_per_frame, 1, *shape), generator=g, dtype=dtype))
    return torch.cat(out, dim=1)


def frame_ranges(frames: int, chunk: int) -> list[range]:
    """The frames of a clip in consecutive chunks of at most `chunk` (0: one chunk of all)."""
    if chunk < 0:
        raise ValueError(f"frame_chunk must be 0 (all frames at once) or more, got {chunk}")
    if frames <= 0:
        return []
    size = frames if chunk == 0 else chunk
    return [range(a, min(a + size, frames)) for a in range(0, frames, size)]
