"""A short moving clip with exact disparity, and the hole flicker of the Stereo KSampler on it.

The clip: a textured background (disparity 0.05) and a near textured square (disparity 1) that
slides sideways, optionally under a camera pan that moves everything. Its "latent" is the centre
view pooled to the latent grid (three colour channels and their mean): the tiny random UNets
take any four channels, and the figure concerns the mechanism of the hole start, not a model's
painting.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from stereo_pack.stereo_ops.hole_warm_start import hole_flicker
from stereo_pack.stereo_ops.sampling import StereoEdits, StereoShiftSettings
from stereo_pack.stereo_ops.synthetic_scenes import Plane, render_view

LATENT_RATIO = 4


@dataclass(frozen=True)
class MovingClip:
    latents: torch.Tensor  # (T, 4, h, w)
    disparity: torch.Tensor  # (T, H, W), 0..1, near = 1
    pan_latent_px: int  # the camera pan per frame, in latent pixels


def _texture(height: int, width: int, seed: int) -> torch.Tensor:
    """A band-limited texture (3, height, width) of synthetic_scenes, in its own coordinates."""
    plane = Plane(-1.0, width + 1.0, -1.0, height + 1.0, d0=0.0, seed=seed)
    return render_view((plane,), height, width, 0.0, 0.0, 0.0, torch.float32).image[0]


def moving_clip(frames: int = 6, height: int = 64, width: int = 64, object_px: int = 4,
                pan_px: int = 0) -> MovingClip:
    """`frames` of a textured square moving `object_px` pixels per frame to the right over a textured
    background, the whole picture moving `pan_px` pixels per frame (a multiple of LATENT_RATIO) to
    the right as under a panning camera. Textures move with their surfaces."""
    margin = abs(pan_px) * frames
    background = _texture(height, width + 2 * margin, seed=1)
    size_y, size_x = height // 2, width // 4
    square = _texture(size_y, size_x, seed=4) * 0.6 + 0.3
    latents, maps = [], []
    for t in range(frames):
        start = margin - t * pan_px
        image = background[:, :, start:start + width].clone()
        disparity = torch.full((height, width), 0.05)
        x0, y0 = int(0.3 * width) + t * (object_px + pan_px), height // 4
        x1 = min(x0 + size_x, width)
        if x1 > x0:
            image[:, y0:y0 + size_y, x0:x1] = square[:, :, :x1 - x0]
            disparity[y0:y0 + size_y, x0:x1] = 1.0
        pooled = F.avg_pool2d(image.unsqueeze(0), LATENT_RATIO)
        latents.append(torch.cat([pooled, pooled.mean(dim=1, keepdim=True)], dim=1)[0] * 4.0 - 2.0)
        maps.append(disparity)
    return MovingClip(torch.stack(latents), torch.stack(maps), pan_px // LATENT_RATIO)


def right_holes(clip: MovingClip, divergence: float) -> torch.Tensor:
    """The holes (T, h, w) the stereo shift opens in each frame's right view, on the latent grid."""
    settings = StereoShiftSettings(disparity=clip.disparity, divergence=divergence, deblur=False)
    edits = StereoEdits(settings, clip.latents.shape[0], clip.latents, seed=0)
    return edits.right_view(clip.latents).holes


def flicker_of(stereo_latent: torch.Tensor, clip: MovingClip, divergence: float) -> float:
    """Mean absolute frame-to-frame change of the right views in their holes, after the camera's motion."""
    frames = clip.latents.shape[0]
    shifts = [(0, clip.pan_latent_px)] * (frames - 1)
    return hole_flicker(stereo_latent[frames:], right_holes(clip, divergence), shifts)


def smooth_tiny_sd15():
    """The tiny SD1.5 UNet with its output layer scaled down: a smooth, contractive denoiser that an
    inversion can follow (as in the inversion tests). Built inside inference mode, as the host does."""
    from .tiny_models import tiny_model

    with torch.inference_mode():
        model = tiny_model("sd15")
        out = model.model.diffusion_model.out[-1]
        out.weight.mul_(0.1)
        out.bias.mul_(0.1)
    return model


@dataclass(frozen=True)
class HoleRun:
    per_frame: torch.Tensor  # the stereo batch with each frame's holes filled on their own
    warm: torch.Tensor  # the same with temporal_holes
    clip: MovingClip
    divergence: float

    def flicker(self, stereo: torch.Tensor) -> float:
        return flicker_of(stereo, self.clip, self.divergence)

    def visible_change(self) -> float:
        """Mean change of the right views' visible pixels, relative to their mean magnitude."""
        frames = self.clip.latents.shape[0]
        visible = ~right_holes(self.clip, self.divergence)
        visible = visible.unsqueeze(1).expand_as(self.warm[frames:])
        a, b = self.per_frame[frames:][visible], self.warm[frames:][visible]
        return float((a - b).abs().mean() / b.abs().mean())


def hole_run(model, pan_px: int = 0, frames: int = 6, frame_chunk: int = 2, divergence: float = 12.0,
             steps: int = 8, cfg: float = 4.0) -> HoleRun:
    """The video workflow's path on a moving clip: fixed-point inversion of the frames, then the
    Stereo KSampler with that inversion, without and with temporal_holes."""
    import nodes

    from .tiny_models import tiny_conditioning

    clip = moving_clip(frames=frames, pan_px=pan_px)
    latent = {"samples": clip.latents * 5.0}  # the scale of VAE latents
    positive, negative = tiny_conditioning(seed=1), tiny_conditioning(seed=2)
    classes = nodes.NODE_CLASS_MAPPINGS
    outs = {}
    with torch.inference_mode():
        inversion = classes["StereoNullTextInversion"].execute(
            model=model, positive=positive, negative=negative, latent=latent, steps=steps, cfg=cfg,
            method="fixed_point", frame_chunk=frame_chunk,
        ).result[0]
        for temporal_holes in (False, True):
            outs[temporal_holes] = classes["StereoKSampler"].execute(
                model=model, positive=positive, negative=negative, latent_image=latent, disparity=clip.disparity,
                divergence=divergence, convergence=0.0, subpixel=True, balance=0.0, shift_at=0.25, spsmd=True,
                spsmd_interval=0.25, deblur=True, seed=0, steps=steps, cfg=cfg, sampler_name="euler",
                scheduler="normal", denoise=1.0, inversion=inversion, eyes="separate", frame_chunk=frame_chunk,
                temporal_holes=temporal_holes,
            ).result[0]["samples"]
    return HoleRun(outs[False], outs[True], clip, divergence)
