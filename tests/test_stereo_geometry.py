"""One geometry for the latent shift and the full-resolution warps; the floating window."""

from __future__ import annotations

import pytest
import torch

from stereo_pack.stereo_ops.comfort import (
    DISPLAY_PRESETS,
    auto_settings,
    disparity_range,
    parallax_budget,
    parallax_range,
)
from stereo_pack.stereo_ops.pixel_shift import displacement
from stereo_pack.stereo_ops.sampling import StereoEdits, StereoShiftSettings
from stereo_pack.stereo_ops.stereo_geometry import (
    StereoGeometry,
    display_target,
    floating_window,
    geometry_for,
    window_keep,
)
from stereo_pack.stereo_ops.synthetic_scenes import Plane, layered_scene
from stereo_pack.stereo_ops.warp import forward_warp, full_resolution_disparity, right_from_left, stereo_warp

VR = display_target("VR headset", floating_window=True)


def _edge_scene(height=40, width=160):
    """A far background and two near planes cut by the left and by the right frame edge."""
    w, h = float(width), float(height)
    planes = (
        Plane(-w, 2 * w, -h, 2 * h, d0=0.1, seed=1),
        Plane(-0.3 * w, 0.25 * w, 0.2 * h, 0.8 * h, d0=0.95, seed=2),
        Plane(0.8 * w, 1.4 * w, 0.1 * h, 0.5 * h, d0=0.7, seed=3),
    )
    # Only the centre view and its exact disparity are used (any divergence > 0 orders the planes).
    scene = layered_scene(height, width, 1.0, 0.0, 0.0, planes)
    assert scene.disparity[0, :, 0].max() == 0.95 and scene.disparity[0, :, -1].max() == 0.7
    return scene


def test_explicit_geometry_is_the_plain_displacement_bit_for_bit():
    d = torch.rand(2, 9, 33)
    for divergence, convergence in [(8.0, 0.0), (3.0, 1 / 3), (0.0, 0.5)]:
        g = geometry_for(d, divergence, convergence, None)
        assert g == StereoGeometry(divergence, convergence, False)
        assert torch.equal(g.displacement(d), displacement(d, divergence, convergence))


def test_auto_geometry_keeps_the_scene_within_the_display_budget():
    scene = _edge_scene()
    g = geometry_for(scene.disparity, 8.0, 0.0, VR)  # the typed settings are ignored
    budget = parallax_budget(DISPLAY_PRESETS["VR headset"])
    lo, hi = disparity_range(scene.disparity)
    assert (g.divergence, g.convergence) == auto_settings(budget, lo, hi)
    assert budget.allows(parallax_range(g.divergence, g.convergence, lo, hi))
    a = g.displacement(scene.disparity.float())
    width = scene.disparity.shape[-1]
    assert float(a.max()) / width * 100.0 <= budget.crossed_pct + 1e-6
    assert float(-a.min()) / width * 100.0 <= budget.uncrossed_pct + 1e-6


def test_floating_window_removes_crossed_parallax_at_the_border_columns():
    scene = _edge_scene()
    d = scene.disparity.float()
    plain = geometry_for(d, 0.0, 0.0, display_target("VR headset", floating_window=False))
    window = geometry_for(d, 0.0, 0.0, VR)
    assert (plain.divergence, plain.convergence) == (window.divergence, window.convergence)
    before, after = plain.displacement(d), window.displacement(d)
    # Without it the near planes cut by the frame come out in front of the screen at the edges...
    assert before[..., 0].max() > 0 and before[..., -1].max() > 0
    # ... with it nothing at the border columns is crossed,
    assert after[..., 0].max() <= 0 and after[..., -1].max() <= 0
    # behind-the-screen content and everything beyond the band is untouched,
    assert torch.equal(after[before <= 0], before[before <= 0])
    band = int(window.window_band * d.shape[-1]) + 1
    assert torch.equal(after[..., band:-band], before[..., band:-band])
    # and crossed content never moves further forward.
    assert (after <= before).all() and (after[before > 0] >= 0).all()


def test_with_a_floating_window_the_warped_border_shows_the_centre_view():
    scene = _edge_scene()
    d = scene.disparity.float()
    g = geometry_for(d, 0.0, 0.0, VR)
    views = stereo_warp(scene.center.image.float(), d, g.divergence, g.convergence, 0.0, g.floating_window)
    right, centre = views.right.image, scene.center.image.float()
    rows_left = d[0, :, 0] > 0.9  # rows through the near plane at the left edge
    rows_right = d[0, :, -1] > 0.6
    assert rows_left.sum() > 10 and rows_right.sum() > 5
    # zero parallax at the border: the right eye shows there exactly what the left eye shows
    assert torch.allclose(right[0, :, rows_left, 0], centre[0, :, rows_left, 0], atol=1e-6)
    assert torch.allclose(right[0, :, rows_right, -1], centre[0, :, rows_right, -1], atol=1e-6)
    assert views.right.filled[0, rows_left, 0].all() and views.right.filled[0, rows_right, -1].all()


def test_floating_window_never_folds_the_warp():
    d = torch.ones(1, 4, 200)  # everything at the nearest depth: the steepest possible ramp
    for divergence in (1.0, 8.0, 30.0):
        g = StereoGeometry(divergence, 0.0, True)
        a = g.displacement(d)
        landing = torch.arange(200.0) - a[0, 0]
        assert (landing[1:] - landing[:-1] > 0).all()
        assert a[0, 0, 0] == 0 and a[0, 0, -1] == 0


def test_window_keep_is_zero_at_the_borders_and_one_beyond_the_band():
    keep = window_keep(100, 0.1)
    assert keep[0] == 0 and keep[-1] == 0
    assert (keep[10:90] == 1).all() and (keep[1:10] > 0).all() and (keep[1:10] < 1).all()
    assert torch.equal(keep, keep.flip(0))
    shift = torch.tensor([[3.0, -3.0, 3.0, 3.0, -3.0]])
    fourth = pytest.approx(3.0 * float(window_keep(5, 0.4)[3]))
    assert floating_window(shift, 0.4).tolist() == [[0.0, -3.0, 3.0, fourth, -3.0]]


def _settings(disparity, target):
    return StereoShiftSettings(disparity, 8.0, 0.0, "subpixel", 0.0, False, target)


def test_sampler_and_refine_share_one_geometry():
    """The latent shift of the sampler and the refine's full-resolution warp, given the same map
    and the same display target, displace the pixels by the same field."""
    scene = _edge_scene(32, 48)
    d = scene.disparity.float()
    edits = StereoEdits(_settings(d, VR), 1, torch.zeros(1, 4, 32, 48), seed=0)
    refine_geometry = geometry_for(d, 1.0, 0.9, VR)  # what the refine node derives from the same map
    assert edits.geometry == refine_geometry
    full = full_resolution_disparity(d, 1, 32, 48)
    assert torch.equal(edits.shift_px, refine_geometry.displacement(full))
    # and the refine's warp moves the left view by exactly that field
    left = scene.center.image.float()
    g = refine_geometry
    warped = right_from_left(left, d, g.divergence, g.convergence, 0.0, g.floating_window)
    direct = forward_warp(left, edits.shift_px, direction=-1)
    assert torch.equal(warped.image, direct.image) and torch.equal(warped.filled, direct.filled)


def test_one_pass_geometry_comes_from_the_estimated_map():
    edits = StereoEdits(_settings(None, VR), 2, torch.zeros(2, 4, 8, 12), seed=0)
    assert edits.geometry is None
    estimated = torch.stack([torch.linspace(0.2, 0.6, 96).view(8, 12), torch.linspace(0.3, 0.9, 96).view(8, 12)])
    edits.set_disparity(estimated)
    assert edits.geometry == geometry_for(estimated, 8.0, 0.0, VR)
    # one range for the whole batch
    lo, hi = disparity_range(estimated)
    assert lo < 0.21 and hi > 0.89


def test_balanced_spsmd_carries_the_windowed_displacement_into_the_left_eye():
    d = torch.rand(1, 6, 30)
    settings = StereoShiftSettings(d, 6.0, 0.0, "subpixel", 0.5, False, VR)
    edits = StereoEdits(settings, 1, torch.zeros(1, 4, 6, 30), seed=0)
    assert edits.geometry.floating_window
    # where the left eye sees a pixel, the SPSMD shift is the full displacement it carries
    seen = edits.spsmd_shift[edits.spsmd_source]
    assert seen.numel() > 0 and float(seen.abs().max()) <= float(edits.shift_px.abs().max()) + 1e-5


def test_auto_geometry_needs_a_map():
    with pytest.raises(ValueError, match="^display"):
        geometry_for(None, 3.0, 0.5, VR)
    with pytest.raises(ValueError, match="^display"):
        display_target("IMAX")


def test_settings_resolved_ahead_carry_the_floating_window():
    """A caller that resolves the target over the whole batch passes the settings it gives."""
    scene = _edge_scene(32, 48)
    d = scene.disparity.float()
    g = geometry_for(d, 0.0, 0.0, VR)
    ahead = StereoShiftSettings(d, g.divergence, g.convergence, "subpixel", 0.0, False, None, g.floating_window)
    late = _settings(d, VR)
    like = torch.zeros(1, 4, 32, 48)
    assert torch.equal(StereoEdits(ahead, 1, like, seed=0).shift_px, StereoEdits(late, 1, like, seed=0).shift_px)
    assert ahead.geometry(None) == g
