"""Temporal attention ("motion modules") of Video Depth Anything's head.

Each module lets every spatial position of a feature map attend over the frames of a window.
Parameter names follow the official checkpoints (`temporal_transformer.*`), so the published
files load unchanged. A module can also run on one new frame against the attention inputs of
earlier frames (`context`), which is how the streaming mode reuses past frames without
recomputing them.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

NORM_GROUPS = 32
HEADS = 8
WINDOW = 32  # frames the positional table covers (the official num_frames)


def sinusoidal_table(length: int, dim: int) -> torch.Tensor:
    """(1, length, dim) sine/cosine positions: sin on even channels, cos on odd ones."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(1, length, dim)
    table[0, :, 0::2] = torch.sin(position * freq)
    table[0, :, 1::2] = torch.cos(position * freq)
    return table


class PositionTable(nn.Module):
    """Holds the positional table as the checkpoint's `pe` buffer."""

    def __init__(self, dim: int, length: int):
        super().__init__()
        self.register_buffer("pe", sinusoidal_table(length, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe[:, : x.shape[1]].to(x.dtype)


class TemporalAttention(nn.Module):
    """Self-attention along time, with a sinusoidal position added before the projections."""

    def __init__(self, dim: int, heads: int, max_frames: int):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(dim, dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim), nn.Dropout(0.0)])
        self.pos_encoder = PositionTable(dim, max_frames)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """x: (sequences, new frames, C); context: (sequences, earlier frames, C) or None.

        Queries come from the new frames only; keys and values from the context and the new frames,
        positions counted from the start of the context."""
        seq = x if context is None else torch.cat((context, x), dim=1)
        seq = self.pos_encoder(seq)
        q = self.to_q(seq[:, seq.shape[1] - x.shape[1]:])
        k, v = self.to_k(seq), self.to_v(seq)
        q, k, v = (rearrange(t, "n f (h c) -> n h f c", h=self.heads) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out[0](rearrange(out, "n h f c -> n f (h c)"))


class GatedFeedForward(nn.Module):
    """GEGLU: a projection to twice the width, one half gating the other through GELU."""

    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.net = nn.ModuleList([nn.Module(), nn.Dropout(0.0), nn.Linear(dim * mult, dim)])
        self.net[0].proj = nn.Linear(dim, dim * mult * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.net[0].proj(x).chunk(2, dim=-1)
        return self.net[2](value * F.gelu(gate))


class TemporalBlock(nn.Module):
    """Pre-norm attention blocks along time, then a gated feed-forward, all residual."""

    def __init__(self, dim: int, heads: int, max_frames: int, attention_blocks: int = 2):
        super().__init__()
        self.attention_blocks = nn.ModuleList(
            TemporalAttention(dim, heads, max_frames) for _ in range(attention_blocks)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(attention_blocks))
        self.ff = GatedFeedForward(dim)
        self.ff_norm = nn.LayerNorm(dim)

    def forward(
        self, x: torch.Tensor, frames: int, context: Sequence[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x: (B*T, HW, C). Returns the output and, per attention block, its normalised input
        ((B*HW, T, C)): what a later frame needs as context from this one."""
        states = []
        for i, (attention, norm) in enumerate(zip(self.attention_blocks, self.norms)):
            hw = x.shape[1]
            normed = rearrange(norm(x), "(b f) d c -> (b d) f c", f=frames)
            states.append(normed)
            out = attention(normed, None if context is None else context[i])
            x = x + rearrange(out, "(b d) f c -> (b f) d c", d=hw)
        return x + self.ff(self.ff_norm(x)), states


class TemporalTransformer(nn.Module):
    def __init__(self, channels: int, heads: int = HEADS, max_frames: int = WINDOW, blocks: int = 1):
        super().__init__()
        self.norm = nn.GroupNorm(NORM_GROUPS, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, channels)
        self.transformer_blocks = nn.ModuleList(TemporalBlock(channels, heads, max_frames) for _ in range(blocks))
        self.proj_out = nn.Linear(channels, channels)

    def forward(
        self, x: torch.Tensor, frames: int, context: Sequence[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x: (B*T, C, H, W), frames in order within each clip; context: per attention block of
        every transformer block, the states of earlier frames. Returns (output, states)."""
        h, w = x.shape[-2:]
        hidden = self.proj_in(rearrange(self.norm(x), "n c h w -> n (h w) c"))
        states: list[torch.Tensor] = []
        per_block = len(self.transformer_blocks[0].attention_blocks)
        for j, block in enumerate(self.transformer_blocks):
            ctx = None if context is None else context[j * per_block:(j + 1) * per_block]
            hidden, block_states = block(hidden, frames, ctx)
            states.extend(block_states)
        out = rearrange(self.proj_out(hidden), "n (h w) c -> n c h w", h=h, w=w)
        return out + x, states


class MotionModule(nn.Module):
    """The official `TemporalModule` wrapper: one temporal transformer."""

    def __init__(self, channels: int, max_frames: int = WINDOW):
        super().__init__()
        self.temporal_transformer = TemporalTransformer(channels, max_frames=max_frames)

    def forward(self, x, frames, context=None):
        return self.temporal_transformer(x, frames, context)
