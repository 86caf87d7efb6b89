"""How a disparity map shrinks to the latent grid, on a thin near object.

Run from the repository root:  python -m bench.bench_disparity_grid
A near pole (disparity 1) one or two latent pixels wide stands on a far textured background
(disparity 0), at every sub-pixel offset of the 8x latent grid. For each way of shrinking the map
the table gives the pole's largest shift as a fraction of `divergence` (worst offset, and mean),
and the error of the right view made at latent resolution against the exact right view (made at
image resolution, then shrunk), over the pixels both views fill, and near the pole. The last
column is the mean bias on a smooth slope (0..1 across the width), against its area average.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from headless import comfy_host  # noqa: F401  (registers `stereo_pack`)
from stereo_pack.stereo_ops import GRID_FITS, fit_disparity_to_grid, stereo_pixel_shift

FACTOR = 8


def scene(latent_w: int, latent_h: int, pole_latent_px: int, offset: int):
    """Left image (1, 3, H, W) and its exact disparity (1, H, W) at image resolution."""
    h, w = latent_h * FACTOR, latent_w * FACTOR
    x = torch.arange(w, dtype=torch.float32)
    y = torch.arange(h, dtype=torch.float32).view(-1, 1)
    background = 0.5 + 0.25 * torch.sin(x / 23.0) * torch.cos(y / 17.0) + 0.1 * torch.sin(x / 5.0)
    left = background.expand(h, w).unsqueeze(0).repeat(3, 1, 1)
    start = w // 2 + offset
    width = pole_latent_px * FACTOR
    disparity = torch.zeros(1, h, w)
    disparity[:, :, start:start + width] = 1.0
    left[:, :, start:start + width] = torch.tensor([0.95, 0.2, 0.1]).view(3, 1, 1)
    return left.unsqueeze(0), disparity, (start, width)


def measure(
    method: str, pole: int, divergence: float, latent_w: int, latent_h: int
) -> tuple[float, float, float, float]:
    """Worst and mean peak of the shrunk pole, right-view error overall and near the pole."""
    peaks, errors, near_errors = [], [], []
    for offset in range(FACTOR):
        left, disparity, (start, width) = scene(latent_w, latent_h, pole, offset)
        exact = stereo_pixel_shift(left, disparity, divergence, mode="subpixel")
        exact_small = F.adaptive_avg_pool2d(exact.image, (latent_h, latent_w))
        # A latent pixel counts as filled where every image pixel it covers is.
        exact_filled = -F.adaptive_max_pool2d(-exact.filled.float().unsqueeze(1), (latent_h, latent_w))[:, 0]
        fitted = fit_disparity_to_grid(disparity, latent_h, latent_w, method=method)
        peaks.append(float(fitted.amax()))
        small_left = F.adaptive_avg_pool2d(left, (latent_h, latent_w))
        right = stereo_pixel_shift(small_left, fitted, divergence, mode="subpixel")
        both = (right.filled & (exact_filled > 0.5)).unsqueeze(1).expand_as(right.image)
        diff = (right.image - exact_small).abs()
        errors.append(float(diff[both].mean()))
        shift = divergence / 100.0 * latent_w
        lo = max(int((start / FACTOR) - shift) - 2, 0)
        hi = min(int((start + width) / FACTOR) + 2, latent_w)
        near = torch.zeros_like(both)
        near[..., lo:hi] = True
        near_errors.append(float(diff[both & near].mean()))
    return min(peaks), sum(peaks) / len(peaks), sum(errors) / len(errors), sum(near_errors) / len(near_errors)


def ramp_bias(method: str, latent_w: int, latent_h: int) -> float:
    """Mean signed error of the shrunk map on a smooth slope (a slanted floor), against its area mean."""
    w, h = latent_w * FACTOR, latent_h * FACTOR
    ramp = torch.linspace(0.0, 1.0, w).expand(1, h, w).contiguous()
    reference = F.adaptive_avg_pool2d(ramp.unsqueeze(1), (latent_h, latent_w))[:, 0]
    return float((fit_disparity_to_grid(ramp, latent_h, latent_w, method=method) - reference).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--divergence", type=float, default=8.0, help="percent of the width")
    parser.add_argument("--latent", default="64x8", help="latent width x height")
    args = parser.parse_args()
    latent_w, latent_h = (int(v) for v in args.latent.split("x"))
    print(f"latent {latent_w}x{latent_h} (image x{FACTOR}), divergence {args.divergence}%, offsets 0..{FACTOR - 1} px")
    print("| pole | method | peak shift / divergence (worst) | (mean) | right-view MAE | MAE near the pole "
          "| ramp bias |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for pole in (1, 2):
        for method in GRID_FITS:
            worst, mean, err, near = measure(method, pole, args.divergence, latent_w, latent_h)
            bias = ramp_bias(method, latent_w, latent_h)
            print(f"| {pole} px | {method} | {worst:.3f} | {mean:.3f} | {err:.4f} | {near:.4f} | {bias:+.4f} |")


if __name__ == "__main__":
    main()
