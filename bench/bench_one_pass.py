"""One-pass text to stereo against the two-pass graph, and batched eyes against a plain batch of 2.

Run from the repository root (needs a ComfyUI checkout, found as the tests find it):
    python -m bench.bench_one_pass [--steps 20] [--size 32] [--repeats 5] [--threads 1]

Everything runs in this one process on the same tiny SD1.5-shaped UNet, the same tiny Depth Anything
network and a TAESD decoder, with the same seed; the configurations of a comparison alternate run by
run (interleaved), so a busy machine slows them alike, and the table gives medians and their ratio.
Peak memory is the rise of the peak resident set during one run of a configuration in a fresh
subprocess of this script (Linux, CPU): in a process that already ran, the allocator reuses memory.

1. text to stereo: two passes (KSampler, VAE Decode, Estimate Disparity, StereoKSampler with the
   map) against one pass (StereoKSampler with disparity_model and vae);
2. StereoKSampler (eyes batched, and eyes separate) against a plain KSampler on a batch of 2.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench import bench_common
from testkit import tiny_models
from testkit.random_weights import fill_random


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=32, help="latent size (square); 32 = 256 px")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--peak-of", help=argparse.SUPPRESS)
    args = parser.parse_args()

    bench_common.start_host(args.threads)
    import comfy.sd
    import folder_paths
    import nodes
    import torch
    from comfy.taesd.taesd import TAESD

    from testkit.tiny_depth import write_tiny_depth_anything

    node = nodes.NODE_CLASS_MAPPINGS
    model = tiny_models.tiny_model("sd15")
    pos, neg = tiny_models.tiny_conditioning(seed=1), tiny_models.tiny_conditioning(seed=2)
    decoder = TAESD(latent_channels=4)
    fill_random(decoder, seed=3)
    vae = comfy.sd.VAE(sd=decoder.state_dict())
    folder = Path(tempfile.mkdtemp())
    write_tiny_depth_anything(folder / "bench_depth.safetensors")
    paths, exts = folder_paths.folder_names_and_paths["depthanything"]
    folder_paths.folder_names_and_paths["depthanything"] = ([str(folder), *paths], exts)
    folder_paths.filename_list_cache.clear()
    depth = node["StereoDisparityModelLoader"].execute(
        model_name="depthanything/bench_depth.safetensors", precision="fp32", download_if_missing=False).result[0]

    size, steps = args.size, args.steps
    one = {"samples": torch.zeros(1, 4, size, size)}
    common = dict(
        model=model, positive=pos, negative=neg, latent_image=one, divergence=8.0, convergence=0.0, subpixel=True,
        balance=0.0, shift_at=0.2, spsmd=True, spsmd_interval=0.2, deblur=True, seed=1, steps=steps, cfg=7.0,
        sampler_name="euler", scheduler="normal", denoise=1.0,
    )

    def two_pass():
        latent = nodes.common_ksampler(model, 1, steps, 7.0, "euler", "normal", pos, neg, one)[0]
        image = vae.decode(latent["samples"])
        disparity = node["StereoEstimateDisparity"].execute(
            disparity_model=depth, image=image, resolution=0, normalization="per image").result[0]
        return node["StereoKSampler"].execute(**common, disparity=disparity)

    def one_pass():
        return node["StereoKSampler"].execute(**common, disparity_model=depth, vae=vae)

    disparity = torch.rand(1, size * 8, size * 8, generator=torch.Generator().manual_seed(0))

    def plain_batch_2():
        return nodes.common_ksampler(model, 1, steps, 7.0, "euler", "normal", pos, neg,
                                     {"samples": torch.zeros(2, 4, size, size)})

    def eyes(mode):
        return lambda: node["StereoKSampler"].execute(**common, disparity=disparity, eyes=mode)

    batch = {"plain KSampler, batch 2": plain_batch_2, "StereoKSampler, eyes batched": eyes("batched"),
             "StereoKSampler, eyes separate": eyes("separate")}
    if args.peak_of:
        bench_common.print_peak(batch[args.peak_of])
        return
    print(f"tiny SD1.5 UNet + tiny Depth Anything + TAESD, CPU, {torch.get_num_threads()} thread(s), "
          f"{steps} steps euler, cfg 7, {size * 8}x{size * 8} px, median of {args.repeats} interleaved runs\n")
    passes = bench_common.interleaved({"two passes": two_pass, "one pass": one_pass}, args.repeats)
    print("| text to stereo | time | ratio |\n|---|---|---|")
    for name, t in passes.items():
        print(f"| {name} | {t * 1e3:.0f} ms | {t / passes['two passes']:.2f}x |")
    timed = bench_common.interleaved(batch, args.repeats)
    peaks = bench_common.peaks_in_fresh_processes(
        "bench.bench_one_pass", batch, ["--steps", str(steps), "--size", str(size), "--threads", str(args.threads)])
    print()
    bench_common.print_time_and_peak_table(timed, peaks, base="plain KSampler, batch 2")


if __name__ == "__main__":
    main()
