"""The StereoDiffusion sampling loop around any k-diffusion style sampler function.

A sampler function has the signature of comfy/k_diffusion/sampling.py:
`fn(model, x, sigmas, extra_args=None, callback=None, disable=None, **options) -> x`.

The sampler runs ONCE over the whole schedule on a stereo batch of 2N (N lefts, then N rights),
so a multistep solver keeps its history and the left views follow exactly the trajectory of a
plain run. The stereo edits act on the solver's own state tensor, in place, at the moment the
solver hands it on:

    before the shift   only the left views are evaluated; the right rows start as the stereo shift
                       of the left start and get the shift of the left prediction, so that a
                       multistep history is consistent with the shifted state when it happens
    shift (step k)     right = pixel shift of left (holes zero or, with deblur, fresh noise)
    SPSMD step k       right[filled] = pixel shift of the current left
    ... to the end     left and right evaluated (two calls, or one joint call)

Where the state is reachable is a property of the solver (see `StateAccess`): most solvers call
the model on their state at the start of each step (`at_model_input`), which `find_state_calls`
establishes by a dry run with a dummy model; a few (UniPC) only report their state through the
step callback, in their own scaling (`at_callback`).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from .attention import StereoPass
from .disparity import fit_disparity_to_grid
from .pixel_shift import ShiftMode, ShiftResult, warp_left, warp_right
from .schedule import StereoSchedule
from .spsmd import deblur_fill, spsmd_copy
from .stereo_geometry import DisplayTarget, StereoGeometry, geometry_for

SamplerFn = Callable[..., torch.Tensor]
# (sigma, unit_noise) -> the sampler-state value of pure noise at that level (the model's own
# noise parameterisation: sigma * noise for eps and flow models alike, for a zero signal).
FillNoiseFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# (left_state_n) -> a callable (sigma, sigma_next) -> noise for the N left rows, exactly the one
# the sampler would build for itself in a plain run of those N rows.
NoiseSamplerFactory = Callable[[torch.Tensor], Callable[..., torch.Tensor]]
# (right view after the shift, its holes (N, h, w), sigma, state scale) -> the right view with its
# holes started otherwise than by the deblur fill (a frame's holes from the previous frame's result).
HoleStartFn = Callable[[torch.Tensor, torch.Tensor, float, float], torch.Tensor]

# Seeds of the method's own noise, offset from the sampling seed so they never coincide with the
# sampler's noise stream: the deblur fill of the holes the shift opens ("DEB").
DEBLUR_SEED_OFFSET = 0xDEB


def derived_seed(seed: int | None, offset: int) -> int:
    """A sub-seed of `seed`, wrapped into the 64-bit range the seed widget and torch accept (a seed
    near 2**64 plus an offset would overflow the generator)."""
    return (int(seed or 0) + offset) % 2**64


@dataclass(frozen=True)
class StereoShiftSettings:
    """What the edits do. `disparity` is one map (H, W) or one per pair (N, H, W), any size, 0..1,
    or None when it is estimated during sampling. With a display `target`, divergence,
    convergence and floating_window are ignored: they are derived from the target's budget and the
    map's disparity range (`stereo_geometry.geometry_for`) once the map is known (a map estimated
    during sampling). A caller that has the map can resolve the target itself, over the whole
    batch, and pass the settings it gives."""

    disparity: torch.Tensor | None
    divergence: float
    convergence: float = 0.0
    mode: ShiftMode = "subpixel"
    balance: float = 0.0
    deblur: bool = True
    target: DisplayTarget | None = None
    floating_window: bool = False

    def geometry(self, disparity: torch.Tensor | None) -> StereoGeometry:
        """The geometry these settings give for `disparity` (the map as given, before any resize)."""
        if self.target is None:
            return StereoGeometry(self.divergence, self.convergence, self.floating_window)
        return geometry_for(disparity, self.divergence, self.convergence, self.target)


@dataclass
class EyeCall:
    """One model evaluation on some rows of the stereo batch.

    `info` tells attention patches what is evaluated: None (plain rows, before the shift), a
    StereoPass (one eye's half of a split evaluation) or an int (a joint batch of that many pairs).
    """

    x: torch.Tensor
    sigma: torch.Tensor
    rows: slice
    info: Any = None


# (left predictions (N, C, h, w)) -> their disparity maps (N, H, W) in [0, 1], near = 1: the
# disparity estimated from the sampler's own prediction (one-pass text to stereo).
EstimateFn = Callable[[torch.Tensor], torch.Tensor]

# (model, calls, model_kwargs, batch) -> one output per call. Supplied by the host adapter: it
# restricts per-row host state (inpainting latents, masks) to the rows, marks each call for the
# attention patches, and lets hooks the solver placed in the call options see the whole batch.
EvaluateFn = Callable[[Any, list[EyeCall], dict, int], list[torch.Tensor]]


@dataclass(frozen=True)
class StateAccess:
    """Where a solver's state can be edited between steps.

    at_model_input: the model call that receives the state of step i is found by a dry run.
    at_callback: the step callback of step i reports the state of step i (UniPC); `scale(sigma)`
    is the factor of the solver's own representation of a state at `sigma`, and edits are only
    possible up to `last_step`-from-the-end (steps - 1 - `unreachable_tail`).
    """

    kind: str = "model_input"
    scale: Callable[[float], float] | None = None
    unreachable_tail: int = 0


AT_MODEL_INPUT = StateAccess()


def at_callback(scale: Callable[[float], float], unreachable_tail: int = 1) -> StateAccess:
    return StateAccess("callback", scale, unreachable_tail)


def _accepts(fn: SamplerFn, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params


DryModel = Callable[..., torch.Tensor]
"""(x, sigma, **model_kwargs) -> a stand-in prediction for a dry run (it may run the call's hooks)."""


def _half(x, sigma, **kwargs):
    return x * 0.5


class _Probe:
    """A stand-in model for a dry run: records what the solver passes to the model."""

    def __init__(self, model: Any, dry_model: DryModel) -> None:
        self._model, self._dry = model, dry_model
        self.inputs: list[torch.Tensor] = []
        self.sigmas: list[float] = []

    def __getattr__(self, name):
        return getattr(self._model, name)

    def __call__(self, x, sigma, **kwargs):
        self.inputs.append(x)
        self.sigmas.append(float(sigma.reshape(-1)[0]) if isinstance(sigma, torch.Tensor) else float(sigma))
        return self._dry(x, sigma, **kwargs)


def _same_sigma(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(abs(a), abs(b), 1e-12)


def find_state_calls(
    sampler_fn: SamplerFn,
    model: Any,
    like: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: dict,
    dry_model: DryModel = _half,
    **options,
) -> list[int | None]:
    """For each step i, the index of the model call that receives the solver's state of step i.

    A dry run with a stand-in model (the call sequence of a fixed-step solver depends on the
    sigmas only). The calls between the callbacks of steps i - 1 and i belong to step i (and to
    the later stages of step i - 1): the state call is the one that got the very tensor the
    callback reports as the state, or, for solvers that report a stale tensor there, the last
    call at sigma_i before the callback. None where there is no such call.
    """
    probe = _Probe(model, dry_model)
    reports: list[tuple[int, torch.Tensor, int]] = []
    opts = dict(options)
    if _accepts(sampler_fn, "noise_sampler"):
        opts["noise_sampler"] = lambda *a, **k: torch.zeros_like(like)
    sampler_fn(
        probe, like.clone(), sigmas, extra_args=dict(extra_args), disable=True,
        callback=lambda d: reports.append((int(d["i"]), d["x"], len(probe.inputs))), **opts,
    )
    steps = len(sigmas) - 1
    found: list[int | None] = [None] * steps
    previous_calls = 0
    for i, x, calls in reports:
        if 0 <= i < steps and found[i] is None:
            window = range(previous_calls, calls)
            found[i] = next((j for j in window if probe.inputs[j] is x), None)
            if found[i] is None:
                at_sigma = [j for j in window if _same_sigma(probe.sigmas[j], float(sigmas[i]))]
                found[i] = at_sigma[-1] if at_sigma else None
        previous_calls = calls
    return found


class PairedNoise:
    """The sampler's own noise for the left rows, given to the right rows as well.

    Ancestral and SDE solvers add fresh noise at every step. The left rows get exactly the noise
    a plain run of the N left images draws (same generator, same shape, same seed), so the left
    views stay the plain render; each right view gets its left view's noise, so divergence 0
    still gives two identical eyes.
    """

    def __init__(self, left_sampler: Callable[..., torch.Tensor]) -> None:
        self.left_sampler = left_sampler

    def __call__(self, sigma=None, sigma_next=None) -> torch.Tensor:
        n = self.left_sampler(sigma, sigma_next)
        return torch.cat([n, n], dim=0)


def _balanced_spsmd_source(a_full: torch.Tensor, settings: StereoShiftSettings):
    """After a balanced shift the left view is itself warped: SPSMD re-derives the right view from
    it with the displacement as seen from the left eye (the full parallax, carried there)."""
    seen = warp_right(a_full.unsqueeze(1), a_full * settings.balance, settings.mode)
    return seen.image[:, 0], seen.filled


class StereoEdits:
    """The stereo pixel shift and SPSMD on a stereo state of 2N rows, for one latent grid.

    The disparity may arrive late (estimated from the sampler's own prediction at the shift step):
    until it is set, both eyes' views are the left view itself.
    """

    def __init__(self, settings: StereoShiftSettings, pairs: int, like: torch.Tensor, seed: int | None,
                 fill_noise: FillNoiseFn | None = None, deblur_noise: torch.Tensor | None = None) -> None:
        self.settings, self.pairs = settings, pairs
        self.grid = (like.shape[-2], like.shape[-1])
        self.disparity = None
        self.geometry: StereoGeometry | None = None
        if settings.disparity is not None:
            self.set_disparity(settings.disparity.to(like.device))
        self.fill_noise = fill_noise or (lambda sigma, noise: noise * sigma.view(-1, *([1] * (noise.ndim - 1))))
        self.deblur_noise = None
        self.hole_start: HoleStartFn | None = None
        if settings.deblur and deblur_noise is not None:  # (2, N, ...): the caller's noise per frame
            self.deblur_noise = deblur_noise.to(device=like.device, dtype=like.dtype)
        elif settings.deblur:
            gen = torch.Generator(device="cpu").manual_seed(derived_seed(seed, DEBLUR_SEED_OFFSET))
            noise = torch.randn((2, pairs, *like.shape[1:]), generator=gen, dtype=torch.float32)
            self.deblur_noise = noise.to(device=like.device, dtype=like.dtype)

    def set_disparity(self, disparity: torch.Tensor) -> None:
        """Use this map (one, or one per pair; any size, 0..1) from now on."""
        h, w = self.grid
        self.geometry = self.settings.geometry(disparity)
        self.disparity = fit_disparity_to_grid(disparity, h, w, batch_size=self.pairs)
        self.shift_px = self.geometry.displacement(self.disparity)
        self.spsmd_shift, self.spsmd_source = self.shift_px, None
        if self.settings.balance > 0.0:
            self.spsmd_shift, self.spsmd_source = _balanced_spsmd_source(self.shift_px, self.settings)

    def _unmoved(self, view: torch.Tensor) -> ShiftResult:
        return ShiftResult(view, torch.ones((view.shape[0], *view.shape[2:]), dtype=torch.bool, device=view.device))

    def right_view(self, left: torch.Tensor) -> ShiftResult:
        if self.disparity is None:
            return self._unmoved(left)
        return warp_left(left, self.shift_px * (1.0 - self.settings.balance), self.settings.mode)

    def left_view(self, left: torch.Tensor) -> ShiftResult:
        if self.disparity is None:
            return self._unmoved(left)
        return warp_right(left, self.shift_px * self.settings.balance, self.settings.mode)

    def _fill(self, view: torch.Tensor, holes: torch.Tensor, eye: int, sigma: float, scale: float) -> torch.Tensor:
        if self.deblur_noise is None:
            return view
        s = torch.full((view.shape[0],), float(sigma), dtype=view.dtype, device=view.device)
        # the noise arrives scaled by the model's own parameterisation: deblur_fill's sigma is 1
        return deblur_fill(view, holes, self.fill_noise(s, self.deblur_noise[eye].to(view)) * scale, 1.0)

    def shift(self, state: torch.Tensor, sigma: float, scale: float = 1.0) -> None:
        """In place: the right rows become the shift of the left rows (holes: noise or zero)."""
        n = self.pairs
        left = state[:n].clone()
        right = self.right_view(left)
        state[n:] = self._fill(right.image, right.holes, 1, sigma, scale)
        if self.hole_start is not None:
            state[n:] = self.hole_start(state[n:].clone(), right.holes, sigma, scale)
        if self.settings.balance > 0.0:
            moved = self.left_view(left)
            state[:n] = self._fill(moved.image, moved.holes, 0, sigma, scale)

    def spsmd(self, state: torch.Tensor) -> None:
        """In place: the right rows' filled pixels are copied again from the shifted left rows."""
        n = self.pairs
        shifted = warp_left(state[:n], self.spsmd_shift, self.settings.mode, self.spsmd_source)
        state[n:] = spsmd_copy(state[n:], shifted.image, shifted.filled)

    def apply(self, step: int, schedule: StereoSchedule, state: torch.Tensor, sigma: float, scale: float) -> None:
        if step == schedule.shift_step:
            self.shift(state, sigma, scale)
        elif step in schedule.spsmd_steps:
            self.spsmd(state)


@dataclass
class _Run:
    """What the stereo model needs to know while the solver runs."""

    schedule: StereoSchedule
    edits: StereoEdits
    sigmas: torch.Tensor
    edit_calls: dict[int, int] = field(default_factory=dict)  # model call index -> step
    shifted: bool = False
    calls: int = 0
    first_left: Callable[[torch.Tensor], None] | None = None
    estimate: EstimateFn | None = None
    refresh: bool = False
    last_left: torch.Tensor | None = None

    def edit(self, step: int, state: torch.Tensor, scale: float) -> None:
        """The edit of `step` on `state`, after a new disparity estimate where one is due."""
        is_shift = step == self.schedule.shift_step
        if self.estimate is not None and (is_shift or self.refresh) and self.last_left is not None:
            self.edits.set_disparity(self.estimate(self.last_left))
        self.edits.apply(step, self.schedule, state, float(self.sigmas[step]), scale)
        self.shifted = self.shifted or is_shift


class StereoModel:
    """The model as the solver sees it on a stereo batch: applies the edits and splits the eyes.

    Attribute access falls through to the wrapped model, which some solvers read.
    """

    def __init__(self, model, run: _Run, evaluate: EvaluateFn, pairs: int, joint: bool) -> None:
        self._model, self._run, self._evaluate, self._pairs, self._joint = model, run, evaluate, pairs, joint

    def __getattr__(self, name):
        return getattr(self._model, name)

    def _sigma_rows(self, sigma, rows: slice, batch: int):
        return sigma[rows] if sigma.ndim and sigma.shape[0] == batch else sigma

    def __call__(self, x, sigma, **kwargs):
        run, n = self._run, self._pairs
        index = run.calls
        run.calls += 1
        step = run.edit_calls.get(index)
        if step is not None:
            run.edit(step, x, 1.0)
        batch = x.shape[0]
        if not run.shifted:
            out = self._evaluate(self._model, [EyeCall(x[:n], self._sigma_rows(sigma, slice(0, n), batch), slice(0, n))], kwargs, batch)[0]
            self._left_prediction(out)
            # The right rows' prediction is the shifted left one: a multistep history built from it
            # matches the shifted state once the shift has happened.
            right = run.edits.right_view(out).image
            return torch.cat([out, right], dim=0)
        if self._joint:
            call = EyeCall(x, sigma, slice(0, batch), n)
            out = self._evaluate(self._model, [call], kwargs, batch)[0]
            self._left_prediction(out[:n])
            return out
        left, right = StereoPass("left"), StereoPass("right")
        right.store = left.store
        calls = [
            EyeCall(x[:n], self._sigma_rows(sigma, slice(0, n), batch), slice(0, n), left),
            EyeCall(x[n:], self._sigma_rows(sigma, slice(n, batch), batch), slice(n, batch), right),
        ]
        outs = self._evaluate(self._model, calls, kwargs, batch)
        self._left_prediction(outs[0])
        return torch.cat(outs, dim=0)

    def _left_prediction(self, left_out: torch.Tensor) -> None:
        self._run.last_left = left_out
        hook, self._run.first_left = self._run.first_left, None
        if hook is not None:
            hook(left_out)


def _edit_calls(
    sampler_fn, model, state, sigmas, schedule: StereoSchedule, extra_args, dry_model, options
) -> dict[int, int]:
    state_calls = find_state_calls(sampler_fn, model, state, sigmas, extra_args, dry_model, **options)
    edit_calls = {}
    for step in (schedule.shift_step, *schedule.spsmd_steps):
        call = state_calls[step]
        if call is None:
            raise ValueError(
                "this sampler does not pass its state to the model at the start of a step, so the "
                "stereo shift cannot act on it"
            )
        edit_calls[call] = step
    return edit_calls


def stereo_sample(
    sampler_fn: SamplerFn,
    model: Any,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    schedule: StereoSchedule,
    settings: StereoShiftSettings,
    evaluate: EvaluateFn,
    joint: bool = False,
    access: StateAccess = AT_MODEL_INPUT,
    noise_sampler_factory: NoiseSamplerFactory | None = None,
    fill_noise: FillNoiseFn | None = None,
    extra_args: dict | None = None,
    callback=None,
    disable=None,
    start: torch.Tensor | None = None,
    check_first_left: Callable[[torch.Tensor], None] | None = None,
    edits: StereoEdits | None = None,
    dry_model: DryModel = _half,
    estimate: EstimateFn | None = None,
    refresh: bool = False,
    **options,
) -> torch.Tensor:
    """Run `sampler_fn` once over `sigmas` from the N left states `x` and return the stereo batch 2N.

    After the shift the model sees the eyes as two calls (left, then right), unless `joint`: a
    patch that needs both eyes in one batch (bidirectional attention) asks for that.
    `start` (N, ...) replaces the initial states (an inverted photo). `check_first_left` sees the
    first prediction of the left rows (to check that an inversion fits this model). `edits`, if
    given, must have been made for these settings and this latent (the caller may need them too).
    `dry_model` stands in for the model in the dry run that locates the solver's state.
    `estimate`, when the settings carry no disparity, turns the latest prediction of the left rows
    into the disparity at the shift step (and, with `refresh`, again at every SPSMD step).
    """
    extra_args = dict(extra_args or {})
    steps = len(sigmas) - 1
    if steps != schedule.steps:
        raise ValueError(f"schedule planned for {schedule.steps} steps but the sampler got {steps}")
    left = x if start is None else start.to(device=x.device, dtype=x.dtype)
    pairs = left.shape[0]
    if edits is None:
        edits = StereoEdits(settings, pairs, left, extra_args.get("seed"), fill_noise)
    # Until the shift the right rows follow the shifted left rows (state and prediction), so that a
    # solver's history, which may hold states as well as predictions, agrees with the shifted state.
    state = torch.cat([left, edits.right_view(left).image], dim=0)
    if settings.disparity is None and estimate is None:
        raise ValueError("stereo sampling needs a disparity map or a way to estimate one")
    run = _Run(schedule, edits, sigmas, first_left=check_first_left,
               estimate=estimate if settings.disparity is None else None, refresh=refresh)

    opts = dict(options)
    if noise_sampler_factory is not None and _accepts(sampler_fn, "noise_sampler") and "noise_sampler" not in opts:
        opts["noise_sampler"] = PairedNoise(noise_sampler_factory(left))

    inner_callback = callback
    if access.kind == "model_input":
        run.edit_calls = _edit_calls(sampler_fn, model, state, sigmas, schedule, extra_args, dry_model, options)
    else:
        last = steps - 1 - access.unreachable_tail
        if schedule.shift_step > last or any(s > last for s in schedule.spsmd_steps):
            raise ValueError(f"with this sampler, stereo edits are possible up to step {last} of {steps}")

        def inner_callback(d):
            step = int(d["i"])
            if step == schedule.shift_step or step in schedule.spsmd_steps:
                run.edit(step, d["x"], float(access.scale(float(sigmas[step]))))
            if callback is not None:
                callback(d)

    stereo_model = StereoModel(model, run, evaluate, pairs, joint)
    return sampler_fn(stereo_model, state, sigmas, extra_args=extra_args, callback=inner_callback,
                      disable=disable, **opts)
