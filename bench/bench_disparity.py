"""Depth networks on the CPU: our implementation against the official one, same weights, one run.

Needs the official repositories checked out locally (their code is not part of this project):

    STEREO_OFFICIAL_DA2=<Depth-Anything-V2> STEREO_OFFICIAL_DA1=<Depth-Anything> \
    STEREO_OFFICIAL_MIDAS=<MiDaS> STEREO_OFFICIAL_DA3=<Depth-Anything-3> python -m bench.bench_disparity

Each architecture is built once by the official code with random weights; the same weights are
loaded into ours. Both run the network forward, batch 1, interleaved (official, ours, official,
...) so machine load affects both alike; the fastest of `--iters` runs counts. Depth Anything V1/V2
and MiDaS run at their native square resolution; Depth Anything 3 (a video model here) at the
network size of a `--frame` sized video frame (default 512x288: 504x280), and also through the
whole disparity stage of Estimate Disparity (resize, network, 1/Z, normalisation, upsampling back
to the frame) in frames per second. Prints markdown tables with images per second and the ratio
ours / official (above 1 = ours faster).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time

import torch

from headless import comfy_host  # noqa: F401  (registers `stereo_pack`)
from testkit.official_models import (
    ENV,
    FINAL_BIAS,
    FINAL_BIAS_VALUE,
    SCALED,
    build_official,
    official_path,
    published_da3_state_dict,
    randomize,
)
from stereo_pack.stereo_ops.depth import build_and_load, estimate_disparity, network_input_size

ARCHS = {
    "da2-vits": ("da2", "vits", 2), "da2-vitb": ("da2", "vitb", 2), "da2-vitl": ("da2", "vitl", 2),
    "da1-vits": ("da1", "vits", 1), "da1-vitb": ("da1", "vitb", 1), "da1-vitl": ("da1", "vitl", 1),
    "midas-dpt_large": ("midas", "dpt_large", 2), "midas-dpt_hybrid": ("midas", "dpt_hybrid", 2),
    "midas-beit_large": ("midas", "beit_large", 2),
    "da3-small": ("da3", "da3-small", 2), "da3-base": ("da3", "da3-base", 2),
    "da3mono-large": ("da3", "da3mono-large", 2), "da3metric-large": ("da3", "da3metric-large", 2),
}


def _bench(fns, iters: int) -> list[float]:
    """Fastest time of each callable, the callables run in turn (interleaved) after one warm-up each."""
    with torch.inference_mode():
        for fn in fns:
            fn()
        times = [[] for _ in fns]
        for _ in range(iters):
            for fn, t in zip(fns, times):
                t0 = time.perf_counter()
                fn()
                t.append(time.perf_counter() - t0)
    # The fastest run is the least disturbed by other work on the machine.
    return [min(t) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", default=",".join(ARCHS), help="comma separated, from: " + ", ".join(ARCHS))
    parser.add_argument("--iters", type=int, default=3, help="timed runs per implementation (the fastest counts)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    parser.add_argument("--frame", default="512x288", help="video frame size WxH for Depth Anything 3")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    frame_w, frame_h = (int(v) for v in args.frame.split("x"))
    rows, video_rows = [], []
    for key in args.archs.split(","):
        repo, variant, version = ARCHS[key]
        if official_path(repo) is None:
            print(f"skipping {key}: set {ENV[repo]}", file=sys.stderr)
            continue
        official = build_official(repo, variant)
        sd = randomize(official, FINAL_BIAS[repo], bias_value=FINAL_BIAS_VALUE.get(repo, 0.5), scaled=SCALED.get(repo))
        if repo == "da3":
            sd = published_da3_state_dict(sd)
        ours, arch = build_and_load(sd, depth_anything_version=version, da3_metric="metric" in variant)
        del sd
        if repo == "da3":
            size = network_input_size(arch, frame_h, frame_w)
        else:
            size = (arch.native_size, arch.native_size)
        x = torch.randn(1, 3, *size)
        frames = torch.rand(1, frame_h, frame_w, 3)
        fns = [lambda: official(x), lambda: ours(x)]
        if repo == "da3":
            fns.append(lambda: estimate_disparity(ours, arch, frames))
        t_off, t_ours, *t_rest = _bench(fns, args.iters)
        if repo == "da3":
            t_stage = t_rest[0]
            video_rows.append((arch.name, size, 1 / t_off, 1 / t_ours, t_off / t_ours, 1 / t_stage))
        else:
            rows.append((arch.name, size[0], 1 / t_off, 1 / t_ours, t_off / t_ours))
        print(f"{key}: official {1 / t_off:.3f} img/s, ours {1 / t_ours:.3f} img/s", file=sys.stderr)
        del official, ours
        gc.collect()
    print(f"\nCPU, {torch.get_num_threads()} threads, batch 1, torch {torch.__version__}\n")
    if rows:
        print("| model | input | official (img/s) | ours (img/s) | ours / official |")
        print("|---|---|---|---|---|")
        for name, size, off, ours_ips, ratio in rows:
            print(f"| {name} | {size}x{size} | {off:.3f} | {ours_ips:.3f} | {ratio:.2f}x |")
    if video_rows:
        print(f"\nDepth Anything 3 on {frame_w}x{frame_h} video frames\n")
        print("| model | network input | official network (frames/s) | ours network (frames/s) | ours / official "
              "| ours, whole disparity stage (frames/s) |")
        print("|---|---|---|---|---|---|")
        for name, (h, w), off, ours_ips, ratio, stage in video_rows:
            print(f"| {name} | {w}x{h} | {off:.3f} | {ours_ips:.3f} | {ratio:.2f}x | {stage:.3f} |")


if __name__ == "__main__":
    main()
