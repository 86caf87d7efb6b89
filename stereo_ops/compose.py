"""Side-by-side and top-bottom stereo layouts, in plain torch.

Images are (B, H, W, C) float tensors (ComfyUI's IMAGE layout). A layout puts the two views of a
pair into one frame; the half variants squeeze that frame back to the size of one view with an
area (box) filter, which is what half-SBS/half-OU players expect and avoids aliasing.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F

Layout = Literal[
    "parallel",
    "parallel-half",
    "cross-eyed",
    "cross-eyed-half",
    "top-bottom",
    "top-bottom-half",
]
LAYOUTS: tuple[str, ...] = get_args(Layout)

# File-name suffixes that VR and 3D players (DeoVR, Skybox, Pigasus, 4XVR, ...) read to pick the
# stereo mode: LR/RL = which eye comes first, F/Full = full width per eye, TB = over-under.
VR_SUFFIXES: dict[str, str] = {
    "parallel": "_LRF_Full_SBS",
    "parallel-half": "_LR",
    "cross-eyed": "_RLF_Full_SBS",
    "cross-eyed-half": "_RL",
    "top-bottom": "_TBF_Full_TB",
    "top-bottom-half": "_TB",
}


def check_pair(left: torch.Tensor, right: torch.Tensor) -> None:
    """Raise a clear error unless left and right are image batches of the same shape."""
    if left.ndim != 4 or right.ndim != 4:
        raise ValueError(
            f"left and right must be image batches (B, H, W, C); got {tuple(left.shape)} and {tuple(right.shape)}"
        )
    if left.shape != right.shape:
        raise ValueError(
            f"left {tuple(left.shape)} and right {tuple(right.shape)} must have the same batch size, "
            "height, width and channels; resize or crop one of them first"
        )


def squeeze_to(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Area-resample (B, H, W, C) to (B, height, width, C): every output pixel is the mean of the
    input pixels it covers, so halving averages exact 2-pixel groups."""
    if image.shape[1] == height and image.shape[2] == width:
        return image
    resized = F.interpolate(image.movedim(-1, 1), size=(height, width), mode="area")
    return resized.movedim(1, -1).to(image.dtype)


def _divider(reference: torch.Tensor, height: int, width: int, value: float) -> torch.Tensor:
    b, _, _, c = reference.shape
    return torch.full((b, height, width, c), value, dtype=reference.dtype, device=reference.device)


def side_by_side(
    left: torch.Tensor,
    right: torch.Tensor,
    layout: Layout = "parallel",
    swap_eyes: bool = False,
    divider: int = 0,
    divider_value: float = 0.0,
) -> torch.Tensor:
    """Put each pair into one frame.

    parallel: left eye on the left; cross-eyed: right eye on the left; top-bottom: left eye on
    top. `swap_eyes` exchanges the views first (for pairs that came in the wrong order).
    `divider` inserts that many pixels of `divider_value` between the views. The half variants
    squeeze the whole composite (divider included) to the size of one source view.
    """
    check_pair(left, right)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}; got {layout!r}")
    if divider < 0:
        raise ValueError(f"divider must be 0 (none) or a positive width in pixels; got {divider}")
    if swap_eyes:
        left, right = right, left
    if layout.startswith("cross-eyed"):
        left, right = right, left
    _, h, w, _ = left.shape
    vertical = layout.startswith("top-bottom")
    if vertical:
        parts = [left, _divider(left, divider, w, divider_value), right]
        frame = torch.cat(parts, dim=1)
    else:
        parts = [left, _divider(left, h, divider, divider_value), right]
        frame = torch.cat(parts, dim=2)
    if layout.endswith("-half"):
        frame = squeeze_to(frame, h, w)
    return frame


def split_side_by_side(frame: torch.Tensor, layout: Layout = "parallel") -> tuple[torch.Tensor, torch.Tensor]:
    """Undo a full-size layout without a divider: (left, right) views of a composed frame."""
    if layout not in ("parallel", "cross-eyed", "top-bottom"):
        raise ValueError(f"only full-size layouts can be split exactly; got {layout!r}")
    dim = 1 if layout == "top-bottom" else 2
    size = frame.shape[dim]
    if size % 2:
        raise ValueError(f"a {layout} frame must have an even {'height' if dim == 1 else 'width'}; got {size}")
    first, second = frame.split(size // 2, dim=dim)
    return (second, first) if layout == "cross-eyed" else (first, second)
