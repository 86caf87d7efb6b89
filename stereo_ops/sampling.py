"""The StereoDiffusion sampling loop around any k-diffusion style sampler function.

A sampler function has the signature of comfy/k_diffusion/sampling.py:
`fn(model, x, sigmas, extra_args=None, callback=None, disable=None, **options) -> x`. The stereo
edits must act on the solver's state *before* the model call of a step, which a callback after
the step cannot do; so the schedule is cut at the edit steps and the sampler runs segment by
segment, the state being edited between segments:

    [0, shift)        left views only: the right views are replaced at the shift anyway, so
                      evaluating the model on them would be wasted work
    shift             right = pixel shift of left (holes zero or, with deblur, fresh noise)
    SPSMD step k      right[filled] = pixel shift of the current left
    ... to the end    both views as one batch

A multistep solver restarts its history at each cut, which is what an edited state needs.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

import torch

from .disparity import prepare_disparity
from .attention import StereoPass
from .pixel_shift import ShiftMode, displacement, stereo_views, warp_left, warp_right
from .schedule import StereoSchedule
from .spsmd import deblur_fill, spsmd_copy

SamplerFn = Callable[..., torch.Tensor]
# Given (model, model_kwargs, rows), return the model and kwargs for the batch rows `rows` only
# (the host's model wrapper may hold per-row tensors such as an inpainting latent or mask).
RestrictFn = Callable[[Any, dict, slice], tuple[Any, dict]]
# Given (model_kwargs, info), return kwargs whose transformer options carry `info`: either the
# number of pairs of a joint stereo batch, or a StereoPass for one eye's half.
MarkFn = Callable[[dict, Any], dict]


@dataclass(frozen=True)
class StereoShiftSettings:
    """What the edits do. `disparity` is one map (H, W) or one per pair (N, H, W), any size, 0..1."""

    disparity: torch.Tensor
    divergence: float
    convergence: float = 0.0
    mode: ShiftMode = "subpixel"
    balance: float = 0.0
    deblur: bool = True


def _segments(schedule: StereoSchedule) -> list[tuple[int, int]]:
    cuts = [0, schedule.shift_step, *schedule.spsmd_steps, schedule.steps]
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


class _PairedNoise:
    """A seeded N(0, 1) noise sampler that gives both eyes of a pair the same noise.

    Ancestral and SDE samplers add fresh noise at every step; with independent noise per eye the
    two views would drift apart where nothing else ties them, and divergence 0 would no longer
    give two identical eyes.
    """

    def __init__(self, x: torch.Tensor, seed: int | None, pairs: int) -> None:
        self.pairs = pairs
        self.generator = torch.Generator(device="cpu").manual_seed(int(seed or 0) + 0x5E5)
        self.shape = x.shape[1:]
        self.dtype, self.device = x.dtype, x.device

    def __call__(self, sigma=None, sigma_next=None) -> torch.Tensor:
        n = torch.randn((self.pairs, *self.shape), generator=self.generator, dtype=torch.float32)
        n = n.to(device=self.device, dtype=self.dtype)
        return torch.cat([n, n], dim=0)


def _accepts(fn: SamplerFn, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params


def _offset_callback(callback, offset: int):
    if callback is None:
        return None
    return lambda d: callback({**d, "i": d["i"] + offset})


class _SplitEyes:
    """The model seen by the sampler on a stereo batch: left views, then right views, as two calls.

    Attribute access falls through to the wrapped model, which some samplers read.
    """

    def __init__(self, model, pairs: int, restrict: RestrictFn, mark: MarkFn) -> None:
        self._model, self._pairs, self._restrict, self._mark = model, pairs, restrict, mark

    def __getattr__(self, name):
        return getattr(self._model, name)

    def __call__(self, x, sigma, **kwargs):
        n = self._pairs
        info_left, info_right = StereoPass("left"), StereoPass("right")
        info_right.store = info_left.store
        out = []
        for rows, info in ((slice(0, n), info_left), (slice(n, 2 * n), info_right)):
            model, kw = self._restrict(self._model, kwargs, rows)
            s = sigma[rows] if sigma.ndim and sigma.shape[0] == x.shape[0] else sigma
            out.append(model(x[rows], s, **self._mark(kw, info)))
        return torch.cat(out, dim=0)


class _JointEyes(_SplitEyes):
    """Both eyes in one batch, marked as a stereo batch (bidirectional attention needs it)."""

    def __call__(self, x, sigma, **kwargs):
        return self._model(x, sigma, **self._mark(kwargs, self._pairs))


def stereo_sample(
    sampler_fn: SamplerFn,
    model: Any,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    schedule: StereoSchedule,
    settings: StereoShiftSettings,
    restrict: RestrictFn,
    mark: MarkFn,
    joint: bool = False,
    extra_args: dict | None = None,
    callback=None,
    disable=None,
    start: torch.Tensor | None = None,
    **options,
) -> torch.Tensor:
    """Run `sampler_fn` over `sigmas` on the stereo batch `x` (2N) with the StereoDiffusion edits.

    After the shift the model sees the eyes as two calls (left, then right), unless `joint`: a
    patch that needs both eyes in one batch (bidirectional attention) asks for that.
    `start` (N, ...) replaces the left views of the initial state (an inverted photo).
    """
    extra_args = dict(extra_args or {})
    steps = len(sigmas) - 1
    if steps != schedule.steps:
        raise ValueError(f"schedule planned for {schedule.steps} steps but the sampler got {steps}")
    if x.shape[0] % 2:
        raise ValueError(f"the latent batch {x.shape[0]} is not a stereo batch (2N: N lefts, then N rights)")
    pairs = x.shape[0] // 2
    # Values are used as given (0 = far, 1 = near): normalising is the disparity nodes' choice
    # (per image, or per batch for video), not the sampler's.
    disparity = prepare_disparity(
        settings.disparity.to(x.device), x.shape[-2], x.shape[-1], normalize=False, batch_size=pairs
    )
    left = x[:pairs] if start is None else start.to(device=x.device, dtype=x.dtype)

    noise_sampler = None
    if _accepts(sampler_fn, "noise_sampler") and "noise_sampler" not in options:
        noise_sampler = _PairedNoise(x, extra_args.get("seed"), pairs)

    def run(model_, state, a, b, args, paired_noise):
        opts = dict(options)
        if paired_noise is not None:
            opts["noise_sampler"] = paired_noise
        return sampler_fn(model_, state, sigmas[a : b + 1], extra_args=args,
                          callback=_offset_callback(callback, a), disable=disable, **opts)

    segments = _segments(schedule)
    # Before the shift: the left views alone.
    a, b = segments[0]
    left_model, left_args = restrict(model, extra_args, slice(0, pairs))
    half_noise = None
    if noise_sampler is not None:
        half_noise = lambda s=None, sn=None: noise_sampler(s, sn)[:pairs]  # noqa: E731
    left = run(left_model, left, a, b, left_args, half_noise)

    # The shift, on the state at the shift step.
    views = stereo_views(left, disparity, settings.divergence, settings.convergence, settings.balance, settings.mode)
    new_left, right = views.left.image, views.right.image
    if settings.deblur:
        gen = torch.Generator(device="cpu").manual_seed(int(extra_args.get("seed") or 0) + 0xDEB)
        noise = torch.randn((2, *right.shape), generator=gen, dtype=torch.float32).to(right)
        right = deblur_fill(right, views.right.holes, noise[1], sigmas[b])
        if settings.balance > 0.0:
            new_left = deblur_fill(new_left, views.left.holes, noise[0], sigmas[b])
    state = torch.cat([new_left, right], dim=0)
    # After a balanced shift the left view is itself warped, so SPSMD re-derives the right view
    # from it with the disparity as seen from the left eye, moved by the full parallax.
    spsmd_disparity, spsmd_source = disparity, None
    if settings.balance > 0.0:
        a_full = displacement(disparity, settings.divergence, settings.convergence)
        seen = warp_right(disparity.unsqueeze(1), a_full * settings.balance, settings.mode)
        spsmd_disparity, spsmd_source = seen.image[:, 0], seen.filled

    stereo_model = (_JointEyes if joint else _SplitEyes)(model, pairs, restrict, mark)
    for a, b in segments[1:]:
        if a in schedule.spsmd_steps:
            lefts, rights = state[:pairs], state[pairs:]
            shifted = warp_left(
                lefts,
                displacement(spsmd_disparity, settings.divergence, settings.convergence),
                settings.mode,
                spsmd_source,
            )
            state = torch.cat([lefts, spsmd_copy(rights, shifted.image, shifted.filled)], dim=0)
        state = run(stereo_model, state, a, b, extra_args, noise_sampler)
    return state
