"""Which depth network a checkpoint holds, read from its key names and tensor shapes.

The family comes from the key structure, the sizes (width, depth, head channels) from the shapes,
so both the public checkpoints and small test configurations are recognised. Depth Anything V1
and V2 checkpoints are identical in names and shapes: the version is a hint given by the caller.
"""

from __future__ import annotations

import re
from typing import Mapping

import torch
from torch import nn

from .common import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DepthArchitecture,
    UnsupportedCheckpoint,
    heads_for,
    unsupported_message,
)
from .da3 import DA3_NATIVE_SIZE, METRIC_FOCAL_DIVISOR, UNUSED_ANY_VIEW_PREFIXES, DA3Config, DepthAnything3
from .depth_anything import DepthAnything, DepthAnythingConfig
from .midas import detect_midas
from .video_depth_anything import VideoDepthAnything, VideoDepthAnythingConfig

_DERIVED_BUFFERS = ("attn.relative_position_index", "attn.k_bias")


def strip_wrappers(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop a top-level 'state_dict'/'model' wrapper, the 'module.' prefix of DataParallel and
    buffers that older timm versions saved but that are recomputed here."""
    sd = dict(state_dict)
    # Training snapshots (MiDaS's own, for one) keep the weights next to the optimizer state.
    for wrapper in ("state_dict", "model"):
        if isinstance(sd.get(wrapper), Mapping) and not all(isinstance(v, torch.Tensor) for v in sd.values()):
            sd = dict(sd[wrapper])
    for prefix in ("module.", "model."):  # DataParallel; the DA3 files' wrapper module
        if sd and all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items()}
    # BEiT checkpoints saved by older timm also hold buffers that are derived, not learnt.
    return {k: v for k, v in sd.items() if not k.endswith(_DERIVED_BUFFERS)}


def _count_blocks(sd: Mapping[str, torch.Tensor], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    ids = {int(m.group(1)) for k in sd if (m := pattern.match(k))}
    if not ids or ids != set(range(max(ids) + 1)):
        raise UnsupportedCheckpoint(unsupported_message(f"the encoder blocks under {prefix!r} are incomplete"))
    return len(ids)


def _depth_anything(sd: Mapping[str, torch.Tensor], version: int) -> DepthArchitecture:
    dim = sd["pretrained.cls_token"].shape[-1]
    depth = _count_blocks(sd, "pretrained.blocks.")
    cfg = DepthAnythingConfig(
        version=version,
        embed_dim=dim,
        depth=depth,
        num_heads=heads_for(dim),
        features=sd["depth_head.scratch.layer1_rn.weight"].shape[0],
        out_channels=tuple(sd[f"depth_head.projects.{i}.weight"].shape[0] for i in range(4)),
        use_bn="depth_head.scratch.refinenet1.resConfUnit1.bn1.weight" in sd,
        use_clstoken="depth_head.readout_projects.0.0.weight" in sd,
    )
    size = {384: "ViT-S", 768: "ViT-B", 1024: "ViT-L"}.get(dim, f"ViT-{dim}x{depth}")
    return DepthArchitecture(
        family=f"depth_anything_v{version}",
        name=f"Depth Anything V{version} {size}",
        config=cfg,
        native_size=518,
        multiple=14,
        resize_method="lower_bound",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        upsample="bilinear",
        build=DepthAnything,
    )


_SIZES = {384: "ViT-S", 768: "ViT-B", 1024: "ViT-L", 1536: "ViT-G"}


def _video_depth_anything(sd: Mapping[str, torch.Tensor], metric: bool) -> DepthArchitecture:
    dim = sd["pretrained.cls_token"].shape[-1]
    depth = _count_blocks(sd, "pretrained.blocks.")
    table = "head.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.pos_encoder.pe"
    cfg = VideoDepthAnythingConfig(
        embed_dim=dim,
        depth=depth,
        num_heads=heads_for(dim),
        features=sd["head.scratch.layer1_rn.weight"].shape[0],
        out_channels=tuple(sd[f"head.projects.{i}.weight"].shape[0] for i in range(4)),
        max_frames=sd[table].shape[1] if table in sd else 32,
        use_bn="head.scratch.refinenet1.resConfUnit1.bn1.weight" in sd,
    )
    size = _SIZES.get(dim, f"ViT-{dim}x{depth}")
    return DepthArchitecture(
        family="video_depth_anything_metric" if metric else "video_depth_anything",
        name=f"Video Depth Anything {'Metric ' if metric else ''}{size}",
        config=cfg, native_size=518, multiple=14, resize_method="lower_bound",
        mean=IMAGENET_MEAN, std=IMAGENET_STD, upsample="bilinear", build=VideoDepthAnything,
        output="metric_depth" if metric else "disparity", temporal=True,
    )


def _da3(sd: Mapping[str, torch.Tensor], metric: bool) -> DepthArchitecture:
    enc = "backbone.pretrained."
    dim = sd[enc + "cls_token"].shape[-1]
    depth = _count_blocks(sd, enc + "blocks.")
    if enc + "blocks.0.mlp.w12.weight" in sd or "gs_head.scratch.layer1_rn.weight" in sd:
        raise UnsupportedCheckpoint(unsupported_message(
            "this is a Depth Anything 3 Giant/Nested file (SwiGLU encoder, Gaussian head), which is not supported"
        ))
    any_view = enc + "camera_token" in sd
    alt_start = next((i for i in range(depth) if f"{enc}blocks.{i}.attn.q_norm.weight" in sd), -1)
    if any_view and alt_start < 0:
        raise UnsupportedCheckpoint(
            unsupported_message("Depth Anything 3 file with a camera token but no QK-norm blocks")
        )
    cfg = DA3Config(
        embed_dim=dim,
        depth=depth,
        num_heads=heads_for(dim),
        features=sd["head.scratch.layer1_rn.weight"].shape[0],
        out_channels=tuple(sd[f"head.projects.{i}.weight"].shape[0] for i in range(4)),
        any_view=any_view,
        alt_start=alt_start if any_view else -1,
        output_dim=sd["head.scratch.output_conv2.2.weight"].shape[0],
        sky_head="head.scratch.sky_output_conv2.0.weight" in sd,
        grid=int(round((sd[enc + "pos_embed"].shape[1] - 1) ** 0.5)),
    )
    size = _SIZES.get(dim, f"ViT-{dim}x{depth}")
    if any_view:
        family, name, output = "da3_any_view", f"Depth Anything 3 {size} (single view)", "depth"
    elif metric:
        family, name, output = "da3_metric", f"Depth Anything 3 Metric {size}", "metric_depth"
    else:
        family, name, output = "da3_mono", f"Depth Anything 3 Mono {size}", "depth"
    return DepthArchitecture(
        family=family, name=name, config=cfg, native_size=DA3_NATIVE_SIZE, multiple=14,
        resize_method="upper_bound", mean=IMAGENET_MEAN, std=IMAGENET_STD, upsample="bilinear",
        build=DepthAnything3, output=output, downscale="area",
        metric_focal_divisor=METRIC_FOCAL_DIVISOR if output == "metric_depth" else 0.0,
        unused_prefixes=UNUSED_ANY_VIEW_PREFIXES if any_view else (),
    )


def detect_architecture(
    state_dict: Mapping[str, torch.Tensor], depth_anything_version: int = 2, da3_metric: bool = False,
    video_metric: bool = False,
) -> DepthArchitecture:
    """Identify the network of a (wrapper-stripped) state dict; raise UnsupportedCheckpoint otherwise.

    Three facts are not in the weights and come as hints: the Depth Anything version (V1 and V2 files
    are identical in names and shapes), whether a DA3 mono-architecture file is DA3METRIC
    (identical to DA3MONO in names and shapes; only the meaning of its output differs), and the same
    for a metric Video Depth Anything file."""
    sd = state_dict
    if not sd:
        raise UnsupportedCheckpoint(unsupported_message("the checkpoint holds no tensors"))
    if "pretrained.cls_token" in sd and "head.scratch.layer1_rn.weight" in sd:
        if not any(k.startswith("head.motion_modules.") for k in sd):
            raise UnsupportedCheckpoint(unsupported_message(
                "a DINOv2 encoder with a 'head.' DPT decoder but no temporal motion modules"))
        return _video_depth_anything(sd, video_metric)
    if "backbone.pretrained.cls_token" in sd and "head.scratch.layer1_rn.weight" in sd:
        return _da3(sd, da3_metric)
    if "pretrained.cls_token" in sd and "depth_head.scratch.layer1_rn.weight" in sd:
        if depth_anything_version not in (1, 2):
            raise ValueError(f"Depth Anything version must be 1 or 2, got {depth_anything_version}")
        return _depth_anything(sd, depth_anything_version)
    if "pretrained.model.cls_token" in sd and "scratch.output_conv.0.weight" in sd:
        return detect_midas(sd)
    sample = ", ".join(sorted(sd)[:4])
    raise UnsupportedCheckpoint(
        unsupported_message(f"unrecognised checkpoint layout (first keys: {sample})")
    )


def build_and_load(
    state_dict: Mapping[str, torch.Tensor], depth_anything_version: int = 2, da3_metric: bool = False,
    video_metric: bool = False,
) -> tuple[nn.Module, DepthArchitecture]:
    """Detect, build and load with strict key and shape checks; the model is returned in eval mode.

    Keys under the architecture's `unused_prefixes` (parts of a multi-task file that depth from one
    image never runs, such as DA3's camera heads) may be present and are dropped; every other key
    must match the network exactly."""
    sd = strip_wrappers(state_dict)
    arch = detect_architecture(sd, depth_anything_version, da3_metric, video_metric)
    if arch.unused_prefixes:
        sd = {k: v for k, v in sd.items() if not k.startswith(arch.unused_prefixes)}
    model = arch.create()
    expected = model.state_dict()
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    wrong = sorted(k for k in expected if k in sd and tuple(sd[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {', '.join(keys[:3])})")
        raise UnsupportedCheckpoint(
            unsupported_message(f"the checkpoint looks like {arch.name} but does not match it: " + "; ".join(parts))
        )
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()}, strict=True)
    return model.eval().requires_grad_(False), arch
