"""Frames per second and peak memory of the streamed conversion (Stereo Convert Video File's
pipeline) against the clip length.

    python -m bench.bench_video_stream                          # 100 and 1000 frames at 512x288
    python -m bench.bench_video_stream --frames 50 500 --sizes 256x144
    python -m bench.bench_video_stream --fill temporal --frames 100

Each run is a fresh process. Frames are made on the fly (a panning random texture: nothing holds
the clip), go through the tiny Depth Anything V2 of testkit.tiny_depth at the frame's shorter side
rounded to its patch size, the running disparity scale, temporal smoothing, Stereo Warp, the
per-frame hole fill and the H.264 writer (side by side, crf 18) into a temporary file. One torch
thread. "peak rise" is the rise of the resident set during the run: it should not grow with the
number of frames.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from bench.bench_common import peak_mib  # noqa: F401  (registers stereo_pack)


def _frames(n: int, height: int, width: int):
    import torch

    texture = torch.rand((height, width + 64, 3), generator=torch.Generator().manual_seed(0))
    for t in range(n):
        yield torch.roll(texture, t, dims=1)[:, :width].contiguous()


def measure(frames: int, height: int, width: int, fill: str = "per frame") -> dict:
    import torch

    from stereo_pack.stereo_ops.depth import detect_architecture
    from stereo_pack.stereo_ops.stereo_geometry import StereoGeometry
    from stereo_pack.stereo_ops.stereo_video import StereoVideoWriter
    from stereo_pack.stereo_ops.video_stream import StreamSettings, convert_frames, depth_stream
    from testkit.tiny_depth import tiny_depth_anything

    torch.set_num_threads(1)
    model = tiny_depth_anything()
    arch = detect_architecture(model.state_dict())
    resolution = max(arch.multiple, min(height, width) // arch.multiple * arch.multiple)
    settings = StreamSettings(fill=fill)
    geometry = StereoGeometry(2.5, 0.5)

    def run(n: int, path: str) -> None:
        with StereoVideoWriter(path, 24, "parallel", 18) as writer:
            for _, left, right in convert_frames(lambda start: _frames(n, height, width),
                                                 lambda start: depth_stream(model, arch, start, 4, resolution),
                                                 settings, geometry):
                writer.write_pairs(left.unsqueeze(0), right.unsqueeze(0))

    with tempfile.TemporaryDirectory() as folder:
        run(8, os.path.join(folder, "warm.mp4"))  # first-call allocations are not the stream's
        started = time.perf_counter()
        peak = peak_mib(lambda: run(frames, os.path.join(folder, "out.mp4")))
        seconds = time.perf_counter() - started
    return {"peak_mib": peak, "fps": frames / seconds}


def run_fresh(frames: int, width: int, height: int, fill: str) -> dict:
    from headless import comfy_host

    cmd = [sys.executable, "-m", "bench.bench_video_stream", "--run", f"{frames},{width},{height}", "--fill", fill]
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}  # as bench_video_memory: free memory goes back
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=comfy_host.PACK_DIR, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--sizes", nargs="+", default=["512x288"], help="WIDTHxHEIGHT")
    parser.add_argument("--fill", default="per frame", choices=["per frame", "temporal"])
    parser.add_argument("--run", default=None, help=argparse.SUPPRESS)  # the child: FRAMES,WIDTH,HEIGHT
    args = parser.parse_args()
    if args.run:
        frames, width, height = (int(v) for v in args.run.split(","))
        print(json.dumps(measure(frames, height, width, args.fill)))
        return
    print("| size | frames | fill | frames/s | peak rise |")
    print("|---|---|---|---|---|")
    for size in args.sizes:
        width, height = (int(v) for v in size.split("x"))
        for frames in args.frames:
            r = run_fresh(frames, width, height, args.fill)
            print(f"| {size} | {frames} | {args.fill} | {r['fps']:.1f} | {r['peak_mib']:.0f} MiB |", flush=True)


if __name__ == "__main__":
    main()
