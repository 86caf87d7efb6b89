"""Temporal hole fill against the per-frame fill, on moving synthetic scenes with exact truth.

    python -m bench.bench_video_fill
    python -m bench.bench_video_fill --frames 24 --size 192x108

The scenes (stereo_ops.synthetic_scenes.moving_clip) pan the camera and move objects at their own
speeds; each right eye is rendered exactly. Both fills start from the same Stereo Warp of the
centre frames by the true disparity. Figures over the hole pixels of the warp:

* flicker: mean absolute change of a hole pixel from the frame before, after compensating the
  background's true motion (over the hole pixels that were holes in the frame before as well);
* error: mean absolute difference from the true right eye;
* error where seen: the same over the hole pixels whose background some other frame of the clip
  shows (the fill should show that background);
* visible: largest change of a visible pixel by the fill (0: the fill only writes holes).
"""

from __future__ import annotations

import argparse
import time

import torch

from bench.bench_common import comfy_host  # noqa: F401  (registers stereo_pack)

SCENES = {
    "pan left, objects moving": dict(camera=(-2.0, 0.0)),
    "pan right and down": dict(camera=(2.0, 1.0), seed=3),
    "still camera, objects moving": dict(camera=(0.0, 0.0), seed=6),
}


def per_frame_fill(stereo: torch.Tensor, holes: torch.Tensor) -> torch.Tensor:
    """Each frame filled on its own from its background side (the baseline)."""
    from stereo_pack.stereo_ops.hole_fill import background_side_fill

    out = stereo.clone()
    n = stereo.shape[0] // 2
    for t in range(n, 2 * n):
        out[t] = background_side_fill(stereo[t].permute(2, 0, 1), holes[t] > 0.5, -1).permute(1, 2, 0)
    return out


def _shifted(x: torch.Tensor, dx: int, dy: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x (..., H, W) moved by (dx, dy): y[p] = x[p - (dx, dy)], and where that lies inside."""
    h, w = x.shape[-2:]
    y = torch.zeros_like(x)
    ok = torch.zeros(x.shape[-2:], dtype=torch.bool)
    ys, xs = slice(max(dy, 0), h + min(dy, 0)), slice(max(dx, 0), w + min(dx, 0))
    ys0, xs0 = slice(max(-dy, 0), h + min(-dy, 0)), slice(max(-dx, 0), w + min(-dx, 0))
    y[..., ys, xs] = x[..., ys0, xs0]
    ok[ys, xs] = True
    return y, ok


def fill_figures(clip, right: torch.Tensor, holes: torch.Tensor, warped: torch.Tensor) -> dict[str, float]:
    """Figures of a filled right eye (N, H, W, C) with its holes (N, H, W, bool) against the truth."""
    truth = clip.right.permute(0, 2, 3, 1).float()
    n = right.shape[0]
    err = (right - truth).abs().mean(-1)
    flicker, count = 0.0, 0
    seen = torch.zeros_like(holes)
    for t in range(n):
        # Where a hole's background shows in another frame: the background point sits at
        # p + offset there (integer motion), visible when that pixel is no hole and shows background.
        for k in range(n):
            if k == t:
                continue
            dx = int(round(float(clip.background_motion[min(t, k) + 1:max(t, k) + 1, 0].sum())))
            dy = int(round(float(clip.background_motion[min(t, k) + 1:max(t, k) + 1, 1].sum())))
            if k < t:
                dx, dy = -dx, -dy
            # frame k at p + (dx, dy) shows what frame t shows at p (for the background)
            vis = (~holes[k]) & clip.right_background[k]  # the warped right eye shows the background there
            moved, ok = _shifted(vis.float(), -dx, -dy)
            seen[t] |= (moved > 0.5) & ok
        if t:
            dx, dy = (int(round(float(v))) for v in clip.background_motion[t])
            prev, ok = _shifted(right[t - 1].permute(2, 0, 1), dx, dy)
            prev_holes, _ = _shifted(holes[t - 1].float(), dx, dy)
            both = holes[t] & (prev_holes > 0.5) & ok
            flicker += float((right[t].permute(2, 0, 1) - prev).abs().mean(0)[both].sum())
            count += int(both.sum())
    # Content is judged where the warp's holes are true disocclusions: a pixel at an object's
    # edge that the warp leaves empty but the true view shows as the object is no background.
    judged = holes & clip.right_holes
    where_seen = judged & seen
    return {
        "flicker": flicker / max(count, 1),
        "error": float(err[judged].mean()),
        "error where seen": float(err[where_seen].mean()) if bool(where_seen.any()) else float("nan"),
        "seen share": float(where_seen.sum()) / max(int(judged.sum()), 1),
        "visible": float((right - warped).abs().amax(-1)[~holes].max()),
    }


def run_scene(frames: int, height: int, width: int, **scene) -> dict[str, dict[str, float]]:
    from stereo_pack.stereo_ops.synthetic_scenes import moving_clip
    from stereo_pack.stereo_ops.warp_clip import fill_clip, warp_clip

    clip = moving_clip(frames=frames, height=height, width=width, **scene)
    centre = clip.center.permute(0, 2, 3, 1).contiguous()
    stereo, holes = warp_clip(centre, clip.disparity, clip.divergence)
    n = frames
    eye_holes = holes[n:] > 0.5
    t0 = time.perf_counter()
    temporal, _ = fill_clip(stereo, holes, clip.disparity, clip.divergence)
    seconds = time.perf_counter() - t0
    baseline = per_frame_fill(stereo, holes)
    return {
        "per-frame fill": fill_figures(clip, baseline[n:], eye_holes, stereo[n:]),
        "temporal fill": {**fill_figures(clip, temporal[n:], eye_holes, stereo[n:]), "ms/frame": 1e3 * seconds / n},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", default="128x72", help="WIDTHxHEIGHT")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.split("x"))
    print("| scene | fill | flicker | error | error where seen | holes seen elsewhere | visible change |")
    print("|---|---|---|---|---|---|---|")
    for name, scene in SCENES.items():
        for fill, f in run_scene(args.frames, height, width, **scene).items():
            print(f"| {name} | {fill} | {f['flicker']:.4f} | {f['error']:.4f} | {f['error where seen']:.4f} "
                  f"| {100 * f['seen share']:.0f} % | {f['visible']:.1g} |", flush=True)


if __name__ == "__main__":
    main()
