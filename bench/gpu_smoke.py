"""One-command CUDA check: the device-sensitive parts on the GPU, compared with the CPU, timed,
with their memory peaks, then the warp benchmark on the GPU. Prints one table.

    python -m bench.gpu_smoke                 # from the pack's folder, on a machine with CUDA
    python -m bench.gpu_smoke --allow-cpu --size 128 --latent 8 --no-bench   # the script itself, on a CPU

Rows: the full-resolution warp (1024 px), the stereo sampler with both eyes batched and separate
(tiny SD1.5-shaped UNet, left eye against the plain KSampler), a tiny Depth Anything V2 through
Estimate Disparity's code. "rel diff" is the largest difference from the reference (the same call
on the CPU; for the sampler rows the plain KSampler's left images on the same device), relative
to the reference's range; "peak MiB" is torch's peak of allocated device memory in the timed calls. Without CUDA it stops
with exit code 2 (`--allow-cpu` runs it on the CPU, to check the script itself).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import torch

from bench import bench_common  # noqa: F401  (registers stereo_pack)
from headless import comfy_host


def _timed(fn, device: torch.device, repeats: int = 3):
    """(result, median seconds, peak MiB on the device) of fn() after one warm-up."""
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else float("nan")
    return out, sorted(times)[len(times) // 2], peak


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().float().cpu(), b.detach().float().cpu()
    return float((a - b).abs().max() / (b.amax() - b.amin()).clamp_min(1e-8))


def warp_row(device, size: int):
    from stereo_pack.stereo_ops.synthetic_scenes import layered_scene
    from stereo_pack.stereo_ops.warp import stereo_warp

    scene = layered_scene(size, size, 8.0, 0.0, 0.5)
    image, d = scene.center.image.float(), scene.disparity.float()
    cpu = stereo_warp(image, d, 8.0, 0.0, 0.5).right.image
    gpu_in, gpu_d = image.to(device), d.to(device)
    out, t, peak = _timed(lambda: stereo_warp(gpu_in, gpu_d, 8.0, 0.0, 0.5).right.image, device)
    return f"warp {size}x{size}, both eyes", _rel(out, cpu), t, peak


def sampler_rows(device, side: int):
    import comfy.model_patcher
    import nodes
    from testkit.tiny_models import tiny_conditioning, tiny_model

    model = tiny_model("sd15")
    model = comfy.model_patcher.ModelPatcher(model.model, load_device=device, offload_device=torch.device("cpu"))
    pos, neg = tiny_conditioning("sd15", seed=1), tiny_conditioning("sd15", seed=2)
    latent = {"samples": torch.zeros(2, 4, side, side)}
    disparity = torch.rand(1, 8 * side, 8 * side, generator=torch.Generator().manual_seed(0))
    plain = nodes.common_ksampler(model, 7, 20, 5.0, "euler", "normal", pos, neg, latent)[0]["samples"]
    sampler = nodes.NODE_CLASS_MAPPINGS["StereoKSampler"]
    rows = []
    for eyes in ("batched", "separate"):
        def run(eyes=eyes):
            return sampler.execute(
                model=model, positive=pos, negative=neg, latent_image=latent, disparity=disparity, divergence=8.0,
                convergence=0.0, subpixel=True, balance=0.0, shift_at=0.2, spsmd=True, spsmd_interval=0.2,
                deblur=True, seed=7, steps=20, cfg=5.0, sampler_name="euler", scheduler="normal", denoise=1.0,
                eyes=eyes,
            ).result[0]["samples"]

        out, t, peak = _timed(run, device, repeats=2)
        rows.append((f"stereo KSampler 2x{8 * side}px, eyes {eyes} (left vs plain)", _rel(out[:2], plain), t, peak))
    return rows


def depth_row(device):
    import comfy.model_patcher
    from stereo_pack.nodes.depth import DisparityModel, run_disparity_model
    from stereo_pack.stereo_ops.depth import build_and_load
    from testkit.tiny_depth import tiny_depth_anything

    network, arch = build_and_load(tiny_depth_anything(2).state_dict())
    images = torch.rand(4, 384, 512, 3, generator=torch.Generator().manual_seed(1))

    def on(dev):
        patcher = comfy.model_patcher.ModelPatcher(network, load_device=dev, offload_device=torch.device("cpu"))
        return DisparityModel(patcher, arch, torch.float32, "tiny")

    cpu = run_disparity_model(on(torch.device("cpu")), images, progress=False)
    gpu = on(device)
    out, t, peak = _timed(lambda: run_disparity_model(gpu, images, batch_size=4, progress=False), device)
    return "depth (tiny DA V2) 4x512x384", _rel(out, cpu), t, peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--allow-cpu", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-bench", action="store_true", help="skip the warp benchmark")
    parser.add_argument("--size", type=int, default=1024, help="image side of the warp check")
    parser.add_argument("--latent", type=int, default=64, help="latent side of the sampler check (64 = 512 px)")
    args = parser.parse_args()
    if not torch.cuda.is_available() and not args.allow_cpu:
        print("gpu_smoke: no CUDA device is visible to torch (torch.cuda.is_available() is False); run it on a "
              "machine with an NVIDIA GPU and a CUDA build of torch.", file=sys.stderr)
        return 2
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    comfy_host.import_comfyui(comfy_host.require_comfyui(), cpu=device.type == "cpu")
    comfy_host.load_pack()
    import comfy.utils

    comfy.utils.PROGRESS_BAR_ENABLED = False
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU (--allow-cpu)"
    print(f"device: {name}; torch {torch.__version__}")
    rows = [warp_row(device, args.size), *sampler_rows(device, args.latent), depth_row(device)]
    print(f"{'check':<56} {'rel diff':>9} {'time s':>8} {'peak MiB':>9}")
    for label, rel, t, peak in rows:
        print(f"{label:<56} {rel:>9.2e} {t:>8.3f} {peak:>9.1f}")
    if not args.no_bench:
        cmd = [sys.executable, "-m", "bench.bench_warp", "--device", device.type, "--sizes", "1024,2048", "--rounds", "5"]
        print("$ " + " ".join(cmd[1:]), flush=True)
        return subprocess.call(cmd, cwd=comfy_host.PACK_DIR)
    return 0


if __name__ == "__main__":
    sys.exit(main())
