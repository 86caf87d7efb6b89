"""StereoKSampler, StereoSampler and StereoAttentionPatch in the real host with tiny models."""

import pytest
import torch

from testkit.tiny_models import tiny_conditioning, tiny_model

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
        sampler_name="euler", scheduler="normal", denoise=1.0, eyes="separate",
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


def _record_right_inputs(model):
    """A clone of `model` that records the inputs of the right-eye passes (the stereo pass marks)."""
    from stereo_pack.nodes.stereo_types import STEREO_PASS_OPTION

    seen = []
    patched = model.clone()

    def wrapper(apply_model, args):
        stereo_pass = args["c"].get("transformer_options", {}).get(STEREO_PASS_OPTION)
        seen.append((stereo_pass.role if stereo_pass else None, args["input"].clone(), args["timestep"].clone()))
        return apply_model(args["input"], args["timestep"], **args["c"])

    patched.set_model_unet_function_wrapper(wrapper)
    return patched, seen


@pytest.mark.parametrize("subpixel", [False, True])
@pytest.mark.parametrize("sampler", ["euler", "heun", "dpmpp_2m", "ipndm"])
def test_the_shift_acts_on_the_solver_state_of_the_shift_step_in_the_host(tiny_sd15, subpixel, sampler):
    from stereo_pack.stereo_ops import prepare_disparity, stereo_pixel_shift

    model, seen = _record_right_inputs(tiny_sd15)
    disparity = torch.rand(1, 64, 96, generator=torch.Generator().manual_seed(9))
    _stereo(model, latent={"samples": torch.zeros(1, 4, 8, 12)}, disparity=disparity, steps=20, deblur=False,
            subpixel=subpixel, sampler_name=sampler, cfg=1.0)
    mode = "subpixel" if subpixel else "integer"
    d = prepare_disparity(disparity, 8, 12, normalize=False)
    first_left = next(i for i, (role, _, _) in enumerate(seen) if role == "left")
    assert all(role is None for role, _, _ in seen[:first_left])  # only the left rows before the shift
    (_, left, t_left), (role, right, t_right) = seen[first_left], seen[first_left + 1]
    assert role == "right" and torch.equal(t_left, t_right)
    # cfg 1: one conditioning chunk; the host scales the state by c_in alike for both eyes
    shifted = stereo_pixel_shift(left, d, 20.0, mode=mode)
    torch.testing.assert_close(right, shifted.image, rtol=1e-6, atol=1e-6)


def _custom_advanced(model, sampler, latent, noise_seed=0, sigmas=None):
    import comfy.sample
    import comfy.samplers

    if sigmas is None:
        sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "karras", 12)
    noise = comfy.sample.prepare_noise(latent, noise_seed)
    return comfy.sample.sample_custom(model, noise, 5.0, sampler, sigmas, tiny_conditioning(seed=1),
                                      tiny_conditioning(seed=2), latent, seed=noise_seed)


def test_stereo_sampler_makes_a_pair_of_every_image_and_keeps_the_plain_lefts(tiny_sd15):
    import comfy.samplers

    g = torch.Generator().manual_seed(4)
    latent = torch.randn(2, 4, 8, 8, generator=g)  # two different images, no Repeat Latent Batch
    sigmas = comfy.samplers.calculate_sigmas(tiny_sd15.get_model_object("model_sampling"), "karras", 12)[4:]
    for name in ("dpmpp_2m", "euler_ancestral"):
        sampler = _node("StereoSampler").execute(
            sampler_name=name, disparity=torch.rand(2, 64, 64, generator=g), divergence=20.0, convergence=0.0,
            subpixel=True, balance=0.0, shift_at=0.2, spsmd=True, spsmd_interval=0.2, deblur=True, eyes="separate",
        ).result[0]
        out = _custom_advanced(tiny_sd15, sampler, latent, sigmas=sigmas)
        plain = _custom_advanced(tiny_sd15, comfy.samplers.sampler_object(name), latent, sigmas=sigmas)
        assert out.shape == (4, 4, 8, 8)
        assert torch.equal(out[:2], plain)
        assert not torch.equal(out[2:], out[:2])


def test_stereo_sampler_with_divergence_zero_gives_identical_eyes(tiny_sd15):
    sampler = _node("StereoSampler").execute(
        sampler_name="dpmpp_2m", disparity=torch.rand(1, 64, 64), divergence=0.0, convergence=0.0, subpixel=True,
        balance=0.0, shift_at=0.2, spsmd=True, spsmd_interval=0.2, deblur=True,
    ).result[0]
    out = _custom_advanced(tiny_sd15, sampler, torch.zeros(1, 4, 8, 8))
    assert out.shape == (2, 4, 8, 8) and torch.equal(out[0], out[1])


def test_inpainting_moves_the_kept_area_with_the_stereo_shift(tiny_sd15):
    from stereo_pack.stereo_ops import prepare_disparity, stereo_pixel_shift

    g = torch.Generator().manual_seed(6)
    source = torch.randn(1, 4, 8, 16, generator=g)
    mask = torch.ones(1, 64, 128)
    mask[:, :, :64] = 0.0  # keep the left half of the picture, paint the rest
    disparity = torch.linspace(0, 1, 128).expand(1, 64, 128).clone()
    out = _stereo(tiny_sd15, latent={"samples": source, "noise_mask": mask}, disparity=disparity,
                  divergence=25.0, steps=10, subpixel=False)
    d = prepare_disparity(disparity, 8, 16, normalize=False)
    keep = (1.0 - torch.nn.functional.interpolate(mask[:, None], size=(8, 16), mode="bilinear")).expand(1, 4, 8, 16)
    left_keep = keep > 0.999
    # the left keeps its source as KSampler does (up to the host's latent scaling round trip)
    torch.testing.assert_close(out[:1][left_keep], source[left_keep], rtol=1e-5, atol=1e-6)
    shifted_source = stereo_pixel_shift(source, d, 25.0, mode="integer")
    shifted_keep = stereo_pixel_shift(keep, d, 25.0, mode="integer")
    right_keep = (shifted_keep.image > 0.999) & shifted_keep.filled.unsqueeze(1)
    assert right_keep.sum() > 20
    torch.testing.assert_close(out[1:][right_keep], shifted_source.image[right_keep], rtol=1e-5, atol=1e-6)
    # the kept area has depth: it is not the unshifted source
    assert (out[1:][left_keep] - source[left_keep]).abs().max() > 0.1


def test_v_prediction_sd2_model_runs(host):
    model = tiny_model("sd20", prediction="v")
    out = _stereo(_patched(model, "bidirectional"))
    assert torch.isfinite(out).all()


def test_disparity_outside_zero_to_one_is_refused_with_the_fix(tiny_sd15):
    with pytest.raises(ValueError, match=r"0 to 255.*Depth to Disparity"):
        _stereo(tiny_sd15, disparity=torch.linspace(0, 255, 64 * 64).view(1, 64, 64))
    with pytest.raises(ValueError, match="Depth to Disparity"):
        _node("StereoSampler").execute(
            sampler_name="euler", disparity=torch.full((1, 8, 8), -0.5), divergence=5.0, convergence=0.0,
            subpixel=True, balance=0.0, shift_at=0.2, spsmd=True, spsmd_interval=0.2, deblur=True,
        )


def test_a_four_dimensional_single_channel_map_is_accepted_like_a_mask(tiny_sd15):
    disparity = torch.rand(1, 64, 64, generator=torch.Generator().manual_seed(2))
    as_mask = _stereo(tiny_sd15, disparity=disparity)
    as_4d = _stereo(tiny_sd15, disparity=disparity[:, None])
    assert torch.equal(as_mask, as_4d)


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


def test_patch_refuses_models_without_unet_attention(host):
    fake = tiny_model("sd15")  # its own: swapping the transformer must not touch the shared model
    fake.model.diffusion_model = torch.nn.Linear(2, 2)  # stands in for a transformer it cannot reach
    with pytest.raises(ValueError, match="SD1.x, SD2.x, SDXL.*Linear"):
        _patched(fake)
