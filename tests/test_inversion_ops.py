"""Unit tests of stereo_ops.inversion with analytic denoisers (no host needed)."""

import math

import pytest
import torch

from stereo_pack.stereo_ops import inversion as inv

SIGMAS = torch.tensor([14.6, 6.0, 2.5, 1.0, 0.4, 0.1, 0.0])


def gaussian_denoiser(mean: float = 0.3, var: float = 0.8):
    """The exact denoiser of data ~ N(mean, var): smooth, like a trained model's."""

    def denoise(x, sigma):
        return mean + var / (var + sigma**2) * (x - mean)

    return denoise


def photo(seed=0, shape=(2, 4, 6, 10)):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def forward(denoise, start, sigmas):
    x = start
    for i in range(sigmas.shape[0] - 1):
        x = inv.euler_step(x, denoise(x, sigmas[i]), sigmas[i], sigmas[i + 1])
    return x


def test_euler_step_to_sigma_zero_returns_the_denoised_estimate():
    x, d = photo(1), photo(2)
    assert torch.allclose(inv.euler_step(x, d, torch.tensor(0.7), torch.tensor(0.0)), d, atol=1e-6)


def test_fixed_point_inversion_converges_to_an_exact_inverse_of_euler():
    denoise, x0 = gaussian_denoiser(), photo()
    errors = []
    for iterations in (1, 2, 4, 40):
        trajectory = inv.fixed_point_invert(denoise, x0, SIGMAS, iterations)
        assert len(trajectory) == SIGMAS.shape[0] and trajectory[-1] is x0
        errors.append(float((forward(denoise, trajectory[0], SIGMAS) - x0).abs().max()))
    assert errors == sorted(errors, reverse=True)  # each round tightens it
    assert errors[0] > 1e-2  # plain DDIM inversion is visibly off ...
    assert errors[-1] < 1e-4  # ... the solved one is exact (float32)


def test_ddim_inversion_is_one_fixed_point_round_and_reports_every_step():
    denoise, x0 = gaussian_denoiser(), photo()
    seen = []
    ddim = inv.ddim_invert(denoise, x0, SIGMAS, on_step=seen.append)
    one = inv.fixed_point_invert(denoise, x0, SIGMAS, 1, warm_start=False)
    assert all(torch.equal(a, b) for a, b in zip(ddim, one))
    warm = inv.fixed_point_invert(denoise, x0, SIGMAS, 1)  # same cost, better first guess
    assert (forward(denoise, warm[0], SIGMAS) - x0).abs().max() < (forward(denoise, ddim[0], SIGMAS) - x0).abs().max() / 3
    assert seen == list(range(SIGMAS.shape[0] - 1))


class ContextModel:
    """A denoiser whose output is shifted per channel by the mean of a (N, tokens, 4) context."""

    def __init__(self, cond_context):
        self.base = gaussian_denoiser()
        self.cond_context = cond_context

    def branch(self, x, sigma, context):
        shift = 0.5 * torch.tanh(context.mean(dim=1))[:, :, None, None]
        return self.base(x, sigma) + shift * sigma / (1 + sigma)

    def cond(self, x, sigma):
        return self.branch(x, sigma, self.cond_context)

    def guided(self, cfg, negative):
        def guided(x, sigma, context):
            uncond = self.branch(x, sigma, negative if context is None else context)
            return uncond + cfg * (self.cond(x, sigma) - uncond)

        return guided


def test_null_text_optimisation_makes_guided_sampling_follow_the_pivot():
    x0 = photo(3)
    cond_ctx = torch.randn(2, 5, 4, generator=torch.Generator().manual_seed(4))
    negative = torch.randn(2, 5, 4, generator=torch.Generator().manual_seed(5))
    model, cfg = ContextModel(cond_ctx), 7.5
    pivot = inv.ddim_invert(model.cond, x0, SIGMAS)
    sigmas = SIGMAS
    ddim = inv.StereoInversion(pivot[0], sigmas, None, inv.DDIM, cfg, "toy")
    ddim_error = float(((inv.reconstruct(model.guided(cfg, negative), ddim) - x0) ** 2).mean())

    settings = inv.NullTextSettings(inner_steps=50, learning_rate=0.1)
    embeddings, stats = inv.null_text_optimize(
        model.guided(cfg, negative), model.cond, model.branch, pivot, sigmas, negative, cfg, settings
    )
    assert len(embeddings) == 6 and all(e.shape == negative.shape and not e.requires_grad for e in embeddings)
    assert len(stats.inner_steps) == 6 and all(1 <= n <= 50 for n in stats.inner_steps)
    null = inv.StereoInversion(pivot[0], sigmas, embeddings, inv.NULL_TEXT, cfg, "toy")
    null_error = float(((inv.reconstruct(model.guided(cfg, negative), null) - x0) ** 2).mean())
    # The floor: the pivot itself, sampled at guidance 1 (what null-text steers towards).
    floor = float(((forward(model.cond, pivot[0], sigmas) - x0) ** 2).mean())
    assert null_error < ddim_error / 10
    assert null_error < 2 * floor
    assert torch.equal(negative, torch.randn(2, 5, 4, generator=torch.Generator().manual_seed(5)))  # input untouched


def test_null_text_settings_follow_the_paper_at_50_steps_and_generalise():
    s = inv.NullTextSettings()
    for i in (0, 1, 17, 49):
        assert math.isclose(s.learning_rate_at(i, 50), 1e-2 * (1 - i / 100))
        assert math.isclose(s.early_stop_at(i, 50), 1e-5 + 2e-5 * i)
    assert math.isclose(s.learning_rate_at(999, 1000), 1e-2 * (1 - 999 / 2000))  # never negative
    with pytest.raises(ValueError, match="learning_rate"):
        inv.NullTextSettings(learning_rate=0.0)
    with pytest.raises(ValueError, match="inner_steps"):
        inv.NullTextSettings(inner_steps=-1)


def test_step_index_finds_the_step_of_a_model_call():
    sigmas = SIGMAS
    assert [inv.step_index(sigmas, float(s)) for s in sigmas[:-1]] == list(range(6))
    assert inv.step_index(sigmas, 20.0) == 0  # above the schedule
    assert inv.step_index(sigmas, 1.7) == 2  # between 2.5 and 1.0: an intermediate stage of step 2
    assert inv.step_index(sigmas, 0.05) == 5
    assert inv.step_index(sigmas, float(sigmas[3]) * (1 + 1e-6)) == 3


def test_contexts_fit_any_batch_and_token_count():
    e = torch.arange(2 * 3 * 1.0).reshape(2, 3, 1)
    assert torch.equal(inv.rows_for_batch(e, 4), torch.cat([e, e]))  # a stereo batch: pair j uses row j
    with pytest.raises(ValueError, match="2 photo"):
        inv.rows_for_batch(e, 3)
    assert torch.equal(inv.repeat_tokens(e, 6), torch.cat([e, e], dim=1))
    with pytest.raises(ValueError, match="3 tokens"):
        inv.repeat_tokens(e, 4)
    assert inv.batch_rows(e[:1], 5, "negative").shape == (5, 3, 1)
    with pytest.raises(ValueError, match="negative has a batch of 2"):
        inv.batch_rows(e, 3, "negative")


def test_schedules_are_checked():
    with pytest.raises(ValueError, match="end at sigma 0"):
        inv.fixed_point_invert(gaussian_denoiser(), photo(), torch.tensor([2.0, 1.0]))
    with pytest.raises(ValueError, match="descending"):
        inv.fixed_point_invert(gaussian_denoiser(), photo(), torch.tensor([1.0, 2.0, 0.0]))
    with pytest.raises(ValueError, match="iterations"):
        inv.fixed_point_invert(gaussian_denoiser(), photo(), SIGMAS, 0)


def test_latent_psnr():
    target = torch.tensor([0.0, 2.0])
    assert math.isclose(inv.latent_psnr(torch.tensor([0.0, 1.0]) , target), 10 * math.log10(4 / 0.5))
    assert inv.latent_psnr(target, target) == math.inf


def test_ddim_timesteps_are_the_papers():
    assert inv.ddim_timesteps(50)[:3] == [981, 961, 941] and inv.ddim_timesteps(50)[-1] == 1
    assert inv.ddim_timesteps(10) == [901, 801, 701, 601, 501, 401, 301, 201, 101, 1]
    assert len(inv.ddim_timesteps(7)) == 7 and len(inv.ddim_timesteps(1000)) == 1000
    with pytest.raises(ValueError, match="steps"):
        inv.ddim_timesteps(0)
