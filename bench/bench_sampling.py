"""StereoKSampler (with and without the attention patch) against a plain KSampler on a batch of 2.

Run from the repository root (needs a ComfyUI checkout, found as the tests find it):
    python -m bench.bench_sampling [--steps 20] [--size 32] [--repeats 5] [--threads 1]

All configurations run in this one process on the same tiny SD1.5-shaped UNet and inputs and
alternate run by run (interleaved), so a busy machine slows them alike; the table gives medians
and their ratios to the plain KSampler. Peak memory is the rise of the peak resident set during
one run of a configuration in a fresh subprocess of this script (Linux, CPU).
"""

from __future__ import annotations

import argparse

from bench import bench_common
from testkit import tiny_models

CONFIGS = ["plain KSampler (2 images)", "StereoKSampler", "StereoKSampler + unidirectional",
           "StereoKSampler + bidirectional", "StereoKSampler, eyes separate"]


def _runs(steps: int, size: int) -> dict:
    import nodes
    import torch

    model = tiny_models.tiny_model("sd15")
    pos, neg = tiny_models.tiny_conditioning(seed=1), tiny_models.tiny_conditioning(seed=2)
    node = nodes.NODE_CLASS_MAPPINGS
    patched = {mode: node["StereoAttentionPatch"].execute(model=model, mode=mode, start_percent=0.0,
                                                          end_percent=1.0).result[0]
               for mode in ("unidirectional", "bidirectional")}
    disparity = torch.rand(1, size * 8, size * 8, generator=torch.Generator().manual_seed(0))

    def stereo(model_in, eyes="batched"):
        return lambda: node["StereoKSampler"].execute(
            model=model_in, positive=pos, negative=neg, latent_image={"samples": torch.zeros(1, 4, size, size)},
            disparity=disparity, divergence=8.0, convergence=0.0, subpixel=True, balance=0.0, shift_at=0.2,
            spsmd=True, spsmd_interval=0.2, deblur=True, seed=1, steps=steps, cfg=7.0, sampler_name="euler",
            scheduler="normal", denoise=1.0, eyes=eyes)

    def plain():
        return nodes.common_ksampler(model, 1, steps, 7.0, "euler", "normal", pos, neg,
                                     {"samples": torch.zeros(2, 4, size, size)})

    return dict(zip(CONFIGS, [plain, stereo(model), stereo(patched["unidirectional"]),
                              stereo(patched["bidirectional"]), stereo(model, "separate")]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=32, help="latent size (square), 32 = 256 px")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--peak-of", help=argparse.SUPPRESS)
    args = parser.parse_args()
    bench_common.start_host(args.threads)
    import torch

    runs = _runs(args.steps, args.size)
    if args.peak_of:
        bench_common.print_peak(runs[args.peak_of])
        return
    times = bench_common.interleaved(runs, args.repeats)
    peaks = bench_common.peaks_in_fresh_processes(
        "bench.bench_sampling", runs, ["--steps", str(args.steps), "--size", str(args.size), "--threads", str(args.threads)])
    print(f"tiny SD1.5 UNet, CPU, {torch.get_num_threads()} thread(s), {args.steps} steps euler, cfg 7, "
          f"one pair of {args.size * 8}x{args.size * 8} px, median of {args.repeats} interleaved runs")
    bench_common.print_time_and_peak_table(times, peaks, base=CONFIGS[0])


if __name__ == "__main__":
    main()
