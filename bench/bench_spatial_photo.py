"""Spatial photo (HEIC) cost: x265 presets side by side, and what the rest of the writer adds.

Run from the repository root:  python -m bench.bench_spatial_photo [--size 1024] [--rounds 3]
One photo-like pair (smooth colour, fine luminance detail) on the CPU. The presets are timed
interleaved, round after round, so that a busy machine slows them alike; each row is the median
over the rounds of encoding both eyes, with the file size and the PSNR of the decoded left eye.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import numpy as np
from PIL import Image

from bench import bench_common  # noqa: F401  (registers stereo_pack)
from stereo_pack.stereo_ops.pair_parallax import horizontal_parallax_range
from stereo_pack.stereo_ops.spatial_photo import DEFAULT_QUALITY, spatial_photo_bytes


def photo_like(width: int, height: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    base = np.stack([0.5 + 0.3 * np.sin(x / 23 + c) * np.cos(y / 17 + 2 * c) for c in range(3)], -1)
    detail = 0.15 * np.sin(x / 3.1) * np.sin(y / 4.3)
    return (np.clip(base + detail[..., None], 0, 1) * 255).round().astype(np.uint8)


def encode(left: Image.Image, right: Image.Image, preset: str) -> bytes:
    import pillow_heif

    heif = pillow_heif.from_pillow(left)
    heif.add_from_pillow(right)
    buffer = io.BytesIO()
    heif.save(buffer, quality=DEFAULT_QUALITY, chroma=420, enc_params={"preset": preset})
    return buffer.getvalue()


def psnr(a: Image.Image, b: Image.Image) -> float:
    err = np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2)
    return 10 * np.log10(255**2 / err)


def main() -> None:
    import pillow_heif

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1024, help="width of each eye (height 3/4 of it)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    width, height = args.size, args.size * 3 // 4 // 2 * 2
    wide = photo_like(width + 8, height)
    left, right = Image.fromarray(wide[:, :width]), Image.fromarray(wide[:, 8:].copy())

    presets = ("slow", "medium", "fast")
    times: dict[str, list[float]] = {p: [] for p in presets}
    files: dict[str, bytes] = {}
    for _ in range(args.rounds):
        for preset in presets:
            t0 = time.perf_counter()
            files[preset] = encode(left, right, preset)
            times[preset].append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    horizontal_parallax_range(left, right)
    parallax = time.perf_counter() - t0
    t0 = time.perf_counter()
    spatial_photo_bytes(left, right)
    whole = time.perf_counter() - t0

    info = pillow_heif.libheif_info()
    print(f"pillow-heif {pillow_heif.__version__}, libheif {info['libheif']}, {info['HEIF']}; "
          f"a pair of {width}x{height}, quality {DEFAULT_QUALITY}, 4:2:0, {args.rounds} interleaved rounds")
    print("| x265 preset | median time (both eyes) | file size | PSNR left |")
    print("|---|---|---|---|")
    for preset in presets:
        decoded = pillow_heif.open_heif(io.BytesIO(files[preset]))[0].to_pillow()
        print(f"| {preset} | {statistics.median(times[preset]):.2f} s | {len(files[preset]) / 1024:.0f} KiB | "
              f"{psnr(decoded, left):.1f} dB |")
    print(f"parallax measurement (disparity adjustment): {parallax:.2f} s; "
          f"spatial_photo_bytes in all (medium): {whole:.2f} s")


if __name__ == "__main__":
    main()
