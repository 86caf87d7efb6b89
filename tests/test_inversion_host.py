"""StereoNullTextInversion and its runtime in the real host, with tiny models.

The tiny UNets are random; their raw output is much rougher in x than a trained denoiser's, which
makes any inversion (and DDIM sampling itself) ill-conditioned. The models here have their output
layer scaled down (`tame_model`), which gives the smooth, contractive denoiser of a trained model
while keeping every code path (cross-attention, pooled outputs, v-prediction) real. They are built
inside inference mode, as the host builds checkpoints, so the autograd path is exercised as in use.
"""

from __future__ import annotations

import pytest
import torch

from headless import comfy_host
from testkit import tiny_models
from testkit.random_weights import fill_random
from testkit.tiny_models import tiny_conditioning

CFG = 7.5
STEPS = 10


def tame_model(kind: str = "sd15", prediction: str = "eps", output_scale: float = 0.1):
    with torch.inference_mode():
        model = tiny_models.tiny_model(kind, prediction=prediction)
        out = model.model.diffusion_model.out[-1]
        out.weight.mul_(output_scale)
        out.bias.mul_(output_scale)
    return model


def photo_latent(batch=1, height=8, width=12, seed=3):
    # A LATENT-space photo: VAE latents are ~5x the model's internal scale (SD's 0.18215).
    return torch.randn(batch, 4, height, width, generator=torch.Generator().manual_seed(seed)) * 5


def conds(kind="sd15", batch=1):
    kind = "sdxl" if kind == "sdxl" else "sd15"
    return tiny_conditioning(kind, batch, seed=1), tiny_conditioning(kind, batch, seed=2)


@pytest.fixture(scope="module")
def rt(pack):
    return comfy_host.pack_module("nodes.inversion_runtime")


@pytest.fixture(scope="module")
def ops(pack):
    return comfy_host.pack_module("stereo_ops.inversion")


@pytest.fixture(scope="module")
def sd15(host):
    return tame_model("sd15")


def run(rt, model, method, latent, positive, negative, steps=STEPS, cfg=CFG, **kwargs):
    """Invert and reconstruct, as in a workflow (inside the host's inference mode)."""
    with torch.inference_mode():
        inversion, report = rt.invert(model, positive, negative, latent, steps, cfg, method, **kwargs)
        reconstruction = rt.reconstruct_latent(model, inversion, positive, negative, cfg)
    return inversion, report, reconstruction


def relative_error(a, b) -> float:
    """Largest difference relative to the largest value: comparable across value scales."""
    return ((a - b).abs().max() / b.abs().max()).item()


def mse(a, b):
    return float(((a - b) ** 2).mean())


def test_null_text_reconstructs_far_better_than_ddim_and_fixed_point_at_least_as_well(rt, ops, sd15):
    latent = photo_latent()
    positive, negative = conds()
    errors, reports = {}, {}
    for method in ("ddim", "null_text", "fixed_point"):
        inversion, reports[method], reconstruction = run(rt, sd15, method, latent, positive, negative)
        assert inversion.method == method and inversion.cfg == CFG and inversion.steps == STEPS
        assert inversion.start_latent.shape == latent.shape and not inversion.start_latent.is_inference()
        errors[method] = mse(reconstruction, latent)
    # Measured on this model (10 steps, cfg 7.5): PSNR ddim 14 dB, null_text 22 dB, fixed_point 41 dB.
    assert errors["null_text"] < errors["ddim"] / 4
    # The stated bound: fixed_point's error is never above null_text's.
    assert errors["fixed_point"] <= errors["null_text"]
    assert reports["null_text"].backward_passes == sum(reports["null_text"].inner_steps) > 0
    assert reports["fixed_point"].evaluations == STEPS * 2  # one CFG call (2 chunks) per step
    assert reports["ddim"].evaluations == STEPS


def test_null_text_embeddings_are_per_step_per_photo_and_leave_the_shared_model_alone(rt, sd15):
    latent = photo_latent(batch=2, height=6, width=10)
    positive, negative = conds()
    weights = {k: v.clone() for k, v in sd15.model.state_dict().items()}
    flags = {k: p.requires_grad for k, p in sd15.model.named_parameters()}
    options = dict(sd15.model_options)
    wrappers = dict(sd15.weight_wrapper_patches)
    probe = torch.randn(1, 4, 6, 10, generator=torch.Generator().manual_seed(9))

    def sample_shared():
        import comfy.sample

        with torch.inference_mode():
            return comfy.sample.sample(sd15, probe, 3, 5.0, "euler", "normal", positive, negative, torch.zeros_like(probe))

    before = sample_shared()
    _, _, ddim = run(rt, sd15, "ddim", latent, positive, negative)
    inversion, report, reconstruction = run(
        rt, sd15, "null_text", latent, positive, negative, steps=STEPS,
        settings=rt.inv.NullTextSettings(inner_steps=5),
    )
    assert len(inversion.uncond_embeddings) == STEPS
    assert all(e.shape == (2, 77, tiny_models.TINY_CONTEXT_DIM) for e in inversion.uncond_embeddings)
    assert not torch.equal(inversion.uncond_embeddings[0], inversion.uncond_embeddings[-1])  # optimised per step
    assert report.inner_steps and all(1 <= n <= 5 for n in report.inner_steps)
    assert reconstruction.shape == latent.shape
    # Both photos of the batch reconstruct (each row of the embeddings steers its own photo).
    for j in range(2):
        assert mse(reconstruction[j], latent[j]) < mse(ddim[j], latent[j]) / 2

    assert all(torch.equal(weights[k], v) for k, v in sd15.model.state_dict().items())
    assert {k: p.requires_grad for k, p in sd15.model.named_parameters()} == flags
    assert all(p.grad is None for p in sd15.model.parameters())
    assert sd15.model_options.keys() == options.keys() and "model_function_wrapper" not in sd15.model_options
    assert sd15.weight_wrapper_patches == wrappers
    assert torch.equal(sample_shared(), before)


def test_stereo_batch_uses_the_embeddings_of_its_pair(rt, ops, sd15):
    """A 2N batch (lefts then rights) started from the inverted latent twice gives the photo twice."""
    import comfy.k_diffusion.sampling
    import comfy.samplers

    latent = photo_latent(batch=2)
    positive, negative = conds()
    inversion, _, reconstruction = run(
        rt, sd15, "null_text", latent, positive, negative, steps=STEPS,
        settings=ops.NullTextSettings(inner_steps=2),
    )
    start = torch.cat([inversion.start_latent, inversion.start_latent])
    guider = comfy.samplers.CFGGuider(rt.with_inverted_unconds(sd15, inversion))
    guider.set_conds(positive, negative)
    guider.set_cfg(CFG)
    sampler = comfy.samplers.KSAMPLER(
        lambda model, x, sigmas, extra_args=None, callback=None, disable=None: comfy.k_diffusion.sampling.sample_euler(
            model, start, sigmas, extra_args=extra_args, disable=True
        )
    )
    with torch.inference_mode():
        stereo = guider.sample(torch.zeros_like(start), torch.zeros_like(start), sampler, inversion.sigmas, seed=0)
    # A batch of 4 and a batch of 2 go through different kernels: equal up to float32 rounding
    # accumulated over the steps, measured against the size of the values (about 10 here).
    for half in (stereo[:2], stereo[2:]):
        assert relative_error(half, reconstruction) < 1e-4


@pytest.mark.parametrize("kind,prediction", [("sd20", "v"), ("sdxl", "eps")])
def test_v_prediction_and_sdxl_pooled_outputs(rt, host, kind, prediction):
    model = tame_model(kind, prediction)
    latent = photo_latent(height=8, width=16)
    positive, negative = conds(kind)
    errors = {}
    for method in ("ddim", "null_text", "fixed_point"):
        _, _, reconstruction = run(
            rt, model, method, latent, positive, negative,
        )
        errors[method] = mse(reconstruction, latent)
    assert errors["null_text"] < errors["ddim"] / 2
    assert errors["fixed_point"] <= errors["null_text"]


def test_an_inversion_that_does_not_fit_is_refused_clearly(rt, sd15, tiny_sdxl):
    latent = photo_latent()
    positive, negative = conds()
    with torch.inference_mode():
        inversion, _ = rt.invert(sd15, positive, negative, latent, 3, CFG, "ddim")
    rt.check_inversion_fits(inversion, sd15, latent, CFG, steps=3)  # fits
    with pytest.raises(ValueError, match=r"latent of shape \(1, 4, 8, 12\).*\(2, 4, 8, 12\)"):
        rt.check_inversion_fits(inversion, sd15, photo_latent(batch=2), CFG)
    with pytest.raises(ValueError, match=r"\(1, 4, 8, 16\)"):
        rt.check_inversion_fits(inversion, sd15, photo_latent(width=16), CFG)
    with pytest.raises(ValueError, match="cfg 7.5 but the sampler's cfg is 5.0"):
        rt.check_inversion_fits(inversion, sd15, latent, 5.0)
    with pytest.raises(ValueError, match="made for 3 steps but the sampler has steps 20"):
        rt.check_inversion_fits(inversion, sd15, latent, CFG, steps=20)
    with pytest.raises(ValueError, match="different kind of model"):
        rt.check_inversion_fits(inversion, tiny_sdxl, latent, CFG)
    with pytest.raises(ValueError, match="different kind of model"):
        rt.check_inversion_fits(inversion, tame_model("sd15", "v"), latent, CFG)
    with pytest.raises(ValueError, match="expected a STEREO_INVERSION"):
        rt.check_inversion_fits({"samples": latent}, sd15, latent, CFG)
    with pytest.raises(ValueError, match="method must be one of"):
        rt.invert(sd15, positive, negative, latent, 3, CFG, "edict")
    with pytest.raises(ValueError, match="negative has a batch of 3"):
        rt.invert(sd15, positive, tiny_conditioning("sd15", 3), photo_latent(batch=2), 3, CFG, "null_text")


def test_the_node_runs_with_progress_and_can_be_interrupted(pack, sd15):
    import comfy.model_management
    import nodes

    node = nodes.NODE_CLASS_MAPPINGS["StereoNullTextInversion"]
    schema = node.GET_SCHEMA()
    assert schema.category == "stereo/sampling" and schema.outputs[0].io_type == "STEREO_INVERSION"
    positive, negative = conds()
    latent = {"samples": photo_latent()}
    args = dict(model=sd15, positive=positive, negative=negative, latent=latent, steps=3, cfg=CFG,
                method="null_text", inner_steps=2)
    with torch.inference_mode():
        inversion = node.execute(**args).result[0]
    assert inversion.method == "null_text" and len(inversion.uncond_embeddings) == 3

    comfy.model_management.interrupt_current_processing(True)
    try:
        with torch.inference_mode(), pytest.raises(comfy.model_management.InterruptProcessingException):
            node.execute(**args)
    finally:
        comfy.model_management.interrupt_current_processing(False)


def test_context_swap_replaces_only_the_chosen_chunks_and_pads_token_counts(rt):
    seen = {}

    def apply_model(x, t, c_crossattn, transformer_options=None):
        seen["context"] = c_crossattn
        return x

    cond = torch.zeros(4, 77, 3)  # a stereo batch of 2 pairs: cond chunk, then uncond chunk
    ctx = torch.cat([cond, torch.ones(4, 77, 3)])
    embedding = torch.arange(2 * 154 * 3.0).reshape(2, 154, 3)  # 2 photos, 154 tokens
    swap = rt.ContextSwap(lambda kind, sigma: embedding if kind == rt.UNCOND else None)
    x = torch.zeros(8, 4, 2, 2)
    args = {"input": x, "timestep": torch.full((8,), 3.0), "c": {"c_crossattn": ctx}, "cond_or_uncond": [0, 1]}
    assert swap(apply_model, args) is x and swap.chunks == 2
    out = seen["context"]
    assert out.shape == (8, 154, 3)
    assert torch.equal(out[:4], torch.zeros(4, 154, 3))  # the cond chunk, repeated to 154 tokens
    assert torch.equal(out[4:], torch.cat([embedding, embedding]))  # pair j of both eyes uses row j
    assert torch.equal(ctx[4:], torch.ones(4, 77, 3))  # the host's tensors are not modified


def test_a_longer_negative_prompt_is_optimised_at_its_own_length(rt, ops, sd15):
    latent = photo_latent()
    positive = tiny_conditioning("sd15", seed=1)
    negative = tiny_conditioning("sd15", seed=2, tokens=154)
    inversion, _, reconstruction = run(
        rt, sd15, "null_text", latent, positive, negative, steps=3, settings=ops.NullTextSettings(inner_steps=1)
    )
    assert inversion.uncond_embeddings[0].shape == (1, 154, tiny_models.TINY_CONTEXT_DIM)
    assert reconstruction.shape == latent.shape and torch.isfinite(reconstruction).all()


def _stereo_from_photo(pack, model, inversion, latent, positive, negative, **kw):
    import nodes

    args = dict(
        model=model, positive=positive, negative=negative, latent_image={"samples": latent},
        disparity=torch.rand(1, latent.shape[2] * 8, latent.shape[3] * 8, generator=torch.Generator().manual_seed(4)),
        divergence=15.0, convergence=0.0, subpixel=True, balance=0.0, shift_at=0.2, spsmd=True,
        spsmd_interval=0.2, deblur=True, seed=0, steps=STEPS, cfg=CFG, sampler_name="euler",
        scheduler="normal", denoise=1.0, inversion=inversion, eyes="separate",
    )
    args.update(kw)
    with torch.inference_mode():
        return nodes.NODE_CLASS_MAPPINGS["StereoKSampler"].execute(**args).result[0]["samples"]


@pytest.mark.parametrize("method", ["null_text", "fixed_point"])
def test_stereo_ksampler_with_an_inversion_reconstructs_the_photo_on_the_left(rt, pack, sd15, method):
    latent = photo_latent(batch=2, height=8, width=10)
    positive, negative = conds()
    inversion, _, reconstruction = run(rt, sd15, method, latent, positive, negative)
    stereo = _stereo_from_photo(pack, sd15, inversion, latent, positive, negative)
    assert stereo.shape == (4, 4, 8, 10)
    # the left views retrace the inversion exactly as a plain reconstruction does
    assert torch.equal(stereo[:2], reconstruction)
    assert mse(stereo[:2], latent) < 0.25 * mse(torch.zeros_like(latent), latent)
    assert not torch.equal(stereo[2:], stereo[:2])
    zero = _stereo_from_photo(pack, sd15, inversion, latent, positive, negative, divergence=0.0)
    assert torch.equal(zero[:2], zero[2:])


def test_stereo_ksampler_refuses_an_inversion_that_does_not_fit(rt, pack, sd15):
    latent = photo_latent()
    positive, negative = conds()
    inversion, _, _ = run(rt, sd15, "ddim", latent, positive, negative)
    with pytest.raises(ValueError, match="steps"):
        _stereo_from_photo(pack, sd15, inversion, latent, positive, negative, steps=STEPS + 1)
    with pytest.raises(ValueError, match="cfg"):
        _stereo_from_photo(pack, sd15, inversion, latent, positive, negative, cfg=3.0)
    with pytest.raises(ValueError, match="shape"):
        _stereo_from_photo(pack, sd15, inversion, photo_latent(width=16), positive, negative)
    with pytest.raises(ValueError, match="euler, ddim"):
        _stereo_from_photo(pack, sd15, inversion, latent, positive, negative, sampler_name="dpmpp_2m")


def test_an_inversion_used_with_other_weights_patches_or_prompts_is_refused(rt, pack, sd15):
    latent = photo_latent()
    positive, negative = conds()
    with torch.inference_mode():
        inversion, _ = rt.invert(sd15, positive, negative, latent, STEPS, CFG, "fixed_point")
    assert inversion.first_prediction is not None and inversion.first_prediction.shape == latent.shape
    # the same model and prompts: accepted, also with a patch that only acts on the right eye
    patched = pack_node("StereoAttentionPatch").execute(
        model=sd15, mode="unidirectional", start_percent=0.0, end_percent=1.0).result[0]
    _stereo_from_photo(pack, patched, inversion, latent, positive, negative)
    other_weights = tame_model("sd15")
    with torch.inference_mode():
        fill_random(other_weights.model.diffusion_model, seed=7)
    lora_like = sd15.clone()
    key = next(k for k in lora_like.model_state_dict() if k.endswith("out.2.weight"))
    lora_like.add_patches({key: (torch.ones_like(lora_like.model_state_dict()[key]) * 0.05,)}, 1.0)
    other_prompt = tiny_conditioning("sd15", 1, seed=11)
    for model, pos in ((other_weights, positive), (lora_like, positive), (sd15, other_prompt)):
        with pytest.raises(ValueError, match="another model .* or other positive/negative prompts"):
            _stereo_from_photo(pack, model, inversion, latent, pos, negative)


def pack_node(name):
    import nodes

    return nodes.NODE_CLASS_MAPPINGS[name]
