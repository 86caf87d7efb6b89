"""StereoWarp and StereoRefine: full-resolution pixel warps by a disparity map."""

from __future__ import annotations

import comfy.model_management
import comfy.utils
from comfy_api.latest import io

from ..stereo_ops import split_stereo
from ..stereo_ops.scene_cuts import detect_scene_cuts
from ..stereo_ops.warp_clip import fill_clip, refine_clip, warp_clip
from .comfort import (
    DEFAULT_CONVERGENCE,
    DEFAULT_DIVERGENCE,
    IGNORED_WITH_DISPLAY,
    display_input,
    log_geometry,
    node_geometry,
)
from ..stereo_ops.checks import check_images

CATEGORY = "stereo/warp"

DISPARITY_TOOLTIP = (
    "Disparity map, 0 = far, 1 = near (StereoEstimateDisparity or StereoDepthToDisparity). One map for "
    "every image, or one per image; any size, resized to the image. Values must lie in 0..1."
)
DIVERGENCE_TOOLTIP = (
    "Parallax between the farthest and the nearest point, in percent of the image width, as in the "
    "Stereo KSampler. The default stays within a VR headset's comfortable budget; the paper uses 8 "
    "(with convergence 0). 0 gives two identical eyes." + IGNORED_WITH_DISPLAY
)
CONVERGENCE_TOOLTIP = (
    "Which depth sits at the screen plane: 0 = the farthest point (everything in front of the "
    "screen), 0.5 = the middle depth, 1 = the nearest point (everything behind the screen)."
    + IGNORED_WITH_DISPLAY
)
BALANCE_TOOLTIP = (
    "Share of the parallax given to the left eye: 0 keeps the image as the left eye and warps only the "
    "right; 0.5 warps both eyes half-way, halving the holes in each."
)


class StereoWarp(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StereoWarp",
            display_name="Stereo Warp",
            category=CATEGORY,
            description="Make a stereo pair from images and their disparity by moving every pixel at full "
            "resolution: sub-pixel, nearer surfaces in front, and the disoccluded pixels (which no view "
            "shows) returned as a hole mask for any inpainting model. The fast alternative to inversion "
            "for photos and frames. Connect a Stereo Display Target to set the depth for the display the pair is "
            "watched on.",
            inputs=[
                io.Image.Input("image", tooltip="N images (photos or video frames) seen from the centre camera."),
                io.Mask.Input("disparity", tooltip=DISPARITY_TOOLTIP),
                io.Float.Input(
                    "divergence", default=DEFAULT_DIVERGENCE, min=0.0, max=30.0, step=0.1, tooltip=DIVERGENCE_TOOLTIP
                ),
                io.Float.Input(
                    "convergence", default=DEFAULT_CONVERGENCE, min=0.0, max=1.0, step=0.01, tooltip=CONVERGENCE_TOOLTIP
                ),
                io.Float.Input("balance", default=0.0, min=0.0, max=1.0, step=0.05, tooltip=BALANCE_TOOLTIP),
                io.Int.Input(
                    "grow_holes", default=0, min=0, max=64, step=1,
                    tooltip="Grow the hole mask by this many pixels, so that an inpainting model also repaints "
                    "the fringe of mixed foreground/background pixels at depth edges. 0 = the exact holes.",
                ),
                display_input(),
            ],
            outputs=[
                io.Image.Output("stereo", display_name="stereo",
                                tooltip="Stereo batch of 2N: the N left views, then the N right views. Holes are black."),
                io.Mask.Output("holes", display_name="holes",
                               tooltip="2N masks matching the stereo batch: 1 where no pixel landed (to inpaint)."),
            ],
        )

    @classmethod
    def execute(cls, image, disparity, divergence, convergence, balance, grow_holes, display=None) -> io.NodeOutput:
        check_images(image, "image")
        g = node_geometry(disparity, divergence, convergence, display)
        log_geometry("Stereo Warp", g, display)
        # Chunk by chunk into the final batch: memory beyond the clip does not grow with its length.
        return io.NodeOutput(*warp_clip(
            image, disparity, g.divergence, g.convergence, balance, grow_holes, floating_window=g.floating_window
        ))


class StereoRefine(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StereoRefine",
            display_name="Stereo Refine",
            category=CATEGORY,
            description="Right-eye detail transfer after StereoDiffusion: where the left eye sees the surface, "
            "the right eye becomes the full-resolution warp of the left eye, so fine texture matches "
            "exactly between the eyes; the diffusion's own pixels stay in the disocclusions, with a "
            "seam feathered into them only, so the pixels both eyes see stay exact. Use the disparity and "
            "settings the pair was sampled with (or the same display target: it derives the same settings "
            "from the same map).",
            inputs=[
                io.Image.Input("stereo", tooltip="Decoded stereo batch of 2N (N lefts, then N rights), e.g. from the Stereo KSampler."),
                io.Mask.Input("disparity", tooltip=DISPARITY_TOOLTIP + " The map the pair was made with."),
                io.Float.Input(
                    "divergence", default=DEFAULT_DIVERGENCE, min=0.0, max=30.0, step=0.1, tooltip=DIVERGENCE_TOOLTIP
                ),
                io.Float.Input(
                    "convergence", default=DEFAULT_CONVERGENCE, min=0.0, max=1.0, step=0.01, tooltip=CONVERGENCE_TOOLTIP
                ),
                io.Float.Input(
                    "balance", default=0.0, min=0.0, max=1.0, step=0.05,
                    tooltip="The balance the pair was sampled with (0 = the left eye is the generated image).",
                ),
                io.Int.Input(
                    "feather", default=4, min=0, max=64, step=1,
                    tooltip="Width in pixels of the seam inside the holes: near a hole's rim its pixels blend the "
                    "diffusion's pixels with the warped pixels around it; the warped pixels themselves stay exact. "
                    "0 = a hard edge.",
                ),
                display_input(),
            ],
            outputs=[
                io.Image.Output("refined", display_name="stereo", tooltip="The stereo batch with the refined right eyes."),
                io.Mask.Output("holes", display_name="holes",
                               tooltip="N masks: where the right eye kept the diffusion's pixels (disocclusions)."),
            ],
        )

    @classmethod
    def execute(cls, stereo, disparity, divergence, convergence, balance, feather, display=None) -> io.NodeOutput:
        check_images(stereo, "stereo")
        left, right = split_stereo(stereo, "stereo")
        g = node_geometry(disparity, divergence, convergence, display)
        log_geometry("Stereo Refine", g, display)
        return io.NodeOutput(*refine_clip(
            left, right, disparity, g.divergence, g.convergence, balance, feather, floating_window=g.floating_window
        ))


class StereoVideoFill(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StereoVideoFill",
            display_name="Stereo Video Fill",
            category=CATEGORY,
            description="Fill the holes of a warped stereo video so that they do not flicker: each hole shows "
            "the background that other frames of the shot saw (carried along by the background's own motion, "
            "from earlier and later frames), and what no frame saw is filled once from the hole's background "
            "side and then carried along with the scene. Connect the Stereo Warp that made the video and the "
            "same settings (or the same display target). Visible pixels are not changed; memory does not grow with the clip.",
            inputs=[
                io.Image.Input("stereo", tooltip="Stereo batch of 2N frames from Stereo Warp (N lefts, then N rights)."),
                io.Mask.Input("holes", tooltip="The holes output of that Stereo Warp (2N masks)."),
                io.Mask.Input("disparity", tooltip=DISPARITY_TOOLTIP + " The map the video was warped with."),
                io.Float.Input("divergence", default=DEFAULT_DIVERGENCE, min=0.0, max=30.0, step=0.1, tooltip=DIVERGENCE_TOOLTIP),
                io.Float.Input("convergence", default=DEFAULT_CONVERGENCE, min=0.0, max=1.0, step=0.01, tooltip=CONVERGENCE_TOOLTIP),
                io.Float.Input("balance", default=0.0, min=0.0, max=1.0, step=0.05, tooltip=BALANCE_TOOLTIP),
                io.Boolean.Input(
                    "scene_cuts", default=True,
                    tooltip="Find the scene cuts in the left views and start the fill afresh at each, so that no "
                    "background is carried from one shot into another.",
                ),
                display_input(),
            ],
            outputs=[
                io.Image.Output("filled", display_name="stereo", tooltip="The stereo batch with its holes filled."),
                io.Mask.Output("unseen", display_name="unseen",
                               tooltip="2N masks: the hole pixels no frame of the shot showed (invented by the fill); "
                               "for an inpainting model if you want them repainted."),
            ],
        )

    @classmethod
    def execute(
        cls, stereo, holes, disparity, divergence, convergence, balance, scene_cuts=True, display=None
    ) -> io.NodeOutput:
        left, _ = split_stereo(check_images(stereo, "stereo"), "stereo")
        g = node_geometry(disparity, divergence, convergence, display)
        starts = detect_scene_cuts(left) if scene_cuts else []
        n = left.shape[0]
        eyes = sum(bool((holes[eye] > 0.5).any()) for eye in (slice(0, n), slice(n, 2 * n))) if holes.shape[0] == 2 * n else 1
        bar = comfy.utils.ProgressBar(max(1, 2 * n * eyes))  # two passes over each eye with holes

        def on_frame() -> None:
            bar.update(1)
            comfy.model_management.throw_exception_if_processing_interrupted()

        filled, unseen = fill_clip(
            stereo, holes, disparity, g.divergence, g.convergence, balance, starts, on_frame, g.floating_window
        )
        return io.NodeOutput(filled, unseen)


NODES = [StereoWarp, StereoRefine, StereoVideoFill]
