"""Stereo output cost: composing layouts and anaglyphs against writing the PNG they end up in.

Run from the repository root:  python -m bench.bench_outputs
Everything runs in this one process on the same random pair, on the CPU. The ratio column is each
operation's time over the time to encode one full-width side-by-side PNG (as StereoSaveImage
does, compress level 4): it shows whether composing is ever the slow part of saving.
"""

from __future__ import annotations

import argparse
import io

import numpy as np
import torch
from PIL import Image

from bench.bench_common import median_time
from stereo_pack.stereo_ops import ANAGLYPH_METHODS, anaglyph, side_by_side, stereo_mpo_bytes


def _pil(image: torch.Tensor) -> Image.Image:
    return Image.fromarray(np.clip(image.numpy() * 255.0, 0, 255).astype(np.uint8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1024, help="height and width of each eye")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    g = torch.Generator().manual_seed(0)
    left = torch.rand(1, args.size, args.size, 3, generator=g)
    right = torch.rand(1, args.size, args.size, 3, generator=g)
    sbs = side_by_side(left, right, "parallel")[0]

    def png():
        _pil(sbs).save(io.BytesIO(), format="PNG", compress_level=4)

    baseline = median_time(png, args.repeats)
    rows = [("PNG encode of the side-by-side frame", baseline)]
    for layout in ("parallel", "parallel-half", "top-bottom-half"):
        rows.append((f"layout {layout}", median_time(lambda: side_by_side(left, right, layout), args.repeats)))
    for method in ANAGLYPH_METHODS:
        rows.append((f"anaglyph {method}", median_time(lambda: anaglyph(left, right, method), args.repeats)))
    rows.append(("stereo MPO (two JPEGs)", median_time(lambda: stereo_mpo_bytes(_pil(left[0]), _pil(right[0])), args.repeats)))

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, one pair of {args.size}x{args.size} RGB, float32")
    print("| operation | median time | / PNG encode |")
    print("|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds * 1e3:.1f} ms | {seconds / baseline:.2f} |")


if __name__ == "__main__":
    main()
