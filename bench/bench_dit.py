"""Stereo sampling on a Flux-shaped DiT: StereoKSampler with and without StereoAttentionPatch,
against a plain KSampler on a batch of 2 (the cost of two independent images).

Run from the repository root (needs a ComfyUI checkout, found as the tests find it):
    python -m bench.bench_dit [--steps 20] [--size 32] [--repeats 5] [--threads 1]

One process builds one small random Flux-shaped model (hidden 256, 4 heads, 2 double and 4 single
blocks; `--size` is the latent side, 32 = 256 image tokens) and times every configuration
round-robin, interleaved, so that machine load affects all of them alike; the table gives the
median of each and its ratio to the plain batch-2 run. Flux is guidance-distilled: cfg 1.
"""

from __future__ import annotations

import argparse

from bench import bench_common
from testkit import tiny_models

CONFIGS = [
    "plain KSampler, batch 2",
    "StereoKSampler",
    "StereoKSampler + unidirectional",
    "StereoKSampler + bidirectional",
]
FLUX_SHAPE = dict(hidden_size=256, num_heads=4, axes_dim=[16, 24, 24], depth=2, depth_single_blocks=4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=32, help="latent side (16-channel latent)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    bench_common.start_host(args.threads)
    import nodes
    import torch

    model = tiny_models.tiny_dit("flux", output_scale=0.3, **FLUX_SHAPE)
    pos, neg = tiny_models.tiny_dit_conditioning(seed=1, tokens=16), tiny_models.tiny_dit_conditioning(seed=2, tokens=16)
    patch = nodes.NODE_CLASS_MAPPINGS["StereoAttentionPatch"]
    models = {
        CONFIGS[1]: model,
        CONFIGS[2]: patch.execute(model=model, mode="unidirectional", start_percent=0.0, end_percent=1.0).result[0],
        CONFIGS[3]: patch.execute(model=model, mode="bidirectional", start_percent=0.0, end_percent=1.0).result[0],
    }
    size = args.size
    disparity = torch.rand(1, size * 8, size * 8, generator=torch.Generator().manual_seed(0))

    def run(config):
        if config == CONFIGS[0]:
            latent = {"samples": torch.zeros(2, 16, size, size)}
            return nodes.common_ksampler(model, 1, args.steps, 1.0, "euler", "simple", pos, neg, latent)
        return nodes.NODE_CLASS_MAPPINGS["StereoKSampler"].execute(
            model=models[config], positive=pos, negative=neg, latent_image={"samples": torch.zeros(1, 16, size, size)},
            disparity=disparity, divergence=8.0, convergence=0.0, subpixel=True, balance=0.0, shift_at=0.2,
            spsmd=True, spsmd_interval=0.2, deblur=True, seed=1, steps=args.steps, cfg=1.0, sampler_name="euler",
            scheduler="simple", denoise=1.0)

    with torch.inference_mode():
        median = bench_common.interleaved({c: (lambda c=c: run(c)) for c in CONFIGS}, args.repeats)
    base = median[CONFIGS[0]]
    print(f"Flux-shaped DiT (hidden 256, 2 double + 4 single blocks), CPU, {torch.get_num_threads()} thread(s), "
          f"{args.steps} steps euler, cfg 1, one pair of {size * 8}x{size * 8} px ({(size // 2) ** 2} image tokens), "
          f"median of {args.repeats}, interleaved")
    print("| run | time | ratio to plain batch 2 |")
    print("|---|---|---|")
    for config in CONFIGS:
        print(f"| {config} | {median[config] * 1e3:.0f} ms | {median[config] / base:.2f}x |")


if __name__ == "__main__":
    main()
