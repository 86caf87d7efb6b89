"""Scene cuts: found on real shot changes, not on motion, and every shot comes out as a clip of its own."""

import pytest
import torch

from stereo_pack.stereo_ops.scene_cuts import detect_scene_cuts
from stereo_pack.stereo_ops.synthetic_scenes import moving_clip
from stereo_pack.stereo_ops.temporal import smooth_over_time


@pytest.fixture(scope="module")
def two_shots():
    a = moving_clip(frames=7, height=36, width=64, camera=(-3.0, 0.0)).center
    b = moving_clip(frames=6, height=36, width=64, camera=(2.0, 1.0), seed=5).center
    return torch.cat([a, b]).permute(0, 2, 3, 1).contiguous()


def test_a_cut_between_two_panning_shots_is_found_and_the_pans_are_not(two_shots):
    assert detect_scene_cuts(two_shots) == [7]
    assert detect_scene_cuts(two_shots[:7]) == []
    assert detect_scene_cuts(two_shots[:1]) == []


def test_cuts_in_depth_maps_are_found_in_any_unit(two_shots):
    maps = two_shots.mean(-1) * 80.0 + 3.0  # a map in metres, say
    assert detect_scene_cuts(maps) == [7]


def test_a_still_clip_and_a_fade_have_no_cut():
    still = torch.rand(1, 20, 30, 3).expand(6, -1, -1, -1)
    assert detect_scene_cuts(still) == []
    fade = torch.rand(1, 20, 30, 3) * torch.linspace(1.0, 0.2, 10).view(10, 1, 1, 1)
    assert detect_scene_cuts(fade) == []


def test_smoothing_restarts_at_a_cut():
    maps = torch.rand(9, 4, 4)
    out = smooth_over_time(maps, 0.8, starts=[4])
    assert torch.equal(out[4:], smooth_over_time(maps[4:], 0.8))
    assert torch.equal(out[:4], smooth_over_time(maps[:4], 0.8))


@pytest.mark.host
def test_estimate_disparity_after_a_cut_is_the_clip_started_there(pack, two_shots, tmp_path, monkeypatch):
    pytest.importorskip("timm")
    import folder_paths
    import nodes

    from testkit.tiny_depth import write_tiny_depth_anything

    paths, exts = folder_paths.folder_names_and_paths["depthanything"]
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "depthanything", ([str(tmp_path), *paths], exts))
    monkeypatch.setattr(folder_paths, "filename_list_cache", {})
    write_tiny_depth_anything(tmp_path / "tiny_da2.pth")
    (model,) = nodes.NODE_CLASS_MAPPINGS["StereoDisparityModelLoader"].execute(
        model_name="depthanything/tiny_da2.pth", precision="fp32", download_if_missing=False
    ).result
    estimate = nodes.NODE_CLASS_MAPPINGS["StereoEstimateDisparity"].execute
    kwargs = dict(disparity_model=model, resolution=28, normalization="per batch", batch_size=1, temporal_smoothing=0.7)
    whole = estimate(image=two_shots, scene_cuts=True, **kwargs).result[0]
    second = estimate(image=two_shots[7:], scene_cuts=True, **kwargs).result[0]
    first = estimate(image=two_shots[:7], scene_cuts=True, **kwargs).result[0]
    assert torch.equal(whole[7:], second) and torch.equal(whole[:7], first)
    blended = estimate(image=two_shots, **kwargs).result[0]
    assert not torch.equal(blended[7:], second)

    to_disparity = nodes.NODE_CLASS_MAPPINGS["StereoDepthToDisparity"].execute
    args = dict(invert=False, normalization="per batch", gamma=1.0, blur=0.0, width=0, height=0,
                temporal_smoothing=0.5, scene_cuts=True)
    maps = to_disparity(image=two_shots, **args).result[0]
    assert torch.equal(maps[7:], to_disparity(image=two_shots[7:], **args).result[0])
