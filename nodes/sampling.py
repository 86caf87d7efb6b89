"""StereoKSampler and StereoSampler: the StereoDiffusion sampling loop inside ComfyUI's samplers."""

from __future__ import annotations

import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview
import torch
from comfy_api.latest import io

from ..stereo_ops import duplicate_for_stereo
from ..stereo_ops.disparity import as_disparity_batch, check_disparity_range, fit_disparity_to_grid
from ..stereo_ops.sampling import StereoShiftSettings
from ..stereo_ops.stereo_geometry import DisplayTarget, geometry_for
from .comfort import DEFAULT_CONVERGENCE, DEFAULT_DIVERGENCE, IGNORED_WITH_DISPLAY, display_input, log_geometry
from .frame_chunks import StereoMethod, check_frame_chunk, frame_chunk_inputs, sample_in_chunks
from .input_checks import check_conditioning, conditioning_named, model_latent
from .inversion_runtime import check_inversion_fits, check_same_photo, first_prediction_check, with_inverted_unconds
from .sampling_runtime import (
    EYES,
    UsedDisparity,
    check_sampler_name,
    prediction_disparity,
    stereo_ksampler_object,
    supported_samplers,
)
from .stereo_types import DisparityModelType, StereoInversionType

CATEGORY = "stereo/sampling"

# The solvers that retrace an inversion: DDIM is the Euler step of the probability-flow ODE.
INVERSION_SAMPLERS = ("euler", "ddim")


def stereo_inputs() -> list:
    """The method's inputs, shared by StereoKSampler and StereoSampler."""
    return [
        io.Mask.Input(
            "disparity", optional=True,
            tooltip="Disparity map, 0 = far, 1 = near (StereoEstimateDisparity or StereoDepthToDisparity). "
            "Leave it unconnected and connect disparity_model and vae to estimate it from the sampler's own "
            "prediction instead (one pass); a connected map always wins. "
            "One map for every image, or one per image; any size, resized to the latent. Values must lie in "
            "0..1: other ranges (a 0..255 map, raw depth) are refused; rescale them with Depth to Disparity.",
        ),
        io.Float.Input(
            "divergence", default=DEFAULT_DIVERGENCE, min=0.0, max=30.0, step=0.1,
            tooltip="Parallax between the farthest and the nearest point, in percent of the image width. The "
            "default stays within a VR headset's comfortable budget; the paper uses 8 (with convergence 0). "
            "0 gives two identical eyes." + IGNORED_WITH_DISPLAY,
        ),
        io.Float.Input(
            "convergence", default=DEFAULT_CONVERGENCE, min=0.0, max=1.0, step=0.01,
            tooltip="Which depth sits at the screen plane: 0 = the farthest point (everything in front of the "
            "screen, as in the paper), 0.5 = the middle depth, 1 = the nearest point (everything behind the "
            "screen)." + IGNORED_WITH_DISPLAY,
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


def one_pass_inputs() -> list:
    """Optional inputs for the one-pass disparity and the eyes' batching (after all older inputs)."""
    return [
        DisparityModelType.Input(
            "disparity_model", optional=True,
            tooltip="One-pass text to stereo: with no disparity map connected, the sampler decodes its own "
            "prediction of each left image at the shift step with `vae` and estimates its disparity with this "
            "model (as Estimate Disparity does). The map used is the `disparity` output.",
        ),
        io.Vae.Input(
            "vae", optional=True,
            tooltip="Decodes the prediction for the one-pass disparity: the checkpoint's VAE, or a fast "
            "TAESD-style decoder loaded with Load VAE (taesd, taesdxl, ...).",
        ),
        io.Boolean.Input(
            "refresh", default=False, optional=True,
            tooltip="One-pass only: estimate the disparity again at every SPSMD step from the newer prediction "
            "(sharper maps, one decode and one depth estimate per SPSMD step).",
        ),
        io.Combo.Input(
            "eyes", options=list(EYES), default="batched", optional=True,
            tooltip="batched: after the shift both eyes are one model call (faster; the left images equal a plain "
            "KSampler's up to the rounding of a bigger batch). separate: two calls, the left images are "
            "bit-identical to a plain KSampler's.",
        ),
    ]


def shift_settings(
    disparity, divergence, convergence, subpixel, balance, deblur, display=None, node="Stereo KSampler"
) -> StereoShiftSettings:
    """The sampler's settings. A display target with a given map is resolved here, from the whole
    batch of maps, so the geometry is one for all images; a one-pass map resolves it when estimated."""
    if disparity is not None:
        disparity = check_disparity_range(as_disparity_batch(disparity))
    if display is not None and not isinstance(display, DisplayTarget):
        raise ValueError("display: connect the output of a Stereo Display Target")
    target, floating_window = display, False
    if display is not None and disparity is not None:
        geometry = geometry_for(disparity, divergence, convergence, display)
        log_geometry(node, geometry, display)
        divergence, convergence, floating_window, target = (
            geometry.divergence, geometry.convergence, geometry.floating_window, None
        )
    return StereoShiftSettings(
        disparity=disparity, divergence=float(divergence), convergence=float(convergence),
        mode="subpixel" if subpixel else "integer", balance=float(balance), deblur=bool(deblur), target=target,
        floating_window=floating_window,
    )


def _logging_estimates(node: str, settings: StereoShiftSettings, estimate_for):
    if estimate_for is None or settings.target is None:
        return estimate_for

    def logged_for(model_k):
        estimate = estimate_for(model_k)

        def logged(prediction):
            disparity = estimate(prediction)
            log_geometry(node, settings.geometry(disparity), settings.target)
            return disparity

        return logged

    return logged_for


def one_pass_estimator(disparity, disparity_model, vae, used: UsedDisparity):
    """The estimate for the sampler when no map is connected; names what is missing otherwise."""
    if disparity is not None:
        return None
    if disparity_model is None and vae is None:
        raise ValueError(
            "disparity: connect a disparity map (Estimate Disparity, Depth to Disparity), or connect "
            "disparity_model and vae to estimate it from the sampler's own prediction"
        )
    if disparity_model is None:
        raise ValueError("disparity_model: one-pass disparity needs a depth model (Load Disparity Model) besides the vae")
    if vae is None:
        raise ValueError(
            "vae: one-pass disparity needs a VAE to decode the prediction (the checkpoint's VAE, or a TAESD "
            "decoder from Load VAE) besides the disparity_model"
        )
    return prediction_disparity(vae, disparity_model, used)


def image_size_map(disparity: torch.Tensor, pairs: int, latent: torch.Tensor, model=None, vae=None) -> torch.Tensor:
    """A given map as the `disparity` output: one per image, at the decoded image's size (the VAE's
    ratio, else the model's latent format's, else 8)."""
    if vae is not None:
        ratio = vae.spacial_compression_decode()
    else:
        ratio = getattr(getattr(getattr(model, "model", None), "latent_format", None), "spacial_downscale_ratio", 8)
    height, width = latent.shape[-2] * ratio, latent.shape[-1] * ratio
    return fit_disparity_to_grid(disparity, height, width, batch_size=pairs).contiguous()


def _check_disparity_count(disparity: torch.Tensor, pairs: int) -> None:
    count = disparity.shape[0]
    if count not in (1, pairs):
        raise ValueError(
            f"disparity has {count} maps but latent_image has {pairs} images; give one map for all "
            f"images or one map per image"
        )


def image_latent(model, latent_image: dict, name: str = "latent_image") -> torch.Tensor:
    return model_latent(model, latent_image, name)


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
            "one VAE Decode. Combine with Stereo Attention Patch for better consistency; connect a Stereo Display "
            "Target to set the depth for the display the pair is watched on.",
            inputs=[
                io.Model.Input(
                    "model", tooltip="The diffusion model: any image model the host runs (SD1.x, SD2.x, SDXL, SD3.x, "
                    "Flux and other image DiTs), with any LoRA or patch.",
                ),
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
                    tooltip="Noise seed; with the same seed, steps, cfg, sampler, scheduler and denoise, the left "
                    "images are exactly those of a plain KSampler (bit-identical on the same machine).",
                ),
                io.Int.Input("steps", default=20, min=2, max=10000, tooltip="Sampling steps (at least 2)."),
                io.Float.Input(
                    "cfg", default=7.0, min=0.0, max=100.0, step=0.1, round=0.01,
                    tooltip="Classifier-free guidance scale.",
                ),
                io.Combo.Input(
                    "sampler_name", options=supported_samplers(), default="euler",
                    tooltip="Any of the host's step-wise samplers (dpm_fast and dpm_adaptive choose their own "
                    "steps and are not supported). The left view is the plain KSampler image for every one.",
                ),
                io.Combo.Input(
                    "scheduler", options=comfy.samplers.SCHEDULER_NAMES, default="normal", tooltip="Noise schedule.",
                ),
                io.Float.Input(
                    "denoise", default=1.0, min=0.0, max=1.0, step=0.01,
                    tooltip="How much of the schedule to run; below 1 keeps the input latent's structure.",
                ),
                StereoInversionType.Input(
                    "inversion", optional=True,
                    tooltip="Optional, for photo to stereo: the output of Stereo Null-Text Inversion for the same "
                    "encoded photo(s) as latent_image. The left view then reconstructs the photo; use the same "
                    "model, cfg and steps as the inversion, sampler euler or ddim (scheduler and denoise are "
                    "taken from the inversion).",
                ),
                *one_pass_inputs(),
                display_input(),
                *frame_chunk_inputs(),
            ],
            outputs=[
                io.Latent.Output(display_name="stereo_latent", tooltip="Stereo batch: N lefts, then N rights."),
                io.Mask.Output(
                    display_name="disparity",
                    tooltip="The disparity used, one map per image at the image's size (estimated in one pass, "
                    "or the connected map resized).",
                ),
            ],
        )

    @classmethod
    def execute(
        cls, model, positive, negative, latent_image, divergence, convergence, subpixel, balance, shift_at,
        spsmd, spsmd_interval, deblur, seed, steps, cfg, sampler_name, scheduler, denoise, disparity=None,
        inversion=None, disparity_model=None, vae=None, refresh=False, eyes="batched", display=None, frame_chunk=0,
        temporal_holes=False,
    ) -> io.NodeOutput:
        latent = image_latent(model, latent_image)
        check_frame_chunk(frame_chunk)
        unpatched = model
        check_conditioning(positive, "positive", model)
        check_conditioning(negative, "negative", model, allow_empty=True)
        pairs = latent.shape[0]
        if steps < 2:
            raise ValueError(f"steps must be at least 2 for stereo sampling, got {steps}")
        check_sampler_name(sampler_name)
        settings = shift_settings(disparity, divergence, convergence, subpixel, balance, deblur, display)
        used = UsedDisparity()
        estimate_for = _logging_estimates(
            "Stereo KSampler", settings, one_pass_estimator(settings.disparity, disparity_model, vae, used)
        )
        if settings.disparity is not None:
            _check_disparity_count(settings.disparity, pairs)
            used.map = image_size_map(settings.disparity, pairs, latent, model, vae)
        start, check = None, None
        if inversion is not None:
            check_inversion_fits(inversion, model, latent, cfg, steps)
            check_same_photo(inversion, latent)
            if sampler_name not in INVERSION_SAMPLERS:
                raise ValueError(
                    f"sampler_name '{sampler_name}' cannot retrace an inversion; with the inversion input use "
                    f"one of {', '.join(INVERSION_SAMPLERS)}"
                )
            # Applied last, so that the per-step unconditional embeddings wrap every other patch.
            model = with_inverted_unconds(model, inversion)
            sigmas, start = inversion.sigmas, inversion.start_latent
            check = first_prediction_check(inversion)
        else:
            sigmas = comfy.samplers.KSampler(
                model, steps=steps, device=model.load_device, sampler=sampler_name, scheduler=scheduler,
                denoise=denoise, model_options=model.model_options,
            ).sigmas
        out = {k: v for k, v in latent_image.items() if k not in ("samples", "batch_index", "noise_mask")}
        if sigmas.shape[-1] <= 1:  # denoise 0: nothing to do, both eyes are the input
            out["samples"] = duplicate_for_stereo(latent)
            return io.NodeOutput(out, used.map)
        if sigmas.shape[-1] - 1 < 2:
            raise ValueError("denoise is too low: fewer than 2 steps would run; raise denoise or steps")
        if frame_chunk > 0 or temporal_holes:
            method = StereoMethod(
                sampler_name, settings, shift_at, spsmd, spsmd_interval, refresh, eyes,
                None if estimate_for is None else (
                    lambda u: _logging_estimates(
                        "Stereo KSampler", settings, one_pass_estimator(None, disparity_model, vae, u)
                    )
                ),
            )
            with conditioning_named(positive, negative):
                out["samples"], maps = sample_in_chunks(
                    unpatched, positive, negative, latent_image, latent, seed, cfg, sigmas, method, frame_chunk,
                    inversion, temporal_holes,
                )
            return io.NodeOutput(out, used.map if maps is None else maps)
        sampler = stereo_ksampler_object(
            sampler_name, settings, shift_at, spsmd, spsmd_interval, start, check, estimate_for, refresh, eyes,
        )

        # N images in, 2N out: the left rows get exactly the noise and inputs of a plain KSampler.
        noise = comfy.sample.prepare_noise(latent, seed, latent_image.get("batch_index"))
        callback = latent_preview.prepare_callback(model, sigmas.shape[-1] - 1)
        with conditioning_named(positive, negative):
            out["samples"] = comfy.sample.sample_custom(
                model, noise, cfg, sampler, sigmas, positive, negative, latent,
                noise_mask=latent_image.get("noise_mask"), callback=callback,
                disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed,
            )
        return io.NodeOutput(out, used.map)


class StereoSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StereoSampler",
            display_name="Stereo Sampler",
            category=CATEGORY,
            description="The StereoDiffusion method as a SAMPLER for SamplerCustom / SamplerCustomAdvanced. "
            "Give those your latent of N images as for any sampler (no Repeat Latent Batch): the output is a "
            "stereo batch of 2N (N lefts, then N rights), the left images being exactly what the same sampler "
            "gives without stereo.",
            inputs=[
                io.Combo.Input(
                    "sampler_name", options=supported_samplers(), default="euler",
                    tooltip="The underlying step-wise sampler (dpm_fast and dpm_adaptive are not supported).",
                ),
                *stereo_inputs(),
                *one_pass_inputs(),
                display_input(),
            ],
            outputs=[io.Sampler.Output(tooltip="A SAMPLER that makes stereo batches.")],
        )

    @classmethod
    def execute(
        cls, sampler_name, divergence, convergence, subpixel, balance, shift_at, spsmd, spsmd_interval, deblur,
        disparity=None, disparity_model=None, vae=None, refresh=False, eyes="batched", display=None,
    ) -> io.NodeOutput:
        settings = shift_settings(
            disparity, divergence, convergence, subpixel, balance, deblur, display, node="Stereo Sampler"
        )
        used = UsedDisparity()
        estimate_for = _logging_estimates(
            "Stereo Sampler", settings, one_pass_estimator(settings.disparity, disparity_model, vae, used)
        )
        sampler = stereo_ksampler_object(
            sampler_name, settings, shift_at, spsmd, spsmd_interval, estimate_for=estimate_for,
            refresh=refresh, eyes=eyes,
        )
        # A SAMPLER node runs before the sampling: the map is read afterwards by Stereo Sampler Disparity.
        record_sampled_shape(sampler, used)
        sampler.stereo_disparity = used
        sampler.stereo_given_map = settings.disparity
        sampler.stereo_vae = vae
        return io.NodeOutput(sampler)


def record_sampled_shape(sampler, used: UsedDisparity) -> None:
    """Let the sampler note the shape of each stereo batch it makes, so that Stereo Sampler Disparity
    can tell its latent from another sampler's."""
    run = sampler.sampler_function

    def recording(*args, **kwargs):
        out = run(*args, **kwargs)
        used.sampled_shape = tuple(out.shape)
        return out

    sampler.sampler_function = recording


class StereoSamplerDisparity(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StereoSamplerDisparity",
            display_name="Stereo Sampler Disparity",
            category=CATEGORY,
            description="The disparity a Stereo Sampler used, one map per image at the image's size: the map "
            "it estimated in one pass, or the connected map. A SAMPLER node runs before the sampling, so the map "
            "is read here, after SamplerCustom / SamplerCustomAdvanced has produced its latent.",
            inputs=[
                io.Sampler.Input("sampler", tooltip="The SAMPLER output of Stereo Sampler."),
                io.Latent.Input(
                    "stereo_latent",
                    tooltip="The output latent of the SamplerCustom / SamplerCustomAdvanced that used the sampler "
                    "(it makes this node run after the sampling).",
                ),
            ],
            outputs=[io.Mask.Output(display_name="disparity", tooltip="The disparity used, 0..1, near = 1.")],
        )

    @classmethod
    def execute(cls, sampler, stereo_latent) -> io.NodeOutput:
        used = getattr(sampler, "stereo_disparity", None)
        if used is None:
            raise ValueError("sampler: connect the SAMPLER output of a Stereo Sampler")
        samples = check_sampled_latent(stereo_latent, used)
        if used.map is not None:
            return io.NodeOutput(used.map)
        given = sampler.stereo_given_map
        if given is None:
            raise ValueError(
                "stereo_latent: the Stereo Sampler has not sampled yet; connect the latent that "
                "SamplerCustom / SamplerCustomAdvanced produced with it"
            )
        return io.NodeOutput(image_size_map(given, max(samples.shape[0] // 2, 1), samples, vae=sampler.stereo_vae))


def check_sampled_latent(stereo_latent, used: UsedDisparity) -> torch.Tensor:
    """The stereo_latent's samples, refused unless this Stereo Sampler made a batch of their shape."""
    samples = stereo_latent.get("samples") if isinstance(stereo_latent, dict) else None
    if not isinstance(samples, torch.Tensor):
        raise TypeError(f"stereo_latent: expected a LATENT, got {type(stereo_latent).__name__}")
    if used.sampled_shape is None:
        raise ValueError(
            "stereo_latent: the Stereo Sampler has not sampled yet; connect the latent that SamplerCustom / "
            "SamplerCustomAdvanced produced with this Stereo Sampler as its sampler"
        )
    if tuple(samples.shape) != used.sampled_shape:
        raise ValueError(
            f"stereo_latent has shape {tuple(samples.shape)}, but the Stereo Sampler made a stereo batch of "
            f"shape {used.sampled_shape}; connect the latent that SamplerCustom / SamplerCustomAdvanced "
            "produced with this Stereo Sampler"
        )
    return samples


NODES = [StereoKSampler, StereoSampler, StereoSamplerDisparity]
