"""StereoSideBySide and StereoAnaglyph: one viewable image per stereo pair."""

from __future__ import annotations

from comfy_api.latest import io

from ..stereo_ops import ANAGLYPH_METHODS, LAYOUTS, anaglyph, side_by_side, split_stereo
from ..stereo_ops.checks import check_images

CATEGORY = "stereo/output"

STEREO_TOOLTIP = "A stereo batch of 2N images: the N left views first, then the N right views (see Stereo Join)."
SWAP_TOOLTIP = "Exchange the left and right views first, for pairs that came in the wrong order."
LAYOUT_TOOLTIP = (
    "parallel: left eye on the left (VR headsets, 3D TVs, parallel free-viewing); cross-eyed: right "
    "eye on the left (cross-eyed free-viewing); top-bottom: left eye on top. The -half variants "
    "squeeze the pair into the size of one view with an area filter (half SBS / half OU)."
)
ANAGLYPH_TOOLTIP = (
    "Red-cyan anaglyph method (red filter over the left eye). dubois: least-squares projection in "
    "linear light, least ghosting; optimized: no left red channel, little rivalry; half-color, "
    "color, gray, true: the classic methods."
)


class StereoSideBySide(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StereoSideBySide",
            display_name="Stereo Side-by-Side (SBS, VR)",
            category=CATEGORY,
            description="Put each left/right pair of a stereo batch into one image: parallel or "
            "cross-eyed side by side, or top-bottom, at full size or squeezed to half (the size of "
            "one view), with an optional divider.",
            inputs=[
                io.Image.Input("stereo", tooltip=STEREO_TOOLTIP),
                io.Combo.Input("layout", options=list(LAYOUTS), default="parallel", tooltip=LAYOUT_TOOLTIP),
                io.Boolean.Input("swap_eyes", default=False, tooltip=SWAP_TOOLTIP),
                io.Int.Input(
                    "divider", default=0, min=0, max=512, step=1,
                    tooltip="Width in pixels of a bar between the two views (0 = none). Leave at 0 "
                    "for VR players, which split the frame exactly in half.",
                ),
                io.Float.Input(
                    "divider_brightness", default=0.0, min=0.0, max=1.0, step=0.01,
                    tooltip="Grey level of the divider bar: 0 black, 1 white.",
                ),
            ],
            outputs=[io.Image.Output("image", display_name="image", tooltip="N composed images, one per pair.")],
        )

    @classmethod
    def execute(cls, stereo, layout, swap_eyes, divider, divider_brightness) -> io.NodeOutput:
        left, right = split_stereo(check_images(stereo, "stereo"), "stereo")
        return io.NodeOutput(side_by_side(left, right, layout, swap_eyes, divider, divider_brightness))


class StereoAnaglyph(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StereoAnaglyph",
            display_name="Stereo Anaglyph (3D)",
            category=CATEGORY,
            description="Make a red-cyan anaglyph (red = left eye) of each pair of a stereo batch, "
            "to view with red-cyan glasses.",
            inputs=[
                io.Image.Input("stereo", tooltip=STEREO_TOOLTIP),
                io.Combo.Input("method", options=list(ANAGLYPH_METHODS), default="dubois", tooltip=ANAGLYPH_TOOLTIP),
                io.Boolean.Input("swap_eyes", default=False, tooltip=SWAP_TOOLTIP),
            ],
            outputs=[io.Image.Output("image", display_name="image", tooltip="N anaglyph images, one per pair.")],
        )

    @classmethod
    def execute(cls, stereo, method, swap_eyes) -> io.NodeOutput:
        left, right = split_stereo(check_images(stereo, "stereo"), "stereo")
        if swap_eyes:
            left, right = right, left
        return io.NodeOutput(anaglyph(left, right, method))


NODES = [StereoSideBySide, StereoAnaglyph]
