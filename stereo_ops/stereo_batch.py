"""The stereo batch convention: a batch of 2N holds the N left views, then the N right views.

Pair i is (i, N + i). The same layout is used for latents (B, C, H, W) and images (B, H, W, C).
"""

from __future__ import annotations

import torch


def split_stereo(batch: torch.Tensor, name: str = "stereo") -> tuple[torch.Tensor, torch.Tensor]:
    """Split a stereo batch of 2N into (left N, right N)."""
    n2 = batch.shape[0]
    if n2 == 0 or n2 % 2:
        raise ValueError(
            f"{name} must be a stereo batch of even size (N left views then N right views); "
            f"got a batch of {n2}. Use StereoJoin to build one from separate left and right batches."
        )
    n = n2 // 2
    return batch[:n], batch[n:]


def join_stereo(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Join N left and N right views into one stereo batch of 2N."""
    if left.shape != right.shape:
        raise ValueError(
            f"left {tuple(left.shape)} and right {tuple(right.shape)} must have the same shape "
            "(same count, size and channels); resize or crop one of them first"
        )
    return torch.cat([left, right], dim=0)


def duplicate_for_stereo(batch: torch.Tensor) -> torch.Tensor:
    """An N batch as a stereo batch of 2N whose right views start identical to the left ones."""
    return torch.cat([batch, batch], dim=0)
