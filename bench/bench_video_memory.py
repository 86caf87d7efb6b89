"""Peak memory of the frame chain depth -> disparity -> Stereo Warp against the clip length.

    python -m bench.bench_video_memory                       # 30, 300, 1000 frames at 256x144 and 512x288
    python -m bench.bench_video_memory --frames 20 200 --sizes 128x96

Each run is a fresh process (the allocator of a process that already ran hides the peak). The
depth stage is a tiny Depth Anything V2 of the real architecture with random weights
(testkit.tiny_depth), run at the frame's shorter side rounded to its patch size; the chain is
the one the nodes run: the network in batches into one preallocated map, the map turned into
disparity in place (per batch normalisation), temporal smoothing in place, then the warp into
the preallocated stereo batch. "results" is the size of what the chain returns (disparity,
stereo batch, hole masks); "extra" is the rise of the peak resident set beyond it: the working
memory, which should depend on the chunk and not on the number of frames.
"""

from __future__ import annotations

import argparse
import json

from bench.bench_common import peak_mib, peaks_in_fresh_processes  # noqa: F401  (registers stereo_pack)


def _chain(frames, model, arch, resolution: int):
    from stereo_pack.stereo_ops.depth import predict, prediction_to_disparity
    from stereo_pack.stereo_ops.temporal import smooth_over_time
    from stereo_pack.stereo_ops.warp_clip import warp_clip

    prediction = predict(model, arch, frames, resolution, batch_size=4)
    disparity = prediction_to_disparity(prediction, arch, per_batch=True, inplace=True)
    smooth_over_time(disparity, 0.5, inplace=True)
    return disparity, *warp_clip(frames, disparity, divergence=3.0)


def measure(frames: int, height: int, width: int, chunk_mib: float | None = None) -> dict:
    """Peak memory of one run of the chain in this process (the child side)."""
    import torch

    from stereo_pack.stereo_ops import frame_chunks
    from stereo_pack.stereo_ops.depth import detect_architecture
    from testkit.tiny_depth import tiny_depth_anything

    torch.set_num_threads(1)
    if chunk_mib is not None:
        frame_chunks.CHUNK_BYTES = int(chunk_mib * (1 << 20))
    model = tiny_depth_anything()
    arch = detect_architecture(model.state_dict())
    resolution = max(arch.multiple, min(height, width) // arch.multiple * arch.multiple)
    clip = torch.rand((frames, height, width, 3), generator=torch.Generator().manual_seed(0))
    _chain(clip[:2], model, arch, resolution)  # first-call allocations (threads, kernels) are not the clip's
    results: list = []
    peak = peak_mib(lambda: results.extend(_chain(clip, model, arch, resolution)))
    size = sum(t.numel() * t.element_size() for t in results) / (1 << 20)
    return {"peak_mib": peak, "results_mib": size, "extra_mib": peak - size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[30, 300, 1000])
    parser.add_argument("--sizes", nargs="+", default=["256x144", "512x288"], help="WIDTHxHEIGHT")
    parser.add_argument("--chunk-mib", type=float, default=None, help="working memory per chunk (default: the pack's)")
    parser.add_argument("--run", default=None, help=argparse.SUPPRESS)  # the child: FRAMES,WIDTH,HEIGHT
    args = parser.parse_args()
    if args.run:
        frames, width, height = (int(v) for v in args.run.split(","))
        print(json.dumps(measure(frames, height, width, args.chunk_mib)))
        return
    print("| size | frames | clip (float32) | results | peak rise | extra (peak - results) |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes:
        width, height = (int(v) for v in size.split("x"))
        for frames in args.frames:
            r = run_fresh(frames, width, height, args.chunk_mib)
            clip = frames * height * width * 3 * 4 / (1 << 20)
            print(f"| {size} | {frames} | {clip:.0f} MiB | {r['results_mib']:.0f} MiB | {r['peak_mib']:.0f} MiB "
                  f"| {r['extra_mib']:.0f} MiB |", flush=True)


def run_fresh(frames: int, width: int, height: int, chunk_mib: float | None = None) -> dict:
    """`measure` in a process of its own."""
    import os
    import subprocess
    import sys

    from headless import comfy_host

    cmd = [sys.executable, "-m", "bench.bench_video_memory", "--run", f"{frames},{width},{height}"]
    if chunk_mib is not None:
        cmd += ["--chunk-mib", str(chunk_mib)]
    # glibc keeps freed blocks of a few MiB in its heap for reuse (its mmap threshold grows with them), so
    # the resident set would also count memory that is free; a fixed threshold returns it to the system
    # at once and the peak follows the memory actually in use.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=comfy_host.PACK_DIR, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
