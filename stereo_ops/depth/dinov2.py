"""DINOv2 ViT encoder (the backbone of Depth Anything) built from timm blocks.

Parameter names match the official checkpoints' `pretrained.*` keys. The positional embedding is
resized the way DINOv2 does it (bicubic by a scale factor with a +0.1 offset, no antialias), which
differs from timm's own resampling and matters for fidelity on non-native sizes.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Sequence

import torch
import torch.nn.functional as F
from timm.layers import PatchEmbed
from timm.models.vision_transformer import Block
from torch import nn

PATCH_SIZE = 14
NATIVE_SIZE = 518  # 37 x 37 patches: the grid the positional embedding was trained on


class DinoV2Encoder(nn.Module):
    def __init__(self, embed_dim: int, depth: int, num_heads: int, grid: int = NATIVE_SIZE // PATCH_SIZE):
        super().__init__()
        self.embed_dim = embed_dim
        self.patch_embed = PatchEmbed(
            img_size=grid * PATCH_SIZE, patch_size=PATCH_SIZE, in_chans=3, embed_dim=embed_dim,
            strict_img_size=False,
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, embed_dim))
        # Unused at inference; kept so the official checkpoints load with strict key checks.
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))
        norm = partial(nn.LayerNorm, eps=1e-6)
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio=4.0, qkv_bias=True, init_values=1.0, norm_layer=norm)
            for _ in range(depth)
        )
        self.norm = norm(embed_dim)

    def _pos_embed(self, tokens: torch.Tensor, grid_h: int, grid_w: int) -> torch.Tensor:
        n = self.pos_embed.shape[1] - 1
        if tokens.shape[1] - 1 == n and grid_h == grid_w:
            return self.pos_embed
        side = math.sqrt(n)
        pos = self.pos_embed.float()
        patch_pos = pos[:, 1:].reshape(1, int(side), int(side), -1).permute(0, 3, 1, 2)
        # DINOv2 passes a scale factor, not a size: the sampling positions depend on it.
        patch_pos = F.interpolate(
            patch_pos, scale_factor=((grid_h + 0.1) / side, (grid_w + 0.1) / side), mode="bicubic",
            antialias=False,
        )
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, -1)
        return torch.cat((pos[:, :1], patch_pos), dim=1).to(tokens.dtype)

    def intermediate_layers(self, x: torch.Tensor, layers: Sequence[int], with_class_token: bool = False) -> list:
        """Patch tokens (B, N, C) after the final norm, taken after each block in `layers`

        (with the class token as a (tokens, cls) pair when `with_class_token`)."""
        grid_h, grid_w = x.shape[-2] // PATCH_SIZE, x.shape[-1] // PATCH_SIZE
        tokens = self.patch_embed(x)
        tokens = torch.cat((self.cls_token.expand(tokens.shape[0], -1, -1).to(tokens.dtype), tokens), dim=1)
        tokens = tokens + self._pos_embed(tokens, grid_h, grid_w)
        wanted = set(layers)
        outputs = []
        for i, block in enumerate(self.blocks):
            tokens = block(tokens)
            if i in wanted:
                normed = self.norm(tokens)
                outputs.append((normed[:, 1:], normed[:, 0]) if with_class_token else normed[:, 1:])
        return outputs
