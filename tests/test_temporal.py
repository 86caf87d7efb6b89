"""Zero-phase temporal smoothing of video disparity."""

import pytest
import torch

from stereo_pack.stereo_ops.temporal import smooth_over_time


def test_zero_strength_and_single_frame_are_unchanged():
    x = torch.rand(4, 3, 5)
    torch.testing.assert_close(smooth_over_time(x, 0.0), x)
    torch.testing.assert_close(smooth_over_time(x[:1], 0.9), x[:1])


def test_forward_and_backward_pass_match_the_formula():
    x = torch.tensor([0.0, 1.0, 0.0]).view(3, 1, 1)
    s = 0.5
    fwd = [0.0, 0.5, 0.25]  # y[t] = s*y[t-1] + (1-s)*x[t]
    bwd = [0.0, 0.0, 0.0]
    bwd[2] = fwd[2]
    bwd[1] = s * bwd[2] + (1 - s) * fwd[1]
    bwd[0] = s * bwd[1] + (1 - s) * fwd[0]
    torch.testing.assert_close(smooth_over_time(x, s).flatten(), torch.tensor(bwd))


def test_no_lag_a_symmetric_pulse_stays_centred():
    x = torch.zeros(11, 1, 1)
    x[5] = 1.0
    y = smooth_over_time(x, 0.5).flatten()
    assert int(y.argmax()) == 5
    # Forward then backward is not exactly symmetric in weights, but close; the peak does not move.
    assert abs(y[4].item() - y[6].item()) < 0.1


def test_not_in_place_unless_asked_and_range_is_kept():
    x = torch.rand(6, 2, 2)
    before = x.clone()
    y = smooth_over_time(x, 0.7)
    torch.testing.assert_close(x, before)
    assert y.min() >= x.min() and y.max() <= x.max()
    z = smooth_over_time(x, 0.7, inplace=True)
    assert z.data_ptr() == x.data_ptr()


@pytest.mark.parametrize("s", [-0.1, 1.0, 2.0])
def test_bad_strength(s):
    with pytest.raises(ValueError, match="temporal smoothing"):
        smooth_over_time(torch.rand(2, 2, 2), s)
