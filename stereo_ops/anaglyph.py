"""Red-cyan anaglyphs (red filter over the left eye), in plain torch.

Every method takes two (..., 3) sRGB images in [0, 1] and returns one. Each is a 3x3 matrix per eye
(output = M_left @ left + M_right @ right); they differ in the matrices and in whether they are
applied to the sRGB-encoded values (the classic methods) or to linear light (Dubois).
"""

from __future__ import annotations

from typing import Callable, Literal, get_args

import torch

AnaglyphMethod = Literal["dubois", "optimized", "half-color", "color", "gray", "true"]
ANAGLYPH_METHODS: tuple[str, ...] = get_args(AnaglyphMethod)

# Rec. 601 luma weights, as the classic anaglyph methods use them on sRGB-encoded values.
LUMA = (0.299, 0.587, 0.114)
_ZERO = [0.0, 0.0, 0.0]

# Dubois' least-squares red-cyan matrices, rows = output R, G, B; columns = input R, G, B.
DUBOIS_RED_CYAN_LEFT = (
    (0.456, 0.500, 0.176),
    (-0.040, -0.038, -0.016),
    (-0.015, -0.021, -0.005),
)
DUBOIS_RED_CYAN_RIGHT = (
    (-0.043, -0.088, -0.002),
    (0.378, 0.734, -0.018),
    (-0.072, -0.113, 1.226),
)


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    """The sRGB decoding curve (IEC 61966-2-1)."""
    x = x.clamp(0.0, 1.0)
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    """The sRGB encoding curve (IEC 61966-2-1); clips out-of-gamut values to [0, 1] first."""
    x = x.clamp(0.0, 1.0)
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1.0 / 2.4) - 0.055)


def _mix(left: torch.Tensor, right: torch.Tensor, m_left, m_right) -> torch.Tensor:
    ml = torch.tensor(m_left, dtype=left.dtype, device=left.device)
    mr = torch.tensor(m_right, dtype=left.dtype, device=left.device)
    return left @ ml.T + right @ mr.T


def anaglyph_color(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Color anaglyph: red from the left view, green and blue from the right.

    Source: P. Wimmer, "Anaglyph methods comparison", 3dtv.at (2004), method "Color anaglyphs".
    Full colour, but strong retinal rivalry on saturated reds and cyans.
    """
    return _mix(left, right, [[1.0, 0.0, 0.0], _ZERO, _ZERO], [_ZERO, [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def anaglyph_half_color(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Half-color anaglyph: red = luma of the left view, green and blue from the right.

    Source: P. Wimmer, "Anaglyph methods comparison", 3dtv.at (2004), method "Half-Color
    anaglyphs". Less rivalry than color anaglyphs, at the cost of reds.
    """
    return _mix(left, right, [list(LUMA), _ZERO, _ZERO], [_ZERO, [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def anaglyph_gray(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Gray anaglyph: red = luma of the left view, green and blue = luma of the right view.

    Source: P. Wimmer, "Anaglyph methods comparison", 3dtv.at (2004), method "Gray anaglyphs".
    """
    return _mix(left, right, [list(LUMA), _ZERO, _ZERO], [_ZERO, list(LUMA), list(LUMA)])


def anaglyph_true(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """True anaglyph: red = luma of the left view, blue = luma of the right view, no green.

    Source: P. Wimmer, "Anaglyph methods comparison", 3dtv.at (2004), method "True anaglyphs"
    (the historical print method). Dark, but with no ghosting on red-cyan glasses.
    """
    return _mix(left, right, [list(LUMA), _ZERO, _ZERO], [_ZERO, _ZERO, list(LUMA)])


def anaglyph_optimized(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Optimized anaglyph: red = 0.7 G + 0.3 B of the left view, green and blue from the right.

    Source: P. Wimmer, "Anaglyph methods comparison", 3dtv.at (2004), method "Optimized
    anaglyphs". Dropping the left red channel removes most retinal rivalry; reds turn dark.
    """
    return _mix(left, right, [[0.0, 0.7, 0.3], _ZERO, _ZERO], [_ZERO, [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def anaglyph_dubois(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Dubois least-squares red-cyan anaglyph, computed in linear light.

    Source: E. Dubois, "A projection method to generate anaglyph stereo images", Proc. IEEE
    ICASSP 2001, vol. 3, pp. 1661-1664; red-cyan matrices from Dubois' published table for
    typical red-cyan filters. The views are sRGB-decoded, projected, clipped, and re-encoded.
    """
    mixed = _mix(srgb_to_linear(left), srgb_to_linear(right), DUBOIS_RED_CYAN_LEFT, DUBOIS_RED_CYAN_RIGHT)
    return linear_to_srgb(mixed)


ANAGLYPH_FUNCTIONS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "dubois": anaglyph_dubois,
    "optimized": anaglyph_optimized,
    "half-color": anaglyph_half_color,
    "color": anaglyph_color,
    "gray": anaglyph_gray,
    "true": anaglyph_true,
}


def anaglyph(left: torch.Tensor, right: torch.Tensor, method: AnaglyphMethod = "dubois") -> torch.Tensor:
    """A red-cyan anaglyph of (..., 3) sRGB views in [0, 1]; the result is clipped to [0, 1]."""
    if method not in ANAGLYPH_FUNCTIONS:
        raise ValueError(f"anaglyph method must be one of {', '.join(ANAGLYPH_METHODS)}; got {method!r}")
    if left.shape != right.shape:
        raise ValueError(
            f"left {tuple(left.shape)} and right {tuple(right.shape)} must have the same shape; "
            "resize or crop one of them first"
        )
    if left.shape[-1] != 3:
        raise ValueError(
            f"anaglyphs need RGB images (3 channels); got {left.shape[-1]} channels. "
            "Convert the images to RGB first (drop the alpha channel)."
        )
    return ANAGLYPH_FUNCTIONS[method](left, right).clamp(0.0, 1.0)
