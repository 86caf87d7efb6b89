"""The left views of the stereo samplers are the plain KSampler images, for every sampler of the host.

The full matrix (every sampler, several step counts and shift points) runs on a cheap stand-in for
the UNet, put in through the host's own UNet function wrapper: its prediction is elementwise, so a
plain and a stereo run must agree bit for bit whatever the batch layout. The tiny real UNet then
checks every sampler once with the split-eye batch layout, where bit-identity is also expected.
"""

import pytest
import torch

from testkit.tiny_models import tiny_conditioning

pytestmark = pytest.mark.usefixtures("pack")

STEPS = [2, 4, 7, 20, 21]
SHIFT_AT = [0.0, 0.2, 1.0]


def _samplers():
    import comfy.samplers

    return [s for s in comfy.samplers.SAMPLER_NAMES if s not in ("dpm_fast", "dpm_adaptive")]


def _node(name):
    import nodes

    return nodes.NODE_CLASS_MAPPINGS[name]


def _with_prediction(model, prediction):
    """A clone of an eps model whose UNet is replaced by `prediction(x_k, sigma, context)` (a
    denoised estimate), through the host's UNet function wrapper."""
    patched = model.clone()
    sampling = model.get_model_object("model_sampling")

    def wrapper(apply_model, args):
        x_in, t, c = args["input"], args["timestep"], args["c"]
        sigma = sampling.sigma(t).view(-1, 1, 1, 1)
        x = x_in * (sigma**2 + 1.0) ** 0.5  # the host scales the eps model's input by c_in
        context = c["c_crossattn"].float().mean(dim=(1, 2)).view(-1, 1, 1, 1)
        return (x - prediction(x, sigma, context)) / sigma

    patched.set_model_unet_function_wrapper(wrapper)
    return patched


def _nonlinear(x, sigma, context):
    return torch.tanh(x / (1.0 + sigma)) * 0.8 + torch.roll(x, 1, dims=-1) * 0.02 + context


def _zero(x, sigma, context):
    return torch.zeros_like(x)


@pytest.fixture(scope="module")
def cheap_model(tiny_sd15):
    return _with_prediction(tiny_sd15, _nonlinear)


@pytest.fixture(scope="module")
def zero_model(tiny_sd15):
    return _with_prediction(tiny_sd15, _zero)


LATENT = {"samples": torch.zeros(2, 4, 8, 8)}
DISPARITY = torch.rand(2, 64, 64, generator=torch.Generator().manual_seed(5))


def _plain(model, sampler, steps, latent=LATENT, seed=42, cfg=4.0):
    import nodes

    return nodes.common_ksampler(
        model, seed, steps, cfg, sampler, "normal", tiny_conditioning(seed=1), tiny_conditioning(seed=2), latent,
    )[0]["samples"]


def _stereo(model, sampler, steps, shift_at=0.2, divergence=20.0, latent=LATENT, seed=42, cfg=4.0, eyes="separate"):
    return _node("StereoKSampler").execute(
        model=model, positive=tiny_conditioning(seed=1), negative=tiny_conditioning(seed=2), latent_image=latent,
        disparity=DISPARITY, divergence=divergence, convergence=0.0, subpixel=True, balance=0.0,
        shift_at=shift_at, spsmd=True, spsmd_interval=0.2, deblur=True, seed=seed, steps=steps, cfg=cfg,
        sampler_name=sampler, scheduler="normal", denoise=1.0, eyes=eyes,
    ).result[0]["samples"]


def _same(a, b):
    """Bit-identical, NaN included (one host solver produces NaN at some step counts by itself)."""
    return a.shape == b.shape and torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(0.0), b.nan_to_num(0.0))


def _left_matches(sampler, left, plain):
    if _same(left, plain):
        return True
    # sa_solver's own update is a matrix product over the whole batch: another batch size may round
    # differently on another machine (docs/sampling.md states the 1e-5 bound).
    return sampler.startswith("sa_solver") and float((left - plain).abs().max()) <= 1e-5 * float(plain.abs().max())


def _unreachable(sampler, steps):
    # UniPC's last reported state is its final one: it needs one step more than the others.
    return sampler.startswith("uni_pc") and steps < 3


@pytest.mark.parametrize("steps", STEPS)
def test_every_sampler_gives_the_plain_left_view_at_every_shift_point(cheap_model, steps):
    failures = []
    for sampler in _samplers():
        if _unreachable(sampler, steps):
            with pytest.raises(ValueError, match=f"sampler_name '{sampler}'.*at least 3 steps"):
                _stereo(cheap_model, sampler, steps)
            continue
        plain = _plain(cheap_model, sampler, steps)
        for shift_at in SHIFT_AT:
            out = _stereo(cheap_model, sampler, steps, shift_at)
            if out.shape != (4, 4, 8, 8) or not _left_matches(sampler, out[:2], plain):
                failures.append((sampler, shift_at))
            elif torch.isfinite(plain).all() and (not torch.isfinite(out).all() or torch.equal(out[2:], out[:2])):
                failures.append((sampler, shift_at, "right"))
    assert not failures, f"left view differs from the plain KSampler at {steps} steps: {failures}"


@pytest.mark.parametrize("steps", [2, 7, 21])
def test_divergence_zero_gives_identical_eyes_for_every_sampler(cheap_model, steps):
    failures = []
    for sampler in _samplers():
        if _unreachable(sampler, steps):
            continue
        out = _stereo(cheap_model, sampler, steps, divergence=0.0)
        if not _same(out[:2], out[2:]):
            failures.append(sampler)
    assert not failures


@pytest.mark.parametrize("steps", [4, 7, 21])
def test_with_a_zero_denoiser_both_eyes_end_where_the_plain_sampler_ends(zero_model, steps):
    # Every solver ends at its last prediction (zero here); a solver left with a segment it cannot
    # integrate would return its noisy input instead.
    failures = []
    for sampler in _samplers():
        plain = _plain(zero_model, sampler, steps)
        out = _stereo(zero_model, sampler, steps)
        bound = float(plain.abs().max()) * 1.5 + 1e-3
        if not _left_matches(sampler, out[:2], plain) or float(out[2:].abs().max()) > bound:
            failures.append((sampler, float(plain.abs().max()), float(out[2:].abs().max())))
    assert not failures


def test_every_sampler_gives_the_plain_left_view_with_the_real_unet(tiny_sd15):
    failures = []
    for sampler in _samplers():
        plain = _plain(tiny_sd15, sampler, 7)
        out = _stereo(tiny_sd15, sampler, 7)
        if not _left_matches(sampler, out[:2], plain):
            rel = float((out[:2] - plain).abs().max() / plain.abs().max())
            failures.append((sampler, rel))
    assert not failures


def test_batch_index_and_seed_offsets_follow_the_plain_ksampler(cheap_model):
    latent = {"samples": torch.zeros(2, 4, 8, 8), "batch_index": [3, 7]}
    for sampler in ("euler_ancestral", "dpmpp_2m_sde", "dpmpp_sde"):
        plain = _plain(cheap_model, sampler, 7, latent=latent, seed=9)
        out = _stereo(cheap_model, sampler, 7, latent=latent, seed=9)
        assert torch.equal(out[:2], plain), sampler


def test_batched_eyes_keep_the_left_view_within_rounding_for_every_sampler(tiny_sd15):
    # Both eyes in one model call: a batch of 2N rounds differently from KSampler's batch of N.
    failures = []
    for sampler in _samplers():
        plain = _plain(tiny_sd15, sampler, 7)
        out = _stereo(tiny_sd15, sampler, 7, eyes="batched")
        rel = float((out[:2] - plain).abs().max() / plain.abs().max())
        if not rel < BATCHED_TOLERANCE:
            failures.append((sampler, rel))
    assert not failures


# The stated tolerance of the batched mode (docs/sampling.md): relative to the image's largest value.
BATCHED_TOLERANCE = 1e-4
