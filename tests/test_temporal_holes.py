"""temporal_holes: a frame's right-view holes start from the last finished frame's state carried by
the camera's motion, so they change far less from frame to frame; the left views are untouched."""

import pytest
import torch

from stereo_pack.stereo_ops.hole_warm_start import carry, global_shift, hole_flicker, warm_holes


def _texture(h=16, w=24, seed=0):
    return torch.randn(4, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("shift", [(0, 0), (0, 3), (-2, 1), (1, -4)])
def test_global_shift_finds_the_translation_between_two_frames(shift):
    a = _texture()
    b = carry(a, shift)
    assert global_shift(a, b, max_shift=6) == shift
    assert global_shift(torch.zeros(4, 8, 8), torch.zeros(4, 8, 8)) == (0, 0)  # an empty latent: no motion


def test_carry_fills_from_the_border_and_warm_holes_touches_only_holes():
    a = torch.arange(12.0).view(1, 3, 4)
    assert torch.equal(carry(a, (0, 1))[0, 0], torch.tensor([0.0, 0.0, 1.0, 2.0]))
    view, start = torch.zeros(1, 2, 3, 4), torch.ones(1, 2, 3, 4)
    holes = torch.zeros(1, 3, 4, dtype=torch.bool)
    holes[0, 1, 2] = True
    out = warm_holes(view, holes, start)
    assert float(out.sum()) == 2.0 and torch.equal(out[:, :, 1, 2], torch.ones(1, 2))


def test_hole_flicker_compares_holes_after_the_motion():
    frames = torch.stack([carry(_texture(), (0, t)) for t in range(3)])
    holes = torch.ones(3, 16, 24, dtype=torch.bool)
    assert hole_flicker(frames, holes, [(0, 1), (0, 1)]) < 0.2  # only the border column differs
    assert hole_flicker(frames, holes) > 0.5
    with pytest.raises(ValueError, match="no pixel"):
        hole_flicker(frames, torch.zeros(3, 16, 24, dtype=torch.bool))


@pytest.fixture(scope="module")
def smooth_model(pack):
    from testkit.moving_clip import smooth_tiny_sd15

    return smooth_tiny_sd15()


@pytest.mark.parametrize("pan", [0, 4])
def test_holes_flicker_at_most_half_as_much_with_temporal_holes(smooth_model, pan):
    from testkit.moving_clip import hole_run

    run = hole_run(smooth_model, pan_px=pan)
    per_frame, warm = run.flicker(run.per_frame), run.flicker(run.warm)
    assert warm <= 0.5 * per_frame, (warm, per_frame)
    # The left views are the same (another chunk layout: up to the rounding of another batch size).
    frames = run.clip.latents.shape[0]
    scale = float(run.per_frame[:frames].abs().max())
    assert float((run.warm[:frames] - run.per_frame[:frames]).abs().max()) <= 1e-5 * scale
