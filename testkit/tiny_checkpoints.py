"""Tiny model files that the host's ORDINARY loaders accept, written by the tests themselves.

- `tiny_sd15.safetensors`: a checkpoint that CheckpointLoaderSimple detects as SD1.5. The host's
  model detection matches SD1.5 on model_channels 320 and context_dim 768 but reads the depth of
  the UNet from the keys, so one level (channel_mult [1]), one res block and transformer depth 1
  are enough (~26M parameters). The text encoder is the host's fixed CLIP-L architecture
  (its size comes from the host's json config, not from the file), stored in half precision.
  The VAE group is a TAESD, which the host's VAE detection recognises by its keys.
- `tiny_controlnet_sd15.safetensors`: a ControlNet in the original (`control_model.`) layout whose
  shape matches the tiny SD1.5 UNet, for ControlNetLoader.
- `tiny_sdxl.safetensors`: SDXL cannot be made small: its detection pins 320 channels, transformer
  depths [0, 0, 2, 2, 10, 10] and context 2048 (a 2.6B UNet), and its CLIP-L + OpenCLIP-bigG
  encoders (~820M parameters) are fixed by the host's json configs. The nearest honest
  alternative: `register_tiny_sdxl()` adds one model family to the host's own detection table, a
  subclass of the host's SDXL config with a tiny UNet shape and the host's SDXL tokenizer and
  two-encoder text model at tiny widths. The file uses SDXL's key layout, loads through the
  unchanged CheckpointLoaderSimple, and samples with the host's `model_base.SDXL` (pooled text and
  size embeddings in the adm vector), which is what an SDXL workflow exercises.

The SDXL and Flux shapes are those of testkit.tiny_models.

- `depthanything/tiny_depth_anything_v2.safetensors`: testkit.tiny_depth's Depth Anything V2, for
  Load Disparity Model (`TinyModels.depth_model_name`).

- Flux (`tiny_flux.safetensors` for UNETLoader, `tiny_clip_l.safetensors` and
  `tiny_t5xxl.safetensors` for DualCLIPLoader, `tiny_flux_vae.safetensors` for VAELoader): Flux's
  detection pins hidden size 3072 and 24 heads, and its text encoders are the host's fixed CLIP-L
  and T5-XXL (4.7B parameters). As for SDXL, `register_tiny_flux()` adds a Flux.1-dev family of
  depth 1 + 1 to the host's detection table, with a tiny width, and makes the host's Flux text
  encoder (DualCLIPLoader, type flux) a CLIP-L and a T5 of tiny widths; the files use Flux's key
  layouts and the VAE is a 16-channel TAESD, which VAELoader detects by its keys.

Everything is created with the host's own module classes so that the keys are exactly those the
loaders expect; the weights are seeded random values.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from .random_weights import fill_random
from .tiny_models import TINY_CONTEXT_DIM, TINY_POOLED_DIM, TINY_SDXL_UNET, flux_config

SD15_UNET = {
    "image_size": 32,
    "in_channels": 4,
    "out_channels": 4,
    "model_channels": 320,
    "channel_mult": [1],
    "num_res_blocks": [1],
    "transformer_depth": [1],
    "transformer_depth_output": [1, 1],
    "transformer_depth_middle": 1,
    "context_dim": 768,
    "num_heads": 8,
    "num_head_channels": -1,
    "use_spatial_transformer": True,
    "use_linear_in_transformer": False,
    "legacy": False,
    "adm_in_channels": None,
    "use_checkpoint": False,
    "use_temporal_resblock": False,
    "use_temporal_attention": False,
}

# The two SDXL text encoders' hidden states side by side are the UNet's context; the second's
# projection is the pooled vector.
TINY_SDXL_CLIP_L = {"hidden_size": TINY_CONTEXT_DIM // 2, "intermediate_size": 64, "num_attention_heads": 2,
                    "num_hidden_layers": 3, "projection_dim": 32, "hidden_act": "quick_gelu"}
TINY_SDXL_CLIP_G = {"hidden_size": TINY_CONTEXT_DIM // 2, "intermediate_size": 64, "num_attention_heads": 2,
                    "num_hidden_layers": 3, "projection_dim": TINY_POOLED_DIM, "hidden_act": "gelu"}

# Flux's CLIP-L gives the pooled vector, its T5 the context.
TINY_FLUX_CLIP_L = {"hidden_size": TINY_POOLED_DIM, "intermediate_size": 64, "num_attention_heads": 2,
                    "num_hidden_layers": 3, "projection_dim": 32, "hidden_act": "quick_gelu"}
TINY_FLUX_T5 = {
    "d_ff": 64, "d_kv": 16, "d_model": TINY_CONTEXT_DIM, "num_heads": 2, "num_layers": 2, "vocab_size": 32128,
    "dense_act_fn": "gelu_pytorch_tanh", "is_gated_act": True, "layer_norm_epsilon": 1e-6, "model_type": "t5",
    "relative_attention_num_buckets": 32, "pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0,
    "tie_word_embeddings": False, "initializer_factor": 1.0,
}

SD15_CHECKPOINT = "tiny_sd15.safetensors"
FLUX_UNET = "tiny_flux.safetensors"
FLUX_CLIP_L = "tiny_clip_l.safetensors"
FLUX_T5 = "tiny_t5xxl.safetensors"
FLUX_VAE = "tiny_flux_vae.safetensors"
SDXL_CHECKPOINT = "tiny_sdxl.safetensors"
SD15_CONTROLNET = "tiny_controlnet_sd15.safetensors"
DEPTH_MODEL = "tiny_depth_anything_v2.safetensors"


def _clip_config(overrides: dict) -> dict:
    base = {
        "attention_dropout": 0.0, "bos_token_id": 0, "dropout": 0.0, "eos_token_id": 49407,
        "initializer_factor": 1.0, "initializer_range": 0.02, "layer_norm_eps": 1e-05,
        "max_position_embeddings": 77, "model_type": "clip_text_model", "pad_token_id": 1,
        "vocab_size": 49408,
    }
    return {**base, **overrides}


def prefixed_state_dict(prefix: str, module: torch.nn.Module, dtype: torch.dtype = torch.float32) -> dict:
    """`module`'s weights under the key group a checkpoint file keeps them in, in `dtype`."""
    return {prefix + k: v.detach().to(dtype).contiguous() for k, v in module.state_dict().items()}


def _unet(config: dict, seed: int) -> torch.nn.Module:
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    unet = UNetModel(**config, dtype=torch.float32, device="cpu", operations=comfy.ops.disable_weight_init)
    fill_random(unet, seed)
    return unet


def _taesd(seed: int, latent_channels: int = 4) -> torch.nn.Module:
    from comfy.taesd.taesd import TAESD

    vae = TAESD(latent_channels=latent_channels)
    fill_random(vae, seed)
    with torch.no_grad():
        vae.vae_scale.fill_(1.0)
        vae.vae_shift.fill_(0.0)
    return vae


def clip_text_model(config: dict | None, seed: int, **kwargs) -> torch.nn.Module:
    """The host's CLIP text transformer (`config` None: the host's own CLIP-L json)."""
    from comfy import sd1_clip

    clip = sd1_clip.SDClipModel(device="cpu", dtype=torch.float32, textmodel_json_config=config, **kwargs)
    fill_random(clip.transformer, seed)
    return clip.transformer


def sd15_checkpoint(seed: int = 0) -> dict[str, torch.Tensor]:
    sd = prefixed_state_dict("model.diffusion_model.", _unet(SD15_UNET, seed))
    sd.update(prefixed_state_dict("cond_stage_model.transformer.", clip_text_model(None, seed + 1), torch.float16))
    sd.update(prefixed_state_dict("first_stage_model.", _taesd(seed + 2)))
    return sd


def controlnet_sd15(seed: int = 0) -> dict[str, torch.Tensor]:
    import comfy.cldm.cldm
    import comfy.ops

    config = {k: v for k, v in SD15_UNET.items() if k not in ("out_channels", "transformer_depth_output")}
    net = comfy.cldm.cldm.ControlNet(hint_channels=3, **config, dtype=torch.float32, device="cpu",
                                     operations=comfy.ops.disable_weight_init)
    fill_random(net, seed)
    # The zero convolutions start at zero in real ControlNets; non-zero ones make the control
    # visible in the output, which is what a test wants to see.
    return prefixed_state_dict("control_model.", net)


def sdxl_checkpoint(seed: int = 0) -> dict[str, torch.Tensor]:
    sd = prefixed_state_dict("model.diffusion_model.", _unet(TINY_SDXL_UNET, seed))
    sd.update(prefixed_state_dict("conditioner.embedders.0.transformer.",
                        clip_text_model(_clip_config(TINY_SDXL_CLIP_L), seed + 1)))
    sd.update(prefixed_state_dict("conditioner.embedders.1.model.transformer.",
                        clip_text_model(_clip_config(TINY_SDXL_CLIP_G), seed + 2)))
    sd.update(prefixed_state_dict("first_stage_model.", _taesd(seed + 3)))
    return sd


_TINY_SDXL_CLASS = None


def register_tiny_sdxl() -> type:
    """Add the tiny SDXL family to the host's model detection table (once per process)."""
    global _TINY_SDXL_CLASS
    if _TINY_SDXL_CLASS is not None:
        return _TINY_SDXL_CLASS
    import comfy.supported_models as sm
    import comfy.supported_models_base
    from comfy import sd1_clip, sdxl_clip

    class TinySDXLClipModel(sdxl_clip.SDXLClipModel):
        def __init__(self, device="cpu", dtype=None, model_options={}):
            torch.nn.Module.__init__(self)
            self.clip_l = sd1_clip.SDClipModel(
                layer="hidden", layer_idx=-2, device=device, dtype=dtype, layer_norm_hidden_state=False,
                textmodel_json_config=_clip_config(TINY_SDXL_CLIP_L), model_options=model_options)
            self.clip_g = sd1_clip.SDClipModel(
                layer="hidden", layer_idx=-2, device=device, dtype=dtype, layer_norm_hidden_state=False,
                textmodel_json_config=_clip_config(TINY_SDXL_CLIP_G), return_projected_pooled=True,
                special_tokens={"start": 49406, "end": 49407, "pad": 0},
                model_options={**model_options, "model_name": "clip_g"})
            self.dtypes = {dtype}

    class TinySDXL(sm.SDXL):
        # What detection matches in a file's keys, and what it cannot read from them.
        unet_config = {k: TINY_SDXL_UNET[k] for k in ("model_channels", "use_linear_in_transformer", "transformer_depth",
                                                      "context_dim", "adm_in_channels", "use_temporal_attention")}
        unet_extra_config = {k: TINY_SDXL_UNET[k] for k in ("num_heads", "num_head_channels")}

        def clip_target(self, state_dict={}):
            return comfy.supported_models_base.ClipTarget(sdxl_clip.SDXLTokenizer, TinySDXLClipModel)

    sm.models.insert(0, TinySDXL)
    _TINY_SDXL_CLASS = TinySDXL
    return TinySDXL


def _flux_params() -> dict:
    return {k: v for k, v in flux_config().items() if k != "image_model"}


def flux_diffusion_model(seed: int = 0) -> dict[str, torch.Tensor]:
    """A Flux.1-dev-layout diffusion model file (no prefix), as UNETLoader reads it."""
    import comfy.ldm.flux.model
    import comfy.ops

    model = comfy.ldm.flux.model.Flux(**_flux_params(), dtype=torch.float32, device="cpu",
                                      operations=comfy.ops.disable_weight_init)
    fill_random(model, seed)
    return prefixed_state_dict("", model)


def flux_clip_l(seed: int = 0) -> dict[str, torch.Tensor]:
    return prefixed_state_dict("", clip_text_model(_clip_config(TINY_FLUX_CLIP_L), seed))


def flux_t5(seed: int = 0) -> dict[str, torch.Tensor]:
    import comfy.text_encoders.t5
    from comfy import sd1_clip

    t5 = sd1_clip.SDClipModel(device="cpu", dtype=torch.float32, textmodel_json_config=TINY_FLUX_T5,
                              special_tokens={"end": 1, "pad": 0}, model_class=comfy.text_encoders.t5.T5)
    fill_random(t5.transformer, seed)
    return prefixed_state_dict("", t5.transformer)


def flux_vae(seed: int = 0) -> dict[str, torch.Tensor]:
    return prefixed_state_dict("", _taesd(seed, latent_channels=16))


_TINY_FLUX_CLASS = None


def register_tiny_flux() -> type:
    """Add the tiny Flux family to the host's detection table and give its Flux text encoder tiny
    widths (once per process)."""
    global _TINY_FLUX_CLASS
    if _TINY_FLUX_CLASS is not None:
        return _TINY_FLUX_CLASS
    import comfy.supported_models as sm
    import comfy.text_encoders.flux
    import comfy.text_encoders.t5
    from comfy import sd1_clip

    class TinyFluxClipModel(comfy.text_encoders.flux.FluxClipModel):
        def __init__(self, device="cpu", dtype=None, model_options={}):
            torch.nn.Module.__init__(self)
            self.clip_l = sd1_clip.SDClipModel(
                device=device, dtype=dtype, return_projected_pooled=False, model_options=model_options,
                textmodel_json_config=_clip_config(TINY_FLUX_CLIP_L))
            self.t5xxl = sd1_clip.SDClipModel(
                device=device, dtype=dtype, textmodel_json_config=TINY_FLUX_T5, special_tokens={"end": 1, "pad": 0},
                model_class=comfy.text_encoders.t5.T5, model_options={**model_options, "model_name": "t5xxl"})
            self.dtypes = {dtype}

    comfy.text_encoders.flux.flux_clip = lambda **kwargs: TinyFluxClipModel

    class TinyFlux(sm.Flux):
        unet_config = {"image_model": "flux", "guidance_embed": True, "depth": 1, "depth_single_blocks": 1}
        unet_extra_config = {k: v for k, v in _flux_params().items()
                             if k in ("hidden_size", "num_heads", "axes_dim", "context_in_dim", "mlp_ratio")}
        supported_inference_dtypes = [torch.float32]

    sm.models.insert(0, TinyFlux)
    _TINY_FLUX_CLASS = TinyFlux
    return TinyFlux


@dataclass(frozen=True)
class TinyModels:
    root: Path
    sd15: str = SD15_CHECKPOINT
    sdxl: str = SDXL_CHECKPOINT
    controlnet: str = SD15_CONTROLNET
    flux_unet: str = FLUX_UNET
    flux_clip_l: str = FLUX_CLIP_L
    flux_t5: str = FLUX_T5
    flux_vae: str = FLUX_VAE
    depth: str = DEPTH_MODEL

    @property
    def depth_model_name(self) -> str:
        """The depth file as Load Disparity Model names it."""
        return f"depthanything/{self.depth}"


def write_tiny_models(root: Path) -> TinyModels:
    """Write every tiny model file under root/<folder>/ and add the tiny families to the host."""
    from safetensors.torch import save_file

    from .tiny_depth import write_tiny_depth_anything

    files = {
        ("checkpoints", SD15_CHECKPOINT): sd15_checkpoint,
        ("checkpoints", SDXL_CHECKPOINT): sdxl_checkpoint,
        ("controlnet", SD15_CONTROLNET): controlnet_sd15,
        ("diffusion_models", FLUX_UNET): flux_diffusion_model,
        ("text_encoders", FLUX_CLIP_L): flux_clip_l,
        ("text_encoders", FLUX_T5): flux_t5,
        ("vae", FLUX_VAE): flux_vae,
    }
    for (folder, name), make in files.items():
        path = root / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            save_file(make(), str(path))
    if not (root / "depthanything" / DEPTH_MODEL).exists():
        write_tiny_depth_anything(root / "depthanything" / DEPTH_MODEL)
    register_tiny_sdxl()
    register_tiny_flux()
    return TinyModels(root=root)


_WRITTEN: TinyModels | None = None


def tiny_models() -> TinyModels:
    """The tiny model files, written once per test process into a temporary models folder, which
    the host's loaders search first (again at every call: a test may have reset its folders)."""
    from headless.comfy_host import add_models_folder

    global _WRITTEN
    if _WRITTEN is None:
        root = Path(tempfile.mkdtemp(prefix="stereo-tiny-models-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        _WRITTEN = write_tiny_models(root)
    add_models_folder(_WRITTEN.root)
    return _WRITTEN
