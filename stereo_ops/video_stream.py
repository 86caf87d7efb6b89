"""Depth, disparity, warp and fill over a video of any length, one frame in and one pair out, in
memory bounded by a look-ahead window.

Every quantity of frame t is a function of a bounded neighbourhood of frames around t, never of
the whole clip, so that (1) buffers stay a fixed number of frames whatever the length and (2) a
segment of the clip converted on its own equals the same frames converted as part of the whole,
provided it reads `StreamSettings.look_back` frames before its first frame (`segment_read_start`)
and discards them:

- scene cuts: the histogram score of frame t against t - 1, judged against the scores of the
  `scene_cuts.WINDOW` frames either side (as `detect_scene_cuts` does for a whole clip);
- disparity scale: each frame's raw prediction has a robust range (its 0.5th and 99.5th
  percentiles); frame t is stretched to [0, 1] by the mean of those ranges over `scale_radius`
  frames either side, within its shot. Per-batch normalisation needs the whole clip; this running
  scale needs only the window, moves slowly (no per-frame pumping) and restarts at a cut;
- temporal smoothing: a symmetric, truncated exponential window of `smoothing` strength (weights
  s^|k| for |k| <= `smooth_radius`), within the shot: the zero-phase smoothing of
  `temporal.smooth_over_time` with a finite reach;
- geometry: one for the whole stream. With a display target the stretch already maps each window's
  robust range to [0, 1], so the automatic setting is the one for the range 0..1: fixed, so the
  depth never pumps, and the same in every segment;
- holes: the per-frame background-side fill (`hole_fill`), or (`fill="temporal"`) the forward
  pass of the temporal fill (`temporal_fill.forward_step`): a background plate per eye carried
  along the shot, so a hole shows background seen in earlier frames, and what no frame showed is
  invented once and carried along instead of flickering. The backward pass (background seen only
  later) needs the whole shot and is left out. The plate is state from the shot's start: a
  segment warms it up over its look-back, so its holes are close to, not bit-equal with, the
  whole clip's (visible pixels stay equal).

Per-frame depth networks run in batches aligned to absolute frame numbers (frames k*B .. k*B+B-1),
so a segment batches its frames exactly as the whole clip does. Clip models (Video Depth Anything)
stream through their windows; their windows start where a segment starts reading, so segments of a
clip model are close to, not bit-equal with, the whole clip.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .comfort import ROBUST_PERCENTILES
from .hole_fill import background_side_fill
from .scene_cuts import CONTRAST, MIN_JUMP, WINDOW as CUT_WINDOW, histograms, thumbnails
from .stereo_geometry import StereoGeometry
from .temporal_fill import forward_step
from .warp import stereo_warp
from .warp_clip import eye_disparity

_EPS = 1e-12
_QUANTILE_SAMPLES = 1 << 16  # pixels per frame the robust range is read from (a fixed stride)
MAX_SMOOTH_RADIUS = 32
FILLS = ("per frame", "temporal")


@dataclass(frozen=True)
class StreamSettings:
    smoothing: float = 0.5  # temporal smoothing strength in [0, 1)
    scale_radius: int = 24  # frames either side whose robust ranges set a frame's disparity scale
    cut_sensitivity: float = 1.0  # 0 turns scene-cut detection off
    batch_size: int = 4  # frames per call of a per-frame depth network
    fill: str = "per frame"  # or "temporal": the forward pass of the temporal fill

    def __post_init__(self) -> None:
        if not 0.0 <= self.smoothing < 1.0:
            raise ValueError(f"temporal_smoothing must be in [0, 1), got {self.smoothing}")
        if self.scale_radius < 0:
            raise ValueError(f"scale_window must be 0 or more frames, got {self.scale_radius}")
        if self.cut_sensitivity < 0:
            raise ValueError(f"scene_cut_sensitivity must be 0 (off) or positive, got {self.cut_sensitivity}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.fill not in FILLS:
            raise ValueError(f"hole_fill must be one of {', '.join(FILLS)}; got {self.fill!r}")

    @property
    def smooth_radius(self) -> int:
        """Frames either side of the smoothing window: where the weight s^k falls below 1 %."""
        if self.smoothing == 0.0:
            return 0
        return min(MAX_SMOOTH_RADIUS, math.ceil(math.log(0.01) / math.log(self.smoothing)))

    @property
    def cut_reach(self) -> int:
        return CUT_WINDOW + 1 if self.cut_sensitivity > 0 else 0

    @property
    def look_ahead(self) -> int:
        """Frames read past a frame before its pair is final."""
        return self.smooth_radius + self.scale_radius + (CUT_WINDOW if self.cut_sensitivity > 0 else 0)

    @property
    def look_back(self) -> int:
        """Frames before a segment's first frame that it must read (and discard)."""
        return self.smooth_radius + self.scale_radius + self.cut_reach


def segment_read_start(first: int, settings: StreamSettings, align: int = 1) -> int:
    """The frame a segment starting at `first` reads from: `look_back` frames earlier, rounded down
    to a multiple of `align` (the depth batch) so that its batches are the whole clip's."""
    start = max(0, first - settings.look_back)
    return start - start % max(1, align)


def robust_range(raw: torch.Tensor) -> tuple[float, float]:
    flat = raw.reshape(-1).float()
    flat = flat[:: max(1, -(-flat.numel() // _QUANTILE_SAMPLES))]
    lo_p, hi_p = ROBUST_PERCENTILES
    q = torch.quantile(flat, torch.tensor([lo_p / 100.0, hi_p / 100.0], device=flat.device))
    return float(q[0]), float(q[1])


class FrameDepth:
    """A per-frame network as a stream: frames wait until their aligned batch is complete."""

    def __init__(self, predict: Callable[[torch.Tensor], torch.Tensor], batch_size: int, start: int):
        self.predict, self.batch_size, self.next = predict, batch_size, start
        self._waiting: list[torch.Tensor] = []

    def push(self, frame: torch.Tensor) -> torch.Tensor | None:
        self._waiting.append(frame)
        self.next += 1
        return self._run() if self.next % self.batch_size == 0 else None

    def finish(self) -> torch.Tensor | None:
        return self._run() if self._waiting else None

    def _run(self) -> torch.Tensor:
        batch, self._waiting = torch.stack(self._waiting), []
        return self.predict(batch)


class ClipDepth:
    """A clip model's runner (`WindowedVideoDepth` or `StreamingVideoDepth`) as a stream."""

    def __init__(self, runner, to_disparity_like: Callable[[torch.Tensor], torch.Tensor] = lambda x: x):
        self.runner, self.convert = runner, to_disparity_like

    def push(self, frame: torch.Tensor) -> torch.Tensor | None:
        out = self.runner.push(frame.unsqueeze(0))
        return self.convert(out) if out.shape[0] else None

    def finish(self) -> torch.Tensor | None:
        out = self.runner.finish()
        return self.convert(out) if out.shape[0] else None


@dataclass
class _Frame:
    image: torch.Tensor | None = None
    hist: torch.Tensor | None = None
    score: float | None = None  # None for the first frame read
    raw: torch.Tensor | None = None
    lo: float = 0.0
    hi: float = 0.0
    cut: bool = False
    disparity: torch.Tensor | None = None


class StereoStream:
    """Frames in (`push`, from frame `read_start` on, in order), finished stereo pairs out.

    `push` and `finish` return a list of (frame number, left (H, W, C), right (H, W, C)) for the
    frames first .. first + count - 1 (count 0: to the end) that became final. `done` says when the
    segment has all its frames, so the reader can stop."""

    def __init__(self, depth, settings: StreamSettings, geometry: StereoGeometry, *, first: int = 0,
                 count: int = 0, read_start: int | None = None, balance: float = 0.0):
        self.depth, self.settings, self.geometry, self.balance = depth, settings, geometry, balance
        self.first, self.stop = first, (first + count if count > 0 else None)
        self.read_start = segment_read_start(first, settings, settings.batch_size) if read_start is None else read_start
        if self.read_start > first:
            raise ValueError(f"read_start {self.read_start} is after first_frame {first}")
        self.frames: dict[int, _Frame] = {}
        self.received = self.read_start  # frames < received have arrived
        self.n_raw = self.n_cut = self.n_disp = self.n_out = self.read_start
        self.end: int | None = None  # the clip's length, once the reader has hit it
        self.size: tuple[int, int] | None = None
        self.plates: list = [None, None]  # the temporal fill's state per eye

    @property
    def done(self) -> bool:
        return self.stop is not None and self.n_out >= self.stop

    # -- input --------------------------------------------------------------------------------

    def push(self, frame: torch.Tensor) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
        if self.end is not None:
            raise RuntimeError("the stream is finished")
        if frame.ndim != 3 or frame.shape[-1] not in (3, 4):
            raise ValueError(f"frames must be (H, W, 3) images, got {tuple(frame.shape)}")
        if self.size is None:
            self.size = tuple(frame.shape[:2])
        elif tuple(frame.shape[:2]) != self.size:
            raise ValueError(f"video: frame {self.received} is {frame.shape[1]}x{frame.shape[0]}, but the clip "
                             f"started at {self.size[1]}x{self.size[0]}; a clip must keep one frame size")
        t = self.received
        f = _Frame(image=frame[..., :3])
        if self.settings.cut_sensitivity > 0:
            f.hist = histograms(thumbnails(f.image.unsqueeze(0)))[0]
            before = self.frames.get(t - 1)
            if before is not None and before.hist is not None:
                f.score = float((f.hist - before.hist).abs().sum(dim=1).div(2).mean())
        self.frames[t] = f
        self.received += 1
        self._take_depth(self.depth.push(f.image))
        return self._advance()

    def finish(self) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
        """The reader reached the clip's end: the frames that waited for look-ahead are final now."""
        if self.end is None:
            self.end = self.received
            self._take_depth(self.depth.finish())
        return self._advance()

    def _take_depth(self, maps: torch.Tensor | None) -> None:
        if maps is None:
            return
        for m in maps:
            f = self.frames[self.n_raw]
            f.raw = m.float()
            f.lo, f.hi = robust_range(f.raw)
            self.n_raw += 1

    # -- stages -------------------------------------------------------------------------------

    def _known(self, until: int) -> int:
        """`until` clipped to the clip's last frame once its end is known."""
        return until if self.end is None else min(until, self.end - 1)

    def _advance(self) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
        s = self.settings
        # Scene cuts: frame t's score against the scores of CUT_WINDOW frames either side.
        while self.n_cut < self.received and self._known(self.n_cut + CUT_WINDOW) < self.received:
            self._judge_cut(self.n_cut)
            self.n_cut += 1
        # Disparity: needs the raw maps and cuts of scale_radius frames either side.
        while (self.n_disp < self.n_raw and self._known(self.n_disp + s.scale_radius) < min(self.n_raw, self.n_cut)):
            self._stretch(self.n_disp)
            self.n_disp += 1
        out = []
        while self.n_out < self.n_disp and self._known(self.n_out + s.smooth_radius) < self.n_disp:
            if self.done:
                break
            t = self.n_out
            if t >= self.first:
                left, right = self._pair(t, self._smoothed(t))
                out.append((t, left, right))
            elif s.fill == "temporal":
                self._pair(t, self._smoothed(t))  # the look-back warms the plates up
            self.n_out += 1
            self._forget()
        return out

    def _judge_cut(self, t: int) -> None:
        score = self.frames[t].score
        if score is None or self.settings.cut_sensitivity == 0:
            return
        around = [self.frames[u].score for u in range(t - CUT_WINDOW, self._known(t + CUT_WINDOW) + 1)
                  if u != t and u in self.frames and self.frames[u].score is not None]
        typical = float(torch.tensor(around).median()) if around else 0.0
        self.frames[t].cut = score * self.settings.cut_sensitivity > max(MIN_JUMP, CONTRAST * typical)

    def _shot(self, t: int, radius: int) -> range:
        """Frames within `radius` of t in t's shot and in what was read."""
        lo = t
        while lo > max(self.read_start, t - radius) and not self.frames[lo].cut:
            lo -= 1
        hi = t
        while hi < self._known(t + radius) and not self.frames[hi + 1].cut:
            hi += 1
        return range(lo, hi + 1)

    def _stretch(self, t: int) -> None:
        shot = self._shot(t, self.settings.scale_radius)
        lo = sum(self.frames[u].lo for u in shot) / len(shot)
        hi = sum(self.frames[u].hi for u in shot) / len(shot)
        f = self.frames[t]
        if hi - lo > _EPS:
            f.disparity = ((f.raw - lo) / (hi - lo)).clamp_(0.0, 1.0)
        else:
            f.disparity = torch.zeros_like(f.raw)
        f.raw = None  # the window needs only its range from now on

    def _smoothed(self, t: int) -> torch.Tensor:
        s = self.settings
        if s.smooth_radius == 0:
            return self.frames[t].disparity
        shot = self._shot(t, s.smooth_radius)
        weights = [s.smoothing ** abs(u - t) for u in shot]
        total = sum(weights)
        out = torch.zeros_like(self.frames[t].disparity)
        for u, w in zip(shot, weights):
            out.add_(self.frames[u].disparity, alpha=w / total)
        return out.clamp_(0.0, 1.0)  # rounding can lift a convex combination of ones just above 1

    def _pair(self, t: int, disparity: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g = self.geometry
        image = self.frames[t].image
        views = stereo_warp(image.permute(2, 0, 1).unsqueeze(0), disparity.unsqueeze(0), g.divergence,
                            g.convergence, self.balance, g.floating_window)
        temporal = self.settings.fill == "temporal"
        if temporal and (t == self.read_start or self.frames[t].cut):
            self.plates = [None, None]
        eyes = []
        for k, (view, direction) in enumerate(((views.left, 1), (views.right, -1))):
            picture, holes = view.image[0], view.holes[0]
            moved = (self.balance if direction > 0 else 1.0 - self.balance) > 0.0
            if temporal and moved:
                eye_map = eye_disparity(disparity, g.divergence, g.convergence, self.balance, direction < 0,
                                        g.floating_window)
                self.plates[k], picture, _ = forward_step(self.plates[k], picture.contiguous(), holes, eye_map,
                                                          direction)
            elif bool(holes.any()):
                picture = background_side_fill(picture, holes, direction)
            eyes.append(picture.permute(1, 2, 0))
        return eyes[0], eyes[1]

    def _forget(self) -> None:
        """Drop what no later frame needs: images behind the output, maps behind every window."""
        s = self.settings
        keep_maps = self.n_out - s.smooth_radius - s.scale_radius - CUT_WINDOW - 2
        for t in [u for u in self.frames if u < keep_maps]:
            del self.frames[t]
        old = self.frames.get(self.n_out - 1)
        if old is not None:
            old.image = None
        old = self.frames.get(self.n_out - s.smooth_radius - 1)
        if old is not None:
            old.disparity = None


def depth_stream(model, arch, start: int, batch_size: int = 4, resolution: int = 0, *, device=None,
                 dtype: torch.dtype | None = None):
    """The stream of raw disparity-like maps (larger = nearer) of a depth network, for frames read
    from frame `start` on: a clip model through its windows, any other network in aligned batches."""
    from .depth.estimate import _MIN_DEPTH, predict

    def disparity_like(prediction: torch.Tensor) -> torch.Tensor:
        if arch.output != "disparity":
            return prediction.clamp_min(_MIN_DEPTH).reciprocal()
        return prediction

    if arch.temporal:
        from .depth.video_inference import WindowedVideoDepth

        runner = WindowedVideoDepth(model, metric=arch.output != "disparity", input_size=resolution or arch.native_size,
                                    device=device, dtype=dtype, micro_batch=batch_size)
        return ClipDepth(runner, disparity_like)

    def run(frames: torch.Tensor) -> torch.Tensor:
        return disparity_like(predict(model, arch, frames, resolution, device=device, dtype=dtype,
                                      batch_size=batch_size))

    return FrameDepth(run, batch_size, start)


def convert_frames(frames, depth_for: Callable[[int], object], settings: StreamSettings, geometry: StereoGeometry,
                   first: int = 0, count: int = 0, balance: float = 0.0, on_pairs=None):
    """Run a whole stream: `frames(read_start)` gives an iterator of (H, W, 3) frames from that
    frame on, `depth_for(read_start)` the depth stream. Yields (frame number, left, right)."""
    read_start = segment_read_start(first, settings, settings.batch_size)
    stream = StereoStream(depth_for(read_start), settings, geometry, first=first, count=count,
                          read_start=read_start, balance=balance)
    for frame in frames(read_start):
        yield from stream.push(frame)
        if stream.done:
            return
    yield from stream.finish()
