"""Photo inversion: cost and reconstruction quality per method, measured side by side in one run.

Run from the repository root (needs a ComfyUI checkout, found like the tests find it):
    python -m bench.bench_inversion
Each method inverts the same random "photo" latent with a tiny SD1.5-shaped UNet on the CPU, then
the forward pass (Euler over the inversion's schedule at the same cfg, through the host's sampler)
reconstructs it; PSNR is measured on the latent, the peak being the photo latent's value range.
The UNet's output layer is scaled down (--output-scale) so that the random network behaves like a
trained, smooth denoiser; at scale 1 a random UNet is too rough in x for any inversion to hold.
"""

from __future__ import annotations

import argparse
import time

import torch

from headless import comfy_host
from testkit import tiny_models



def tame_model(output_scale: float):
    with torch.inference_mode():
        model = tiny_models.tiny_model("sd15")
        out = model.model.diffusion_model.out[-1]
        out.weight.mul_(output_scale)
        out.bias.mul_(output_scale)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--cfg", type=float, default=7.5)
    parser.add_argument("--size", default="32x48", help="latent height x width")
    parser.add_argument("--output-scale", type=float, default=0.1)
    parser.add_argument("--fixed-point-iterations", default="1,2", help="comma separated")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (tiny models run best on one)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    host = comfy_host.require_comfyui()
    comfy_host.import_comfyui(host, cpu=True)
    comfy_host.load_pack()
    rt = comfy_host.pack_module("nodes.inversion_runtime")
    inv = comfy_host.pack_module("stereo_ops.inversion")

    model = tame_model(args.output_scale)
    positive = tiny_models.tiny_conditioning("sd15", seed=1)
    negative = tiny_models.tiny_conditioning("sd15", seed=2)
    height, width = (int(v) for v in args.size.split("x"))
    photo = torch.randn(1, 4, height, width, generator=torch.Generator().manual_seed(3)) * 5

    runs = [("ddim", {}), ("null_text", {})]
    runs += [("fixed_point", {"fixed_point_iterations": int(k)}) for k in args.fixed_point_iterations.split(",")]
    rows = []
    for method, options in runs:
        with torch.inference_mode():
            t0 = time.perf_counter()
            inversion, report = rt.invert(model, positive, negative, photo, args.steps, args.cfg, method, **options)
            seconds = time.perf_counter() - t0
            reconstruction = rt.reconstruct_latent(model, inversion, positive, negative, args.cfg)
        label = method if not options else f"{method}, {options['fixed_point_iterations']} call(s)/step"
        rows.append((label, report, seconds, inv.latent_psnr(reconstruction, photo)))

    reference = next(seconds for label, _, seconds, _ in rows if label == "null_text")
    print(
        f"ComfyUI {comfy_host.host_version(host)}, torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
        f"tiny SD1.5 UNet (output x{args.output_scale}), latent {height}x{width}, {args.steps} steps, cfg {args.cfg}"
    )
    print("| method | model evaluations | backward passes | inversion time | time vs null_text | latent PSNR |")
    print("|---|---|---|---|---|---|")
    for label, report, seconds, psnr in rows:
        print(
            f"| {label} | {report.evaluations} | {report.backward_passes} | {seconds:.2f} s "
            f"| {seconds / reference:.2f} | {psnr:.1f} dB |"
        )


if __name__ == "__main__":
    main()
