"""Our networks against the official implementations, same random weights, non-square inputs.

Runs only when the official repositories are available locally (their code is not part of this
project):

    STEREO_OFFICIAL_DA2=<Depth-Anything-V2 checkout>
    STEREO_OFFICIAL_DA1=<Depth-Anything checkout>
    STEREO_OFFICIAL_MIDAS=<MiDaS checkout>
    pytest tests/test_official_fidelity.py

The official code is imported as is; OpenCV, which it imports only for its image transforms, is
replaced by a stub when missing. Tolerance: 1e-4 relative to the output's largest value.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import types

import pytest
import torch

pytest.importorskip("timm")

from stereo_pack.stereo_ops.depth import build_and_load, network_size  # noqa: E402

RTOL = 1e-4


def _official(env: str):
    path = os.environ.get(env)
    if not path or not os.path.isdir(path):
        pytest.skip(f"set {env} to a checkout of the official repository to compare against it")
    if "cv2" not in sys.modules:
        try:
            importlib.import_module("cv2")
        except ImportError:
            sys.modules["cv2"] = types.SimpleNamespace(INTER_CUBIC=2, INTER_AREA=3, INTER_LINEAR=1)
    return path


@contextlib.contextmanager
def _on_path(path: str, packages: tuple[str, ...]):
    """Import an official package from `path`, then forget it (two repos share package names)."""
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


def _randomize(model: torch.nn.Module, final_bias: str) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    sd = {}
    for k, v in model.state_dict().items():
        if not v.is_floating_point() or k.endswith("relative_position_index"):
            sd[k] = v
        elif v.ndim == 1 and ("norm" in k or "gamma" in k) and k.endswith(("weight", "gamma", "gamma_1", "gamma_2")):
            sd[k] = 1.0 + 0.1 * torch.randn(v.shape, generator=gen)
        else:
            sd[k] = 0.02 * torch.randn(v.shape, generator=gen)
    sd[final_bias] = torch.full_like(sd[final_bias], 0.5)  # keep the last ReLU's output non-zero
    model.load_state_dict(sd)
    return sd


def _compare(official: torch.nn.Module, sd, x: torch.Tensor, **load_kwargs):
    ours, arch = build_and_load(sd, **load_kwargs)
    with torch.inference_mode():
        expected = official.eval()(x)
        got = ours(x)
    assert got.shape == expected.shape
    err = ((got - expected).abs().max() / expected.abs().max()).item()
    assert expected.abs().max() > 0
    assert err < RTOL, f"{arch.name}: relative error {err:.2e}"
    return arch


DA_SIZES = {
    "vits": dict(features=64, out_channels=[48, 96, 192, 384]),
    "vitb": dict(features=128, out_channels=[96, 192, 384, 768]),
    "vitl": dict(features=256, out_channels=[256, 512, 1024, 1024]),
}


@pytest.mark.parametrize("encoder", ["vits", "vitb", "vitl"])
def test_depth_anything_v2_matches_official(encoder):
    path = _official("STEREO_OFFICIAL_DA2")
    with _on_path(path, ("depth_anything_v2",)):
        from depth_anything_v2.dpt import DepthAnythingV2

        official = DepthAnythingV2(encoder=encoder, **DA_SIZES[encoder])
    sd = _randomize(official, "depth_head.scratch.output_conv2.2.bias")
    x = torch.randn(1, 3, 14 * 19, 14 * 27)  # non-square, not the native grid
    arch = _compare(official, sd, x, depth_anything_version=2)
    assert arch.family == "depth_anything_v2"


@pytest.mark.parametrize("encoder", ["vits", "vitb", "vitl"])
def test_depth_anything_v1_matches_official(encoder):
    path = _official("STEREO_OFFICIAL_DA1")
    with _on_path(path, ("depth_anything", "dinov2", "hubconf")):
        from depth_anything.dpt import DPT_DINOv2

        official = DPT_DINOv2(encoder=encoder, localhub=True, **DA_SIZES[encoder])
    sd = _randomize(official, "depth_head.scratch.output_conv2.2.bias")
    x = torch.randn(1, 3, 14 * 23, 14 * 17)
    arch = _compare(official, sd, x, depth_anything_version=1)
    assert arch.family == "depth_anything_v1"


@pytest.mark.parametrize("backbone", ["vitl16_384", "vitb_rn50_384", "beitl16_512"])
def test_midas_matches_official(backbone):
    path = _official("STEREO_OFFICIAL_MIDAS")
    with _on_path(path, ("midas",)):
        from midas.dpt_depth import DPTDepthModel

        official = DPTDepthModel(path=None, backbone=backbone, non_negative=True)
    # The official BEiT code targets timm 0.6, whose blocks had one `drop_path`; a no-op stands in.
    for block in official.pretrained.model.blocks:
        if not hasattr(block, "drop_path"):
            block.drop_path = torch.nn.Identity()
    sd = _randomize(official, "scratch.output_conv.4.bias")
    x = torch.randn(1, 3, 32 * 9, 32 * 13)
    arch = _compare(official, sd, x)
    assert arch.family == {"vitl16_384": "midas_dpt_large", "vitb_rn50_384": "midas_dpt_hybrid",
                           "beitl16_512": "midas_beit_large"}[backbone]


@pytest.mark.parametrize("hw", [(480, 640), (640, 480), (123, 457), (1080, 1920), (518, 518)])
def test_network_sizes_match_the_official_transforms(hw):
    h, w = hw
    path = _official("STEREO_OFFICIAL_DA2")
    with _on_path(path, ("depth_anything_v2",)):
        from depth_anything_v2.util.transform import Resize

        da = Resize(518, 518, resize_target=False, keep_aspect_ratio=True, ensure_multiple_of=14,
                    resize_method="lower_bound")
        ow, oh = da.get_size(w, h)
    assert network_size(h, w, 518, 14, "lower_bound") == (oh, ow)
    midas_path = _official("STEREO_OFFICIAL_MIDAS")
    with _on_path(midas_path, ("midas",)):
        from midas.transforms import Resize as MidasResize

        for size in (384, 512):
            mr = MidasResize(size, size, resize_target=None, keep_aspect_ratio=True, ensure_multiple_of=32,
                             resize_method="minimal")
            ow, oh = mr.get_size(w, h)
            assert network_size(h, w, size, 32, "minimal") == (oh, ow)
