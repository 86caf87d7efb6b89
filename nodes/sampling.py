"""StereoKSampler and StereoSampler: the StereoDiffusion sampling loop inside ComfyUI's samplers."""

from __future__ import annotations

import copy

import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview
import torch
from comfy_api.latest import io

from ..stereo_ops import duplicate_for_stereo, plan_schedule
from ..stereo_ops.attention import STEREO_JOINT_OPTION, STEREO_PAIRS_OPTION, STEREO_PASS_OPTION
from ..stereo_ops.sampling import StereoShiftSettings, stereo_sample
from .inversion_runtime import check_inversion_fits, with_inverted_unconds

CATEGORY = "stereo/sampling"

# The solvers that retrace an inversion: DDIM is the Euler step of the probability-flow ODE.
INVERSION_SAMPLERS = ("euler", "ddim")

# These pick their own steps between sigma_max and sigma_min, so "before step k" has no meaning.
REFUSED_SAMPLERS = {
    "dpm_fast": "it chooses its own step sizes",
    "dpm_adaptive": "it chooses its own steps adaptively",
}


def supported_samplers() -> list[str]:
    return [s for s in comfy.samplers.SAMPLER_NAMES if s not in REFUSED_SAMPLERS]


def check_sampler_name(sampler_name: str) -> None:
    if sampler_name in REFUSED_SAMPLERS:
        raise ValueError(
            f"sampler_name '{sampler_name}' cannot be used for stereo sampling: {REFUSED_SAMPLERS[sampler_name]}. "
            f"Supported samplers: {', '.join(supported_samplers())}"
        )
    if sampler_name not in comfy.samplers.SAMPLER_NAMES:
        raise ValueError(
            f"unknown sampler_name '{sampler_name}'. Supported samplers: {', '.join(supported_samplers())}"
        )


def _restrict(model_k, kwargs: dict, rows: slice):
    """The host's sampler model and its call arguments for some rows of the stereo batch only."""
    model_k = copy.copy(model_k)
    for name in ("latent_image", "noise"):
        value = getattr(model_k, name, None)
        if isinstance(value, torch.Tensor) and value.shape[0] > 1:
            setattr(model_k, name, value[rows])
    args = dict(kwargs)
    mask = args.get("denoise_mask")
    if isinstance(mask, torch.Tensor) and mask.shape[0] > 1:
        args["denoise_mask"] = mask[rows]
    return model_k, args


def _mark(kwargs: dict, info) -> dict:
    """Call arguments whose transformer options tell attention patches what is being evaluated."""
    args = dict(kwargs)
    options = dict(args.get("model_options", {}))
    transformer_options = dict(options.get("transformer_options", {}))
    key = STEREO_PAIRS_OPTION if isinstance(info, int) else STEREO_PASS_OPTION
    transformer_options[key] = info
    options["transformer_options"] = transformer_options
    args["model_options"] = options
    return args


def _needs_joint_batch(sampler_name: str, extra_args: dict | None) -> bool:
    # CFG++ samplers capture the unconditional prediction of each model call in a closure, which
    # only works when one call covers the whole batch.
    options = (extra_args or {}).get("model_options", {}).get("transformer_options", {})
    return "cfg_pp" in sampler_name or bool(options.get(STEREO_JOINT_OPTION))


def stereo_ksampler_object(
    sampler_name: str,
    settings: StereoShiftSettings,
    shift_at: float,
    spsmd: bool,
    spsmd_interval: float,
    start: torch.Tensor | None = None,
) -> comfy.samplers.KSAMPLER:
    """A host SAMPLER that runs `sampler_name` with the stereo edits."""
    check_sampler_name(sampler_name)
    inner = comfy.samplers.sampler_object(sampler_name)
    if not isinstance(inner, comfy.samplers.KSAMPLER):
        raise ValueError(f"sampler_name '{sampler_name}' is not a step-wise sampler and cannot be used")

    def sampler_function(model, x, sigmas, extra_args=None, callback=None, disable=None, **options):
        schedule = plan_schedule(len(sigmas) - 1, shift_at, spsmd_interval, spsmd)
        return stereo_sample(
            inner.sampler_function, model, x, sigmas,
            schedule=schedule, settings=settings, restrict=_restrict, mark=_mark,
            joint=_needs_joint_batch(sampler_name, extra_args),
            extra_args=extra_args, callback=callback, disable=disable, start=start, **options,
        )

    return comfy.samplers.KSAMPLER(sampler_function, inner.extra_options, inner.inpaint_options)


def stereo_inputs() -> list:
    """The method's inputs, shared by StereoKSampler and StereoSampler."""
    return [
        io.Mask.Input(
            "disparity",
            tooltip="Disparity map, 0 = far, 1 = near (StereoEstimateDisparity or StereoDepthToDisparity). "
            "One map for every image, or one per image; any size, resized to the latent.",
        ),
        io.Float.Input(
            "divergence", default=8.0, min=0.0, max=30.0, step=0.1,
            tooltip="Largest parallax in percent of the image width (the paper uses 8). Lower is easier on the "
            "eyes in VR; 0 gives two identical eyes.",
        ),
        io.Float.Input(
            "convergence", default=0.0, min=0.0, max=1.0, step=0.01,
            tooltip="Which depth sits at the screen plane: 0 = the farthest point (everything pops out, as in "
            "the paper), 1 = the nearest point (everything behind the screen).",
        ),
        io.Boolean.Input(
            "subpixel", default=True,
            tooltip="Shift by fractional pixels with correct occlusion order. Off reproduces the paper's "
            "integer shift exactly (only about 6 depth levels on a 64-wide latent).",
        ),
        io.Float.Input(
            "balance", default=0.0, min=0.0, max=1.0, step=0.05,
            tooltip="Share of the parallax given to the left eye: 0 keeps the left image as generated and warps "
            "only the right (the paper); 0.5 warps both eyes half-way, halving the holes in each.",
        ),
        io.Float.Input(
            "shift_at", default=0.2, min=0.0, max=1.0, step=0.01,
            tooltip="Fraction of the schedule after which the right latent becomes the shifted left latent "
            "(the paper: 0.2). Earlier gives the model more room to fix holes, later keeps more detail.",
        ),
        io.Boolean.Input(
            "spsmd", default=True,
            tooltip="Symmetric Pixel Shift Masking Denoise: re-copy the shifted left latent into the right one "
            "at regular steps, so both eyes keep the same content.",
        ),
        io.Float.Input(
            "spsmd_interval", default=0.2, min=0.01, max=1.0, step=0.01,
            tooltip="Fraction of the schedule between SPSMD re-copies (the paper: 0.2, i.e. every 10 of 50 steps).",
        ),
        io.Boolean.Input(
            "deblur", default=True,
            tooltip="Seed the holes the shift opens with noise at the current noise level, so the model paints "
            "detail there instead of a blurred smear.",
        ),
    ]


def shift_settings(disparity, divergence, convergence, subpixel, balance, deblur) -> StereoShiftSettings:
    if disparity.ndim not in (2, 3):
        raise ValueError(f"disparity must be a MASK (B, H, W); got shape {tuple(disparity.shape)}")
    return StereoShiftSettings(
        disparity=disparity.float(), divergence=float(divergence), convergence=float(convergence),
        mode="subpixel" if subpixel else "integer", balance=float(balance), deblur=bool(deblur),
    )


def _check_disparity_count(disparity: torch.Tensor, pairs: int) -> None:
    count = 1 if disparity.ndim == 2 else disparity.shape[0]
    if count not in (1, pairs):
        raise ValueError(
            f"disparity has {count} maps but latent_image has {pairs} images; give one map for all "
            f"images or one map per image"
        )


def _duplicate_mask(mask: torch.Tensor | None, pairs: int) -> torch.Tensor | None:
    if mask is None or mask.shape[0] != pairs or pairs == 0:
        return mask
    return duplicate_for_stereo(mask)


class StereoKSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StereoKSampler",
            display_name="Stereo KSampler",
            category=CATEGORY,
            description="KSampler that denoises each image together with its right-eye partner, starting "
            "from the same noise, and turns it into a stereo pair by StereoDiffusion (stereo pixel shift of "
            "the left latent, SPSMD, hole inpainting). Output: a stereo batch (N lefts, then N rights) for "
            "one VAE Decode. Combine with Stereo Attention Patch for better consistency.",
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model (SD1.x, SD2.x, SDXL, with any LoRA or patch)."),
                io.Conditioning.Input("positive", tooltip="Positive conditioning, as for KSampler."),
                io.Conditioning.Input("negative", tooltip="Negative conditioning, as for KSampler."),
                io.Latent.Input(
                    "latent_image",
                    tooltip="N images to make stereo pairs of: Empty Latent Image for text to stereo, VAE Encode "
                    "with denoise < 1 for image to stereo.",
                ),
                *stereo_inputs(),
                io.Int.Input(
                    "seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                    tooltip="Noise seed; the same seed as a plain KSampler gives the same left image.",
                ),
                io.Int.Input("steps", default=20, min=2, max=10000, tooltip="Sampling steps (at least 2)."),
                io.Float.Input(
                    "cfg", default=7.0, min=0.0, max=100.0, step=0.1, round=0.01,
                    tooltip="Classifier-free guidance scale.",
                ),
                io.Combo.Input(
                    "sampler_name", options=supported_samplers(),
                    tooltip="Any of the host's step-wise samplers (dpm_fast and dpm_adaptive choose their own "
                    "steps and are not supported).",
                ),
                io.Combo.Input("scheduler", options=comfy.samplers.SCHEDULER_NAMES, tooltip="Noise schedule."),
                io.Float.Input(
                    "denoise", default=1.0, min=0.0, max=1.0, step=0.01,
                    tooltip="How much of the schedule to run; below 1 keeps the input latent's structure.",
                ),
                io.Custom("STEREO_INVERSION").Input(
                    "inversion", optional=True,
                    tooltip="Optional, for photo to stereo: the output of Stereo Null-Text Inversion for the same "
                    "encoded photo(s) as latent_image. The left view then reconstructs the photo; use the same "
                    "model, cfg and steps as the inversion, sampler euler or ddim (scheduler and denoise are "
                    "taken from the inversion).",
                ),
            ],
            outputs=[io.Latent.Output(display_name="stereo_latent", tooltip="Stereo batch: N lefts, then N rights.")],
        )

    @classmethod
    def execute(
        cls, model, positive, negative, latent_image, disparity, divergence, convergence, subpixel,
        balance, shift_at, spsmd, spsmd_interval, deblur, seed, steps, cfg, sampler_name, scheduler,
        denoise, inversion=None,
    ) -> io.NodeOutput:
        latent = comfy.sample.fix_empty_latent_channels(model, latent_image["samples"])
        if latent.ndim != 4:
            raise ValueError(f"latent_image must be an image latent (B, C, H, W); got shape {tuple(latent.shape)}")
        pairs = latent.shape[0]
        _check_disparity_count(disparity, pairs)
        if steps < 2:
            raise ValueError(f"steps must be at least 2 for stereo sampling, got {steps}")
        settings = shift_settings(disparity, divergence, convergence, subpixel, balance, deblur)
        start = None
        if inversion is not None:
            check_inversion_fits(inversion, model, latent, cfg, steps)
            if sampler_name not in INVERSION_SAMPLERS:
                raise ValueError(
                    f"sampler_name '{sampler_name}' cannot retrace an inversion; with the inversion input use "
                    f"one of {', '.join(INVERSION_SAMPLERS)}"
                )
            # Applied last, so that the per-step unconditional embeddings wrap every other patch.
            model = with_inverted_unconds(model, inversion)
            sigmas, start = inversion.sigmas, inversion.start_latent
        else:
            sigmas = comfy.samplers.KSampler(
                model, steps=steps, device=model.load_device, sampler=sampler_name, scheduler=scheduler,
                denoise=denoise, model_options=model.model_options,
            ).sigmas
        sampler = stereo_ksampler_object(sampler_name, settings, shift_at, spsmd, spsmd_interval, start)

        noise = comfy.sample.prepare_noise(latent, seed, latent_image.get("batch_index"))
        out = {k: v for k, v in latent_image.items() if k not in ("samples", "batch_index", "noise_mask")}
        if sigmas.shape[-1] == 0:  # denoise 0: nothing to do, both eyes are the input
            out["samples"] = duplicate_for_stereo(latent)
            return io.NodeOutput(out)
        if sigmas.shape[-1] - 1 < 2:
            raise ValueError("denoise is too low: fewer than 2 steps would run; raise denoise or steps")

        callback = latent_preview.prepare_callback(model, sigmas.shape[-1] - 1)
        samples = comfy.sample.sample_custom(
            model, duplicate_for_stereo(noise), cfg, sampler, sigmas, positive, negative,
            duplicate_for_stereo(latent), noise_mask=_duplicate_mask(latent_image.get("noise_mask"), pairs),
            callback=callback, disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed,
        )
        out["samples"] = samples
        return io.NodeOutput(out)


class StereoSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StereoSampler",
            display_name="Stereo Sampler",
            category=CATEGORY,
            description="The StereoDiffusion method as a SAMPLER for SamplerCustom / SamplerCustomAdvanced. "
            "Feed those a stereo latent: pass your latent through Repeat Latent Batch (amount 2), so that the "
            "N images are followed by the same N; the right halves are rebuilt from the lefts at the shift "
            "step, so any noise source works and each pair effectively shares the left noise. The output is a "
            "stereo batch (N lefts, then N rights).",
            inputs=[
                io.Combo.Input(
                    "sampler_name", options=supported_samplers(),
                    tooltip="The underlying step-wise sampler (dpm_fast and dpm_adaptive are not supported).",
                ),
                *stereo_inputs(),
            ],
            outputs=[io.Sampler.Output(tooltip="A SAMPLER that makes stereo batches.")],
        )

    @classmethod
    def execute(
        cls, sampler_name, disparity, divergence, convergence, subpixel, balance, shift_at, spsmd,
        spsmd_interval, deblur,
    ) -> io.NodeOutput:
        settings = shift_settings(disparity, divergence, convergence, subpixel, balance, deblur)
        return io.NodeOutput(stereo_ksampler_object(sampler_name, settings, shift_at, spsmd, spsmd_interval))


NODES = [StereoKSampler, StereoSampler]
