"""Our networks against the official implementations, same random weights, non-square inputs.

Runs only when the official repositories are available locally (their code is not part of this
project; see testkit/official_models.py):

    STEREO_OFFICIAL_DA2=<Depth-Anything-V2 checkout> STEREO_OFFICIAL_DA1=<Depth-Anything checkout> \
    STEREO_OFFICIAL_MIDAS=<MiDaS checkout> STEREO_OFFICIAL_DA3=<Depth-Anything-3 checkout> \
    pytest tests/test_official_fidelity.py

Tolerance: 1e-4 relative to the output's largest value.
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
