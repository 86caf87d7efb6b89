"""StereoWarp speed: the full-resolution forward warp against a grid_sample backward warp.

Run from the repository root:  python -m bench.bench_warp [--sizes 512,1024,2048] [--threads N]

Both warps move the same RGB image by the same disparity (a layered synthetic scene at each
size, divergence 8 %) in this one process; their timings are interleaved round by round so
that load changes on the machine hit both alike. The table prints medians of wall-clock time
and the median of the per-round ratios, of wall-clock time and of this process's CPU time (on
a CPU; the latter is immune to other processes sharing the cores). grid_sample is the cheapest
possible warp (one bilinear read per pixel, no occlusion order, no holes): it is the yardstick,
not an alternative.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from headless import comfy_host  # noqa: F401  (registers `stereo_pack`)
from stereo_pack.stereo_ops.pixel_shift import displacement, stereo_pixel_shift
from stereo_pack.stereo_ops.synthetic_scenes import layered_scene, psnr
from stereo_pack.stereo_ops.warp import forward_warp


def _backward_grid(shift: torch.Tensor) -> torch.Tensor:
    b, h, w = shift.shape
    xs = torch.arange(w, dtype=shift.dtype, device=shift.device).view(1, 1, w) + shift
    ys = torch.arange(h, dtype=shift.dtype, device=shift.device).view(1, h, 1).expand(b, h, w)
    return torch.stack((xs * (2.0 / (w - 1)) - 1.0, ys * (2.0 / (h - 1)) - 1.0), dim=-1)


def _time(fn, sync) -> tuple[float, float]:
    """Wall-clock and process CPU seconds of one call."""
    sync()
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    sync()
    return time.perf_counter() - t0, time.process_time() - c0


def latent_resolution_right_view(image: torch.Tensor, disparity: torch.Tensor, divergence: float) -> torch.Tensor:
    """The right view as StereoDiffusion's shift makes it: at 1/8 resolution, upsampled."""
    h, w = image.shape[-2:]
    small = F.interpolate(image, size=(h // 8, w // 8), mode="area")
    d = F.interpolate(disparity[None], size=(h // 8, w // 8), mode="area")[0]
    shifted = stereo_pixel_shift(small, d, divergence, mode="subpixel").image
    return F.interpolate(shifted, size=(h, w), mode="bilinear", align_corners=False)


def quality_table(sizes: list[int]) -> None:
    """Right-view PSNR on the pixels both eyes see, more than 8 px (one latent pixel) from any
    depth edge or hole, of an exact synthetic scene."""
    print()
    print("| image | latent-resolution warp (1/8, upsampled) | StereoWarp (full resolution) |")
    print("|---|---|---|")
    for size in sizes:
        scene = layered_scene(size, size, divergence=8.0, dtype=torch.float32)
        visible = ~scene.right.holes & ~scene.right.edge_zone(8)
        latent = latent_resolution_right_view(scene.center.image, scene.disparity, 8.0)
        full = forward_warp(scene.center.image, displacement(scene.disparity, 8.0)).image
        print(f"| {size}x{size} | {psnr(latent, scene.right.image, visible):.1f} dB "
              f"| {psnr(full, scene.right.image, visible):.1f} dB |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="512,1024,2048", help="square image sizes, comma separated")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-quality", action="store_true", help="skip the PSNR table")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)

    print(f"torch {torch.__version__}, {args.device}, {torch.get_num_threads()} threads, RGB float32, divergence 8%")
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    print("| image | grid_sample (backward, no occlusion) | StereoWarp forward warp | ratio (wall) | ratio (CPU time) |")
    print("|---|---|---|---|---|")
    for size in (int(s) for s in args.sizes.split(",")):
        scene = layered_scene(size, size, divergence=8.0, dtype=torch.float32)
        image = scene.center.image.to(dev)
        shift = displacement(scene.disparity, 8.0).to(dev)
        grid = _backward_grid(shift)

        def backward():
            return F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=True)

        def forward():
            return forward_warp(image, shift).image

        backward(), forward()
        gs, fw, ratios, cpu_ratios = [], [], [], []
        for _ in range(args.rounds):
            (g, gc), (f, fc) = _time(backward, sync), _time(forward, sync)
            gs.append(g)
            fw.append(f)
            ratios.append(f / g)
            cpu_ratios.append(fc / max(gc, 1e-9))
        cpu = f"{statistics.median(cpu_ratios):.1f}x" if dev.type == "cpu" else "n/a"
        print(
            f"| {size}x{size} | {statistics.median(gs) * 1e3:.2f} ms | {statistics.median(fw) * 1e3:.2f} ms "
            f"| {statistics.median(ratios):.1f}x | {cpu} |"
        )
    if not args.no_quality:
        quality_table([int(s) for s in args.sizes.split(",")])


if __name__ == "__main__":
    main()
