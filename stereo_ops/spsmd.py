"""Symmetric Pixel Shift Masking Denoise (SPSMD) and the deblur hole fill.

After the shift, the right latent is denoised freely, and at regular steps the pixels the shift
filled are copied again from the freshly shifted left latent; the holes stay with the model.
"""

from __future__ import annotations

import torch


def _channel_mask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if mask.ndim != 3 or mask.shape != (like.shape[0], like.shape[2], like.shape[3]):
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} does not match the latent {tuple(like.shape)}"
        )
    return mask.unsqueeze(1)


def spsmd_copy(right: torch.Tensor, shifted_left: torch.Tensor, filled: torch.Tensor) -> torch.Tensor:
    """Right latent with its filled pixels taken from the shifted left latent, holes untouched."""
    if right.shape != shifted_left.shape:
        raise ValueError(
            f"right latent {tuple(right.shape)} and shifted left {tuple(shifted_left.shape)} differ"
        )
    return torch.where(_channel_mask(filled, right), shifted_left, right)


def deblur_fill(
    x: torch.Tensor, holes: torch.Tensor, noise: torch.Tensor, sigma: float | torch.Tensor
) -> torch.Tensor:
    """Seed the holes with noise at the current noise level instead of zeros.

    In the sampler's state x = x0 + sigma * eps, a hole filled with zeros reads as a flat grey
    region and comes out blurred; `sigma * noise` gives the model the noise it expects at this
    step, so it paints new detail there. `sigma` is a number or a per-sample tensor (B,).
    """
    if noise.shape != x.shape:
        raise ValueError(f"noise {tuple(noise.shape)} must have the latent's shape {tuple(x.shape)}")
    s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if s.ndim == 1:
        s = s.view(-1, 1, 1, 1)
    return torch.where(_channel_mask(holes, x), noise.to(x.dtype) * s, x)
