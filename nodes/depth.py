"""StereoDisparityModelLoader and StereoEstimateDisparity: monocular depth networks as disparity."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import comfy.model_management as mm
import comfy.model_patcher
import comfy.utils
import einops  # noqa: F401  (the networks need timm and einops; without them only these nodes are disabled)
import timm  # noqa: F401
import torch
from comfy_api.latest import io

from ..stereo_ops.depth import (
    DepthArchitecture,
    build_and_load,
    check_image_batch,
    network_input_size,
    predict,
    prediction_to_disparity,
    screen_convergence,
)
from ..stereo_ops.scene_cuts import detect_scene_cuts
from ..stereo_ops.temporal import check_strength, smooth_over_time
from .depth_model_files import (
    DOWNLOAD_LABEL,
    da3_metric_hint,
    default_choice,
    depth_anything_version_hint,
    licence_note,
    model_choices,
    non_commercial_files,
    register_model_folders,
    resolve_model_file,
)
from .stereo_types import DisparityModelType

LOG = logging.getLogger("StereoDiffusion")

CATEGORY = "stereo/disparity"
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
NORMALIZATION = ("per image", "per batch")
VIDEO_MODES = ("windows", "streaming")
# New options go last: saved workflows store the chosen text, so existing choices keep working.
VERSIONS = ("auto", "V2", "V1", "DA3 relative", "DA3 metric")

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
            display_name="Load Disparity Model (Depth)",
            category=CATEGORY,
            description="Load a monocular depth network (Depth Anything V2/V1, Depth Anything 3 Mono/Metric/"
            "Small/Base, Video Depth Anything Small/Base/Large and their metric versions, MiDaS DPT-Large, "
            "DPT-Hybrid, DPT-BEiT-L-512) from models/depthanything or models/midas. The architecture is read "
            "from the file's weights. Licences: the Base and Large files of Depth Anything V2 and Video Depth "
            "Anything are CC-BY-NC-4.0 (non-commercial use only); the Small ones are Apache-2.0.",
            inputs=[
                io.Combo.Input(
                    "model_name", options=choices, default=default_choice(choices),
                    tooltip="A file in models/depthanything or models/midas. The files you have come first; "
                    "after the 'not downloaded yet' label come the official files that are not present, "
                    "downloaded on first run when 'download_if_missing' is on. Non-commercial licence "
                    "(CC-BY-NC-4.0): " + ", ".join(non_commercial_files()) + ". Video Depth Anything "
                    "(video_depth_anything_*) treats the image batch as the frames of one clip.",
                ),
                io.Combo.Input(
                    "precision", options=list(PRECISIONS), default="auto",
                    tooltip="Weight precision. auto: fp16/bf16 where the device runs them well, else fp32.",
                ),
                io.Combo.Input(
                    "depth_anything_version", options=list(VERSIONS), default="auto", optional=True,
                    tooltip="What the weights cannot tell. Depth Anything V1 and V2 files have the same weight "
                    "names: auto takes V1 for the official depth_anything_vit?14 files, else V2. DA3METRIC-LARGE "
                    "and DA3MONO-LARGE have the same weight names too: auto takes metric when the file or folder "
                    "name says 'metric'. Other DA3 files are recognised from their weights. Video Depth Anything: "
                    "the DA3 metric/relative choice applies to it too (auto: metric when the name says 'metric', "
                    "as the official metric_video_depth_anything_* files do).",
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
    def validate_inputs(cls, model_name) -> bool | str:
        # Before the run: the list's separator label is refused here, not after the queue reached it.
        # (Defining this turns off the host's own list check for model_name, so it is done here too.)
        choices = model_choices()
        if model_name == DOWNLOAD_LABEL:
            return ("model_name: the chosen entry is the label between the files you have and the official files "
                    "downloaded on first run; choose a file above or below it")
        if model_name not in choices:
            return f"model_name: '{model_name}' is not in the list ({len(choices)} files); choose one of the list"
        return True

    @classmethod
    def execute(cls, model_name, precision, depth_anything_version="auto", download_if_missing=True) -> io.NodeOutput:
        path = resolve_model_file(model_name, download_if_missing)
        version = {"V1": 1, "V2": 2}.get(depth_anything_version) or depth_anything_version_hint(model_name)
        metric = {"DA3 metric": True, "DA3 relative": False}.get(depth_anything_version, da3_metric_hint(model_name))
        try:
            state_dict = comfy.utils.load_torch_file(path, safe_load=True)
        except Exception as exc:
            raise ValueError(f"could not read depth model file {path}: {exc}. Is the file complete?") from exc
        model, arch = build_and_load(state_dict, depth_anything_version=version, da3_metric=metric, video_metric=metric)
        if note := licence_note(model_name):
            LOG.warning("[StereoDiffusion] %s", note)
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
            display_name="Estimate Disparity (Depth)",
            category=CATEGORY,
            description="Estimate a disparity map (near = 1, far = 0) for each image with a depth "
            "network, at the image's own size and aspect ratio. Networks that predict depth (Depth Anything 3) "
            "are converted by the reciprocal 1/Z. For video: per batch normalisation and temporal smoothing "
            "keep the frames from flickering; frames go through the network batch_size at a time. Video Depth "
            "Anything takes the batch as one clip in order and keeps depth consistent over time itself.",
            inputs=[
                DisparityModelType.Input("disparity_model", tooltip="From Load Disparity Model."),
                io.Image.Input("image", tooltip="RGB images, any size and aspect ratio."),
                io.Int.Input(
                    "resolution", default=0, min=0, max=4096, step=1,
                    tooltip="Size the network works at. 0: the model's native size (518 Depth Anything, 504 "
                    "Depth Anything 3, 384 DPT-Large/Hybrid, 512 BEiT-L-512). Depth Anything scales the shorter side "
                    "to it, Depth Anything 3 the longer side, MiDaS fits the image to it as its official code does; "
                    "Video Depth Anything as Depth Anything, less for frames wider than 16:9 (its official rule). "
                    "Higher gives finer detail, slower.",
                ),
                io.Combo.Input(
                    "normalization", options=list(NORMALIZATION), default="per image",
                    tooltip="per image: each map spans 0..1. per batch: one scale for the whole batch, "
                    "so video frames do not flicker.",
                ),
                io.Int.Input(
                    "batch_size", default=1, min=1, max=64, optional=True,
                    tooltip="Images run through the network at once; more is faster but needs more memory. "
                    "Only this many frames are on the GPU at a time, so long clips work.",
                ),
                io.Float.Input(
                    "temporal_smoothing", default=0.0, min=0.0, max=0.99, step=0.01, optional=True,
                    tooltip="Video: treat the batch as frames in order and smooth each pixel over time (forward "
                    "and backward, no lag). 0 = off; 0.5 averages about 3 frames each way. Use with normalization "
                    "'per batch'; high values blur fast motion.",
                ),
                io.Float.Input(
                    "screen_depth", default=0.0, min=0.0, max=10000.0, step=0.1, optional=True,
                    tooltip="Metric models (Depth Anything 3 Metric) only: the distance in metres that sits at "
                    "the screen plane. Gives the matching 'convergence' output for the stereo sampler. 0 = off.",
                ),
                io.Float.Input(
                    "horizontal_fov", default=60.0, min=1.0, max=179.0, step=0.5, optional=True,
                    tooltip="Metric models only: the photo's horizontal field of view in degrees, which turns the "
                    "network's output into metres (DA3 Metric: focal length x output / 300; Video Depth Anything "
                    "Metric predicts metres directly).",
                ),
                io.Combo.Input(
                    "video_mode", options=list(VIDEO_MODES), default="windows", optional=True,
                    tooltip="Video Depth Anything only (the batch is one clip, frames in order). windows: the "
                    "official procedure, 32-frame windows with overlapping key frames, each aligned to the last "
                    "by scale and shift. streaming: one frame at a time against cached attention states of "
                    "earlier frames; experimental and less accurate, as in the official code.",
                ),
                io.Boolean.Input(
                    "scene_cuts", default=False, optional=True,
                    tooltip="Video: find the scene cuts in the frames and restart the per batch normalisation, "
                    "the temporal smoothing and Video Depth Anything's windows at each, so that every shot comes out "
                    "as if it were a clip of its own (nothing blends across a cut). Off: the batch is one shot.",
                ),
            ],
            outputs=[
                io.Mask.Output("disparity", tooltip="Disparity (B, H, W), 0..1, near = 1."),
                io.Image.Output("preview", tooltip="The disparity as a gray image."),
                io.Float.Output(
                    "convergence", tooltip="With screen_depth: the sampler convergence that puts that depth at the "
                    "screen (the mean over images with per image normalisation). 0 otherwise.",
                ),
            ],
        )

    @classmethod
    def execute(
        cls, disparity_model, image, resolution, normalization, batch_size=1, temporal_smoothing=0.0,
        screen_depth=0.0, horizontal_fov=60.0, video_mode="windows", scene_cuts=False,
    ) -> io.NodeOutput:
        image = check_image_batch(image)
        arch = disparity_model.architecture
        if screen_depth > 0 and arch.output != "metric_depth":
            raise ValueError(
                f"screen_depth needs a metric depth model; {arch.name} predicts relative depth. Set it to 0 and "
                "choose the depth at the screen with the sampler's convergence instead."
            )
        check_strength(temporal_smoothing)
        per_batch = normalization == "per batch"
        if video_mode not in VIDEO_MODES:
            raise ValueError(f"video_mode must be one of {', '.join(VIDEO_MODES)}; got {video_mode!r}")
        starts = detect_scene_cuts(image) if scene_cuts else []
        prediction = _predict(
            disparity_model, image, resolution, batch_size, streaming=video_mode == "streaming", starts=starts
        )
        convergence = 0.0
        if screen_depth > 0:
            width = network_input_size(arch, image.shape[1], image.shape[2], resolution)[1]
            convergence = screen_convergence(prediction, arch, screen_depth, width, horizontal_fov, per_batch)
            convergence = float(convergence.mean())
        # In place, a chunk at a time: the prediction becomes the disparity without a second copy.
        disparity = prediction_to_disparity(prediction, arch, per_batch, inplace=True, starts=starts)
        disparity = smooth_over_time(disparity, temporal_smoothing, inplace=True, starts=starts)
        disparity = disparity.to(mm.intermediate_device())
        # A broadcast view, not a copy: a long clip's preview costs no memory beyond the disparity.
        return io.NodeOutput(disparity, disparity.unsqueeze(-1).expand(-1, -1, -1, 3), convergence)


def _predict(disparity_model: DisparityModel, image: torch.Tensor, resolution: int, batch_size: int,
             progress: bool = True, streaming: bool = False, starts=()) -> torch.Tensor:
    """The network's raw prediction for RGB images, on the model's device, with progress and interrupts."""
    patcher = disparity_model.patcher
    mm.load_models_gpu([patcher])
    bar = comfy.utils.ProgressBar(image.shape[0]) if progress else None

    def on_batch(done: int) -> None:
        if bar is not None:
            bar.update(done)
        mm.throw_exception_if_processing_interrupted()

    return predict(
        patcher.model, disparity_model.architecture, image, resolution, device=patcher.load_device,
        dtype=disparity_model.dtype, batch_size=batch_size, on_batch=on_batch, streaming=streaming, starts=starts,
    )


def run_disparity_model(
    disparity_model: DisparityModel, image: torch.Tensor, resolution: int = 0, per_batch: bool = False,
    batch_size: int = 1, progress: bool = True,
) -> torch.Tensor:
    """Disparity (B, H, W) of RGB images, as Estimate Disparity computes it (also used by the samplers)."""
    image = check_image_batch(image)
    prediction = _predict(disparity_model, image, resolution, batch_size, progress)
    disparity = prediction_to_disparity(prediction, disparity_model.architecture, per_batch, inplace=True)
    return disparity.to(mm.intermediate_device())


NODES = [StereoDisparityModelLoader, StereoEstimateDisparity]
