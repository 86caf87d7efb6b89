"""The legend under a parallax heat map: the colour bar, its scale in % of the width, which side is
in front of the screen, and the display budget's two limits."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..stereo_ops.parallax_colours import colour_bar


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one small bitmap font
        return ImageFont.load_default()


def with_legend(heat: torch.Tensor, scale_pct: float, budget: tuple[float, float], budget_name: str) -> torch.Tensor:
    """heat (H, W, 3) in 0..1 with a legend strip appended below: (H + strip, W, 3)."""
    h, w, _ = heat.shape
    strip = max(36, min(160, w // 10))
    text = max(9, strip // 4)
    margin = max(4, w // 40)
    bar_len = max(8, w - 2 * margin)
    bar_h = max(4, strip // 5)
    canvas = Image.new("RGB", (w, strip), (32, 32, 32))
    bar = (colour_bar(bar_len, scale_pct).permute(1, 0).numpy() * 255).astype(np.uint8)
    bar_img = Image.fromarray(np.repeat(bar[None], bar_h, axis=0))
    top = text + 6
    canvas.paste(bar_img, (margin, top))
    draw = ImageDraw.Draw(canvas)
    font = _font(text)

    def x_of(pct: float) -> int:
        return margin + round((pct + scale_pct) / (2 * scale_pct) * (bar_len - 1))

    # The budget's limits as white ticks across the bar.
    for pct in (-budget[0], budget[1]):
        if abs(pct) <= scale_pct:
            x = x_of(pct)
            draw.line([(x, top - 3), (x, top + bar_h + 2)], fill=(255, 255, 255), width=max(1, strip // 24))
    draw.text((margin, 1), f"-{scale_pct:g} % in front (crossed)", fill=(255, 140, 120), font=font)
    right = f"behind (uncrossed) +{scale_pct:g} %"
    draw.text((margin + bar_len - draw.textlength(right, font=font), 1), right, fill=(140, 170, 255), font=font)
    below = top + bar_h + 3
    caption = f"parallax, % of width; ticks: {budget_name} budget"
    draw.text((margin, below), caption, fill=(220, 220, 220), font=font)
    zero = "0"
    draw.text((x_of(0.0) - draw.textlength(zero, font=font) / 2, 1), zero, fill=(255, 255, 255), font=font)
    legend = torch.from_numpy(np.asarray(canvas).astype(np.float32) / 255.0)
    return torch.cat([heat, legend], dim=0)
