"""The stereo sampling core of stereo_ops.sampling with toy solvers and a toy model (no host).

The toy solvers cover the ways a solver can expose its state: Euler (one model call per step, on
the state), Heun (a corrector call at the next sigma after the step's callback), a two-step
multistep solver (history), one that reports a stale tensor to its callback (like the host's
iPNDM), and one that never calls the model on its state and reports it, scaled, to its callback
(like UniPC).
"""

import math

import pytest
import torch

from stereo_pack.stereo_ops import plan_schedule, prepare_disparity, stereo_pixel_shift
from stereo_pack.stereo_ops.sampling import (
    StereoPass,
    StereoShiftSettings,
    at_callback,
    find_state_calls,
    stereo_sample,
)


def euler(model, x, sigmas, extra_args=None, callback=None, disable=None):
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * x.new_ones(x.shape[0]))
        if callback is not None:
            callback({"i": i, "x": x, "denoised": denoised})
        x = x + (sigmas[i + 1] - sigmas[i]) * (x - denoised) / sigmas[i]
    return x


def heun(model, x, sigmas, extra_args=None, callback=None, disable=None):
    for i in range(len(sigmas) - 1):
        s_in = x.new_ones(x.shape[0])
        denoised = model(x, sigmas[i] * s_in)
        if callback is not None:
            callback({"i": i, "x": x, "denoised": denoised})
        d = (x - denoised) / sigmas[i]
        dt = sigmas[i + 1] - sigmas[i]
        if sigmas[i + 1] == 0:
            x = x + d * dt
            continue
        x_2 = x + d * dt
        d_2 = (x_2 - model(x_2, sigmas[i + 1] * s_in)) / sigmas[i + 1]
        x = x + (d + d_2) / 2 * dt
    return x


def multistep(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """Two-step Adams-Bashforth on the derivative: uses the previous step's prediction."""
    previous = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * x.new_ones(x.shape[0]))
        if callback is not None:
            callback({"i": i, "x": x, "denoised": denoised})
        d = (x - denoised) / sigmas[i]
        slope = d if previous is None else 1.5 * d - 0.5 * previous
        x = x + (sigmas[i + 1] - sigmas[i]) * slope
        previous = d
    return x


def stale_callback(model, x, sigmas, extra_args=None, callback=None, disable=None):
    first = x
    x_next = x
    for i in range(len(sigmas) - 1):
        x_cur = x_next
        denoised = model(x_cur, sigmas[i] * x.new_ones(x.shape[0]))
        if callback is not None:
            callback({"i": i, "x": first, "denoised": denoised})
        x_next = x_cur + (sigmas[i + 1] - sigmas[i]) * (x_cur - denoised) / sigmas[i]
    return x_next


def scaled_state(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """Keeps its state as x / sqrt(1 + sigma^2) and calls the model on copies only."""

    def scale(s):
        return 1.0 / math.sqrt(1.0 + float(s) ** 2)

    y = x * scale(sigmas[0])
    for i in range(len(sigmas) - 1):
        if callback is not None:
            callback({"i": i, "x": y, "denoised": None})
        xi = y / scale(sigmas[i])
        denoised = model(xi * 1.0, sigmas[i] * x.new_ones(x.shape[0]))
        x_next = xi + (sigmas[i + 1] - sigmas[i]) * (xi - denoised) / sigmas[i]
        y = x_next * scale(sigmas[i + 1])
    return y / scale(sigmas[-1])


VP_ACCESS = at_callback(lambda s: 1.0 / math.sqrt(1.0 + s * s), unreachable_tail=1)
SOLVERS = {"euler": euler, "heun": heun, "multistep": multistep, "stale_callback": stale_callback}


def toy_denoiser(x, sigma, **kwargs):
    return torch.tanh(x) * 0.5 + torch.roll(x, 1, dims=-1) * 0.1


class Recorder:
    """An evaluate function over a model: records every call (rows, inputs, info, output)."""

    def __init__(self, model=toy_denoiser):
        self.model = model
        self.calls = []

    def __call__(self, model, calls, kwargs, batch):
        outs = []
        for call in calls:
            out = self.model(call.x, call.sigma)
            self.calls.append({"rows": (call.rows.start, call.rows.stop), "x": call.x.clone(),
                               "sigma": float(call.sigma.reshape(-1)[0]), "info": call.info, "out": out})
            outs.append(out)
        return outs


def _setup(pairs=2, h=6, w=20, steps=10, divergence=20.0, mode="integer", deblur=False, balance=0.0,
           shift_at=0.2, spsmd=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(pairs, 4, h, w, generator=g) * 10.0
    sigmas = torch.linspace(10.0, 0.0, steps + 1)
    disparity = torch.rand(pairs, h * 8, w * 8, generator=g)
    settings = StereoShiftSettings(disparity, divergence, 0.0, mode, balance, deblur)
    schedule = plan_schedule(steps, shift_at, 0.2, spsmd)
    return x, sigmas, settings, schedule


def _run(solver, x, sigmas, settings, schedule, recorder=None, **kw):
    recorder = recorder or Recorder()
    out = stereo_sample(solver, None, x, sigmas, schedule=schedule, settings=settings, evaluate=recorder,
                        extra_args={"seed": 1}, **kw)
    return out, recorder


def _latent_disparity(settings, h, w):
    return prepare_disparity(settings.disparity, h, w, normalize=False)


@pytest.mark.parametrize("name", list(SOLVERS))
def test_the_left_views_are_exactly_the_plain_run(name):
    x, sigmas, settings, schedule = _setup()
    solver = SOLVERS[name]
    plain = solver(toy_denoiser, x, sigmas)
    out, _ = _run(solver, x, sigmas, settings, schedule)
    assert out.shape == (4, *x.shape[1:])
    assert torch.equal(out[:2], plain)


def test_the_left_views_are_exact_for_a_solver_that_keeps_its_state_to_itself():
    x, sigmas, settings, schedule = _setup()
    plain = scaled_state(toy_denoiser, x, sigmas)
    out, _ = _run(scaled_state, x, sigmas, settings, plan_schedule(10, 0.2, 0.2, True, 8), access=VP_ACCESS)
    torch.testing.assert_close(out[:2], plain, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("name", ["euler", "heun", "multistep", "stale_callback"])
def test_the_dry_run_finds_the_call_that_receives_each_state(name):
    x, sigmas, *_ = _setup()
    found = find_state_calls(SOLVERS[name], None, x, sigmas, {})
    per_step = {"euler": 1, "multistep": 1, "stale_callback": 1, "heun": 2}[name]
    expected = [i * per_step for i in range(10)]
    assert found == expected


def test_a_solver_without_model_calls_on_its_state_is_refused_at_the_model_input():
    x, sigmas, settings, schedule = _setup()
    assert find_state_calls(scaled_state, None, x, sigmas, {})[2] is None
    with pytest.raises(ValueError, match="does not pass its state"):
        _run(scaled_state, x, sigmas, settings, schedule)


@pytest.mark.parametrize("name", list(SOLVERS))
def test_only_the_left_views_are_evaluated_before_the_shift_then_both_eyes(name):
    x, sigmas, settings, schedule = _setup(pairs=3)
    _, rec = _run(SOLVERS[name], x, sigmas, settings, schedule)
    shift_sigma = float(sigmas[schedule.shift_step])
    before = [c for c in rec.calls if c["sigma"] > shift_sigma]
    assert before and all(c["rows"] == (0, 3) and c["info"] is None for c in before)
    after = [c for c in rec.calls if c["sigma"] <= shift_sigma and c["info"] is not None]
    roles = [c["info"].role for c in after]
    assert roles == ["left", "right"] * (len(after) // 2)
    assert [c["rows"] for c in after[:2]] == [(0, 3), (3, 6)]
    assert after[0]["info"].store is after[1]["info"].store
    assert after[0]["info"].store is not after[2]["info"].store


def test_joint_mode_evaluates_both_eyes_in_one_marked_call():
    x, sigmas, settings, schedule = _setup(pairs=2)
    _, rec = _run(euler, x, sigmas, settings, schedule, joint=True)
    marked = [c for c in rec.calls if c["info"] is not None]
    assert len(marked) == 10 - schedule.shift_step
    assert all(c["info"] == 2 and c["rows"] == (0, 4) for c in marked)


@pytest.mark.parametrize("name", list(SOLVERS))
@pytest.mark.parametrize("mode", ["integer", "subpixel"])
def test_the_shift_acts_on_the_state_of_the_shift_step(name, mode):
    x, sigmas, settings, schedule = _setup(mode=mode)
    _, rec = _run(SOLVERS[name], x, sigmas, settings, schedule)
    d = _latent_disparity(settings, 6, 20)
    first = [c for c in rec.calls if isinstance(c["info"], StereoPass)][:2]
    left, right = first[0]["x"], first[1]["x"]
    assert first[0]["sigma"] == pytest.approx(float(sigmas[schedule.shift_step]))
    shifted = stereo_pixel_shift(left, d, 20.0, mode=mode)
    assert torch.equal(right, shifted.image)  # holes zero without deblur
    assert (~shifted.filled).any()


@pytest.mark.parametrize("name", list(SOLVERS))
def test_filled_pixels_equal_the_shifted_left_at_every_spsmd_step(name):
    x, sigmas, settings, schedule = _setup(mode="subpixel")
    _, rec = _run(SOLVERS[name], x, sigmas, settings, schedule)
    d = _latent_disparity(settings, 6, 20)
    passes = [c for c in rec.calls if isinstance(c["info"], StereoPass)]
    checked = 0
    for k in schedule.spsmd_steps:
        # the state call is the last one at sigma_k (Heun's corrector of step k - 1 comes first)
        left, right = [(a, b) for a, b in zip(passes[::2], passes[1::2]) if a["sigma"] == float(sigmas[k])][-1]
        assert left["info"].store is right["info"].store
        shifted = stereo_pixel_shift(left["x"], d, 20.0, mode="subpixel")
        f = shifted.filled.unsqueeze(1).expand_as(right["x"])
        assert torch.equal(right["x"][f], shifted.image[f])
        assert not torch.equal(right["x"][~f], shifted.image[~f])  # the holes keep the model's values
        checked += 1
    assert checked >= len(schedule.spsmd_steps)


def test_the_callback_state_solver_is_edited_in_its_own_scale():
    x, sigmas, settings, _ = _setup(mode="integer", deblur=True)
    schedule = plan_schedule(10, 0.2, 0.2, True, 8)
    seen = {}

    def callback(d):
        seen[d["i"]] = d["x"].clone()

    _run(scaled_state, x, sigmas, settings, schedule, access=VP_ACCESS, callback=callback)
    k = schedule.shift_step
    state = seen[k]
    d = _latent_disparity(settings, 6, 20)
    shifted = stereo_pixel_shift(state[:2], d, 20.0, mode="integer")
    f = shifted.filled.unsqueeze(1).expand_as(shifted.image)
    assert torch.equal(state[2:][f], shifted.image[f])
    sigma = float(sigmas[k])
    holes = state[2:][~f]
    # deblur noise at this sigma, in the solver's scale
    assert holes.numel() > 20
    assert 0.6 < float(holes.std()) / (sigma / math.sqrt(1 + sigma * sigma)) < 1.4


def test_deblur_seeds_the_holes_with_noise_at_the_shift_sigma():
    x, sigmas, settings, schedule = _setup(deblur=True, divergence=30.0)
    _, rec = _run(euler, x, sigmas, settings, schedule)
    d = _latent_disparity(settings, 6, 20)
    left, right = [c for c in rec.calls if isinstance(c["info"], StereoPass)][:2]
    shifted = stereo_pixel_shift(left["x"], d, 30.0, mode="integer")
    holes = (~shifted.filled).unsqueeze(1).expand_as(shifted.image)
    values = right["x"][holes]
    assert values.numel() > 50
    sigma = float(sigmas[schedule.shift_step])
    assert 0.7 * sigma < values.std() < 1.3 * sigma


def test_deblur_uses_the_models_own_noise_parameterisation():
    x, sigmas, settings, schedule = _setup(deblur=True, divergence=30.0)
    _, rec = _run(euler, x, sigmas, settings, schedule, fill_noise=lambda sigma, noise: noise * 0.0 + 7.0)
    d = _latent_disparity(settings, 6, 20)
    left, right = [c for c in rec.calls if isinstance(c["info"], StereoPass)][:2]
    holes = (~stereo_pixel_shift(left["x"], d, 30.0, mode="integer").filled).unsqueeze(1).expand_as(left["x"])
    assert torch.all(right["x"][holes] == 7.0)


def test_before_the_shift_the_right_prediction_is_the_shifted_left_one():
    x, sigmas, settings, schedule = _setup(mode="subpixel")
    d = _latent_disparity(settings, 6, 20)
    predictions = []

    def callback(data):
        predictions.append(data["denoised"])

    _run(euler, x, sigmas, settings, schedule, callback=callback)
    before = predictions[0]
    assert torch.equal(before[2:], stereo_pixel_shift(before[:2], d, 20.0, mode="subpixel").image)


def _linear_denoiser(x, sigma, **kwargs):
    # the same linear map at every pixel: the flow commutes with any warp of the image
    s = sigma.reshape(-1)[0]
    return x * (0.3 / (1.0 + s))


@pytest.mark.parametrize("name", list(SOLVERS) + ["scaled_state"])
@pytest.mark.parametrize("mode", ["integer", "subpixel"])
def test_with_a_pixelwise_linear_model_the_right_eye_is_exactly_the_shifted_left(name, mode):
    # Edits that act on the state at the right moment, with a multistep history that agrees with the
    # shifted state, make the right view the exact shift of the left one where the shift filled it.
    x, sigmas, settings, schedule = _setup(mode=mode, steps=12)
    solver = scaled_state if name == "scaled_state" else SOLVERS[name]
    extra = {"access": VP_ACCESS} if name == "scaled_state" else {}
    if name == "scaled_state":
        schedule = plan_schedule(12, 0.2, 0.2, True, 10)
    out, _ = _run(solver, x, sigmas, settings, schedule, recorder=Recorder(_linear_denoiser), **extra)
    d = _latent_disparity(settings, 6, 20)
    shifted = stereo_pixel_shift(out[:2], d, 20.0, mode=mode)
    f = shifted.filled.unsqueeze(1).expand_as(shifted.image)
    torch.testing.assert_close(out[2:][f], shifted.image[f], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(SOLVERS))
def test_divergence_zero_gives_identical_eyes(name):
    x, sigmas, settings, schedule = _setup(divergence=0.0, deblur=True)
    out, _ = _run(SOLVERS[name], x, sigmas, settings, schedule)
    assert torch.equal(out[:2], out[2:])


def test_paired_noise_gives_each_right_view_its_left_views_noise():
    from stereo_pack.stereo_ops.sampling import PairedNoise

    g = torch.Generator().manual_seed(3)
    paired = PairedNoise(lambda s, sn: torch.randn(2, 4, 3, 3, generator=g))
    n = paired(1.0, 0.5)
    assert n.shape == (4, 4, 3, 3) and torch.equal(n[:2], n[2:])


def test_start_latent_replaces_the_initial_states():
    x, sigmas, settings, schedule = _setup()
    start = torch.full_like(x, 0.25)
    _, rec = _run(euler, x, sigmas, settings, schedule, start=start)
    assert torch.equal(rec.calls[0]["x"], start)


def test_the_first_left_prediction_goes_to_the_check():
    x, sigmas, settings, schedule = _setup()
    seen = []
    _, rec = _run(euler, x, sigmas, settings, schedule, check_first_left=seen.append)
    assert len(seen) == 1 and torch.equal(seen[0], rec.calls[0]["out"])


def test_balanced_shift_moves_both_eyes_and_keeps_them_finite():
    x, sigmas, settings, schedule = _setup(balance=0.5)
    plain = euler(toy_denoiser, x, sigmas)
    out, rec = _run(euler, x, sigmas, settings, schedule)
    assert not torch.equal(out[:2], plain)  # the left eye was warped too
    assert torch.isfinite(out).all()


def test_wrong_schedule_or_unreachable_steps_are_refused():
    x, sigmas, settings, _ = _setup(steps=5)
    with pytest.raises(ValueError, match="schedule planned"):
        _run(euler, x, sigmas, settings, plan_schedule(4))
    with pytest.raises(ValueError, match="up to step 3"):
        _run(scaled_state, x, sigmas, settings, plan_schedule(5, 1.0), access=VP_ACCESS)


class Estimator:
    """Disparity from a left prediction: records its inputs, gives a different map each time."""

    def __init__(self):
        self.seen = []

    def __call__(self, prediction):
        self.seen.append(prediction.clone())
        g = torch.Generator().manual_seed(len(self.seen))
        return torch.rand(prediction.shape[0], prediction.shape[2] * 8, prediction.shape[3] * 8, generator=g)


@pytest.mark.parametrize("refresh", [False, True])
def test_the_disparity_is_estimated_from_the_latest_left_prediction(refresh):
    x, sigmas, settings, schedule = _setup(mode="integer")
    one_pass = StereoShiftSettings(None, 20.0, 0.0, "integer", 0.0, False)
    estimator, predictions = Estimator(), []
    _, rec = _run(euler, x, sigmas, one_pass, schedule, estimate=estimator, refresh=refresh,
                  callback=lambda d: predictions.append(d["denoised"][:2].clone()))
    k = schedule.shift_step
    edit_steps = [k, *schedule.spsmd_steps] if refresh else [k]
    assert len(estimator.seen) == len(edit_steps)
    for seen, step in zip(estimator.seen, edit_steps):
        assert torch.equal(seen, predictions[step - 1])  # the prediction of the step before the edit
    # each estimate is the map of its edit: the shift uses the first, SPSMD the latest
    passes = [c for c in rec.calls if isinstance(c["info"], StereoPass)]
    for n, step in enumerate(edit_steps):
        g = torch.Generator().manual_seed(n + 1)
        d = prepare_disparity(torch.rand(2, 48, 160, generator=g), 6, 20, normalize=False)
        left, right = [(a, b) for a, b in zip(passes[::2], passes[1::2]) if a["sigma"] == float(sigmas[step])][-1]
        shifted = stereo_pixel_shift(left["x"], d, 20.0, mode="integer")
        f = shifted.filled.unsqueeze(1).expand_as(right["x"])
        assert torch.equal(right["x"][f], shifted.image[f])


def test_a_given_disparity_wins_over_the_estimate():
    x, sigmas, settings, schedule = _setup()
    estimator = Estimator()
    given, _ = _run(euler, x, sigmas, settings, schedule, estimate=estimator)
    plain, _ = _run(euler, x, sigmas, settings, schedule)
    assert estimator.seen == [] and torch.equal(given, plain)


def test_no_disparity_and_no_estimate_is_refused():
    x, sigmas, _, schedule = _setup()
    with pytest.raises(ValueError, match="disparity map or a way to estimate"):
        _run(euler, x, sigmas, StereoShiftSettings(None, 20.0), schedule)
