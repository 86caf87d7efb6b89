"""MiDaS v3 DPT-Large-384 / DPT-Hybrid-384 and v3.1 DPT-BEiT-L-512 on timm blocks.

Parameter names match the official checkpoints (`pretrained.model.*`, `pretrained.act_postprocess*`,
`scratch.*`). As in the official code, the decoder taps block outputs before the final norm,
the ViT positional embedding is resized bilinearly to the patch grid, and BEiT's
relative-position table is resized to the window the image needs.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import partial
from typing import Mapping

import torch
import torch.nn.functional as F
from einops import rearrange
from timm.layers import StdConv2dSame
from timm.models.beit import Block as BeitBlock
from timm.models.beit import gen_relative_position_index
from timm.models.resnetv2 import ResNetV2
from timm.models.vision_transformer import Block
from torch import nn

from .common import DepthArchitecture, UnsupportedCheckpoint, heads_for, unsupported_message
from .dpt_blocks import Scratch

PATCH = 16
MIDAS_MEAN = (0.5, 0.5, 0.5)
MIDAS_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class MidasConfig:
    kind: str  # "vit", "hybrid" or "beit"
    embed_dim: int
    depth: int
    num_heads: int
    grid: int  # patches per side at the native size
    num_classes: int  # the unused ImageNet head kept in the checkpoints
    features: int
    level_channels: tuple[int, int, int, int]
    resnet_layers: tuple[int, ...] = ()
    resnet_channels: tuple[int, ...] = ()
    stem_chs: int = 64

    @property
    def native_size(self) -> int:
        return self.grid * PATCH

    @property
    def hooks(self) -> list[int]:
        if self.kind == "hybrid":  # levels 1 and 2 come from the ResNet stages
            return [2 * self.depth // 3, self.depth - 1]
        return [self.depth * k // 4 - 1 for k in range(1, 5)]


class _ProjectReadout(nn.Module):
    """Concatenates the class token to every patch token and projects back (readout='project')."""

    def __init__(self, dim: int):
        super().__init__()
        self.project = nn.Sequential(nn.Linear(2 * dim, dim), nn.GELU())

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        patches = tokens[:, 1:]
        return self.project(torch.cat((patches, tokens[:, :1].expand_as(patches)), -1))


def _reassemble(dim: int, out: int, resample: nn.Module | None) -> nn.Sequential:
    # Indices 1 and 2 (transpose, unflatten) hold no weights; the names keep the official numbering.
    layers = [_ProjectReadout(dim), nn.Identity(), nn.Identity(), nn.Conv2d(dim, out, 1)]
    if resample is not None:
        layers.append(resample)
    return nn.Sequential(*layers)


class _PatchEmbed(nn.Module):
    def __init__(self, cfg: MidasConfig):
        super().__init__()
        if cfg.kind == "hybrid":
            self.backbone = ResNetV2(
                layers=list(cfg.resnet_layers), channels=cfg.resnet_channels, num_classes=0, global_pool="",
                stem_chs=cfg.stem_chs, stem_type="same", preact=False,
                conv_layer=partial(StdConv2dSame, eps=1e-8),
            )
            self.proj = nn.Conv2d(cfg.resnet_channels[-1], cfg.embed_dim, 1)
        else:
            self.proj = nn.Conv2d(3, cfg.embed_dim, PATCH, stride=PATCH)


class MidasViT(nn.Module):
    """ViT-L/16 or the hybrid ViT-B/16 with a ResNet-50 stem; returns the four tapped levels."""

    def __init__(self, cfg: MidasConfig):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = _PatchEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.grid * cfg.grid + 1, cfg.embed_dim))
        self.blocks = nn.ModuleList(
            Block(cfg.embed_dim, cfg.num_heads, qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6))
            for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=1e-6)  # unused: the taps come before it
        self.head = nn.Linear(cfg.embed_dim, cfg.num_classes)  # unused classifier

    def _pos_embed(self, grid_h: int, grid_w: int) -> torch.Tensor:
        side = int(math.sqrt(self.pos_embed.shape[1] - 1))
        grid = rearrange(self.pos_embed[:, 1:], "1 (h w) c -> 1 c h w", h=side)
        grid = F.interpolate(grid, size=(grid_h, grid_w), mode="bilinear", align_corners=False)
        return torch.cat((self.pos_embed[:, :1], rearrange(grid, "1 c h w -> 1 (h w) c")), dim=1)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(ResNet stage maps, token sequences at the hooked blocks)."""
        grid_h, grid_w = x.shape[-2] // PATCH, x.shape[-1] // PATCH
        stages = []
        if self.cfg.kind == "hybrid":
            backbone = self.patch_embed.backbone
            x = backbone.stem(x)
            for stage in backbone.stages:
                x = stage(x)
                stages.append(x)
            x = backbone.norm(x)
        tokens = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        tokens = torch.cat((self.cls_token.expand(tokens.shape[0], -1, -1), tokens), dim=1)
        tokens = tokens + self._pos_embed(grid_h, grid_w)
        hooks, taps = set(self.cfg.hooks), []
        for i, block in enumerate(self.blocks):
            tokens = block(tokens)
            if i in hooks:
                taps.append(tokens)
        return stages[:2], taps


class MidasBeit(nn.Module):
    """BEiT-L/16 with relative position bias resized to any window."""

    def __init__(self, cfg: MidasConfig):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = _PatchEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        window = (cfg.grid, cfg.grid)
        self.blocks = nn.ModuleList(
            BeitBlock(cfg.embed_dim, cfg.num_heads, qkv_bias=True, init_values=0.1, window_size=window,
                      norm_layer=partial(nn.LayerNorm, eps=1e-6))
            for _ in range(cfg.depth)
        )
        self.fc_norm = nn.LayerNorm(cfg.embed_dim, eps=1e-6)  # unused pooling norm
        self.head = nn.Linear(cfg.embed_dim, cfg.num_classes)  # unused classifier
        self._index_cache: dict[tuple[int, int], torch.Tensor] = {}

    def _relative_bias(self, table: torch.Tensor, window: tuple[int, int]) -> torch.Tensor:
        old = 2 * self.cfg.grid - 1
        new_h, new_w = 2 * window[0] - 1, 2 * window[1] - 1
        sub = rearrange(table[: old * old], "(h w) n -> 1 n h w", h=old)
        # The official code resizes even at the native window (bilinear to the same size is exact).
        sub = F.interpolate(sub, size=(new_h, new_w), mode="bilinear", align_corners=False)
        table = torch.cat((rearrange(sub, "1 n h w -> (h w) n"), table[old * old:]))
        if window not in self._index_cache:
            self._index_cache[window] = gen_relative_position_index(window)
        index = self._index_cache[window].to(table.device)
        n = window[0] * window[1] + 1
        return rearrange(table[index.view(-1)], "(i j) n -> 1 n i j", i=n, j=n)

    def _attention(self, attn: nn.Module, x: torch.Tensor, window: tuple[int, int]) -> torch.Tensor:
        bias = torch.cat((attn.q_bias, torch.zeros_like(attn.v_bias), attn.v_bias))
        qkv = F.linear(x, attn.qkv.weight, bias)
        q, k, v = rearrange(qkv, "b n (three h d) -> three b h n d", three=3, h=attn.num_heads)
        rel = self._relative_bias(attn.relative_position_bias_table, window).to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=rel)
        return attn.proj(rearrange(out, "b h n d -> b n (h d)"))

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        window = (x.shape[-2] // PATCH, x.shape[-1] // PATCH)
        tokens = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        tokens = torch.cat((self.cls_token.expand(tokens.shape[0], -1, -1), tokens), dim=1)
        hooks, taps = set(self.cfg.hooks), []
        for i, blk in enumerate(self.blocks):
            tokens = tokens + blk.gamma_1 * self._attention(blk.attn, blk.norm1(tokens), window)
            tokens = tokens + blk.gamma_2 * blk.mlp(blk.norm2(tokens))
            if i in hooks:
                taps.append(tokens)
        return [], taps


class MidasDPT(nn.Module):
    """Input (B, 3, H, W) normalised, H and W multiples of 32; output (B, H, W) relative disparity."""

    def __init__(self, cfg: MidasConfig):
        super().__init__()
        self.config = cfg
        dim, ch = cfg.embed_dim, cfg.level_channels
        self.pretrained = nn.Module()
        self.pretrained.model = MidasBeit(cfg) if cfg.kind == "beit" else MidasViT(cfg)
        resample = {
            1: nn.ConvTranspose2d(ch[0], ch[0], kernel_size=4, stride=4),
            2: nn.ConvTranspose2d(ch[1], ch[1], kernel_size=2, stride=2),
            3: None,
            4: nn.Conv2d(ch[3], ch[3], kernel_size=3, stride=2, padding=1),
        }
        first = 3 if cfg.kind == "hybrid" else 1  # the hybrid's levels 1 and 2 are ResNet maps as they are
        for level in range(first, 5):
            setattr(self.pretrained, f"act_postprocess{level}", _reassemble(dim, ch[level - 1], resample[level]))
        self.scratch = Scratch(ch, cfg.features, use_bn=False)
        f = cfg.features
        self.scratch.output_conv = nn.Sequential(
            nn.Conv2d(f, f // 2, 3, padding=1),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
            nn.Conv2d(f // 2, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 1, 1),
            nn.ReLU(),
            nn.Identity(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid_h, grid_w = x.shape[-2] // PATCH, x.shape[-1] // PATCH
        stages, taps = self.pretrained.model(x)
        levels = list(stages)
        for level, tokens in enumerate(taps, start=len(stages) + 1):
            post = getattr(self.pretrained, f"act_postprocess{level}")
            feat = rearrange(post[0](tokens), "b (h w) c -> b c h w", h=grid_h, w=grid_w)
            for layer in post[3:]:
                feat = layer(feat)
            levels.append(feat)
        return self.scratch.output_conv(self.scratch.fuse(levels, sized=True)).squeeze(1)


def _count(sd: Mapping[str, torch.Tensor], pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in sd if (m := rx.match(k))})


def midas_config(sd: Mapping[str, torch.Tensor]) -> MidasConfig:
    """Read a MiDaS DPT configuration from key names and shapes."""
    if "pretrained.act_postprocess4.0.project.0.weight" not in sd:
        raise UnsupportedCheckpoint(unsupported_message("MiDaS checkpoint without readout projection"))
    m = "pretrained.model."
    dim = sd[m + "cls_token"].shape[-1]
    depth = _count(sd, re.escape(m) + r"blocks\.(\d+)\.")
    common = dict(
        embed_dim=dim, depth=depth, num_classes=sd[m + "head.weight"].shape[0],
        features=sd["scratch.layer1_rn.weight"].shape[0],
        level_channels=tuple(sd[f"scratch.layer{i}_rn.weight"].shape[1] for i in range(1, 5)),
    )
    table = m + "blocks.0.attn.relative_position_bias_table"
    if table in sd:
        side = int(round(math.sqrt(sd[table].shape[0] - 3)))
        return MidasConfig(kind="beit", num_heads=sd[table].shape[1], grid=(side + 1) // 2, **common)
    grid = int(round(math.sqrt(sd[m + "pos_embed"].shape[1] - 1)))
    if m + "patch_embed.backbone.stem.conv.weight" in sd:
        bb = m + "patch_embed.backbone."
        n_stages = _count(sd, re.escape(bb) + r"stages\.(\d+)\.")
        layers = tuple(_count(sd, re.escape(bb) + rf"stages\.{s}\.blocks\.(\d+)\.") for s in range(n_stages))
        channels = tuple(sd[f"{bb}stages.{s}.blocks.0.conv3.weight"].shape[0] for s in range(n_stages))
        return MidasConfig(
            kind="hybrid", num_heads=heads_for(dim), grid=grid, resnet_layers=layers, resnet_channels=channels,
            stem_chs=sd[bb + "stem.conv.weight"].shape[0], **common,
        )
    return MidasConfig(kind="vit", num_heads=heads_for(dim), grid=grid, **common)


def detect_midas(sd: Mapping[str, torch.Tensor]) -> DepthArchitecture:
    cfg = midas_config(sd)
    name = {
        "vit": ("midas_dpt_large", "MiDaS v3 DPT-Large"),
        "hybrid": ("midas_dpt_hybrid", "MiDaS v3 DPT-Hybrid"),
        "beit": ("midas_beit_large", "MiDaS v3.1 DPT-BEiT-L"),
    }[cfg.kind]
    return DepthArchitecture(
        family=name[0], name=f"{name[1]}-{cfg.native_size}", config=cfg, native_size=cfg.native_size,
        multiple=32, resize_method="minimal", mean=MIDAS_MEAN, std=MIDAS_STD, upsample="bicubic", build=MidasDPT,
    )
