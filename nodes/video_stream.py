"""StereoConvertVideoFile: a video file of any length to a stereo video file, as a stream."""

from __future__ import annotations

import logging
import os
import time

import av  # noqa: F401  (without PyAV the node is disabled with an install hint, see nodes/__init__.py)
import comfy.model_management as mm
import comfy.utils
import folder_paths
from comfy_api.latest import io

from ..stereo_ops import LAYOUTS
from ..stereo_ops.comfort import auto_settings
from ..stereo_ops.stereo_geometry import DisplayTarget, StereoGeometry
from ..stereo_ops.stereo_video import MAX_CRF, Audio, StereoVideoWriter, file_suffix
from ..stereo_ops.video_file import AudioRange, probe, read_frames
from ..stereo_ops.video_stream import FILLS, StreamSettings, convert_frames, depth_stream
from ..stereo_ops.vr180 import MAX_FOV, MIN_FOV
from .comfort import DEFAULT_CONVERGENCE, DEFAULT_DIVERGENCE, IGNORED_WITH_DISPLAY, display_input
from .compose import LAYOUT_TOOLTIP
from .input_checks import check_filename_prefix
from .stereo_types import DisparityModelType
from .video import STEREO_MP4, VR180_MP4, video_metadata

LOG = logging.getLogger("StereoDiffusion")
LOG_EVERY = 100  # frames between progress lines in the log


def input_videos() -> list[str]:
    folder = folder_paths.get_input_directory()
    files = [f for f in os.listdir(folder) if os.path.isfile(os.path.join(folder, f))]
    return sorted(folder_paths.filter_files_content_types(files, ["video"]))


def stream_geometry(divergence: float, convergence: float, display) -> StereoGeometry:
    """The typed settings, or a display target's automatic ones for the range 0..1 that the running
    disparity scale maps every window's robust range to: one geometry for the whole file."""
    if display is None:
        return StereoGeometry(float(divergence), float(convergence), False)
    if not isinstance(display, DisplayTarget):
        raise ValueError("display: connect the output of a Stereo Display Target")
    return StereoGeometry(*auto_settings(display.budget, 0.0, 1.0), display.floating_window)


class Progress:
    """The host's progress bar, plus a log line with frames per second and time left."""

    def __init__(self, total: int, name: str):
        self.total, self.name, self.done, self.started = total, name, 0, time.monotonic()
        self.bar = comfy.utils.ProgressBar(total) if total else None

    def frame(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update_absolute(min(self.done, self.total), self.total)
        if self.done % LOG_EVERY == 0:
            LOG.info("[StereoDiffusion] %s", self.line())

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        fps = self.done / elapsed
        left = f", about {(self.total - self.done) / fps:.0f} s left" if self.total and fps > 0 else ""
        return f"{self.name}: {self.done}/{self.total or '?'} frames, {fps:.2f} frames/s{left}"


class StereoConvertVideoFile(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StereoConvertVideoFile",
            display_name="Stereo Convert Video File",
            category="stereo/video",
            description="Convert a video file of any length from ComfyUI's input folder to a stereo video "
            "file, as a stream: decode, depth, disparity, Stereo Warp, hole fill and H.264 encoding a few "
            "frames at a time, so memory stays the same for a minute or an hour. The disparity scale is a "
            "running one (each frame stretched by the robust range of the frames around it, within its "
            "shot); holes are filled per frame from their background side, or with a background plate "
            "carried along the shot. A frame range (first_frame, frame_count) converts a segment: segments "
            "converted on several servers join without a seam. "
            "An interrupted run leaves a playable, tagged file of the frames converted so far.",
            inputs=[
                io.Combo.Input("video", options=input_videos(), upload=io.UploadType.video,
                               tooltip="A video file in ComfyUI's input folder (upload one here)."),
                DisparityModelType.Input("disparity_model", tooltip="From Load Disparity Model. Video Depth "
                                         "Anything streams through its 32-frame windows; other models run "
                                         "batch_size frames at a time."),
                io.String.Input("filename_prefix", default="video/StereoDiffusion",
                                tooltip="File name prefix in the output folder, as for Save Video; the counter, "
                                "the frame range of a segment and the player tag (_LR, _180_LR, ...) follow."),
                io.Float.Input("divergence", default=DEFAULT_DIVERGENCE, min=0.0, max=20.0, step=0.05,
                               tooltip="Largest shift between the eyes, in % of the width." + IGNORED_WITH_DISPLAY),
                io.Float.Input("convergence", default=DEFAULT_CONVERGENCE, min=0.0, max=1.0, step=0.01,
                               tooltip="The disparity that lies on the screen plane (0 = far, 1 = near)."
                               + IGNORED_WITH_DISPLAY),
                io.Float.Input("temporal_smoothing", default=0.5, min=0.0, max=0.95, step=0.05,
                               tooltip="Smooths the depth over time so it does not flicker: a symmetric window "
                               "(weights strength^distance, up to 32 frames each way), restarting at scene cuts. "
                               "0 is off."),
                io.Int.Input("scale_window", default=24, min=0, max=240,
                             tooltip="Frames on each side whose depth range sets a frame's disparity scale "
                             "(within its shot). Larger: steadier depth, slower to adapt."),
                io.Float.Input("scene_cut_sensitivity", default=1.0, min=0.0, max=4.0, step=0.1,
                               tooltip="Scene cuts restart the smoothing and the scale. Above 1 finds softer "
                               "cuts; 0 turns detection off."),
                io.Int.Input("first_frame", default=0, min=0, max=2**31 - 1,
                             tooltip="First frame to convert (0 = the start). For segments on several servers."),
                io.Int.Input("frame_count", default=0, min=0, max=2**31 - 1,
                             tooltip="How many frames to convert; 0 = to the end of the file."),
                io.Combo.Input("layout", options=list(LAYOUTS), default="parallel", tooltip=LAYOUT_TOOLTIP),
                io.Combo.Input("format", options=[STEREO_MP4, VR180_MP4], default=STEREO_MP4,
                               tooltip="stereo MP4: a flat 3D video. VR180 MP4: each eye a 180-degree "
                               "equirectangular view with the picture as a floating screen."),
                io.Float.Input("vr180_fov", default=90.0, min=MIN_FOV, max=MAX_FOV, step=1.0,
                               tooltip="VR180 only: how wide the screen appears, in degrees."),
                io.Int.Input("crf", default=18, min=0, max=MAX_CRF,
                             tooltip="H.264 quality: lower is better and larger; 18 looks lossless to most people."),
                io.Boolean.Input("audio", default=True,
                                 tooltip="Pass the source's sound for the converted frames through (as AAC)."),
                io.Int.Input("resolution", default=0, min=0, max=4096, step=14,
                             tooltip="The depth network's input size (0 = its native size)."),
                io.Int.Input("batch_size", default=4, min=1, max=256,
                             tooltip="Frames per call of a per-frame depth network; also the depth stage's "
                             "micro-batch for Video Depth Anything."),
                display_input(),
                io.Combo.Input("hole_fill", options=list(FILLS), default="per frame", optional=True,
                               tooltip="per frame: each hole from its background side, frame by frame; segments "
                               "equal the whole run exactly. temporal: a background plate per eye carried along "
                               "the shot (the forward pass of Stereo Video Fill): holes show background seen "
                               "earlier and barely flicker; segments warm it up over their look-back."),
            ],
            outputs=[io.String.Output("file", tooltip="Path of the saved video file.")],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
            is_output_node=True,
        )

    @classmethod
    def metadata(cls) -> dict[str, str]:
        hidden = getattr(cls, "hidden", None)  # None when called outside a prompt
        return video_metadata(hidden.prompt, hidden.extra_pnginfo) if hidden is not None else {}

    @classmethod
    def fingerprint_inputs(cls, video, **kwargs):
        return os.path.getmtime(folder_paths.get_annotated_filepath(video))

    @classmethod
    def execute(cls, video, disparity_model, filename_prefix, divergence, convergence, temporal_smoothing,
                scale_window, scene_cut_sensitivity, first_frame, frame_count, layout, format, vr180_fov, crf,
                audio, resolution, batch_size, display=None, hole_fill="per frame") -> io.NodeOutput:
        check_filename_prefix(filename_prefix)
        if not folder_paths.exists_annotated_filepath(video):
            raise ValueError(f"video: {video!r} is not in the input folder")
        path = folder_paths.get_annotated_filepath(video)
        info = probe(path, "video")
        if info.frames and first_frame >= info.frames:
            raise ValueError(f"first_frame {first_frame} is past the end of the video ({info.frames} frames)")
        settings = StreamSettings(temporal_smoothing, scale_window, scene_cut_sensitivity, batch_size, hole_fill)
        geometry = stream_geometry(divergence, convergence, display)
        projection = "VR180" if format == VR180_MP4 else "flat"
        total = (min(frame_count, info.frames - first_frame) if frame_count and info.frames
                 else frame_count or max(info.frames - first_frame, 0))

        patcher = disparity_model.patcher
        mm.load_models_gpu([patcher])

        def depth_for(start: int):
            return depth_stream(patcher.model, disparity_model.architecture, start, batch_size, resolution,
                                device=patcher.load_device, dtype=disparity_model.dtype)

        sound = None
        if audio and info.has_audio and total:
            reader = AudioRange(path, first_frame / info.fps, total / info.fps)
            sound = Audio(reader, reader.rate)  # decoded as the writer reaches it, not held whole

        folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(
            filename_prefix, folder_paths.get_output_directory(), info.width, info.height)
        segment = f"_f{first_frame:07}" if first_frame or frame_count else ""
        file = f"{name}_{counter:05}{segment}{file_suffix(layout, projection)}.mp4"
        out_path = os.path.join(folder, file)
        progress = Progress(total, f"Stereo Convert Video File {video}")
        LOG.info("[StereoDiffusion] Stereo Convert Video File: %s, look-ahead %d frames, look-back %d",
                 geometry.describe(), settings.look_ahead, settings.look_back)
        try:
            with StereoVideoWriter(out_path, float(info.fps), layout, crf, projection, vr180_fov, audio=sound,
                                   metadata=cls.metadata()) as writer:
                # The whole chain runs where the depth network runs; only finished pairs come back.
                def frames(start: int):
                    for frame in read_frames(path, start, "video"):
                        mm.throw_exception_if_processing_interrupted()  # also while the look-ahead fills
                        yield frame.to(patcher.load_device)

                for _, left, right in convert_frames(frames, depth_for, settings, geometry, first_frame, frame_count):
                    writer.write_pairs(left.unsqueeze(0).to("cpu"), right.unsqueeze(0).to("cpu"))
                    progress.frame()
                    mm.throw_exception_if_processing_interrupted()
        except ValueError as exc:
            if progress.done == 0 and "no frames were written" in str(exc):
                raise ValueError(f"first_frame {first_frame}: {video} has no frames from there on") from exc
            raise
        finally:
            if sound is not None:
                sound.samples.close()
        LOG.info("[StereoDiffusion] %s; wrote %s", progress.line(), out_path)
        saved = {"filename": file, "subfolder": subfolder, "type": "output"}
        return io.NodeOutput(out_path, ui={"images": [saved], "animated": (True,)})


NODES = [StereoConvertVideoFile]
