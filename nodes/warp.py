"""StereoWarp and StereoRefine: full-resolution pixel warps by a disparity map."""

from __future__ import annotations

import torch
from comfy_api.latest import io

from ..stereo_ops import split_stereo
from ..stereo_ops.checks import check_images
from ..stereo_ops.warp import dilate_mask, refine_right, stereo_warp

CATEGORY = "stereo/warp"

DISPARITY_TOOLTIP = (
    "Disparity map, 0 = far, 1 = near (StereoEstimateDisparity or StereoDepthToDisparity). One map for "
    "every image, or one per image; any size, resized to the image. Values must lie in 0..1."
)
DIVERGENCE_TOOLTIP = (
    "Largest parallax in percent of the image width, as in the Stereo KSampler (the paper uses 8). "
    "Lower is easier on the eyes in VR; 0 gives two identical eyes."
)
CONVERGENCE_TOOLTIP = (
    "Which depth sits at the screen plane: 0 = the farthest point (everything pops out), 1 = the "
    "nearest point (everything behind the screen)."
)
BALANCE_TOOLTIP = (
    "Share of the parallax given to the left eye: 0 keeps the image as the left eye and warps only the "
    "right; 0.5 warps both eyes half-way, halving the holes in each."
)


def _channels_first(images: torch.Tensor) -> torch.Tensor:
    return images.permute(0, 3, 1, 2)  # a view: the warp reads any strides


def _channels_last(images: torch.Tensor) -> torch.Tensor:
    return images.permute(0, 2, 3, 1).contiguous()


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
            "for photos and frames.",
            inputs=[
                io.Image.Input("image", tooltip="N images (photos or video frames) seen from the centre camera."),
                io.Mask.Input("disparity", tooltip=DISPARITY_TOOLTIP),
                io.Float.Input("divergence", default=8.0, min=0.0, max=30.0, step=0.1, tooltip=DIVERGENCE_TOOLTIP),
                io.Float.Input("convergence", default=0.0, min=0.0, max=1.0, step=0.01, tooltip=CONVERGENCE_TOOLTIP),
                io.Float.Input("balance", default=0.0, min=0.0, max=1.0, step=0.05, tooltip=BALANCE_TOOLTIP),
                io.Int.Input(
                    "grow_holes", default=0, min=0, max=64, step=1,
                    tooltip="Grow the hole mask by this many pixels, so that an inpainting model also repaints "
                    "the fringe of mixed foreground/background pixels at depth edges. 0 = the exact holes.",
                ),
            ],
            outputs=[
                io.Image.Output("stereo", display_name="stereo",
                                tooltip="Stereo batch of 2N: the N left views, then the N right views. Holes are black."),
                io.Mask.Output("holes", display_name="holes",
                               tooltip="2N masks matching the stereo batch: 1 where no pixel landed (to inpaint)."),
            ],
        )

    @classmethod
    def execute(cls, image, disparity, divergence, convergence, balance, grow_holes) -> io.NodeOutput:
        check_images(image, "image")
        views = stereo_warp(_channels_first(image), disparity, divergence, convergence, balance)
        stereo = torch.cat([_channels_last(views.left.image), _channels_last(views.right.image)], dim=0)
        holes = torch.cat([views.left.holes, views.right.holes], dim=0).float()
        return io.NodeOutput(stereo, dilate_mask(holes, grow_holes))


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
            "settings the pair was sampled with.",
            inputs=[
                io.Image.Input("stereo", tooltip="Decoded stereo batch of 2N (N lefts, then N rights), e.g. from the Stereo KSampler."),
                io.Mask.Input("disparity", tooltip=DISPARITY_TOOLTIP + " The map the pair was made with."),
                io.Float.Input("divergence", default=8.0, min=0.0, max=30.0, step=0.1, tooltip=DIVERGENCE_TOOLTIP),
                io.Float.Input("convergence", default=0.0, min=0.0, max=1.0, step=0.01, tooltip=CONVERGENCE_TOOLTIP),
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
            ],
            outputs=[
                io.Image.Output("refined", display_name="stereo", tooltip="The stereo batch with the refined right eyes."),
                io.Mask.Output("holes", display_name="holes",
                               tooltip="N masks: where the right eye kept the diffusion's pixels (disocclusions)."),
            ],
        )

    @classmethod
    def execute(cls, stereo, disparity, divergence, convergence, balance, feather) -> io.NodeOutput:
        check_images(stereo, "stereo")
        left, right = split_stereo(stereo, "stereo")
        refined, holes = refine_right(
            _channels_first(left), _channels_first(right), disparity, divergence, convergence, balance, feather
        )
        return io.NodeOutput(torch.cat([left, _channels_last(refined)], dim=0), holes.float())


NODES = [StereoWarp, StereoRefine]
