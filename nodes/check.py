"""StereoCheck: measure stereo pairs from their pixels and say, per pair, whether they are
comfortable (parallax range against a display budget, eye order, vertical offset, window
violations, brightness and colour mismatch)."""

from __future__ import annotations

import json

import comfy.model_management
import comfy.utils
import torch
from comfy_api.latest import io

from ..stereo_ops.comfort import DEFAULT_DISPLAY, DISPLAY_PRESETS, parallax_budget
from ..stereo_ops.disparity import as_disparity_batch, check_disparity_range
from ..stereo_ops.parallax_colours import colour_scale, heat_map
from ..stereo_ops.stereo_batch import split_stereo
from ..stereo_ops.stereo_check import PairCheck, check_pair, fix_pair, report, verdict_line
from .check_legend import with_legend
from .compose import STEREO_TOOLTIP
from .stereo_types import StereoDisplayType

CATEGORY = "stereo/check"
MIN_SIZE = 32


def budget_of(display) -> tuple[object, str]:
    """The parallax budget and its display's name: the target's, else the default display's."""
    if display is None:
        return parallax_budget(DISPLAY_PRESETS[DEFAULT_DISPLAY]), DEFAULT_DISPLAY
    budget = getattr(display, "budget", None)
    inner = getattr(display, "display", None)
    if budget is None or inner is None:
        raise ValueError(f"display must come from Stereo Display Target, got {type(display).__name__}")
    return budget, inner.name


def checked_views(stereo: torch.Tensor, name: str = "stereo") -> tuple[torch.Tensor, torch.Tensor]:
    """The left and right halves of a stereo IMAGE batch, refused with a clear error when they
    cannot be checked."""
    if not isinstance(stereo, torch.Tensor) or stereo.ndim != 4:
        raise ValueError(f"{name} must be an IMAGE batch (B, H, W, C), got {getattr(stereo, 'shape', type(stereo))}")
    if stereo.shape[-1] not in (3, 4):
        raise ValueError(f"{name} must have 3 (RGB) or 4 (RGBA) channels, got {stereo.shape[-1]}")
    if min(stereo.shape[1:3]) < MIN_SIZE:
        raise ValueError(
            f"{name} images are {stereo.shape[2]}x{stereo.shape[1]}; Stereo Check needs at least "
            f"{MIN_SIZE}x{MIN_SIZE} pixels per eye"
        )
    if not torch.isfinite(stereo).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return split_stereo(stereo[..., :3], name)


def disparity_for(disparity: torch.Tensor | None, pairs: int) -> torch.Tensor | None:
    if disparity is None:
        return None
    maps = check_disparity_range(as_disparity_batch(disparity, "disparity"), "disparity")
    if maps.shape[0] not in (1, pairs):
        raise ValueError(
            f"disparity has {maps.shape[0]} maps for {pairs} pairs; give one map, or one per pair "
            "(the left views' maps)"
        )
    return maps


def check_pairs(left: torch.Tensor, right: torch.Tensor, budget, budget_name: str, disparity=None, settings=None):
    """Check each pair in turn (memory bounded by one pair); yields (index, PairCheck)."""
    progress = comfy.utils.ProgressBar(left.shape[0])
    for i in range(left.shape[0]):
        comfy.model_management.throw_exception_if_processing_interrupted()
        d = None if disparity is None else disparity[min(i, disparity.shape[0] - 1)]
        yield i, check_pair(left[i].permute(2, 0, 1).float().cpu(), right[i].permute(2, 0, 1).float().cpu(),
                            budget, budget_name, d, settings)
        progress.update(1)


def _heat_image(check: PairCheck, left: torch.Tensor, budget, budget_name: str) -> torch.Tensor:
    limits = (budget.crossed_pct, budget.uncrossed_pct)
    scale = colour_scale(check.figures.parallax_pct, limits)
    heat = heat_map(check.match, left.permute(2, 0, 1).float().cpu(), scale).permute(1, 2, 0)
    return with_legend(heat, scale, limits, budget_name)


class StereoCheck(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StereoCheck",
            display_name="Stereo Check",
            category=CATEGORY,
            description="Measure each stereo pair from its pixels alone, before anyone watches it: the "
            "parallax range (in % of the width, negative = in front of the screen) against a display's "
            "comfortable budget, whether the eyes are swapped (read from which surface the strips seen by "
            "one eye only belong to, not from the parallax sign), vertical offset, window violations at the "
            "side edges, and brightness or colour differences between the eyes. Optionally fixes the eye "
            "order and the brightness.",
            inputs=[
                io.Image.Input("stereo", tooltip=STEREO_TOOLTIP),
                io.Boolean.Input(
                    "fix", default=False,
                    tooltip="Output the pairs fixed: eyes swapped back where they were found swapped, and the "
                    "right eye's brightness and colour matched to the left eye where they differ. Off: the "
                    "stereo output is the input unchanged.",
                ),
                io.Mask.Input(
                    "disparity", optional=True,
                    tooltip="Optional disparity map of the left views (0 = far, 1 = near), one or one per pair: "
                    "a second opinion on the eye order (a swapped pair puts the near areas behind).",
                ),
                io.Float.Input(
                    "divergence", default=0.0, min=0.0, max=30.0, step=0.1, optional=True,
                    tooltip="Optional: the divergence (%) the pairs were made with; 0 = unknown. With the "
                    "disparity map and the convergence, the check also reports the parallax these settings "
                    "should give and warns when the pair differs from it.",
                ),
                io.Float.Input(
                    "convergence", default=0.5, min=0.0, max=1.0, step=0.01, optional=True,
                    tooltip="The convergence the pairs were made with (used when divergence is above 0).",
                ),
                StereoDisplayType.Input(
                    "display", optional=True,
                    tooltip="Display target from Stereo Display Target: its comfortable parallax budget is what "
                    "the pair is checked against. Not connected: the VR headset budget.",
                ),
            ],
            outputs=[
                io.String.Output("report", display_name="report",
                                 tooltip="What was measured, in words, one block per pair."),
                io.Image.Output("heat_map", display_name="heat_map",
                                tooltip="Parallax of each left view, red in front of the screen, blue behind, "
                                "white at the screen, grey where it could not be measured; legend below."),
                io.String.Output("verdict", display_name="verdict",
                                 tooltip="One line per pair: pass, or warn with the reasons."),
                io.String.Output("figures", display_name="figures",
                                 tooltip="The figures as JSON, a list with one object per pair (what Stereo Save "
                                 "Image writes into its files)."),
                io.Image.Output("fixed", display_name="stereo",
                                tooltip="The fixed stereo batch when fix is on, else the input unchanged."),
            ],
        )

    @classmethod
    def execute(cls, stereo, fix, disparity=None, divergence=0.0, convergence=0.5, display=None) -> io.NodeOutput:
        left, right = checked_views(stereo)
        maps = disparity_for(disparity, left.shape[0])
        budget, budget_name = budget_of(display)
        settings = (float(divergence), float(convergence)) if divergence and divergence > 0 else None
        reports, verdicts, figures, heats = [], [], [], []
        fixed_left, fixed_right = [], []
        for i, check in check_pairs(left, right, budget, budget_name, maps, settings):
            reports.append(report(check.figures, i))
            verdicts.append(verdict_line(check.figures, i))
            figures.append(check.figures.as_dict())
            heats.append(_heat_image(check, left[i], budget, budget_name))
            if fix:
                a, b = fix_pair(left[i].permute(2, 0, 1), right[i].permute(2, 0, 1), check.figures)
                fixed_left.append(a.permute(1, 2, 0))
                fixed_right.append(b.permute(1, 2, 0))
        out = torch.cat([torch.stack(fixed_left), torch.stack(fixed_right)]).to(stereo.dtype) if fix else stereo
        return io.NodeOutput(
            "\n\n".join(reports), torch.stack(heats), "\n".join(verdicts), json.dumps(figures), out
        )


NODES = [StereoCheck]
