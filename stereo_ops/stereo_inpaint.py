"""Inpainting inputs for the right eye: the kept area moves with the stereo shift.

Inpainting keeps part of the source latent (mask 0) and lets the model paint the rest (mask 1).
If the right eye kept the unshifted source, the kept area would sit flat at screen depth while the
painted area had depth. So each eye keeps the stereo shift of the source, with its noise and its
mask shifted alike; the holes the shift opens inside the kept area become area to paint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .pixel_shift import ShiftResult

ViewFn = Callable[[torch.Tensor], ShiftResult]


@dataclass(frozen=True)
class InpaintSource:
    """The source latent, the noise the host adds to it, and the denoise mask (1 = paint), (N, C, H, W)."""

    latent: torch.Tensor
    noise: torch.Tensor
    mask: torch.Tensor


def _broadcast(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return t.to(device=like.device, dtype=like.dtype).expand_as(like)


def shifted_inpaint_source(source: InpaintSource, view: ViewFn) -> InpaintSource:
    """The inpainting inputs of one eye, given that eye's warp `view` of the left image.

    Latent, noise and kept area (1 - mask) go through the same warp; pixels the warp leaves empty
    are painted (mask 1) and keep the unshifted noise.
    """
    latent = source.latent
    noise = _broadcast(source.noise, latent)
    keep = 1.0 - _broadcast(source.mask, latent)
    c = latent.shape[1]
    moved = view(torch.cat([latent, noise, keep], dim=1))
    filled = moved.filled.unsqueeze(1)
    new_latent, new_noise, new_keep = moved.image.split(c, dim=1)
    return InpaintSource(
        latent=torch.where(filled, new_latent, latent),
        noise=torch.where(filled, new_noise, noise),
        mask=1.0 - torch.where(filled, new_keep, torch.zeros_like(new_keep)).clamp(0.0, 1.0),
    )
