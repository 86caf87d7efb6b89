"""StereoSaveImage: save stereo pairs under names VR players recognise, or as Apple spatial photos,
with an in-node stereo viewer."""

from __future__ import annotations

import json
import os
import random
import string

import comfy.model_management
import comfy.utils
import folder_paths
import numpy as np
import torch
from comfy.cli_args import args
from comfy_api.latest import io
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from ..stereo_ops import ANAGLYPH_METHODS, LAYOUTS, VR_SUFFIXES, anaglyph, side_by_side, split_stereo, stereo_mpo_bytes
from ..stereo_ops.stereo_video import file_suffix, stereo_mode_of
from ..stereo_ops.vr180 import MAX_FOV, MIN_FOV, flat_to_vr180
from ..stereo_ops import spatial_photo
from ..stereo_ops.stereo_geometry import DisplayTarget
from .compose import ANAGLYPH_TOOLTIP, STEREO_TOOLTIP
from .stereo_types import StereoDisplayType
from .save_check import frame_metadata, pair_figures, viewer_summary
from ..stereo_ops.checks import check_images
from .input_checks import check_filename_prefix

CATEGORY = "stereo/output"
ANAGLYPH = "anaglyph"
SAVE_LAYOUTS = [*LAYOUTS, ANAGLYPH]
ANAGLYPH_SUFFIX = "_redcyan"
PNG = "png"
SPATIAL_PHOTO = "spatial photo (HEIC)"
VR180 = "VR180 (png)"
SAVE_FORMATS = [PNG, VR180, SPATIAL_PHOTO]
SPATIAL_SUFFIX = "_spatial.heic"


def to_pil(image: torch.Tensor) -> Image.Image:
    array = np.clip(image.detach().cpu().float().numpy() * 255.0, 0, 255).astype(np.uint8)
    return Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)


def png_metadata(prompt, extra_pnginfo) -> PngInfo | None:
    """The prompt and the workflow as PNG text chunks, exactly as the host's SaveImage writes them."""
    if args.disable_metadata:
        return None
    metadata = PngInfo()
    if prompt is not None:
        metadata.add_text("prompt", json.dumps(prompt))
    for key, value in (extra_pnginfo or {}).items():
        metadata.add_text(key, json.dumps(value))
    return metadata


def compose(left: torch.Tensor, right: torch.Tensor, layout: str, anaglyph_method: str) -> tuple[torch.Tensor, str]:
    if layout == ANAGLYPH:
        return anaglyph(left, right, anaglyph_method), ANAGLYPH_SUFFIX
    return side_by_side(left, right, layout), VR_SUFFIXES[layout]


def compose_vr180(left: torch.Tensor, right: torch.Tensor, layout: str, fov: float) -> tuple[torch.Tensor, str]:
    """Each eye as a 180 x 180 equirect with the picture as a floating screen, named _180_LR / _180_TB."""
    if layout == ANAGLYPH or stereo_mode_of(layout) is None:
        raise ValueError(
            f"format VR180 needs the parallel or top-bottom layout (VR180 players want the left eye left or on "
            f"top); got layout {layout!r}"
        )
    frames = side_by_side(flat_to_vr180(left, fov), flat_to_vr180(right, fov), layout)
    return frames, file_suffix(layout, "VR180")


def saved(filename: str, subfolder: str, folder_type: str) -> dict:
    return {"filename": filename, "subfolder": subfolder, "type": folder_type}


def save_frames(frames, left, right, filename_prefix, suffix, metadata, save_mpo) -> tuple[list[dict], list[dict]]:
    """One PNG (and optionally one MPO) per pair, numbered like the host's SaveImage numbers files."""
    folder, subfolder, bases = output_files(filename_prefix, frames.shape[2], frames.shape[1], frames.shape[0])
    pngs, mpos = [], []
    for i, (frame, base) in enumerate(zip(frames, bases)):
        png = f"{base}{suffix}.png"
        info = metadata[i] if isinstance(metadata, list) else metadata  # per pair: its check figures
        to_pil(frame).save(os.path.join(folder, png), pnginfo=info, compress_level=4)
        pngs.append(saved(png, subfolder, "output"))
        if save_mpo:
            mpo = f"{base}.mpo"
            write_file(folder, mpo, stereo_mpo_bytes(to_pil(left[i]), to_pil(right[i])))
            mpos.append(saved(mpo, subfolder, "output"))
    return pngs, mpos


def output_files(filename_prefix: str, width: int, height: int, count: int) -> tuple[str, str, list[str]]:
    """(folder, subfolder, one base name per pair), numbered on like the host's SaveImage. The
    prefix was checked by check_filename_prefix (it stays inside the output folder)."""
    out_dir = folder_paths.get_output_directory()
    folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(filename_prefix, out_dir, width, height)
    bases = [f"{name.replace('%batch_num%', str(i))}_{counter + i:05}" for i in range(count)]
    return folder, subfolder, bases


def write_file(folder: str, file: str, data: bytes) -> None:
    try:
        with open(os.path.join(folder, file), "wb") as f:
            f.write(data)
    except OSError as exc:
        raise ValueError(f"filename_prefix: cannot write {file} in the output folder ({exc.strerror})") from exc


def spatial_camera(display) -> dict:
    """The spatial photo's field of view, baseline and parallax budget: those of the display target
    the pair was made for (the angle its image subtends, its viewer's eye separation), else the
    defaults."""
    if display is None:
        return {}
    if not isinstance(display, DisplayTarget):
        raise ValueError("display: connect the output of a Stereo Display Target")
    return {
        "horizontal_fov_deg": display.display.horizontal_fov_deg,
        "baseline_mm": display.display.eye_separation_m * 1000.0,
        "budget": display.budget,
    }


def check_spatial_pairs(left: torch.Tensor) -> None:
    """Before anything is written: what a spatial photo needs of the batch and the environment."""
    height, width = left.shape[1], left.shape[2]
    if width % 2 or height % 2:
        raise ValueError(
            f"stereo: each eye is {width}x{height}, but a spatial photo (HEIC, 4:2:0) needs an even width "
            "and height; crop or resize the pair by one pixel first, or save it as png"
        )
    spatial_photo.require_pillow_heif()


def save_spatial_photos(left, right, filename_prefix, save_mpo, display=None) -> tuple[list[dict], list[dict]]:
    """One Apple spatial photo (and optionally one MPO) per pair."""
    camera = spatial_camera(display)
    check_spatial_pairs(left)
    folder, subfolder, bases = output_files(filename_prefix, left.shape[2], left.shape[1], left.shape[0])
    photos, mpos = [], []
    progress = comfy.utils.ProgressBar(len(bases))
    for i, base in enumerate(bases):
        comfy.model_management.throw_exception_if_processing_interrupted()
        eyes = to_pil(left[i]), to_pil(right[i])
        photo = f"{base}{SPATIAL_SUFFIX}"
        write_file(folder, photo, spatial_photo.spatial_photo_bytes(*eyes, **camera))
        photos.append(saved(photo, subfolder, "output"))
        if save_mpo:
            mpo = f"{base}.mpo"
            write_file(folder, mpo, stereo_mpo_bytes(*eyes))
            mpos.append(saved(mpo, subfolder, "output"))
        progress.update(1)
    return photos, mpos


def save_eye_previews(left: torch.Tensor, right: torch.Tensor) -> list[dict]:
    """Each eye as a temp PNG, for the in-node stereo viewer (it composes the views itself)."""
    temp_dir = folder_paths.get_temp_directory()
    tag = "".join(random.choice(string.ascii_lowercase) for _ in range(6))
    folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(f"StereoView_{tag}", temp_dir)
    views = []
    for i in range(left.shape[0]):
        pair = {}
        for eye, image in (("left", left[i]), ("right", right[i])):
            file = f"{name}_{counter:05}_{eye}.png"
            to_pil(image).save(os.path.join(folder, file), compress_level=1)
            pair[eye] = saved(file, subfolder, "temp")
        views.append(pair)
        counter += 1
    return views


class StereoSaveImage(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StereoSaveImage",
            display_name="Stereo Save Image (SBS, VR, 3D)",
            category=CATEGORY,
            description="Save each pair of a stereo batch to ComfyUI's output folder as one PNG "
            "whose name tells VR and 3D players its layout (_LR, _LRF_Full_SBS, _TB, _redcyan, ...), "
            "with the workflow embedded like Save Image does, or as an Apple spatial photo (HEIC) for "
            "Vision Pro, iPhone and Mac Photos (format); optionally also as a stereo MPO file "
            "(3D cameras, 3D photo frames, StereoPhoto Maker). The node shows the pair in a stereo "
            "viewer that starts in the saved layout: anaglyph (with anaglyph_method), parallel, "
            "cross-eyed, top-bottom or wiggle.",
            inputs=[
                io.Image.Input("stereo", tooltip=STEREO_TOOLTIP),
                io.String.Input(
                    "filename_prefix", default="StereoDiffusion",
                    tooltip="File name prefix, may include a subfolder and %date% style fields like "
                    "Save Image. The layout suffix and .png are appended.",
                ),
                io.Combo.Input(
                    "layout", options=SAVE_LAYOUTS, default="parallel",
                    tooltip="What each saved PNG holds: a side-by-side or top-bottom layout (see Stereo "
                    "Side-by-Side), or a red-cyan anaglyph. This widget decides the file; the viewer's menu "
                    "under the node only changes how the pair is shown, never what is saved.",
                ),
                io.Combo.Input(
                    "anaglyph_method", options=list(ANAGLYPH_METHODS), default="dubois",
                    tooltip="Used when layout is anaglyph. " + ANAGLYPH_TOOLTIP,
                ),
                io.Boolean.Input(
                    "save_mpo", default=False,
                    tooltip="Also write a stereo MPO (multi-picture JPEG: left, then right) per pair.",
                ),
                io.Combo.Input(
                    "format", options=SAVE_FORMATS, default=PNG, optional=True,
                    tooltip="What is written per pair. png: one PNG in the chosen layout. VR180 (png): "
                    "each eye a 180 x 180 degree equirectangular view with the picture as a floating "
                    "screen vr180_fov degrees wide, named _180_LR (parallel) or _180_TB (top-bottom) "
                    "for VR photo viewers. spatial photo (HEIC): one Apple spatial photo "
                    "(name_00001_spatial.heic), which Photos on Vision Pro, iPhone and Mac shows in 3D; "
                    "it holds both eyes at full size with the stereo pair group and spatial metadata, "
                    "needs pillow-heif and an even width and height (docs/spatial-photo.md).",
                ),
                io.Float.Input(
                    "vr180_fov", default=90.0, min=MIN_FOV, max=MAX_FOV, step=1.0, optional=True,
                    tooltip="VR180 only: how wide the picture appears, in degrees; its height follows "
                    "the aspect ratio.",
                ),
                StereoDisplayType.Input(
                    "display", optional=True,
                    tooltip="Optional display target (Stereo Display Target). For a spatial photo, "
                    "its field of view (the angle its image subtends) and its eye separation become the "
                    "photo's field of view and baseline, instead of 60 degrees and 64 mm, and its "
                    "comfortable parallax (instead of a VR headset's) bounds the disparity adjustment and "
                    "is the budget the check measures each pair against.",
                ),
                io.Boolean.Input(
                    "check", default=True, optional=True,
                    tooltip="Run Stereo Check on each pair (under a second per pair) and write its figures into "
                    "the PNG (text chunk stereo_check, JSON); the viewer shows the verdict and parallax range.",
                ),
                io.String.Input(
                    "check_figures", optional=True, force_input=True,
                    tooltip="Optional: the figures output of a Stereo Check on the same pairs, used instead of "
                    "checking again.",
                ),
            ],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
            is_output_node=True,
        )

    @classmethod
    def execute(
        cls, stereo, filename_prefix, layout, anaglyph_method, save_mpo, format=PNG, vr180_fov=90.0, display=None,
        check=True, check_figures=None,
    ) -> io.NodeOutput:
        if format not in SAVE_FORMATS:
            raise ValueError(f"format must be one of {SAVE_FORMATS}, got {format!r}")
        check_filename_prefix(filename_prefix)
        left, right = split_stereo(check_images(stereo, "stereo"), "stereo")
        figures = pair_figures(left, right, check, check_figures, display)
        # The saved files go under their own keys, not "images": for "images" the frontend draws a
        # flat preview of the saved file under the node's stereo viewer, a second copy of the pair.
        ui = {}
        if format == SPATIAL_PHOTO:
            ui["stereo_spatial"], mpos = save_spatial_photos(left, right, filename_prefix, save_mpo, display)
        else:
            if format == VR180:
                frames, suffix = compose_vr180(left, right, layout, vr180_fov)
            else:
                frames, suffix = compose(left, right, layout, anaglyph_method)
            metadata = frame_metadata(png_metadata(cls.hidden.prompt, cls.hidden.extra_pnginfo), figures)
            ui["stereo_images"], mpos = save_frames(frames, left, right, filename_prefix, suffix, metadata, save_mpo)
        ui.update({"stereo_views": save_eye_previews(left, right), "stereo_layout": [layout],
                   "stereo_check": viewer_summary(figures)})
        if mpos:
            ui["stereo_mpo"] = mpos
        return io.NodeOutput(ui=ui)


NODES = [StereoSaveImage]
