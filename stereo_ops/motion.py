"""Global motion of the background between two video frames: an affine map found coarse to fine.

The background is what a disocclusion shows, so the fill carries it from frame to frame with
this motion. The estimate uses only the pixels a caller marks (the visible background: no holes,
the farther half of the disparity): a translation searched exhaustively on a small thumbnail,
then Gauss-Newton refinement of all six affine parameters on finer levels, with residual
reweighting so that the odd moving object left among the weighted pixels does not pull it.

Coordinates are normalised as in `grid_sample` with align_corners=True (-1 .. 1 across the
image), so one matrix serves every level of the pyramid and `warp_affine` at any size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Widths of the pyramid levels: the search level, then the refinement levels (the frame's own
# width when it is smaller).
_SEARCH_WIDTH = 48
_REFINE_WIDTHS = (96, 192, 480)
_LEVEL_ITERATIONS = (8, 5, 3)  # few steps are left to do on the finer levels
_SEARCH_RADIUS = 6  # pixels of the search level, about 12 % of the width each way
_ITERATIONS = 8


def identity(device: torch.device | str = "cpu") -> torch.Tensor:
    return torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], device=device)


def warp_affine(x: torch.Tensor, affine: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Sample `x` (N, C, H, W) at affine(p) for every pixel p: the frame that `affine` maps to
    `x`, brought into the other frame's pixels. Outside `x` reads zero."""
    grid = F.affine_grid(affine.to(x.dtype).unsqueeze(0).expand(x.shape[0], -1, -1), list(x.shape), align_corners=True)
    return F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=True)


def _level(x: torch.Tensor, width: int) -> torch.Tensor:
    """(N, C, H, W) shrunk by area averaging to `width` (kept when it is narrower)."""
    w = x.shape[-1]
    if width >= w:
        return x
    h = max(2, round(x.shape[-2] * width / w))
    return F.interpolate(x, size=(h, width), mode="area")


def _soften(x: torch.Tensor) -> torch.Tensor:
    """A small binomial blur: smoother images keep the linearisation valid over larger motions."""
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=x.device, dtype=x.dtype) / 16.0
    x = F.conv2d(F.pad(x, (2, 2, 0, 0), mode="replicate"), k.view(1, 1, 1, 5))
    return F.conv2d(F.pad(x, (0, 0, 2, 2), mode="replicate"), k.view(1, 1, 5, 1))


def _search_translation(prev: torch.Tensor, cur: torch.Tensor, weight: torch.Tensor, prev_ok: torch.Tensor) -> torch.Tensor:
    """The integer-pixel translation (at this level) minimising the weighted mean absolute difference."""
    _, _, h, w = cur.shape
    ry = min(_SEARCH_RADIUS, h - 2)
    dy, dx = torch.meshgrid(torch.arange(-ry, ry + 1.0), torch.arange(-_SEARCH_RADIUS, _SEARCH_RADIUS + 1.0), indexing="ij")
    candidates = identity(cur.device).repeat(dx.numel(), 1, 1)
    candidates[:, 0, 2] = dx.flatten() * (2.0 / (w - 1))
    candidates[:, 1, 2] = dy.flatten() * (2.0 / max(h - 1, 1))
    # All candidates in one batch: each is the previous frame moved by one translation.
    stack = torch.cat([prev, prev_ok], 1).expand(candidates.shape[0], -1, -1, -1)
    grid = F.affine_grid(candidates.to(prev.dtype), list(stack.shape), align_corners=True)
    moved = F.grid_sample(stack, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    wt = weight * (moved[:, 1:] > 0.999)
    total = wt.flatten(1).sum(1)
    cost = ((moved[:, :1] - cur).abs() * wt).flatten(1).sum(1) / total.clamp_min(1e-9)
    cost = torch.where(total >= 0.05 * weight.sum(), cost, torch.full_like(cost, float("inf")))  # too little overlap
    # Ties go to the smallest motion (the order of the candidates is not a preference).
    cost = cost + 1e-7 * (dx.flatten().abs() + dy.flatten().abs())
    return candidates[int(cost.argmin())].clone()


def _refine(prev: torch.Tensor, cur: torch.Tensor, weight: torch.Tensor, prev_ok: torch.Tensor,
            affine: torch.Tensor, iterations: int = _ITERATIONS) -> torch.Tensor:
    """Gauss-Newton steps on the six affine parameters (inverse-compositional in spirit, but
    with the Jacobian of the warped previous frame: the motion between frames is small here)."""
    _, _, h, w = cur.shape
    ys = torch.linspace(-1.0, 1.0, h, device=cur.device).view(h, 1).expand(h, w)
    xs = torch.linspace(-1.0, 1.0, w, device=cur.device).view(1, w).expand(h, w)
    for _ in range(iterations):
        moved = warp_affine(torch.cat([prev, prev_ok], 1), affine)
        p = moved[0, 0]
        wt = weight[0, 0] * (moved[0, 1] > 0.999)
        # Gradients per normalised unit (central differences, zero at the border).
        gx = torch.zeros_like(p)
        gy = torch.zeros_like(p)
        gx[:, 1:-1] = (p[:, 2:] - p[:, :-2]) * (w - 1) / 4.0
        gy[1:-1, :] = (p[2:, :] - p[:-2, :]) * (h - 1) / 4.0
        r = p - cur[0, 0]
        scale = float(r[wt > 0].abs().median()) if bool((wt > 0).any()) else 0.0
        if scale > 0:  # Huber-like weights: large residuals (other motion) count less
            wt = wt / torch.clamp(r.abs() / (2.5 * scale), min=1.0)
        jac = torch.stack([gx * xs, gx * ys, gx, gy * xs, gy * ys, gy], dim=-1).view(-1, 6)
        wv = wt.reshape(-1, 1)
        hess = (jac * wv).T @ jac
        if float(wt.sum()) < 12:
            break
        rhs = (jac * wv).T @ r.reshape(-1)
        try:
            step = torch.linalg.solve(hess.double() + 1e-9 * torch.eye(6, dtype=torch.float64), rhs.double()).float()
        except RuntimeError:
            break
        affine = affine - step.view(2, 3)
        if float(step.abs().max()) < 1e-5:
            break
    return affine


def invert_affine(affine: torch.Tensor) -> torch.Tensor:
    """The (2, 3) affine map that undoes `affine`."""
    m = torch.linalg.inv(affine[:, :2].double())
    return torch.cat([m, -(m @ affine[:, 2:].double())], dim=1).to(affine.dtype)


def background_motion(
    prev: torch.Tensor, cur: torch.Tensor, weight: torch.Tensor, prev_ok: torch.Tensor | None = None
) -> torch.Tensor:
    """The affine map (2, 3) from the pixels of `cur` to where the same background point sits in
    `prev`, both (C, H, W). `weight` (H, W) marks the background pixels of `cur` to match;
    `prev_ok` (H, W) the pixels of `prev` that may be matched (default: all)."""
    to_gray = lambda x: x.float().mean(dim=0, keepdim=True).unsqueeze(0)  # noqa: E731
    p, c = to_gray(prev), to_gray(cur)
    wt = weight.float().view(1, 1, *weight.shape[-2:])
    ok = torch.ones_like(wt) if prev_ok is None else prev_ok.float().view(1, 1, *prev_ok.shape[-2:])
    if float(wt.sum()) < 16:
        return identity(cur.device)
    levels = [_SEARCH_WIDTH, *_REFINE_WIDTHS]
    affine = _search_translation(_level(p, levels[0]), _level(c, levels[0]), _level(wt, levels[0]), _level(ok, levels[0]))
    for width, iterations in zip(levels[1:], _LEVEL_ITERATIONS):
        affine = _refine(_soften(_level(p, width)), _soften(_level(c, width)), _level(wt, width), _level(ok, width),
                         affine, iterations)
        if width >= cur.shape[-1]:
            break
    return affine
