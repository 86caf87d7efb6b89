"""Peak memory of the Stereo KSampler on a clip, all frames in one batch against chunks of frames.

The tiny SD1.5 UNet on the CPU, 256x256 frames (32x32 latents), 4 euler steps, both eyes batched.
Each configuration runs in a fresh process (the allocator would hide a peak in a reused one).
With frame_chunk the peak beyond the clip's own latents stays with the chunk size; with all frames
in one batch it grows with the clip.

    python -m bench.bench_frame_chunks
"""

from __future__ import annotations

import argparse

from bench.bench_common import peaks_in_fresh_processes, print_peak, start_host

CONFIGS = {f"{frames} frames, frame_chunk {chunk}": (frames, chunk) for frames in (8, 32, 64) for chunk in (0, 4)}


def run(frames: int, chunk: int) -> None:
    import nodes
    import torch

    from testkit.tiny_models import tiny_conditioning, tiny_model

    model = tiny_model("sd15")
    latent = {"samples": torch.zeros(frames, 4, 32, 32)}
    disparity = torch.rand(frames, 64, 64, generator=torch.Generator().manual_seed(0))

    def sample():
        with torch.inference_mode():
            nodes.NODE_CLASS_MAPPINGS["StereoKSampler"].execute(
                model=model, positive=tiny_conditioning(seed=1), negative=tiny_conditioning(seed=2),
                latent_image=latent, disparity=disparity, divergence=8.0, convergence=0.0, subpixel=True,
                balance=0.0, shift_at=0.25, spsmd=True, spsmd_interval=0.25, deblur=True, seed=0, steps=4, cfg=4.0,
                sampler_name="euler", scheduler="normal", denoise=1.0, eyes="batched", frame_chunk=chunk,
            )

    print_peak(sample)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peak-of")
    args = parser.parse_args()
    if args.peak_of:
        start_host(threads=1)
        run(*CONFIGS[args.peak_of])
        return
    peaks = peaks_in_fresh_processes("bench.bench_frame_chunks", list(CONFIGS), [])
    print("| clip | frame_chunk | peak memory |")
    print("|---|---|---|")
    for name, (frames, chunk) in CONFIGS.items():
        print(f"| {frames} frames | {chunk or 'all (0)'} | {peaks[name]:.0f} MiB |")


if __name__ == "__main__":
    main()
