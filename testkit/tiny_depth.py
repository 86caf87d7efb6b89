"""Tiny randomly initialised depth networks with the official key names, for tests and workflows.

`write_tiny_depth_anything(path)` writes a small Depth Anything V2 checkpoint (.pth or
.safetensors by the suffix) that the pack's loader detects and loads like a public one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from headless import comfy_host  # noqa: F401  (registers `stereo_pack`)

from .random_weights import fill_random

TINY_DEPTH_ANYTHING = dict(embed_dim=64, depth=4, num_heads=1, features=16, out_channels=(8, 16, 32, 64))


def tiny_depth_anything(version: int = 2, seed: int = 0, **overrides) -> torch.nn.Module:
    from stereo_pack.stereo_ops.depth.depth_anything import DepthAnything, DepthAnythingConfig

    cfg = DepthAnythingConfig(version=version, **{**TINY_DEPTH_ANYTHING, **overrides})
    return fill_random(DepthAnything(cfg), seed).eval()


_MIDAS_COMMON = dict(embed_dim=64, depth=4, num_heads=1, grid=4, num_classes=10, features=16)
TINY_MIDAS = {
    "vit": dict(kind="vit", level_channels=(8, 16, 32, 32), **_MIDAS_COMMON),
    "beit": dict(kind="beit", level_channels=(8, 16, 32, 32), **_MIDAS_COMMON),
    # GroupNorm with 32 groups needs ResNet bottlenecks of 32 channels and more.
    "hybrid": dict(kind="hybrid", level_channels=(128, 256, 32, 32), resnet_layers=(1, 1, 1),
                   resnet_channels=(128, 256, 512), stem_chs=32, **_MIDAS_COMMON),
}


def tiny_midas(kind: str = "vit", seed: int = 0) -> torch.nn.Module:
    from stereo_pack.stereo_ops.depth.midas import MidasConfig, MidasDPT

    model = fill_random(MidasDPT(MidasConfig(**TINY_MIDAS[kind])), seed).eval()
    with torch.no_grad():  # keep the final ReLU's output alive with random weights
        model.scratch.output_conv[4].bias.fill_(0.5)
    return model


TINY_DA3 = {
    "mono": dict(embed_dim=64, depth=4, num_heads=1, features=16, out_channels=(8, 16, 32, 64), grid=4,
                 any_view=False, output_dim=1, sky_head=True),
    "any_view": dict(embed_dim=64, depth=4, num_heads=1, features=16, out_channels=(8, 16, 32, 64), grid=4,
                     any_view=True, alt_start=2, output_dim=2, sky_head=False),
}


def tiny_da3(kind: str = "mono", seed: int = 0) -> torch.nn.Module:
    from stereo_pack.stereo_ops.depth.da3 import DA3Config, DepthAnything3

    return fill_random(DepthAnything3(DA3Config(**TINY_DA3[kind])), seed).eval()


def da3_file_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The published layout: `model.` prefix; the any-view files also hold camera and ray-head
    weights that single-view depth does not use (a few stand-ins here)."""
    sd = {"model." + k: v for k, v in model.state_dict().items()}
    if model.config.any_view:
        sd["model.cam_dec.fc_t.weight"] = torch.zeros(3, 2 * model.config.embed_dim)
        sd["model.cam_enc.token_norm.weight"] = torch.ones(model.config.embed_dim)
        sd["model.head.scratch.refinenet1_aux.out_conv.weight"] = torch.zeros(16, 16, 1, 1)
        sd["model.head.scratch.output_conv2_aux.3.2.weight"] = torch.zeros(7, 32, 1, 1)
    return sd


def write_tiny_da3(path: str | Path, kind: str = "mono", seed: int = 0) -> Path:
    """Write a tiny Depth Anything 3 file (kind: mono, any_view) in the published key layout."""
    return save_state_dict(da3_file_state_dict(tiny_da3(kind, seed)), path)


def save_state_dict(state_dict: dict[str, torch.Tensor], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().contiguous().clone() for k, v in state_dict.items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(sd, str(path))
    else:
        torch.save(sd, path)
    return path


def write_tiny_depth_anything(path: str | Path, seed: int = 0, dtype: torch.dtype = torch.float32) -> Path:
    """Write a tiny Depth Anything V2 checkpoint with the official key names to `path`."""
    sd = tiny_depth_anything(2, seed).state_dict()
    return save_state_dict({k: v.to(dtype) for k, v in sd.items()}, path)


# GroupNorm with 32 groups in the motion modules: the temporal widths are multiples of 32.
TINY_VIDEO_DEPTH_ANYTHING = dict(embed_dim=64, depth=4, num_heads=1, features=32, out_channels=(8, 16, 32, 32))


def tiny_video_depth_anything(seed: int = 0) -> torch.nn.Module:
    from stereo_pack.stereo_ops.depth.video_depth_anything import VideoDepthAnything, VideoDepthAnythingConfig

    model = fill_random(VideoDepthAnything(VideoDepthAnythingConfig(**TINY_VIDEO_DEPTH_ANYTHING)), seed).eval()
    with torch.no_grad():  # keep the final ReLU's output alive with random weights
        model.head.scratch.output_conv2[2].bias.fill_(0.5)
    return model


def write_tiny_video_depth_anything(path: str | Path, seed: int = 0) -> Path:
    """Write a tiny Video Depth Anything file with the official key names (a name starting with
    'metric_' makes the loader take it as a metric model, as for the official files)."""
    return save_state_dict(tiny_video_depth_anything(seed).state_dict(), path)


def write_tiny_midas(path: str | Path, kind: str = "vit", seed: int = 0) -> Path:
    """Write a tiny MiDaS DPT checkpoint (kind: vit, hybrid, beit) with the official key names."""
    return save_state_dict(tiny_midas(kind, seed).state_dict(), path)


if __name__ == "__main__":
    print(write_tiny_depth_anything(sys.argv[1] if len(sys.argv) > 1 else "tiny_depth_anything_v2.pth"))
