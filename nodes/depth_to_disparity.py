"""StereoDepthToDisparity: any depth or disparity map from elsewhere as this pack's disparity MASK."""

from __future__ import annotations

from comfy_api.latest import io

from ..stereo_ops.depth_map import NORMALIZATIONS, depth_map_to_disparity

CATEGORY = "stereo/disparity"


class StereoDepthToDisparity(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StereoDepthToDisparity",
            display_name="Depth to Disparity",
            category=CATEGORY,
            description="Turn a depth or disparity map from another node (comfyui_controlnet_aux, "
            "Marigold, a painted map, a MASK) into a disparity MASK: 0..1, near = 1.",
            inputs=[
                io.Image.Input(
                    "image", optional=True,
                    tooltip="A depth or disparity map as an IMAGE (colour channels are averaged). Give this or 'mask'.",
                ),
                io.Mask.Input("mask", optional=True, tooltip="A depth or disparity map as a MASK. Used when no image is given."),
                io.Boolean.Input(
                    "invert", default=False,
                    tooltip="On for depth maps (near = dark/small, e.g. Marigold depth). Off for disparity-style "
                    "maps where near is bright (MiDaS, Depth Anything, most ControlNet depth preprocessors).",
                ),
                io.Combo.Input(
                    "normalization", options=list(NORMALIZATIONS), default="per image",
                    tooltip="per image: stretch each map to 0..1. per batch: one stretch for all (video). "
                    "none: keep values, clamped to 0..1.",
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
            ],
            outputs=[io.Mask.Output("disparity", tooltip="Disparity (B, H, W), 0..1, near = 1.")],
        )

    @classmethod
    def execute(cls, invert, normalization, gamma, blur, width, height, image=None, mask=None) -> io.NodeOutput:
        source = image if image is not None else mask
        if source is None:
            raise ValueError("Depth to Disparity needs a map: connect 'image' or 'mask'.")
        return io.NodeOutput(depth_map_to_disparity(
            source, invert=invert, normalization=normalization, gamma=gamma, blur_sigma=blur,
            height=height, width=width,
        ))


NODES = [StereoDepthToDisparity]
