"""Scene cuts: where a clip jumps to another shot, so that temporal work restarts there.

Every frame is shrunk to a small thumbnail (a box average, which ignores noise and fine detail)
and described by the histogram of each channel; the score of frame t is the share of its
histograms that differs from frame t - 1's (half the L1 distance, 0..1). Histograms hardly change
when the camera or objects move, and change at once at a cut. A cut is a score that is large in
absolute terms and also stands out from the scores around it: a fade or a flash of light raises
the scores of its neighbourhood alike, a cut raises one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .frame_chunks import chunk_length, frame_chunks

THUMBNAIL = (36, 64)
BINS = 16
# A cut changes at least this share of the histograms ...
MIN_JUMP = 0.12
# ... and by this many times the median score of the frames around it.
CONTRAST = 3.0
WINDOW = 8


def thumbnails(frames: torch.Tensor, size: tuple[int, int] = THUMBNAIL) -> torch.Tensor:
    """(B, C, h, w) box-averaged thumbnails of an IMAGE (B, H, W, C) or MASK (B, H, W) batch,
    made a chunk of frames at a time."""
    if frames.ndim == 3:
        frames = frames.unsqueeze(-1)
    if frames.ndim != 4:
        raise ValueError(f"frames must be (B, H, W, C) or (B, H, W), got {tuple(frames.shape)}")
    b, h, w, c = frames.shape
    out = torch.empty((b, c, min(size[0], h), min(size[1], w)), dtype=torch.float32, device=frames.device)
    for part in frame_chunks(b, chunk_length(h * w * c)):
        x = frames[part].permute(0, 3, 1, 2).float()
        out[part] = F.adaptive_avg_pool2d(x, out.shape[-2:])
    return out


def histograms(thumbs: torch.Tensor, bins: int = BINS) -> torch.Tensor:
    """(B, C, bins) share of each channel's pixels in each of `bins` equal bins of 0..1."""
    b, c = thumbs.shape[:2]
    index = (thumbs.flatten(2) * bins).long().clamp_(0, bins - 1)
    counts = torch.zeros((b, c, bins), dtype=torch.float32, device=thumbs.device)
    counts.scatter_add_(2, index, torch.ones_like(index, dtype=torch.float32))
    return counts / index.shape[-1]


def cut_scores(thumbs: torch.Tensor) -> torch.Tensor:
    """(B,) score of each frame against the one before (0 for the first frame)."""
    scores = torch.zeros(thumbs.shape[0], dtype=torch.float32)
    if thumbs.shape[0] > 1:
        h = histograms(thumbs)
        scores[1:] = ((h[1:] - h[:-1]).abs().sum(dim=2) / 2).mean(dim=1).cpu()
    return scores


def detect_scene_cuts(frames: torch.Tensor, sensitivity: float = 1.0, rescale: bool | None = None) -> list[int]:
    """The first frame of every scene after the first, for frames (B, H, W, C) in 0..1 or maps
    (B, H, W) in any unit. With `rescale` (the default for maps) values are first rescaled by the
    range of the whole clip. `sensitivity` above 1 finds softer cuts, below 1 only the hardest."""
    if sensitivity <= 0:
        raise ValueError(f"sensitivity must be positive, got {sensitivity}")
    thumbs = thumbnails(frames)
    if frames.ndim == 3 if rescale is None else rescale:
        lo, hi = torch.aminmax(thumbs)
        thumbs = (thumbs - lo) / max(float(hi - lo), 1e-12)
    scores = cut_scores(thumbs)
    cuts = []
    for t in range(1, scores.shape[0]):
        around = torch.cat([scores[max(1, t - WINDOW):t], scores[t + 1:t + 1 + WINDOW]])
        typical = float(around.median()) if around.numel() else 0.0
        if scores[t] * sensitivity > max(MIN_JUMP, CONTRAST * typical):
            cuts.append(t)
    return cuts
