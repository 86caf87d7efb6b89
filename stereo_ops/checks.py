"""Input checks shared by every entry point: a bad tensor is refused where it enters, with a
message that names the input and says what to connect instead.

Every check raises TypeError or ValueError whose message starts with the input's name, and
returns the (unchanged) tensor so that it reads as one line at the top of a node.
"""

from __future__ import annotations

import torch


def check_tensor(x, name: str, what: str = "a tensor") -> torch.Tensor:
    """`x` must be a torch.Tensor (a list or an array from a direct call is refused here, not deep
    inside a kernel)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected {what} (torch.Tensor), got {type(x).__name__}")
    return x


def count_non_finite(x: torch.Tensor) -> int:
    """NaN and infinite values in a float tensor, without a mask of its full size: the sum (one
    pass, no copy) is finite unless one is there or the sum overflows; only then are they counted,
    a batch entry at a time."""
    if not x.is_floating_point() or x.numel() == 0 or bool(torch.isfinite(x.sum())):
        return 0
    return sum(int((~torch.isfinite(item)).sum()) for item in (x if x.ndim else x.view(1)))


def check_finite(x: torch.Tensor, name: str) -> torch.Tensor:
    """Refuse NaN and infinite values: they pass through every operation and end as a black file."""
    bad = count_non_finite(x)
    if bad:
        raise ValueError(
            f"{name} contains {bad} NaN or infinite value(s); the node that made it failed "
            "(a VAE or model in half precision overflowing, a division by zero): fix or replace "
            "that input"
        )
    return x


def check_not_empty(x: torch.Tensor, name: str, what: str = "batch") -> torch.Tensor:
    if x.ndim == 0 or x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}); connect a non-empty {what}")
    return x


def check_images(x, name: str = "image") -> torch.Tensor:
    """An IMAGE batch as the host passes it: a finite float tensor (B, H, W, C), B >= 1, C 1..4."""
    check_tensor(x, name, "an IMAGE batch")
    if x.ndim != 4:
        raise ValueError(
            f"{name} must be an IMAGE batch of shape (batch, height, width, channels); got shape "
            f"{tuple(x.shape)}. A single image needs its batch axis (unsqueeze(0))."
        )
    check_not_empty(x, name, "IMAGE batch (at least one image of at least 1x1 pixel)")
    if not 1 <= x.shape[-1] <= 4:
        raise ValueError(
            f"{name} must have 1 to 4 channels last (batch, height, width, channels); got shape "
            f"{tuple(x.shape)}. Channels-first tensors must be permuted."
        )
    if not x.is_floating_point():
        raise ValueError(f"{name} must hold floats in 0..1, got dtype {x.dtype}")
    return check_finite(x, name)


def check_mask(x, name: str = "mask") -> torch.Tensor:
    """A MASK batch (B, H, W); (H, W) and (B, 1, H, W) are taken as one map per image. Finite."""
    check_tensor(x, name, "a MASK")
    if x.ndim == 2:
        x = x.unsqueeze(0)
    elif x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 3:
        raise ValueError(
            f"{name} must be a MASK of shape (batch, height, width); got shape {tuple(x.shape)}. "
            "Convert an IMAGE with Image To Mask or pass it as the image input."
        )
    check_not_empty(x, name, "MASK")
    if not x.is_floating_point():
        x = x.float()
    return check_finite(x, name)
