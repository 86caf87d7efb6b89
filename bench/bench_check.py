"""Stereo Check speed: one pair checked on one CPU thread, against the 1 s target and a yardstick.

Run from the repository root:  python -m bench.bench_check [--sizes 512,1024,2048] [--rounds 7]

The pair is an exact synthetic scene (layered planes with fine texture, divergence 3 %,
convergence 0.5) at each size. The yardstick is the plainest dense matcher there is: one
box-filtered SAD cost volume of the grey images at the check's finest level (at most 512 px wide)
over the scene's true parallax range, winner-take-all; no pyramid, no vertical search, no
left-right check, no measures. Both run in this process on one thread, interleaved round by round
so that load changes on the machine hit both alike; the table prints medians of wall-clock time and
of process CPU time (which other processes sharing the cores inflate far less than wall time).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from dataclasses import replace

import torch
import torch.nn.functional as F

from headless import comfy_host  # noqa: F401  (registers `stereo_pack`)
from stereo_pack.stereo_ops.comfort import DEFAULT_DISPLAY, DISPLAY_PRESETS, parallax_budget
from stereo_pack.stereo_ops.stereo_check import check_pair
from stereo_pack.stereo_ops.stereo_match import FINE_WIDTH, luma
from stereo_pack.stereo_ops.synthetic_scenes import default_planes, layered_scene

DIVERGENCE, CONVERGENCE = 3.0, 0.5


def plain_sad(left: torch.Tensor, right: torch.Tensor, lo_pct: float, hi_pct: float) -> torch.Tensor:
    """Winner-take-all of a 5x5 box-filtered SAD volume at the finest matched level."""
    factor = max(1, math.ceil(left.shape[-1] / FINE_WIDTH))
    a = F.avg_pool2d(luma(left)[None, None], factor)[0, 0]
    b = F.avg_pool2d(luma(right)[None, None], factor)[0, 0]
    w = a.shape[-1]
    lo, hi = math.floor(lo_pct / 100 * w) - 2, math.ceil(hi_pct / 100 * w) + 2
    costs = torch.full((hi - lo + 1, *a.shape), 1.0)
    for i, d in enumerate(range(lo, hi + 1)):
        if d >= 0:
            costs[i, :, : w - d] = (a[:, : w - d] - b[:, d:]).abs()
        else:
            costs[i, :, -d:] = (a[:, -d:] - b[:, : w + d]).abs()
    costs = F.avg_pool2d(costs[None], 5, 1, 2)[0]
    return costs.argmin(dim=0) + lo


def _time(fn) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="512,1024,2048", help="square image sizes, comma separated")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    budget = parallax_budget(DISPLAY_PRESETS[DEFAULT_DISPLAY])
    print(f"torch {torch.__version__}, cpu, 1 thread, RGB float32, divergence {DIVERGENCE} %, convergence {CONVERGENCE}")
    print("| pair | Stereo Check (wall) | Stereo Check (CPU time) | CPU time vs 1 s target | plain SAD (one volume, WTA) | check / SAD (wall) | check / SAD (CPU time) |")
    print("|---|---|---|---|---|---|---|")
    for size in (int(s) for s in args.sizes.split(",")):
        planes = tuple(replace(p, detail=1.0) for p in default_planes(size, size))
        scene = layered_scene(size, size, DIVERGENCE, CONVERGENCE, planes=planes, dtype=torch.float32)
        left, right = scene.left.image[0], scene.right.image[0]
        truth = -DIVERGENCE * (scene.disparity - CONVERGENCE)
        lo, hi = float(truth.min()), float(truth.max())

        def check():
            return check_pair(left, right, budget, DEFAULT_DISPLAY)

        def sad():
            return plain_sad(left, right, lo, hi)

        check(), sad()
        checks, check_cpu, sads, ratios, cpu_ratios = [], [], [], [], []
        for _ in range(args.rounds):
            (c, cc), (s, sc) = _time(check), _time(sad)
            checks.append(c)
            check_cpu.append(cc)
            sads.append(s)
            ratios.append(c / s)
            cpu_ratios.append(cc / max(sc, 1e-9))
        cpu = statistics.median(check_cpu)
        print(
            f"| {size}x{size} | {statistics.median(checks) * 1e3:.0f} ms | {cpu * 1e3:.0f} ms | {cpu:.2f}x "
            f"| {statistics.median(sads) * 1e3:.0f} ms | {statistics.median(ratios):.1f}x | {statistics.median(cpu_ratios):.1f}x |"
        )


if __name__ == "__main__":
    main()
