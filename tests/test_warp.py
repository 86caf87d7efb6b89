"""The full-resolution warp and the right-eye refine against exact synthetic stereo scenes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stereo_pack.stereo_ops.pixel_shift import displacement
from stereo_pack.stereo_ops.synthetic_scenes import layered_scene, psnr
from stereo_pack.stereo_ops.warp import (
    dilate_mask,
    forward_warp,
    refine_right,
    right_from_left,
    stereo_warp,
)

SETTINGS = [  # height, width, divergence, convergence, balance
    (96, 128, 6.0, 0.0, 0.0),
    (80, 160, 9.5, 0.3, 0.5),
    (72, 150, 12.0, 0.0, 0.25),
]


def _check_holes(warp_holes: torch.Tensor, view) -> None:
    true = view.holes
    # Every true disocclusion is a hole, except slivers narrower than a pixel at depth edges,
    # which the warp interpolates across.
    missed = true & ~warp_holes
    assert not (missed & ~view.edge_zone(1)).any()
    assert missed.sum() <= 0.03 * true.sum()
    # A hole is never more than two pixels away from a true disocclusion.
    assert not (warp_holes & ~dilate_mask(true, 2)).any()


@pytest.mark.parametrize("setting", SETTINGS)
def test_both_eyes_match_the_exact_views(setting):
    h, w, div, conv, bal = setting
    scene = layered_scene(h, w, div, conv, bal)
    views = stereo_warp(scene.center.image.float(), scene.disparity, div, conv, bal)
    for warped, truth in ((views.left, scene.left), (views.right, scene.right)):
        visible = ~truth.holes & ~truth.edge_zone(2)
        assert visible.float().mean() > 0.6
        assert psnr(warped.image, truth.image, visible) >= 45.0
        _check_holes(warped.holes, truth)
        assert torch.all(warped.image[warped.holes.unsqueeze(1).expand_as(warped.image)] == 0)


def test_balance_splits_the_parallax_between_the_eyes():
    scene = layered_scene(64, 120, 10.0, 0.0, 0.0)
    a = displacement(scene.disparity.float(), 10.0)
    image = scene.center.image.float()
    for balance in (0.25, 0.5, 0.8):
        views = stereo_warp(image, scene.disparity, 10.0, 0.0, balance)
        left = forward_warp(image, a * balance, direction=1)
        right = forward_warp(image, a * (1.0 - balance), direction=-1)
        assert torch.equal(views.left.image, left.image) and torch.equal(views.left.filled, left.filled)
        assert torch.equal(views.right.image, right.image) and torch.equal(views.right.filled, right.filled)
    # balance 0 keeps the image as the left eye, balance 1 as the right eye.
    assert torch.equal(stereo_warp(image, scene.disparity, 10.0, 0.0, 0.0).left.image, image)
    assert torch.equal(stereo_warp(image, scene.disparity, 10.0, 0.0, 1.0).right.image, image)


def test_zero_divergence_is_the_identity():
    image = torch.rand(2, 3, 9, 17)
    views = stereo_warp(image, torch.rand(2, 9, 17), 0.0, 0.4, 0.5)
    for eye in (views.left, views.right):
        assert torch.equal(eye.image, image) and eye.filled.all()


@pytest.mark.parametrize("direction", [-1, 1])
def test_nearer_surfaces_win_and_disocclusions_are_holes(direction):
    # A near block (columns 20-25, 4.5 px) over a far background (0.5 px), both moving one way.
    w = 40
    image = torch.arange(w, dtype=torch.float32).view(1, 1, 1, w).repeat(1, 3, 2, 1) + 100
    shift = torch.full((1, 2, w), 0.5)
    shift[..., 20:26] = 4.5
    out = forward_warp(image, shift, direction=direction)
    row, filled = out.image[0, 0, 0], out.filled[0, 0]
    cols = torch.arange(w, dtype=torch.float32)
    source = cols - direction * 4.5
    block = (source >= 20) & (source <= 25)  # where the block lands: on top of the background
    torch.testing.assert_close(row[block], source[block] + 100, atol=1e-3, rtol=0)
    # Exactly the background the block uncovered on its trailing side, and the frame edge the
    # background left, are holes.
    holes = set(torch.nonzero(~filled).flatten().tolist())
    assert holes == ({21, 22, 23, 24, 25, 39} if direction < 0 else {0, 20, 21, 22, 23, 24})
    background = filled & ~block
    torch.testing.assert_close(row[background], cols[background] - direction * 0.5 + 100, atol=1e-3, rtol=0)


def test_a_post_narrower_than_its_parallax_stays_whole():
    # A 2-px post moving 6 px over a still background: the background seen past it is kept.
    w = 32
    image = torch.zeros(1, 1, 1, w)
    image[..., 15:17] = 1.0
    shift = torch.zeros(1, 1, w)
    shift[..., 15:17] = 6.0
    out = forward_warp(image, shift)
    assert torch.equal(out.image[0, 0, 0, 9:11], torch.ones(2))  # the post moved 6 px left
    assert out.filled[0, 0, :15].all() and not out.filled[0, 0, 15:17].any()  # hole where it stood
    assert torch.equal(out.image[0, 0, 0, 11:15], torch.zeros(4))  # background kept past it


def test_constant_disparity_is_a_fractional_translation():
    g = torch.Generator().manual_seed(0)
    ramp = torch.arange(30, dtype=torch.float64).view(1, 1, 1, 30)
    image = ramp + 0.1 * torch.randn(1, 2, 5, 30, generator=g, dtype=torch.float64)
    out = forward_warp(image, torch.full((1, 5, 30), 2.25, dtype=torch.float64))
    expected = torch.lerp(image[..., 2:-1], image[..., 3:], 0.25)
    torch.testing.assert_close(out.image[..., :-3], expected, atol=1e-9, rtol=0)
    assert out.filled[..., :-3].all() and not out.filled[..., -2:].any()


def test_batches_layouts_and_disparity_shapes_agree():
    scene = layered_scene(48, 64, 8.0, 0.0, 0.0)
    image = scene.center.image.float()
    d = scene.disparity.float()
    batch = torch.cat([image, image.flip(-1), image * 0.5])
    disp = torch.cat([d, d.flip(-1), d * 0.3])
    together = stereo_warp(batch, disp, 8.0, 0.1, 0.5)
    for i in range(3):
        alone = stereo_warp(batch[i : i + 1], disp[i], 8.0, 0.1, 0.5)
        torch.testing.assert_close(together.right.image[i : i + 1], alone.right.image, atol=1e-6, rtol=0)
        assert torch.equal(together.left.filled[i : i + 1], alone.left.filled)
    # One map serves every image, as (H, W), (1, H, W) or (1, 1, H, W).
    ref = stereo_warp(batch, d, 8.0).right
    for shaped in (d[0], d, d.unsqueeze(1)):
        assert torch.equal(stereo_warp(batch, shaped, 8.0).right.image, ref.image)
    # Channels-last images (ComfyUI's IMAGE layout) read through a strided view.
    nhwc = batch.permute(0, 2, 3, 1).contiguous()
    torch.testing.assert_close(stereo_warp(nhwc.permute(0, 3, 1, 2), d, 8.0).right.image, ref.image)


def test_a_smaller_disparity_map_is_resized_to_the_image():
    scene = layered_scene(64, 96, 8.0)
    small = F.interpolate(scene.disparity.float().unsqueeze(1), size=(32, 48), mode="area")[:, 0]
    out = stereo_warp(scene.center.image.float(), small, 8.0).right
    assert out.image.shape == (1, 3, 64, 96)
    visible = ~scene.right.holes & ~scene.right.edge_zone(3)
    assert psnr(out.image, scene.right.image, visible) > 35.0


@pytest.mark.parametrize("bad", [1.2, -0.1])
def test_out_of_range_disparity_asks_for_normalisation(bad):
    d = torch.rand(1, 8, 8)
    d[0, 0, 0] = bad
    with pytest.raises(ValueError, match="Depth to Disparity"):
        stereo_warp(torch.rand(1, 3, 8, 8), d, 5.0)


def test_disparity_batch_must_be_one_or_n():
    with pytest.raises(ValueError, match="one map per image"):
        stereo_warp(torch.rand(3, 3, 8, 8), torch.rand(2, 8, 8), 5.0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_dtypes_follow_the_image(dtype):
    scene = layered_scene(40, 64, 8.0)
    ref = stereo_warp(scene.center.image.float(), scene.disparity, 8.0).right
    out = stereo_warp(scene.center.image.to(dtype), scene.disparity, 8.0).right
    assert out.image.dtype == dtype
    assert torch.equal(out.filled, ref.filled)
    tol = {torch.float64: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}[dtype]
    torch.testing.assert_close(out.image.float(), ref.image, atol=tol, rtol=0)


def test_source_mask_keeps_pixels_from_moving():
    image = torch.rand(1, 1, 3, 20)
    mask = torch.ones(1, 3, 20, dtype=torch.bool)
    mask[..., 5:8] = False
    out = forward_warp(image, torch.full((1, 3, 20), 1.0), source_mask=mask)
    assert not out.filled[..., 4:7].any()  # what would land there comes from masked pixels
    assert out.filled[..., :4].all()
    assert out.filled[..., 8:18].all()


def test_dilate_mask_grows_by_the_given_pixels():
    m = torch.zeros(1, 9, 9, dtype=torch.bool)
    m[0, 4, 4] = True
    assert dilate_mask(m, 2).sum() == 25 and dilate_mask(m, 0) is m
    assert dilate_mask(m.float(), 1).dtype == torch.float32


@pytest.mark.parametrize("balance", [0.0, 0.5])
def test_refine_copies_the_left_eye_detail_and_keeps_the_holes(balance):
    scene = layered_scene(80, 128, 8.0, 0.2, balance)
    left = scene.left.image.float().repeat(2, 1, 1, 1)
    diffusion = torch.rand_like(left)  # whatever the model painted
    refined, holes = refine_right(left, diffusion, scene.disparity, 8.0, 0.2, balance, feather=3)
    assert refined.shape == left.shape and holes.shape == (2, 80, 128)
    # Every pixel the warp filled is the warp of the left eye, exactly, right up to the holes...
    warped = right_from_left(left, scene.disparity, 8.0, 0.2, balance)
    seen = (~holes).unsqueeze(1).expand_as(refined)
    assert torch.equal(refined[seen], warped.image[seen])
    visible = ~holes & ~scene.right.holes & ~scene.right.edge_zone(2)
    assert psnr(refined, scene.right.image.float().expand_as(refined), visible) >= 45.0
    # ...and the diffusion's pixels are exact deeper than `feather` inside the holes.
    deep = (~dilate_mask(~holes, 3)).unsqueeze(1).expand_as(refined)
    assert deep.any() and torch.equal(refined[deep], diffusion[deep])
    # The seam inside the holes stays within the range of the two.
    lo = torch.minimum(warped.image.amin(dim=(2, 3), keepdim=True), diffusion)
    hi = torch.maximum(warped.image.amax(dim=(2, 3), keepdim=True), diffusion)
    assert (refined >= lo - 1e-6).all() and (refined <= hi + 1e-6).all()


@pytest.mark.parametrize("balance", [0.0, 0.5])
def test_refine_feather_leaves_the_pixels_both_eyes_see_exact(balance):
    """Feathering changes only hole pixels: the visible-pixel PSNR of feather 4 is that of feather 0."""
    scene = layered_scene(80, 128, 8.0, 0.2, balance)
    left = scene.left.image.float()
    diffusion = torch.rand_like(left)
    hard, holes = refine_right(left, diffusion, scene.disparity, 8.0, 0.2, balance, feather=0)
    soft, _ = refine_right(left, diffusion, scene.disparity, 8.0, 0.2, balance, feather=4)
    visible = ~holes & ~scene.right.holes & ~scene.right.edge_zone(2)
    truth = scene.right.image.float()
    assert psnr(soft, truth, visible) == psnr(hard, truth, visible) >= 45.0
    seen = (~holes).unsqueeze(1).expand_as(soft)
    assert torch.equal(soft[seen], hard[seen])
    assert not torch.equal(soft, hard)  # the seam inside the holes is feathered


def test_refine_rejects_mismatched_eyes():
    with pytest.raises(ValueError, match="same shape"):
        refine_right(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9), torch.rand(1, 8, 8), 5.0)


@pytest.mark.parametrize("width", [1, 2, 3])
def test_tiny_images_warp_without_errors(width):
    image = torch.rand(2, 3, 4, width)
    shift = torch.zeros(2, 4, width)
    out = forward_warp(image, shift)
    torch.testing.assert_close(out.image, image, atol=1e-5, rtol=0)
    assert out.filled.all()
    gone = forward_warp(image, shift + 5.0)  # everything leaves the frame
    assert not gone.filled.any() and torch.all(gone.image == 0)


def test_row_blocks_do_not_change_the_result(monkeypatch):
    import stereo_pack.stereo_ops.warp as warp

    scene = layered_scene(40, 64, 10.0)
    shift = displacement(scene.disparity.float(), 10.0).repeat(2, 1, 1)
    image = scene.center.image.float().repeat(2, 1, 1, 1)
    whole = forward_warp(image, shift)
    monkeypatch.setattr(warp, "_CPU_BLOCK", 64 * 3)  # blocks of 3 rows
    blocks = forward_warp(image, shift)
    assert torch.equal(whole.image, blocks.image) and torch.equal(whole.filled, blocks.filled)
