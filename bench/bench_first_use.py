"""What a first run costs on the CPU: the shipped workflows through the headless runner, with model
files of the real architectures.

Run from the repository root (needs a ComfyUI checkout, found as the tests find it):
    python -m bench.bench_first_use [--models DIR] [--only NAME ...]   # the "try it" runs, end to end
    python -m bench.bench_first_use --components                       # the pieces the shipped settings repeat

No real weights are needed: the script writes a checkpoint with Stable Diffusion 1.5's exact
architecture (UNet, CLIP-L text encoder, VAE) and a Depth Anything V2 Small file, all with random
weights. The arithmetic of a forward pass does not depend on the weights' values, so the times are
those of the real files (the pictures, of course, are noise). Each configuration is one run of
`python -m headless.run_workflow ... --cpu` in a subprocess on one thread (OMP_NUM_THREADS=1), and
the table gives the CPU time it used (user + system): on a machine shared with other work that is
what the run costs, where wall time would measure the neighbours. A dedicated core takes about
that long; several cores take less (torch spreads the large layers over them).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from headless import comfy_host
from testkit.random_weights import fill_random


CHECKPOINT = "sd15_architecture_random.safetensors"
DEPTH = "depth_anything_v2_vits_random.safetensors"

# The UNet of SD1.5: four levels, attention in the upper three, as the host detects it from the keys.
SD15_FULL_UNET = {
    "image_size": 32, "in_channels": 4, "out_channels": 4, "model_channels": 320,
    "channel_mult": [1, 2, 4, 4], "num_res_blocks": [2, 2, 2, 2],
    "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
    "transformer_depth_output": [0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1],
    "transformer_depth_middle": 1, "context_dim": 768, "num_heads": 8, "num_head_channels": -1,
    "use_spatial_transformer": True, "use_linear_in_transformer": False, "legacy": False,
    "adm_in_channels": None, "use_checkpoint": False, "use_temporal_resblock": False,
    "use_temporal_attention": False,
}
SD_VAE = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
          "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}

# name: (workflow, --set assignments)
CONFIGS = {
    "text, try it (256 px, 10 steps)": ("text_to_stereo", [
        "Empty Latent Image.width=256", "Empty Latent Image.height=256", "Left view.steps=10", "Stereo KSampler.steps=10",
    ]),
    "photo, try it (256 px, 10 steps, fixed_point)": ("photo_to_stereo", [
        "Upscale Image.width=256", "Stereo Null-Text Inversion.method=fixed_point",
        "Stereo Null-Text Inversion.steps=10", "Stereo KSampler.steps=10",
    ]),
}


def write_models(root: Path) -> None:
    """The SD1.5-architecture checkpoint and the Depth Anything V2 Small file, random weights."""
    import torch
    from safetensors.torch import save_file

    comfy_host.import_comfyui(comfy_host.require_comfyui(), cpu=True)
    import comfy.ops
    from comfy.ldm.models.autoencoder import AutoencoderKL
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    from testkit import tiny_checkpoints, tiny_depth
    from stereo_pack.stereo_ops.depth.depth_anything import DEPTH_ANYTHING_SIZES

    ckpt = root / "checkpoints" / CHECKPOINT
    if not ckpt.exists():
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        unet = UNetModel(**SD15_FULL_UNET, dtype=torch.float32, device="cpu", operations=comfy.ops.disable_weight_init)
        fill_random(unet, 0)
        vae = AutoencoderKL(ddconfig=SD_VAE, embed_dim=4)
        fill_random(vae, 2)
        sd = tiny_checkpoints.prefixed_state_dict("model.diffusion_model.", unet, torch.float16)
        del unet
        sd.update(tiny_checkpoints.prefixed_state_dict("cond_stage_model.transformer.", tiny_checkpoints.clip_text_model(None, 1), torch.float16))
        sd.update(tiny_checkpoints.prefixed_state_dict("first_stage_model.", vae, torch.float16))
        save_file(sd, str(ckpt))
    depth = root / "depthanything" / DEPTH
    if not depth.exists():
        depth.parent.mkdir(parents=True, exist_ok=True)
        model = tiny_depth.tiny_depth_anything(2, 0, **DEPTH_ANYTHING_SIZES["vits"])
        tiny_depth.save_state_dict(model.state_dict(), depth)


def component_times(repeats: int = 2) -> list[tuple[str, float]]:
    """CPU seconds (one thread) of the pieces that the shipped settings repeat: one guided UNet
    evaluation (batch 2: conditional and unconditional) per latent size, and one VAE decode."""
    import torch

    torch.set_num_threads(1)
    comfy_host.import_comfyui(comfy_host.require_comfyui(), cpu=True)
    import comfy.ops
    from comfy.ldm.models.autoencoder import AutoencoderKL
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    unet = UNetModel(**SD15_FULL_UNET, dtype=torch.float32, device="cpu", operations=comfy.ops.disable_weight_init)
    fill_random(unet, 0)
    vae = AutoencoderKL(ddconfig=SD_VAE, embed_dim=4)
    fill_random(vae, 2)
    context = torch.randn(2, 77, 768)

    def cpu_time(fn) -> float:
        fn()  # warm-up
        best = float("inf")
        for _ in range(repeats):
            t0 = time.process_time()
            fn()
            best = min(best, time.process_time() - t0)
        return best

    rows = []
    with torch.no_grad():
        for px in (256, 512):
            x = torch.randn(2, 4, px // 8, px // 8)
            rows.append((f"UNet evaluation, {px} px, batch 2 (one guided step)",
                         cpu_time(lambda: unet(x, torch.tensor([500.0, 500.0]), context=context))))
        z = torch.randn(1, 4, 64, 64)
        rows.append(("VAE decode, 512 px", cpu_time(lambda: vae.decode(z))))
    return rows


def photo(path: Path) -> None:
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:768, 0:1024]
    Image.fromarray(np.stack([x / 4, y / 3, (x + y) / 7], -1).clip(0, 255).astype(np.uint8)).save(path)


def cpu_seconds_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(name: str, models: Path, work: Path) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one run of the runner."""

    workflow, sets = CONFIGS[name]
    cmd = [sys.executable, "-m", "headless.run_workflow", workflow, "--comfyui", str(comfy_host.require_comfyui()),
           "--models", str(models), "--cpu",
           "--no-custom-nodes", "--checkpoint", CHECKPOINT, "--output", str(work / "out"),
           "--set", f"Load Disparity Model.model_name=depthanything/{DEPTH}",
           "--set", "Load Disparity Model.download_if_missing=false"]
    if workflow == "photo_to_stereo":
        cmd += ["--image", str(work / "photo.png")]
    for s in sets:
        cmd += ["--set", s]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cpu0, t0 = cpu_seconds_of_children(), time.perf_counter()
    result = subprocess.run(cmd, cwd=comfy_host.PACK_DIR, capture_output=True, text=True, env=env)
    cpu, wall = cpu_seconds_of_children() - cpu0, time.perf_counter() - t0
    if result.returncode != 0:
        raise SystemExit(f"{name} failed:\n{result.stderr[-3000:]}")
    return cpu, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", help="folder for the generated model files (default: a temporary folder)")
    parser.add_argument("--only", action="append", help="run only the configurations whose name contains this")
    parser.add_argument("--components", action="store_true", help="time the repeated pieces (UNet step, VAE decode) instead")
    args = parser.parse_args()
    if args.components:
        print("| piece | CPU time (one thread) |")
        print("|---|---|")
        for name, seconds in component_times():
            print(f"| {name} | {seconds:.2f} s |", flush=True)
        return
    models = Path(args.models) if args.models else Path(tempfile.mkdtemp(prefix="stereo-first-use-"))
    write_models(models)
    work = Path(tempfile.mkdtemp(prefix="stereo-first-use-run-"))
    photo(work / "photo.png")
    print(f"models in {models}; one thread per run")
    print("| run | CPU time | wall time (shared machine) |")
    print("|---|---|---|")
    for name in CONFIGS:
        if args.only and not any(o in name for o in args.only):
            continue
        cpu, wall = run(name, models, work)
        print(f"| {name} | {cpu:.0f} s | {wall:.0f} s |", flush=True)


if __name__ == "__main__":
    main()
