"""The viewing model: budgets per display, parallax and depth conversions, automatic settings."""

from __future__ import annotations

import math

import pytest
import torch

from stereo_pack.stereo_ops.comfort import (
    ANGULAR_LIMIT_DEG,
    DISPLAY_PRESETS,
    MIN_DISPARITY_SPAN,
    ParallaxBudget,
    ParallaxRange,
    angular_disparity_deg,
    auto_settings,
    custom_display,
    disparity_range,
    parallax_budget,
    parallax_range,
    perceived_depth_range_m,
    perceived_distance_m,
    settings_for_parallax,
)


def test_vr_headset_budget_is_within_three_percent_of_which_two_crossed():
    budget = parallax_budget(DISPLAY_PRESETS["VR headset"])
    assert budget.total_pct <= 3.0
    assert budget.crossed_pct <= 2.0
    assert budget.crossed_pct > 1.0 and budget.uncrossed_pct > 1.0  # not degenerate either


@pytest.mark.parametrize("name", sorted(DISPLAY_PRESETS))
def test_every_preset_budget_sits_exactly_on_its_limits(name):
    display = DISPLAY_PRESETS[name]
    budget = parallax_budget(display)
    # The crossed edge is exactly the angular limit in front of the screen.
    assert angular_disparity_deg(display, -budget.crossed_pct) == pytest.approx(-ANGULAR_LIMIT_DEG, rel=1e-9)
    # The uncrossed edge is the angular limit, or the eye separation where that binds first.
    eye_pct = 100.0 * display.eye_separation_m / display.screen_width_m
    behind = angular_disparity_deg(display, budget.uncrossed_pct)
    assert budget.uncrossed_pct <= eye_pct + 1e-12
    assert behind == pytest.approx(ANGULAR_LIMIT_DEG, rel=1e-9) or budget.uncrossed_pct == pytest.approx(eye_pct)


def test_far_screen_uncrossed_budget_is_the_eye_separation():
    cinema = custom_display(screen_width_m=12.0, viewing_distance_m=15.0)
    budget = parallax_budget(cinema)
    assert budget.uncrossed_pct == pytest.approx(100.0 * 0.063 / 12.0)
    assert perceived_distance_m(cinema, budget.uncrossed_pct) == math.inf
    # and the crossed side still follows the angular rule
    assert angular_disparity_deg(cinema, -budget.crossed_pct) == pytest.approx(-1.0)


def test_budget_is_a_smaller_share_of_a_wider_view():
    tv, phone = DISPLAY_PRESETS["3D TV or monitor"], DISPLAY_PRESETS["phone in a viewer"]
    assert tv.horizontal_fov_deg < phone.horizontal_fov_deg
    assert parallax_budget(tv).crossed_pct > parallax_budget(phone).crossed_pct


def test_perceived_distance_follows_z_equals_v_e_over_e_minus_p():
    tv = DISPLAY_PRESETS["3D TV or monitor"]
    v, e, w = tv.viewing_distance_m, tv.eye_separation_m, tv.screen_width_m
    assert perceived_distance_m(tv, 0.0) == pytest.approx(v)
    # crossed parallax of one eye separation: halfway to the screen
    assert perceived_distance_m(tv, -100.0 * e / w) == pytest.approx(v / 2.0)
    assert perceived_distance_m(tv, 100.0 * e / w) == math.inf
    # The issue's figure: the paper's 8 % crossed on a 65" TV at 3 m is 11.5 cm, about 1.1 m away.
    assert 0.08 * w == pytest.approx(0.115, abs=5e-4)
    assert perceived_distance_m(tv, -8.0) == pytest.approx(1.06, abs=0.01)


def test_paper_setting_puts_everything_in_front_of_the_screen():
    r = parallax_range(8.0, 0.0, 0.0, 1.0)
    assert (r.nearest_pct, r.farthest_pct) == (-8.0, 0.0)
    assert r.crossed_pct == 8.0 and r.uncrossed_pct == 0.0 and r.total_pct == 8.0
    near, far = perceived_depth_range_m(DISPLAY_PRESETS["3D TV or monitor"], 8.0, 0.0)
    assert far == pytest.approx(3.0) and near < 1.1


def test_settings_and_parallax_convert_both_ways():
    for divergence, convergence, lo, hi in [(3.0, 1 / 3, 0.0, 1.0), (2.5, 0.5, 0.1, 0.9), (6.0, 0.0, 0.3, 0.7)]:
        r = parallax_range(divergence, convergence, lo, hi)
        assert settings_for_parallax(r, lo, hi) == pytest.approx((divergence, convergence))
    with pytest.raises(ValueError, match="flat map"):
        settings_for_parallax(ParallaxRange(-1.0, 1.0), 0.5, 0.5)
    with pytest.raises(ValueError, match="disparity range"):
        parallax_range(3.0, 0.5, 0.8, 0.2)


@pytest.mark.parametrize("lo, hi", [(0.0, 1.0), (0.2, 0.7), (0.05, 0.4), (0.6, 1.0)])
def test_auto_settings_fill_the_budget_exactly_on_both_sides(lo, hi):
    budget = parallax_budget(DISPLAY_PRESETS["VR headset"])
    divergence, convergence = auto_settings(budget, lo, hi)
    r = parallax_range(divergence, convergence, lo, hi)
    assert r.crossed_pct == pytest.approx(budget.crossed_pct, rel=1e-9)
    assert r.uncrossed_pct == pytest.approx(budget.uncrossed_pct, rel=1e-9)
    assert 0.0 <= convergence <= 1.0
    # any larger divergence breaks the budget whatever the convergence
    assert (divergence * 1.001) * (hi - lo) > budget.total_pct


def test_auto_settings_do_not_magnify_a_nearly_flat_map():
    budget = ParallaxBudget(2.0, 1.0)
    for lo, hi in [(0.5, 0.5), (0.98, 1.0), (0.0, 0.01)]:
        divergence, convergence = auto_settings(budget, lo, hi)
        assert divergence == pytest.approx(budget.total_pct / MIN_DISPARITY_SPAN)
        assert 0.0 <= convergence <= 1.0
        assert budget.allows(parallax_range(divergence, convergence, lo, hi))
    assert auto_settings(ParallaxBudget(0.0, 0.0), 0.2, 0.8) == (0.0, 0.5)


def test_disparity_range_ignores_stray_pixels_but_not_objects():
    d = torch.linspace(0.2, 0.6, 64 * 64).reshape(1, 64, 64)
    d[0, 10, 10] = 1.0  # one stray pixel
    lo, hi = disparity_range(d)
    assert lo == pytest.approx(0.2, abs=0.01) and hi == pytest.approx(0.6, abs=0.01)
    d[0, :, :4] = 1.0  # a near object over 6 % of the image
    assert disparity_range(d)[1] == pytest.approx(1.0)


def test_disparity_range_of_a_batch_is_one_range_for_all_frames():
    frames = torch.stack([torch.full((8, 8), 0.1), torch.full((8, 8), 0.5), torch.full((8, 8), 0.9)])
    assert disparity_range(frames, (0.0, 100.0)) == pytest.approx((0.1, 0.9))
    big = torch.rand(2, 3000, 3000)  # above torch.quantile's size limit: subsampled
    lo, hi = disparity_range(big)
    assert lo == pytest.approx(0.005, abs=0.002) and hi == pytest.approx(0.995, abs=0.002)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"screen_width_m": 0.0, "viewing_distance_m": 1.0}, "screen_width"),
        ({"screen_width_m": 1.0, "viewing_distance_m": float("nan")}, "viewing_distance"),
        ({"screen_width_m": 1.0, "viewing_distance_m": 2.0, "eye_separation_m": 63.0}, "eye_separation"),
    ],
)
def test_custom_display_names_the_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=f"^{name}"):
        custom_display(**kwargs)


def test_budget_rejects_negative_or_nan_limits():
    with pytest.raises(ValueError, match="crossed_pct"):
        ParallaxBudget(-1.0, 1.0)
    with pytest.raises(ValueError, match="uncrossed_pct"):
        ParallaxBudget(1.0, float("nan"))
