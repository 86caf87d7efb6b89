"""StereoAttentionPatch: the right image's self-attention sees the left image (or both see both)."""

from __future__ import annotations

from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
from comfy_api.latest import io

from ..stereo_ops.attention import (
    ATTENTION_MODES,
    STEREO_JOINT_OPTION,
    STEREO_PAIRS_OPTION,
    STEREO_PASS_OPTION,
    recall_kv,
    record_kv,
    share_kv,
)


def _check_unet(model) -> None:
    diffusion_model = model.get_model_object("diffusion_model")
    if not isinstance(diffusion_model, UNetModel):
        raise ValueError(
            f"StereoAttentionPatch works on UNet models with self-attention blocks (SD1.x, SD2.x, SDXL); "
            f"this model is {type(diffusion_model).__name__}, whose attention it cannot patch. "
            "Remove the node for this model: Stereo KSampler still works without it."
        )


def stereo_attention_patch(mode: str, sigma_start: float, sigma_end: float):
    """An attn1 patch that shares keys/values within each stereo pair while the sigma is in range."""

    def patch(n, context, value, extra_options):
        stereo_pass = extra_options.get(STEREO_PASS_OPTION)
        pairs = extra_options.get(STEREO_PAIRS_OPTION)
        if stereo_pass is None and not pairs:
            return n, context, value  # not a stereo batch (e.g. the left-only steps)
        sigmas = extra_options.get("sigmas")
        if sigmas is not None and not sigma_end <= float(sigmas.reshape(-1)[0]) <= sigma_start:
            return n, context, value
        chunk_ids = extra_options.get("uuids") or list(range(len(extra_options.get("cond_or_uncond", [0]))))
        if stereo_pass is not None:
            if mode != "unidirectional":
                raise RuntimeError("bidirectional stereo attention needs both eyes in one batch")
            layer = (extra_options.get("block"), extra_options.get("block_index"))
            if stereo_pass.role == "left":
                record_kv(stereo_pass.store, layer, chunk_ids, context, value)
                return n, context, value
            context, value = recall_kv(stereo_pass.store, layer, chunk_ids)
            return n, context, value
        shared = share_kv(context, mode, len(chunk_ids), pairs)
        shared_value = shared if value is context else share_kv(value, mode, len(chunk_ids), pairs)
        return n, shared, shared_value

    return patch


class StereoAttentionPatch(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StereoAttentionPatch",
            display_name="Stereo Attention Patch",
            category="stereo/model_patches",
            description="Patch a model's self-attention so that during stereo sampling the right image uses "
            "the left image's keys and values (unidirectional: the left image stays exactly as without the "
            "patch) or both images attend to each other (bidirectional). It acts only inside Stereo KSampler / "
            "Stereo Sampler and chains with other attention patches (IPAdapter etc.).",
            inputs=[
                io.Model.Input("model", tooltip="A UNet model: SD1.x, SD2.x or SDXL."),
                io.Combo.Input(
                    "mode", options=list(ATTENTION_MODES), default="unidirectional",
                    tooltip="unidirectional: the right image attends to the left image's tokens (the paper's "
                    "default); bidirectional: both images attend jointly to both images' tokens.",
                ),
                io.Float.Input(
                    "start_percent", default=0.0, min=0.0, max=1.0, step=0.001,
                    tooltip="Fraction of the schedule at which sharing starts.",
                ),
                io.Float.Input(
                    "end_percent", default=1.0, min=0.0, max=1.0, step=0.001,
                    tooltip="Fraction of the schedule at which sharing stops.",
                ),
            ],
            outputs=[io.Model.Output(tooltip="The patched model (a clone; the input model is unchanged).")],
        )

    @classmethod
    def execute(cls, model, mode, start_percent, end_percent) -> io.NodeOutput:
        if mode not in ATTENTION_MODES:
            raise ValueError(f"mode must be one of {', '.join(ATTENTION_MODES)}, got {mode!r}")
        if start_percent > end_percent:
            raise ValueError(f"start_percent ({start_percent}) must not be after end_percent ({end_percent})")
        _check_unet(model)
        patched = model.clone()
        sampling = patched.get_model_object("model_sampling")
        sigma_start = float(sampling.percent_to_sigma(start_percent))
        sigma_end = float(sampling.percent_to_sigma(end_percent))
        patched.set_model_attn1_patch(stereo_attention_patch(mode, sigma_start, sigma_end))
        if mode == "bidirectional":
            patched.model_options["transformer_options"][STEREO_JOINT_OPTION] = True
        return io.NodeOutput(patched)


NODES = [StereoAttentionPatch]
