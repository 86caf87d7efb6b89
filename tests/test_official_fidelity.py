"""Our networks against the official implementations, same random weights, non-square inputs.

Runs only when the official repositories are available locally (their code is not part of this
project; see testkit/official_models.py):

    STEREO_OFFICIAL_DA2=<Depth-Anything-V2 checkout> STEREO_OFFICIAL_DA1=<Depth-Anything checkout> \
    STEREO_OFFICIAL_MIDAS=<MiDaS checkout> STEREO_OFFICIAL_DA3=<Depth-Anything-3 checkout> \
    STEREO_OFFICIAL_VDA=<Video-Depth-Anything checkout> \
    pytest tests/test_official_fidelity.py

Tolerance: 1e-4 relative to the output's largest value (Video Depth Anything: 1e-4 after min-max
normalisation of the whole clip).
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("timm")

from testkit.official_models import (  # noqa: E402
    DA3_VARIANTS,
    ENV,
    FINAL_BIAS,
    FINAL_BIAS_VALUE,
    SCALED,
    build_official,
    on_path,
    official_path,
    published_da3_state_dict,
    randomize,
)
from stereo_pack.stereo_ops.depth import build_and_load, network_size  # noqa: E402

RTOL = 1e-4


def _need(repo: str) -> str:
    path = official_path(repo)
    if path is None:
        pytest.skip(f"set {ENV[repo]} to a checkout of the official repository to compare against it")
    return path


def _compare(repo: str, variant: str, x: torch.Tensor, **load_kwargs):
    _need(repo)
    official = build_official(repo, variant)
    sd = randomize(official, FINAL_BIAS[repo], bias_value=FINAL_BIAS_VALUE.get(repo, 0.5), scaled=SCALED.get(repo))
    if repo == "da3":
        sd = published_da3_state_dict(sd)
    ours, arch = build_and_load(sd, **load_kwargs)
    with torch.inference_mode():
        expected = official(x)
        got = ours(x)
    assert got.shape == expected.shape
    assert expected.abs().max() > 0
    err = ((got - expected).abs().max() / expected.abs().max()).item()
    assert err < RTOL, f"{arch.name}: relative error {err:.2e}"
    return arch, expected


@pytest.mark.parametrize("encoder", ["vits", "vitb", "vitl"])
def test_depth_anything_v2_matches_official(encoder):
    x = torch.randn(1, 3, 14 * 19, 14 * 27)  # non-square, not the native grid
    assert _compare("da2", encoder, x, depth_anything_version=2)[0].family == "depth_anything_v2"


@pytest.mark.parametrize("encoder", ["vits", "vitb", "vitl"])
def test_depth_anything_v1_matches_official(encoder):
    x = torch.randn(1, 3, 14 * 23, 14 * 17)
    assert _compare("da1", encoder, x, depth_anything_version=1)[0].family == "depth_anything_v1"


@pytest.mark.parametrize("variant", ["dpt_large", "dpt_hybrid", "beit_large"])
def test_midas_matches_official(variant):
    x = torch.randn(1, 3, 32 * 9, 32 * 13)
    assert _compare("midas", variant, x)[0].family == f"midas_{variant}"


@pytest.mark.parametrize("variant", DA3_VARIANTS)
def test_depth_anything_3_matches_official(variant):
    # Below 100k pixels: above it the official sky step takes its percentile from a random sample.
    x = torch.randn(1, 3, 14 * 17, 14 * 23, generator=torch.Generator().manual_seed(0))
    metric = "metric" in variant
    arch, expected = _compare("da3", variant, x, da3_metric=metric)
    any_view = {"da3-small", "da3-base", "da3-large"}
    family = "da3_any_view" if variant in any_view else "da3_metric" if metric else "da3_mono"
    assert arch.family == family
    if arch.config.sky_head:  # the sky step ran: sky pixels share one depth (a percentile of the rest)
        _, counts = expected.unique(return_counts=True)
        assert counts.max() > 10


@pytest.mark.parametrize("hw", [(480, 640), (640, 480), (123, 457), (1080, 1920), (518, 518)])
def test_network_sizes_match_the_official_transforms(hw):
    h, w = hw
    with on_path(_need("da2"), ("depth_anything_v2",)):
        from depth_anything_v2.util.transform import Resize

        ow, oh = Resize(518, 518, resize_target=False, keep_aspect_ratio=True, ensure_multiple_of=14,
                        resize_method="lower_bound").get_size(w, h)
    assert network_size(h, w, 518, 14, "lower_bound") == (oh, ow)
    with on_path(_need("midas"), ("midas",)):
        from midas.transforms import Resize as MidasResize

        for size in (384, 512):
            ow, oh = MidasResize(size, size, resize_target=None, keep_aspect_ratio=True, ensure_multiple_of=32,
                                 resize_method="minimal").get_size(w, h)
            assert network_size(h, w, size, 32, "minimal") == (oh, ow)


@pytest.mark.parametrize("hw", [(480, 640), (640, 480), (123, 457), (1080, 1920), (288, 512), (504, 504), (30, 700)])
def test_da3_network_sizes_match_the_official_input_processor(hw, monkeypatch):
    import sys

    import numpy as np
    from PIL import Image

    h, w = hw
    path = _need("da3")
    # Only the sizes matter: a stand-in resize returns an image of the requested size.
    monkeypatch.setattr(sys.modules["cv2"], "resize",
                        lambda arr, size, interpolation=None: np.zeros((size[1], size[0], 3), np.uint8), raising=False)
    with on_path(path + "/src", ("depth_anything_3",)):
        from depth_anything_3.utils.io.input_processor import InputProcessor

        proc = InputProcessor()
        img = proc._resize_image(Image.new("RGB", (w, h)), 504, "upper_bound_resize")
        img = proc._make_divisible_by_resize(img, 14)
    assert network_size(h, w, 504, 14, "upper_bound") == (img.size[1], img.size[0])


# ---------------------------------------------------------------------------------------------
# Video Depth Anything: the whole windowed and streaming procedures, not only the network.

VDA_FRAMES = 46  # three windows: two seams, so alignment against an aligned window is exercised
VDA_SIZE = (518, 518)  # the official input size: the frames reach the network unresized


def _moving_clip(frames: int, size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """(T, H, W, 3) uint8: a smooth random texture panning and a square crossing it."""
    g = torch.Generator().manual_seed(seed)
    h, w = size
    base = torch.nn.functional.interpolate(torch.rand(1, 3, 12, 16, generator=g), size=(h, w + 2 * frames),
                                           mode="bicubic", align_corners=False)[0]
    clip = []
    for t in range(frames):
        img = base[:, :, 2 * t:2 * t + w].clone()
        x0 = 40 + 6 * t
        img[:, h // 3:h // 3 + 120, x0:x0 + 120] = torch.tensor([0.9, 0.2, 0.1]).view(3, 1, 1)
        clip.append(img.permute(1, 2, 0))
    return (torch.stack(clip).clamp(0, 1) * 255).round().to(torch.uint8)


def _official_vda(streaming: bool, monkeypatch) -> tuple[torch.nn.Module, dict]:
    import sys

    import numpy as np

    from testkit.official_models import build_official_vda

    _need("vda")
    # The frames are at the network size, so the official resize is an identity (OpenCV may be absent).
    if not hasattr(sys.modules["cv2"], "resize"):
        monkeypatch.setattr(sys.modules["cv2"], "resize",
                            lambda img, size, interpolation=None: np.asarray(img).copy(), raising=False)
    official = build_official_vda("vits", streaming=streaming)
    sd = randomize(official, "head.scratch.output_conv2.2.bias")
    return official, sd


def _minmax(x: torch.Tensor) -> torch.Tensor:
    x = x.double()
    return (x - x.min()) / (x.max() - x.min())


def test_video_depth_anything_windows_match_official(monkeypatch):
    from stereo_pack.stereo_ops.depth.video_inference import video_depth

    official, sd = _official_vda(False, monkeypatch)
    clip = _moving_clip(VDA_FRAMES, VDA_SIZE)
    with torch.inference_mode():
        expected, _ = official.infer_video_depth(clip.numpy(), 30, input_size=518, device="cpu", fp32=True)
    expected = torch.from_numpy(expected)
    ours, arch = build_and_load(sd)
    assert arch.family == "video_depth_anything" and arch.temporal
    got = video_depth(ours, clip.float() / 255, chunk=13)  # fed in chunks that do not match the windows
    assert got.shape == expected.shape == (VDA_FRAMES, *VDA_SIZE)
    assert float(expected.std()) > 0
    err = (_minmax(got) - _minmax(expected)).abs().max().item()
    print(f"Video Depth Anything windows vs official: max abs error after min-max {err:.2e}")
    assert err < RTOL


def test_video_depth_anything_streaming_matches_official(monkeypatch):
    from stereo_pack.stereo_ops.depth.video_inference import video_depth

    official, sd = _official_vda(True, monkeypatch)
    clip = _moving_clip(VDA_FRAMES, VDA_SIZE)
    with torch.inference_mode():
        expected = torch.stack([
            torch.from_numpy(official.infer_video_depth_one(f, input_size=518, device="cpu", fp32=True))
            for f in clip.numpy()
        ])
    ours, _ = build_and_load(sd)
    got = video_depth(ours, clip.float() / 255, streaming=True, chunk=5)
    assert got.shape == expected.shape
    err = (_minmax(got) - _minmax(expected)).abs().max().item()
    print(f"Video Depth Anything streaming vs official: max abs error after min-max {err:.2e}")
    assert err < RTOL
