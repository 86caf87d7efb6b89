"""A clip through the stereo sampler in chunks of frames, so that any length fits the GPU.

Each chunk is one host sampling run of its own batch; its stereo pairs go into one preallocated
output (N lefts, then N rights). Every frame's noise comes from the seed and its frame index
(stereo_ops.frame_noise), so a frame's left view does not depend on the chunk size. Progress runs
over all chunks; an interrupt is honoured between chunks (and by the host within one).
With `temporal_holes`, frame 0 runs first on its own, then each chunk's right-view holes start
from the last finished frame's right view carried to each frame (stereo_ops.hole_warm_start).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Callable

import comfy.model_management
import comfy.sample
import comfy.utils
import latent_preview
import torch
from comfy_api.latest import io

from ..stereo_ops.frame_noise import StartNoise, frame_ranges
from ..stereo_ops.hole_warm_start import carry, global_shift, warm_holes
from ..stereo_ops.inversion import StereoInversion
from ..stereo_ops.inversion_chunks import inversion_rows, join_inversions
from ..stereo_ops.sampling import StereoShiftSettings
from .inversion_runtime import first_prediction_check, with_inverted_unconds
from .sampling_runtime import UsedDisparity, stereo_ksampler_object


def frame_chunk_inputs() -> list:
    """Optional inputs for clips (after all older inputs, so saved workflows keep their links)."""
    return [
        io.Int.Input(
            "frame_chunk", default=0, min=0, max=4096, optional=True,
            tooltip="Frames per model batch for a clip: each chunk of this many frames is sampled on its own, "
            "so a clip of any length fits the GPU (lower it when memory runs out). 0 samples all frames as one "
            "batch with exactly the plain KSampler's noise. Above 0 every frame's noise comes from the seed and "
            "its frame index, so a frame's left view is the same whatever the chunk size.",
        ),
        io.Boolean.Input(
            "temporal_holes", default=False, optional=True,
            tooltip="For a clip: the right view's holes (what the shift uncovers) start from the previous finished "
            "frame's result, moved by the camera's motion, instead of from fresh noise, so they do not flicker. "
            "Frame 0 is sampled first, then the others in chunks of frame_chunk (0: all the rest at once). "
            "The left views are unchanged.",
        ),
    ]


def check_frame_chunk(frame_chunk) -> None:
    if int(frame_chunk) != frame_chunk or frame_chunk < 0:
        raise ValueError(f"frame_chunk must be 0 (all frames in one batch) or a whole number of frames, got {frame_chunk}")


@dataclass
class StereoMethod:
    """The sampler settings every chunk shares."""

    sampler_name: str
    settings: StereoShiftSettings
    shift_at: float
    spsmd: bool
    spsmd_interval: float
    refresh: bool
    eyes: str
    # (UsedDisparity) -> estimate_for, or None: the one-pass estimate, per chunk
    estimator: Callable[[UsedDisparity], Callable] | None = None


def _rows(t, rows: slice, n: int):
    """Rows of a per-frame tensor; a tensor shared by all frames (one row) as it is."""
    return t[rows] if isinstance(t, torch.Tensor) and t.ndim and t.shape[0] == n and n > 1 else t


def _control_rows(control, rows: slice, n: int):
    """A ControlNet chain whose per-frame hints are cut to the chunk (the host would otherwise
    take the first frames' hints for every chunk)."""
    if control is None:
        return None
    hint = getattr(control, "cond_hint_original", None)
    previous = getattr(control, "previous_controlnet", None)
    if not (isinstance(hint, torch.Tensor) and hint.shape[0] == n and n > 1) and previous is None:
        return control
    control = copy.copy(control)
    if isinstance(hint, torch.Tensor) and hint.shape[0] == n and n > 1:
        control.cond_hint_original = hint[rows]
        control.cond_hint = None
    if previous is not None:
        control.previous_controlnet = _control_rows(previous, rows, n)
    return control


def conditioning_rows(conditioning: list, rows: slice, n: int) -> list:
    """Conditioning with its per-frame parts (one row per frame of the clip) cut to the chunk."""
    out = []
    for tensor, extra in conditioning:
        extra = {k: _rows(v, rows, n) for k, v in extra.items()}
        if "control" in extra:
            extra["control"] = _control_rows(extra["control"], rows, n)
        out.append([_rows(tensor, rows, n), extra])
    return out


def chunk_plan(frames: int, frame_chunk: int, temporal_holes: bool) -> list[range]:
    """The chunks in sampling order: with temporal_holes frame 0 alone first (every later chunk
    starts its holes from a finished frame), then chunks of frame_chunk (0: all the rest)."""
    if not temporal_holes or frames <= 1:
        return frame_ranges(frames, frame_chunk)
    return [range(0, 1)] + [range(r.start + 1, r.stop + 1) for r in frame_ranges(frames - 1, frame_chunk)]


class _HoleCarry:
    """The right view's state at the shift step of the last finished frame, carried to the frames
    of the next chunk and put into their holes.

    That state is where the frame's result was sampled from: along the solver's deterministic path
    it is that result taken back to the shift's noise level. Carrying it (not the result noised
    afresh) gives the next frames the same start in their holes, whatever the model makes of it,
    and where the earlier frame saw background that is now uncovered, that background's state.
    """

    def __init__(self, inputs: torch.Tensor) -> None:
        self.inputs = inputs  # the frames' input latents, for the camera's motion
        self.index: int | None = None
        self.state: torch.Tensor | None = None
        self.chunk_states: torch.Tensor | None = None

    def for_frames(self, frames: range) -> torch.Tensor | None:
        """The last finished frame's state carried to each of `frames`, or None before frame 0 is done."""
        if self.index is None:
            return None
        limit = min(max(self.inputs.shape[-2:]) // 4, 16)
        shifts = [global_shift(self.inputs[self.index], self.inputs[i], max_shift=limit) for i in frames]
        return torch.stack([carry(self.state[0], s) for s in shifts])

    def hole_start_for(self, carried: torch.Tensor | None):
        """A hole start for stereo_ksampler_object that also records the chunk's states at the shift."""

        def for_model(model_k):
            def start(view, holes, sigma, scale):
                if carried is not None:
                    view = warm_holes(view, holes, carried.to(view) * scale)
                self.chunk_states = (view / scale).detach()
                return view

            return start

        return for_model

    def finished(self, frames: range) -> None:
        if self.chunk_states is None:
            raise RuntimeError("the sampler did not reach the stereo shift")
        self.index, self.state = frames.stop - 1, self.chunk_states[-1:].clone()
        self.chunk_states = None


def sample_in_chunks(
    model, positive, negative, latent_image: dict, latent: torch.Tensor, seed: int, cfg: float,
    sigmas: torch.Tensor, method: StereoMethod, frame_chunk: int, inversion: StereoInversion | None = None,
    temporal_holes: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The stereo batch (2N, ...) of `latent` (N frames), sampled chunk by chunk, and the one-pass
    disparity maps (N, H, W) where they were estimated (else None)."""
    n = latent.shape[0]
    plan = chunk_plan(n, frame_chunk, temporal_holes)
    steps = sigmas.shape[-1] - 1
    batch_index = latent_image.get("batch_index")
    indices = list(batch_index) if batch_index is not None else list(range(n))
    if len(indices) != n:
        raise ValueError(f"latent_image: batch_index has {len(indices)} entries for {n} images")
    noise_mask = latent_image.get("noise_mask")
    start_noise = StartNoise(seed, latent.shape[1:], latent.dtype)
    preview = latent_preview.prepare_callback(model, steps * len(plan))
    holes = _HoleCarry(latent) if temporal_holes else None
    out: torch.Tensor | None = None
    maps: list[torch.Tensor] = []
    settings = method.settings
    for number, frames in enumerate(plan):
        comfy.model_management.throw_exception_if_processing_interrupted()
        rows = slice(frames.start, frames.stop)
        chunk_indices = indices[rows]
        chunk_settings = settings
        if settings.disparity is not None:
            chunk_settings = dataclasses.replace(settings, disparity=_rows(settings.disparity, rows, n))
        used = UsedDisparity()
        estimate_for = method.estimator(used) if method.estimator is not None else None
        chunk_model, start, check = model, None, None
        if inversion is not None:
            part = inversion_rows(inversion, rows)
            chunk_model = with_inverted_unconds(model, part)
            start, check = part.start_latent, first_prediction_check(part)
        carried = holes.for_frames(frames) if holes is not None else None
        sampler = stereo_ksampler_object(
            method.sampler_name, chunk_settings, method.shift_at, method.spsmd, method.spsmd_interval, start, check,
            estimate_for, method.refresh, method.eyes, frames=chunk_indices,
            hole_start_for=holes.hole_start_for(carried) if holes is not None else None,
        )
        noise = start_noise.frames(chunk_indices, later=indices[rows.stop:])
        offset = number * steps
        samples = comfy.sample.sample_custom(
            chunk_model, noise, cfg, sampler, sigmas, conditioning_rows(positive, rows, n),
            conditioning_rows(negative, rows, n), latent[rows], noise_mask=_rows(noise_mask, rows, n),
            callback=lambda step, x0, x, total, o=offset: preview(o + step, x0, x, steps * len(plan)),
            disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed,
        )
        k = frames.stop - frames.start
        if out is None:
            out = torch.empty((2 * n, *samples.shape[1:]), dtype=samples.dtype, device=samples.device)
        out[rows] = samples[:k]
        out[n + frames.start:n + frames.stop] = samples[k:]
        if used.map is not None:
            maps.append(used.map)
        if holes is not None:
            holes.finished(frames)
    return out, (torch.cat(maps) if maps else None)


def invert_in_chunks(model, positive, negative, latent: torch.Tensor, steps: int, cfg: float, method: str,
                     frame_chunk: int, on_tick: Callable[[], None], **options) -> StereoInversion:
    """The inversion of a clip (N frames), chunk by chunk; every frame's inversion is its own, so
    this is the inversion of the whole batch up to the rounding of another batch size."""
    from . import inversion_runtime

    check_frame_chunk(frame_chunk)
    n = latent.shape[0]
    parts = []
    for frames in frame_ranges(n, frame_chunk):
        comfy.model_management.throw_exception_if_processing_interrupted()
        rows = slice(frames.start, frames.stop)
        part, _ = inversion_runtime.invert(
            model, conditioning_rows(positive, rows, n), conditioning_rows(negative, rows, n), latent[rows],
            steps, cfg, method, on_tick=on_tick, **options,
        )
        parts.append(part)
    return join_inversions(parts)
