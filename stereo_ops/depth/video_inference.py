"""Video Depth Anything over clips of any length, fed in chunks, in memory bounded by one window.

Windowed mode (the official procedure): windows of 32 frames, each starting 22 frames after the
previous one. The first 10 slots of a window are taken by frames of the previous window: its
slots [0, 12, 24..31]; slots 0 and 1 are thus key frames from the past (the clip's first frame is
slot 0 of every window), slots 2..9 repeat the previous window's last 8 frames. Each window's depth
is fitted to the previous one by a least-squares scale and shift on the two key frames (relative
models only), the 8 repeated frames are cross-faded from the old to the new prediction, and the
clip's end is padded with copies of its last frame to fill the last window.

`WindowedVideoDepth` takes frames in chunks of any size and returns the frames that are finished;
the result does not depend on how the clip was cut. It holds the network inputs of at most one
window, the encoder features of the 10 carried slots (not recomputed, unlike the official code) and
10 full-size depth maps.

Streaming mode (the official experimental `video_depth_stream.py`): one frame at a time, attending
over cached attention states of up to 31 earlier frames (the first frame's and the most recent
ones), no alignment. `StreamingVideoDepth` offers the same push interface.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .common import IMAGENET_MEAN, IMAGENET_STD
from .dinov2 import PATCH_SIZE
from .preprocess import check_image_batch, network_size, to_image_grid, to_network_input

WINDOW = 32
OVERLAP = 10
STEP = WINDOW - OVERLAP
KEY_FRAMES = (0, 12, *range(24, 32))  # slots of a window carried into the next one
BLEND = 8  # repeated frames cross-faded between windows
ALIGN_SLOTS = OVERLAP - BLEND  # slots 0 and 1: the key frames the scale and shift are fitted on
ALIGN_KEYS = KEY_FRAMES[:ALIGN_SLOTS]
NATIVE_INPUT = 518
WIDEST_RATIO = 1.78
# Streaming: the cache keeps the first frame and the latest frames, this many entries in all.
STREAM_CACHE = (WINDOW - OVERLAP) * 2 - 1 - (OVERLAP - BLEND) + 1


def video_network_size(height: int, width: int, input_size: int = NATIVE_INPUT) -> tuple[int, int]:
    """The network input size for frames of height x width: the shorter side to `input_size`,
    except that frames wider than 16:9 get a proportionally smaller size (the official memory
    rule), then both sides to multiples of 14."""
    if input_size < PATCH_SIZE:
        raise ValueError(f"resolution {input_size} is below the network's minimum of {PATCH_SIZE} pixels")
    ratio = max(height, width) / min(height, width)
    if ratio > WIDEST_RATIO:
        input_size = round(int(input_size * 1.777 / ratio) / PATCH_SIZE) * PATCH_SIZE
        input_size = max(input_size, PATCH_SIZE)
    return network_size(height, width, input_size, PATCH_SIZE, "lower_bound")


def fit_scale_and_shift(prediction: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """Least-squares (s, t) minimising |s * prediction + t - target|^2 over all pixels, in float64;
    (1, 0) when the prediction is constant."""
    p = prediction.double().flatten()
    y = target.double().flatten()
    n = float(p.numel())
    spp, sp, spy, sy = (p * p).sum(), p.sum(), (p * y).sum(), y.sum()
    det = float(spp * n - sp * sp)
    if det == 0.0:
        return 1.0, 0.0
    return float((n * spy - sp * sy) / det), float((spp * sy - sp * spy) / det)


def seam_weights(n: int = BLEND) -> list[float]:
    """Weight of the new window's prediction on each repeated frame: 0 at the first, 1 at the last."""
    return [i / (n - 1) for i in range(n)]


class _Frames:
    """Shared frame handling: size checks, network input, output back to the frame size."""

    def __init__(self, model: nn.Module, input_size: int, device, dtype, output_device, micro_batch: int):
        if micro_batch < 1:
            raise ValueError(f"batch_size must be at least 1, got {micro_batch}")
        param = next(model.parameters())
        self.model = model
        self.input_size = input_size or NATIVE_INPUT
        self.device = torch.device(device) if device is not None else param.device
        self.dtype = dtype or param.dtype
        self.output_device = torch.device(output_device) if output_device is not None else None
        self.micro_batch = micro_batch
        self.frame_size: tuple[int, int] | None = None
        self.net_size: tuple[int, int] | None = None

    def check(self, frames: torch.Tensor) -> torch.Tensor:
        """Validate a chunk of (n, H, W, 3) frames; the first chunk fixes the clip's size."""
        frames = check_image_batch(frames, "frames")
        h, w = frames.shape[1:3]
        if self.frame_size is None:
            self.frame_size = (h, w)
            self.net_size = video_network_size(h, w, self.input_size)
            if self.output_device is None:
                self.output_device = frames.device
        elif (h, w) != self.frame_size:
            raise ValueError(f"frames: every frame of a clip must have one size; got {w}x{h} after "
                             f"{self.frame_size[1]}x{self.frame_size[0]}")
        return frames

    def prepare(self, frames: torch.Tensor) -> torch.Tensor:
        """Checked (n, H, W, 3) frames in [0, 1] -> (n, 3, h, w) network input on the device."""
        x = frames.to(device=self.device, dtype=torch.float32)
        return to_network_input(x, self.net_size, IMAGENET_MEAN, IMAGENET_STD).to(self.dtype)

    def to_frame_size(self, depth: torch.Tensor) -> torch.Tensor:
        """(n, h, w) network-size depth -> (n, H, W) float32 on the output device."""
        h, w = self.frame_size
        return torch.cat([
            to_image_grid(depth[s:s + self.micro_batch], h, w, "bilinear").to(self.output_device)
            for s in range(0, depth.shape[0], self.micro_batch)
        ])

    def empty_input(self) -> torch.Tensor:
        return torch.zeros(0, 3, *self.net_size, device=self.device, dtype=self.dtype)

    def empty(self) -> torch.Tensor:
        h, w = self.frame_size or (0, 0)
        return torch.zeros(0, h, w, device=self.output_device)


class WindowedVideoDepth(_Frames):
    """The official windowed Video Depth Anything inference, fed in chunks.

    `push(frames)` takes the next (n, H, W, 3) frames of the clip and returns the depth of every
    frame that no later window can change any more (possibly none); `finish()` runs what is left
    and returns the rest. Depth is (n, H, W) float32 at the frames' size: relative disparity
    (larger = nearer) for relative models, metres for metric ones (`metric`: no scale and shift
    fit, as in the official code)."""

    def __init__(
        self, model: nn.Module, *, metric: bool = False, input_size: int = NATIVE_INPUT, device=None,
        dtype: torch.dtype | None = None, output_device=None, micro_batch: int = 4,
        on_window: Callable[[], None] | None = None,
    ):
        super().__init__(model, input_size, device, dtype, output_device, micro_batch)
        self.metric = metric
        self.on_window = on_window
        self.windows = 0
        self.received = 0
        self.emitted = 0
        self._pending: list[torch.Tensor] = []  # network inputs of frames no window has used yet
        self._pending_count = 0
        self._last_input: torch.Tensor | None = None
        self._carried: list[torch.Tensor] | None = None  # encoder features of KEY_FRAMES
        self._tail: torch.Tensor | None = None  # the last BLEND aligned frames, open to blending
        self._refs: list[torch.Tensor] = []  # the aligned depth of the two alignment key frames
        self._finished = False

    def _needed(self) -> int:
        return WINDOW if self.windows == 0 else STEP

    def push(self, frames: torch.Tensor) -> torch.Tensor:
        if self._finished:
            raise RuntimeError("this clip is finished; start a new WindowedVideoDepth for the next one")
        frames = self.check(frames)
        # Frames wait as they came (views of the caller's batch, no copy): a window converts only
        # its own frames, so a long clip pushed at once costs no more than one window.
        self._pending.append(frames)
        self._pending_count += frames.shape[0]
        self.received += frames.shape[0]
        out = []
        while self._pending_count >= self._needed():
            out.append(self._run_window(self._take(self._needed())))
        return torch.cat(out) if out else self.empty()

    def finish(self) -> torch.Tensor:
        """Run the windows that start before the clip's end, padded with its last frame."""
        if self._finished:
            return self.empty()
        self._finished = True
        out = []
        while self.windows * STEP < self.received:
            needed = self._needed()
            x = self._take(min(needed, self._pending_count))
            if x.shape[0] < needed:
                pad = self._last_input.expand(needed - x.shape[0], -1, -1, -1)
                x = torch.cat((x, pad)) if x.shape[0] else pad
            out.append(self._run_window(x))
        if self._tail is not None:
            out.append(self._emit(self._tail))
            self._tail = None
        self._pending, self._carried, self._refs, self._last_input = [], None, [], None
        return torch.cat(out) if out else self.empty()

    def _take(self, n: int) -> torch.Tensor:
        """The network inputs of the next `n` waiting frames."""
        taken, count = [], 0
        while count < n:
            part = self._pending[0]
            use = min(part.shape[0], n - count)
            taken.append(part[:use])
            count += use
            if use == part.shape[0]:
                self._pending.pop(0)
            else:
                self._pending[0] = part[use:]
        self._pending_count -= count
        if not taken:
            return self.empty_input()
        x = self.prepare(torch.cat(taken))
        self._last_input = x[-1:]
        return x

    def _emit(self, depth: torch.Tensor) -> torch.Tensor:
        """The frames of `depth`, which follow the ones already returned, that belong to the clip."""
        keep = max(0, min(depth.shape[0], self.received - self.emitted)) if self._finished else depth.shape[0]
        self.emitted += keep
        return depth[:keep]

    def _run_window(self, new_inputs: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            features = self.model.encode(new_inputs, self.micro_batch)
            if self._carried is not None:
                features = [torch.cat((c, f)) for c, f in zip(self._carried, features)]
            self._carried = [f[list(KEY_FRAMES)] for f in features]
            raw, _ = self.model.decode(features, self.net_size, WINDOW, micro_batch=self.micro_batch)
            depth = self.to_frame_size(raw)
            out = self._align(depth)
        self.windows += 1
        if self.on_window is not None:
            self.on_window()
        return out

    def _align(self, depth: torch.Tensor) -> torch.Tensor:
        """Fit the window to the previous ones, blend the seam; return the frames now final."""
        if self.windows == 0:
            self._refs = [depth[k] for k in ALIGN_KEYS]
            done, self._tail = depth[:WINDOW - BLEND], depth[WINDOW - BLEND:]
            return self._emit(done)
        if self.metric:
            scale, shift = 1.0, 0.0
        else:
            scale, shift = fit_scale_and_shift(depth[:ALIGN_SLOTS], torch.stack(self._refs))
        aligned = (depth[ALIGN_SLOTS:] * scale + shift).clamp_min_(0.0)  # slots 2..31
        repeated, new = aligned[:BLEND], aligned[BLEND:]
        w = torch.tensor(seam_weights(), dtype=depth.dtype, device=depth.device).view(-1, 1, 1)
        blended = self._tail * (1 - w) + repeated * w
        self._refs = [self._refs[0], aligned[ALIGN_KEYS[1] - ALIGN_SLOTS]]
        done, self._tail = torch.cat((blended, new[:-BLEND])), new[-BLEND:]
        return self._emit(done)


class StreamingVideoDepth(_Frames):
    """The official streaming mode: each pushed frame's depth comes back at once.

    The first frame's attention states stand in for a full window of history; every later frame
    attends over the cached states of the first two cache entries and the latest 29."""

    def __init__(
        self, model: nn.Module, *, input_size: int = NATIVE_INPUT, device=None, dtype: torch.dtype | None = None,
        output_device=None, on_frame: Callable[[], None] | None = None,
    ):
        super().__init__(model, input_size, device, dtype, output_device, 1)
        self.on_frame = on_frame
        self.frames_seen = 0
        self._cache: list[list[torch.Tensor]] = []

    def push(self, frames: torch.Tensor) -> torch.Tensor:
        frames = self.check(frames)
        out = []
        with torch.inference_mode():
            for i in range(frames.shape[0]):
                out.append(self.to_frame_size(self._one(self.prepare(frames[i:i + 1]))))
                if self.on_frame is not None:
                    self.on_frame()
        return torch.cat(out) if out else self.empty()

    def finish(self) -> torch.Tensor:
        self._cache = []
        return self.empty()

    def _one(self, x: torch.Tensor) -> torch.Tensor:
        features = self.model.encode(x)
        if not self._cache:
            depth, states = self.model.decode(features, self.net_size, 1)
            self._cache = [states] * WINDOW
        else:
            entries = self._cache[:2] + self._cache[-(WINDOW - 3):]
            context = [torch.cat([e[i] for e in entries], dim=1) for i in range(len(entries[0]))]
            depth, states = self.model.decode(features, self.net_size, 1, context=context)
            self._cache.append(states)
        # The official bookkeeping: past frame 10 the cache stays at STREAM_CACHE entries by
        # dropping its second one, so the first frame's entry is always kept.
        if self.frames_seen + WINDOW > STREAM_CACHE:
            del self._cache[1]
        self.frames_seen += 1
        return depth


def video_depth(
    model: nn.Module, frames: torch.Tensor, *, streaming: bool = False, metric: bool = False, chunk: int = 0,
    **kwargs,
) -> torch.Tensor:
    """Depth of a whole clip (T, H, W, 3), pushed `chunk` frames at a time (0: all at once)."""
    runner = (StreamingVideoDepth(model, **kwargs) if streaming
              else WindowedVideoDepth(model, metric=metric, **kwargs))
    step = chunk if chunk > 0 else max(1, frames.shape[0])
    parts = [runner.push(frames[s:s + step]) for s in range(0, frames.shape[0], step)]
    parts.append(runner.finish())
    return torch.cat(parts)
