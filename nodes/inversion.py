"""StereoNullTextInversion: invert an encoded photo so that the stereo sampler reproduces it as the left view."""

from __future__ import annotations

import comfy.model_management
import comfy.utils
from comfy_api.latest import io

from ..stereo_ops import inversion as inv
from ..stereo_ops.frame_noise import frame_ranges
from .frame_chunks import check_frame_chunk, invert_in_chunks
from . import inversion_runtime as runtime
from .input_checks import check_conditioning, conditioning_named, model_latent
from .stereo_types import StereoInversionType

CATEGORY = "stereo/sampling"


class StereoNullTextInversion(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StereoNullTextInversion",
            display_name="Stereo Null-Text Inversion",
            category=CATEGORY,
            description="Invert VAE-encoded photo(s) into a start latent, a schedule and per-step "
            "unconditional embeddings, so that the Stereo KSampler (same model, prompts, steps and cfg) "
            "reproduces the photo as the left view and paints its stereo partner. null_text: DDIM "
            "inversion plus per-step optimisation of the negative embedding (best with the negative "
            "prompt kept for the right view, slowest). fixed_point: exact inversion of the sampler "
            "with the positive prompt as negative, no optimisation (fast). ddim: plain inversion, for "
            "comparison. Flow models (Flux, SD3) are inverted along their own flow schedule; null_text needs "
            "cfg > 1 and a model that is not guidance-distilled (for Flux use fixed_point).",
            inputs=[
                io.Model.Input(
                    "model",
                    tooltip="The diffusion model the Stereo KSampler will use: SD1.x, SD2.x, SDXL, or a flow "
                    "model (Flux, SD3).",
                ),
                io.Conditioning.Input("positive", tooltip="The prompt describing the photo; the sampler must use the same."),
                io.Conditioning.Input("negative", tooltip="The negative prompt (often empty); the sampler must use the same."),
                io.Latent.Input("latent", tooltip="The photo(s) encoded with VAE Encode; a batch inverts several photos."),
                io.Int.Input("steps", default=50, min=1, max=1000, tooltip="Sampling steps; the Stereo KSampler must use the same number."),
                io.Float.Input(
                    "cfg", default=7.5, min=0.0, max=100.0, step=0.1, round=0.01,
                    tooltip="Classifier-free guidance the sampler will use; the inversion is made for this value.",
                ),
                io.Combo.Input(
                    "method", options=list(inv.METHODS), default=inv.NULL_TEXT,
                    tooltip="null_text: the paper's method (optimises the negative embedding per step; needs "
                    "cfg > 1, refused for guidance-distilled Flux). "
                    "fixed_point: exact inversion with the positive prompt as negative, about 5x faster or more, "
                    "no optimisation. ddim: plain DDIM inversion (reconstructs poorly at high cfg).",
                ),
                io.Int.Input(
                    "inner_steps", default=10, min=0, max=100,
                    tooltip="null_text: at most this many Adam steps per sampling step.",
                ),
                io.Float.Input(
                    "learning_rate", default=1e-2, min=1e-5, max=1.0, step=1e-4, round=1e-5,
                    tooltip="null_text: Adam learning rate at the first step; it falls linearly to half of "
                    "this at the last step (the paper's 1e-2 * (1 - i/100) over 50 steps).",
                ),
                io.Float.Input(
                    "early_stop_base", default=1e-5, min=0.0, max=1.0, step=1e-6, round=1e-7,
                    tooltip="null_text: a step stops optimising once its loss is below base + slope * i "
                    "(i counted as in a 50-step schedule).",
                ),
                io.Float.Input(
                    "early_stop_slope", default=2e-5, min=0.0, max=1.0, step=1e-6, round=1e-7,
                    tooltip="null_text: how much the early-stop threshold grows per step (of a 50-step schedule).",
                ),
                io.Int.Input(
                    "fixed_point_iterations", default=1, min=1, max=20,
                    tooltip="fixed_point: guided model calls per step; each one more tightens the "
                    "reconstruction (1 already beats null_text on reconstruction at a fraction of its time).",
                ),
                io.Int.Input(
                    "frame_chunk", default=0, min=0, max=4096, optional=True,
                    tooltip="Frames inverted per model batch for a clip (0: all at once). Each frame's inversion "
                    "is its own, so the result does not depend on this; lower it when memory runs out.",
                ),
            ],
            outputs=[
                StereoInversionType.Output(
                    "inversion", display_name="inversion",
                    tooltip="Connect to the Stereo KSampler's inversion input.",
                ),
            ],
        )

    @classmethod
    def execute(
        cls, model, positive, negative, latent, steps, cfg, method,
        inner_steps=10, learning_rate=1e-2, early_stop_base=1e-5, early_stop_slope=2e-5,
        fixed_point_iterations=1, frame_chunk=0,
    ) -> io.NodeOutput:
        samples = model_latent(model, latent, "latent", min_size=runtime.MIN_LATENT_SIZE)
        check_conditioning(positive, "positive", model)
        check_conditioning(negative, "negative", model)
        settings = inv.NullTextSettings(inner_steps, learning_rate, early_stop_base, early_stop_slope)
        check_frame_chunk(frame_chunk)
        chunks = len(frame_ranges(latent["samples"].shape[0], frame_chunk))
        progress = comfy.utils.ProgressBar(runtime.progress_ticks(method, steps, settings) * chunks)

        def tick() -> None:
            comfy.model_management.throw_exception_if_processing_interrupted()
            progress.update(1)

        with conditioning_named(positive, negative):
            if frame_chunk > 0:
                return io.NodeOutput(invert_in_chunks(
                    model, positive, negative, samples, steps, cfg, method, frame_chunk, tick,
                    settings=settings, fixed_point_iterations=fixed_point_iterations,
                ))
            inversion, _ = runtime.invert(
                model, positive, negative, samples, steps, cfg, method,
                settings=settings, fixed_point_iterations=fixed_point_iterations, on_tick=tick,
            )
        return io.NodeOutput(inversion)


NODES = [StereoNullTextInversion]
