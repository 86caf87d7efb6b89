"""Reading a video file frame by frame (and its audio piece by piece) with PyAV, in bounded memory.

Frames are numbered from the file's start by their timestamps, so a reader that seeks to frame N
returns the same pictures as one that decoded the file from the start. A stream whose timestamps
are not one frame apart (variable frame rate, dropped or repeated frames) is refused with an error
naming the input: a stereo conversion in segments needs a frame number for every picture.

PyAV is imported lazily, as in `stereo_video`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch

from .stereo_video import _import_av

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".gif")


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: Fraction
    frames: int  # from the container's duration; 0 when it does not say
    has_audio: bool


def _open(path: str | os.PathLike, name: str):
    av = _import_av()
    try:
        container = av.open(os.fspath(path))
        container.streams.video[0]
    except (IndexError, OSError, av.error.FFmpegError) as exc:
        raise ValueError(f"{name}: cannot read {os.path.basename(os.fspath(path))} as a video ({exc})") from exc
    return container


def _start_seconds(stream) -> Fraction:
    return Fraction(stream.start_time or 0) * stream.time_base


def probe(path: str | os.PathLike, name: str = "video") -> VideoInfo:
    with _open(path, name) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate:
            raise ValueError(f"{name}: the file does not say its frame rate")
        fps = Fraction(rate)
        if stream.duration:
            seconds = Fraction(stream.duration) * stream.time_base
        elif container.duration:
            seconds = Fraction(container.duration, 1_000_000)
        else:
            seconds = Fraction(0)
        frames = stream.frames or int(round(seconds * fps))
        return VideoInfo(stream.codec_context.width, stream.codec_context.height, fps, frames,
                         bool(container.streams.audio))


def read_frames(path: str | os.PathLike, start: int = 0, name: str = "video") -> Iterator[torch.Tensor]:
    """(H, W, 3) float32 frames in 0..1 from frame `start` on."""
    info = probe(path, name)
    with _open(path, name) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        origin = _start_seconds(stream)
        if start > 0:
            target = origin + Fraction(start) / info.fps
            container.seek(int(target / stream.time_base), stream=stream, backward=True, any_frame=False)
        expected = None
        for frame in container.decode(stream):
            if frame.pts is None:
                raise ValueError(f"{name}: a frame has no timestamp; remux the file (ffmpeg -i in -c copy out.mp4)")
            index = round((Fraction(frame.pts) * stream.time_base - origin) * info.fps)
            if expected is None and index > start:
                # The seek landed past the frame (a file without a usable index): read from the start.
                yield from _from_start(path, start, name, info)
                return
            if expected is not None and index != expected:
                raise ValueError(
                    f"{name}: the frame after frame {expected - 1} has the time of frame {index}: the file has "
                    f"a variable frame rate or dropped frames. Convert it to a constant rate first, e.g. "
                    f"ffmpeg -i in.mp4 -fps_mode cfr -r {float(info.fps):g} out.mp4"
                )
            expected = index + 1
            if index < start:
                continue
            yield torch.from_numpy(frame.to_ndarray(format="rgb24")).float().div_(255.0)


def _from_start(path, start: int, name: str, info: VideoInfo) -> Iterator[torch.Tensor]:
    with _open(path, name) as container:
        stream = container.streams.video[0]
        for index, frame in enumerate(container.decode(stream)):
            if index >= start:
                yield torch.from_numpy(frame.to_ndarray(format="rgb24")).float().div_(255.0)


class AudioRange:
    """The source's audio from `first_s` for `seconds`, as the `samples` of a `stereo_video.Audio`:
    `shape` (channels, samples) and forward slices `[:, a:b]` decoded on demand, so the writer
    passes an hour of sound through in the memory of a few seconds of it."""

    def __init__(self, path: str | os.PathLike, first_s: float, seconds: float):
        av = _import_av()
        self._container = av.open(os.fspath(path))
        stream = self._container.streams.audio[0]
        self.rate = stream.codec_context.sample_rate or stream.rate
        self.channels = 1 if stream.codec_context.channels == 1 else 2
        self.shape = (self.channels, int(round(seconds * self.rate)))
        self._first = int(round(first_s * self.rate))  # sample number in the source
        self._resampler = av.AudioResampler(format="fltp", layout="mono" if self.channels == 1 else "stereo",
                                            rate=self.rate)
        if first_s > 0:
            self._container.seek(int(first_s * 1_000_000), backward=True)
        self._frames = self._decode(stream)
        self._buffer = np.zeros((self.channels, 0), dtype=np.float32)
        self._buffer_start = None  # source sample number of the buffer's first sample
        self._done = 0

    def _decode(self, stream) -> Iterator[tuple[int, np.ndarray]]:
        for packet_frame in self._container.decode(stream):
            start = int(round(float(packet_frame.pts * packet_frame.time_base) * self.rate)) \
                if packet_frame.pts is not None else None
            for out in self._resampler.resample(packet_frame):
                yield start, out.to_ndarray().astype(np.float32, copy=False)
                start = None

    def __getitem__(self, key) -> np.ndarray:
        _, part = key
        a, b = part.start, part.stop
        if a != self._done:
            raise ValueError("audio is read forwards only")
        need_until = self._first + b
        while (self._buffer_start is None or self._buffer_start + self._buffer.shape[1] < need_until):
            try:
                start, samples = next(self._frames)
            except StopIteration:
                break
            if self._buffer_start is None:
                self._buffer_start = start if start is not None else self._first
            self._buffer = np.concatenate((self._buffer, samples[:self.channels]), axis=1)
        begin = self._first + a - (self._buffer_start or 0)
        out = np.zeros((self.channels, b - a), dtype=np.float32)
        lo = max(begin, 0)
        piece = self._buffer[:, lo:begin + (b - a)]
        out[:, lo - begin:lo - begin + piece.shape[1]] = piece
        # Keep only what later reads can need.
        drop = max(0, begin + (b - a))
        self._buffer = self._buffer[:, drop:]
        self._buffer_start = (self._buffer_start or 0) + drop
        self._done = b
        return out

    def close(self) -> None:
        self._container.close()
