"""Stereo Check on synthetic scenes with exact truth: parallax range, eye order, vertical offset,
window violations, eye mismatch, the fix."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from stereo_pack.stereo_ops.synthetic_scenes import Plane, default_planes, layered_scene
from stereo_pack.stereo_ops.stereo_check import SimpleBudget, check_pair, fix_pair, report
from stereo_pack.stereo_ops.parallax_colours import colour_scale, heat_map

VR = SimpleBudget(2.0, 1.0)


def _planes_with(detail: float, h: int, w: int, thin_post: bool = True):
    """The default layered planes with fine texture; the last of them is a post 2.5 px wide."""
    planes = tuple(replace(p, detail=detail) for p in default_planes(h, w))
    return planes if thin_post else planes[:-1]


def _boxes(h: int, w: int) -> tuple[Plane, ...]:
    """Background, a textureless wall, and two textured boxes in front."""
    return (
        Plane(-w, 2 * w, -h, 2 * h, d0=0.1, seed=11, detail=1.0),
        Plane(0.55 * w, 0.95 * w, 0.05 * h, 0.5 * h, d0=0.3, seed=12, contrast=0.0),
        Plane(0.1 * w, 0.4 * w, 0.2 * h, 0.8 * h, d0=0.9, seed=13, detail=0.7),
        Plane(0.5 * w, 0.8 * w, 0.55 * h, 0.9 * h, d0=0.6, seed=14, detail=1.0),
    )


# (height, width, divergence %, convergence, planes)
SCENES = {
    "layered, behind and in front": (128, 192, 3.0, 0.5, lambda h, w: _planes_with(1.0, h, w)),
    # A post 2.5 px wide with 6 % parallax is narrower than the matching window: it is missed, or
    # its parallax spreads a pixel or two beside it (docs/stereo-check.md, limits).
    "layered, all in front (the paper's convergence)": (128, 192, 6.0, 0.0, lambda h, w: _planes_with(1.0, h, w, False)),
    "layered, mostly behind, less detail": (160, 224, 4.0, 0.8, lambda h, w: _planes_with(0.5, h, w)),
    "boxes with a textureless wall": (128, 192, 4.0, 0.4, _boxes),
}


def _scene(name: str):
    h, w, div, conv, planes = SCENES[name]
    return layered_scene(h, w, div, conv, planes=planes(h, w), dtype=torch.float32)


def _true_parallax_pct(scene) -> torch.Tensor:
    """p = x_right - x_left of every left pixel, in % of the width (balance 0: left = centre)."""
    return -scene.divergence * (scene.disparity[0] - scene.convergence)


def _pair(scene):
    return scene.left.image[0].float(), scene.right.image[0].float()


@pytest.fixture(scope="module")
def checks():
    """Each scene checked once in the right order and once swapped (the slow part, shared)."""
    out = {}
    for name in SCENES:
        scene = _scene(name)
        left, right = _pair(scene)
        out[name] = (scene, check_pair(left, right, VR, "VR headset"), check_pair(right, left, VR, "VR headset"))
    return out


@pytest.mark.parametrize("name", list(SCENES))
def test_parallax_range_matches_the_truth_within_a_quarter_percent(checks, name):
    scene, ok, _ = checks[name]
    truth = _true_parallax_pct(scene).flatten()
    lo, hi = torch.quantile(truth, torch.tensor([0.005, 0.995])).tolist()
    p = ok.figures.parallax_pct
    assert abs(p["min"] - lo) <= 0.25 and abs(p["max"] - hi) <= 0.25, (p, lo, hi)
    assert p["min"] <= p["p5"] <= p["p50"] <= p["p95"] <= p["max"]
    assert ok.figures.measured_share > 0.5


@pytest.mark.parametrize("name", list(SCENES))
def test_eye_order_is_read_from_occlusions_whatever_the_convergence(checks, name):
    _, ok, swapped = checks[name]
    assert ok.figures.eye_order == "correct", ok.figures
    assert "eyes swapped" not in ok.figures.warnings
    assert swapped.figures.eye_order == "swapped", swapped.figures
    assert "eyes swapped" in swapped.figures.warnings
    # The parallax sign alone would not tell: a swapped pair measures the negated range.
    assert swapped.figures.parallax_pct["p50"] == pytest.approx(-ok.figures.parallax_pct["p50"], abs=0.1)


def test_eye_order_survives_a_lighting_difference_and_smooth_textures():
    h, w = 128, 192
    scene = layered_scene(h, w, 4.0, 0.6, planes=default_planes(h, w), dtype=torch.float32)  # smooth texture only
    left, right = _pair(scene)
    # The right eye darker and warmer, with a vertical light fall-off.
    fall = torch.linspace(1.0, 0.8, h).view(1, h, 1)
    lit = (right * torch.tensor([1.0, 0.9, 0.8]).view(3, 1, 1) * fall + 0.03).clamp(0, 1)
    assert check_pair(left, lit, VR).figures.eye_order == "correct"
    assert check_pair(lit, left, VR).figures.eye_order == "swapped"


def test_a_correct_pair_passes_and_reports_in_words(checks):
    scene, ok, _ = checks["boxes with a textureless wall"]
    f = ok.figures
    assert abs(f.vertical_offset_px) < 0.5
    assert abs(f.brightness_mismatch_pct) < 1.0 and f.colour_mismatch_pct < 1.0
    assert not f.window["left"]["violation"] and not f.window["right"]["violation"]
    text = report(f, 0)
    assert text.startswith("Pair 1") and "Eye order: left and right are in the right order" in text


@pytest.mark.parametrize("rows", [3, -3])
def test_a_three_pixel_vertical_offset_is_flagged(rows):
    scene = _scene("layered, behind and in front")
    left, right = _pair(scene)
    moved = torch.roll(right, rows, dims=1)  # content 3 rows lower (or higher) in the right eye
    f = check_pair(left, moved, VR).figures
    assert f.vertical_offset_px == pytest.approx(rows, abs=0.5)
    assert "vertical offset" in f.warnings


def test_a_window_violation_is_flagged_at_the_edge_it_happens():
    h, w = 128, 192
    planes = (
        Plane(-w, 2 * w, -h, 2 * h, d0=0.1, seed=21, detail=1.0),
        Plane(-w, 0.3 * w, 0.2 * h, 0.9 * h, d0=0.9, seed=22, detail=1.0),  # cut by the left edge
    )
    scene = layered_scene(h, w, 4.0, 0.5, planes=planes, dtype=torch.float32)
    f = check_pair(*_pair(scene), VR).figures
    assert f.window["left"]["violation"] and not f.window["right"]["violation"]
    assert f.window["left"]["depth_pct"] == pytest.approx(4.0 * 0.4, abs=0.25)
    assert "window violation at the left edge" in f.warnings


def test_a_ten_percent_brightness_mismatch_is_flagged_and_fixed(checks):
    scene = _scene("boxes with a textureless wall")
    left, right = _pair(scene)
    dark = right * 0.9
    f = check_pair(left, dark, VR).figures
    assert f.brightness_mismatch_pct == pytest.approx(-10.0, abs=1.0)
    assert "brightness mismatch" in f.warnings
    fixed_left, fixed_right = fix_pair(left, dark, f)
    assert torch.equal(fixed_left, left)
    assert (fixed_right - right).abs().mean() < 0.005


def test_the_fix_restores_the_eye_order_and_brightness():
    scene = _scene("layered, behind and in front")
    left, right = _pair(scene)
    f = check_pair(right * 0.85, left, VR).figures  # swapped, and the (true) right eye darker
    assert "eyes swapped" in f.warnings and "brightness mismatch" in f.warnings
    fixed_left, fixed_right = fix_pair(right * 0.85, left, f)
    assert torch.equal(fixed_left, left)
    assert (fixed_right - right).abs().mean() < 0.005


def test_budget_fit_and_heat_map(checks):
    _, ok, _ = checks["layered, all in front (the paper's convergence)"]
    f = ok.figures
    assert not f.budget["fits"] and f.budget["crossed_pct"] > 4.5  # about 4.9 % in front, against 2 %
    assert any("budget" in w for w in f.warnings)
    scale = colour_scale(f.parallax_pct, (VR.crossed_pct, VR.uncrossed_pct))
    assert scale >= 4.9
    left = ok.match.left_rgb
    heat = heat_map(ok.match, torch.rand(3, 128, 192), scale)
    assert heat.shape == (3, 128, 192) and 0.0 <= float(heat.min()) and float(heat.max()) <= 1.0
    # Everything is in front: trusted pixels are reddish (more red than blue).
    trusted = torch.nn.functional.interpolate(ok.match.valid.float()[None, None], size=(128, 192))[0, 0] > 0.5
    assert (heat[0][trusted] >= heat[2][trusted]).float().mean() > 0.95
    assert left.shape[0] == 3


def test_disparity_map_gives_a_second_opinion_on_the_eye_order():
    scene = _scene("layered, behind and in front")
    left, right = _pair(scene)
    d = scene.disparity[0].float()
    assert check_pair(left, right, VR, disparity=d).figures.depth_map_agreement > 0.8
    assert check_pair(right, left, VR, disparity=d).figures.depth_map_agreement < -0.5


def _photo_like(h: int, w: int, seed: int) -> torch.Tensor:
    """RGB noise with the 1/f spectrum of natural photographs (3, h, w)."""
    g = torch.Generator().manual_seed(seed)
    spectrum = torch.fft.fft2(torch.randn(3, h, w, generator=g))
    radius = (torch.fft.fftfreq(h).view(h, 1) ** 2 + torch.fft.fftfreq(w).view(1, w) ** 2).sqrt().clamp_min(1.0 / w)
    image = torch.fft.ifft2(spectrum / radius).real
    return ((image - image.mean()) / image.std() * 0.15 + 0.5).clamp(0, 1)


def _fill_from_the_right(image: torch.Tensor, holes: torch.Tensor) -> torch.Tensor:
    """Disocclusions of a right eye filled with the surface beside them on the right, the farther
    one, as an inpainting model would continue it."""
    image, holes = image.clone(), holes.clone()
    while bool(holes.any()):
        take = holes & ~torch.roll(holes, -1, -1)
        image = torch.where(take.unsqueeze(1), torch.roll(image, -1, -1), image)
        holes &= ~take
    return image


@pytest.mark.parametrize("seed, divergence, convergence", [(1, 3.0, 0.5), (3, 2.0, 0.0)])
def test_photo_like_texture_warped_pair(seed, divergence, convergence):
    """Photo statistics (1/f texture), boxes at random depths over a receding floor, warped by
    Stereo Warp with its holes filled: range within 0.25 % of the width, eye order both ways."""
    from stereo_pack.stereo_ops.warp import stereo_warp

    h, w = 192, 256
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    disparity, image = 0.2 * yy, _photo_like(h, w, seed)
    for k in range(3):
        x0, y0 = (0.1 + 0.6 * torch.rand(1, generator=g)).item(), (0.1 + 0.5 * torch.rand(1, generator=g)).item()
        box = (xx > x0) & (xx < x0 + 0.2) & (yy > y0) & (yy < y0 + 0.3)
        disparity = torch.where(box, torch.full_like(disparity, 0.5 + 0.5 * torch.rand(1, generator=g).item()), disparity)
        image = torch.where(box, _photo_like(h, w, 100 * seed + k), image)
    views = stereo_warp(image[None], disparity[None], divergence, convergence, 0.0)
    left, right = views.left.image[0], _fill_from_the_right(views.right.image, views.right.holes)[0]
    truth = -divergence * (disparity - convergence)
    ok = check_pair(left, right, VR).figures
    assert abs(ok.parallax_pct["min"] - float(truth.min())) <= 0.25
    assert abs(ok.parallax_pct["max"] - float(truth.max())) <= 0.25
    assert ok.eye_order == "correct"
    assert check_pair(right, left, VR).figures.eye_order == "swapped"


def test_a_flat_pair_says_it_cannot_measure_and_warns_of_nothing_else():
    flat = torch.full((3, 64, 80), 0.4)
    f = check_pair(flat, flat * 0.8, VR).figures
    assert f.warnings == ["too little texture to measure"] and f.measured_share < 0.05
    assert f.eye_order == "undetermined" and f.vertical_offset_px == 0.0
    assert fix_pair(flat, flat * 0.8, f)[1].equal(flat * 0.8)  # nothing measured, nothing changed


def test_the_report_says_which_way_to_move_a_range_that_would_fit():
    scene = _scene("layered, behind and in front")  # about -1.5 % to +1.35 %: 2.9 % in all
    left, right = _pair(scene)
    text = report(check_pair(left, right, SimpleBudget(1.0, 2.5)).figures)
    assert "does NOT fit" in text and "move it behind the screen (raise the convergence)" in text
    text = report(check_pair(left, right, SimpleBudget(2.5, 1.0)).figures)
    assert "bring it forward (lower the convergence)" in text
    text = report(check_pair(left, right, SimpleBudget(1.0, 1.0)).figures)
    assert "Reduce the divergence to about" in text


def test_the_settings_used_give_the_expected_parallax_and_catch_a_mismatch():
    scene = _scene("layered, behind and in front")  # divergence 3 %, convergence 0.5
    left, right = _pair(scene)
    d = scene.disparity[0].float()
    f = check_pair(left, right, VR, disparity=d, settings=(3.0, 0.5)).figures
    truth = _true_parallax_pct(scene).flatten()
    assert f.settings_parallax_pct["min"] == pytest.approx(float(torch.quantile(truth, 0.005)), abs=1e-4)
    assert f.settings_error_pct < 0.1 and "parallax differs from the settings" not in f.warnings
    wrong = check_pair(left, right, VR, disparity=d, settings=(3.0, 0.0)).figures  # not what made it
    assert wrong.settings_error_pct == pytest.approx(1.5, abs=0.1)
    assert "parallax differs from the settings" in wrong.warnings
