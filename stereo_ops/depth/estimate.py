"""Running a depth network over an image batch and turning its output into a disparity map.

Disparity-like outputs (MiDaS, Depth Anything V1/V2) are stretched as they are; depth outputs
(Depth Anything 3) become disparity by the reciprocal, D = fB/Z up to the normalisation's scale.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Callable

import torch
from torch import nn

from ..disparity import normalize_in_place, normalize_per_sample, normalize_whole_batch
from ..frame_chunks import chunk_length, frame_chunks
from .common import DepthArchitecture
from .preprocess import check_image_batch, network_size, to_image_grid, to_network_input

_MIN_DEPTH = 1e-6  # DA3's depth is exp(.) > 0; this only guards half-precision underflow


def network_input_size(arch: DepthArchitecture, height: int, width: int, resolution: int = 0) -> tuple[int, int]:
    """The (height, width) the network sees for an image, at `resolution` (0 = native)."""
    target = resolution or arch.native_size
    if target < arch.multiple:
        raise ValueError(f"resolution {target} is below the network's minimum of {arch.multiple} pixels")
    if arch.temporal:
        from .video_inference import video_network_size

        return video_network_size(height, width, target)
    return network_size(height, width, target, arch.multiple, arch.resize_method)


def predict(
    model: nn.Module,
    arch: DepthArchitecture,
    image: torch.Tensor,
    resolution: int = 0,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    batch_size: int = 1,
    on_batch: Callable[[int], None] | None = None,
    streaming: bool = False,
    starts: Sequence[int] = (),
) -> torch.Tensor:
    """Raw network output for a (B, H, W, 3) batch: relative disparity (larger = nearer) or, for
    architectures whose `output` is depth, depth (larger = farther).

    `resolution` is the network's target size (0 = the model's native size). The result is a
    float32 (B, H, W) map on the image's device, at the image's own size. Images go to `device`
    `batch_size` at a time and each result comes straight back, so a long clip never sits on the
    accelerator whole.

    Clip models (`arch.temporal`, Video Depth Anything) take the batch as the frames of one clip
    in order, in the official 32-frame windows (or, with `streaming`, one frame at a time);
    `batch_size` is then how many frames the per-frame stages run at once. `starts` (scene cuts:
    the first frame of each shot after the first) makes each shot a clip of its own, so that no
    window reaches across a cut.
    """
    image = check_image_batch(image)
    if resolution < 0:
        raise ValueError(f"resolution must be 0 (native) or positive, got {resolution}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    b, h, w, _ = image.shape
    if arch.temporal:
        out = torch.empty((b, h, w), dtype=torch.float32, device=image.device)
        bounds = [0, *sorted(s for s in set(starts) if 0 < s < b), b]
        for first, end in zip(bounds[:-1], bounds[1:]):
            _predict_clip(model, arch, image[first:end], resolution, device, dtype, batch_size, on_batch, streaming,
                          out[first:end])
        return out
    size = network_input_size(arch, h, w, resolution)
    param = next(model.parameters())
    device = torch.device(device) if device is not None else param.device
    dtype = dtype or param.dtype
    # Filled in place: a list of results joined at the end would hold the clip's maps twice.
    out = torch.empty((b, h, w), dtype=torch.float32, device=image.device)
    with torch.inference_mode():
        for start in range(0, b, batch_size):
            chunk = image[start:start + batch_size].to(device=device, dtype=torch.float32)
            x = to_network_input(chunk, size, arch.mean, arch.std, arch.downscale).to(dtype)
            pred = model(x)
            out[start:start + chunk.shape[0]] = to_image_grid(pred, h, w, arch.upsample)
            if on_batch is not None:
                on_batch(chunk.shape[0])
    return out


def _predict_clip(model, arch, image, resolution, device, dtype, batch_size, on_batch, streaming, out) -> None:
    """One shot's frames through a clip model, written into `out` as they come (no list of the
    clip's maps joined at the end)."""
    from .video_inference import STEP, StreamingVideoDepth, WindowedVideoDepth

    common = dict(input_size=resolution or arch.native_size, device=device, dtype=dtype, output_device=image.device)
    if streaming:
        runner = StreamingVideoDepth(model, **common)
    else:
        runner = WindowedVideoDepth(model, metric=arch.output != "disparity", micro_batch=batch_size, **common)
    done = 0

    def keep(maps: torch.Tensor) -> None:
        nonlocal done
        out[done:done + maps.shape[0]] = maps
        done += maps.shape[0]
        if on_batch is not None and maps.shape[0]:
            on_batch(maps.shape[0])

    # Fed a window's worth at a time, so progress and interruption come once per window.
    chunk = 1 if streaming else STEP
    for start in range(0, image.shape[0], chunk):
        keep(runner.push(image[start:start + chunk]))
    keep(runner.finish())
    if done != out.shape[0]:
        raise RuntimeError(f"the clip model returned {done} maps for {out.shape[0]} frames")


def relative_to_disparity(prediction: torch.Tensor, per_batch: bool = False) -> torch.Tensor:
    """Stretch relative disparity to [0, 1], near = 1: each map alone, or the batch as a whole
    (video frames keep one scale and do not flicker)."""
    return normalize_whole_batch(prediction) if per_batch else normalize_per_sample(prediction)


def prediction_to_disparity(
    prediction: torch.Tensor, arch: DepthArchitecture, per_batch: bool = False, *, inplace: bool = False,
    starts: Sequence[int] = (),
) -> torch.Tensor:
    """A network's raw output to disparity in [0, 1], near = 1. Depth Z becomes 1/Z before the
    stretch, so D = (1/Z - 1/Zmax) / (1/Zmin - 1/Zmax): true disparity up to the stereo scale.

    With `inplace` the float32 prediction becomes the disparity, a chunk of frames at a time (no
    temporary the size of the clip); per batch, each scene between `starts` gets its own scale."""
    if not inplace:
        if arch.output != "disparity":
            prediction = torch.reciprocal(prediction.clamp_min(_MIN_DEPTH))
        if starts and per_batch:
            return normalize_in_place(prediction.clone(), per_batch, starts)
        return relative_to_disparity(prediction, per_batch)
    if arch.output != "disparity":
        for part in frame_chunks(prediction.shape[0], chunk_length(prediction[0].numel())):
            prediction[part].clamp_min_(_MIN_DEPTH).reciprocal_()
    return normalize_in_place(prediction, per_batch, starts)


def metric_scale(arch: DepthArchitecture, network_width: int, horizontal_fov: float) -> float:
    """Metres per unit of a metric model's output: the focal length in the network input's pixels
    (from the horizontal field of view) over the model's divisor (DA3METRIC: focal * output / 300)."""
    if arch.output != "metric_depth":
        raise ValueError(f"{arch.name} predicts relative depth, not metres: screen depth needs a metric "
                         "model (Depth Anything 3 Metric, Video Depth Anything Metric)")
    if not 0.0 < horizontal_fov < 180.0:
        raise ValueError(f"horizontal field of view must be between 0 and 180 degrees, got {horizontal_fov}")
    if arch.metric_focal_divisor == 0:  # metres already (Video Depth Anything Metric)
        return 1.0
    focal = network_width / 2.0 / math.tan(math.radians(horizontal_fov) / 2.0)
    return focal / arch.metric_focal_divisor


def screen_convergence(
    prediction: torch.Tensor, arch: DepthArchitecture, screen_depth: float, network_width: int,
    horizontal_fov: float = 60.0, per_batch: bool = False,
) -> torch.Tensor:
    """(B,) convergence values that put `screen_depth` metres at the screen plane.

    The stereo samplers shift a pixel by s * (D - c): the content whose disparity is c stays in
    place. With D normalised as in `prediction_to_disparity`, depth Zs has
    c = (1/Zs - 1/Zmax) / (1/Zmin - 1/Zmax) over the same extremes (each image's, or the batch's),
    clamped to [0, 1] (0: nothing farther than the farthest point; 1: nothing nearer than the nearest).
    """
    if screen_depth <= 0:
        raise ValueError(f"screen depth must be positive (metres), got {screen_depth}")
    scale = metric_scale(arch, network_width, horizontal_fov)
    # 1/Z falls as Z grows: each frame's extremes of 1/Z come from its extremes of Z, so the
    # clip needs no reciprocal copy.
    extremes = torch.stack([torch.stack(torch.aminmax(p)) for p in prediction]).clamp_min(_MIN_DEPTH)
    lo, hi = 1.0 / (extremes[:, 1] * scale), 1.0 / (extremes[:, 0] * scale)
    if per_batch:
        lo, hi = lo.amin().expand(lo.shape[0]), hi.amax().expand(hi.shape[0])
    c = (1.0 / screen_depth - lo) / (hi - lo).clamp_min(1e-12)
    return torch.where(hi - lo > 1e-12, c, torch.zeros_like(c)).clamp(0.0, 1.0)


def estimate_disparity(
    model: nn.Module, arch: DepthArchitecture, image: torch.Tensor, resolution: int = 0,
    per_batch: bool = False, **kwargs,
) -> torch.Tensor:
    """(B, H, W) disparity in [0, 1], near = 1, at the image's size."""
    return prediction_to_disparity(predict(model, arch, image, resolution, **kwargs), arch, per_batch)
