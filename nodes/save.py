"""StereoSaveImage: save stereo pairs under names VR players recognise, with an in-node stereo viewer."""

from __future__ import annotations

import json
import os
import random
import string

import folder_paths
import numpy as np
import torch
from comfy.cli_args import args
from comfy_api.latest import io
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from ..stereo_ops import ANAGLYPH_METHODS, LAYOUTS, VR_SUFFIXES, anaglyph, side_by_side, split_stereo, stereo_mpo_bytes
from ..stereo_ops.checks import check_images
from .compose import ANAGLYPH_TOOLTIP, STEREO_TOOLTIP
from .input_checks import check_filename_prefix

CATEGORY = "stereo/output"
ANAGLYPH = "anaglyph"
SAVE_LAYOUTS = [*LAYOUTS, ANAGLYPH]
ANAGLYPH_SUFFIX = "_redcyan"


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


def saved(filename: str, subfolder: str, folder_type: str) -> dict:
    return {"filename": filename, "subfolder": subfolder, "type": folder_type}


def save_frames(frames, left, right, filename_prefix, suffix, metadata, save_mpo) -> tuple[list[dict], list[dict]]:
    """One PNG (and optionally one MPO) per pair, numbered like the host's SaveImage numbers files."""
    out_dir = folder_paths.get_output_directory()
    folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(
        filename_prefix, out_dir, frames.shape[2], frames.shape[1]
    )
    pngs, mpos = [], []
    for i, frame in enumerate(frames):
        base = f"{name.replace('%batch_num%', str(i))}_{counter:05}"
        png = f"{base}{suffix}.png"
        to_pil(frame).save(os.path.join(folder, png), pnginfo=metadata, compress_level=4)
        pngs.append(saved(png, subfolder, "output"))
        if save_mpo:
            mpo = f"{base}.mpo"
            with open(os.path.join(folder, mpo), "wb") as f:
                f.write(stereo_mpo_bytes(to_pil(left[i]), to_pil(right[i])))
            mpos.append(saved(mpo, subfolder, "output"))
        counter += 1
    return pngs, mpos


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
            "with the workflow embedded like Save Image does; optionally also as a stereo MPO file "
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
            ],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, stereo, filename_prefix, layout, anaglyph_method, save_mpo) -> io.NodeOutput:
        check_filename_prefix(filename_prefix)
        left, right = split_stereo(check_images(stereo, "stereo"), "stereo")
        frames, suffix = compose(left, right, layout, anaglyph_method)
        metadata = png_metadata(cls.hidden.prompt, cls.hidden.extra_pnginfo)
        pngs, mpos = save_frames(frames, left, right, filename_prefix, suffix, metadata, save_mpo)
        # The saved files go under their own key, not "images": for "images" the frontend draws a
        # flat preview of the saved file under the node's stereo viewer, a second copy of the pair.
        ui = {"stereo_images": pngs, "stereo_views": save_eye_previews(left, right), "stereo_layout": [layout]}
        if mpos:
            ui["stereo_mpo"] = mpos
        return io.NodeOutput(ui=ui)


NODES = [StereoSaveImage]
