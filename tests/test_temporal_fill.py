"""Temporal hole fill: holes that do not flicker and show the background other frames saw."""

import pytest
import torch

from bench.bench_video_fill import fill_figures, per_frame_fill
from stereo_pack.stereo_ops.hole_fill import background_side_fill, background_side_index
from stereo_pack.stereo_ops.motion import background_motion
from stereo_pack.stereo_ops.synthetic_scenes import Plane, moving_clip
from stereo_pack.stereo_ops.warp_clip import fill_clip, warp_clip


def test_per_frame_fill_takes_the_background_side():
    known = torch.tensor([[True, False, False, True, False]])
    assert background_side_index(known, -1).tolist() == [[0, 3, 3, 3, 3]]
    assert background_side_index(known, 1).tolist() == [[0, 0, 0, 3, 3]]
    view = torch.arange(5.0).view(1, 1, 5)
    assert background_side_fill(view, ~known, -1).tolist() == [[[0.0, 3.0, 3.0, 3.0, 3.0]]]


@pytest.mark.parametrize("camera", [(-3.0, 1.0), (2.0, 0.0)])
def test_background_motion_is_found_to_a_tenth_of_a_pixel(camera):
    clip = moving_clip(frames=2, height=54, width=96, camera=camera, planes=(Plane(-400, 400, -400, 400, 0.05, seed=3),))
    affine = background_motion(clip.center[0], clip.center[1], torch.ones(54, 96, dtype=torch.bool))
    # cur pixel p shows what prev showed at p - motion: in pixels, affine(p) = p - motion
    shift_x, shift_y = float(affine[0, 2]) * 95 / 2, float(affine[1, 2]) * 53 / 2
    assert abs(shift_x + camera[0]) < 0.1 and abs(shift_y + camera[1]) < 0.1
    assert (affine[:, :2] - torch.eye(2)).abs().max() < 2e-3


@pytest.fixture(scope="module")
def panning():
    clip = moving_clip(frames=8, height=54, width=96, camera=(-2.0, 0.0))
    centre = clip.center.permute(0, 2, 3, 1).contiguous()
    stereo, holes = warp_clip(centre, clip.disparity, clip.divergence)
    return clip, stereo, holes


def test_holes_are_stable_and_show_the_background_seen_in_other_frames(panning):
    clip, stereo, holes = panning
    n = clip.center.shape[0]
    filled, unseen = fill_clip(stereo, holes, clip.disparity, clip.divergence)
    eye_holes = holes[n:] > 0.5
    ours = fill_figures(clip, filled[n:], eye_holes, stereo[n:])
    base = fill_figures(clip, per_frame_fill(stereo, holes)[n:], eye_holes, stereo[n:])
    assert ours["seen share"] > 0.2  # the scene does show hole backgrounds in other frames
    assert ours["flicker"] <= 0.5 * base["flicker"]
    assert ours["error where seen"] <= 0.5 * base["error where seen"]
    assert ours["error"] < base["error"]
    # Visible pixels (both eyes) are exactly the warp's; only holes are written.
    assert torch.equal(filled[holes < 0.5], stereo[holes < 0.5])
    assert bool(((unseen > 0.5) <= (holes > 0.5)).all())
    assert 0 < float(unseen[n:].sum()) < float(holes[n:].sum())


def test_after_a_scene_cut_the_fill_is_that_of_the_clip_started_there(panning):
    clip, stereo, holes = panning
    other = moving_clip(frames=5, height=54, width=96, camera=(1.0, 1.0), seed=4)
    other_stereo, other_holes = warp_clip(other.center.permute(0, 2, 3, 1).contiguous(), other.disparity, 8.0)
    n, m = clip.center.shape[0], 5

    def joined(a, b):  # two stereo batches as one: lefts, then rights
        return torch.cat([a[:n], b[:m], a[n:], b[m:]])

    stereo2, holes2 = joined(stereo, other_stereo), joined(holes, other_holes)
    disparity = torch.cat([clip.disparity, other.disparity])
    cut, cut_unseen = fill_clip(stereo2, holes2, disparity, 8.0, starts=[n])
    alone, alone_unseen = fill_clip(other_stereo, other_holes, other.disparity, 8.0)
    assert torch.equal(cut[n + m + n:], alone[m:]) and torch.equal(cut_unseen[n + m + n:], alone_unseen[m:])
    first, _ = fill_clip(stereo, holes, clip.disparity, 8.0)
    assert torch.equal(cut[n + m:n + m + n], first[n:])


def test_fill_refuses_holes_that_do_not_match(panning):
    clip, stereo, holes = panning
    with pytest.raises(ValueError, match="^holes"):
        fill_clip(stereo, holes[:3], clip.disparity, 8.0)
