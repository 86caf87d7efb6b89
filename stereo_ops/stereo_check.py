"""Stereo Check: measure a stereo pair from its pixels alone and say whether it is comfortable.

Parallax p = x_right - x_left, in % of the image width: negative is crossed (in front of the
screen), positive uncrossed (behind it). See `stereo_match` for the matching and `eye_order` for
the eye order; this module turns the matches into figures, a verdict and a report, and fixes what
can be fixed (eye order, brightness and colour).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F

from .eye_order import EyeOrder, eye_order
from .stereo_match import MatchLevel, luma, match_pair

# Figures in the report, as percentiles of the trusted parallax: min and max leave out the 0.5 %
# most extreme pixels on each side, so a few stray matches cannot set the range.
PERCENTILES = {"min": 0.5, "p1": 1.0, "p5": 5.0, "p50": 50.0, "p95": 95.0, "p99": 99.0, "max": 99.5}
# Vertical offset worth a warning: more than 1 pixel and more than 0.1 % of the height. Vertical
# parallax is fused far less easily than horizontal; 0.1 % of the height is about 0.06 degrees in a
# 60-degree headset screen, and one pixel is below what resampling and matching can promise.
VERTICAL_WARN_PX = 1.0
VERTICAL_WARN_FRACTION = 0.001
# Brightness (luma) and colour (per-channel gain beyond the luma gain) mismatch between the eyes
# worth a warning, in %. Matching and resampling alone stay below 1 % on an exact pair.
BRIGHTNESS_WARN_PCT = 5.0
COLOUR_WARN_PCT = 5.0
# Window violations: a band this wide (fraction of the width, at least 3 pixels) at each side
# edge; content there in front of the screen by more than VIOLATION_DEPTH_PCT of the width over at
# least VIOLATION_SHARE of the band's trusted pixels is a violation.
BORDER_BAND = 0.04
VIOLATION_DEPTH_PCT = 0.1
VIOLATION_SHARE = 0.1
# Measured parallax this far (median, % of the width) from what the settings and map give.
SETTINGS_WARN_PCT = 0.25
# Below this share of trusted pixels the figures are unreliable (flat or blurred images).
MIN_MEASURED = 0.05


class Budget(Protocol):
    """A comfortable parallax budget in % of the width (stereo_ops.comfort.ParallaxBudget)."""

    crossed_pct: float
    uncrossed_pct: float


@dataclass(frozen=True)
class SimpleBudget:
    crossed_pct: float
    uncrossed_pct: float


@dataclass
class PairFigures:
    """Everything measured on one pair; `as_dict()` is the machine-readable form."""

    width: int
    height: int
    measured_share: float  # share of the left view's pixels with a trusted match
    parallax_pct: dict[str, float]  # PERCENTILES of p in % of the width
    eye_order: str  # "correct", "swapped", "undetermined"
    eye_order_score: float
    eye_order_votes: int
    depth_map_agreement: float | None  # rank correlation of the disparity input with nearness
    settings_parallax_pct: dict[str, float] | None  # min/max the settings give the disparity map
    settings_error_pct: float | None  # median |measured - expected| parallax, % of the width
    vertical_offset_px: float  # the right eye's content sits this many pixels lower
    brightness_mismatch_pct: float  # right eye's luma vs the left eye's, in % (negative = darker)
    channel_gain: list[float]  # right / left per channel (R, G, B), brightness included
    colour_mismatch_pct: float  # largest channel gain beyond the brightness gain, in %
    window: dict[str, dict[str, float | bool]]  # "left"/"right" edge: share, depth_pct, violation
    budget: dict[str, float | bool | str]
    warnings: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return "warn" if self.warnings else "pass"

    def as_dict(self) -> dict:
        """Plain JSON values: a figure that could not be computed (not finite) becomes None."""
        out = _finite(asdict(self))
        out["verdict"] = self.verdict
        return out


def _finite(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


@dataclass
class PairCheck:
    figures: PairFigures
    match: MatchLevel  # the matched level, for the heat map


def _sample_right(image: torch.Tensor, parallax: torch.Tensor, rows: float) -> torch.Tensor:
    """image (C, h, w) of the right eye read at (x + p, y + rows) for every left pixel (bilinear)."""
    c, h, w = image.shape
    xs = torch.arange(w, dtype=torch.float32).view(1, w) + parallax
    ys = torch.arange(h, dtype=torch.float32).view(h, 1).expand(h, w) + rows
    grid = torch.stack((xs * (2.0 / max(w - 1, 1)) - 1.0, ys * (2.0 / max(h - 1, 1)) - 1.0), dim=-1)
    return F.grid_sample(image[None], grid[None], mode="bilinear", padding_mode="border", align_corners=True)[0]


def vertical_offset(m: MatchLevel) -> float:
    """Sub-pixel vertical offset in rows of the matched level: the integer offset of the matching,
    refined by a parabola through the matching cost one row either side."""
    if int(m.valid.sum()) < 16:
        return m.vertical
    costs = []
    for dv in (-1.0, 0.0, 1.0):
        moved = _sample_right(m.right_norm[None], m.parallax, m.vertical + dv)[0]
        costs.append(float((moved - m.left_norm).abs()[m.valid].mean()))
    cm, c0, cp = costs
    curve = cm - 2 * c0 + cp
    frac = 0.5 * (cm - cp) / curve if curve > 1e-9 else 0.0
    return m.vertical + max(-1.0, min(1.0, frac))


def _eye_mismatch(m: MatchLevel, rows: float) -> tuple[float, list[float], float]:
    """Brightness mismatch (%), per-channel gains, colour mismatch (%) on trusted matches."""
    if int(m.valid.sum()) < 16:
        return 0.0, [1.0, 1.0, 1.0], 0.0
    right = _sample_right(m.right_rgb, m.parallax, rows)[:, m.valid]
    left = m.left_rgb[:, m.valid]
    gains = (right.mean(dim=1) / left.mean(dim=1).clamp_min(1e-4)).tolist()
    luma_gain = float(luma(right[:, :, None]).mean() / luma(left[:, :, None]).mean().clamp_min(1e-4))
    colour = max(abs(g / luma_gain - 1.0) for g in gains) * 100.0
    return (luma_gain - 1.0) * 100.0, gains, colour


def _window(m: MatchLevel, width_px: float) -> dict[str, dict[str, float | bool]]:
    """Crossed content at the side edges: the left edge read in the right view (where it has a
    partner in the other eye), the right edge in the left view."""
    h, w = m.parallax.shape
    band = max(3, round(BORDER_BAND * w))
    depth = VIOLATION_DEPTH_PCT / 100.0 * width_px / m.scale
    out: dict[str, dict[str, float | bool]] = {}
    for side, p, ok in (
        ("left", m.parallax_right[:, :band], m.valid_right[:, :band]),
        ("right", m.parallax[:, w - band :], m.valid[:, w - band :]),
    ):
        n = int(ok.sum())
        crossed = ok & (p < -depth)
        share = float(crossed.sum()) / n if n >= max(8, 0.05 * ok.numel()) else 0.0
        deepest = float(-p[crossed].quantile(0.05)) * m.scale / width_px * 100.0 if bool(crossed.any()) else 0.0
        out[side] = {"share": share, "depth_pct": deepest, "violation": share >= VIOLATION_SHARE}
    return out


def _depth_map_agreement(disparity: torch.Tensor | None, m: MatchLevel) -> float | None:
    """Rank correlation of a disparity map (near = 1, of the left view) with nearness (-p) on
    trusted pixels: near +1 when the map agrees with the eye order, near -1 when the eyes are
    swapped (or the map is of the right view of a swapped pair). Convergence does not change it."""
    if disparity is None or int(m.valid.sum()) < 16:
        return None
    h, w = m.parallax.shape
    d = F.interpolate(disparity.float()[None, None], size=(h, w), mode="area")[0, 0][m.valid]
    near = -m.parallax[m.valid]

    def ranks(x: torch.Tensor) -> torch.Tensor:
        return torch.argsort(torch.argsort(x)).float()

    a, b = ranks(d), ranks(near)
    a, b = a - a.mean(), b - b.mean()
    den = float(a.norm() * b.norm())
    return float((a * b).sum()) / den if den > 0 else None


def _settings_check(
    disparity: torch.Tensor | None, settings: tuple[float, float] | None, m: MatchLevel, width: int
) -> tuple[dict[str, float] | None, float | None]:
    """With the settings a pair was made with (divergence %, convergence) and its disparity map:
    the parallax range they give, p = -divergence * (D - convergence), and the median difference
    from the measured parallax on trusted pixels."""
    if disparity is None or settings is None:
        return None, None
    divergence, convergence = settings
    expected = -divergence * (disparity.float() - convergence)
    lo, hi = _quantiles(expected.flatten(), (PERCENTILES["min"], PERCENTILES["max"]))
    if int(m.valid.sum()) < 16:
        return {"min": lo, "max": hi}, None
    h, w = m.parallax.shape
    at_level = F.interpolate(expected[None, None], size=(h, w), mode="area")[0, 0]
    measured = m.parallax * (m.scale / width * 100.0)
    return {"min": lo, "max": hi}, float((measured - at_level)[m.valid].abs().median())


def _quantiles(values: torch.Tensor, percents) -> list[float]:
    if values.numel() > 1 << 22:  # torch.quantile refuses very large inputs; a stride keeps the shape
        values = values[:: values.numel() // (1 << 22) + 1]
    return torch.quantile(values.float(), torch.tensor([p / 100.0 for p in percents])).tolist()


def _budget_fit(lo: float, hi: float, budget: Budget, name: str) -> dict[str, float | bool | str]:
    crossed, uncrossed = max(0.0, -lo), max(0.0, hi)
    fits = crossed <= budget.crossed_pct + 1e-9 and uncrossed <= budget.uncrossed_pct + 1e-9
    return {
        "display": name,
        "crossed_budget_pct": budget.crossed_pct,
        "uncrossed_budget_pct": budget.uncrossed_pct,
        "crossed_pct": crossed,
        "uncrossed_pct": uncrossed,
        "fits": fits,
    }


def _measured_warnings(vertical_px: float, height: int, window: dict, brightness: float, colour: float,
                       fit: dict, budget_name: str) -> list[str]:
    warnings = []
    if abs(vertical_px) > max(VERTICAL_WARN_PX, VERTICAL_WARN_FRACTION * height):
        warnings.append("vertical offset")
    for side in ("left", "right"):
        if window[side]["violation"]:
            warnings.append(f"window violation at the {side} edge")
    if abs(brightness) > BRIGHTNESS_WARN_PCT:
        warnings.append("brightness mismatch")
    if colour > COLOUR_WARN_PCT:
        warnings.append("colour mismatch")
    if not fit["fits"]:
        warnings.append(f"parallax beyond the {budget_name} budget")
    return warnings


def check_pair(
    left: torch.Tensor,
    right: torch.Tensor,
    budget: Budget,
    budget_name: str = "display",
    disparity: torch.Tensor | None = None,
    settings: tuple[float, float] | None = None,
) -> PairCheck:
    """Measure one pair of RGB images (3, H, W) in 0..1. `disparity` (H', W'), optional, is the
    left view's disparity map (near = 1); it adds a second opinion on the eye order, and with the
    `settings` the pair was made with (divergence in %, convergence) the parallax they should give."""
    _, height, width = left.shape
    m = match_pair(left, right)
    measured = float(m.valid.float().mean())
    pct = m.parallax * (m.scale / width * 100.0)
    values = pct[m.valid] if int(m.valid.sum()) >= 16 else torch.zeros(1)
    q = torch.quantile(values, torch.tensor([v / 100.0 for v in PERCENTILES.values()])).tolist()
    parallax_pct = dict(zip(PERCENTILES, q))

    order: EyeOrder = eye_order(
        ~m.consistent, m.valid, m.parallax, m.left_rgb,
        ~m.consistent_right, m.valid_right, m.parallax_right, m.right_rgb,
    )
    agreement = _depth_map_agreement(disparity, m)
    expected, settings_error = _settings_check(disparity, settings, m, width)
    rows = vertical_offset(m)
    vertical_px = rows * height / m.parallax.shape[0]
    brightness, gains, colour = _eye_mismatch(m, rows)
    window = _window(m, width)
    fit = _budget_fit(parallax_pct["min"], parallax_pct["max"], budget, budget_name)

    warnings = []
    if measured < MIN_MEASURED:
        # Every other figure rests on the matches: with this few, none of them is worth a warning.
        warnings.append("too little texture to measure")
    elif order.verdict == "swapped":
        warnings.append("eyes swapped")
    elif agreement is not None and agreement < -0.3 and order.verdict != "correct":
        warnings.append("eyes swapped (the disparity map disagrees)")
    if measured >= MIN_MEASURED:
        warnings += _measured_warnings(vertical_px, height, window, brightness, colour, fit, budget_name)
        if settings_error is not None and settings_error > SETTINGS_WARN_PCT:
            warnings.append("parallax differs from the settings")

    figures = PairFigures(
        width=width, height=height, measured_share=measured, parallax_pct=parallax_pct,
        eye_order=order.verdict, eye_order_score=order.score, eye_order_votes=order.votes,
        depth_map_agreement=agreement, settings_parallax_pct=expected, settings_error_pct=settings_error,
        vertical_offset_px=vertical_px,
        brightness_mismatch_pct=brightness, channel_gain=gains, colour_mismatch_pct=colour,
        window=window, budget=fit, warnings=warnings,
    )
    return PairCheck(figures, m)


def fix_pair(left: torch.Tensor, right: torch.Tensor, figures: PairFigures) -> tuple[torch.Tensor, torch.Tensor]:
    """Swap the eyes when they were found swapped, then scale the right eye's channels so that
    its brightness and colour match the left eye's (the left eye is the reference image: the plain
    render, or the photo). Images (3, H, W); returns the fixed (left, right)."""
    swapped = any(w.startswith("eyes swapped") for w in figures.warnings)
    gains = torch.tensor(figures.channel_gain, dtype=right.dtype).view(3, 1, 1)
    if swapped:
        # The measured gains are of the image now taken as the left eye against the other one.
        left, right = right, left
        gains = 1.0 / gains
    if "brightness mismatch" in figures.warnings or "colour mismatch" in figures.warnings:
        right = (right / gains.clamp_min(1e-4)).clamp(0.0, 1.0)
    return left, right


def _pct(v: float) -> str:
    return f"{v:+.2f} %"


def report(figures: PairFigures, index: int | None = None) -> str:
    """The figures in a person's words, one short block."""
    f = figures
    title = f"Pair {index + 1}" if index is not None else "Pair"
    lines = [f"{title} ({f.width}x{f.height}): {'PASS' if f.verdict == 'pass' else 'WARN: ' + ', '.join(f.warnings)}"]
    p = f.parallax_pct
    lines.append(
        f"- Parallax from {_pct(p['min'])} to {_pct(p['max'])} of the width (median {_pct(p['p50'])}; "
        f"negative = in front of the screen), measured on {f.measured_share * 100:.0f} % of the pixels."
    )
    b = f.budget
    verdict = "fits" if b["fits"] else "does NOT fit"
    lines.append(
        f"- {verdict} the {b['display']} budget ({b['crossed_budget_pct']:.2f} % in front, "
        f"{b['uncrossed_budget_pct']:.2f} % behind): it uses {b['crossed_pct']:.2f} % in front and "
        f"{b['uncrossed_pct']:.2f} % behind."
    )
    if not b["fits"]:
        lines.append("  " + _budget_advice(f))
    order = {
        "correct": "left and right are in the right order",
        "swapped": "LEFT AND RIGHT ARE SWAPPED (the strips seen by one eye only belong to the nearer surface)",
        "undetermined": "eye order could not be decided (too few depth edges)",
    }[f.eye_order]
    lines.append(f"- Eye order: {order} ({f.eye_order_votes} occlusion votes, score {f.eye_order_score:+.2f}).")
    if f.depth_map_agreement is not None:
        lines.append(f"  The disparity map {'agrees' if f.depth_map_agreement > 0 else 'disagrees'} "
                     f"(rank correlation {f.depth_map_agreement:+.2f}).")
    if f.settings_parallax_pct is not None:
        e = f.settings_parallax_pct
        error = "" if f.settings_error_pct is None else f"; measured differs by {f.settings_error_pct:.2f} % (median)"
        lines.append(f"- The settings give {_pct(e['min'])} to {_pct(e['max'])}{error}.")
    lines.append(f"- Vertical offset: {f.vertical_offset_px:+.1f} px.")
    for side in ("left", "right"):
        w = f.window[side]
        if w["violation"]:
            lines.append(f"- Window violation at the {side} edge: {w['share'] * 100:.0f} % of it is in front of the "
                         f"screen (up to {w['depth_pct']:.2f} % of the width); a floating window or more convergence fixes it.")
    lines.append(f"- Right eye brightness {f.brightness_mismatch_pct:+.1f} % vs the left, colour mismatch "
                 f"{f.colour_mismatch_pct:.1f} %.")
    return "\n".join(lines)


def _budget_advice(f: PairFigures) -> str:
    b = f.budget
    total_used = b["crossed_pct"] + b["uncrossed_pct"]
    total_budget = b["crossed_budget_pct"] + b["uncrossed_budget_pct"]
    if total_used <= total_budget:
        if b["crossed_pct"] > b["crossed_budget_pct"]:
            return "The range would fit: move it behind the screen (raise the convergence)."
        return "The range would fit: bring it forward (lower the convergence)."
    return f"Reduce the divergence to about {math.floor(100 * total_budget / total_used)} % of what it is."


def verdict_line(figures: PairFigures, index: int) -> str:
    f = figures
    p = f.parallax_pct
    tail = f": {', '.join(f.warnings)}" if f.warnings else ""
    return f"pair {index + 1}: {f.verdict}{tail} (parallax {p['min']:+.2f} % to {p['max']:+.2f} %)"
