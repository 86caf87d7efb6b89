"""Flow-matching DiTs in the real host: tiny Flux- and SD3-shaped models with StereoKSampler,
StereoAttentionPatch (joint text+image attention) and inversion."""

from __future__ import annotations

import math

import pytest
import torch

from headless import comfy_host
from testkit import tiny_models
from testkit.tiny_models import tiny_dit_conditioning

pytestmark = pytest.mark.usefixtures("pack")

STEPS = 8
LATENT = (1, 16, 8, 12)  # 4 x 6 image tokens at patch size 2


@pytest.fixture(scope="module")
def dits(host):
    # Built inside inference mode as the host builds checkpoints; a smaller last layer makes the
    # random denoiser smooth like a trained one.
    with torch.inference_mode():
        return {kind: tiny_models.tiny_dit(kind, output_scale=0.3) for kind in ("flux", "sd3")}


def _node(name):
    import nodes

    return nodes.NODE_CLASS_MAPPINGS[name]


def _conds():
    return tiny_dit_conditioning(seed=1), tiny_dit_conditioning(seed=2)


def _stereo(model, pairs=1, positive=None, **kw):
    pos, neg = _conds()
    latent = torch.zeros(pairs, *LATENT[1:])
    g = torch.Generator().manual_seed(5)
    args = dict(
        model=model, positive=positive or pos, negative=neg, latent_image={"samples": latent},
        disparity=torch.rand(1, LATENT[2] * 8, LATENT[3] * 8, generator=g), divergence=20.0, convergence=0.0,
        subpixel=True, balance=0.0, shift_at=0.2, spsmd=True, spsmd_interval=0.2, deblur=True, seed=42,
        steps=STEPS, cfg=1.0, sampler_name="euler", scheduler="simple", denoise=1.0, eyes="separate",
    )
    args.update(kw)
    with torch.inference_mode():
        out = _node("StereoKSampler").execute(**args).result[0]["samples"]
    assert out.shape == (2 * pairs, *LATENT[1:])
    return out


def _plain(model, pairs=1, cfg=1.0, positive=None):
    import nodes

    pos, neg = _conds()
    with torch.inference_mode():
        return nodes.common_ksampler(
            model, 42, STEPS, cfg, "euler", "simple", positive or pos, neg,
            {"samples": torch.zeros(pairs, *LATENT[1:])},
        )[0]["samples"]


def _patched(model, mode="unidirectional", start=0.0, end=1.0):
    return _node("StereoAttentionPatch").execute(model=model, mode=mode, start_percent=start, end_percent=end).result[0]


KINDS_AND_CFGS = [("flux", 1.0), ("flux", 3.5), ("sd3", 1.0), ("sd3", 4.5)]


@pytest.mark.parametrize("kind,cfg", KINDS_AND_CFGS)
@pytest.mark.parametrize("mode", [None, "unidirectional", "bidirectional"])
def test_batched_eyes_share_attention_in_one_call_and_keep_the_left_within_rounding(dits, kind, cfg, mode):
    model = dits[kind] if mode is None else _patched(dits[kind], mode)
    batched = _stereo(model, pairs=2, cfg=cfg, eyes="batched")
    separate = _stereo(model, pairs=2, cfg=cfg, eyes="separate")
    plain = _plain(dits[kind], pairs=2, cfg=cfg)
    scale = float(plain.abs().max())
    if mode != "bidirectional":
        torch.testing.assert_close(batched[:2], plain, rtol=0, atol=1e-4 * scale)
        # one joint call shares attention like the left pass / right pass pair does
        torch.testing.assert_close(batched[2:], separate[2:], rtol=0, atol=1e-3 * scale)
    else:
        torch.testing.assert_close(batched, separate, rtol=0, atol=1e-4 * scale)
    assert not torch.equal(batched[2:], batched[:2])


@pytest.mark.parametrize("kind,cfg", KINDS_AND_CFGS)
def test_stereo_sampling_runs_and_divergence_zero_gives_identical_eyes(dits, kind, cfg):
    out = _stereo(dits[kind], cfg=cfg, divergence=0.0)
    assert torch.isfinite(out).all() and torch.equal(out[:1], out[1:])
    assert torch.equal(out[:1], _plain(dits[kind], cfg=cfg))


@pytest.mark.parametrize("kind,cfg", KINDS_AND_CFGS)
def test_unidirectional_patch_keeps_the_left_bit_identical_and_changes_the_right(dits, kind, cfg):
    base = _stereo(dits[kind], cfg=cfg)
    uni = _stereo(_patched(dits[kind]), cfg=cfg)
    assert torch.equal(uni[:1], _plain(dits[kind], cfg=cfg))
    assert (uni[1:] - base[1:]).abs().max() > 1e-2


@pytest.mark.parametrize("kind,cfg", KINDS_AND_CFGS)
def test_bidirectional_patch_changes_both_eyes_and_identical_eyes_attend_as_one(dits, kind, cfg):
    base = _stereo(dits[kind], cfg=cfg)
    bi = _stereo(_patched(dits[kind], "bidirectional"), cfg=cfg)
    assert (bi[:1] - base[:1]).abs().max() > 1e-2 and (bi[1:] - base[1:]).abs().max() > 1e-2
    # two identical eyes see each other's tokens as copies of their own: nothing changes (up to
    # the rounding of another batch layout)
    zero = _stereo(dits[kind], cfg=cfg, divergence=0.0)
    zero_bi = _stereo(_patched(dits[kind], "bidirectional"), cfg=cfg, divergence=0.0)
    torch.testing.assert_close(zero_bi, zero, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode", ["unidirectional", "bidirectional"])
def test_an_empty_sharing_window_is_no_sharing(dits, mode):
    model = dits["flux"]
    base = _stereo(model)
    off = _stereo(_patched(model, mode, 0.45, 0.45))  # between two steps of the schedule
    mid = _stereo(_patched(model, mode, 0.3, 0.6))
    torch.testing.assert_close(off, base, rtol=1e-4, atol=1e-4)
    assert (mid - base).abs().max() > 100 * (off - base).abs().max()


@pytest.mark.parametrize("cfg", [1.0, 4.5])
def test_three_pairs_and_two_conds_keep_every_left_bit_identical(dits, cfg):
    model = dits["sd3"]
    positive = tiny_dit_conditioning(seed=1) + tiny_dit_conditioning(seed=3)
    out = _stereo(_patched(model), pairs=3, positive=positive, cfg=cfg, disparity=torch.rand(3, 64, 96))
    assert torch.equal(out[:3], _plain(model, pairs=3, cfg=cfg, positive=positive))
    ref = _stereo(model, pairs=3, positive=positive, cfg=cfg, disparity=torch.rand(3, 64, 96))
    assert torch.isfinite(out).all() and (out[3:] - ref[3:]).abs().max() > 1e-2


@pytest.mark.parametrize("mode", ["unidirectional", "bidirectional"])
def test_patch_chains_with_an_attention_override_set_before_it(dits, mode):
    calls = []

    def other(func, *args, **kwargs):
        calls.append(args[0].shape)
        return func(*args, **kwargs)

    model = dits["flux"].clone()
    model.model_options["transformer_options"]["optimized_attention_override"] = other
    patched = _patched(model, mode)
    assert "optimized_attention_override" not in dits["flux"].model_options["transformer_options"]
    assert model.model_options["transformer_options"]["optimized_attention_override"] is other
    out = _stereo(patched)
    # every attention call (two per step and image: the double and the single block) still reached it
    assert len(calls) >= 2 * STEPS
    if mode == "unidirectional":
        assert torch.equal(out[:1], _plain(model))
    assert (out - _stereo(dits["flux"])).abs().max() > 1e-2


def test_patch_on_sampler_custom_advanced_with_stereo_sampler(dits):
    import comfy.samplers
    import comfy.sample

    model = _patched(dits["sd3"], "bidirectional")
    sampler = _node("StereoSampler").execute(
        sampler_name="euler", disparity=torch.rand(1, 64, 96), divergence=20.0, convergence=0.0, subpixel=True,
        balance=0.0, shift_at=0.2, spsmd=True, spsmd_interval=0.2, deblur=True,
    ).result[0]
    pos, neg = _conds()
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "simple", STEPS)
    latent = torch.zeros(2, *LATENT[1:])  # two images: the sampler makes a pair of each
    with torch.inference_mode():
        out = comfy.sample.sample_custom(model, torch.randn_like(latent), 4.5, sampler, sigmas, pos, neg, latent, seed=1)
    assert out.shape == (4, *LATENT[1:]) and torch.isfinite(out).all()


def test_a_stereo_run_whose_attention_bypasses_the_patch_is_refused(dits):
    # A node set after the patch replaced the override without chaining (as an older host
    # whose attention ignores the override would): the eyes would silently not be paired.
    model = _patched(dits["flux"]).clone()
    model.model_options["transformer_options"]["optimized_attention_override"] = lambda f, *a, **k: f(*a, **k)
    with pytest.raises(RuntimeError, match="optimized_attention_override"):
        _stereo(model)


def test_patch_refuses_a_dit_whose_attention_it_cannot_reach(host):
    class OtherDiT(torch.nn.Module):
        pass

    fake = tiny_models.tiny_dit("flux")  # its own: the swap below must not touch the shared models
    fake.model.diffusion_model = OtherDiT()
    with pytest.raises(ValueError, match=r"Flux, SD3.*OtherDiT.*cannot reach"):
        _patched(fake)


# ---------------------------------------------------------------------------------------------
# Inversion through the model's own flow ODE


@pytest.fixture(scope="module")
def rt(pack):
    return comfy_host.pack_module("nodes.inversion_runtime")


def _photo(batch=1, seed=3):
    return torch.randn(batch, *LATENT[1:], generator=torch.Generator().manual_seed(seed))


def _invert(rt, model, method, cfg, photo=None, **kw):
    photo = _photo() if photo is None else photo
    pos, neg = _conds()
    with torch.inference_mode():
        inversion, report = rt.invert(model, pos, neg, photo, STEPS, cfg, method, **kw)
        reconstruction = rt.reconstruct_latent(model, inversion, pos, neg, cfg)
    return inversion, reconstruction, photo


def _psnr(a, b):
    mse = float(((a - b) ** 2).mean())
    peak = float(b.max() - b.min())
    return math.inf if mse == 0 else 10 * math.log10(peak * peak / mse)


@pytest.mark.parametrize("kind,cfg", KINDS_AND_CFGS)
def test_inversion_follows_the_models_own_schedule_and_reconstructs(rt, dits, kind, cfg):
    import comfy.samplers

    model = dits[kind]
    own = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "simple", STEPS).float()
    psnr = {}
    for method in ("ddim", "fixed_point"):
        inversion, reconstruction, photo = _invert(rt, model, method, cfg, fixed_point_iterations=3)
        assert torch.allclose(inversion.sigmas, own) and float(inversion.sigmas[0]) == pytest.approx(1.0)
        psnr[method] = _psnr(reconstruction, photo)
    # Measured (8 steps): fixed_point 65-125 dB, ddim 15-65 dB; before the fix Flux gave -20 dB.
    assert psnr["fixed_point"] > 50
    assert psnr["ddim"] > (35 if cfg == 1.0 else 10)
    assert psnr["fixed_point"] > psnr["ddim"]


def test_null_text_runs_on_a_flow_model_with_an_unconditional_branch(rt, pack, dits):
    _, ddim, photo = _invert(rt, dits["sd3"], "ddim", 4.5)
    ops = comfy_host.pack_module("stereo_ops.inversion")
    settings = ops.NullTextSettings(learning_rate=0.1)
    inversion, null_text, _ = _invert(rt, dits["sd3"], "null_text", 4.5, settings=settings)
    assert len(inversion.uncond_embeddings) == STEPS
    # Measured: ddim 20.7 dB, null_text 23.9 dB (the tiny model's output depends little on its text).
    assert _psnr(null_text, photo) > _psnr(ddim, photo) + 2


def test_null_text_is_refused_without_an_unconditional_branch(rt, dits):
    with pytest.raises(ValueError, match="null_text.*guidance-distilled.*fixed_point"):
        _invert(rt, dits["flux"], "null_text", 3.5)
    with pytest.raises(ValueError, match="null_text.*cfg 1.*fixed_point"):
        _invert(rt, dits["sd3"], "null_text", 1.0)


@pytest.mark.parametrize("kind,cfg", [("flux", 1.0), ("sd3", 4.5)])
def test_photo_to_stereo_reproduces_the_photo_on_the_left(rt, dits, kind, cfg):
    model = _patched(dits[kind])
    inversion, reconstruction, photo = _invert(rt, model, "fixed_point", cfg, photo=_photo(batch=2), fixed_point_iterations=3)
    pos, neg = _conds()
    out = _stereo(model, pairs=2, cfg=cfg, latent_image={"samples": photo}, inversion=inversion,
                  disparity=torch.rand(2, 64, 96))
    assert torch.equal(out[:2], reconstruction)
    assert _psnr(out[:2], photo) > 50
    assert (out[2:] - out[:2]).abs().max() > 1e-2


def test_every_sampler_gives_the_plain_left_view_on_flow_models(dits):
    # Flow models take the RF variants of the ancestral solvers and their own noise scaling.
    import comfy.samplers

    failures = []
    for kind in ("flux", "sd3"):
        for sampler in (s for s in comfy.samplers.SAMPLER_NAMES if s not in ("dpm_fast", "dpm_adaptive")):
            import nodes

            pos, neg = _conds()
            with torch.inference_mode():
                plain = nodes.common_ksampler(dits[kind], 42, 6, 2.0, sampler, "simple", pos, neg,
                                              {"samples": torch.zeros(*LATENT)})[0]["samples"]
            out = _stereo(dits[kind], steps=6, cfg=2.0, sampler_name=sampler)
            same = torch.equal(out[:1].nan_to_num(0.0), plain.nan_to_num(0.0))
            if sampler.startswith("sa_solver"):
                # its own update is a matrix product over the history: another batch size rounds differently
                same = float((out[:1] - plain).abs().max()) <= 1e-5 * float(plain.abs().max())
            if not same or (torch.isfinite(plain).all() and torch.equal(out[1:], out[:1])):
                failures.append((kind, sampler))
    assert not failures


def test_deblur_fills_the_holes_with_the_flow_models_own_noise_level(dits, pack):
    # x = (1 - sigma) x0 + sigma * noise: pure noise at sigma is sigma * noise, as for eps models,
    # and it comes from the model's own noise scaling.
    from headless.comfy_host import pack_module

    runtime = pack_module("nodes.sampling_runtime")

    class ModelK:
        class inner_model:  # noqa: N801  (the host's attribute chain)
            inner_model = dits["flux"].model

    fill = runtime._fill_noise(ModelK)
    noise = torch.randn(2, 16, 4, 4, generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([0.7, 0.7])
    torch.testing.assert_close(fill(sigma, noise), noise * 0.7)
