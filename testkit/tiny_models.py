"""Tiny models in memory, built with the host's own classes: SD1.5- and SDXL-shaped UNets and
Flux- and SD3-shaped DiTs, wrapped in ModelPatchers on the CPU, with raw-tensor conditioning.

The shapes here are the only tiny shapes: testkit.tiny_checkpoints writes the SDXL and Flux ones
to files for the host's ordinary loaders.
"""

from __future__ import annotations

import inspect

import torch

from .random_weights import fill_random

TINY_CONTEXT_DIM = 64
TINY_POOLED_DIM = 32

_TINY_UNET = {
    "image_size": 32, "in_channels": 4, "out_channels": 4, "model_channels": 32,
    "channel_mult": [1, 2], "num_res_blocks": [1, 1], "transformer_depth_middle": 1,
    "context_dim": TINY_CONTEXT_DIM, "use_spatial_transformer": True, "legacy": False,
    "use_checkpoint": False, "use_temporal_resblock": False, "use_temporal_attention": False,
}
TINY_SD15_UNET = {
    **_TINY_UNET, "num_heads": 2, "num_head_channels": -1, "transformer_depth": [1, 1],
    "transformer_depth_output": [1, 1, 1, 1], "use_linear_in_transformer": False, "adm_in_channels": None,
}
# SDXL's first level has no transformer; its adm vector is the pooled text + 6 size embeddings.
TINY_SDXL_UNET = {
    **_TINY_UNET, "num_heads": -1, "num_head_channels": 16, "transformer_depth": [0, 1],
    "transformer_depth_output": [0, 0, 1, 1], "use_linear_in_transformer": True,
    "adm_in_channels": TINY_POOLED_DIM + 6 * 256, "num_classes": "sequential",
}

# Flux.1-dev's layout at a tiny width; the schnell form (no guidance input) drops guidance_embed.
TINY_FLUX = {
    "image_model": "flux", "in_channels": 16, "out_channels": 16, "patch_size": 2,
    "vec_in_dim": TINY_POOLED_DIM, "context_in_dim": TINY_CONTEXT_DIM, "hidden_size": 64,
    "mlp_ratio": 2.0, "num_heads": 2, "depth": 1, "depth_single_blocks": 1, "axes_dim": [8, 12, 12],
    "theta": 10000, "qkv_bias": True, "guidance_embed": True,
}
TINY_SD3 = {
    "in_channels": 16, "out_channels": 16, "patch_size": 2, "depth": 2, "input_size": None,
    "adm_in_channels": TINY_POOLED_DIM, "pos_embed_max_size": 32, "num_patches": 32 * 32,
    "pos_embed_scaling_factor": None, "qk_norm": None, "x_block_self_attn_layers": [],
    "context_embedder_config": {
        "target": "torch.nn.Linear", "params": {"in_features": TINY_CONTEXT_DIM, "out_features": 128},
    },
}


def flux_config(**overrides) -> dict:
    """TINY_FLUX with `overrides`, in the form this host's Flux takes."""
    import comfy.ldm.flux.model

    config = {**TINY_FLUX, **overrides}
    if "txt_ids_dims" in inspect.signature(comfy.ldm.flux.model.FluxParams).parameters:
        config["txt_ids_dims"] = []  # newer hosts: Flux.1 text ids carry no position
    return config


def _patcher(model):
    import comfy.model_patcher

    model.eval()
    cpu = torch.device("cpu")
    return comfy.model_patcher.ModelPatcher(model, load_device=cpu, offload_device=cpu)


def tiny_model(kind: str = "sd15", seed: int = 0, prediction: str = "eps"):
    """A ModelPatcher around a tiny SD1.5-, SD2.0- or SDXL-shaped UNet on the CPU."""
    import comfy.model_base
    import comfy.supported_models as sm

    base = {"sd15": sm.SD15, "sdxl": sm.SDXL, "sd20": sm.SD20}[kind]
    cls = type(f"Tiny{base.__name__}", (base,), {"unet_extra_config": {}})
    config = cls(TINY_SDXL_UNET if kind == "sdxl" else TINY_SD15_UNET)
    model_type = {"eps": comfy.model_base.ModelType.EPS, "v": comfy.model_base.ModelType.V_PREDICTION}[prediction]
    model_cls = comfy.model_base.SDXL if kind == "sdxl" else comfy.model_base.BaseModel
    model = model_cls(config, model_type=model_type, device=torch.device("cpu"))
    fill_random(model.diffusion_model, seed)
    return _patcher(model)


def tiny_conditioning(kind: str = "sd15", batch: int = 1, seed: int = 1, tokens: int = 77) -> list:
    """Raw conditioning lists for the tiny UNets (positive-style, one entry)."""
    gen = torch.Generator().manual_seed(seed)
    cond = torch.randn(batch, tokens, TINY_CONTEXT_DIM, generator=gen)
    extra: dict = {}
    if kind == "sdxl":
        extra["pooled_output"] = torch.randn(batch, TINY_POOLED_DIM, generator=gen)
    return [[cond, extra]]


def tiny_dit(kind: str = "flux", seed: int = 0, output_scale: float = 1.0, **config_overrides):
    """A ModelPatcher around a tiny Flux-shaped (schnell: no guidance input) or SD3-shaped model.

    output_scale < 1 shrinks the last layer, which makes the random denoiser smooth like a trained one;
    config_overrides change the shape (e.g. hidden_size, depth).
    """
    import comfy.supported_models as sm

    base = {"flux": sm.FluxSchnell, "sd3": sm.SD3}[kind]
    shape = flux_config(guidance_embed=False) if kind == "flux" else TINY_SD3
    cls = type(f"Tiny{base.__name__}", (base,), {"unet_extra_config": {}})
    config = cls({**shape, **config_overrides})
    config.set_inference_dtype(torch.float32, torch.float32)
    model = config.get_model({}, device=torch.device("cpu"))
    fill_random(model.diffusion_model, seed)
    last = model.diffusion_model.final_layer.linear
    with torch.no_grad():
        last.weight.mul_(output_scale)
        last.bias.mul_(output_scale)
    return _patcher(model)


def tiny_dit_conditioning(batch: int = 1, seed: int = 1, tokens: int = 8) -> list:
    """Raw conditioning for the tiny DiTs: text tokens and a pooled vector."""
    gen = torch.Generator().manual_seed(seed)
    cond = torch.randn(batch, tokens, TINY_CONTEXT_DIM, generator=gen)
    return [[cond, {"pooled_output": torch.randn(batch, TINY_POOLED_DIM, generator=gen)}]]
