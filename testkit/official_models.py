"""Build the official implementations from local checkouts named by environment variables.

STEREO_OFFICIAL_DA2, STEREO_OFFICIAL_DA1, STEREO_OFFICIAL_MIDAS, STEREO_OFFICIAL_DA3 and
STEREO_OFFICIAL_VDA point at checkouts of the official Depth Anything V2, Depth Anything, MiDaS,
Depth Anything 3 and Video Depth Anything repositories (DA3 also needs its own dependencies
`addict`, `omegaconf` and `imageio`). Their code is imported as is, never copied here; OpenCV,
which they import only for image transforms, and EasyDict, which Video Depth Anything uses for
one keyword dictionary, are stubbed when missing.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import types

import torch

ENV = {"da2": "STEREO_OFFICIAL_DA2", "da1": "STEREO_OFFICIAL_DA1", "midas": "STEREO_OFFICIAL_MIDAS",
       "da3": "STEREO_OFFICIAL_DA3", "vda": "STEREO_OFFICIAL_VDA"}
DA_SIZES = {
    "vits": dict(features=64, out_channels=[48, 96, 192, 384]),
    "vitb": dict(features=128, out_channels=[96, 192, 384, 768]),
    "vitl": dict(features=256, out_channels=[256, 512, 1024, 1024]),
}
MIDAS_BACKBONES = {"dpt_large": "vitl16_384", "dpt_hybrid": "vitb_rn50_384", "beit_large": "beitl16_512"}
FINAL_BIAS = {"da2": "depth_head.scratch.output_conv2.2.bias", "da1": "depth_head.scratch.output_conv2.2.bias",
              "midas": "scratch.output_conv.4.bias",
              # DA3's depth is exp(.), always positive; its sky map is relu(.) against a 0.3 threshold:
              # a bias of 0.3 puts about half the pixels on each side, so the sky step runs.
              "da3": "net.head.scratch.sky_output_conv2.2.bias"}
FINAL_BIAS_VALUE = {"da3": 0.3}
# Spread the random sky map widely around its threshold, so that no pixel sits within rounding
# error of it (such a pixel could be sky in one implementation and ground in the other).
SCALED = {"da3": {"net.head.scratch.sky_output_conv2.2.weight": 100.0}}
DA3_VARIANTS = ("da3-small", "da3-base", "da3mono-large", "da3metric-large", "da3-large")


class OfficialDA3(torch.nn.Module):
    """The official DepthAnything3Net as an image-batch -> depth map: each image one single-view scene."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.net(x[i:i + 1, None]).depth[:, 0] for i in range(x.shape[0])])


def published_da3_state_dict(sd: dict) -> dict:
    """The key layout of the published model.safetensors: the API wrapper's `model.` prefix."""
    return {"model." + k.removeprefix("net."): v for k, v in sd.items()}


def official_path(repo: str) -> str | None:
    path = os.environ.get(ENV[repo])
    if not path or not os.path.isdir(path):
        return None
    if "cv2" not in sys.modules:
        try:
            importlib.import_module("cv2")
        except ImportError:
            sys.modules["cv2"] = types.SimpleNamespace(INTER_CUBIC=2, INTER_AREA=3, INTER_LINEAR=1)
    if "easydict" not in sys.modules:
        try:
            importlib.import_module("easydict")
        except ImportError:
            sys.modules["easydict"] = types.SimpleNamespace(EasyDict=dict)
    return path


@contextlib.contextmanager
def on_path(path: str, packages: tuple[str, ...]):
    """Import an official package from `path`, then forget it (two repositories share names)."""
    sys.path.insert(0, path)
    cwd = os.getcwd()
    os.chdir(path)  # Depth Anything V1 loads its DINOv2 with torch.hub from a relative path
    try:
        yield
    finally:
        os.chdir(cwd)
        sys.path.remove(path)
        for name in list(sys.modules):
            if name.split(".")[0] in packages:
                del sys.modules[name]


VDA_PACKAGES = ("video_depth_anything", "utils")


def build_official_vda(variant: str, streaming: bool = False, metric: bool = False) -> torch.nn.Module:
    """The official VideoDepthAnything (video_depth.py, or video_depth_stream.py with `streaming`),
    variant vits, vitb or vitl; its `infer_video_depth` / `infer_video_depth_one` run the official
    windowed / streaming procedures."""
    path = official_path("vda")
    if path is None:
        raise RuntimeError(f"set {ENV['vda']} to a checkout of the official repository")
    with on_path(path, VDA_PACKAGES):
        if streaming:
            from video_depth_anything.video_depth_stream import VideoDepthAnything

            return VideoDepthAnything(encoder=variant, **DA_SIZES[variant]).eval()
        from video_depth_anything.video_depth import VideoDepthAnything

        return VideoDepthAnything(encoder=variant, metric=metric, **DA_SIZES[variant]).eval()


def build_official(repo: str, variant: str) -> torch.nn.Module:
    """repo: da2 / da1 (variant vits, vitb, vitl) or midas (dpt_large, dpt_hybrid, beit_large)."""
    path = official_path(repo)
    if path is None:
        raise RuntimeError(f"set {ENV[repo]} to a checkout of the official repository")
    if repo == "da2":
        with on_path(path, ("depth_anything_v2",)):
            from depth_anything_v2.dpt import DepthAnythingV2

            return DepthAnythingV2(encoder=variant, **DA_SIZES[variant]).eval()
    if repo == "da3":
        with on_path(os.path.join(path, "src"), ("depth_anything_3",)):
            from depth_anything_3.cfg import create_object, load_config
            from depth_anything_3.registry import MODEL_REGISTRY

            return OfficialDA3(create_object(load_config(MODEL_REGISTRY[variant]))).eval()
    if repo == "da1":
        with on_path(path, ("depth_anything", "dinov2", "hubconf")):
            from depth_anything.dpt import DPT_DINOv2

            return DPT_DINOv2(encoder=variant, localhub=True, **DA_SIZES[variant]).eval()
    with on_path(path, ("midas",)):
        from midas.dpt_depth import DPTDepthModel

        model = DPTDepthModel(path=None, backbone=MIDAS_BACKBONES[variant], non_negative=True).eval()
    # The official BEiT code targets timm 0.6, whose blocks had one `drop_path`; a no-op stands in.
    for block in model.pretrained.model.blocks:
        if not hasattr(block, "drop_path"):
            block.drop_path = torch.nn.Identity()
    return model


def randomize(
    model: torch.nn.Module, final_bias: str, seed: int = 0, bias_value: float = 0.5,
    scaled: dict[str, float] | None = None,
) -> dict[str, torch.Tensor]:
    """testkit.random_weights in `model`, with `scaled` weights multiplied and the final bias set
    (keeping the last ReLU's output non-zero); returns the state dict to convert for ours."""
    from .random_weights import fill_random

    fill_random(model, seed)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for key, factor in (scaled or {}).items():
            if key in params:
                params[key].mul_(factor)
        if final_bias in params:
            params[final_bias].fill_(bias_value)
    return model.state_dict()
