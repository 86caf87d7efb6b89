"""External depth/disparity maps to the pack's disparity (StereoDepthToDisparity's math)."""

import pytest
import torch

from stereo_pack.stereo_ops.depth_map import depth_map_to_disparity, gaussian_blur, map_to_single_channel


def _ramp(b=1, h=4, w=5):
    return torch.linspace(0.2, 0.6, w).expand(b, h, w).clone()


def test_image_channels_are_averaged_and_alpha_ignored():
    rgb = torch.stack([torch.full((2, 3), 0.1), torch.full((2, 3), 0.2), torch.full((2, 3), 0.6)], -1)[None]
    rgba = torch.cat([rgb, torch.ones(1, 2, 3, 1)], -1)
    torch.testing.assert_close(map_to_single_channel(rgb), torch.full((1, 2, 3), 0.3))
    torch.testing.assert_close(map_to_single_channel(rgba), torch.full((1, 2, 3), 0.3))


def test_disparity_map_is_stretched_and_depth_map_inverted():
    ramp = _ramp()
    d = depth_map_to_disparity(ramp)
    torch.testing.assert_close(d[0, 0], torch.linspace(0, 1, 5))
    inv = depth_map_to_disparity(ramp, invert=True)
    torch.testing.assert_close(inv[0, 0], torch.linspace(1, 0, 5))


def test_no_normalisation_only_clamps():
    m = torch.tensor([[[-0.5, 0.25, 1.5]]])
    torch.testing.assert_close(depth_map_to_disparity(m, normalization="none"), torch.tensor([[[0.0, 0.25, 1.0]]]))
    torch.testing.assert_close(
        depth_map_to_disparity(m, normalization="none", invert=True), torch.tensor([[[1.0, 0.75, 0.0]]])
    )


def test_per_batch_keeps_relative_scale_between_frames():
    frames = torch.stack([_ramp()[0], _ramp()[0] * 0.5])
    d = depth_map_to_disparity(frames, normalization="per batch")
    assert d[0].max() == 1.0 and d[1].max() < 0.5
    each = depth_map_to_disparity(frames, normalization="per image")
    assert each[1].max() == 1.0


def test_gamma_and_resize():
    d = depth_map_to_disparity(_ramp(), gamma=2.0, height=8, width=10)
    assert d.shape == (1, 8, 10)
    plain = depth_map_to_disparity(_ramp(), height=8, width=10)
    torch.testing.assert_close(d, plain**2)


def test_blur_keeps_flat_maps_and_mean():
    flat = torch.full((1, 6, 7), 0.4)
    torch.testing.assert_close(gaussian_blur(flat, 2.0), flat)
    step = torch.zeros(1, 9, 9)
    step[..., 5:] = 1.0
    blurred = gaussian_blur(step, 1.0)
    assert 0 < blurred[0, 4, 4] < 0.5 < blurred[0, 4, 5] < 1
    torch.testing.assert_close(gaussian_blur(step, 0.0), step)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(depth=torch.rand(1, 4, 4, 2)), "2 channels"),
        (dict(depth=torch.zeros(0, 4, 4)), "empty"),
        (dict(depth=torch.full((1, 4, 4), float("nan"))), "NaN"),
        (dict(depth=torch.rand(1, 4, 4), gamma=0.0), "gamma"),
        (dict(depth=torch.rand(1, 4, 4), normalization="global"), "normalization"),
    ],
)
def test_bad_maps_get_clear_errors(kwargs, match):
    depth = kwargs.pop("depth")
    with pytest.raises(ValueError, match=match):
        depth_map_to_disparity(depth, **kwargs)


def test_depth_conversion_is_the_reciprocal_normalised():
    """The issue's example: Z = 1, 2, 5, 10 -> (1/Z - 1/10) / (1/1 - 1/10)."""
    z = torch.tensor([[[1.0, 2.0, 5.0, 10.0]]])
    d = depth_map_to_disparity(z, conversion="depth")
    torch.testing.assert_close(d, torch.tensor([[[1.0, 4 / 9, 1 / 9, 0.0]]]))
    linear = depth_map_to_disparity(z, invert=True)
    torch.testing.assert_close(linear, torch.tensor([[[1.0, 8 / 9, 5 / 9, 0.0]]]))
    # invert does not apply to true depth: the map is depth by definition.
    torch.testing.assert_close(depth_map_to_disparity(z, conversion="depth", invert=True), d)


def test_depth_conversion_is_scale_free_and_clips_near():
    z = torch.tensor([[[1.0, 2.0, 5.0, 10.0]]])
    torch.testing.assert_close(
        depth_map_to_disparity(z * 7.5, conversion="depth"), depth_map_to_disparity(z, conversion="depth")
    )
    zero = torch.tensor([[[0.0, 2.0, 5.0, 10.0]]])
    clipped = depth_map_to_disparity(zero, conversion="depth", near_clip=2.0)
    torch.testing.assert_close(clipped, torch.tensor([[[1.0, 1.0, 0.25, 0.0]]]))


def test_depth_conversion_without_normalisation_is_absolute():
    z = torch.tensor([[[0.5, 1.0, 4.0]]])
    d = depth_map_to_disparity(z, conversion="depth", normalization="none", near_clip=1.0)
    torch.testing.assert_close(d, torch.tensor([[[1.0, 1.0, 0.25]]]))


def test_depth_conversion_per_batch_shares_one_scale():
    z = torch.tensor([[[1.0, 2.0]], [[2.0, 4.0]]])
    d = depth_map_to_disparity(z, conversion="depth", normalization="per batch")
    # 1/Z: [1, .5], [.5, .25]; batch range .25..1
    torch.testing.assert_close(d, torch.tensor([[[1.0, 1 / 3]], [[1 / 3, 0.0]]]))


def test_temporal_smoothing_keeps_still_video_and_damps_flicker():
    still = _ramp(b=5)
    torch.testing.assert_close(depth_map_to_disparity(still, temporal_smoothing=0.8), depth_map_to_disparity(still))
    flicker = torch.stack([_ramp()[0] * (1.0 if i % 2 else 0.8) for i in range(8)])
    raw = depth_map_to_disparity(flicker, normalization="per batch")
    smooth = depth_map_to_disparity(flicker, normalization="per batch", temporal_smoothing=0.6)
    step = lambda m: (m[1:] - m[:-1]).abs().amax()  # noqa: E731
    assert step(smooth) < 0.5 * step(raw)
    assert smooth.min() >= raw.min() and smooth.max() <= raw.max()


def test_bad_conversion_options_get_clear_errors():
    with pytest.raises(ValueError, match="conversion"):
        depth_map_to_disparity(torch.rand(1, 4, 4), conversion="log")
    with pytest.raises(ValueError, match="near_clip"):
        depth_map_to_disparity(torch.rand(1, 4, 4), conversion="depth", near_clip=0.0)
    with pytest.raises(ValueError, match="temporal smoothing"):
        depth_map_to_disparity(torch.rand(2, 4, 4), temporal_smoothing=1.0)
