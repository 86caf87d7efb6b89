"""The stereo sampling method inside the host's samplers: what stereo_ops.sampling needs from ComfyUI.

* which solvers can be used and where their state is reachable;
* the noise each solver would draw for itself, so that the left views are the plain render;
* model calls on some rows of the stereo batch (inpainting inputs per eye, attention marks), with
  the per-call hooks a solver installs (CFG++) seeing the whole batch;
* a host SAMPLER object wrapping all of it.
"""

from __future__ import annotations

import copy
import math
from typing import Callable

import comfy.k_diffusion.sampling as k_sampling
import comfy.model_management
import comfy.samplers
import torch

from ..stereo_ops import plan_schedule
from ..stereo_ops.frame_noise import frame_noise, frame_seed, step_noise_sampler
from ..stereo_ops.sampling import (
    AT_MODEL_INPUT,
    DEBLUR_SEED_OFFSET,
    derived_seed,
    EyeCall,
    StereoEdits,
    StereoShiftSettings,
    at_callback,
    stereo_sample,
)
from ..stereo_ops.checks import check_finite
from ..stereo_ops.stereo_inpaint import InpaintSource, shifted_inpaint_source
from .stereo_types import STEREO_JOINT_OPTION, STEREO_PAIRS_OPTION, STEREO_PASS_OPTION

# These pick their own steps between sigma_max and sigma_min, so "before step k" has no meaning.
REFUSED_SAMPLERS = {
    "dpm_fast": "it chooses its own step sizes",
    "dpm_adaptive": "it chooses its own steps adaptively",
}

# UniPC evaluates the model at predicted points only and hands its state (scaled by the VP factor
# 1/sqrt(1 + sigma^2)) to the step callback; its last reported state is the final one.
_UNIPC = at_callback(lambda sigma: 1.0 / math.sqrt(1.0 + sigma * sigma), unreachable_tail=1)
STATE_ACCESS = {"uni_pc": _UNIPC, "uni_pc_bh2": _UNIPC}


def supported_samplers() -> list[str]:
    return [s for s in comfy.samplers.SAMPLER_NAMES if s not in REFUSED_SAMPLERS]


def check_sampler_name(sampler_name: str) -> None:
    if sampler_name in REFUSED_SAMPLERS:
        raise ValueError(
            f"sampler_name '{sampler_name}' cannot be used for stereo sampling: {REFUSED_SAMPLERS[sampler_name]}. "
            f"Supported samplers: {', '.join(supported_samplers())}"
        )
    if sampler_name not in comfy.samplers.SAMPLER_NAMES:
        raise ValueError(
            f"unknown sampler_name '{sampler_name}'. Supported samplers: {', '.join(supported_samplers())}"
        )


def _uses_brownian_tree(sampler_name: str) -> bool:
    # The host's DPM++ SDE family draws its noise from a Brownian tree (on the CPU unless "_gpu");
    # every other noisy solver uses the default seeded sampler.
    return sampler_name.startswith("dpmpp_") and "sde" in sampler_name


def left_noise_factory(sampler_name: str, sigmas: torch.Tensor, seed, frames: list[int] | None = None) -> Callable:
    """The noise sampler the solver builds for itself in a plain run, built on the left rows; with
    `frames` (the rows' frame indices), each row draws from its frame's own seed instead."""

    def factory(left: torch.Tensor):
        if _uses_brownian_tree(sampler_name):
            positive = sigmas[sigmas > 0]
            tree_seed = seed if frames is None else [frame_seed(seed or 0, i) for i in frames]
            return k_sampling.BrownianTreeNoiseSampler(
                left, positive.min(), sigmas.max(), seed=tree_seed, cpu=not sampler_name.endswith("_gpu")
            )
        if frames is not None:
            return step_noise_sampler(left, seed or 0, frames)
        return k_sampling.default_noise_sampler(left, seed=seed)

    return factory


def _rows(t, rows: slice):
    return t[rows] if isinstance(t, torch.Tensor) and t.ndim and t.shape[0] > 1 else t


class StereoRows:
    """Per-row host state of the model for the stereo batch: the left rows' inpainting inputs and
    the right rows' shifted ones, so that any row range can be evaluated."""

    def __init__(self, model_k, kwargs: dict, edits: StereoEdits, pairs: int) -> None:
        mask = kwargs.get("denoise_mask")
        latent = getattr(model_k, "latent_image", None)
        noise = getattr(model_k, "noise", None)
        self.latent = self.noise = self.mask = None
        if not all(isinstance(t, torch.Tensor) for t in (mask, latent, noise)):
            return
        source = InpaintSource(
            latent.expand(pairs, *latent.shape[1:]) if latent.shape[0] == 1 else latent,
            noise, mask.expand(pairs, *mask.shape[1:]) if mask.shape[0] == 1 else mask,
        )
        right = shifted_inpaint_source(source, edits.right_view)
        left = source if edits.settings.balance == 0.0 else shifted_inpaint_source(source, edits.left_view)
        self.latent = torch.cat([left.latent, right.latent])
        self.noise = torch.cat([left.noise, right.noise])
        self.mask = torch.cat([left.mask, right.mask])

    def restrict(self, model_k, kwargs: dict, rows: slice):
        """The host's sampler model and its call arguments for some rows of the stereo batch."""
        model_k = copy.copy(model_k)
        args = dict(kwargs)
        if self.mask is not None:
            model_k.latent_image, model_k.noise = self.latent[rows], self.noise[rows]
            args["denoise_mask"] = self.mask[rows]
        else:
            for name in ("latent_image", "noise"):
                setattr(model_k, name, _rows(getattr(model_k, name, None), rows))
            args["denoise_mask"] = _rows(args.get("denoise_mask"), rows)
        return model_k, args


def _mark(kwargs: dict, info) -> dict:
    """Call arguments whose transformer options tell attention patches what is being evaluated."""
    if info is None:
        return kwargs
    args = dict(kwargs)
    options = dict(args.get("model_options", {}))
    transformer_options = dict(options.get("transformer_options", {}))
    key = STEREO_PAIRS_OPTION if isinstance(info, int) else STEREO_PASS_OPTION
    transformer_options[key] = info
    options["transformer_options"] = transformer_options
    args["model_options"] = options
    return args


_POST_CFG = "sampler_post_cfg_function"


def _capture_post_cfg(kwargs: dict):
    """Wrap the post-CFG hooks of a call so that the arguments they get are recorded."""
    options = kwargs.get("model_options") or {}
    hooks = list(options.get(_POST_CFG) or [])
    records: list[list[dict]] = [[] for _ in hooks]
    if not hooks:
        return kwargs, hooks, records

    def recorded(i, hook):
        def run(args):
            records[i].append(args)
            return hook(args)

        return run

    options = dict(options)
    options[_POST_CFG] = [recorded(i, h) for i, h in enumerate(hooks)]
    return {**kwargs, "model_options": options}, hooks, records


def _whole_batch(values: list, batch: int):
    if not all(isinstance(v, torch.Tensor) and v.ndim for v in values):
        return values[0]
    t = torch.cat(values, dim=0)
    if t.shape[0] * 2 == batch:  # only the left rows were evaluated: their pairs share the values
        t = torch.cat([t, t], dim=0)
    return t if t.shape[0] == batch else values[0]


def _replay_post_cfg(hooks: list, per_call: list[list[list[dict]]], batch: int) -> None:
    """Call each post-CFG hook once more with the arguments of the whole batch.

    Solvers such as the CFG++ family read a value a hook captured during the model call (the
    unconditional prediction). Split into calls per eye, the hook last saw one eye only; replayed
    with the whole batch it leaves exactly what a single call would have left. Its result is not
    used: each eye's prediction already went through the hooks in its own call.
    """
    for i, hook in enumerate(hooks):
        seen = [records[i][-1] for records in per_call if records[i]]
        if len(seen) != len(per_call):
            continue
        hook({key: _whole_batch([args[key] for args in seen], batch) for key in seen[0]})


def make_evaluate(rows: StereoRows | None):
    def evaluate(model_k, calls: list[EyeCall], kwargs: dict, batch: int) -> list[torch.Tensor]:
        outs, per_call, hooks = [], [], []
        for call in calls:
            model_rows, args = rows.restrict(model_k, kwargs, call.rows) if rows else (model_k, kwargs)
            args, hooks, records = _capture_post_cfg(_mark(args, call.info))
            outs.append(model_rows(call.x, call.sigma, **args))
            per_call.append(records)
        if hooks and not (len(calls) == 1 and calls[0].x.shape[0] == batch):
            _replay_post_cfg(hooks, per_call, batch)
        return outs

    return evaluate


def dry_model(x, sigma, **kwargs):
    """A stand-in prediction for the dry run, passed through the post-CFG hooks as the host does
    (solvers of the CFG++ family read what their hook captured)."""
    out = x * 0.5
    options = kwargs.get("model_options") or {}
    for hook in options.get(_POST_CFG) or []:
        out = hook({
            "denoised": out, "cond": None, "uncond": None, "cond_scale": 1.0, "model": None,
            "uncond_denoised": out, "cond_denoised": out, "sigma": sigma, "model_options": options, "input": x,
        })
    return out


def _needs_joint_batch(extra_args: dict | None) -> bool:
    options = (extra_args or {}).get("model_options", {}).get("transformer_options", {})
    return bool(options.get(STEREO_JOINT_OPTION))


def _fill_noise(model_k):
    """Pure noise at a level in the model's own parameterisation (eps and flow models alike)."""
    try:
        sampling = model_k.inner_model.inner_model.model_sampling
    except AttributeError:
        return None
    return lambda sigma, noise: sampling.noise_scaling(sigma, noise.clone(), torch.zeros_like(noise))


EYES = ("batched", "separate")


class UsedDisparity:
    """Where a sampler leaves the disparity it used, at image size (N, H, W), for its output."""

    def __init__(self) -> None:
        self.map: torch.Tensor | None = None
        # The shape of the stereo batch the sampler last made (None: it has not sampled).
        self.sampled_shape: tuple[int, ...] | None = None


def prediction_disparity(vae, disparity_model, used: UsedDisparity):
    """The one-pass estimate: decode the sampler's prediction of the left images with `vae` and run
    the disparity model on it, as Estimate Disparity does (per image normalisation, native size)."""
    from .depth import run_disparity_model  # the depth networks are an optional part

    def estimate_for(model_k):
        patcher = model_k.inner_model.model_patcher

        def estimate(prediction: torch.Tensor) -> torch.Tensor:
            comfy.model_management.throw_exception_if_processing_interrupted()
            latent = patcher.model.process_latent_out(prediction.detach().float())
            images = vae.decode(latent.to(comfy.model_management.intermediate_device()))
            if images.ndim == 5:  # decoders of video-capable VAEs add a frame axis
                images = images.reshape(-1, *images.shape[-3:])
            disparity = run_disparity_model(disparity_model, images[..., :3], progress=False)
            # Decoding and estimating may have pushed the diffusion model out of the device memory.
            comfy.model_management.load_models_gpu([patcher])
            used.map = disparity
            return disparity

        return estimate

    return estimate_for


def stereo_ksampler_object(
    sampler_name: str,
    settings: StereoShiftSettings,
    shift_at: float,
    spsmd: bool,
    spsmd_interval: float,
    start: torch.Tensor | None = None,
    check_first_left: Callable[[torch.Tensor], None] | None = None,
    estimate_for=None,
    refresh: bool = False,
    eyes: str = "batched",
    frames: list[int] | None = None,
    hole_start_for=None,
) -> comfy.samplers.KSAMPLER:
    """A host SAMPLER that runs `sampler_name` with the stereo edits: N images in, 2N out.

    `estimate_for(model_k)` gives the one-pass estimate when the settings carry no disparity;
    `eyes` "batched" evaluates both eyes in one model call after the shift, "separate" in two
    (the left images are then bit-identical to the plain sampler's). `frames`, the frame index of
    each image, gives every image its own noise streams (see stereo_ops.frame_noise), so that a clip
    sampled in chunks gets the same noise whatever the chunk size. `hole_start_for(model_k)` gives
    the edits a start for the right view's holes (stereo_ops.sampling.HoleStartFn).
    """
    if eyes not in EYES:
        raise ValueError(f"eyes must be one of {', '.join(EYES)}, got {eyes!r}")
    check_sampler_name(sampler_name)
    inner = comfy.samplers.sampler_object(sampler_name)
    if not isinstance(inner, comfy.samplers.KSAMPLER):
        raise ValueError(f"sampler_name '{sampler_name}' is not a step-wise sampler and cannot be used")
    access = STATE_ACCESS.get(sampler_name, AT_MODEL_INPUT)

    def sampler_function(model, x, sigmas, extra_args=None, callback=None, disable=None, **options):
        extra_args = dict(extra_args or {})
        if x.ndim != 4:
            raise ValueError(
                f"latent: stereo sampling needs an image latent (batch, channels, height, width); got shape "
                f"{tuple(x.shape)}. Video models (5-D latents) are not supported: make the pair per frame with an "
                "image model, or warp the frames with Stereo Warp."
            )
        check_finite(x, "latent_image")  # a NaN in the sampler's latent reaches every step
        steps = len(sigmas) - 1
        try:
            schedule = plan_schedule(steps, shift_at, spsmd_interval, spsmd, steps - 1 - access.unreachable_tail)
        except ValueError as exc:
            raise ValueError(f"sampler_name '{sampler_name}': {exc}") from None
        pairs = x.shape[0] if start is None else start.shape[0]
        like = x if start is None else start.to(x)
        seed = extra_args.get("seed")
        deblur = None
        if frames is not None and settings.deblur:
            deblur = frame_noise(derived_seed(seed, DEBLUR_SEED_OFFSET), frames, like.shape[1:], rows_per_frame=2)
        edits = StereoEdits(settings, pairs, like, seed, _fill_noise(model), deblur_noise=deblur)
        if hole_start_for is not None:
            edits.hole_start = hole_start_for(model)
        rows = StereoRows(model, extra_args, edits, pairs)
        try:
            return stereo_sample(
                inner.sampler_function, model, x, sigmas,
                schedule=schedule, settings=settings, evaluate=make_evaluate(rows),
                joint=eyes == "batched" or _needs_joint_batch(extra_args), access=access,
                noise_sampler_factory=left_noise_factory(sampler_name, sigmas, seed, frames),
                extra_args=extra_args, callback=callback, disable=disable, start=start,
                check_first_left=check_first_left, edits=edits, dry_model=dry_model,
                estimate=estimate_for(model) if estimate_for is not None else None, refresh=refresh, **options,
            )
        except ValueError as exc:
            if "does not pass its state" in str(exc):
                raise ValueError(
                    f"sampler_name '{sampler_name}' cannot be used for stereo sampling: {exc}. "
                    f"Supported samplers: {', '.join(supported_samplers())}"
                ) from None
            raise

    return comfy.samplers.KSAMPLER(sampler_function, inner.extra_options, inner.inpaint_options)
