"""Host side of photo inversion: running stereo_ops.inversion inside ComfyUI's sampling machinery.

The inversion runs as a custom sampler function inside a CFGGuider, so the host loads the model,
prepares the conditioning (areas, pooled outputs, hooks, ControlNets) and applies every model patch
exactly as it will when the stereo sampler later runs the forward pass. The model is reached only
through a clone of the ModelPatcher; the shared model is never patched.

The sampler side uses three functions: `check_inversion_fits`, `with_inverted_unconds` (a model
clone that injects the per-step unconditional contexts) and `reconstruct_latent`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import comfy.k_diffusion.sampling
import comfy.model_base
import comfy.model_management
import comfy.model_sampling
import comfy.samplers
import torch
from torch import Tensor

from ..stereo_ops import inversion as inv
from ..stereo_ops.inversion import StereoInversion

UNCOND, COND = 1, 0  # the host's cond_or_uncond markers for the two halves of CFG


# ---------------------------------------------------------------------------------------------
# Model identity


def model_signature(model) -> str:
    """What an inversion needs to stay valid: model class, prediction type, latent format, context."""
    base = model.model
    unet = getattr(base.model_config, "unet_config", {}) or {}
    return ":".join(
        (
            type(base).__name__,
            getattr(base.model_type, "name", str(base.model_type)),
            type(base.latent_format).__name__,
            f"ch{unet.get('in_channels', '?')}",
            f"ctx{unet.get('context_dim', '?')}",
        )
    )


def check_inversion_fits(inversion, model, latent_samples: Tensor, cfg: float, steps: int | None = None) -> None:
    """Raise a ValueError naming the mismatch when `inversion` cannot drive sampling of this latent."""
    if not isinstance(inversion, StereoInversion):
        raise ValueError(
            f"inversion: expected a STEREO_INVERSION from Stereo Null-Text Inversion, got {type(inversion).__name__}"
        )
    signature = model_signature(model)
    if signature != inversion.model_signature:
        raise ValueError(
            f"inversion: it was made with a different kind of model ({inversion.model_signature}) than "
            f"this one ({signature}); run Stereo Null-Text Inversion with the same model as the sampler"
        )
    want = tuple(inversion.start_latent.shape)
    if tuple(latent_samples.shape) != want:
        raise ValueError(
            f"inversion: it was made for a latent of shape {want} (batch, channels, height, width) but the "
            f"sampler's latent_image is {tuple(latent_samples.shape)}; feed the sampler the same encoded "
            "photo(s) that were inverted"
        )
    if not math.isclose(float(cfg), inversion.cfg, rel_tol=1e-6, abs_tol=1e-6):
        raise ValueError(
            f"inversion: it was made for cfg {inversion.cfg} but the sampler's cfg is {cfg}; set cfg to "
            f"{inversion.cfg} or invert again with cfg {cfg}"
        )
    if steps is not None and int(steps) != inversion.steps:
        raise ValueError(
            f"inversion: it was made for {inversion.steps} steps but the sampler has steps {steps}; set "
            f"steps to {inversion.steps} or invert again with {steps} steps"
        )


def check_same_photo(inversion: StereoInversion, latent_samples: Tensor, name: str = "latent_image") -> None:
    """Refuse a latent_image that is not the photo the inversion was made from."""
    fingerprint = getattr(inversion, "source_fingerprint", None)
    if fingerprint is None:
        return
    mismatch = inv.fingerprint_mismatch(latent_samples, fingerprint)
    if mismatch > inv.FINGERPRINT_MISMATCH:
        raise ValueError(
            f"{name}: it is not the photo the inversion was made from (it differs by {mismatch:.3g} of the "
            "photo's spread); connect the same VAE Encode output to Stereo Null-Text Inversion's latent "
            "and to the sampler's latent_image"
        )


# The inversion evaluates the photo batch alone (no CFG pair): a 1x1 latent (8 px) can leave a
# GroupNorm one value per group, which torch refuses deep inside the UNet. Refused here instead.
MIN_LATENT_SIZE = 2


# ---------------------------------------------------------------------------------------------
# Swapping cross-attention contexts inside the host's batched model calls


class ContextSwap:
    """A UNet function wrapper that replaces the cross-attention context of chosen batch chunks.

    The host batches conditionings into one call and says which chunk is which in
    `cond_or_uncond`; `pick(kind, sigma)` returns the context (N, tokens, dim) for a chunk of that
    kind, or None to keep it. Contexts of different lengths are repeated to a common length, as the
    host itself does. A wrapper that was already on the model is called in turn. `chunks` counts
    evaluated chunks (one chunk = one model evaluation of the photo batch).
    """

    def __init__(self, pick: Callable[[int, float], Tensor | None], previous=None):
        self.pick = pick
        self.previous = previous
        self.chunks = 0

    def __call__(self, apply_model, args: dict):
        x, timestep, c, kinds = args["input"], args["timestep"], args["c"], args["cond_or_uncond"]
        self.chunks += len(kinds)
        context = c.get("c_crossattn")
        if context is not None:
            size = x.shape[0] // len(kinds)
            parts, changed = [], False
            for k, kind in enumerate(kinds):
                part = context[k * size:(k + 1) * size]
                new = self.pick(kind, float(timestep[k * size]))
                if new is not None:
                    part = inv.rows_for_batch(new, size).to(device=part.device, dtype=part.dtype)
                    changed = True
                parts.append(part)
            if changed:
                tokens = math.lcm(*(p.shape[1] for p in parts))
                c = dict(c, c_crossattn=torch.cat([inv.repeat_tokens(p, tokens) for p in parts]))
                args = dict(args, c=c)
        if self.previous is not None:
            return self.previous(apply_model, args)
        return apply_model(args["input"], args["timestep"], **args["c"])


def _with_context_swap(model, pick):
    patched = model.clone()
    swap = ContextSwap(pick, patched.model_options.get("model_function_wrapper"))
    patched.set_model_unet_function_wrapper(swap)
    return patched, swap


def with_inverted_unconds(model, inversion: StereoInversion):
    """A clone of `model` whose unconditional context at step i is inversion.uncond_embeddings[i].

    The step is found from the sigma of the call; the sampled batch may be N (a reconstruction) or
    2N (a stereo batch), pair j using row j either way.
    """
    if inversion.uncond_embeddings is None:
        return model.clone()
    sigmas = inversion.sigmas.detach().float().cpu()
    embeddings = inversion.uncond_embeddings

    def pick(kind: int, sigma: float) -> Tensor | None:
        return embeddings[inv.step_index(sigmas, sigma)] if kind == UNCOND else None

    return _with_context_swap(model, pick)[0]


# ---------------------------------------------------------------------------------------------
# Running a custom sampler function inside the host's guider


def _clone_conditioning(conditioning: list) -> list:
    """Conditioning with its tensors copied out of inference mode (so autograd may use them)."""
    out = []
    for item in conditioning:
        extra = {k: (v.clone() if isinstance(v, Tensor) else v) for k, v in item[1].items()}
        out.append([item[0].clone(), extra])
    return out


def _within_guider(model, positive, negative, cfg, latent: Tensor, sigmas: Tensor, fn):
    """Call `fn(model_k, x, sigmas, extra_args)` where a sampler of a CFG guider runs, and return
    what it returns. The guider prepares the conditioning, loads the model and applies its
    wrappers as for any sampler; its own output (the unchanged input) is dropped."""
    out: list = []

    def keep_result(model_k, x, sigmas, extra_args):
        out.append(fn(model_k, x, sigmas, extra_args))
        return x

    _guided_sample(model, positive, negative, cfg, latent, sigmas, keep_result)
    return out[0]


def _guided_sample(model, positive, negative, cfg, latent: Tensor, sigmas: Tensor, body) -> Tensor:
    """Run `body(model_k, x, sigmas, extra_args)` as the sampler of a CFG guider; returns its output,
    converted back to the LATENT space by the host."""
    guider = comfy.samplers.CFGGuider(model)
    guider.set_conds(positive, negative)
    guider.set_cfg(cfg)

    def sampler_function(model_k, x, sigmas, extra_args=None, callback=None, disable=None, **kwargs):
        return body(model_k, x, sigmas, extra_args or {})

    sampler = comfy.samplers.KSAMPLER(sampler_function)
    return guider.sample(torch.zeros_like(latent), latent, sampler, sigmas, disable_pbar=True, seed=0)


def reconstruct_latent(model, inversion: StereoInversion, positive, negative, cfg) -> Tensor:
    """Sample the inversion forward (Euler over its sigmas from its start latent); LATENT-space result."""
    start = inversion.start_latent
    check_inversion_fits(inversion, model, start, cfg)
    patched = with_inverted_unconds(model, inversion)

    def body(model_k, x, sigmas, extra_args):
        x = start.to(device=x.device, dtype=x.dtype)
        return comfy.k_diffusion.sampling.sample_euler(model_k, x, sigmas, extra_args=extra_args, disable=True)

    return _guided_sample(patched, positive, negative, cfg, torch.zeros_like(start), inversion.sigmas, body)


# ---------------------------------------------------------------------------------------------
# Inversion


def _detached_weight(weight: Tensor) -> Tensor:
    # Inference-mode weights cannot be saved for backward; a plain copy can. Detaching keeps
    # gradients off the shared weights, whatever their requires_grad.
    weight = weight.detach()
    return weight.clone() if weight.is_inference() else weight


def _make_weights_differentiable(patched) -> None:
    for name, module in patched.model.named_modules():
        if not hasattr(module, "weight_function"):
            continue
        for attr in ("weight", "bias"):
            if getattr(module, attr, None) is not None:
                patched.add_weight_wrapper(f"{name}.{attr}", _detached_weight)


@dataclass
class InversionReport:
    """What an inversion cost: model evaluations of the photo batch, backward passes, and per-step
    inner optimisation steps (null_text only)."""

    evaluations: int = 0
    backward_passes: int = 0
    inner_steps: tuple[int, ...] = ()


def _context_rows(conditioning: list, n: int, name: str) -> Tensor:
    if not conditioning:
        raise ValueError(f"{name}: the conditioning is empty; connect a text encoder output")
    return inv.batch_rows(conditioning[0][0], n, name)


def is_flow_model(model) -> bool:
    """Flow matching (Flux, SD3, ...): the state is (1 - sigma) x0 + sigma noise."""
    return isinstance(model.get_model_object("model_sampling"), comfy.model_sampling.CONST)


def is_guidance_distilled(model) -> bool:
    """Flux.1 dev/schnell and their finetunes: trained for cfg 1, guidance is an input (Chroma is not)."""
    chroma = getattr(comfy.model_base, "Chroma", ())
    return isinstance(model.model, comfy.model_base.Flux) and not (chroma and isinstance(model.model, chroma))


def inversion_sigmas(model, steps: int) -> Tensor:
    """The schedule the inversion follows, then 0.

    Discrete (SD1.x, SD2.x, SDXL) models: the paper's DDIM timesteps as sigmas of this model. Flow
    models: the model's own schedule from sigma 1 (the host's "simple" scheduler, which Flux and SD3
    workflows sample with); their timesteps are fractions of the flow, not DDIM's integer steps.
    """
    sampling = model.get_model_object("model_sampling")
    if is_flow_model(model):
        return comfy.samplers.calculate_sigmas(sampling, "simple", steps).float().cpu()
    table = getattr(sampling, "sigmas", None)
    if table is None or not hasattr(sampling, "sigma"):
        raise ValueError(
            "model: inversion needs a model with a discrete noise schedule (SD1.x, SD2.x, SDXL) or a "
            "flow-matching model (Flux, SD3)"
        )
    timesteps = torch.tensor(inv.ddim_timesteps(steps, int(table.shape[0])), dtype=torch.float32)
    sigmas = sampling.sigma(timesteps.to(table.device)).float().cpu()
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def check_method_fits(model, method: str, cfg: float) -> None:
    """null_text tunes the unconditional branch, which only exists where guidance evaluates it."""
    if method != inv.NULL_TEXT:
        return
    if is_guidance_distilled(model):
        raise ValueError(
            f"method null_text: {type(model.model).__name__} is guidance-distilled (it is sampled at cfg 1, "
            "with no unconditional branch to optimise); use method fixed_point (exact) or ddim"
        )
    if math.isclose(float(cfg), 1.0):
        raise ValueError(
            "method null_text: at cfg 1 the unconditional branch is never evaluated, so there is nothing "
            "to optimise; raise cfg above 1 or use method fixed_point (exact at any cfg) or ddim"
        )


class _GuidedEvaluator:
    """The three model evaluations an inversion makes, inside the host's guider (`model_k`).

    Each call first sets which cross-attention context the ContextSwap on the model puts in which
    chunk (`replace`), then evaluates: the positive alone, the negative alone with a chosen context,
    or the full guided prediction with a chosen unconditional context. Only the unconditional
    branch of null-text needs a graph; everything else runs without.
    """

    def __init__(self, model_k, extra_args: dict, replace: dict[int, Tensor], x0: Tensor):
        self.model_k = model_k
        self.guider = model_k.inner_model
        self.extra_args = extra_args
        self.replace = replace
        self.s_in = x0.new_ones(x0.shape[0])

    def _evaluate(self, conds, x: Tensor, sigma) -> Tensor:
        options = self.extra_args["model_options"]
        return comfy.samplers.calc_cond_batch(self.guider.inner_model, [conds], x, sigma * self.s_in, options)[0]

    @torch.no_grad()
    def cond_only(self, x: Tensor, sigma) -> Tensor:
        self.replace.clear()
        return self._evaluate(self.guider.conds["positive"], x, sigma)

    def uncond_only(self, x: Tensor, sigma, context: Tensor) -> Tensor:
        self.replace.clear()
        self.replace[COND] = context  # the negative runs alone here, in the first slot
        return self._evaluate(self.guider.conds["negative"], x, sigma)

    @torch.no_grad()
    def guided(self, x: Tensor, sigma, context: Tensor | None) -> Tensor:
        self.replace.clear()
        if context is not None:
            self.replace[UNCOND] = context
        return self.model_k(x, sigma * self.s_in, **self.extra_args)


@dataclass
class _Trajectory:
    """What an inversion method produces: the start latent and the per-step unconditional contexts
    (None: the prompt's own negative)."""

    start: Tensor
    uncond: tuple[Tensor, ...] | None
    inner_steps: tuple[int, ...] = ()


def _run_method(
    evaluator: _GuidedEvaluator,
    method: str,
    x0: Tensor,
    sigmas: Tensor,
    steps: int,
    cfg: float,
    positive_context: Tensor,
    negative_context: Tensor,
    settings: inv.NullTextSettings,
    fixed_point_iterations: int,
    flow: bool,
    tick: Callable[[], None],
) -> _Trajectory:
    """Invert x0 (model space) along `sigmas` with one method."""

    def on_step(_i):
        tick()

    if method == inv.FIXED_POINT:
        context = positive_context.to(x0.device)
        trajectory = inv.fixed_point_invert(
            lambda x, s: evaluator.guided(x, s, context), x0, sigmas, fixed_point_iterations, on_step
        )
        return _Trajectory(trajectory[0].detach(), (context,) * int(steps))
    trajectory = inv.ddim_invert(evaluator.cond_only, x0, sigmas, on_step)
    if method != inv.NULL_TEXT:
        return _Trajectory(trajectory[0].detach(), None)
    embeddings, stats = inv.null_text_optimize(
        evaluator.guided, evaluator.cond_only, evaluator.uncond_only, trajectory, sigmas,
        negative_context.to(x0.device), cfg, settings, on_step, tick, flow=flow,
    )
    return _Trajectory(trajectory[0].detach(), embeddings, tuple(stats.inner_steps))


def _check_invert_inputs(model, latent_samples: Tensor, steps: int, cfg: float, method: str) -> None:
    if method not in inv.METHODS:
        raise ValueError(f"method must be one of {', '.join(inv.METHODS)}, got {method!r}")
    if latent_samples.ndim != 4:
        raise ValueError(f"latent: expected a batch of image latents (N, C, H, W), got shape {tuple(latent_samples.shape)}")
    if int(steps) < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    check_method_fits(model, method, cfg)


def invert(
    model,
    positive: list,
    negative: list,
    latent_samples: Tensor,
    steps: int,
    cfg: float,
    method: str,
    settings: inv.NullTextSettings = inv.NullTextSettings(),
    fixed_point_iterations: int = 1,
    on_tick: Callable[[], None] | None = None,
) -> tuple[StereoInversion, InversionReport]:
    """Invert encoded photos (LATENT space, N x C x H x W) for Euler sampling at `cfg` over `steps`.

    on_tick is called after every step of every phase and every inner optimisation step (progress
    and interruption). The inversion runs inside the host's CFG guider, which prepares the
    conditioning and the model exactly as a sampler would; the guider's own output is not used.
    """
    _check_invert_inputs(model, latent_samples, steps, cfg, method)
    n = latent_samples.shape[0]
    sigmas = inversion_sigmas(model, int(steps))
    flow = is_flow_model(model)
    tick = on_tick or (lambda: None)

    with torch.inference_mode(False), torch.enable_grad():
        latent = latent_samples.detach().clone()
        sigmas = sigmas.clone()
        positive, negative = _clone_conditioning(positive), _clone_conditioning(negative)
        positive_context = _context_rows(positive, n, "positive")
        negative_context = _context_rows(negative, n, "negative")
        replace: dict[int, Tensor] = {}
        patched, swap = _with_context_swap(model, lambda kind, sigma: replace.get(kind))
        if method == inv.NULL_TEXT:
            _make_weights_differentiable(patched)

        def run(model_k, x, sigmas_dev, extra_args) -> _Trajectory:
            x0 = getattr(model_k, "latent_image", None)
            x0 = x if x0 is None else x0
            evaluator = _GuidedEvaluator(model_k, extra_args, replace, x0)
            return _run_method(
                evaluator, method, x0, sigmas_dev, steps, cfg, positive_context, negative_context,
                settings, fixed_point_iterations, flow, tick,
            )

        result = _within_guider(patched, positive, negative, cfg, latent, sigmas, run)

    report = InversionReport(
        evaluations=swap.chunks, backward_passes=sum(result.inner_steps), inner_steps=result.inner_steps
    )
    store = comfy.model_management.intermediate_device()
    inversion = StereoInversion(
        start_latent=result.start.detach().to(store),
        sigmas=sigmas,
        uncond_embeddings=None if result.uncond is None else tuple(u.detach().to(store) for u in result.uncond),
        method=method,
        cfg=float(cfg),
        model_signature=model_signature(model),
        source_fingerprint=inv.latent_fingerprint(latent_samples),
    )
    return with_first_prediction(inversion, model, positive, negative), report


def progress_ticks(method: str, steps: int, settings: inv.NullTextSettings) -> int:
    """An upper bound of on_tick calls, for a progress bar."""
    if method == inv.NULL_TEXT:
        return steps * (2 + settings.inner_steps)
    return steps


# ---------------------------------------------------------------------------------------------
# Checking that a sampler uses the inversion's model and conditioning


def with_first_prediction(inversion: StereoInversion, model, positive, negative) -> StereoInversion:
    """The inversion with the guided prediction of the first sampling step recorded (one call)."""
    patched = with_inverted_unconds(model, inversion)
    start = inversion.start_latent

    def first(model_k, x, sigmas, extra_args) -> Tensor:
        s_in = x.new_ones(x.shape[0])
        return model_k(start.to(x), sigmas[0] * s_in, **extra_args).detach()

    prediction = _within_guider(
        patched, positive, negative, inversion.cfg, torch.zeros_like(start), inversion.sigmas, first
    )
    store = comfy.model_management.intermediate_device()
    return dataclasses.replace(inversion, first_prediction=prediction.to(store))


def first_prediction_check(inversion: StereoInversion) -> Callable[[Tensor], None] | None:
    """A check for the sampler's first left prediction: it must be the inversion's own."""
    reference = inversion.first_prediction
    if reference is None:
        return None

    def check(prediction: Tensor) -> None:
        mismatch = inv.prediction_mismatch(prediction, reference)
        if mismatch > inv.PREDICTION_MISMATCH:
            raise ValueError(
                "inversion: it was made with another model (other weights, LoRAs or model patches) or "
                f"other positive/negative prompts than this sampler uses (first step differs by {mismatch:.3g} "
                "of its range); the photo cannot be reproduced. Feed Stereo Null-Text Inversion the same "
                "model and conditioning as the sampler (patches that only act on the right eye, such as "
                "Stereo Attention Patch, may differ)."
            )

    return check
