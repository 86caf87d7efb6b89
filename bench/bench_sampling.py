"""StereoKSampler against a plain KSampler on the doubled latent: wall time and peak memory.

Run from the repository root (needs a ComfyUI checkout, found as the tests find it):
    python bench/bench_sampling.py [--steps 20] [--size 32] [--repeats 3]

Every configuration runs in its own fresh subprocess of this script (same model, same inputs),
all from this one invocation, and the table gives ratios against the plain KSampler. Peak memory
is the rise of the process's peak resident set during the first sampling run (Linux), on the CPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ["plain KSampler (2 images)", "StereoKSampler", "StereoKSampler + unidirectional", "StereoKSampler + bidirectional"]


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _child(config: str, steps: int, size: int, repeats: int, threads: int) -> dict:
    sys.path.insert(0, str(ROOT / "tests"))
    import host_harness

    host = host_harness.find_host()
    if host is None:
        raise SystemExit("no ComfyUI found: set COMFYUI_PATH")
    host_harness.import_host(host)
    host_harness.load_pack()
    import comfy.utils
    import nodes
    import torch

    torch.set_num_threads(threads)
    model = host_harness.tiny_model("sd15")
    pos, neg = host_harness.tiny_conditioning(seed=1), host_harness.tiny_conditioning(seed=2)
    model_in = model
    if "directional" in config:
        mode = "unidirectional" if "unidirectional" in config else "bidirectional"
        model_in = nodes.NODE_CLASS_MAPPINGS["StereoAttentionPatch"].execute(
            model=model, mode=mode, start_percent=0.0, end_percent=1.0).result[0]
    disparity = torch.rand(1, size * 8, size * 8, generator=torch.Generator().manual_seed(0))

    def run():
        if config.startswith("plain"):
            latent = {"samples": torch.zeros(2, 4, size, size)}
            return nodes.common_ksampler(model_in, 1, steps, 7.0, "euler", "normal", pos, neg, latent)
        return nodes.NODE_CLASS_MAPPINGS["StereoKSampler"].execute(
            model=model_in, positive=pos, negative=neg, latent_image={"samples": torch.zeros(1, 4, size, size)},
            disparity=disparity, divergence=8.0, convergence=0.0, subpixel=True, balance=0.0, shift_at=0.2,
            spsmd=True, spsmd_interval=0.2, deblur=True, seed=1, steps=steps, cfg=7.0, sampler_name="euler",
            scheduler="normal", denoise=1.0)

    comfy.utils.PROGRESS_BAR_ENABLED = False
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak resident set
    base = _rss_kib("VmRSS")
    run()
    peak = (_rss_kib("VmHWM") - base) / 1024
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return {"time": statistics.median(times), "peak_mib": peak, "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=32, help="latent size (square), 32 = 256 px")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads in each run")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.steps, args.size, args.repeats, args.threads)))
        return
    results = {}
    for config in CONFIGS:
        out = subprocess.run(
            [sys.executable, __file__, "--child", config, "--steps", str(args.steps), "--size", str(args.size),
             "--repeats", str(args.repeats), "--threads", str(args.threads)],
            capture_output=True, text=True, check=True,
        )
        results[config] = json.loads(out.stdout.strip().splitlines()[-1])
    base = results[CONFIGS[0]]
    first = next(iter(results.values()))
    print(f"tiny SD1.5 UNet, CPU, {first['threads']} threads, {args.steps} steps euler, cfg 7, "
          f"one pair of {args.size * 8}x{args.size * 8} px, median of {args.repeats}")
    print("| run | time | time ratio | peak memory | memory ratio |")
    print("|---|---|---|---|---|")
    for config, r in results.items():
        print(f"| {config} | {r['time'] * 1e3:.0f} ms | {r['time'] / base['time']:.2f}x "
              f"| {r['peak_mib']:.1f} MiB | {r['peak_mib'] / max(base['peak_mib'], 1e-9):.2f}x |")


if __name__ == "__main__":
    main()
