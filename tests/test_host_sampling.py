"""StereoKSampler, StereoSampler and StereoAttentionPatch in the real host with tiny models."""

import pytest
import torch

from host_harness import tiny_conditioning, tiny_model

pytestmark = pytest.mark.usefixtures("pack")

SAMPLERS = ["euler", "ddim", "dpmpp_2m", "euler_ancestral", "dpmpp_2m_sde", "lcm"]


def _node(name):
    import nodes

    return nodes.NODE_CLASS_MAPPINGS[name]


def _stereo(model, kind="sd15", latent=None, disparity=None, **kw):
    latent = {"samples": torch.zeros(1, 4, 8, 8)} if latent is None else latent
    n = latent["samples"].shape[0]
    if disparity is None:
        g = torch.Generator().manual_seed(5)
        disparity = torch.rand(1, latent["samples"].shape[2] * 8, latent["samples"].shape[3] * 8, generator=g)
    args = dict(
        model=model, positive=tiny_conditioning(kind, seed=1), negative=tiny_conditioning(kind, seed=2),
        latent_image=latent, disparity=disparity, divergence=20.0, convergence=0.0, subpixel=True,
        balance=0.0, shift_at=0.2, spsmd=True, spsmd_interval=0.2, deblur=True, seed=42, steps=10, cfg=5.0,
        sampler_name="euler", scheduler="normal", denoise=1.0,
    )
    args.update(kw)
    out = _node("StereoKSampler").execute(**args).result[0]["samples"]
    assert out.shape[0] == 2 * n
    return out


def _plain(model, kind="sd15", latent=None, **kw):
    import nodes

    latent = {"samples": torch.zeros(1, 4, 8, 8)} if latent is None else latent
    args = dict(seed=42, steps=10, cfg=5.0, sampler_name="euler", scheduler="normal", denoise=1.0)
    args.update(kw)
    return nodes.common_ksampler(
        model, args["seed"], args["steps"], args["cfg"], args["sampler_name"], args["scheduler"],
        tiny_conditioning(kind, seed=1), tiny_conditioning(kind, seed=2), latent, denoise=args["denoise"],
    )[0]["samples"]


def _patched(model, mode="unidirectional", start=0.0, end=1.0):
    return _node("StereoAttentionPatch").execute(model=model, mode=mode, start_percent=start, end_percent=end).result[0]


@pytest.mark.parametrize("kind", ["sd15", "sdxl"])
def test_divergence_zero_without_patch_gives_identical_eyes(kind, tiny_sd15, tiny_sdxl):
    model = tiny_sd15 if kind == "sd15" else tiny_sdxl
    out = _stereo(model, kind, divergence=0.0)
    assert torch.equal(out[:1], out[1:])


@pytest.mark.parametrize("kind", ["sd15", "sdxl"])
def test_unidirectional_patch_leaves_the_left_bit_identical_to_a_plain_ksampler(kind, tiny_sd15, tiny_sdxl):
    model = tiny_sd15 if kind == "sd15" else tiny_sdxl
    plain = _plain(model, kind)
    stereo = _stereo(_patched(model), kind)
    assert torch.equal(stereo[:1], plain)
    assert not torch.equal(stereo[1:], stereo[:1])


def test_attention_modes_change_the_right_eye_and_bidirectional_changes_both(tiny_sd15):
    base = _stereo(tiny_sd15)
    uni = _stereo(_patched(tiny_sd15, "unidirectional"))
    bi = _stereo(_patched(tiny_sd15, "bidirectional"))
    assert torch.equal(uni[:1], base[:1]) and not torch.equal(uni[1:], base[1:])
    assert not torch.equal(bi[:1], base[:1]) and not torch.equal(bi[1:], base[1:])
    # an empty active window is no sharing at all (up to the rounding of a joint batch)
    off = _stereo(_patched(tiny_sd15, "bidirectional", 0.5, 0.5))
    mid = _stereo(_patched(tiny_sd15, "bidirectional", 0.3, 0.6))
    assert (off - base).abs().max() / base.abs().max() < 1e-4
    assert (mid - base).abs().max() > 100 * (off - base).abs().max()


def test_patch_leaves_the_input_model_alone_and_chains_with_other_patches(tiny_sd15):
    seen = []

    def other(n, context, value, extra_options):
        seen.append(context.shape[1])
        return n, context, value

    before = dict(tiny_sd15.model_options["transformer_options"].get("patches", {}))
    chained = tiny_sd15.clone()
    chained.set_model_attn1_patch(other)
    chained.set_model_attn2_patch(lambda n, c, v, e: (n, c, v))
    patched = _patched(chained, "bidirectional")
    assert tiny_sd15.model_options["transformer_options"].get("patches", {}) == before
    patches = patched.model_options["transformer_options"]["patches"]
    assert patches["attn1_patch"][0] is other and len(patches["attn1_patch"]) == 2
    assert len(patches["attn2_patch"]) == 1
    _stereo(patched)
    assert seen  # the earlier patch still runs


@pytest.mark.parametrize("cfg", [1.0, 5.0])
def test_patch_handles_cfg_one_and_several_conds_with_three_pairs(tiny_sd15, cfg):
    import node_helpers  # noqa: F401  (host module: conditioning helpers exist)

    latent = {"samples": torch.zeros(3, 4, 8, 8)}
    positive = tiny_conditioning("sd15", seed=1) + tiny_conditioning("sd15", seed=3)
    model = _patched(tiny_sd15)
    out = _stereo(model, latent=latent, cfg=cfg, positive=positive, disparity=torch.rand(3, 32, 32))
    plain = _node("StereoKSampler").execute  # noqa: F841
    assert out.shape == (6, 4, 8, 8) and torch.isfinite(out).all()
    # the lefts equal a run without the patch: the patch never touches them
    ref = _stereo(tiny_sd15, latent=latent, cfg=cfg, positive=positive, disparity=torch.rand(3, 32, 32), divergence=20.0)
    assert torch.equal(out[:3], ref[:3])


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("steps", [4, 20, 50])
def test_every_supported_sampler_and_step_count(tiny_sd15, sampler, steps):
    zero = _stereo(tiny_sd15, sampler_name=sampler, steps=steps, divergence=0.0)
    assert torch.equal(zero[:1], zero[1:]), "divergence 0 must give identical eyes"
    out = _stereo(tiny_sd15, sampler_name=sampler, steps=steps)
    assert torch.isfinite(out).all() and not torch.equal(out[:1], out[1:])


def test_three_pairs_non_square_and_partial_denoise(tiny_sd15):
    g = torch.Generator().manual_seed(3)
    latent = {"samples": torch.randn(3, 4, 6, 10, generator=g)}
    disparity = torch.rand(3, 48, 80, generator=g)
    out = _stereo(tiny_sd15, latent=latent, disparity=disparity, denoise=0.6)
    assert out.shape == (6, 4, 6, 10)
    zero = _stereo(tiny_sd15, latent=latent, disparity=disparity, denoise=0.6, divergence=0.0)
    assert torch.equal(zero[:3], zero[3:])
    plain = _plain(tiny_sd15, latent=latent, denoise=0.6)
    patched = _stereo(_patched(tiny_sd15), latent=latent, disparity=disparity, denoise=0.6)
    assert torch.equal(patched[:3], plain)


class _SpyEuler:
    def __init__(self, monkeypatch):
        import comfy.k_diffusion.sampling as kd

        self.calls = []
        original = kd.sample_euler

        def spy(model, x, sigmas, *args, **kwargs):
            self.calls.append((x.clone(), sigmas.clone()))
            return original(model, x, sigmas, *args, **kwargs)

        monkeypatch.setattr(kd, "sample_euler", spy)


@pytest.mark.parametrize("subpixel", [False, True])
def test_shift_and_spsmd_act_on_the_solver_state_in_the_host(tiny_sd15, monkeypatch, subpixel):
    from stereo_pack.stereo_ops import prepare_disparity, stereo_pixel_shift

    spy = _SpyEuler(monkeypatch)
    disparity = torch.rand(1, 64, 96, generator=torch.Generator().manual_seed(9))
    _stereo(tiny_sd15, latent={"samples": torch.zeros(1, 4, 8, 12)}, disparity=disparity,
            steps=20, deblur=False, subpixel=subpixel)
    mode = "subpixel" if subpixel else "integer"
    d = prepare_disparity(disparity, 8, 12, normalize=False)
    assert [len(s) - 1 for _, s in spy.calls] == [4, 4, 4, 4, 4]  # shift at 4, SPSMD at 8, 12, 16
    assert spy.calls[0][0].shape[0] == 1  # the left alone before the shift
    x, _ = spy.calls[1]
    shifted = stereo_pixel_shift(x[:1], d, 20.0, mode=mode)
    assert torch.equal(x[1:], shifted.image)
    for x, _ in spy.calls[2:]:
        shifted = stereo_pixel_shift(x[:1], d, 20.0, mode=mode)
        f = shifted.filled.unsqueeze(1).expand_as(shifted.image)
        assert torch.equal(x[1:][f], shifted.image[f])


def test_stereo_sampler_in_sampler_custom_advanced(tiny_sd15):
    import comfy.sample
    import comfy.samplers

    disparity = torch.rand(1, 64, 64)
    sampler = _node("StereoSampler").execute(
        sampler_name="dpmpp_2m", disparity=disparity, divergence=0.0, convergence=0.0, subpixel=True,
        balance=0.0, shift_at=0.2, spsmd=True, spsmd_interval=0.2, deblur=True,
    ).result[0]
    sigmas = comfy.samplers.calculate_sigmas(tiny_sd15.get_model_object("model_sampling"), "karras", 12)
    latent = torch.zeros(2, 4, 8, 8)  # Repeat Latent Batch x2 of one image
    noise = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))  # any noise
    out = comfy.sample.sample_custom(tiny_sd15, noise, 5.0, sampler, sigmas, tiny_conditioning(seed=1),
                                     tiny_conditioning(seed=2), latent, seed=1)
    assert torch.equal(out[0], out[1])


def test_v_prediction_sd2_model_runs(host):
    model = tiny_model("sd20", prediction="v")
    out = _stereo(_patched(model, "bidirectional"))
    assert torch.isfinite(out).all()


def test_bad_inputs_get_clear_errors(tiny_sd15):
    with pytest.raises(ValueError, match="disparity has 2 maps but latent_image has 3"):
        _stereo(tiny_sd15, latent={"samples": torch.zeros(3, 4, 8, 8)}, disparity=torch.rand(2, 8, 8))
    with pytest.raises(ValueError, match="at least 2"):
        _stereo(tiny_sd15, steps=1)
    with pytest.raises(ValueError, match="dpm_adaptive.*Supported samplers: .*euler"):
        _stereo(tiny_sd15, sampler_name="dpm_adaptive")
    with pytest.raises(ValueError, match="unknown sampler_name"):
        _stereo(tiny_sd15, sampler_name="nope")
    with pytest.raises(ValueError, match="start_percent"):
        _patched(tiny_sd15, start=0.8, end=0.2)


def test_patch_refuses_models_without_unet_attention(tiny_sd15):
    import copy

    fake = tiny_sd15.clone()
    fake.model = copy.copy(fake.model)
    fake.model.diffusion_model = torch.nn.Linear(2, 2)  # stands in for a Flux / SD3 transformer
    with pytest.raises(ValueError, match="SD1.x, SD2.x, SDXL.*Linear"):
        _patched(fake)
