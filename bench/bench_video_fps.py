"""Frames per second of the fast video path on this machine: Stereo Warp, Stereo Video Fill, and
the depth network stage on its own.

    python -m bench.bench_video_fps                          # 512x288, 1280x720, 1920x1080
    python -m bench.bench_video_fps --sizes 512x288 --frames 8 --threads 2

Frames: a moving synthetic scene (stereo_ops.synthetic_scenes.moving_clip, camera panning,
objects moving) rendered at each size, warped with the shipped fast workflow's settings
(divergence 4, convergence 0.3, balance 0.5: both eyes have holes to fill). Each stage is timed
over the whole clip (median of `--repeats` runs after a warm-up) and reported per frame, as the
CPU time of the process: with the default of one torch thread that is one core's frames per
second, unaffected by other work on a shared machine (wall time on an idle core is the same).

The depth stage is Depth Anything V2 Small's architecture (ViT-S/14, 24.8 M parameters) with
random weights (no weights can be downloaded here; the time does not depend on the values), at
its native 518 pixels, in float32, `--depth-batch` frames per call. Estimate Disparity's own
work after the network (normalisation, smoothing) is included.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bench.bench_common import comfy_host  # noqa: F401  (registers stereo_pack)

SETTINGS = dict(divergence=4.0, convergence=0.3, balance=0.5)
DA2_SMALL = dict(embed_dim=384, depth=12, num_heads=6, features=64, out_channels=(48, 96, 192, 384))


def _median_seconds(fn, repeats: int) -> float:
    """Median CPU time of this process per call, after a warm-up call. With one torch thread it
    is the time one core takes, and does not count the time other programs held the core."""
    fn()
    samples = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        samples.append(time.process_time() - t0)
    return statistics.median(samples)


def clip_frames(frames: int, width: int, height: int):
    from stereo_pack.stereo_ops.synthetic_scenes import moving_clip

    scale = width / 128.0
    clip = moving_clip(frames=frames, height=height, width=width, camera=(-2.0 * scale, 0.0))
    return clip.center.permute(0, 2, 3, 1).contiguous(), clip.disparity


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["512x288", "1280x720", "1920x1080"], help="WIDTHxHEIGHT")
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (CPU time adds up over threads)")
    parser.add_argument("--depth-batch", type=int, default=2)
    parser.add_argument("--no-depth", action="store_true", help="skip the depth network stage")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from stereo_pack.stereo_ops.depth import detect_architecture, predict, prediction_to_disparity
    from stereo_pack.stereo_ops.depth.depth_anything import DepthAnything, DepthAnythingConfig
    from stereo_pack.stereo_ops.temporal import smooth_over_time
    from stereo_pack.stereo_ops.warp_clip import fill_clip, warp_clip
    from testkit.random_weights import fill_random

    model = None
    if not args.no_depth:
        model = fill_random(DepthAnything(DepthAnythingConfig(version=2, **DA2_SMALL)), 0).eval()
        arch = detect_architecture(model.state_dict())

    print(f"torch threads: {torch.get_num_threads()}, frames per run: {args.frames}")
    print("| size | warp | fill | warp + fill | depth network (DA V2 Small, 518) | all three |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes:
        width, height = (int(v) for v in size.split("x"))
        frames, disparity = clip_frames(args.frames, width, height)
        n = frames.shape[0]
        stereo, holes = warp_clip(frames, disparity, **SETTINGS)
        warp = _median_seconds(lambda: warp_clip(frames, disparity, **SETTINGS), args.repeats) / n
        fill = _median_seconds(lambda: fill_clip(stereo, holes, disparity, **SETTINGS), args.repeats) / n
        depth = float("nan")
        if model is not None:
            def run_depth():
                p = predict(model, arch, frames, 0, batch_size=args.depth_batch)
                smooth_over_time(prediction_to_disparity(p, arch, True, inplace=True), 0.5, inplace=True)
            depth = _median_seconds(run_depth, 1) / n
        fps = lambda s: f"{1.0 / s:.1f} fps ({1e3 * s:.0f} ms)"  # noqa: E731
        print(f"| {size} | {fps(warp)} | {fps(fill)} | {fps(warp + fill)} | "
              f"{fps(depth) if model is not None else 'skipped'} | "
              f"{fps(warp + fill + depth) if model is not None else 'skipped'} |", flush=True)


if __name__ == "__main__":
    main()
