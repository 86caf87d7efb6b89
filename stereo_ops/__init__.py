"""StereoDiffusion in plain torch: disparity preparation, stereo pixel shift, SPSMD, schedules,
and the stereo outputs (side-by-side layouts, anaglyphs, stereo MPO files, Apple spatial photos).

This package imports nothing from ComfyUI and can be used on its own.
"""

from .anaglyph import (
    ANAGLYPH_METHODS,
    AnaglyphMethod,
    anaglyph,
    linear_to_srgb,
    srgb_to_linear,
)
from .compose import LAYOUTS, VR_SUFFIXES, Layout, side_by_side, split_side_by_side, squeeze_to
from .depth_map import prepare_disparity
from .disparity import (
    DEFAULT_GRID_FIT,
    GRID_FITS,
    as_disparity_batch,
    fit_disparity_to_grid,
    normalize_per_sample,
    normalize_whole_batch,
    resize_disparity,
)
from .mpo import stereo_mpo_bytes, write_stereo_mpo
from .pixel_shift import (
    SHIFT_MODES,
    ShiftMode,
    ShiftResult,
    StereoViews,
    displacement,
    max_shift_px,
    stereo_pixel_shift,
    stereo_views,
    warp_left,
    warp_right,
)
from .schedule import StereoSchedule, plan_schedule
from .spatial_photo import (
    DEFAULT_BASELINE_MM,
    DEFAULT_HORIZONTAL_FOV_DEG,
    SpatialMetadata,
    read_spatial_photo,
    spatial_photo_bytes,
)
from .spsmd import deblur_fill, spsmd_copy
from .stereo_batch import duplicate_for_stereo, join_stereo, split_stereo

__all__ = [
    "ANAGLYPH_METHODS",
    "AnaglyphMethod",
    "LAYOUTS",
    "Layout",
    "VR_SUFFIXES",
    "anaglyph",
    "linear_to_srgb",
    "side_by_side",
    "split_side_by_side",
    "squeeze_to",
    "srgb_to_linear",
    "SHIFT_MODES",
    "ShiftMode",
    "ShiftResult",
    "StereoSchedule",
    "SpatialMetadata",
    "DEFAULT_BASELINE_MM",
    "DEFAULT_HORIZONTAL_FOV_DEG",
    "StereoViews",
    "as_disparity_batch",
    "deblur_fill",
    "displacement",
    "duplicate_for_stereo",
    "join_stereo",
    "max_shift_px",
    "normalize_per_sample",
    "normalize_whole_batch",
    "plan_schedule",
    "prepare_disparity",
    "fit_disparity_to_grid",
    "GRID_FITS",
    "DEFAULT_GRID_FIT",
    "resize_disparity",
    "spsmd_copy",
    "read_spatial_photo",
    "spatial_photo_bytes",
    "split_stereo",
    "stereo_mpo_bytes",
    "stereo_pixel_shift",
    "stereo_views",
    "warp_left",
    "warp_right",
    "write_stereo_mpo",
]
