"""StereoDisparityModelLoader and StereoEstimateDisparity: monocular depth networks as disparity."""

from __future__ import annotations

from dataclasses import dataclass

import comfy.model_management as mm
import comfy.model_patcher
import comfy.utils
import einops  # noqa: F401  (the networks need timm and einops; without them only these nodes are disabled)
import timm  # noqa: F401
import torch
from comfy_api.latest import io

from ..stereo_ops.depth import DepthArchitecture, build_and_load, check_image_batch, estimate_disparity
from .depth_model_files import (
    default_choice,
    depth_anything_version_hint,
    model_choices,
    register_model_folders,
    resolve_model_file,
)

CATEGORY = "stereo/disparity"
DisparityModelType = io.Custom("DISPARITY_MODEL")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
NORMALIZATION = ("per image", "per batch")

register_model_folders()


@dataclass
class DisparityModel:
    """What flows through a DISPARITY_MODEL socket."""

    patcher: comfy.model_patcher.ModelPatcher
    architecture: DepthArchitecture
    dtype: torch.dtype
    file: str


def _choose_dtype(precision: str, device: torch.device) -> torch.dtype:
    if precision != "auto":
        return _DTYPES[precision]
    if mm.should_use_fp16(device, prioritize_performance=False):
        return torch.float16
    if mm.should_use_bf16(device, prioritize_performance=False):
        return torch.bfloat16
    return torch.float32


class StereoDisparityModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        choices = model_choices()
        return io.Schema(
            node_id="StereoDisparityModelLoader",
            display_name="Load Disparity Model",
            category=CATEGORY,
            description="Load a monocular depth network (Depth Anything V2/V1, MiDaS DPT-Large, "
            "DPT-Hybrid, DPT-BEiT-L-512) from models/depthanything or models/midas. The architecture "
            "is read from the file's weights.",
            inputs=[
                io.Combo.Input(
                    "model_name", options=choices, default=default_choice(choices),
                    tooltip="A file in models/depthanything or models/midas. The files you have come first; "
                    "after the 'not downloaded yet' label come the official files that are not present, "
                    "downloaded on first run when 'download_if_missing' is on.",
                ),
                io.Combo.Input(
                    "precision", options=list(PRECISIONS), default="auto",
                    tooltip="Weight precision. auto: fp16/bf16 where the device runs them well, else fp32.",
                ),
                io.Combo.Input(
                    "depth_anything_version", options=["auto", "V2", "V1"], default="auto", optional=True,
                    tooltip="Depth Anything V1 and V2 files have the same weight names, so the version "
                    "cannot be read from them. auto: V1 for the official depth_anything_vit?14 files, else V2.",
                ),
                io.Boolean.Input(
                    "download_if_missing", default=True, optional=True,
                    tooltip="Download a missing official file from its public address (not when "
                    "HF_HUB_OFFLINE is set).",
                ),
            ],
            outputs=[DisparityModelType.Output("disparity_model", tooltip="The loaded depth network.")],
        )

    @classmethod
    def execute(cls, model_name, precision, depth_anything_version="auto", download_if_missing=True) -> io.NodeOutput:
        path = resolve_model_file(model_name, download_if_missing)
        version = {"V1": 1, "V2": 2}.get(depth_anything_version) or depth_anything_version_hint(model_name)
        try:
            state_dict = comfy.utils.load_torch_file(path, safe_load=True)
        except Exception as exc:
            raise ValueError(f"could not read depth model file {path}: {exc}. Is the file complete?") from exc
        model, arch = build_and_load(state_dict, depth_anything_version=version)
        load_device = mm.get_torch_device()
        dtype = _choose_dtype(precision, load_device)
        patcher = comfy.model_patcher.ModelPatcher(
            model.to(dtype), load_device=load_device, offload_device=mm.unet_offload_device()
        )
        return io.NodeOutput(DisparityModel(patcher, arch, dtype, path))


class StereoEstimateDisparity(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StereoEstimateDisparity",
            display_name="Estimate Disparity",
            category=CATEGORY,
            description="Estimate a disparity map (near = 1, far = 0) for each image with a depth "
            "network, at the image's own size and aspect ratio.",
            inputs=[
                DisparityModelType.Input("disparity_model", tooltip="From Load Disparity Model."),
                io.Image.Input("image", tooltip="RGB images, any size and aspect ratio."),
                io.Int.Input(
                    "resolution", default=0, min=0, max=4096, step=1,
                    tooltip="Size the network works at. 0: the model's native size (518 Depth Anything, "
                    "384 DPT-Large/Hybrid, 512 BEiT-L-512). Depth Anything scales the shorter side to it, MiDaS "
                    "fits the image to it as its official code does. Higher gives finer detail, slower.",
                ),
                io.Combo.Input(
                    "normalization", options=list(NORMALIZATION), default="per image",
                    tooltip="per image: each map spans 0..1. per batch: one scale for the whole batch, "
                    "so video frames do not flicker.",
                ),
                io.Int.Input(
                    "batch_size", default=1, min=1, max=64, optional=True,
                    tooltip="Images run through the network at once; more is faster but needs more memory.",
                ),
            ],
            outputs=[
                io.Mask.Output("disparity", tooltip="Disparity (B, H, W), 0..1, near = 1."),
                io.Image.Output("preview", tooltip="The disparity as a gray image."),
            ],
        )

    @classmethod
    def execute(cls, disparity_model, image, resolution, normalization, batch_size=1) -> io.NodeOutput:
        image = check_image_batch(image)
        patcher = disparity_model.patcher
        mm.load_models_gpu([patcher])
        progress = comfy.utils.ProgressBar(image.shape[0])

        def on_batch(done: int) -> None:
            progress.update(done)
            mm.throw_exception_if_processing_interrupted()

        disparity = estimate_disparity(
            patcher.model, disparity_model.architecture, image, resolution,
            per_batch=normalization == "per batch", device=patcher.load_device,
            dtype=disparity_model.dtype, batch_size=batch_size, on_batch=on_batch,
        ).to(mm.intermediate_device())
        return io.NodeOutput(disparity, disparity.unsqueeze(-1).expand(-1, -1, -1, 3).contiguous())


NODES = [StereoDisparityModelLoader, StereoEstimateDisparity]
