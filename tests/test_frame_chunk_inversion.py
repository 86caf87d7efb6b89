"""The inversion of a clip in chunks of frames: every frame's inversion is its own, so the chunked
inversion is the whole one frame by frame, and the chunked sampler consumes it."""

from __future__ import annotations

import pytest
import torch

from stereo_pack.stereo_ops import inversion as inv
from stereo_pack.stereo_ops.inversion_chunks import inversion_rows, join_inversions
from testkit.tiny_models import tiny_conditioning

SIGMAS = torch.tensor([14.6, 6.0, 2.5, 1.0, 0.4, 0.1, 0.0])


def _branch(x, sigma, context):
    """A denoiser of data ~ N(0.3, 0.8) shifted per channel by a (N, tokens, 4) context."""
    shift = 0.5 * torch.tanh(context.mean(dim=1))[:, :, None, None]
    return 0.3 + 0.8 / (0.8 + sigma**2) * (x - 0.3) + shift * sigma / (1 + sigma)


def _null_text(x0, cond_ctx, negative, settings, cfg=7.5):
    cond = lambda x, s: _branch(x, s, cond_ctx)  # noqa: E731

    def guided(x, s, context):
        uncond = _branch(x, s, negative if context is None else context)
        return uncond + cfg * (cond(x, s) - uncond)

    pivot = inv.ddim_invert(cond, x0, SIGMAS)
    return inv.null_text_optimize(guided, cond, _branch, pivot, SIGMAS, negative, cfg, settings)


def test_each_photo_of_a_batch_stops_optimising_as_it_would_alone():
    g = torch.Generator().manual_seed(7)
    x0 = torch.randn(3, 4, 4, 6, generator=g) * torch.tensor([0.2, 1.0, 3.0]).view(-1, 1, 1, 1)
    cond_ctx, negative = torch.randn(3, 5, 4, generator=g), torch.randn(3, 5, 4, generator=g)
    settings = inv.NullTextSettings(inner_steps=12, learning_rate=0.05, early_stop_base=3e-2, early_stop_slope=0.0)
    batch, batch_stats = _null_text(x0, cond_ctx, negative, settings)
    alone = [_null_text(x0[i:i + 1], cond_ctx[i:i + 1], negative[i:i + 1], settings) for i in range(3)]
    steps_alone = [stats.inner_steps for _, stats in alone]
    assert len({tuple(s) for s in steps_alone}) > 1  # the photos do stop at different inner steps
    assert batch_stats.inner_steps == [max(s) for s in zip(*steps_alone)]
    for i, (embeddings, _) in enumerate(alone):
        for step, (whole, own) in enumerate(zip(batch, embeddings)):
            assert torch.allclose(whole[i:i + 1], own, rtol=0, atol=1e-6), (i, step)


def _inversion(n, seed=0, unconds=True):
    g = torch.Generator().manual_seed(seed)
    return inv.StereoInversion(
        torch.randn(n, 4, 3, 3, generator=g), SIGMAS,
        tuple(torch.randn(n, 2, 4, generator=g) for _ in range(6)) if unconds else None,
        inv.NULL_TEXT, 7.5, "toy", torch.randn(n, 4, 3, 3, generator=g),
    )


def test_an_inversion_cut_into_frames_joins_back_to_itself():
    whole = _inversion(5)
    parts = [inversion_rows(whole, slice(a, b)) for a, b in ((0, 2), (2, 3), (3, 5))]
    joined = join_inversions(parts)
    assert torch.equal(joined.start_latent, whole.start_latent)
    assert torch.equal(joined.first_prediction, whole.first_prediction)
    assert all(torch.equal(a, b) for a, b in zip(joined.uncond_embeddings, whole.uncond_embeddings))
    assert parts[1].start_latent.shape[0] == 1 and parts[1].uncond_embeddings[0].shape[0] == 1
    with pytest.raises(ValueError, match="different settings"):
        join_inversions([parts[0], _inversion(2, unconds=False).__class__(**{**parts[1].__dict__, "cfg": 3.0})])


@pytest.fixture(scope="module")
def clip_host(pack):
    """The tiny SD1.5 UNet with its output layer scaled down: a smooth denoiser that inverts well
    (as in test_inversion_host)."""
    from testkit import tiny_models

    with torch.inference_mode():
        model = tiny_models.tiny_model("sd15")
        out = model.model.diffusion_model.out[-1]
        out.weight.mul_(0.1)
        out.bias.mul_(0.1)
    return model


def _invert(model, latent, frame_chunk, method="null_text"):
    import nodes

    return nodes.NODE_CLASS_MAPPINGS["StereoNullTextInversion"].execute(
        model=model, positive=tiny_conditioning(seed=1), negative=tiny_conditioning(seed=2), latent={"samples": latent},
        steps=4, cfg=7.5, method=method, inner_steps=3, frame_chunk=frame_chunk,
    ).result[0]


@pytest.mark.parametrize("method", ["null_text", "fixed_point"])
def test_the_chunked_inversion_is_the_whole_one_frame_by_frame(clip_host, method):
    latent = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(3)) * 5
    with torch.inference_mode():
        whole, chunked = _invert(clip_host, latent, 0, method), _invert(clip_host, latent, 2, method)
    scale = float(whole.start_latent.abs().max())
    assert float((chunked.start_latent - whole.start_latent).abs().max()) <= 1e-4 * scale
    pairs = list(zip(chunked.uncond_embeddings, whole.uncond_embeddings))
    assert len(pairs) == 4 and all(a.shape == b.shape for a, b in pairs)
    # Adam steps by about the sign of the gradient: the rounding of another batch size shows more here.
    assert max(float((a - b).abs().max() / b.abs().max()) for a, b in pairs) <= 1e-3


def test_the_chunked_sampler_consumes_a_chunked_inversion(clip_host):
    import nodes

    latent = torch.randn(4, 4, 8, 8, generator=torch.Generator().manual_seed(3)) * 5
    with torch.inference_mode():
        inversion = _invert(clip_host, latent, 2, "fixed_point")
        outs = {
            chunk: nodes.NODE_CLASS_MAPPINGS["StereoKSampler"].execute(
                model=clip_host, positive=tiny_conditioning(seed=1), negative=tiny_conditioning(seed=2),
                latent_image={"samples": latent}, disparity=torch.rand(4, 32, 32, generator=torch.Generator().manual_seed(1)),
                divergence=10.0, convergence=0.0, subpixel=True, balance=0.0, shift_at=0.25, spsmd=True,
                spsmd_interval=0.25, deblur=True, seed=0, steps=4, cfg=7.5, sampler_name="euler", scheduler="normal",
                denoise=1.0, inversion=inversion, eyes="separate", frame_chunk=chunk,
            ).result[0]["samples"]
            for chunk in (0, 1, 3)
        }
    scale = float(outs[0][:4].abs().max())
    for chunk in (1, 3):
        assert float((outs[chunk][:4] - outs[0][:4]).abs().max()) <= 1e-4 * scale, chunk
