"""Video Depth Anything: speed against the official code, and temporal consistency on scenes with
exact depth.

Speed (needs a checkout of the official repository; its code is not part of this project):

    STEREO_OFFICIAL_VDA=<Video-Depth-Anything checkout> python -m bench.bench_video_depth --speed

builds the official VideoDepthAnything with random weights, loads the same weights into ours, and
runs a whole clip through the official `infer_video_depth` (windows) and `infer_video_depth_one`
(streaming) and through ours, interleaved (official, ours, official, ...), on the CPU in fp32. The
frames are at the network size, so both skip the resize (the official one needs OpenCV). Prints
frames per second and the ratio ours / official (above 1 = ours faster).

Temporal consistency (a tool for real weights: random weights say nothing about quality):

    python -m bench.bench_video_depth --consistency \
        --vda models/depthanything/video_depth_anything_vits.pth \
        --da2 models/depthanything/depth_anything_v2_vits.pth

renders a clip of a layered synthetic scene with exact disparity (stereo_ops.synthetic_scenes): the
camera pans across it while one plane slides the other way and comes nearer. Each method's output
(disparity-like; metric depth is inverted) gets one least-squares scale and shift for the whole clip
against the truth, as a clip-consistent depth would need, then:
- error: mean |fitted - true| disparity (the truth spans 0.05..1);
- flicker: mean |(fitted[t] - fitted[t-1]) - (true[t] - true[t-1])|, the error of the change
  between frames, which is what flickers in a stereo video.
Methods: Video Depth Anything (windows, streaming); Depth Anything V2 per frame, without and with
the pack's temporal smoothing (Estimate Disparity's temporal_smoothing). Without --vda/--da2 the
models get random weights, which only exercises the tool.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import torch

from headless import comfy_host  # noqa: F401  (registers `stereo_pack`)
from stereo_pack.stereo_ops.depth import build_and_load, predict, strip_wrappers
from stereo_pack.stereo_ops.depth.depth_anything import DEPTH_ANYTHING_SIZES, DepthAnything, DepthAnythingConfig
from stereo_pack.stereo_ops.depth.video_depth_anything import (
    VIDEO_DEPTH_ANYTHING_SIZES,
    VideoDepthAnything,
    VideoDepthAnythingConfig,
)
from stereo_pack.stereo_ops.depth.video_inference import video_depth
from stereo_pack.stereo_ops.synthetic_scenes import default_planes, render_view
from stereo_pack.stereo_ops.temporal import smooth_over_time


# ---------------------------------------------------------------------------------------------
# Speed against the official code


def _official_resize_shim() -> None:
    import numpy as np

    cv2 = sys.modules.get("cv2")
    if cv2 is not None and not hasattr(cv2, "resize"):  # frames are at the network size: an identity
        cv2.resize = lambda img, size, interpolation=None: np.asarray(img).copy()


def speed(args) -> None:
    from testkit.official_models import ENV, build_official_vda, official_path, randomize

    if official_path("vda") is None:
        sys.exit(f"--speed needs {ENV['vda']} pointing at a checkout of the official repository")
    _official_resize_shim()
    w, h = (int(v) for v in args.frame.split("x"))
    if w % 14 or h % 14:
        sys.exit("--frame: both sides must be multiples of 14 (the frames go to the network unresized)")
    g = torch.Generator().manual_seed(0)
    clip = (torch.rand(args.frames, h, w, 3, generator=g) * 255).round().to(torch.uint8)
    frames = clip.float() / 255
    size = min(h, w)
    rows = []
    for mode in ("windows", "streaming"):
        official = build_official_vda(args.variant, streaming=mode == "streaming")
        ours, arch = build_and_load(randomize(official, "head.scratch.output_conv2.2.bias"))

        if mode == "windows":
            def run_official():
                with torch.inference_mode():
                    official.infer_video_depth(clip.numpy(), 30, input_size=size, device="cpu", fp32=True)
        else:
            def run_official():
                fresh = build_official_vda(args.variant, streaming=True)  # its cache lives in the model
                fresh.load_state_dict(official.state_dict())
                with torch.inference_mode():
                    for f in clip.numpy():
                        fresh.infer_video_depth_one(f, input_size=size, device="cpu", fp32=True)

        def run_ours():
            video_depth(ours, frames, streaming=mode == "streaming", input_size=size)

        times = {"official": [], "ours": []}
        for _ in range(args.iters):
            for name, fn in (("official", run_official), ("ours", run_ours)):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
                print(f"{mode} {name}: {times[name][-1]:.1f} s", file=sys.stderr)
        t_off, t_ours = min(times["official"]), min(times["ours"])
        rows.append((arch.name, mode, args.frames / t_off, args.frames / t_ours, t_off / t_ours))
    print(f"\nCPU, {torch.get_num_threads()} threads, fp32, {args.frames} frames of {w}x{h} "
          f"(network input {w}x{h}), fastest of {args.iters}, torch {torch.__version__}\n")
    print("| model | mode | official (frames/s) | ours (frames/s) | ours / official |")
    print("|---|---|---|---|---|")
    for name, mode, off, ours_fps, ratio in rows:
        print(f"| {name} | {mode} | {off:.3f} | {ours_fps:.3f} | {ratio:.2f}x |")


# ---------------------------------------------------------------------------------------------
# Temporal consistency on synthetic moving scenes


def moving_scene(frames: int, height: int, width: int, pan: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(T, H, W, 3) frames and (T, H, W) exact disparity: the camera pans right `pan` px a frame over
    the default layered scene, while its nearest plane slides left and comes nearer."""
    span = width + int(pan * frames) + 2
    planes = list(default_planes(height, span))
    images, truths = [], []
    x = torch.arange(span, dtype=torch.float64).view(1, span).expand(height, span)
    y = torch.arange(height, dtype=torch.float64).view(height, 1).expand(height, span)
    for t in range(frames):
        moved = list(planes)
        near = planes[3]
        moved[3] = dataclasses.replace(near, x0=near.x0 - 3 * pan * t, x1=near.x1 - 3 * pan * t,
                                       d0=min(1.0, near.d0 + 0.002 * t))
        # fraction 0: the centre view; a shift of 1 px only orders the planes by disparity
        view = render_view(tuple(moved), height, span, 1.0, 0.0, 0.0)
        disparity = torch.zeros(height, span, dtype=torch.float64)
        for i, p in enumerate(moved):
            disparity = torch.where(view.plane[0] == i, p.disparity(x, y), disparity)
        left = int(round(pan * t))
        images.append(view.image[0, :, :, left:left + width].permute(1, 2, 0))
        truths.append(disparity[:, left:left + width])
    return torch.stack(images).float().clamp(0, 1), torch.stack(truths)


def consistency_scores(prediction: torch.Tensor, truth: torch.Tensor) -> tuple[float, float]:
    """(error, flicker) of a disparity-like prediction after one clip-wide scale and shift."""
    p, d = prediction.double().flatten(), truth.double().flatten()
    a = torch.stack((p, torch.ones_like(p)), dim=1)
    coef = torch.linalg.lstsq(a, d[:, None]).solution[:, 0]
    fitted = (prediction.double() * coef[0] + coef[1])
    error = (fitted - truth).abs().mean().item()
    flicker = ((fitted[1:] - fitted[:-1]) - (truth[1:] - truth[:-1])).abs().mean().item()
    return error, flicker


def _load(path: str | None, fallback: torch.nn.Module, **hints):
    if path is None:
        from testkit.random_weights import fill_random

        return build_and_load(fill_random(fallback).state_dict(), **hints)
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        sd = load_file(path)
    else:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    return build_and_load(strip_wrappers(sd), **hints)


def consistency(args) -> None:
    w, h = (int(v) for v in args.scene.split("x"))
    frames, truth = moving_scene(args.frames, h, w)
    vda, vda_arch = _load(args.vda, VideoDepthAnything(VideoDepthAnythingConfig(**VIDEO_DEPTH_ANYTHING_SIZES["vits"])),
                          video_metric=bool(args.vda and "metric" in args.vda.lower()))
    da2, da2_arch = _load(args.da2, DepthAnything(DepthAnythingConfig(version=2, **DEPTH_ANYTHING_SIZES["vits"])))

    def disparity_like(pred, arch):
        return pred if arch.output == "disparity" else 1.0 / pred.clamp_min(1e-6)

    metric = vda_arch.output != "disparity"
    results = {
        f"{vda_arch.name}, windows": disparity_like(
            video_depth(vda, frames, metric=metric, input_size=args.resolution), vda_arch),
        f"{vda_arch.name}, streaming": disparity_like(
            video_depth(vda, frames, streaming=True, input_size=args.resolution), vda_arch),
    }
    per_frame = disparity_like(predict(da2, da2_arch, frames, args.resolution), da2_arch)
    results[f"{da2_arch.name}, per frame"] = per_frame
    for s in args.smoothing:
        results[f"{da2_arch.name}, per frame + temporal smoothing {s}"] = smooth_over_time(per_frame, s)
    weights = "given weights" if args.vda and args.da2 else "RANDOM WEIGHTS: these figures say nothing about quality"
    print(f"\n{args.frames} frames of a {w}x{h} synthetic scene (pan 2 px/frame, a plane sliding 6 px/frame "
          f"and approaching), network size {args.resolution}, {weights}\n")
    print("| method | error (disparity, 0..1 scale) | flicker (error of the frame-to-frame change) |")
    print("|---|---|---|")
    for name, pred in results.items():
        err, flick = consistency_scores(pred, truth)
        print(f"| {name} | {err:.4f} | {flick:.4f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--speed", action="store_true", help="frames per second against the official code")
    parser.add_argument("--consistency", action="store_true", help="temporal consistency on a synthetic scene")
    parser.add_argument("--variant", default="vits", choices=["vits", "vitb", "vitl"], help="--speed: model size")
    parser.add_argument("--frames", type=int, default=54, help="clip length (54: three windows)")
    parser.add_argument("--frame", default="448x252", help="--speed: frame size WxH, multiples of 14")
    parser.add_argument("--iters", type=int, default=2, help="--speed: timed runs each (the fastest counts)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    parser.add_argument("--vda", help="--consistency: a Video Depth Anything file")
    parser.add_argument("--da2", help="--consistency: a Depth Anything V2 file")
    parser.add_argument("--scene", default="320x180", help="--consistency: scene size WxH")
    parser.add_argument("--resolution", type=int, default=518, help="--consistency: network input size")
    parser.add_argument("--smoothing", type=float, nargs="*", default=[0.5, 0.8],
                        help="--consistency: temporal smoothing strengths for Depth Anything V2")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not (args.speed or args.consistency):
        parser.error("choose --speed and/or --consistency")
    if args.speed:
        speed(args)
    if args.consistency:
        consistency(args)


if __name__ == "__main__":
    main()
