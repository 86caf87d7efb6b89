"""Depth Anything 3, single-view: a DINOv2 encoder (with 2D RoPE, QK-norm and a camera token in the
any-view models) and a DPT head predicting depth (not disparity).

Parameter names match the published `model.safetensors` files (under the `model.` prefix the
loader strips): `backbone.pretrained.*` for the encoder, `head.*` for the DPT head. Two heads exist:

- DA3MONO-LARGE / DA3METRIC-LARGE: a DPT head with exp activation and a sky head; as in the
  official forward, sky pixels get the 99th percentile of the other pixels' depth.
- DA3-SMALL / DA3-BASE (any-view models): a dual DPT head (depth + ray); for one view only its
  depth branch is evaluated. Every second block from `alt_start` on attends "globally" across views,
  which for one view is the same token set with RoPE positions that do not vary over the grid.

Only the single-view path is implemented: one image is one scene, as a stereo pair needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from timm.layers import LayerScale, Mlp, PatchEmbed
from torch import nn

from .dinov2 import PATCH_SIZE
from .dpt_blocks import Scratch, reassemble_resizes

DA3_NATIVE_SIZE = 504  # the official processing resolution: longest side, then multiples of 14
METRIC_FOCAL_DIVISOR = 300.0  # DA3METRIC: metres = focal length (pixels) * output / 300
SKY_THRESHOLD = 0.3
SKY_QUANTILE = 0.99
ROPE_FREQUENCY = 100.0
POS_EMBED_RATIO = 0.1

# Blocks the head taps, by encoder depth, as in the official configurations.
ANY_VIEW_TAPS = {12: (5, 7, 9, 11), 24: (11, 15, 19, 23), 40: (19, 27, 33, 39)}
MONO_TAPS = {24: (4, 11, 17, 23)}


@dataclass(frozen=True)
class DA3Config:
    embed_dim: int
    depth: int
    num_heads: int
    features: int
    out_channels: tuple[int, int, int, int]
    any_view: bool  # camera token, RoPE, QK-norm, alternating attention, dual head
    alt_start: int = -1  # first block with camera token / RoPE / QK-norm (-1: none)
    output_dim: int = 1  # main head channels (any-view: depth + confidence)
    sky_head: bool = True
    grid: int = 37  # positional embedding grid (518 / 14)

    @property
    def taps(self) -> tuple[int, ...]:
        table = ANY_VIEW_TAPS if self.any_view else MONO_TAPS
        if self.depth in table:
            return table[self.depth]
        return tuple(self.depth * k // 4 - 1 for k in range(1, 5))

    @property
    def cat_token(self) -> bool:
        # The any-view models hand the head the local and the global stream side by side.
        return self.any_view


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Rope2D(nn.Module):
    """2D rotary embedding: the first half of each head's channels turns with the token's row,
    the second half with its column (frequencies 1 / 100^(2i/d))."""

    def __init__(self, frequency: float = ROPE_FREQUENCY):
        super().__init__()
        self.frequency = frequency

    def tables(self, head_dim: int, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        """cos/sin for rows and columns of `positions` (N, 2) -> four (N, head_dim/2) tables."""
        half = head_dim // 2
        inv_freq = 1.0 / (self.frequency ** (torch.arange(0, half, 2, device=positions.device).float() / half))
        out = []
        for axis in (0, 1):
            angles = positions[:, axis].float()[:, None] * inv_freq[None]
            angles = torch.cat((angles, angles), dim=-1).to(dtype)
            out += [angles.cos(), angles.sin()]
        return tuple(out)

    @staticmethod
    def apply(x: torch.Tensor, tables: tuple[torch.Tensor, ...]) -> torch.Tensor:
        cos_y, sin_y, cos_x, sin_x = tables
        rows, cols = x.chunk(2, dim=-1)
        rows = rows * cos_y + _rotate_half(rows) * sin_y
        cols = cols * cos_x + _rotate_half(cols) * sin_x
        return torch.cat((rows, cols), dim=-1)


class DA3Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, qk_norm: bool):
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        # Default LayerNorm eps (1e-5) here, unlike the blocks' 1e-6: as the official layers.
        self.q_norm = nn.LayerNorm(head_dim) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(head_dim) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, ...] | None) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.num_heads)
        q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q, k = Rope2D.apply(q, rope), Rope2D.apply(k, rope)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(rearrange(out, "b h n d -> b n (h d)"))


class DA3Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, qk_norm: bool):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = DA3Attention(dim, num_heads, qk_norm)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, hidden_features=4 * dim)
        self.ls2 = LayerScale(dim)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, ...] | None = None) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x), rope))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DA3Encoder(nn.Module):
    """The DINOv2 ViT of DA3; returns the head's four token maps (B, N, C or 2C), class token dropped."""

    def __init__(self, cfg: DA3Config):
        super().__init__()
        self.cfg = cfg
        dim = cfg.embed_dim
        self.patch_embed = PatchEmbed(
            img_size=cfg.grid * PATCH_SIZE, patch_size=PATCH_SIZE, in_chans=3, embed_dim=dim, strict_img_size=False,
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        if cfg.any_view:
            self.camera_token = nn.Parameter(torch.zeros(1, 2, dim))  # reference view, other views
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.grid * cfg.grid + 1, dim))
        starts = cfg.alt_start if cfg.any_view else cfg.depth
        self.blocks = nn.ModuleList(DA3Block(dim, cfg.num_heads, qk_norm=i >= starts) for i in range(cfg.depth))
        self.norm = nn.LayerNorm(dim)  # default eps, as the official final norm
        self.rope = Rope2D()

    def _pos_embed(self, grid_h: int, grid_w: int, dtype: torch.dtype) -> torch.Tensor:
        n = self.pos_embed.shape[1] - 1
        if grid_h * grid_w == n and grid_h == grid_w:
            return self.pos_embed.to(dtype)
        side = int(math.sqrt(n))
        pos = self.pos_embed.float()
        grid = rearrange(pos[:, 1:], "1 (h w) c -> 1 c h w", h=side)
        # DINOv2's resampling: a scale factor with a +0.1 offset, not a size (it moves the samples).
        grid = F.interpolate(grid, scale_factor=((grid_h + 0.1) / side, (grid_w + 0.1) / side), mode="bicubic")
        return torch.cat((pos[:, :1], rearrange(grid, "1 c h w -> 1 (h w) c")), dim=1).to(dtype)

    def _rope_tables(self, grid_h: int, grid_w: int, device, dtype) -> tuple[tuple, tuple]:
        """(local, global) tables: local positions are the patch grid shifted by one (the class
        token sits at 0); in global attention every patch sits at (1, 1)."""
        ys, xs = torch.meshgrid(torch.arange(grid_h, device=device), torch.arange(grid_w, device=device), indexing="ij")
        grid = torch.stack((ys.flatten(), xs.flatten()), dim=-1) + 1
        zero = torch.zeros(1, 2, dtype=grid.dtype, device=device)
        head_dim = self.cfg.embed_dim // self.cfg.num_heads
        local = self.rope.tables(head_dim, torch.cat((zero, grid)), dtype)
        flat = self.rope.tables(head_dim, torch.cat((zero, torch.ones_like(grid))), dtype)
        return local, flat

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        cfg = self.cfg
        grid_h, grid_w = x.shape[-2] // PATCH_SIZE, x.shape[-1] // PATCH_SIZE
        tokens = self.patch_embed(x)
        tokens = torch.cat((self.cls_token.expand(tokens.shape[0], -1, -1).to(tokens.dtype), tokens), dim=1)
        tokens = tokens + self._pos_embed(grid_h, grid_w, tokens.dtype)
        local_rope = global_rope = None
        if cfg.any_view:
            local_rope, global_rope = self._rope_tables(grid_h, grid_w, x.device, tokens.dtype)
        taps, wanted, local = [], set(cfg.taps), tokens
        for i, block in enumerate(self.blocks):
            late = cfg.any_view and i >= cfg.alt_start
            if late and i == cfg.alt_start:
                # A single view is the reference view: its class token becomes the reference camera token.
                cam = self.camera_token[:, :1].to(tokens.dtype).expand(tokens.shape[0], -1, -1)
                tokens = torch.cat((cam, tokens[:, 1:]), dim=1)
            if late and i % 2 == 1:
                tokens = block(tokens, global_rope)
            else:
                tokens = block(tokens, local_rope if late else None)
                local = tokens
            if i in wanted:
                if cfg.cat_token:
                    # Only the global half is normalised; the local half goes to the head as it is.
                    taps.append(torch.cat((local[:, 1:], self.norm(tokens[:, 1:])), dim=-1))
                else:
                    taps.append(self.norm(tokens[:, 1:]))
        return taps


def _uv_embedding(channels: int, height: int, width: int, aspect: float, device, dtype) -> torch.Tensor:
    """The heads' additive position code: sin/cos of a centred UV grid (unit diagonal), (C, h, w)."""
    diag = math.sqrt(aspect * aspect + 1.0)
    span_x, span_y = aspect / diag, 1.0 / diag
    u = torch.linspace(-span_x * (width - 1) / width, span_x * (width - 1) / width, width, device=device)
    v = torch.linspace(-span_y * (height - 1) / height, span_y * (height - 1) / height, height, device=device)
    quarter = channels // 4
    omega = 1.0 / (100.0 ** (torch.arange(quarter, device=device).float() / quarter))

    def sincos(pos: torch.Tensor) -> torch.Tensor:
        angles = pos[:, None] * omega[None]
        return torch.cat((angles.sin(), angles.cos()), dim=-1)

    eu = sincos(u)[None].expand(height, -1, -1)  # (h, w, C/2)
    ev = sincos(v)[:, None].expand(-1, width, -1)
    emb = torch.cat((eu, ev), dim=-1) * POS_EMBED_RATIO
    return emb.permute(2, 0, 1).to(dtype)


class DA3Head(nn.Module):
    """DPT head of DA3. Mono/metric: exp depth plus a sky map; any-view: the depth branch of the dual
    head (its ray branch is not built: the loader checks and drops its weights)."""

    def __init__(self, cfg: DA3Config):
        super().__init__()
        self.any_view = cfg.any_view
        dim_in = cfg.embed_dim * (2 if cfg.cat_token else 1)
        oc, f = cfg.out_channels, cfg.features
        if cfg.any_view:
            self.norm = nn.LayerNorm(dim_in)
        self.projects = nn.ModuleList(nn.Conv2d(dim_in, c, 1) for c in oc)
        self.resize_layers = reassemble_resizes(oc)
        self.scratch = Scratch(oc, f, use_bn=False, coarsest_skip=False)
        self.scratch.output_conv1 = nn.Conv2d(f, f // 2, 3, padding=1)
        self.scratch.output_conv2 = nn.Sequential(
            nn.Conv2d(f // 2, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, cfg.output_dim, 1),
        )
        self.sky_head = cfg.sky_head
        if cfg.sky_head:
            self.scratch.sky_output_conv2 = nn.Sequential(
                nn.Conv2d(f // 2, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 1, 1),
            )

    def _with_uv(self, x: torch.Tensor, aspect: float) -> torch.Tensor:
        if not self.any_view:
            return x
        return x + _uv_embedding(x.shape[1], x.shape[2], x.shape[3], aspect, x.device, x.dtype)

    def forward(self, taps: list[torch.Tensor], grid_h: int, grid_w: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        aspect = grid_w / grid_h
        levels = []
        for i, tokens in enumerate(taps):
            if self.any_view:
                tokens = self.norm(tokens)
            x = rearrange(tokens, "b (h w) c -> b c h w", h=grid_h, w=grid_w)
            levels.append(self.resize_layers[i](self._with_uv(self.projects[i](x), aspect)))
        fused = self.scratch.output_conv1(self.scratch.fuse(levels, sized=True))
        fused = F.interpolate(fused, (grid_h * PATCH_SIZE, grid_w * PATCH_SIZE), mode="bilinear", align_corners=True)
        fused = self._with_uv(fused, aspect)
        # exp in float32 (the official head runs outside autocast): half precision overflows above e^11.
        depth = torch.exp(self.scratch.output_conv2(fused)[:, 0].float())
        sky = F.relu(self.scratch.sky_output_conv2(fused)[:, 0]) if self.sky_head else None
        return depth, sky


def sky_to_far(depth: torch.Tensor, sky: torch.Tensor) -> torch.Tensor:
    """The official mono post-processing, per image: sky pixels (sky >= 0.3) get the 99th percentile
    of the other pixels' depth; left alone when either part has 10 pixels or fewer."""
    out = depth.clone()
    for i in range(depth.shape[0]):
        ground = sky[i] < SKY_THRESHOLD
        n_ground = int(ground.sum())
        if n_ground <= 10 or ground.numel() - n_ground <= 10:
            continue
        values = depth[i][ground].float()
        # torch.quantile takes at most 2^24 values; an even stride keeps the estimate unbiased.
        if values.numel() > 1 << 24:
            values = values[:: math.ceil(values.numel() / (1 << 24))]
        out[i][~ground] = torch.quantile(values, SKY_QUANTILE).to(depth.dtype)
    return out


class DepthAnything3(nn.Module):
    """Input (B, 3, H, W) normalised, H and W multiples of 14; output (B, H, W) depth > 0."""

    def __init__(self, cfg: DA3Config):
        super().__init__()
        self.config = cfg
        self.backbone = nn.Module()
        self.backbone.pretrained = DA3Encoder(cfg)
        self.head = DA3Head(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid_h, grid_w = x.shape[-2] // PATCH_SIZE, x.shape[-1] // PATCH_SIZE
        depth, sky = self.head(self.backbone.pretrained(x), grid_h, grid_w)
        return depth if sky is None else sky_to_far(depth, sky)


# The any-view models' parts a single view never uses: camera encoder/decoder (poses), ray branch.
UNUSED_ANY_VIEW_PREFIXES = (
    "cam_enc.", "cam_dec.", "head.scratch.refinenet1_aux.", "head.scratch.refinenet2_aux.",
    "head.scratch.refinenet3_aux.", "head.scratch.refinenet4_aux.", "head.scratch.output_conv1_aux.",
    "head.scratch.output_conv2_aux.",
)
