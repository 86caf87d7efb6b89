"""StereoDisplayTarget: "comfortable for my display" instead of typed percentages.

Also the `display` input that the samplers and the warps share, and the geometry they derive
from it, so that every node reads a display target the same way.
"""

from __future__ import annotations

import logging

import torch
from comfy_api.latest import io

from ..stereo_ops.comfort import DEFAULT_DISPLAY, DISPLAY_PRESETS, custom_display, perceived_distance_m
from ..stereo_ops.disparity import as_disparity_batch, check_disparity_range
from ..stereo_ops.stereo_geometry import DisplayTarget, StereoGeometry, geometry_for
from .stereo_types import StereoDisplayType

LOG = logging.getLogger("StereoDiffusion")

CATEGORY = "stereo/comfort"
CUSTOM = "custom"

# The divergence and convergence defaults of every node: within a VR headset's comfortable budget
# (docs/comfort.md), 1.25 % of the width in front of the screen and 1.25 % behind it. The paper's
# setting is divergence 8, convergence 0.
DEFAULT_DIVERGENCE = 2.5
DEFAULT_CONVERGENCE = 0.5

DISPLAY_TOOLTIP = (
    "Optional: a Stereo Display Target. When connected, divergence and convergence are ignored: they "
    "are set automatically so that the disparity actually present stays within the display's "
    "comfortable parallax budget in front of and behind the screen, and the floating window is "
    "applied if the target asks for it. Give a sampler and its Stereo Refine the same target and the "
    "same map: they then use one geometry."
)
IGNORED_WITH_DISPLAY = " Ignored when a display target is connected (set automatically)."


def display_input() -> io.Input:
    return StereoDisplayType.Input("display", optional=True, tooltip=DISPLAY_TOOLTIP)


def node_geometry(disparity: torch.Tensor, divergence: float, convergence: float, display) -> StereoGeometry:
    """The geometry a node uses: its typed settings, or the automatic ones of a display target,
    derived from the map as given (before any resize), as the sampler derives them."""
    if display is None:
        return StereoGeometry(float(divergence), float(convergence), False)
    if not isinstance(display, DisplayTarget):
        raise ValueError("display: connect the output of a Stereo Display Target")
    checked = check_disparity_range(as_disparity_batch(disparity), slack=0.0)
    return geometry_for(checked, divergence, convergence, display)


def log_geometry(node: str, geometry: StereoGeometry, display: DisplayTarget | None) -> None:
    """Say which settings a display target led to, so that they can be reused by hand."""
    if display is not None:
        LOG.info("[StereoDiffusion] %s: %s for display '%s'", node, geometry.describe(), display.display.name)


def budget_summary(target: DisplayTarget) -> str:
    d, b = target.display, target.budget
    near = perceived_distance_m(d, -b.crossed_pct)
    far = perceived_distance_m(d, b.uncrossed_pct)
    far_text = "infinity" if far == float("inf") else f"{far:.2f} m"
    return (
        f"{d.name}: image {d.screen_width_m:.2f} m wide at {d.viewing_distance_m:.2f} m "
        f"({d.horizontal_fov_deg:.0f} deg), eye separation {d.eye_separation_m * 1000:.0f} mm. "
        f"Comfortable parallax: {b.crossed_pct:.2f} % of the width in front of the screen, "
        f"{b.uncrossed_pct:.2f} % behind (total {b.total_pct:.2f} %): depth from {near:.2f} m to {far_text}. "
        f"Floating window {'on' if target.floating_window else 'off'}."
    )


class StereoDisplayTarget(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StereoDisplayTarget",
            display_name="Stereo Display Target",
            category=CATEGORY,
            description="Say where the stereo image will be watched instead of typing percentages. Connected to "
            "the display input of the Stereo KSampler, Stereo Sampler, Stereo Warp or Stereo Refine, it sets "
            "divergence and convergence from the display's comfortable parallax budget (about 1 degree of "
            "disparity in front of and behind the screen, never more than the eye separation behind it) and "
            "from the disparity actually present. See docs/comfort.md.",
            inputs=[
                io.Combo.Input(
                    "preset", options=[*DISPLAY_PRESETS, CUSTOM], default=DEFAULT_DISPLAY,
                    tooltip="VR headset: the virtual screen of a headset's player (about 60 degrees wide). 3D TV or "
                    "monitor: a 65-inch TV at 3 m. Phone in a viewer: a phone in a Cardboard-style viewer. Desktop "
                    "free viewing: a parallel or cross-eyed pair at arm's length. custom: the three measurements "
                    "below.",
                ),
                io.Boolean.Input(
                    "floating_window", default=True,
                    tooltip="Keep near content that touches the left or right frame edge from coming in front of "
                    "the screen there (a window violation, the most tiring stereo artefact): crossed parallax fades "
                    "to zero at the two borders.",
                ),
                io.Float.Input(
                    "screen_width_m", default=1.44, min=0.01, max=1000.0, step=0.01,
                    tooltip="custom only: width of the image on the screen, in metres (for a headset, of the "
                    "virtual screen).",
                ),
                io.Float.Input(
                    "viewing_distance_m", default=3.0, min=0.01, max=1000.0, step=0.01,
                    tooltip="custom only: distance from the eyes to the screen, in metres.",
                ),
                io.Float.Input(
                    "eye_separation_mm", default=63.0, min=30.0, max=90.0, step=0.5,
                    tooltip="custom only: the viewer's eye separation in millimetres (adults: about 63; children "
                    "less).",
                ),
            ],
            outputs=[
                StereoDisplayType.Output(display_name="display", tooltip="The display target, for the display inputs."),
                io.String.Output(display_name="budget", tooltip="The display's comfortable parallax budget, in words."),
            ],
        )

    @classmethod
    def execute(cls, preset, floating_window, screen_width_m, viewing_distance_m, eye_separation_mm) -> io.NodeOutput:
        if preset == CUSTOM:
            display = custom_display(
                float(screen_width_m), float(viewing_distance_m), float(eye_separation_mm) / 1000.0
            )
        elif preset in DISPLAY_PRESETS:
            display = DISPLAY_PRESETS[preset]
        else:
            choices = ", ".join([*DISPLAY_PRESETS, CUSTOM])
            raise ValueError(f"preset: unknown display {preset!r}; choose one of {choices}")
        target = DisplayTarget(display, bool(floating_window))
        return io.NodeOutput(target, budget_summary(target))


NODES = [StereoDisplayTarget]
