"""StereoAttentionPatch: the right image's self-attention sees the left image (or both see both).

UNets (SD1.x, SD2.x, SDXL) are patched through their attn1 patches. DiTs (Flux, SD3) run joint
text+image attention with no such patch; they are reached through the host's
`optimized_attention_override`, which sees every attention call with its transformer options, plus
an apply-model wrapper that tells it where the image tokens are in the sequence.
"""

from __future__ import annotations

import functools
import math

import comfy.ldm.flux.model
import comfy.ldm.modules.diffusionmodules.mmdit
import comfy.patcher_extension
from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
from comfy_api.latest import io

from ..stereo_ops.attention import (
    ATTENTION_MODES,
    image_window,
    joint_stereo_attention,
    recall_kv,
    record_kv,
    right_pass_attention,
    share_kv,
)
from .stereo_types import STEREO_JOINT_OPTION, STEREO_PAIRS_OPTION, STEREO_PASS_OPTION

OVERRIDE_OPTION = "optimized_attention_override"
# Set per model call by the apply-model wrapper: (text tokens, image tokens) of the sequence.
STEREO_TOKENS_OPTION = "stereo_tokens"
STEREO_REACHED_OPTION = "stereo_attention_reached"
WRAPPER_KEY = "stereo_attention_tokens"

# DiT families whose joint attention the patch understands: text tokens, then the image's tokens.
DIT_FAMILIES = {
    "Flux": comfy.ldm.flux.model.Flux,
    "SD3 (MMDiT)": comfy.ldm.modules.diffusionmodules.mmdit.MMDiT,
}
SUPPORTED = "UNets (SD1.x, SD2.x, SDXL) and DiTs (" + ", ".join(DIT_FAMILIES) + ")"


def model_family(model) -> str:
    """"unet" or "dit"; a ValueError naming the model when its attention cannot be reached."""
    diffusion_model = model.get_model_object("diffusion_model")
    if isinstance(diffusion_model, UNetModel):
        return "unet"
    if isinstance(diffusion_model, tuple(DIT_FAMILIES.values())):
        return "dit"
    raise ValueError(
        f"model: StereoAttentionPatch shares attention in {SUPPORTED}; this model is "
        f"{type(diffusion_model).__name__}, whose attention it cannot reach. Remove the node for this "
        "model: Stereo KSampler still works without it."
    )


def _in_range(options: dict, sigma_start: float, sigma_end: float) -> bool:
    sigmas = options.get("sigmas")
    return sigmas is None or sigma_end <= float(sigmas.reshape(-1)[0]) <= sigma_start


def stereo_attention_patch(mode: str, sigma_start: float, sigma_end: float):
    """An attn1 patch that shares keys/values within each stereo pair while the sigma is in range."""

    def patch(n, context, value, extra_options):
        stereo_pass = extra_options.get(STEREO_PASS_OPTION)
        pairs = extra_options.get(STEREO_PAIRS_OPTION)
        if stereo_pass is None and not pairs:
            return n, context, value  # not a stereo batch (e.g. the left-only steps)
        if not _in_range(extra_options, sigma_start, sigma_end):
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


def _image_tokens(diffusion_model, height: int, width: int) -> int:
    patch = diffusion_model.patch_size
    if isinstance(diffusion_model, comfy.ldm.flux.model.Flux):  # Flux rounds to the nearest patch
        return ((height + patch // 2) // patch) * ((width + patch // 2) // patch)
    return math.ceil(height / patch) * math.ceil(width / patch)  # MMDiT pads to whole patches


class _Reached:
    """Counts the attention calls the override saw during one model call (an object, not a dict,
    so that the host's copies of the transformer options share it)."""

    def __init__(self) -> None:
        self.calls = 0


def token_layout_wrapper(executor, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={}, **kwargs):
    """APPLY_MODEL wrapper: record how many text and image tokens this call's sequences hold, and
    refuse a stereo call in which no attention call reached the override."""
    diffusion_model = executor.class_obj.diffusion_model
    text = 0 if c_crossattn is None else c_crossattn.shape[1]
    text += getattr(diffusion_model, "register_length", 0)
    options = dict(transformer_options)
    options[STEREO_TOKENS_OPTION] = (text, _image_tokens(diffusion_model, x.shape[-2], x.shape[-1]))
    reached = options[STEREO_REACHED_OPTION] = _Reached()
    out = executor(x, t, c_concat, c_crossattn, control, options, **kwargs)
    stereo = options.get(STEREO_PASS_OPTION) is not None or options.get(STEREO_PAIRS_OPTION)
    if stereo and reached.calls == 0:
        raise RuntimeError(
            f"StereoAttentionPatch: {type(diffusion_model).__name__} ran without passing its attention "
            "through the host's optimized_attention_override (an older host, or a node that replaced the "
            "model's attention), so the eyes were not paired up. Update ComfyUI or remove the patch."
        )
    return out


_ATTENTION_PARAMS = ("q", "k", "v", "heads", "mask", "attn_precision", "skip_reshape", "skip_output_reshape")


def _call_arguments(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """An optimized_attention call as (q, k, v) and keyword arguments for the rest."""
    named = dict(zip(_ATTENTION_PARAMS[3:], args[3:]))
    return args[:3], {**kwargs, **named}


def _per_head(t, heads: int, skip_reshape: bool):
    """(B, H, T, d) from either layout the DiTs pass: per head already, or (B, T, ...) with heads packed."""
    if skip_reshape:
        return t
    return t.reshape(t.shape[0], t.shape[1], heads, -1).transpose(1, 2)


def stereo_attention_override(mode: str, sigma_start: float, sigma_end: float, previous=None):
    """An optimized_attention_override that pairs up the image tokens of stereo batches.

    `previous` is the override that was on the model before (another node's): every attention
    call, stereo or not, still goes through it.
    """

    def override(func, *args, **kwargs):
        inner = func if previous is None else functools.partial(previous, func)
        options = kwargs.get("transformer_options") or {}
        stereo_pass = options.get(STEREO_PASS_OPTION)
        pairs = options.get(STEREO_PAIRS_OPTION)
        tokens = options.get(STEREO_TOKENS_OPTION)
        if (stereo_pass is None and not pairs) or tokens is None or len(args) < 3:
            return inner(*args, **kwargs)
        reached = options.get(STEREO_REACHED_OPTION)
        if reached is not None:
            reached.calls += 1
        chunk_ids = options.get("uuids") or list(range(len(options.get("cond_or_uncond", [0]))))
        layer = stereo_pass.next_call(chunk_ids) if stereo_pass is not None else None
        (q, k, v), named = _call_arguments(args, kwargs)
        window = image_window(q.shape[-2] if named.get("skip_reshape") else q.shape[1], *tokens)
        if k.shape[:-1] != q.shape[:-1] or window is None or not _in_range(options, sigma_start, sigma_end):
            return inner(*args, **kwargs)
        heads, skip = named["heads"], bool(named.get("skip_reshape"))
        q, k, v = (_per_head(t, heads, skip) for t in (q, k, v))
        mask = named.get("mask")

        # Everything runs per head, (B, H, T, d), tokens on dim -2, in and out.
        def attend(q_, k_, v_, mask_):
            call = {**named, "mask": mask_, "skip_reshape": True, "skip_output_reshape": True}
            return inner(q_, k_, v_, **call)

        start, stop = window
        if stereo_pass is None:
            out = joint_stereo_attention(attend, q, k, v, mask, window, mode, len(chunk_ids), pairs)
        elif stereo_pass.role == "left":
            record_kv(stereo_pass.store, layer, chunk_ids, k[..., start:stop, :], v[..., start:stop, :])
            return inner(*args, **kwargs)
        else:
            if mode != "unidirectional":
                raise RuntimeError("bidirectional stereo attention needs both eyes in one batch")
            left_k, left_v = recall_kv(stereo_pass.store, layer, chunk_ids)
            out = right_pass_attention(attend, q, k, v, mask, window, left_k, left_v)
        if named.get("skip_output_reshape"):
            return out
        return out.transpose(1, 2).reshape(out.shape[0], out.shape[2], -1)

    return override


def _patch_dit(patched, mode: str, sigma_start: float, sigma_end: float) -> None:
    options = patched.model_options["transformer_options"]
    previous = options.get(OVERRIDE_OPTION)
    options[OVERRIDE_OPTION] = stereo_attention_override(mode, sigma_start, sigma_end, previous)
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, WRAPPER_KEY, token_layout_wrapper)


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
                io.Model.Input(
                    "model",
                    tooltip="A UNet (SD1.x, SD2.x, SDXL) or a DiT (Flux, SD3/SD3.5). On DiTs only the image "
                    "tokens are shared; the text tokens stay each image's own.",
                ),
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
        family = model_family(model)
        patched = model.clone()
        sampling = patched.get_model_object("model_sampling")
        sigma_start = float(sampling.percent_to_sigma(start_percent))
        sigma_end = float(sampling.percent_to_sigma(end_percent))
        if family == "unet":
            patched.set_model_attn1_patch(stereo_attention_patch(mode, sigma_start, sigma_end))
        else:
            _patch_dit(patched, mode, sigma_start, sigma_end)
        if mode == "bidirectional":
            patched.model_options["transformer_options"][STEREO_JOINT_OPTION] = True
        return io.NodeOutput(patched)


NODES = [StereoAttentionPatch]
