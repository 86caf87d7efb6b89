"""Inverting a clean latent into the start of a sampling schedule, so that sampling it back reproduces it.

Everything works in k-diffusion form: the model is reached only through a *denoiser*, a callable
(x, sigma) -> x0 estimate, and the sampler state at noise level sigma is x = x0 + sigma * eps
(eps- and v-prediction models) or x = (1 - sigma) * x0 + sigma * eps (flow-matching models such as
Flux and SD3). In both, (x - D(x, sigma)) / sigma is the derivative of the model's own ODE in sigma,
so the same Euler step is the model's sampler (for eps models exactly DDIM with eta 0, for flow
models the flow-matching Euler step) and the same code inverts either:

    x_{i+1} = x_i + (sigma_{i+1} - sigma_i) * (x_i - D(x_i, sigma_i)) / sigma_i

`sigmas` is the forward schedule (descending, last 0); trajectories are indexed like it, so
trajectory[i] is the state at sigmas[i], trajectory[-1] the clean latent.

Methods:
- `ddim_invert`: the classic inversion (one model call per step, evaluated at the state it leaves).
  At guidance 1 it is the pivot of null-text inversion.
- `null_text_optimize`: null-text inversion (Mokady et al. 2023): per step, Adam on the unconditional
  embedding so that the guided Euler step lands on the pivot.
- `fixed_point_invert`: each Euler step solved backwards by fixed-point iteration, so that the
  forward step reproduces it; used with the negative-prompt trick (uncond := positive prompt) it
  needs no optimisation at all.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

Denoiser = Callable[[Tensor, Tensor], Tensor]
"""(x, sigma) -> denoised x0; sigma is a 0-d tensor."""

UncondDenoiser = Callable[[Tensor, Tensor, Tensor], Tensor]
"""(x, sigma, uncond_context) -> denoised x0 of the unconditional branch, differentiable in the context."""

GuidedDenoiser = Callable[[Tensor, Tensor, Tensor | None], Tensor]
"""(x, sigma, uncond_context or None) -> classifier-free-guided denoised x0, as the sampler computes it."""

StepCallback = Callable[[int], None]
"""Called with the index of each finished step (progress, interruption)."""

NULL_TEXT = "null_text"
FIXED_POINT = "fixed_point"
DDIM = "ddim"
METHODS = (NULL_TEXT, FIXED_POINT, DDIM)


@dataclass(frozen=True)
class StereoInversion:
    """What the stereo sampler needs to reproduce a photo as the left view.

    start_latent: (N, C, H, W) sampler state at sigmas[0], in the model's internal latent space.
    sigmas: (steps + 1,) descending, last 0: the schedule to follow with the Euler sampler.
    uncond_embeddings: per step, the cross-attention context (N, tokens, dim) that replaces the
        negative conditioning; None for methods that keep the negative prompt.
    method: one of METHODS. cfg: the guidance it was made for.
    model_signature: identifies the model family, latent format and prediction type it needs.
    first_prediction: the guided prediction of the first sampling step from start_latent, with
        the model and conditioning of the inversion; a sampler whose first prediction differs
        uses another model (weights, patches) or other prompts, and cannot reproduce the photo.
    source_fingerprint: `latent_fingerprint` of the inverted photo latents, so that a sampler given
        another photo of the same size can say so.
    """

    start_latent: Tensor
    sigmas: Tensor
    uncond_embeddings: tuple[Tensor, ...] | None
    method: str
    cfg: float
    model_signature: str
    first_prediction: Tensor | None = None
    source_fingerprint: Tensor | None = None

    @property
    def steps(self) -> int:
        return int(self.sigmas.shape[0]) - 1


@dataclass(frozen=True)
class NullTextSettings:
    """The optimisation of null-text inversion. Defaults are the paper's (at 50 steps).

    The learning rate at step i is lr * (1 - p/100) and the early-stop loss is base + slope * p,
    with p = i * 50 / steps, the step index as it would be in a 50-step schedule (the paper's i).
    """

    inner_steps: int = 10
    learning_rate: float = 1e-2
    early_stop_base: float = 1e-5
    early_stop_slope: float = 2e-5

    def __post_init__(self) -> None:
        if self.inner_steps < 0:
            raise ValueError(f"inner_steps must be 0 or more, got {self.inner_steps}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.early_stop_base < 0 or self.early_stop_slope < 0:
            raise ValueError("early_stop_base and early_stop_slope must be 0 or more")

    def paper_progress(self, step: int, steps: int) -> float:
        return step * 50.0 / steps

    def learning_rate_at(self, step: int, steps: int) -> float:
        return self.learning_rate * (1.0 - self.paper_progress(step, steps) / 100.0)

    def early_stop_at(self, step: int, steps: int) -> float:
        return self.early_stop_base + self.early_stop_slope * self.paper_progress(step, steps)


@dataclass
class NullTextStats:
    inner_steps: list[int] = field(default_factory=list)
    final_losses: list[float] = field(default_factory=list)


# Relative difference (to the largest value) above which two predictions come from different models
# or prompts: far above the rounding of another batch layout, far below what another prompt gives.
PREDICTION_MISMATCH = 1e-3


def prediction_mismatch(prediction: Tensor, reference: Tensor) -> float:
    """Largest difference between two predictions, relative to the reference's largest value."""
    prediction = prediction.detach().float().to(reference.device)
    reference = reference.detach().float()
    if prediction.shape != reference.shape:
        return math.inf
    return float((prediction - reference).abs().max() / reference.abs().max().clamp_min(1e-8))


# A fingerprint is the latent averaged over cells of about this many pixels: it tells two photos
# apart, while a re-encoding of the same photo (another precision, tiled VAE) stays close.
_FINGERPRINT_GRID = 8
# Two fingerprints differing by more than this share of the photo's own spread are other photos.
FINGERPRINT_MISMATCH = 0.25


def latent_fingerprint(latent: Tensor) -> Tensor:
    """A small summary (N, C, <=8, <=8) of clean latents, float32 on the CPU."""
    x = latent.detach().float().cpu()
    size = (min(_FINGERPRINT_GRID, x.shape[-2]), min(_FINGERPRINT_GRID, x.shape[-1]))
    return torch.nn.functional.adaptive_avg_pool2d(x, size)


def fingerprint_mismatch(latent: Tensor, fingerprint: Tensor) -> float:
    """How far `latent` is from the photo `fingerprint` summarises: the largest cell difference
    relative to the fingerprint's spread (0 = same photo; inf = other shape)."""
    other = latent_fingerprint(latent)
    if other.shape != fingerprint.shape:
        return math.inf
    # A flat photo has no spread: its overall level is the scale then.
    spread = max(float(fingerprint.std()) if fingerprint.numel() > 1 else 0.0, 0.1 * float(fingerprint.abs().mean()), 1e-6)
    return float((other - fingerprint).abs().max()) / spread


def check_sigmas(sigmas: Tensor) -> None:
    if sigmas.ndim != 1 or sigmas.shape[0] < 2:
        raise ValueError(f"sigmas must be a 1-d schedule of at least 2 values, got shape {tuple(sigmas.shape)}")
    if float(sigmas[-1]) != 0.0:
        raise ValueError(f"the schedule must end at sigma 0 (a clean latent), it ends at {float(sigmas[-1])}")
    if not bool((sigmas[:-1] > sigmas[1:]).all()):
        raise ValueError("the schedule must be strictly descending")


def ddim_timesteps(steps: int, train_steps: int = 1000) -> list[int]:
    """DDIM's timesteps (descending), as the paper's scheduler spaces them: every train_steps // steps
    steps, offset by one (981, 961, ..., 1 for 50 of 1000)."""
    if not 1 <= steps <= train_steps:
        raise ValueError(f"steps must be between 1 and {train_steps}, got {steps}")
    stride = train_steps // steps
    return [k * stride + 1 for k in range(steps - 1, -1, -1)]


def euler_step(x: Tensor, denoised: Tensor, sigma: Tensor, sigma_next: Tensor) -> Tensor:
    """One forward Euler (DDIM, eta 0) step from sigma to sigma_next."""
    return x + (sigma_next - sigma) * ((x - denoised) / sigma)


def latent_psnr(reconstruction: Tensor, target: Tensor) -> float:
    """PSNR in dB of a reconstructed latent, the peak being the target's value range."""
    mse = float(torch.mean((reconstruction.float() - target.float()) ** 2))
    peak = float(target.max() - target.min())
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(peak * peak / mse)


def fixed_point_invert(
    denoise: Denoiser,
    x0: Tensor,
    sigmas: Tensor,
    iterations: int = 1,
    on_step: StepCallback | None = None,
    warm_start: bool = True,
) -> list[Tensor]:
    """Invert the Euler sampler over `sigmas`, returning the trajectory (state at each sigma).

    Step i is solved backwards for the state x_i that the forward step sends to x_{i+1}:
        x_i = x_{i+1} + (sigma_i - sigma_{i+1}) * (x_i - D(x_i, sigma_i)) / sigma_i
    by `iterations` rounds of fixed-point iteration (one model call each); each round shrinks the
    gap the forward step leaves by about (sigma_i - sigma_{i+1}) / sigma_i times the denoiser's
    sensitivity. The first guess is free: with warm_start, the noise estimate of the previous
    (lower-noise) step's last call carried up to sigma_i; without, x_{i+1} itself, which makes one
    round exactly classic DDIM inversion.
    """
    check_sigmas(sigmas)
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, got {iterations}")
    steps = sigmas.shape[0] - 1
    trajectory: list[Tensor] = [x0] * (steps + 1)
    x_next = x0
    eps = None  # noise estimate (x - D) / sigma of the last model call
    for i in range(steps - 1, -1, -1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        x = x_next if eps is None or not warm_start else x_next + (sigma - sigma_next) * eps
        for _ in range(iterations):
            eps = (x - denoise(x, sigma)) / sigma
            x = x_next + (sigma - sigma_next) * eps
        trajectory[i] = x
        x_next = x
        if on_step is not None:
            on_step(steps - 1 - i)
    return trajectory


def ddim_invert(
    denoise: Denoiser, x0: Tensor, sigmas: Tensor, on_step: StepCallback | None = None
) -> list[Tensor]:
    """Classic DDIM inversion: one model call per step, at the state being left."""
    return fixed_point_invert(denoise, x0, sigmas, iterations=1, on_step=on_step, warm_start=False)


def _per_sample_mse(a: Tensor, b: Tensor) -> Tensor:
    return torch.mean((a - b) ** 2, dim=tuple(range(1, a.ndim)))


def null_text_optimize(
    guided: GuidedDenoiser,
    cond_denoise: Denoiser,
    uncond_denoise: UncondDenoiser,
    pivot: Sequence[Tensor],
    sigmas: Tensor,
    init_uncond: Tensor,
    cfg: float,
    settings: NullTextSettings = NullTextSettings(),
    on_step: StepCallback | None = None,
    on_inner_step: Callable[[], None] | None = None,
    flow: bool = False,
) -> tuple[tuple[Tensor, ...], NullTextStats]:
    """Optimise one unconditional context per step so that guided Euler sampling follows `pivot`.

    pivot: the guidance-1 DDIM inversion trajectory (pivot[0] is the start state, pivot[-1] the
    photo). At step i the context (initialised from the previous step's result) is tuned with Adam
    to minimise the MSE between the guided Euler step from the current state and pivot[i + 1];
    then the state advances with the real guided denoiser, as the sampler will. The loss is measured
    in the variance-preserving scale x / sqrt(1 + sigma^2), the DDIM latents the paper's thresholds
    are stated in; a flow model's state (`flow`) is already at that scale. Samples of a batch are
    independent: each row of the context only affects its own sample, and each sample stops
    optimising once its own loss is below the threshold (as it would inverted alone), the step
    once every sample has stopped.
    """
    check_sigmas(sigmas)
    steps = sigmas.shape[0] - 1
    if len(pivot) != steps + 1:
        raise ValueError(f"the pivot must hold {steps + 1} states, got {len(pivot)}")
    stats = NullTextStats()
    embeddings: list[Tensor] = []
    uncond = init_uncond.detach().clone()
    x = pivot[0]
    for i in range(steps):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        target = pivot[i + 1].detach()
        scale = 1.0 if flow else 1.0 / float(1.0 + sigma_next**2) ** 0.5
        threshold = settings.early_stop_at(i, steps)
        with torch.no_grad():
            denoised_cond = cond_denoise(x, sigma).detach()
        uncond = uncond.detach().clone().requires_grad_(True)
        optimizer = torch.optim.Adam([uncond], lr=settings.learning_rate_at(i, steps))
        used, last_loss = 0, float("nan")
        active = torch.ones(uncond.shape[0], dtype=torch.bool, device=uncond.device)
        for _ in range(settings.inner_steps):
            denoised_uncond = uncond_denoise(x, sigma, uncond)
            denoised = denoised_uncond + cfg * (denoised_cond - denoised_uncond)
            per_sample = _per_sample_mse(euler_step(x, denoised, sigma, sigma_next) * scale, target * scale)
            optimizer.zero_grad(set_to_none=True)
            per_sample.sum().backward()
            before = uncond.detach().clone()
            optimizer.step()
            with torch.no_grad():  # a sample that has stopped keeps its context, as it would alone
                uncond[~active] = before[~active]
            used += 1
            losses = per_sample.detach()
            active &= ~(losses < threshold).to(active.device)
            last_loss = float(losses.max())
            if on_inner_step is not None:
                on_inner_step()
            if not bool(active.any()):
                break
        uncond = uncond.detach()
        embeddings.append(uncond)
        stats.inner_steps.append(used)
        stats.final_losses.append(last_loss)
        with torch.no_grad():
            x = euler_step(x, guided(x, sigma, uncond), sigma, sigma_next)
        if on_step is not None:
            on_step(i)
    return tuple(embeddings), stats


def reconstruct(
    guided: GuidedDenoiser,
    inversion: StereoInversion,
    on_step: StepCallback | None = None,
) -> Tensor:
    """Run the forward Euler sampler an inversion was made for; returns the internal-space latent."""
    x = inversion.start_latent
    sigmas = inversion.sigmas
    for i in range(inversion.steps):
        uncond = None if inversion.uncond_embeddings is None else inversion.uncond_embeddings[i]
        x = euler_step(x, guided(x, sigmas[i], uncond), sigmas[i], sigmas[i + 1])
        if on_step is not None:
            on_step(i)
    return x


def step_index(sigmas: Tensor, sigma: float, rel_tol: float = 1e-4) -> int:
    """The step of the schedule that the model call at `sigma` belongs to.

    Exactly sigmas[i] gives i; a sigma between sigmas[i] and sigmas[i + 1] (a multi-stage solver)
    also gives i; above sigmas[0] gives 0.
    """
    at_or_above = int((sigmas[:-1] >= sigma * (1.0 - rel_tol)).sum())
    return min(max(at_or_above - 1, 0), sigmas.shape[0] - 2)


def repeat_tokens(context: Tensor, tokens: int) -> Tensor:
    """Repeat a cross-attention context along its token axis to `tokens` (attention is unchanged)."""
    have = context.shape[1]
    if have == tokens:
        return context
    if tokens % have:
        raise ValueError(f"cannot fit a context of {have} tokens into {tokens} tokens")
    return context.repeat(1, tokens // have, 1)


def rows_for_batch(embedding: Tensor, batch: int) -> Tensor:
    """Rows of a per-photo embedding (N, T, D) for a model batch of k*N (row r uses photo r % N)."""
    n = embedding.shape[0]
    if batch % n:
        raise ValueError(
            f"the inversion holds {n} photo(s) but the model was called with a batch of {batch}; "
            "sample a batch of N photos or a stereo batch of 2N"
        )
    return embedding.repeat(batch // n, 1, 1)


def batch_rows(tensor: Tensor, n: int, name: str) -> Tensor:
    """A conditioning tensor with 1 or n rows, as n rows."""
    if tensor.shape[0] == n:
        return tensor
    if tensor.shape[0] == 1:
        return tensor.expand(n, *tensor.shape[1:])
    raise ValueError(f"{name} has a batch of {tensor.shape[0]}, expected 1 or {n} (one per photo)")
