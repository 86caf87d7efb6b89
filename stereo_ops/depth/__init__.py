"""Monocular depth networks (Depth Anything V1/V2/3, Video Depth Anything, MiDaS DPT) in torch + timm + einops.

Not imported by `stereo_ops` itself, so the core library never needs timm.
"""

from .common import SUPPORTED, DepthArchitecture, UnsupportedCheckpoint
from .detect import build_and_load, detect_architecture, strip_wrappers
from .estimate import (
    estimate_disparity,
    metric_scale,
    network_input_size,
    predict,
    prediction_to_disparity,
    relative_to_disparity,
    screen_convergence,
)
from .preprocess import check_image_batch, network_size, to_image_grid, to_network_input
from .video_inference import StreamingVideoDepth, WindowedVideoDepth, video_depth

__all__ = [
    "SUPPORTED",
    "DepthArchitecture",
    "StreamingVideoDepth",
    "UnsupportedCheckpoint",
    "WindowedVideoDepth",
    "build_and_load",
    "check_image_batch",
    "detect_architecture",
    "estimate_disparity",
    "metric_scale",
    "network_input_size",
    "prediction_to_disparity",
    "screen_convergence",
    "network_size",
    "predict",
    "relative_to_disparity",
    "strip_wrappers",
    "to_image_grid",
    "to_network_input",
    "video_depth",
]
