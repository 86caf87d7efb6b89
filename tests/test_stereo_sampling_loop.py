"""The segmented stereo loop of stereo_ops.sampling, with a recording toy sampler (no host)."""

import pytest
import torch

from stereo_pack.stereo_ops import plan_schedule, stereo_pixel_shift
from stereo_pack.stereo_ops.sampling import StereoShiftSettings, stereo_sample


class Recorder:
    """A toy Euler sampler over a toy denoiser that records every segment it is asked to run."""

    def __init__(self):
        self.calls = []

    def __call__(self, model, x, sigmas, extra_args=None, callback=None, disable=None):
        self.calls.append({"x": x.clone(), "sigmas": sigmas.clone(), "args": extra_args, "model": model})
        for i in range(len(sigmas) - 1):
            denoised = model(x, sigmas[i])
            x = x + (sigmas[i + 1] - sigmas[i]) * (x - denoised) / sigmas[i]
            if callback is not None:
                callback({"i": i, "x": x, "denoised": denoised})
        return x


def toy_denoiser(x, sigma, **kwargs):
    return torch.tanh(x) * 0.5 + torch.roll(x, 1, dims=-1) * 0.1


def _run(steps=10, pairs=2, divergence=20.0, balance=0.0, mode="integer", deblur=False, h=6, w=20, **kw):
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(pairs, 4, h, w, generator=g)
    x = torch.cat([noise, torch.randn(pairs, 4, h, w, generator=g)])  # right noise is irrelevant
    sigmas = torch.linspace(10.0, 0.0, steps + 1)
    disparity = torch.rand(pairs, h * 8, w * 8, generator=g)
    settings = StereoShiftSettings(disparity, divergence, 0.0, mode, balance, deblur)
    schedule = plan_schedule(steps, kw.pop("shift_at", 0.2), kw.pop("spsmd_interval", 0.2), kw.pop("spsmd", True))
    rec = Recorder()
    seen_i = []
    marks = []

    def restrict(model, args, rows):
        return model, {**args, "rows": (rows.start, rows.stop)}

    def mark(args, info):
        marks.append(info)
        return {**args, "info": info}

    out = stereo_sample(
        rec, toy_denoiser, x, sigmas, schedule=schedule, settings=settings, restrict=restrict,
        mark=mark, extra_args={"seed": 1}, callback=lambda d: seen_i.append(d["i"]), **kw,
    )
    return out, rec, schedule, settings, seen_i, marks, sigmas


def test_segments_follow_the_schedule_and_the_callback_counts_every_step():
    out, rec, schedule, _, seen_i, marks, sigmas = _run(steps=10)
    assert schedule.shift_step == 2 and schedule.spsmd_steps == (4, 6, 8)
    starts = [0, 2, 4, 6, 8]
    assert [len(c["sigmas"]) - 1 for c in rec.calls] == [2, 2, 2, 2, 2]
    for c, a in zip(rec.calls, starts):
        assert torch.equal(c["sigmas"][0], sigmas[a])
    assert seen_i == list(range(10))
    assert out.shape == (4, 4, 6, 20)


def test_the_first_segment_runs_on_the_left_views_only_then_each_eye_is_its_own_call():
    _, rec, _, _, _, marks, _ = _run(pairs=3)
    first = rec.calls[0]
    assert first["x"].shape[0] == 3 and first["args"]["rows"] == (0, 3)
    assert all(c["x"].shape[0] == 6 for c in rec.calls[1:])
    # after the shift every model call is a left pass then a right pass sharing one store
    roles = [m.role for m in marks]
    assert roles[:4] == ["left", "right", "left", "right"] and len(roles) == 2 * 8
    assert marks[0].store is marks[1].store and marks[0].store is not marks[2].store


def test_joint_mode_evaluates_both_eyes_in_one_marked_call():
    _, rec, _, _, _, marks, _ = _run(pairs=2, joint=True)
    assert marks == [2] * 8


def test_right_equals_the_shifted_left_right_after_the_shift():
    _, rec, _, settings, _, _, _ = _run(mode="integer")
    first, second = rec.calls[0], rec.calls[1]
    left_at_shift = second["x"][:2]
    # the left state handed on is the first segment's result, untouched
    expected_left = Recorder()(toy_denoiser, first["x"], first["sigmas"])
    assert torch.equal(left_at_shift, expected_left)
    from stereo_pack.stereo_ops import prepare_disparity
    d = prepare_disparity(settings.disparity, 6, 20, normalize=False)
    shifted = stereo_pixel_shift(left_at_shift, d, 20.0, mode="integer")
    assert torch.equal(second["x"][2:], shifted.image)
    assert (~shifted.filled).any()


def test_filled_region_equals_the_shifted_left_after_each_spsmd_step():
    _, rec, schedule, settings, _, _, _ = _run(mode="subpixel")
    from stereo_pack.stereo_ops import prepare_disparity
    d = prepare_disparity(settings.disparity, 6, 20, normalize=False)
    for call in rec.calls[2:]:
        lefts, rights = call["x"][:2], call["x"][2:]
        shifted = stereo_pixel_shift(lefts, d, 20.0, mode="subpixel")
        f = shifted.filled.unsqueeze(1).expand_as(rights)
        assert torch.equal(rights[f], shifted.image[f])
        assert not torch.equal(rights[~f], shifted.image[~f])  # holes keep the model's own values


def test_deblur_seeds_the_holes_with_noise_at_the_shift_sigma():
    _, rec, schedule, settings, _, _, sigmas = _run(deblur=True, divergence=30.0)
    from stereo_pack.stereo_ops import prepare_disparity
    second = rec.calls[1]
    d = prepare_disparity(settings.disparity, 6, 20, normalize=False)
    shifted = stereo_pixel_shift(second["x"][:2], d, 30.0, mode="integer")
    holes = (~shifted.filled).unsqueeze(1).expand_as(shifted.image)
    hole_values = second["x"][2:][holes]
    assert hole_values.numel() > 50
    sigma = float(sigmas[schedule.shift_step])
    assert 0.7 * sigma < hole_values.std() < 1.3 * sigma


def test_divergence_zero_gives_identical_eyes():
    out, *_ = _run(divergence=0.0)
    assert torch.equal(out[:2], out[2:])


def test_start_latent_replaces_the_left_views():
    start = torch.full((2, 4, 6, 20), 0.25)
    _, rec, *_ = _run(start=start)
    assert torch.equal(rec.calls[0]["x"], start)


def test_balanced_shift_moves_both_eyes_and_spsmd_keeps_them_consistent():
    out, rec, *_ = _run(balance=0.5, divergence=20.0, mode="integer")
    second = rec.calls[1]
    first_result = Recorder()(toy_denoiser, rec.calls[0]["x"], rec.calls[0]["sigmas"])
    assert not torch.equal(second["x"][:2], first_result)  # the left eye was warped too
    assert torch.isfinite(out).all()


def test_wrong_schedule_or_batch_is_refused():
    with pytest.raises(ValueError, match="schedule planned"):
        stereo_sample(Recorder(), toy_denoiser, torch.zeros(2, 4, 4, 4), torch.linspace(1, 0, 6),
                      schedule=plan_schedule(4), settings=StereoShiftSettings(torch.zeros(4, 4), 5.0),
                      restrict=lambda m, a, r: (m, a), mark=lambda a, i: a)
    with pytest.raises(ValueError, match="stereo batch"):
        stereo_sample(Recorder(), toy_denoiser, torch.zeros(3, 4, 4, 4), torch.linspace(1, 0, 5),
                      schedule=plan_schedule(4), settings=StereoShiftSettings(torch.zeros(4, 4), 5.0),
                      restrict=lambda m, a, r: (m, a), mark=lambda a, i: a)
