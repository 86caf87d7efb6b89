"""Stereo video files that players recognise: H.264 in MP4 with Spherical Video V2 metadata.

`StereoVideoWriter` takes left and right frames chunk by chunk (memory bounded by one chunk),
composes each pair in a side-by-side or top-bottom layout (optionally as VR180: each eye a 180 x 180
degree equirect with the pair as a floating screen), encodes H.264 (libx264, yuv420p) and optional
AAC audio with PyAV, and when closed adds `st3d` (and `sv3d` for VR180) to the video track.

PyAV is imported lazily: the rest of stereo_ops does not need it.

Interrupted runs: frames already handed to the writer stay in the file. `close()` (also called by
the context manager when an exception leaves it) flushes the encoder and finalises the MP4, so an
interrupted run leaves a shorter but complete, playable, tagged file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from .compose import LAYOUTS, VR_SUFFIXES, side_by_side
from .spherical_video import StereoMode, inject_spherical_metadata, st3d, vr180_boxes
from .vr180 import auto_eye_size, check_fov, flat_to_vr180

Projection = Literal["flat", "VR180"]
PROJECTIONS: tuple[str, ...] = ("flat", "VR180")
MAX_CRF = 51
# H.264 hardware decoders (headsets included) top out around 4096 x 2048 at 60 fps: two square
# eyes of 2048 side by side. Automatic VR180 eye sizes stay at or below it.
VR180_MAX_AUTO_EYE = 2048


def stereo_mode_of(layout: str) -> StereoMode | None:
    """The st3d stereo mode of a layout; None for cross-eyed (right eye first), which st3d cannot
    express (its modes put the left eye left or on top)."""
    if layout.startswith("parallel"):
        return "left-right"
    if layout.startswith("top-bottom"):
        return "top-bottom"
    return None


def file_suffix(layout: str, projection: Projection) -> str:
    """The file-name tag players read: the image naming for flat video, `_180_LR` / `_180_TB` for
    VR180 (DeoVR, Skybox, Quest players and others read '180' plus the stereo layout)."""
    if projection == "VR180":
        return "_180_TB" if layout.startswith("top-bottom") else "_180_LR"
    return VR_SUFFIXES[layout]


def check_layout(layout: str, projection: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}; got {layout!r}")
    if projection not in PROJECTIONS:
        raise ValueError(f"projection must be one of {', '.join(PROJECTIONS)}; got {projection!r}")
    if projection == "VR180" and stereo_mode_of(layout) is None:
        raise ValueError(
            f"layout {layout!r} cannot be VR180: VR180 puts the left eye left (parallel) or on top "
            "(top-bottom); choose one of those"
        )


def pad_to_even(images: torch.Tensor) -> torch.Tensor:
    """Repeat the last row and/or column so height and width are even (yuv420p needs even sizes).
    Applied to each eye before composing, so both halves of a frame stay the same size."""
    _, h, w, _ = images.shape
    if h % 2 == 0 and w % 2 == 0:
        return images
    return F.pad(images.movedim(-1, 1), (0, w % 2, 0, h % 2), mode="replicate").movedim(1, -1)


def compose_frames(
    left: torch.Tensor, right: torch.Tensor, layout: str, projection: Projection = "flat",
    fov: float = 90.0, eye_size: int | None = None,
) -> torch.Tensor:
    """(N, H, W, C) pairs -> (N, H', W', 3) frames with even sizes, in the file's layout."""
    check_layout(layout, projection)
    if projection == "VR180":
        if eye_size is None:
            eye_size = min(auto_eye_size(left.shape[2], fov), VR180_MAX_AUTO_EYE)
        left, right = flat_to_vr180(left, fov, eye_size), flat_to_vr180(right, fov, eye_size)
    left, right = pad_to_even(left), pad_to_even(right)
    frames = side_by_side(left, right, layout)
    if frames.shape[-1] == 1:
        frames = frames.expand(-1, -1, -1, 3)
    return frames[..., :3]


def to_rgb24(frames: torch.Tensor) -> np.ndarray:
    return (frames.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy())


def frame_rate(fps: float, name: str = "frame_rate") -> Fraction:
    """fps as an exact fraction; 29.97..., 23.976..., 59.94... become the NTSC rates (x/1001)."""
    if not (fps > 0 and fps <= 1000):
        raise ValueError(f"{name} must be between 0 and 1000 frames per second; got {fps}")
    return Fraction(fps).limit_denominator(1001)


@dataclass(frozen=True)
class Audio:
    """Audio samples (channels, samples) as float32 in -1..1 and their rate."""

    samples: np.ndarray
    sample_rate: int

    @classmethod
    def from_comfy(cls, audio: dict[str, Any], name: str = "audio") -> Audio:
        """ComfyUI's AUDIO: {"waveform": (batch, channels, samples), "sample_rate": int}; the first
        clip of the batch. More than two channels are mixed down to stereo."""
        try:
            waveform, rate = audio["waveform"], int(audio["sample_rate"])
        except (TypeError, KeyError) as exc:
            raise ValueError(f"{name} must be ComfyUI audio (a dict with 'waveform' and 'sample_rate')") from exc
        if waveform.ndim != 3 or waveform.shape[0] < 1 or waveform.shape[1] < 1:
            raise ValueError(f"{name} waveform must be (batch, channels, samples); got {tuple(waveform.shape)}")
        if rate <= 0:
            raise ValueError(f"{name} sample_rate must be positive; got {rate}")
        samples = waveform[0].detach().float().cpu().numpy()
        if samples.shape[0] > 2:
            samples = np.stack([samples[0::2].mean(0), samples[1::2].mean(0)])
        return cls(np.ascontiguousarray(samples.clip(-1, 1), dtype=np.float32), rate)


def _import_av():
    try:
        import av
    except ModuleNotFoundError as exc:
        raise RuntimeError("writing video needs PyAV: pip install av (in ComfyUI's environment)") from exc
    return av


class StereoVideoWriter:
    """Write stereo pairs to an MP4 chunk by chunk; `close()` finalises and tags the file.

    writer = StereoVideoWriter(path, fps=24, layout="parallel")
    for left, right in chunks: writer.write_pairs(left, right)
    writer.close()
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float,
        layout: str = "parallel",
        crf: int = 18,
        projection: Projection = "flat",
        fov: float = 90.0,
        eye_size: int | None = None,
        audio: Audio | None = None,
        preset: str = "medium",
        metadata: dict[str, str] | None = None,
    ) -> None:
        check_layout(layout, projection)
        if projection == "VR180":
            check_fov(fov)
        if not 0 <= crf <= MAX_CRF:
            raise ValueError(f"crf must be between 0 (lossless) and {MAX_CRF}; got {crf}")
        if eye_size is not None and (eye_size < 2 or eye_size % 2):
            raise ValueError(f"eye_size must be an even number of pixels; got {eye_size}")
        self.av = _import_av()
        self.path = os.fspath(path)
        self.rate = frame_rate(fps)
        self.layout, self.projection, self.fov, self.eye_size = layout, projection, fov, eye_size
        self.crf, self.preset, self.audio = crf, preset, audio
        self.frames_written = 0
        self.size: tuple[int, int] | None = None  # (height, width) of the encoded frames
        self._audio_written = 0
        self._closed = False
        try:
            open(self.path, "wb").close()  # PyAV opens the file lazily: fail here, not at the first frame
            # use_metadata_tags keeps free-form tags (a workflow, say) in the file, as the host's SaveVideo does
            self.container = self.av.open(self.path, mode="w", format="mp4", options={"movflags": "use_metadata_tags"})
        except Exception as exc:
            raise ValueError(f"cannot write the video file {self.path}: {exc}") from exc
        for key, value in (metadata or {}).items():
            self.container.metadata[key] = value
        self.video = None
        self.audio_stream = None

    # -- video --------------------------------------------------------------------------------

    def _open_video(self, height: int, width: int) -> None:
        stream = self.container.add_stream("libx264", rate=self.rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(self.crf), "preset": self.preset}
        self.video, self.size = stream, (height, width)
        if self.audio is not None:
            layout = "mono" if self.audio.samples.shape[0] == 1 else "stereo"
            self.audio_stream = self.container.add_stream("aac", rate=self.audio.sample_rate, layout=layout)

    def write_pairs(self, left: torch.Tensor, right: torch.Tensor) -> None:
        """Compose and encode (N, H, W, C) left and right frames."""
        self.write_frames(compose_frames(left, right, self.layout, self.projection, self.fov, self.eye_size))

    def write_frames(self, frames: torch.Tensor) -> None:
        """Encode (N, H, W, 3) frames already in the file's layout (even sizes)."""
        if self._closed:
            raise RuntimeError("the video file is already closed")
        _, h, w, _ = frames.shape
        if self.video is None:
            if h % 2 or w % 2:
                raise ValueError(f"frames must have an even height and width for yuv420p; got {w}x{h}")
            self._open_video(h, w)
        elif (h, w) != self.size:
            raise ValueError(f"every chunk must have the first chunk's size {self.size[1]}x{self.size[0]}; got {w}x{h}")
        for rgb in to_rgb24(frames):
            frame = self.av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = self.frames_written
            frame.time_base = 1 / self.rate
            self.container.mux(self.video.encode(frame))
            self.frames_written += 1
        self._write_audio_until(self.frames_written / self.rate)

    # -- audio --------------------------------------------------------------------------------

    def _write_audio_until(self, seconds: Fraction | float) -> None:
        """Encode the audio up to the video's current end, so the two stay interleaved and an
        interrupted file has sound as long as its picture."""
        if self.audio_stream is None:
            return
        samples = self.audio.samples
        end = min(samples.shape[1], int(seconds * self.audio.sample_rate))
        step = 1 << 14
        while self._audio_written < end:
            stop = min(end, self._audio_written + step)
            chunk = np.ascontiguousarray(samples[:, self._audio_written:stop])
            frame = self.av.AudioFrame.from_ndarray(chunk, format="fltp", layout=self.audio_stream.layout.name)
            frame.sample_rate = self.audio.sample_rate
            frame.pts = self._audio_written
            frame.time_base = Fraction(1, self.audio.sample_rate)
            self.container.mux(self.audio_stream.encode(frame))
            self._audio_written = stop

    # -- finishing ----------------------------------------------------------------------------

    def close(self) -> str:
        """Flush the encoders, close the MP4, add the stereo metadata; returns the path. A writer
        that received no frame removes its empty file and raises."""
        if self._closed:
            return self.path
        self._closed = True
        if self.video is None:
            self._discard()
            raise ValueError("no frames were written, so no video file was made")
        self.container.mux(self.video.encode(None))
        if self.audio_stream is not None:
            self.container.mux(self.audio_stream.encode(None))
        self.container.close()
        self._tag()
        return self.path

    def _discard(self) -> None:
        try:
            self.container.close()
        finally:
            if os.path.exists(self.path):
                os.remove(self.path)

    def _tag(self) -> None:
        mode = stereo_mode_of(self.layout)
        if self.projection == "VR180":
            inject_spherical_metadata(self.path, vr180_boxes(mode))
        elif mode is not None:
            inject_spherical_metadata(self.path, st3d(mode))

    def __enter__(self) -> StereoVideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._closed:
            return
        if exc_type is not None and self.video is None:
            self._discard()
            self._closed = True
            return
        self.close()


# ---------------------------------------------------------------------------------------------
# Spatial video (MV-HEVC)
# ---------------------------------------------------------------------------------------------

def mv_hevc_encoder() -> str | None:
    """A reachable MV-HEVC encoder, or None.

    Apple spatial video is MV-HEVC (two views in one HEVC stream) with `vexu` metadata. Encoders:
    an `x265` 4.x program built with multiview support (its help lists --multiview-config), or an
    FFmpeg whose libx265 accepts x265's multiview options. Returns a short description of the one
    found, or None.
    """
    x265 = shutil.which("x265")
    if x265:
        try:
            help_text = subprocess.run([x265, "--fullhelp"], capture_output=True, text=True, timeout=10)
            if "multiview-config" in (help_text.stdout + help_text.stderr):
                return f"x265 program with multiview support ({x265})"
        except (OSError, subprocess.SubprocessError):
            pass
    return None


MV_HEVC_MISSING = (
    "Apple spatial video (MV-HEVC) needs an MV-HEVC encoder, and none is reachable: neither an x265 4.x "
    "program built with multiview support (ENABLE_MULTIVIEW; `x265 --fullhelp` lists --multiview-config) "
    "nor an FFmpeg that encodes MV-HEVC. The pip packages of PyAV and FFmpeg do not include one. Save a "
    "side-by-side video instead (Vision Pro players such as Moon Player and Reality Player play it), or "
    "convert it to spatial video on a Mac (e.g. Apple's AVFoundation tools)."
)
