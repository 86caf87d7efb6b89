"""StereoSaveVideo: a stereo batch as an MP4 that players recognise as stereo (st3d; VR180 with sv3d)."""

from __future__ import annotations

import json
import os

import av  # noqa: F401  (without PyAV the node is disabled with an install hint, see nodes/__init__.py)
import comfy.model_management
import comfy.utils
import folder_paths
from comfy.cli_args import args
from comfy_api.latest import io

from ..stereo_ops import LAYOUTS, split_stereo
from ..stereo_ops.checks import check_images
from ..stereo_ops.stereo_video import MAX_CRF, MV_HEVC_MISSING, Audio, StereoVideoWriter, file_suffix, mv_hevc_encoder
from ..stereo_ops.vr180 import MAX_FOV, MIN_FOV
from .compose import LAYOUT_TOOLTIP, STEREO_TOOLTIP
from .input_checks import check_filename_prefix

CATEGORY = "stereo/output"
STEREO_MP4, VR180_MP4, SPATIAL = "stereo MP4", "VR180 MP4", "Apple spatial video (MV-HEVC)"
FORMATS = [STEREO_MP4, VR180_MP4, SPATIAL]
PAIRS_PER_CHUNK = 16  # pairs composed and encoded at a time: bounds the memory beyond the input


def video_metadata(prompt, extra_pnginfo) -> dict[str, str]:
    """The prompt and the workflow as MP4 tags, as the host's SaveVideo stores them."""
    if args.disable_metadata:
        return {}
    metadata = {key: json.dumps(value) for key, value in (extra_pnginfo or {}).items()}
    if prompt is not None:
        metadata["prompt"] = json.dumps(prompt)
    return metadata


def check_format(format: str) -> None:
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {format!r}")
    if format == SPATIAL:
        found = mv_hevc_encoder()
        if found is None:
            raise ValueError(f"format: {MV_HEVC_MISSING}")
        raise ValueError(
            f"format: an MV-HEVC encoder is reachable ({found}), but this version of the pack does not "
            "write spatial video yet. Save a stereo MP4 instead."
        )


class StereoSaveVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StereoSaveVideo",
            display_name="Stereo Save Video",
            category=CATEGORY,
            description="Save a stereo batch (N left frames, then N right frames) as an H.264 MP4 in "
            "ComfyUI's output folder that players recognise as stereo: the stereo layout is written "
            "in the video track (Google's st3d box, read by YouTube and VR players) and in the file "
            "name (_LR, _TB, ...). VR180 puts each eye on a 180-degree half sphere with the picture "
            "as a floating screen (st3d plus sv3d, file name _180_LR). Audio from Load Video passes "
            "through as AAC. An interrupted run keeps the frames written so far in a playable file.",
            inputs=[
                io.Image.Input("stereo", tooltip=STEREO_TOOLTIP + " Consecutive pairs are the video's frames."),
                io.String.Input(
                    "filename_prefix", default="video/StereoDiffusion",
                    tooltip="File name prefix, may include a subfolder and %date% style fields like "
                    "Save Video. The counter, the player tag (_LR, _180_LR, ...) and .mp4 are appended.",
                ),
                io.Float.Input(
                    "frame_rate", default=24.0, min=0.01, max=1000.0, step=0.001,
                    tooltip="Frames per second. Connect the fps output of Get Video Components to keep "
                    "the source's rate (29.97, 23.976 and 59.94 are written as the exact NTSC rates).",
                ),
                io.Combo.Input(
                    "layout", options=list(LAYOUTS), default="parallel",
                    tooltip=LAYOUT_TOOLTIP + " st3d can only say 'left eye left' or 'left eye on top': "
                    "cross-eyed files carry no st3d, players know them by the _RL name only.",
                ),
                io.Combo.Input(
                    "format", options=FORMATS, default=STEREO_MP4,
                    tooltip="stereo MP4: a flat 3D video (3D TVs, Quest/Vision Pro players, YouTube). "
                    "VR180 MP4: each eye a 180 x 180 degree equirectangular view with the picture as a "
                    "floating screen of vr180_fov degrees (YouTube VR, Quest, DeoVR, Skybox). Apple "
                    "spatial video needs an MV-HEVC encoder that PyAV and FFmpeg's pip builds lack; "
                    "choosing it says what is missing.",
                ),
                io.Float.Input(
                    "vr180_fov", default=90.0, min=MIN_FOV, max=MAX_FOV, step=1.0,
                    tooltip="VR180 only: how wide the screen appears, in degrees. 90 is a large cinema "
                    "screen; the height follows the picture's aspect ratio.",
                ),
                io.Int.Input(
                    "crf", default=18, min=0, max=MAX_CRF, step=1,
                    tooltip="H.264 quality: lower is better and larger. 18 looks lossless to most "
                    "people; 23 is x264's default; 0 is lossless (few players decode it).",
                ),
                io.Audio.Input(
                    "audio", optional=True,
                    tooltip="Optional sound, e.g. the audio output of Get Video Components; encoded as "
                    "AAC and cut at the video's end.",
                ),
            ],
            outputs=[io.String.Output("file", tooltip="Path of the saved video file.")],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, stereo, filename_prefix, frame_rate, layout, format, vr180_fov, crf, audio=None) -> io.NodeOutput:
        check_format(format)
        check_filename_prefix(filename_prefix)
        left, right = split_stereo(check_images(stereo, "stereo"), "stereo")
        projection = "VR180" if format == VR180_MP4 else "flat"
        sound = Audio.from_comfy(audio, "audio") if audio is not None else None
        folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(
            filename_prefix, folder_paths.get_output_directory(), left.shape[2], left.shape[1]
        )
        file = f"{name}_{counter:05}{file_suffix(layout, projection)}.mp4"
        path = os.path.join(folder, file)
        progress = comfy.utils.ProgressBar(left.shape[0])
        with StereoVideoWriter(
            path, frame_rate, layout, crf, projection, vr180_fov, audio=sound,
            metadata=video_metadata(cls.hidden.prompt, cls.hidden.extra_pnginfo),
        ) as writer:
            for start in range(0, left.shape[0], PAIRS_PER_CHUNK):
                comfy.model_management.throw_exception_if_processing_interrupted()
                stop = start + PAIRS_PER_CHUNK
                writer.write_pairs(left[start:stop], right[start:stop])
                progress.update(min(stop, left.shape[0]) - start)
        saved = {"filename": file, "subfolder": subfolder, "type": "output"}
        return io.NodeOutput(path, ui={"images": [saved], "animated": (True,)})


NODES = [StereoSaveVideo]
