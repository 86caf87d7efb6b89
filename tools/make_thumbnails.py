"""Draw the thumbnails of the shipped workflows: a red-cyan anaglyph of a small synthetic scene.

    python -m tools.make_thumbnails   # writes <title>.jpg into examples_workflows/ and example_workflows/

The scene (sky, ground and three balls at different depths) is shifted into a right view with the
pack's own Stereo Pixel Shift (subpixel), so each thumbnail is a real stereo image. ComfyUI's
template browser shows `<file name>.jpg` next to each workflow file; the file names (the titles)
come from tools.build_example_workflows.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from headless import comfy_host  # noqa: F401  (registers `stereo_pack`)
from stereo_pack.stereo_ops import stereo_pixel_shift
from tools import build_example_workflows as builder

WIDTH, HEIGHT = 384, 288

# workflow key -> (caption, palette of the three balls)
THUMBNAILS = {
    "text_to_stereo": ("text → stereo", [(230, 90, 60), (250, 200, 70), (90, 170, 240)]),
    "photo_to_stereo": ("photo → stereo", [(120, 200, 110), (240, 140, 60), (200, 90, 200)]),
    "depth_to_stereo": ("depth map → stereo", [(200, 200, 200), (150, 150, 150), (240, 240, 240)]),
    "sdxl_text_to_stereo": ("SDXL text → stereo", [(250, 120, 150), (90, 220, 200), (250, 230, 120)]),
    "flux_text_to_stereo": ("Flux text → stereo", [(120, 140, 250), (250, 170, 90), (170, 240, 130)]),
    "flux_photo_to_stereo": ("Flux photo → stereo", [(240, 110, 110), (110, 200, 240), (230, 230, 150)]),
    "video_to_stereo": ("video → stereo", [(240, 170, 60), (110, 140, 250), (230, 100, 120)]),
    "photo_warp_inpaint": ("photo → warp + inpaint", [(240, 170, 80), (110, 200, 230), (230, 110, 120)]),
    "video_to_stereo_fast": ("video → warp + fill", [(90, 200, 160), (240, 120, 90), (150, 130, 240)]),
}


def scene(palette) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image (H, W, 3) in [0, 1] and its disparity (H, W) in [0, 1], near = 1."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    horizon = HEIGHT * 0.55
    sky = np.stack([0.55 + 0.3 * y / HEIGHT, 0.7 + 0.2 * y / HEIGHT, 0.95 * np.ones_like(y)], -1)
    ground_t = np.clip((y - horizon) / (HEIGHT - horizon), 0, 1)
    ground = np.stack([0.35 + 0.2 * ground_t, 0.55 + 0.15 * ground_t, 0.3 + 0.05 * ground_t], -1)
    checker = ((x // 24 + (y - horizon) // 12) % 2 == 0)[..., None] * 0.06
    image = np.where((y >= horizon)[..., None], ground + checker, sky)
    disparity = np.where(y >= horizon, 0.15 + 0.45 * ground_t, 0.0)
    balls = [(0.22, 0.62, 0.16, 0.95), (0.55, 0.55, 0.11, 0.6), (0.8, 0.5, 0.07, 0.35)]  # cx, cy, r, disparity
    for (cx, cy, r, d), color in sorted(zip(balls, palette), key=lambda b: b[0][3]):
        cx, cy, r = cx * WIDTH, cy * HEIGHT, r * HEIGHT
        dist = np.sqrt((x - cx) ** 2 + (y - cy) ** 2)
        inside = dist <= r
        shade = np.clip(1.1 - 0.6 * (np.sqrt((x - cx + r / 3) ** 2 + (y - cy + r / 3) ** 2) / r), 0.3, 1.0)
        ball = np.array(color, np.float32)[None, None] / 255.0 * shade[..., None]
        image = np.where(inside[..., None], ball, image)
        disparity = np.where(inside, d, disparity)
    return image.astype(np.float32), disparity.astype(np.float32)


def anaglyph(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Half-colour red-cyan: red from the left eye's luminance, green and blue from the right eye."""
    luma = left @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.stack([luma, right[..., 1], right[..., 2]], -1)


def thumbnail(caption: str, palette) -> Image.Image:
    image, disparity = scene(palette)
    left = torch.from_numpy(image).permute(2, 0, 1)[None]
    shifted = stereo_pixel_shift(left, torch.from_numpy(disparity)[None], divergence=4.0, mode="subpixel")
    right = shifted.image[0].permute(1, 2, 0).numpy()
    holes = ~shifted.filled[0].numpy()
    right = np.where(holes[..., None], image, right)  # fill the few disocclusions from the left view
    out = Image.fromarray((np.clip(anaglyph(image, right), 0, 1) * 255).astype(np.uint8))
    draw = ImageDraw.Draw(out)
    try:
        font = ImageFont.truetype("DejaVuSans-Bold.ttf", 26)
    except OSError:
        font = ImageFont.load_default()
    draw.rectangle([0, HEIGHT - 44, WIDTH, HEIGHT], fill=(20, 20, 28))
    draw.text((14, HEIGHT - 38), caption, fill=(240, 240, 240), font=font)
    return out


def main() -> None:
    titles = {w.title for w in builder.WORKFLOWS.values()}
    for out_dir in builder.OUT_DIRS:
        out_dir.mkdir(exist_ok=True)
        for stale in out_dir.glob("*.jpg"):
            if stale.stem not in titles:
                stale.unlink()
    for key, (caption, palette) in THUMBNAILS.items():
        image = thumbnail(caption, palette)
        for out_dir in builder.OUT_DIRS:
            path = out_dir / f"{builder.WORKFLOWS[key].title}.jpg"
            image.save(path, quality=85)
            print(path)


if __name__ == "__main__":
    main()
