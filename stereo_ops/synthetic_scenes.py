"""Exact stereo ground truth: layered scenes of textured planes rendered from any eye position.

A scene is a stack of rectangular planes seen from a centre camera. Each plane has a disparity
that is affine in the image coordinates, D(x, y) = d0 + gx * x + gy * y (a fronto-parallel plane
has gx = gy = 0; any plane in 3D is affine in disparity), and a band-limited texture painted in
centre-view coordinates. With the pack's geometry, a point at centre column x shows at column
t = x - f * a(x) in the view at parallax fraction f, where a = s * (D - c) and s is the
divergence in pixels: f = 1 is the right eye of StereoDiffusion (balance 0), f = -b the left eye
at balance b, and f = 1 - b the right one.

Because a(x) is affine on a plane, the inverse x(t) is exact, so every view is rendered in
closed form: no warping is involved. Where planes overlap, the nearer one (larger a) is seen. A
pixel of a view is a true disocclusion when the surface it shows is hidden in the centre view
or outside its frame. Textures are sums of sinusoids with periods of 16 pixels and more, so
that linear interpolation between pixels is accurate to about 50 dB and any larger error
measured against these views comes from the warp.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Plane:
    """A textured rectangle [x0, x1) x [y0, y1) of the centre view (pixels) with affine disparity."""

    x0: float
    x1: float
    y0: float
    y1: float
    d0: float
    gx: float = 0.0
    gy: float = 0.0
    seed: int = 0
    # Contrast of extra fine texture (periods of 3 to 8 pixels), as photos have; 0 = the smooth
    # texture alone. Fine texture is sampled less exactly by linear interpolation.
    detail: float = 0.0
    # Contrast of the whole texture: 0 gives a flat colour (a textureless surface).
    contrast: float = 1.0
    # Where the texture sits: it is painted at (x - tx, y - ty), so a plane moved by (tx, ty)
    # carries its texture along.
    tx: float = 0.0
    ty: float = 0.0

    def moved(self, dx: float, dy: float) -> "Plane":
        """The plane translated in the image by (dx, dy), texture and disparity alike."""
        return replace(self, x0=self.x0 + dx, x1=self.x1 + dx, y0=self.y0 + dy, y1=self.y1 + dy,
                       d0=self.d0 - self.gx * dx - self.gy * dy, tx=self.tx + dx, ty=self.ty + dy)

    def disparity(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.d0 + self.gx * x + self.gy * y


@dataclass(frozen=True)
class SceneView:
    """One rendered view: image (1, 3, H, W), the plane index each pixel shows (1, H, W; -1 for
    nothing), the true disocclusions relative to the centre view (1, H, W, bool)."""

    image: torch.Tensor
    plane: torch.Tensor
    holes: torch.Tensor

    def edge_zone(self, radius: int = 2) -> torch.Tensor:
        """Pixels within `radius` of a change of plane or of a hole border (1, H, W, bool)."""
        ids = torch.where(self.holes, torch.full_like(self.plane, -2), self.plane).float().unsqueeze(1)
        k = 2 * radius + 1
        hi = F.max_pool2d(ids, k, 1, radius)
        lo = -F.max_pool2d(-ids, k, 1, radius)
        return (hi != lo)[:, 0]


@dataclass(frozen=True)
class StereoScene:
    """A scene rendered for one stereo setting: centre view, both eyes, centre disparity (1, H, W)."""

    planes: tuple[Plane, ...]
    center: SceneView
    left: SceneView
    right: SceneView
    disparity: torch.Tensor
    divergence: float
    convergence: float
    balance: float


def _texture(plane: Plane, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Band-limited RGB texture (3, ...) of a plane at centre-view coordinates."""
    g = torch.Generator().manual_seed(1000 + plane.seed)
    out = []
    for _ in range(3):
        base = 0.3 + 0.4 * torch.rand((), generator=g).item()
        value = torch.full_like(x, base)
        for _ in range(4):
            period = 16.0 + 48.0 * torch.rand((), generator=g).item()
            angle = math.pi * torch.rand((), generator=g).item()
            phase = 2 * math.pi * torch.rand((), generator=g).item()
            amp = 0.04 + 0.04 * torch.rand((), generator=g).item()
            kx, ky = math.cos(angle) / period, math.sin(angle) / period
            value = value + plane.contrast * amp * torch.sin(2 * math.pi * (kx * x + ky * y) + phase)
        out.append(value)
    if plane.detail > 0:
        for c in range(3):
            for _ in range(4):
                period = 3.0 + 5.0 * torch.rand((), generator=g).item()
                angle = math.pi * torch.rand((), generator=g).item()
                phase = 2 * math.pi * torch.rand((), generator=g).item()
                kx, ky = math.cos(angle) / period, math.sin(angle) / period
                out[c] = out[c] + plane.contrast * plane.detail * 0.05 * torch.sin(2 * math.pi * (kx * x + ky * y) + phase)
    return torch.stack(out)


def render_view(
    planes: tuple[Plane, ...],
    height: int,
    width: int,
    shift_px: float,
    convergence: float,
    fraction: float,
    dtype: torch.dtype = torch.float64,
) -> SceneView:
    """The view at parallax `fraction` (0 = centre) of `planes`, with its true disocclusions."""
    t = torch.arange(width, dtype=dtype).view(1, width).expand(height, width)
    y = torch.arange(height, dtype=dtype).view(height, 1).expand(height, width)
    best_a = torch.full((height, width), -math.inf, dtype=dtype)
    best_x = torch.zeros((height, width), dtype=dtype)
    plane_id = torch.full((height, width), -1, dtype=torch.long)
    for i, p in enumerate(planes):
        # a(x) = alpha + beta * x on this plane; solve t = x - fraction * a(x) for x.
        alpha = shift_px * (p.d0 + p.gy * y - convergence)
        beta = shift_px * p.gx
        x = (t + fraction * alpha) / (1.0 - fraction * beta)
        a = alpha + beta * x
        cover = (x >= p.x0) & (x < p.x1) & (y >= p.y0) & (y < p.y1) & (a > best_a)
        best_a = torch.where(cover, a, best_a)
        best_x = torch.where(cover, x, best_x)
        plane_id = torch.where(cover, torch.full_like(plane_id, i), plane_id)

    image = torch.zeros((3, height, width), dtype=dtype)
    for i, p in enumerate(planes):
        sel = plane_id == i
        if sel.any():
            image[:, sel] = _texture(p, best_x[sel] - p.tx, y[sel] - p.ty)

    # Disocclusion: the centre view shows another plane at the same surface point, or the point
    # lies outside the centre frame.
    front = _front_plane(planes, best_x, y, shift_px, convergence)
    holes = (plane_id < 0) | (front != plane_id) | (best_x < 0) | (best_x > width - 1)
    return SceneView(image.unsqueeze(0), plane_id.unsqueeze(0), holes.unsqueeze(0))


def _front_plane(planes, x, y, shift_px, convergence) -> torch.Tensor:
    best_a = torch.full_like(x, -math.inf)
    front = torch.full(x.shape, -1, dtype=torch.long)
    for i, p in enumerate(planes):
        a = shift_px * (p.disparity(x, y) - convergence)
        cover = (x >= p.x0) & (x < p.x1) & (y >= p.y0) & (y < p.y1) & (a > best_a)
        best_a = torch.where(cover, a, best_a)
        front = torch.where(cover, torch.full_like(front, i), front)
    return front


def default_planes(height: int, width: int) -> tuple[Plane, ...]:
    """Background, a receding slanted plane, two fronto-parallel planes at fractional disparities
    and a thin post narrower than its parallax, all inside [0, 1]."""
    w, h = float(width), float(height)
    return (
        Plane(-w, 2 * w, -h, 2 * h, d0=0.05, seed=1),
        # Slanted: disparity falls from 0.55 to 0.25 across it, and a little down the image.
        Plane(0.08 * w, 0.55 * w, 0.1 * h, 0.9 * h, d0=0.55 + 0.30 * 0.08 / 0.47, gx=-0.30 / (0.47 * w),
              gy=0.05 / h, seed=2),
        Plane(0.45 * w + 0.3, 0.78 * w + 0.7, 0.25 * h + 0.5, 0.7 * h, d0=0.6375, seed=3),
        Plane(0.62 * w + 0.25, 0.9 * w + 0.4, 0.55 * h, 0.95 * h, d0=0.8137, seed=4),
        Plane(0.3 * w + 0.4, 0.3 * w + 2.9, 0.05 * h, 0.95 * h, d0=1.0, seed=5),
    )


def layered_scene(
    height: int = 128,
    width: int = 160,
    divergence: float = 6.0,
    convergence: float = 0.0,
    balance: float = 0.0,
    planes: tuple[Plane, ...] | None = None,
    dtype: torch.dtype = torch.float64,
) -> StereoScene:
    """Render `planes` (default: `default_planes`) for one stereo setting of the pack."""
    planes = default_planes(height, width) if planes is None else planes
    shift_px = divergence / 100.0 * width
    center = render_view(planes, height, width, shift_px, convergence, 0.0, dtype)
    left = render_view(planes, height, width, shift_px, convergence, -balance, dtype)
    right = render_view(planes, height, width, shift_px, convergence, 1.0 - balance, dtype)
    x = torch.arange(width, dtype=dtype).view(1, width).expand(height, width)
    y = torch.arange(height, dtype=dtype).view(height, 1).expand(height, width)
    disparity = torch.zeros((height, width), dtype=dtype)
    for i, p in enumerate(planes):
        disparity = torch.where(center.plane[0] == i, p.disparity(x, y), disparity)
    return StereoScene(planes, center, left, right, disparity.unsqueeze(0), divergence, convergence, balance)


def psnr(a: torch.Tensor, b: torch.Tensor, where: torch.Tensor | None = None, peak: float = 1.0) -> float:
    """PSNR in dB of images (B, C, H, W) over the pixels `where` (B, H, W) is true (all if None)."""
    err = (a.double() - b.double()) ** 2
    if where is not None:
        err = err.mean(dim=1)[where]
    mse = float(err.mean())
    return math.inf if mse == 0 else 10.0 * math.log10(peak * peak / mse)


@dataclass(frozen=True)
class MovingClip:
    """A layered scene filmed over time, with exact truth for every frame.

    center, right: (T, 3, H, W) views; right_holes: (T, H, W) true disocclusions of the right
    eye; disparity: (T, H, W) centre disparity; background_motion: (T, 2) the (dx, dy) in pixels
    by which the background moved from the frame before (0 for the first frame)."""

    center: torch.Tensor
    right: torch.Tensor
    right_holes: torch.Tensor
    disparity: torch.Tensor
    background_motion: torch.Tensor
    divergence: float
    right_background: torch.Tensor | None = None  # (T, H, W): the right eye shows the background plane


def moving_planes(height: int, width: int, seed: int = 0) -> tuple[tuple[Plane, ...], tuple[tuple[float, float], ...]]:
    """A background and three fronto-parallel objects at several depths, and each one's own
    velocity in pixels per frame: objects that cross the background at different speeds, one
    standing still, so every kind of disocclusion (growing, sliding, still) occurs."""
    w, h = float(width), float(height)
    planes = (
        Plane(-3 * w, 4 * w, -3 * h, 4 * h, d0=0.05, seed=10 + seed),
        Plane(0.15 * w, 0.35 * w, 0.15 * h, 0.85 * h, d0=0.9, seed=11 + seed),
        Plane(0.5 * w, 0.62 * w, 0.3 * h, 0.95 * h, d0=0.6, seed=12 + seed),
        Plane(0.72 * w, 0.85 * w, 0.05 * h, 0.6 * h, d0=0.75, seed=13 + seed),
    )
    velocities = ((0.0, 0.0), (1.0, 0.0), (-2.0, 0.0), (0.0, 0.0))
    return planes, velocities


def moving_clip(
    frames: int = 12,
    height: int = 64,
    width: int = 96,
    divergence: float = 8.0,
    camera: tuple[float, float] = (-2.0, 0.0),
    planes: tuple[Plane, ...] | None = None,
    velocities: tuple[tuple[float, float], ...] | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> MovingClip:
    """Frames of a layered scene whose camera pans by `camera` pixels per frame (every plane moves
    with it) while each plane also moves by its own velocity; integer motions keep the truth on
    the pixel grid. Rendered exactly for the centre and the right eye (balance 0)."""
    if planes is None:
        planes, velocities = moving_planes(height, width, seed)
    velocities = velocities or tuple((0.0, 0.0) for _ in planes)
    shift_px = divergence / 100.0 * width
    centers, rights, holes, maps, backs = [], [], [], [], []
    x = torch.arange(width, dtype=torch.float64).view(1, width).expand(height, width)
    y = torch.arange(height, dtype=torch.float64).view(height, 1).expand(height, width)
    for t in range(frames):
        now = tuple(p.moved(t * (camera[0] + v[0]), t * (camera[1] + v[1])) for p, v in zip(planes, velocities))
        center = render_view(now, height, width, shift_px, 0.0, 0.0)
        right = render_view(now, height, width, shift_px, 0.0, 1.0)
        d = torch.zeros((height, width), dtype=torch.float64)
        for i, p in enumerate(now):
            d = torch.where(center.plane[0] == i, p.disparity(x, y), d)
        centers.append(center.image[0])
        rights.append(right.image[0])
        holes.append(right.holes[0])
        backs.append(right.plane[0] == 0)
        maps.append(d)
    motion = torch.tensor([[0.0, 0.0]] + [[camera[0] + velocities[0][0], camera[1] + velocities[0][1]]] * (frames - 1))
    return MovingClip(torch.stack(centers).to(dtype), torch.stack(rights).to(dtype), torch.stack(holes),
                      torch.stack(maps).to(dtype), motion[:frames], divergence, torch.stack(backs))
