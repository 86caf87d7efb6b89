"""Hole flicker of the diffusion video path, with and without temporal_holes.

A moving clip with exact disparity (testkit.moving_clip: a near square sliding over a textured
background, with a still camera or one panning either way) goes through the video workflow's path: fixed-point
inversion, then the Stereo KSampler with frame_chunk 2. Flicker: the mean absolute frame-to-frame
change of the right views in the pixels that are holes in both frames, after the camera's motion.
The model is the tiny random SD1.5 UNet (smoothed): the figures concern the mechanism, not a model.

    python -m bench.bench_video_holes
"""

from __future__ import annotations

from bench.bench_common import start_host


def main() -> None:
    start_host(threads=1)
    from testkit.moving_clip import hole_run, smooth_tiny_sd15

    model = smooth_tiny_sd15()
    print("| camera | frames | flicker, per-frame fill | flicker, temporal_holes | ratio | visible right pixels, mean change |")
    print("|---|---|---|---|---|---|")
    for name, pan in (("still", 0), ("pan 4 px/frame", 4), ("pan -4 px/frame", -4)):
        for frames in (6, 8):
            run = hole_run(model, pan_px=pan, frames=frames)
            a, b = run.flicker(run.per_frame), run.flicker(run.warm)
            print(f"| {name} | {frames} | {a:.3f} | {b:.3f} | {b / a:.2f} | {run.visible_change():.1e} |")


if __name__ == "__main__":
    main()
