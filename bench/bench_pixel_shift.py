"""Pixel shift speed: stereo_ops against a per-pixel-loop restatement of the reference.

Run from the repository root:  python -m bench.bench_pixel_shift
Both run in this one process, on the same inputs, on the CPU; the table prints ratios.
"""

from __future__ import annotations

import argparse

import torch

from bench.bench_common import median_time
from testkit.paper_reference import reference_right_view
from stereo_pack.stereo_ops import stereo_pixel_shift


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="64,128", help="latent sizes (square), comma separated")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, 4 channels, divergence 8%")
    print("| latent | reference loop | integer | speed-up | subpixel | speed-up |")
    print("|---|---|---|---|---|---|")
    for size in (int(s) for s in args.sizes.split(",")):
        g = torch.Generator().manual_seed(size)
        left = torch.randn(args.batch, 4, size, size, generator=g)
        disp = torch.rand(args.batch, size, size, generator=g)
        ref = median_time(lambda: reference_right_view(left, disp, 8.0), 3)
        ours = median_time(lambda: stereo_pixel_shift(left, disp, 8.0, mode="integer"), 50)
        sub = median_time(lambda: stereo_pixel_shift(left, disp, 8.0, mode="subpixel"), 50)
        assert torch.equal(stereo_pixel_shift(left, disp, 8.0).image, reference_right_view(left, disp, 8.0))
        print(
            f"| {size}x{size} | {ref * 1e3:.1f} ms | {ours * 1e3:.3f} ms | {ref / ours:.0f}x "
            f"| {sub * 1e3:.3f} ms | {ref / sub:.0f}x |"
        )


if __name__ == "__main__":
    main()
