"""The viewing model: what parallax a display can show comfortably, and settings that fit it.

Conventions. Screen parallax p is the horizontal offset of a point's right-eye image from its
left-eye image, as a percentage of the image width: p > 0 is uncrossed (behind the screen),
p < 0 crossed (in front of it). The pack's warp moves content LEFT in the right eye by
a = s_px * (D - c) pixels (`pixel_shift.displacement`), so p = -a: a point of disparity D
(0 = far, 1 = near) made with divergence s (% of the width) and convergence c has

    p(D) = -s * (D - c)  percent of the width.

Comfort limits, each with its source (docs/comfort.md has the full list):

* Angular disparity, the difference between the vergence angle on a point and on the screen,
  within about 1 degree on either side of the screen: the "one degree rule" (Lambooij,
  IJsselsteijn, Fortuin and Heynderickx, "Visual discomfort and visual fatigue of stereoscopic
  displays: a review", Journal of Imaging Science and Technology 53(3), 2009; the 3D Consortium's
  "3DC Safety Guidelines for Dissemination of Human-friendly 3D", 2010).
* Uncrossed parallax never more than the eye separation on the final screen: beyond it the eyes
  would have to diverge (Mendiburu, "3D Movie Making", Focal Press 2009, ch. 5; the same rule in
  every stereographer's screen-size table).
* The perceived distance of a point with on-screen parallax p (metres) for a viewer at distance V
  with eye separation e is Z = V * e / (e - p) (similar triangles; Woods, Docherty and Koch,
  "Image distortions in stereoscopic video systems", Proc. SPIE 1915, 1993).

The crossed limit differs per display only through its geometry: the same 1 degree is a larger
share of a small image seen close than of a wide virtual screen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# The one degree rule (see the module docstring), on each side of the screen.
ANGULAR_LIMIT_DEG = 1.0
# The mean adult interpupillary distance is about 63 mm (Dodgson, "Variation and extrema of human
# interpupillary distance", Proc. SPIE 5291, 2004).
DEFAULT_EYE_SEPARATION_M = 0.063
# The disparity range of a map is read between these percentiles, so that stray pixels (a few
# tenths of a percent of the image) do not flatten the rest of the scene.
ROBUST_PERCENTILES = (0.5, 99.5)
# A map whose robust range is narrower than this is treated as this wide: auto settings never
# magnify a nearly flat map into a huge divergence that its outliers would then carry.
MIN_DISPARITY_SPAN = 0.1
# Accepted ranges for a custom display (metres): beyond them the input is almost surely a unit slip.
_EYE_SEPARATION_RANGE_M = (0.03, 0.09)
_LENGTH_RANGE_M = (0.01, 1000.0)
# torch.quantile refuses inputs above 2**24 elements; larger maps are subsampled on a fixed stride.
_QUANTILE_MAX_ELEMENTS = 1 << 24


@dataclass(frozen=True)
class Display:
    """How a stereo image is seen: the width of the image on the screen (for a headset, of the
    virtual screen it is shown on), the distance to it, and the viewer's eye separation."""

    name: str
    screen_width_m: float
    viewing_distance_m: float
    eye_separation_m: float = DEFAULT_EYE_SEPARATION_M

    @property
    def horizontal_fov_deg(self) -> float:
        """The angle the image subtends."""
        return math.degrees(2.0 * math.atan(self.screen_width_m / (2.0 * self.viewing_distance_m)))


def custom_display(
    screen_width_m: float,
    viewing_distance_m: float,
    eye_separation_m: float = DEFAULT_EYE_SEPARATION_M,
    name: str = "custom",
) -> Display:
    """A display from its measurements, checked: each bad value is named in the error."""
    for field_name, value, (lo, hi) in (
        ("screen_width_m", screen_width_m, _LENGTH_RANGE_M),
        ("viewing_distance_m", viewing_distance_m, _LENGTH_RANGE_M),
        ("eye_separation_m", eye_separation_m, _EYE_SEPARATION_RANGE_M),
    ):
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{field_name} must be a finite number of metres, got {value!r}")
        if not lo <= value <= hi:
            raise ValueError(
                f"{field_name} is {value:g} m, outside {lo:g}..{hi:g} m; give it in metres "
                f"(eye separation is about 0.063 m for an adult)"
            )
    return Display(name, float(screen_width_m), float(viewing_distance_m), float(eye_separation_m))


def _width_for_fov(fov_deg: float, distance_m: float) -> float:
    return 2.0 * distance_m * math.tan(math.radians(fov_deg) / 2.0)


# A 65-inch 16:9 television is 65 * 16 / sqrt(16^2 + 9^2) inches = 1.439 m wide.
_TV_65_WIDTH_M = 65.0 * 0.0254 * 16.0 / math.hypot(16.0, 9.0)

DISPLAY_PRESETS: dict[str, Display] = {
    # A headset's player shows the image on a virtual screen about 60 degrees wide; the
    # distance sets only the scale (the angular budget does not depend on it).
    "VR headset": Display("VR headset", _width_for_fov(62.0, 2.5), 2.5),
    "3D TV or monitor": Display("3D TV or monitor", _TV_65_WIDTH_M, 3.0),
    # A phone in a Cardboard-style viewer: each eye sees its half through a lens, as a virtual
    # image about 80 degrees wide, focused at about a metre.
    "phone in a viewer": Display("phone in a viewer", _width_for_fov(80.0, 1.0), 1.0),
    # Parallel or cross-eyed free viewing of a side-by-side pair on a monitor at arm's length:
    # each image about 20 cm wide at 60 cm.
    "desktop free viewing": Display("desktop free viewing", 0.20, 0.60),
}
DEFAULT_DISPLAY = "VR headset"


@dataclass(frozen=True)
class ParallaxBudget:
    """The largest comfortable parallax in front of the screen (crossed) and behind it
    (uncrossed), each in percent of the image width, both >= 0."""

    crossed_pct: float
    uncrossed_pct: float

    def __post_init__(self) -> None:
        for name in ("crossed_pct", "uncrossed_pct"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0.0:
                raise ValueError(f"{name} must be a finite percentage >= 0, got {value!r}")

    @property
    def total_pct(self) -> float:
        return self.crossed_pct + self.uncrossed_pct

    def allows(self, parallax: ParallaxRange, tolerance_pct: float = 1e-9) -> bool:
        """Whether every parallax of `parallax` stays within this budget."""
        return (
            parallax.crossed_pct <= self.crossed_pct + tolerance_pct
            and parallax.uncrossed_pct <= self.uncrossed_pct + tolerance_pct
        )


@dataclass(frozen=True)
class ParallaxRange:
    """The signed screen parallax of the nearest and the farthest point, in percent of the
    width (negative = crossed, in front of the screen; positive = uncrossed, behind it)."""

    nearest_pct: float
    farthest_pct: float

    @property
    def crossed_pct(self) -> float:
        """How far the nearest point comes in front of the screen (0 if it does not)."""
        return max(0.0, -self.nearest_pct)

    @property
    def uncrossed_pct(self) -> float:
        """How far the farthest point goes behind the screen (0 if it does not)."""
        return max(0.0, self.farthest_pct)

    @property
    def total_pct(self) -> float:
        return self.farthest_pct - self.nearest_pct


def _vergence_rad(display: Display, parallax_m: float) -> float:
    """The angle between the two eyes' lines of sight on a point with this screen parallax."""
    return 2.0 * math.atan((display.eye_separation_m - parallax_m) / (2.0 * display.viewing_distance_m))


def angular_disparity_deg(display: Display, parallax_pct: float) -> float:
    """The vergence change from the screen plane to a point with this parallax (degrees; > 0
    behind the screen). Exact, not the small-angle p / V."""
    p = parallax_pct / 100.0 * display.screen_width_m
    return math.degrees(_vergence_rad(display, 0.0) - _vergence_rad(display, p))


def parallax_budget(display: Display, angular_limit_deg: float = ANGULAR_LIMIT_DEG) -> ParallaxBudget:
    """The comfortable budget of `display`: `angular_limit_deg` of vergence change on either side of
    the screen, and behind it never more than the eye separation (which would make the eyes diverge)."""
    if not 0.0 < angular_limit_deg < 10.0:
        raise ValueError(f"angular_limit_deg must be in (0, 10) degrees, got {angular_limit_deg!r}")
    e, v, w = display.eye_separation_m, display.viewing_distance_m, display.screen_width_m
    half_screen = _vergence_rad(display, 0.0) / 2.0
    half_limit = math.radians(angular_limit_deg) / 2.0
    crossed_m = 2.0 * v * math.tan(half_screen + half_limit) - e
    # A screen farther than e / (2 tan(limit / 2)) is seen with less vergence than the limit: the
    # angular rule then allows any depth behind it, and the eye separation is what binds.
    uncrossed_m = e if half_screen <= half_limit else e - 2.0 * v * math.tan(half_screen - half_limit)
    return ParallaxBudget(100.0 * crossed_m / w, 100.0 * min(uncrossed_m, e) / w)


def parallax_range(divergence: float, convergence: float, disparity_lo: float, disparity_hi: float) -> ParallaxRange:
    """The parallax of the nearest and the farthest point for these settings, given the disparity
    actually present (`disparity_lo`..`disparity_hi`, 0..1, 1 = near)."""
    _check_range(disparity_lo, disparity_hi)
    return ParallaxRange(-divergence * (disparity_hi - convergence), -divergence * (disparity_lo - convergence))


def settings_for_parallax(
    parallax: ParallaxRange, disparity_lo: float, disparity_hi: float
) -> tuple[float, float]:
    """The (divergence, convergence) that give exactly `parallax` over this disparity range.

    The inverse of `parallax_range`. The convergence may fall outside 0..1 when the requested
    range lies wholly on one side of the screen.
    """
    _check_range(disparity_lo, disparity_hi)
    span = disparity_hi - disparity_lo
    if span <= 0.0:
        raise ValueError("the disparity range is empty: a flat map has a single parallax whatever the settings")
    divergence = parallax.total_pct / span
    if divergence <= 0.0:
        raise ValueError("the nearest point must have a smaller (more crossed) parallax than the farthest")
    return divergence, disparity_hi + parallax.nearest_pct / divergence


def perceived_distance_m(display: Display, parallax_pct: float) -> float:
    """Z = V * e / (e - p): how far from the viewer a point with this parallax appears (metres);
    infinite at or beyond the eye separation (the eyes would be parallel or diverge)."""
    e = display.eye_separation_m
    p = parallax_pct / 100.0 * display.screen_width_m
    if p >= e:
        return math.inf
    return display.viewing_distance_m * e / (e - p)


def perceived_depth_range_m(
    display: Display, divergence: float, convergence: float, disparity_lo: float = 0.0, disparity_hi: float = 1.0
) -> tuple[float, float]:
    """The distances (metres) at which the nearest and the farthest point appear on `display`."""
    r = parallax_range(divergence, convergence, disparity_lo, disparity_hi)
    return perceived_distance_m(display, r.nearest_pct), perceived_distance_m(display, r.farthest_pct)


def auto_settings(budget: ParallaxBudget, disparity_lo: float, disparity_hi: float) -> tuple[float, float]:
    """The largest divergence, with its convergence, for which the disparity present
    (`disparity_lo`..`disparity_hi`) stays within `budget` on both sides of the screen.

    Crossed s * (hi - c) <= C and uncrossed s * (c - lo) <= U together allow at most
    s = (C + U) / (hi - lo), reached with the screen plane at c = hi - C / s: the nearest point
    gets exactly C in front, the farthest exactly U behind. The span is read as at least
    MIN_DISPARITY_SPAN; for a narrower map the screen plane stays at the centre of its range.
    """
    _check_range(disparity_lo, disparity_hi)
    lo, hi = disparity_lo, disparity_hi
    if hi - lo < MIN_DISPARITY_SPAN:
        mid = min(max(0.5 * (lo + hi), 0.5 * MIN_DISPARITY_SPAN), 1.0 - 0.5 * MIN_DISPARITY_SPAN)
        lo, hi = mid - 0.5 * MIN_DISPARITY_SPAN, mid + 0.5 * MIN_DISPARITY_SPAN
    if budget.total_pct <= 0.0:
        return 0.0, 0.5 * (lo + hi)
    divergence = budget.total_pct / (hi - lo)
    return divergence, hi - budget.crossed_pct / divergence


def disparity_range(
    disparity: torch.Tensor, percentiles: tuple[float, float] = ROBUST_PERCENTILES
) -> tuple[float, float]:
    """The robust range (low, high) of a disparity map or of a whole batch of maps (video: one
    range for all frames, so the geometry does not jump between them), between two percentiles."""
    lo_pct, hi_pct = percentiles
    if not 0.0 <= lo_pct <= hi_pct <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= low <= high <= 100, got {percentiles!r}")
    flat = disparity.detach().reshape(-1)
    if flat.numel() == 0:
        raise ValueError("disparity is empty")
    if flat.numel() > _QUANTILE_MAX_ELEMENTS:
        flat = flat[:: -(-flat.numel() // _QUANTILE_MAX_ELEMENTS)]
    q = torch.quantile(flat.float(), torch.tensor([lo_pct / 100.0, hi_pct / 100.0], device=flat.device))
    return float(q[0]), float(q[1])


def _check_range(disparity_lo: float, disparity_hi: float) -> None:
    if not (math.isfinite(disparity_lo) and math.isfinite(disparity_hi)) or disparity_lo > disparity_hi:
        raise ValueError(
            f"disparity range must be finite with low <= high, got {disparity_lo!r}..{disparity_hi!r}"
        )
