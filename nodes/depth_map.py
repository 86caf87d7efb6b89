"""StereoDepthToDisparity: any depth or disparity map from elsewhere as this pack's disparity MASK."""

from __future__ import annotations

from comfy_api.latest import io

from ..stereo_ops.checks import check_images, check_mask
from ..stereo_ops.depth_map import CONVERSIONS, NORMALIZATIONS, check_map_batch, depth_map_to_disparity
from ..stereo_ops.scene_cuts import detect_scene_cuts

CATEGORY = "stereo/disparity"


class StereoDepthToDisparity(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StereoDepthToDisparity",
            display_name="Depth to Disparity",
            category=CATEGORY,
            description="Turn a depth or disparity map from another node (comfyui_controlnet_aux, "
            "Marigold, Depth Anything 3, a painted map, a MASK) into a disparity MASK: 0..1, near = 1. "
            "Disparity-like maps (near = bright) are stretched linearly; true depth maps (near = small) "
            "need conversion 'depth', the reciprocal 1/Z.",
            inputs=[
                io.Image.Input(
                    "image", optional=True,
                    tooltip="A depth or disparity map as an IMAGE (colour channels are averaged). Give this or 'mask'.",
                ),
                io.Mask.Input("mask", optional=True, tooltip="A depth or disparity map as a MASK. Used when no image is given."),
                io.Boolean.Input(
                    "invert", default=False,
                    tooltip="With conversion 'linear': on for maps where near is dark, taken as the linear inverse "
                    "(Zmax - Z)/(Zmax - Zmin); off for disparity-like maps where near is bright (MiDaS, Depth "
                    "Anything V1/V2, most ControlNet depth preprocessors). True depth (Marigold, Depth Anything 3, "
                    "metric depth) is better converted with conversion 'depth'. Ignored by conversion 'depth'.",
                ),
                io.Combo.Input(
                    "normalization", options=list(NORMALIZATIONS), default="per image",
                    tooltip="per image: stretch each map to 0..1. per batch: one stretch for all (video). "
                    "none: keep values, clamped to 0..1 (conversion 'depth': near_clip / Z).",
                ),
                io.Float.Input(
                    "gamma", default=1.0, min=0.1, max=10.0, step=0.05,
                    tooltip="Curve applied after normalisation: above 1 pushes middle depths back, below 1 brings them forward.",
                ),
                io.Float.Input(
                    "blur", default=0.0, min=0.0, max=64.0, step=0.5,
                    tooltip="Gaussian blur radius (sigma, pixels) to soften depth edges; 0 = off.",
                ),
                io.Int.Input("width", default=0, min=0, max=16384, tooltip="Output width; 0 keeps the map's width."),
                io.Int.Input("height", default=0, min=0, max=16384, tooltip="Output height; 0 keeps the map's height."),
                io.Combo.Input(
                    "conversion", options=list(CONVERSIONS), default="linear", optional=True,
                    tooltip="linear: the map is disparity-like (MiDaS, Depth Anything V1/V2: near = bright), "
                    "stretched as it is or linearly inverted with 'invert'. depth: the map is true depth (Marigold, "
                    "Depth Anything 3, metric depth: near = small); disparity is its reciprocal fB/Z, normalised "
                    "as (1/Z - 1/Zmax)/(1/Zmin - 1/Zmax). Depth 1, 2, 5, 10 gives 1, 0.444, 0.111, 0 (linear: "
                    "1, 0.889, 0.556, 0).",
                ),
                io.Float.Input(
                    "near_clip", default=0.01, min=1e-6, max=1e6, step=0.001, optional=True,
                    tooltip="conversion 'depth' only: depth below this (in the map's units: 0..1 for images, "
                    "metres for metric depth) counts as this, so zeros and near noise cannot take the whole range.",
                ),
                io.Float.Input(
                    "temporal_smoothing", default=0.0, min=0.0, max=0.99, step=0.01, optional=True,
                    tooltip="Video: treat the batch as frames in order and smooth each pixel over time (forward "
                    "and backward, no lag) after normalisation. 0 = off; 0.5 averages about 3 frames each way. "
                    "Use with normalization 'per batch' against flicker; high values blur fast motion.",
                ),
                io.Boolean.Input(
                    "scene_cuts", default=False, optional=True,
                    tooltip="Video: find the scene cuts in the maps and restart the per batch normalisation and "
                    "the temporal smoothing at each, so that every shot comes out as if it were a clip of its own. "
                    "Off: the batch is one shot.",
                ),
            ],
            outputs=[io.Mask.Output("disparity", tooltip="Disparity (B, H, W), 0..1, near = 1.")],
        )

    @classmethod
    def execute(
        cls, invert, normalization, gamma, blur, width, height, image=None, mask=None,
        conversion="linear", near_clip=0.01, temporal_smoothing=0.0, scene_cuts=False,
    ) -> io.NodeOutput:
        if image is not None:
            source = check_images(image, "image")
        elif mask is not None:
            source = check_mask(mask, "mask")
        else:
            raise ValueError("image: Depth to Disparity needs a map: connect 'image' or 'mask'.")
        return io.NodeOutput(depth_map_to_disparity(
            source, invert=invert, normalization=normalization, gamma=gamma, blur_sigma=blur,
            height=height, width=width, conversion=conversion, near_clip=near_clip,
            temporal_smoothing=temporal_smoothing, scene_starts=_scene_starts(source) if scene_cuts else (),
        ))


def _scene_starts(source) -> list[int]:
    maps = check_map_batch(source, "image" if source.ndim == 4 else "mask")
    return detect_scene_cuts(maps, rescale=True)


NODES = [StereoDepthToDisparity]
