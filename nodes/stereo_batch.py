"""StereoSplit and StereoJoin: between a stereo batch (N lefts, then N rights) and two batches."""

from __future__ import annotations

from comfy_api.latest import io

from ..stereo_ops import join_stereo, split_stereo
from ..stereo_ops.checks import check_images

CATEGORY = "stereo/compose"


class StereoSplit(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StereoSplit",
            display_name="Stereo Split",
            category=CATEGORY,
            description="Split a stereo batch (N left views followed by N right views) into the "
            "left and the right views.",
            inputs=[
                io.Image.Input(
                    "stereo",
                    tooltip="A stereo batch of 2N images: the N left views first, then the N right views.",
                ),
            ],
            outputs=[
                io.Image.Output("left", display_name="left", tooltip="The N left-eye views."),
                io.Image.Output("right", display_name="right", tooltip="The N right-eye views."),
            ],
        )

    @classmethod
    def execute(cls, stereo) -> io.NodeOutput:
        left, right = split_stereo(check_images(stereo, "stereo"), "stereo")
        return io.NodeOutput(left, right)


class StereoJoin(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StereoJoin",
            display_name="Stereo Join",
            category=CATEGORY,
            description="Join N left views and N right views into one stereo batch of 2N "
            "(lefts first), the layout every stereo node of this pack reads.",
            inputs=[
                io.Image.Input("left", tooltip="The left-eye views (N images)."),
                io.Image.Input("right", tooltip="The right-eye views: as many as left, same size."),
            ],
            outputs=[io.Image.Output("stereo", display_name="stereo", tooltip="The stereo batch of 2N images.")],
        )

    @classmethod
    def execute(cls, left, right) -> io.NodeOutput:
        return io.NodeOutput(join_stereo(check_images(left, "left"), check_images(right, "right")))


NODES = [StereoSplit, StereoJoin]
