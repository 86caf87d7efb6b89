import pytest
import torch

from stereo_pack.stereo_ops import (
    deblur_fill,
    duplicate_for_stereo,
    join_stereo,
    plan_schedule,
    split_stereo,
    spsmd_copy,
    stereo_pixel_shift,
)


def test_schedule_matches_the_reference_spacing_at_50_steps():
    s = plan_schedule(50, 0.2, 0.2)
    assert s.shift_step == 10 and s.spsmd_steps == (20, 30, 40)


@pytest.mark.parametrize("steps", [2, 3, 4, 5, 6, 7, 8, 20, 25, 1000])
def test_schedule_stays_inside_any_step_count(steps):
    s = plan_schedule(steps, 0.2, 0.2)
    assert 1 <= s.shift_step <= steps - 1
    assert all(s.shift_step < k < steps for k in s.spsmd_steps)
    assert list(s.spsmd_steps) == sorted(set(s.spsmd_steps))


def test_short_schedules_still_get_spsmd():
    assert plan_schedule(4).shift_step == 1 and plan_schedule(4).spsmd_steps == (2, 3)
    assert plan_schedule(8).spsmd_steps == (4, 6)


def test_schedule_options_and_errors():
    assert plan_schedule(20, spsmd=False).spsmd_steps == ()
    assert plan_schedule(20, spsmd_interval=0.0).spsmd_steps == ()
    assert plan_schedule(20, shift_at=0.0).shift_step == 1
    assert plan_schedule(20, shift_at=1.0).shift_step == 19
    with pytest.raises(ValueError, match="at least 2 steps"):
        plan_schedule(1)
    with pytest.raises(ValueError, match="shift_at"):
        plan_schedule(20, shift_at=1.5)


def test_spsmd_copy_replaces_only_the_filled_pixels():
    g = torch.Generator().manual_seed(0)
    left = torch.randn(2, 4, 8, 12, generator=g)
    right = torch.randn(2, 4, 8, 12, generator=g)
    disp = torch.rand(2, 8, 12, generator=g)
    shifted = stereo_pixel_shift(left, disp, 30.0)
    out = spsmd_copy(right, shifted.image, shifted.filled)
    f = shifted.filled.unsqueeze(1).expand_as(out)
    assert torch.equal(out[f], shifted.image[f])
    assert torch.equal(out[~f], right[~f])
    assert (~shifted.filled).any()


def test_deblur_fills_holes_with_noise_at_the_current_level():
    x = torch.zeros(2, 4, 6, 6)
    holes = torch.zeros(2, 6, 6, dtype=torch.bool)
    holes[:, :, :2] = True
    noise = torch.randn(2, 4, 6, 6, generator=torch.Generator().manual_seed(1))
    out = deblur_fill(x, holes, noise, torch.tensor([2.0, 0.5]))
    assert torch.equal(out[0, :, :, :2], noise[0, :, :, :2] * 2.0)
    assert torch.equal(out[1, :, :, :2], noise[1, :, :, :2] * 0.5)
    assert torch.equal(out[:, :, :, 2:], x[:, :, :, 2:])


def test_stereo_batch_convention():
    lefts, rights = torch.arange(3.0), torch.arange(3.0) + 10
    joined = join_stereo(lefts, rights)
    assert joined.tolist() == [0, 1, 2, 10, 11, 12]
    l, r = split_stereo(joined)
    assert torch.equal(l, lefts) and torch.equal(r, rights)
    assert torch.equal(duplicate_for_stereo(lefts), join_stereo(lefts, lefts))
    with pytest.raises(ValueError, match="even size"):
        split_stereo(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="same shape"):
        join_stereo(torch.zeros(2, 4, 4, 3), torch.zeros(2, 4, 5, 3))
