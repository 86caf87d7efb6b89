"""Right-view quality on stereo datasets: the view made from the left image and a disparity is
scored against the true right view with PSNR, SSIM and (when available) LPIPS.

    python -m bench.eval_quality --dataset middlebury2014 --root DATA/MiddEval-2014 \\
        --comfyui PATH/TO/ComfyUI --checkpoint PATH/TO/v1-5-pruned-emaonly.safetensors \\
        --inpaint-checkpoint PATH/TO/sd-v1-5-inpainting.ckpt
    python -m bench.eval_quality --dataset kitti2015 --root DATA/kitti2015/training ...
    python -m bench.eval_quality --dataset synthetic          # no data, no model: a self-check

Protocol (as in the StereoDiffusion paper): the left image and its disparity go in, a right view
comes out and is compared with the dataset's right image. The disparity is the dataset's ground
truth (Middlebury disp0.pfm, KITTI disp_occ_0, sparse LiDAR filled along the rows) or, with
--disparity-dir, your own maps (PNG/NPY, any scale: they are stretched to the ground truth's
range so that the divergence matches the true baseline). Images are resized to --width.

Methods:
  warp              StereoWarp at full resolution, holes filled with the nearest background pixel
  latent_warp       the same shift at 1/8 resolution (StereoDiffusion's latent geometry, no model)
  stereodiffusion   latent-only StereoDiffusion: inversion of the left image, Stereo KSampler
  refine            stereodiffusion followed by StereoRefine (detail transfer from the left eye)
  warp_inpaint      StereoWarp, holes inpainted by --inpaint-checkpoint (VAE Encode for Inpainting)
The last three need --comfyui and checkpoints; the first two run anywhere.

Dataset layouts: Middlebury 2014: ROOT/<scene>/{im0.png, im1.png, disp0.pfm}. KITTI 2015:
ROOT/{image_2, image_3, disp_occ_0}/<id>_10.png.
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from headless import comfy_host  # also registers `stereo_pack`
from stereo_pack.stereo_ops.pixel_shift import stereo_pixel_shift
from stereo_pack.stereo_ops.synthetic_scenes import layered_scene
from stereo_pack.stereo_ops.warp import stereo_warp

MODEL_FREE = ("warp", "latent_warp")
WITH_MODEL = ("stereodiffusion", "refine", "warp_inpaint")
METHODS = MODEL_FREE + WITH_MODEL


@dataclass
class Sample:
    """One stereo pair: images (1, 3, H, W) in [0, 1], left-view disparity in pixels (1, H, W)."""

    name: str
    left: torch.Tensor
    right: torch.Tensor
    disparity_px: torch.Tensor

    def pack_settings(self) -> tuple[torch.Tensor, float]:
        """The pack's (disparity 0..1, divergence %) giving exactly these pixel shifts."""
        d_max = float(self.disparity_px.max().clamp_min(1e-6))
        return (self.disparity_px / d_max).clamp(0.0, 1.0), 100.0 * d_max / self.left.shape[-1]


# ---------------------------------------------------------------------------------------------
# Datasets


def _read_image(path: Path) -> torch.Tensor:
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1)[None]


def read_pfm(path: Path) -> np.ndarray:
    """A PFM image (Middlebury's disparity format) as a float32 array, top row first."""
    with open(path, "rb") as f:
        header = f.readline().decode("ascii").strip()
        channels = 3 if header == "PF" else 1
        width, height = map(int, re.findall(r"\d+", f.readline().decode("ascii")))
        scale = float(f.readline().decode("ascii").strip())
        data = np.fromfile(f, dtype="<f4" if scale < 0 else ">f4", count=width * height * channels)
    shape = (height, width, channels) if channels == 3 else (height, width)
    return np.flipud(data.reshape(shape)).astype(np.float32)


def _fill_rows(disp: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Fill invalid disparities with the nearest valid one to their right (else left) in the row:
    the background side of an occlusion in a left-view map."""
    _, _, w = disp.shape
    cols = torch.arange(w).expand_as(disp)
    nxt = torch.where(valid, cols, torch.full_like(cols, w)).flip(-1).cummin(-1).values.flip(-1)
    prv = torch.where(valid, cols, torch.full_like(cols, -1)).cummax(-1).values
    pick = torch.where(nxt < w, nxt, prv).clamp(0, w - 1)
    out = torch.gather(disp, -1, pick)
    return torch.where(valid, disp, torch.where((nxt < w) | (prv >= 0), out, torch.zeros_like(disp)))


def _fill_disparity(disp: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Fill unknown disparities along the rows, then rows with none at all from the rows below
    (else above)."""
    out = _fill_rows(disp, valid)
    rows_known = valid.any(-1, keepdim=True).expand_as(valid)
    return _fill_rows(out.transpose(-1, -2), rows_known.transpose(-1, -2)).transpose(-1, -2).contiguous()


def _resize(sample: Sample, width: int) -> Sample:
    if width <= 0 or width == sample.left.shape[-1]:
        return sample
    h, w = sample.left.shape[-2:]
    height = max(8, round(h * width / w / 8) * 8)
    size = (height, width)
    resize = lambda x: F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)  # noqa: E731
    disp = F.interpolate(sample.disparity_px[None], size=size, mode="nearest")[0] * (width / w)
    return Sample(sample.name, resize(sample.left), resize(sample.right), disp)


def middlebury2014(root: Path) -> Iterator[Sample]:
    for scene in sorted(p for p in root.iterdir() if (p / "disp0.pfm").is_file()):
        disp = torch.from_numpy(read_pfm(scene / "disp0.pfm").copy())[None]
        valid = torch.isfinite(disp) & (disp > 0)
        disp = _fill_disparity(torch.where(valid, disp, torch.zeros_like(disp)), valid)
        yield Sample(scene.name, _read_image(scene / "im0.png"), _read_image(scene / "im1.png"), disp)


def kitti2015(root: Path) -> Iterator[Sample]:
    for gt in sorted((root / "disp_occ_0").glob("*_10.png")):
        with Image.open(gt) as im:
            raw = torch.from_numpy(np.asarray(im, dtype=np.float32))[None]
        valid = raw > 0
        disp = _fill_disparity(raw / 256.0, valid)
        yield Sample(gt.stem, _read_image(root / "image_2" / gt.name), _read_image(root / "image_3" / gt.name), disp)


def synthetic(count: int = 3, height: int = 96, width: int = 128) -> Iterator[Sample]:
    """Exact layered scenes (stereo_ops.synthetic_scenes) for checking the script itself."""
    for i in range(count):
        divergence = 5.0 + 3.0 * i
        scene = layered_scene(height, width, divergence, 0.0, 0.0, dtype=torch.float32)
        disp_px = scene.disparity * divergence / 100.0 * width
        yield Sample(f"synthetic{i}", scene.center.image, scene.right.image, disp_px.float())


def load_dataset(name: str, root: Path | None) -> Iterator[Sample]:
    if name == "synthetic":
        return synthetic()
    if root is None or not root.is_dir():
        raise SystemExit(f"--root must point at a local copy of {name} (see --help for the layout)")
    return middlebury2014(root) if name == "middlebury2014" else kitti2015(root)


def with_disparity_dir(samples: Iterator[Sample], folder: Path) -> Iterator[Sample]:
    """Replace the ground truth by the user's maps (near = large), stretched to its range."""
    for s in samples:
        path = next((p for p in (folder / f"{s.name}.npy", folder / f"{s.name}.png") if p.is_file()), None)
        if path is None:
            raise SystemExit(f"no disparity map for {s.name} in {folder} (expected {s.name}.png or .npy)")
        if path.suffix == ".npy":
            m = torch.from_numpy(np.load(path).astype(np.float32))
        else:
            with Image.open(path) as im:
                m = torch.from_numpy(np.asarray(im, dtype=np.float32))
            m = m.mean(-1) if m.ndim == 3 else m
        m = F.interpolate(m[None, None], size=s.disparity_px.shape[-2:], mode="bilinear", align_corners=False)[0]
        lo, hi = float(m.min()), float(m.max())
        gt_lo, gt_hi = float(s.disparity_px.min()), float(s.disparity_px.max())
        m = (m - lo) / max(hi - lo, 1e-6) * (gt_hi - gt_lo) + gt_lo
        yield Sample(s.name, s.left, s.right, m)


# ---------------------------------------------------------------------------------------------
# Metrics


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.double() - b.double()) ** 2).mean())
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5) over channels, images in [0, 1]."""
    x = torch.arange(11, dtype=torch.float64) - 5
    g = torch.exp(-(x**2) / (2 * 1.5**2))
    g = (g / g.sum()).float()
    c = a.shape[1]
    kx = g.view(1, 1, 1, 11).repeat(c, 1, 1, 1)
    ky = g.view(1, 1, 11, 1).repeat(c, 1, 1, 1)
    blur = lambda t: F.conv2d(F.conv2d(t, kx, groups=c), ky, groups=c)  # noqa: E731
    a, b = a.float(), b.float()
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(s.mean())


def lpips_metric() -> Callable[[torch.Tensor, torch.Tensor], float] | None:
    """LPIPS (AlexNet) when the `lpips` package and its weights are available, else None."""
    try:
        import lpips  # type: ignore

        net = lpips.LPIPS(net="alex", verbose=False).eval()
    except Exception as exc:  # not installed, or the backbone weights cannot be fetched
        print(f"LPIPS skipped: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None

    def score(a: torch.Tensor, b: torch.Tensor) -> float:
        with torch.no_grad():
            return float(net(a.float() * 2 - 1, b.float() * 2 - 1).mean())

    return score


# ---------------------------------------------------------------------------------------------
# Methods


def fill_holes_from_background(image: torch.Tensor, holes: torch.Tensor) -> torch.Tensor:
    """Fill each hole pixel of a right view with the nearest visible pixel to its right (the
    background side of a disocclusion), else to its left."""
    b, c, h, w = image.shape
    cols = torch.arange(w, device=image.device).expand(b, h, w)
    vis = ~holes
    nxt = torch.where(vis, cols, torch.full_like(cols, w)).flip(-1).cummin(-1).values.flip(-1)
    prv = torch.where(vis, cols, torch.full_like(cols, -1)).cummax(-1).values
    pick = torch.where(nxt < w, nxt, prv).clamp(0, w - 1)
    return torch.gather(image, -1, pick.unsqueeze(1).expand(b, c, h, w))


def method_warp(s: Sample) -> torch.Tensor:
    d, div = s.pack_settings()
    right = stereo_warp(s.left, d, div).right
    return fill_holes_from_background(right.image, right.holes)


def method_latent_warp(s: Sample) -> torch.Tensor:
    """StereoDiffusion's shift at latent resolution (1/8), upsampled: its geometric ceiling."""
    d, div = s.pack_settings()
    h, w = s.left.shape[-2:]
    lh, lw = max(1, h // 8), max(1, w // 8)
    small = F.interpolate(s.left, size=(lh, lw), mode="area")
    ds = F.interpolate(d[None], size=(lh, lw), mode="area")[0]
    shifted = stereo_pixel_shift(small, ds, div, mode="subpixel")
    filled = fill_holes_from_background(shifted.image, shifted.holes)
    return F.interpolate(filled, size=(h, w), mode="bilinear", align_corners=False)


class HostMethods:
    """The model-based methods, run through the ComfyUI host's own nodes in this process."""

    def __init__(self, comfyui: str | None, checkpoint: str, inpaint_checkpoint: str | None, args):
        comfy_host.start_comfyui(comfy_host.require_comfyui(comfyui), cpu=args.cpu, custom_nodes=False)
        import nodes

        self.nodes = nodes
        self.args = args
        self.model, self.clip, self.vae = self._load(checkpoint)
        self.inpaint = self._load(inpaint_checkpoint) if inpaint_checkpoint else (self.model, self.clip, self.vae)

    def _load(self, checkpoint: str):
        import folder_paths

        path = Path(checkpoint)
        if path.is_file():
            folder_paths.add_model_folder_path("checkpoints", str(path.parent))
            checkpoint = path.name
        return self.call("CheckpointLoaderSimple", ckpt_name=checkpoint)[:3]

    def call(self, node_id: str, **inputs):
        """Run one node with `inputs`, its other widgets at their defaults; returns its outputs."""
        cls = self.nodes.NODE_CLASS_MAPPINGS[node_id]
        spec = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            for name, definition in (spec.get(section) or {}).items():
                opts = definition[1] if len(definition) > 1 and isinstance(definition[1], dict) else {}
                if name not in inputs and "default" in opts:
                    inputs[name] = opts["default"]
        if hasattr(cls, "GET_SCHEMA"):  # V3 node
            return cls.execute(**inputs).result
        return getattr(cls(), cls.FUNCTION)(**inputs)

    def _conditioning(self, clip, text: str):
        return self.call("CLIPTextEncode", clip=clip, text=text)[0]

    def stereodiffusion(self, s: Sample) -> torch.Tensor:
        return self._stereo_pair(s)[1]

    def refine(self, s: Sample) -> torch.Tensor:
        pair, _ = self._stereo_pair(s)
        d, div = s.pack_settings()
        refined = self.call("StereoRefine", stereo=pair, disparity=d, divergence=div, convergence=0.0)[0]
        return refined[1:].permute(0, 3, 1, 2)

    def _stereo_pair(self, s: Sample):
        key = s.name
        if getattr(self, "_cache_key", None) == key:
            return self._cache
        a = self.args
        d, div = s.pack_settings()
        pos = self._conditioning(self.clip, a.prompt)
        neg = self._conditioning(self.clip, "")
        latent = self.call("VAEEncode", pixels=s.left.permute(0, 2, 3, 1), vae=self.vae)[0]
        inversion = self.call("StereoNullTextInversion", model=self.model, positive=pos, negative=neg,
                              latent=latent, steps=a.steps, cfg=a.cfg, method=a.inversion)[0]
        patched = self.call("StereoAttentionPatch", model=self.model)[0]
        stereo = self.call("StereoKSampler", model=patched, positive=pos, negative=neg, latent_image=latent,
                           disparity=d, divergence=div, convergence=0.0, steps=a.steps, cfg=a.cfg, seed=a.seed,
                           sampler_name="euler", scheduler="normal", inversion=inversion)[0]
        pair = self.call("VAEDecode", samples=stereo, vae=self.vae)[0]
        self._cache_key, self._cache = key, (pair, pair[1:].permute(0, 3, 1, 2))
        return self._cache

    def warp_inpaint(self, s: Sample) -> torch.Tensor:
        a = self.args
        model, clip, vae = self.inpaint
        d, div = s.pack_settings()
        views = stereo_warp(s.left, d, div)
        right, holes = views.right.image, views.right.holes
        pixels = right.permute(0, 2, 3, 1).contiguous()
        mask = holes.float()
        latent = self.call("VAEEncodeForInpaint", pixels=pixels, vae=vae, mask=mask, grow_mask_by=6)[0]
        pos = self._conditioning(clip, a.inpaint_prompt)
        neg = self._conditioning(clip, "")
        out = self.call("KSampler", model=model, positive=pos, negative=neg, latent_image=latent, seed=a.seed,
                        steps=a.steps, cfg=a.cfg, sampler_name="euler", scheduler="normal", denoise=1.0)[0]
        painted = self.call("VAEDecode", samples=out, vae=vae)[0].permute(0, 3, 1, 2)
        painted = F.interpolate(painted, size=right.shape[-2:], mode="bilinear", align_corners=False)
        return torch.where(holes.unsqueeze(1), painted.to(right.dtype), right)


# ---------------------------------------------------------------------------------------------


def evaluate(samples: Iterator[Sample], methods: dict[str, Callable[[Sample], torch.Tensor]], lpips_fn=None) -> dict:
    """Scores per method: {method: {"psnr": [...], "ssim": [...], "lpips": [...]}}."""
    scores = {m: {"psnr": [], "ssim": [], "lpips": []} for m in methods}
    for s in samples:
        for name, run in methods.items():
            out = run(s).detach().clamp(0.0, 1.0).float()
            true = s.right.float()
            scores[name]["psnr"].append(psnr(out, true))
            scores[name]["ssim"].append(ssim(out, true))
            if lpips_fn is not None:
                scores[name]["lpips"].append(lpips_fn(out, true))
            print(f"{s.name:>24s}  {name:16s} PSNR {scores[name]['psnr'][-1]:6.2f}  SSIM {scores[name]['ssim'][-1]:.4f}",
                  file=sys.stderr)
    return scores


def table(scores: dict) -> str:
    lines = ["| method | PSNR (dB) | SSIM | LPIPS |", "|---|---|---|---|"]
    for name, s in scores.items():
        lp = f"{statistics.mean(s['lpips']):.4f}" if s["lpips"] else "n/a"
        lines.append(f"| {name} | {statistics.mean(s['psnr']):.2f} | {statistics.mean(s['ssim']):.4f} | {lp} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=("middlebury2014", "kitti2015", "synthetic"), required=True)
    p.add_argument("--root", type=Path)
    p.add_argument("--disparity-dir", type=Path, help="your own disparity maps, <sample>.png or .npy")
    p.add_argument("--width", type=int, default=512, help="resize to this width (0 = keep)")
    p.add_argument("--limit", type=int, default=0, help="evaluate at most this many pairs (0 = all)")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--comfyui", help="ComfyUI folder (for the model-based methods)")
    p.add_argument("--checkpoint", help="checkpoint name or file for stereodiffusion/refine")
    p.add_argument("--inpaint-checkpoint", help="inpainting checkpoint for warp_inpaint (default: --checkpoint)")
    p.add_argument("--prompt", default="a photograph")
    p.add_argument("--inpaint-prompt", default="background, seamless continuation of the scene, photograph")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--cfg", type=float, default=7.5)
    p.add_argument("--inversion", default="null_text")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cpu", action="store_true")
    p.add_argument("--no-lpips", action="store_true")
    args = p.parse_args(argv)

    wanted = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(wanted) - set(METHODS)
    if unknown:
        raise SystemExit(f"unknown method(s) {sorted(unknown)}; choose from {', '.join(METHODS)}")
    if any(m in WITH_MODEL for m in wanted) and not args.checkpoint:
        dropped = [m for m in wanted if m in WITH_MODEL]
        print(f"no --checkpoint: skipping {', '.join(dropped)}", file=sys.stderr)
        wanted = [m for m in wanted if m not in WITH_MODEL]
    methods: dict[str, Callable[[Sample], torch.Tensor]] = {}
    host = None
    for m in wanted:
        if m == "warp":
            methods[m] = method_warp
        elif m == "latent_warp":
            methods[m] = method_latent_warp
        else:
            host = host or HostMethods(args.comfyui, args.checkpoint, args.inpaint_checkpoint, args)
            methods[m] = getattr(host, m)

    samples = load_dataset(args.dataset, args.root)
    if args.disparity_dir:
        samples = with_disparity_dir(samples, args.disparity_dir)
    samples = (_resize(s, args.width) if args.dataset != "synthetic" else s for s in samples)
    if args.limit:
        samples = (s for i, s in zip(range(args.limit), samples))
    result = table(evaluate(samples, methods, None if args.no_lpips else lpips_metric()))
    print(result)
    return result


if __name__ == "__main__":
    main()
