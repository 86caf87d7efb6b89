"""Finding, importing and driving a real ComfyUI host in tests, with tiny randomly initialised models.

The host is found through COMFYUI_PATH, else through the pack's own location when it sits in
ComfyUI/custom_nodes/<pack>, else in ~/.cache/comfyui-stereodiffusion/ComfyUI.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import torch

PACK_DIR = Path(__file__).resolve().parent.parent
DEFAULT_HOST = Path.home() / ".cache" / "comfyui-stereodiffusion" / "ComfyUI"


def register_pack_alias(name: str = "stereo_pack") -> None:
    """Make the pack importable as `stereo_pack` (e.g. `stereo_pack.stereo_ops`) for unit tests.

    The pack's __init__ needs ComfyUI, and the pack root must not go on sys.path (its `nodes`
    package would shadow the host's nodes.py), so the alias is an empty package over the root.
    """
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_loader(name, loader=None, is_package=True)
    spec.submodule_search_locations = [str(PACK_DIR)]
    sys.modules[name] = importlib.util.module_from_spec(spec)


def _is_host(path: Path) -> bool:
    return (path / "comfy" / "model_management.py").is_file() and (path / "nodes.py").is_file()


def find_host() -> Path | None:
    env = os.environ.get("COMFYUI_PATH")
    if env:
        path = Path(env).expanduser().resolve()
        if not _is_host(path):
            raise RuntimeError(f"COMFYUI_PATH={env} is not a ComfyUI checkout (no comfy/ and nodes.py there)")
        return path
    if PACK_DIR.parent.name == "custom_nodes" and _is_host(PACK_DIR.parent.parent):
        return PACK_DIR.parent.parent
    if _is_host(DEFAULT_HOST):
        return DEFAULT_HOST
    return None


def host_version(path: Path) -> str:
    text = (path / "comfyui_version.py").read_text() if (path / "comfyui_version.py").exists() else ""
    for line in text.splitlines():
        if line.startswith("__version__"):
            return line.split("=", 1)[1].strip().strip("\"'")
    return "unknown"


_imported: Path | None = None


def import_host(path: Path) -> None:
    """Put the host on sys.path and import it on the CPU, once per process."""
    global _imported
    if _imported is not None:
        if _imported != path:
            raise RuntimeError(f"a different ComfyUI ({_imported}) is already imported in this process")
        return
    # The pack root holds a `nodes` package; it must never shadow the host's nodes.py.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != PACK_DIR]
    sys.path.insert(0, str(path))
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import comfy.model_management  # noqa: F401  (reads args.cpu at import)
    import nodes

    if not hasattr(nodes, "load_custom_node"):
        raise RuntimeError(f"{path}/nodes.py is not ComfyUI's nodes module")
    _imported = path


def load_pack() -> ModuleType:
    """Load this pack through the host's own custom-node loader and return the package module."""
    import nodes

    module_name = str(PACK_DIR).replace(".", "_x_")
    if module_name in sys.modules:
        return sys.modules[module_name]
    result = nodes.load_custom_node(str(PACK_DIR))
    if asyncio.iscoroutine(result):
        result = asyncio.run(result)
    if not result:
        raise RuntimeError("ComfyUI's custom-node loader refused the pack; see the log above")
    return sys.modules[module_name]


def pack_submodule(pack: ModuleType, name: str) -> ModuleType:
    return importlib.import_module(f"{pack.__name__}.{name}")


# ---------------------------------------------------------------------------------------------
# Tiny models

TINY_CONTEXT_DIM = 64
TINY_POOLED_DIM = 32


def _tiny_unet_config(kind: str) -> dict:
    config = {
        "image_size": 32,
        "in_channels": 4,
        "out_channels": 4,
        "model_channels": 32,
        "num_res_blocks": [1, 1],
        "channel_mult": [1, 2],
        "transformer_depth_middle": 1,
        "context_dim": TINY_CONTEXT_DIM,
        "num_heads": 2,
        "num_head_channels": -1,
        "use_spatial_transformer": True,
        "legacy": False,
        "use_checkpoint": False,
        "use_temporal_resblock": False,
        "use_temporal_attention": False,
    }
    if kind == "sd15":
        config.update(
            transformer_depth=[1, 1],
            transformer_depth_output=[1, 1, 1, 1],
            use_linear_in_transformer=False,
            adm_in_channels=None,
        )
    elif kind == "sdxl":
        # SDXL's first level has no transformer; the adm vector is pooled text + 6 size embeddings.
        config.update(
            transformer_depth=[0, 1],
            transformer_depth_output=[0, 0, 1, 1],
            use_linear_in_transformer=True,
            adm_in_channels=TINY_POOLED_DIM + 6 * 256,
            num_classes="sequential",
        )
    else:
        raise ValueError(kind)
    return config


def init_weights(module: torch.nn.Module, seed: int = 0) -> None:
    """Fill the (uninitialised) weights deterministically with well-scaled random values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim >= 2:
                std = 1.0 / max(1, p[0].numel()) ** 0.5
                p.copy_(torch.randn(p.shape, generator=gen) * std)
            elif name.endswith("weight"):
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)


def tiny_model(kind: str = "sd15", seed: int = 0, prediction: str = "eps"):
    """A ModelPatcher around a tiny SD1.5- or SDXL-shaped UNet on the CPU."""
    import comfy.model_base
    import comfy.model_patcher
    import comfy.supported_models as sm

    base = {"sd15": sm.SD15, "sdxl": sm.SDXL, "sd20": sm.SD20}[kind]
    cls = type(f"Tiny{base.__name__}", (base,), {"unet_extra_config": {}})
    config = cls(_tiny_unet_config("sdxl" if kind == "sdxl" else "sd15"))
    model_type = {
        "eps": comfy.model_base.ModelType.EPS,
        "v": comfy.model_base.ModelType.V_PREDICTION,
    }[prediction]
    model_cls = comfy.model_base.SDXL if kind == "sdxl" else comfy.model_base.BaseModel
    model = model_cls(config, model_type=model_type, device=torch.device("cpu"))
    init_weights(model.diffusion_model, seed)
    model.eval()
    cpu = torch.device("cpu")
    return comfy.model_patcher.ModelPatcher(model, load_device=cpu, offload_device=cpu)


def tiny_conditioning(kind: str = "sd15", batch: int = 1, seed: int = 1, tokens: int = 77) -> list:
    """Raw conditioning lists for the tiny models (positive-style, one entry)."""
    gen = torch.Generator().manual_seed(seed)
    cond = torch.randn(batch, tokens, TINY_CONTEXT_DIM, generator=gen)
    extra: dict = {}
    if kind == "sdxl":
        extra["pooled_output"] = torch.randn(batch, TINY_POOLED_DIM, generator=gen)
    return [[cond, extra]]


# ---------------------------------------------------------------------------------------------
# Tiny DiTs (flow matching): a Flux-shaped and an SD3-shaped model

TINY_DIT_CONTEXT_DIM = 64
TINY_DIT_POOLED_DIM = 32


def _tiny_dit_config(kind: str) -> dict:
    if kind == "flux":
        config = {
            "image_model": "flux", "in_channels": 16, "out_channels": 16, "patch_size": 2,
            "vec_in_dim": TINY_DIT_POOLED_DIM, "context_in_dim": TINY_DIT_CONTEXT_DIM, "hidden_size": 64,
            "mlp_ratio": 2.0, "num_heads": 2, "depth": 1, "depth_single_blocks": 1, "axes_dim": [8, 12, 12],
            "theta": 10000, "qkv_bias": True, "guidance_embed": False,
        }
        import inspect

        import comfy.ldm.flux.model

        if "txt_ids_dims" in inspect.signature(comfy.ldm.flux.model.FluxParams).parameters:
            config["txt_ids_dims"] = []  # newer hosts: Flux.1 text ids carry no position
        return config
    if kind == "sd3":
        return {
            "in_channels": 16, "out_channels": 16, "patch_size": 2, "depth": 2, "input_size": None,
            "adm_in_channels": TINY_DIT_POOLED_DIM, "pos_embed_max_size": 32, "num_patches": 32 * 32,
            "pos_embed_scaling_factor": None, "qk_norm": None, "x_block_self_attn_layers": [],
            "context_embedder_config": {
                "target": "torch.nn.Linear",
                "params": {"in_features": TINY_DIT_CONTEXT_DIM, "out_features": 128},
            },
        }
    raise ValueError(kind)


def tiny_dit(kind: str = "flux", seed: int = 0, output_scale: float = 1.0, **config_overrides):
    """A ModelPatcher around a tiny Flux-shaped (schnell: no guidance input) or SD3-shaped model.

    output_scale < 1 shrinks the last layer, which makes the random denoiser smooth like a trained one;
    config_overrides change the shape (e.g. hidden_size, depth).
    """
    import comfy.model_patcher
    import comfy.supported_models as sm

    base = {"flux": sm.FluxSchnell, "sd3": sm.SD3}[kind]
    cls = type(f"Tiny{base.__name__}", (base,), {"unet_extra_config": {}})
    config = cls({**_tiny_dit_config(kind), **config_overrides})
    config.set_inference_dtype(torch.float32, torch.float32)
    model = config.get_model({}, device=torch.device("cpu"))
    init_weights(model.diffusion_model, seed)
    last = model.diffusion_model.final_layer.linear
    with torch.no_grad():
        last.weight.mul_(output_scale)
        last.bias.mul_(output_scale)
    model.eval()
    cpu = torch.device("cpu")
    return comfy.model_patcher.ModelPatcher(model, load_device=cpu, offload_device=cpu)


def tiny_dit_conditioning(batch: int = 1, seed: int = 1, tokens: int = 8) -> list:
    """Raw conditioning for the tiny DiTs: text tokens and a pooled vector."""
    gen = torch.Generator().manual_seed(seed)
    cond = torch.randn(batch, tokens, TINY_DIT_CONTEXT_DIM, generator=gen)
    return [[cond, {"pooled_output": torch.randn(batch, TINY_DIT_POOLED_DIM, generator=gen)}]]
