import pytest
import torch

from testkit.paper_reference import reference_right_view
from stereo_pack.stereo_ops import (
    displacement,
    stereo_pixel_shift,
    stereo_views,
    warp_left,
    warp_right,
)


def _random_case(b, c, h, w, seed):
    g = torch.Generator().manual_seed(seed)
    left = torch.randn(b, c, h, w, generator=g)
    disp = torch.rand(b, h, w, generator=g)
    return left, disp


@pytest.mark.parametrize("shape", [(1, 4, 16, 16), (2, 4, 12, 20), (3, 4, 9, 31), (2, 1, 5, 7)])
@pytest.mark.parametrize("divergence", [8.0, 20.0, 3.0])
def test_integer_mode_equals_the_reference_loop(shape, divergence):
    left, disp = _random_case(*shape, seed=sum(shape))
    ours = stereo_pixel_shift(left, disp, divergence, mode="integer")
    expected = reference_right_view(left, disp, divergence)
    assert torch.equal(ours.image, expected)


def test_integer_mode_equals_the_reference_on_smooth_depth():
    h, w = 24, 40
    x = torch.linspace(0, 1, w)
    y = torch.linspace(0, 1, h)
    disp = ((x[None, :] * 0.7 + y[:, None] * 0.3) ** 1.5)[None].repeat(2, 1, 1)
    left = torch.randn(2, 4, h, w, generator=torch.Generator().manual_seed(3)) + 5.0  # no zeros
    ours = stereo_pixel_shift(left, disp, 15.0, mode="integer")
    assert torch.equal(ours.image, reference_right_view(left, disp, 15.0))
    # With non-zero content, the filled mask is exactly where the reference wrote something.
    assert torch.equal(ours.filled, (ours.image != 0).all(dim=1))


@pytest.mark.parametrize("mode", ["integer", "subpixel"])
def test_zero_divergence_is_the_identity(mode):
    left, disp = _random_case(2, 4, 10, 13, seed=1)
    out = stereo_pixel_shift(left, disp, 0.0, mode=mode)
    assert torch.equal(out.image, left)
    assert out.filled.all()


@pytest.mark.parametrize("mode", ["integer", "subpixel"])
def test_constant_disparity_is_a_pure_translation(mode):
    left, _ = _random_case(2, 3, 6, 25, seed=2)
    disp = torch.full((2, 6, 25), 0.5)
    out = stereo_pixel_shift(left, disp, 16.0, mode=mode)  # 0.16 * 25 * 0.5 = 2 px to the left
    assert torch.equal(out.image[..., :-2], left[..., 2:])
    assert torch.equal(out.image[..., -2:], torch.zeros_like(left[..., -2:]))
    assert out.filled[..., :-2].all() and not out.filled[..., -2:].any()


@pytest.mark.parametrize("mode", ["integer", "subpixel"])
def test_nearer_pixels_win_collisions(mode):
    # A near block (D = 1) moves 4 px left over a far background (D = 0) that stays put.
    w = 20
    left = torch.arange(w, dtype=torch.float32).view(1, 1, 1, w).repeat(1, 2, 3, 1) + 100
    disp = torch.zeros(1, 3, w)
    disp[..., 10:14] = 1.0
    out = stereo_pixel_shift(left, disp, 20.0, mode=mode)  # 4 px
    assert torch.equal(out.image[0, 0, 0, 6:10], left[0, 0, 0, 10:14])  # block on top
    assert torch.equal(out.image[0, 0, 0, :6], left[0, 0, 0, :6])  # background untouched
    assert not out.filled[0, 0, 10:14].any()  # disoccluded behind the block
    assert torch.equal(out.image[0, 0, 0, 14:], left[0, 0, 0, 14:])


def test_subpixel_resolves_fractional_shifts():
    # A linear ramp moved by 1.5 px samples exactly halfway between neighbours.
    w = 16
    left = torch.arange(w, dtype=torch.float32).view(1, 1, 1, w)
    disp = torch.full((1, 1, w), 0.75)
    out = stereo_pixel_shift(left, disp, 12.5, mode="subpixel")  # 0.125 * 16 * 0.75 = 1.5
    torch.testing.assert_close(out.image[0, 0, 0, :-2], left[0, 0, 0, :-2] + 1.5)
    integer = stereo_pixel_shift(left, disp, 12.5, mode="integer")
    assert torch.equal(integer.image[0, 0, 0, :-1], left[0, 0, 0, :-1] + 1.0)


def test_subpixel_has_more_depth_levels_than_integer():
    w = 64
    disp = torch.linspace(0, 1, w).view(1, 1, w).repeat(1, 4, 1)
    left = torch.arange(w, dtype=torch.float32).view(1, 1, 1, w).repeat(1, 1, 4, 1)
    ints = stereo_pixel_shift(left, disp, 8.0, mode="integer")
    subs = stereo_pixel_shift(left, disp, 8.0, mode="subpixel")
    offsets_int = (ints.image - torch.arange(w).float())[ints.filled.unsqueeze(1)]
    offsets_sub = (subs.image - torch.arange(w).float())[subs.filled.unsqueeze(1)]
    assert offsets_int.unique().numel() <= 6
    assert offsets_sub.unique().numel() > 30
    # and every sub-pixel sample stays within one pixel of its integer counterpart
    both = ints.filled & subs.filled
    assert (subs.image - ints.image).abs()[both.unsqueeze(1)].max() <= 1.0


def test_subpixel_disocclusion_leaves_holes_and_keeps_zero_there():
    left = torch.ones(1, 4, 2, 30)
    disp = torch.zeros(1, 2, 30)
    disp[..., :15] = 1.0  # near left half moves 6 px left, opening a gap
    out = stereo_pixel_shift(left, disp, 20.0, mode="subpixel")
    assert (~out.filled).sum() == 2 * 6
    assert torch.equal(out.image * (~out.filled).unsqueeze(1), torch.zeros_like(left))


def test_convergence_one_puts_the_nearest_point_at_zero_parallax():
    left, disp = _random_case(1, 4, 8, 16, seed=5)
    disp[..., 3, 7] = 1.0
    a = displacement(disp, 10.0, convergence=1.0)
    assert a.max() == 0.0 and a.min() < 0
    out = stereo_pixel_shift(left, disp, 10.0, convergence=1.0)
    assert torch.equal(out.image[..., 3, 7], left[..., 3, 7])


def test_warp_right_is_the_mirror_of_warp_left():
    left, disp = _random_case(2, 4, 7, 19, seed=7)
    shift = disp * 3.3
    a = warp_right(left, shift)
    b = warp_left(left.flip(-1), shift.flip(-1))
    assert torch.equal(a.image, b.image.flip(-1))


@pytest.mark.parametrize("mode", ["integer", "subpixel"])
def test_balance_splits_the_parallax_between_the_eyes(mode):
    left, _ = _random_case(1, 4, 5, 40, seed=8)
    disp = torch.full((1, 5, 40), 1.0)
    views = stereo_views(left, disp, 10.0, balance=0.5, mode=mode)  # 4 px: 2 each way
    assert torch.equal(views.left.image[..., 2:], left[..., :-2])
    assert torch.equal(views.right.image[..., :-2], left[..., 2:])
    paper = stereo_views(left, disp, 10.0, balance=0.0, mode=mode)
    assert torch.equal(paper.left.image, left) and paper.left.filled.all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("mode", ["integer", "subpixel"])
def test_keeps_the_latent_dtype(dtype, mode):
    left, disp = _random_case(2, 4, 8, 8, seed=9)
    out = stereo_pixel_shift(left.to(dtype), disp, 25.0, mode=mode)
    assert out.image.dtype == dtype and out.filled.dtype == torch.bool


def test_rejects_mismatched_disparity_and_unknown_mode():
    left, disp = _random_case(1, 4, 8, 8, seed=10)
    with pytest.raises(ValueError, match="prepare_disparity"):
        stereo_pixel_shift(left, disp[:, :4], 8.0)
    with pytest.raises(ValueError, match="integer, subpixel"):
        stereo_pixel_shift(left, disp, 8.0, mode="cubic")
    with pytest.raises(ValueError, match="balance"):
        stereo_views(left, disp, 8.0, balance=1.5)
