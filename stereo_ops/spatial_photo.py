"""Apple spatial photos: a HEIC with a left and a right image, a `ster` stereo pair group and
spatial metadata, the form in which Vision Pro, iPhone and Mac Photos show a photo as spatial.

pillow-heif (libheif + x265) codes both eyes as two top-level image items, the left one primary,
each with its XMP. It cannot write entity groups or camera properties, so they are added to the
file afterwards with our own ISOBMFF writer (isobmff.py). The spatial metadata goes in twice:

- as the HEIF camera properties that Apple's ImageIO writes into spatial photos: `cmin` (a
  simplified pinhole: focal length f = (W/2)/tan(FOV/2) and the principal point at the centre)
  and `cmex` (the right camera `baseline` to the right of the left one), on each image;
- as XMP in Apple's namespace http://ns.apple.com/image/1.0/ (HorizontalFOV, Baseline,
  HorizontalDisparityAdjustment, the camera model and matrices), the form of public write-ups
  whose files Photos showed as spatial, and the only place for the disparity adjustment here.

pillow-heif is imported lazily: the rest of the package works without it.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from typing import Literal

from PIL import Image

from . import isobmff
from .comfort import DEFAULT_DISPLAY, DISPLAY_PRESETS, ParallaxBudget, parallax_budget
from .pair_parallax import horizontal_parallax_range

Eye = Literal["left", "right"]

# Defaults where nothing says otherwise. The horizontal FOV of a moderately wide photo (a 31 mm
# full-frame equivalent lens); the baseline of an average adult's eyes, so that the scene is shown
# at human scale.
DEFAULT_HORIZONTAL_FOV_DEG = 60.0
DEFAULT_BASELINE_MM = 64.0
DEFAULT_QUALITY = 92  # pillow-heif/x265 quality; >= 40 dB PSNR on natural images
X265_PRESET = "medium"
APPLE_IMAGE_NS = "http://ns.apple.com/image/1.0/"
PILLOW_HEIF_HINT = "pip install pillow-heif"


@dataclass(frozen=True)
class SpatialMetadata:
    """What Apple reads from a spatial photo, for images of `width` x `height` pixels."""

    width: int
    height: int
    horizontal_fov_deg: float = DEFAULT_HORIZONTAL_FOV_DEG
    baseline_mm: float = DEFAULT_BASELINE_MM
    disparity_adjustment: float = 0.0  # fraction of the width; > 0 moves the scene away

    @property
    def focal_length_px(self) -> float:
        return (self.width / 2) / math.tan(math.radians(self.horizontal_fov_deg) / 2)

    def intrinsics(self) -> tuple[float, ...]:
        """The 3x3 pinhole matrix, row-major: f 0 cx / 0 f cy / 0 0 1."""
        f, cx, cy = self.focal_length_px, self.width / 2, self.height / 2
        return (f, 0.0, cx, 0.0, f, cy, 0.0, 0.0, 1.0)

    def position_m(self, eye: Eye) -> tuple[float, float, float]:
        """Camera position in metres: the left camera at the origin, the right one on +x."""
        return (0.0, 0.0, 0.0) if eye == "left" else (self.baseline_mm / 1000.0, 0.0, 0.0)


def check_spatial_values(horizontal_fov_deg: float, baseline_mm: float, disparity_adjustment: float | None) -> None:
    if not (math.isfinite(horizontal_fov_deg) and 0.0 < horizontal_fov_deg < 180.0):
        raise ValueError(f"horizontal_fov_deg must be between 0 and 180 degrees (exclusive), got {horizontal_fov_deg}")
    if not (math.isfinite(baseline_mm) and baseline_mm > 0.0):
        raise ValueError(f"baseline_mm must be a positive number of millimetres, got {baseline_mm}")
    adjustment_ok = disparity_adjustment is None or (math.isfinite(disparity_adjustment) and -1 <= disparity_adjustment <= 1)
    if not adjustment_ok:
        raise ValueError(f"disparity_adjustment must be a fraction of the width in -1..1, got {disparity_adjustment}")


def check_hevc_pair(left: Image.Image, right: Image.Image) -> None:
    if left.size != right.size:
        raise ValueError(f"left {left.size} and right {right.size} must have the same size for a spatial photo")
    width, height = left.size
    if width % 2 or height % 2:
        raise ValueError(
            f"left and right are {width}x{height}: a spatial photo's HEVC images (4:2:0) need an even "
            "width and height; crop or pad the pair by one pixel (e.g. with an image crop node)"
        )


def default_budget() -> ParallaxBudget:
    """The comfortable parallax of the default display target (a VR headset's virtual screen)."""
    return parallax_budget(DISPLAY_PRESETS[DEFAULT_DISPLAY])


def adjustment_into_budget(nearest: float, farthest: float, budget: ParallaxBudget) -> float:
    """The shift (fraction of the width, > 0 pushes the scene away) that brings a parallax range
    into `budget`, as small as possible: 0 where the pair already fits, so that its own convergence
    stays; a range wider than the budget overflows both sides in proportion to them."""
    crossed, uncrossed = budget.crossed_pct / 100.0, budget.uncrossed_pct / 100.0
    span = farthest - nearest
    if span <= crossed + uncrossed:
        return min(max(0.0, -crossed - nearest), uncrossed - farthest)
    if crossed + uncrossed <= 0.0:
        return -0.5 * (nearest + farthest)
    return -crossed * span / (crossed + uncrossed) - nearest


def pair_disparity_adjustment(left: Image.Image, right: Image.Image, budget: ParallaxBudget | None = None) -> float:
    """The disparity adjustment of a pair, from its convergence: its parallax range is measured
    from the pixels (robust 2-98 % percentiles), and kept as it is where it fits the display's
    comfortable budget (default: a VR headset's), else moved into it (`adjustment_into_budget`).
    0 where the pair has too little texture to measure. Rounded to Apple's 1/10000 of the width."""
    measured = horizontal_parallax_range(left, right)
    if measured is None:
        return 0.0
    return round(adjustment_into_budget(*measured, budget or default_budget()), 4) + 0.0


def spatial_xmp(meta: SpatialMetadata, eye: Eye) -> bytes:
    """XMP packet with the spatial values of one eye in Apple's image namespace."""
    numbers = lambda values: " ".join(f"{v:.6g}" for v in values)  # noqa: E731
    fields = {
        "HorizontalFOV": f"{meta.horizontal_fov_deg:.6g}",
        "Baseline": f"{meta.baseline_mm:.6g}",
        "HorizontalDisparityAdjustment": f"{meta.disparity_adjustment:.6g}",
        "CameraModelType": "SimplifiedPinhole",
        "CameraIntrinsics": numbers(meta.intrinsics()),
        "CameraExtrinsicsRotation": "1 0 0 0 1 0 0 0 1",
        "CameraExtrinsicsPosition": numbers(meta.position_m(eye)),
    }
    attributes = "".join(f'\n    apple:{k}="{v}"' for k, v in fields.items())
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        f'  <rdf:Description rdf:about="" xmlns:apple="{APPLE_IMAGE_NS}"{attributes}/>\n'
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    ).encode("utf-8")


def parse_spatial_xmp(xmp: bytes) -> dict[str, str]:
    """The attributes in Apple's image namespace of an XMP packet written by `spatial_xmp`."""
    text = xmp.decode("utf-8", "replace")
    prefix = re.search(r'xmlns:(\w+)="' + re.escape(APPLE_IMAGE_NS) + '"', text)
    if prefix is None:
        return {}
    return dict(re.findall(rf'\b{prefix.group(1)}:(\w+)="([^"]*)"', text))


def require_pillow_heif():
    """The pillow_heif module, or one clear error saying how to install it."""
    try:
        import pillow_heif
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            f"spatial photos (HEIC) need the pillow-heif package: {PILLOW_HEIF_HINT}", name="pillow_heif"
        ) from exc
    return pillow_heif


def _camera_properties(meta: SpatialMetadata, eye: Eye) -> list[bytes]:
    intrinsics = isobmff.camera_intrinsic_matrix_box(meta.focal_length_px / meta.width, 0.5, 0.5)
    position_um = tuple(round(v * 1e6) for v in meta.position_m(eye))
    return [intrinsics, isobmff.camera_extrinsic_matrix_box(position_um)]


def _image_items(data: bytes) -> tuple[int, int]:
    """(left, right) item ids: the primary image item, then the other top-level image."""
    top = isobmff.parse_boxes(data)
    (meta,) = isobmff.find_path(top, b"meta")
    primary = isobmff.parse_primary_item_box(data, isobmff.find_path(meta.children, b"pitm")[0])
    images = [i.item_id for i in isobmff.parse_item_infos(data, meta) if i.item_type == b"hvc1" and not i.hidden]
    others = [i for i in images if i != primary]
    if primary not in images or len(others) != 1:
        raise ValueError(f"expected the encoder to write two top-level images, got items {images} (primary {primary})")
    return primary, others[0]


def spatial_photo_bytes(
    left: Image.Image,
    right: Image.Image,
    *,
    horizontal_fov_deg: float = DEFAULT_HORIZONTAL_FOV_DEG,
    baseline_mm: float = DEFAULT_BASELINE_MM,
    disparity_adjustment: float | None = None,
    budget: ParallaxBudget | None = None,
    quality: int = DEFAULT_QUALITY,
) -> bytes:
    """A spatial photo (HEIC) of a stereo pair, as bytes. `disparity_adjustment` (a fraction of the
    width) None: from the pair's measured parallax and the comfortable `budget`
    (`pair_disparity_adjustment`; default budget: a VR headset's)."""
    check_hevc_pair(left, right)
    check_spatial_values(horizontal_fov_deg, baseline_mm, disparity_adjustment)
    if not (isinstance(quality, int) and 1 <= quality <= 100):
        raise ValueError(f"quality must be an integer in 1..100, got {quality!r}")
    pillow_heif = require_pillow_heif()
    left, right = left.convert("RGB"), right.convert("RGB")
    if disparity_adjustment is None:
        disparity_adjustment = pair_disparity_adjustment(left, right, budget)
    meta = SpatialMetadata(left.width, left.height, horizontal_fov_deg, baseline_mm, disparity_adjustment)

    heif = pillow_heif.from_pillow(left)
    heif.add_from_pillow(right)
    heif.primary_index = 0
    heif[0].info["xmp"], heif[1].info["xmp"] = spatial_xmp(meta, "left"), spatial_xmp(meta, "right")
    buffer = io.BytesIO()
    # 4:2:0 (HEVC Main), what Apple's own spatial photos use; x265's own default preset, about 2.5x
    # faster than libheif's "slow" at the same PSNR for a file about 10 % larger (bench_spatial_photo).
    heif.save(buffer, quality=quality, chroma=420, enc_params={"preset": X265_PRESET})
    encoded = buffer.getvalue()

    left_id, right_id = _image_items(encoded)
    group_id = _unused_id(encoded)
    return isobmff.insert_into_meta(
        encoded,
        properties={left_id: _camera_properties(meta, "left"), right_id: _camera_properties(meta, "right")},
        groups=[isobmff.stereo_pair_group_box(group_id, left_id, right_id)],
    )


def _unused_id(data: bytes) -> int:
    """An id for the group: item ids and group ids share one number space."""
    (meta,) = isobmff.find_path(isobmff.parse_boxes(data), b"meta")
    used = [i.item_id for i in isobmff.parse_item_infos(data, meta)]
    used += [g.group_id for g in isobmff.parse_groups(data, meta)]
    return max(used, default=0) + 1


@dataclass(frozen=True)
class SpatialPhotoInfo:
    """What a spatial photo says about itself, read back from its boxes and XMP."""

    left_id: int
    right_id: int
    group_id: int
    focal_x: float  # relative to the width, from cmin
    positions_um: dict[int, tuple[int, int, int]]  # item id -> cmex position
    xmp: dict[int, dict[str, str]]  # item id -> Apple XMP attributes


def read_spatial_photo(data: bytes) -> SpatialPhotoInfo:
    """Reads the stereo group, the camera properties and the spatial XMP of a spatial photo."""
    top = isobmff.parse_boxes(data)
    (meta,) = isobmff.find_path(top, b"meta")
    stereo = [g for g in isobmff.parse_groups(data, meta) if g.grouping_type == b"ster"]
    if len(stereo) != 1 or len(stereo[0].entity_ids) != 2:
        raise ValueError(f"expected one ster group of two images, found {stereo}")
    left_id, right_id = stereo[0].entity_ids
    positions, focal = {}, 0.0
    for item in (left_id, right_id):
        for prop in isobmff.item_properties(data, meta, item):
            if prop.type == b"cmin":
                focal = isobmff.parse_camera_intrinsic_matrix_box(data, prop)[0]
            elif prop.type == b"cmex":
                positions[item] = isobmff.parse_camera_extrinsic_matrix_box(data, prop)
    return SpatialPhotoInfo(left_id, right_id, stereo[0].group_id, focal, positions, _xmp_by_image(data, meta))


def _xmp_by_image(data: bytes, meta: isobmff.Box) -> dict[int, dict[str, str]]:
    """XMP items follow the image they describe through a `cdsc` reference in `iref`."""
    iref = meta.child(b"iref")
    infos = {i.item_id: i for i in isobmff.parse_item_infos(data, meta)}
    iloc = isobmff.parse_item_location_box(data, isobmff.find_path(meta.children, b"iloc")[0])
    found: dict[int, dict[str, str]] = {}
    if iref is None:
        return found
    for reference in isobmff.parse_item_reference_box(data, iref):
        info = infos.get(reference.from_item_id)
        if reference.reference_type != b"cdsc" or info is None or info.content_type != "application/rdf+xml":
            continue
        extents = isobmff.item_file_extents(iloc, reference.from_item_id)
        payload = b"".join(data[o:o + n] for o, n in extents)
        for to_id in reference.to_item_ids:
            found[to_id] = parse_spatial_xmp(payload)
    return found
