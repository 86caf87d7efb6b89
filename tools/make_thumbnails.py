"""Draw the thumbnails of the shipped workflows: what each one takes and makes, from a small
synthetic scene.

    python -m tools.make_thumbnails   # writes <title>.jpg into examples_workflows/ and example_workflows/

The scene (sky, ground and three balls at different depths) is shifted into a right view with the
pack's own Stereo Pixel Shift (subpixel), so every stereo picture is a real stereo image. Each
workflow gets its own view: a red-cyan anaglyph (text), the photo beside its anaglyph (photo), the
depth map beside its anaglyph (depth map), a side-by-side pair (SDXL), the warp's holes (warp +
inpaint), a strip of frames (video). ComfyUI's
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

# workflow key -> (caption, palette of the three balls, view)
THUMBNAILS = {
    "text_to_stereo": ("text → stereo", [(230, 90, 60), (250, 200, 70), (90, 170, 240)], "anaglyph"),
    "photo_to_stereo": ("photo → stereo", [(120, 200, 110), (240, 140, 60), (200, 90, 200)], "photo"),
    "depth_to_stereo": ("depth map → stereo", [(200, 200, 200), (150, 150, 150), (240, 240, 240)], "depth"),
    "sdxl_text_to_stereo": ("SDXL text → stereo", [(250, 120, 150), (90, 220, 200), (250, 230, 120)], "side-by-side"),
    "flux_text_to_stereo": ("Flux text → stereo", [(120, 140, 250), (250, 170, 90), (170, 240, 130)], "anaglyph-near"),
    "flux_photo_to_stereo": ("Flux photo → stereo", [(240, 110, 110), (110, 200, 240), (230, 230, 150)], "photo-below"),
    "video_to_stereo": ("video → stereo", [(240, 170, 60), (110, 140, 250), (230, 100, 120)], "frames"),
    "photo_warp_inpaint": ("photo → warp + inpaint", [(240, 170, 80), (110, 200, 230), (230, 110, 120)], "holes"),
    "video_to_stereo_fast": ("video → warp + fill", [(90, 200, 160), (240, 120, 90), (150, 130, 240)], "frames-warped"),
}


BALLS = [(0.22, 0.62, 0.16, 0.95), (0.55, 0.55, 0.11, 0.6), (0.8, 0.5, 0.07, 0.35)]  # cx, cy, r, disparity


def scene(palette, balls=BALLS, width: int = WIDTH, height: int = HEIGHT) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image (H, W, 3) in [0, 1] and its disparity (H, W) in [0, 1], near = 1."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    horizon = height * 0.55
    sky = np.stack([0.55 + 0.3 * y / height, 0.7 + 0.2 * y / height, 0.95 * np.ones_like(y)], -1)
    ground_t = np.clip((y - horizon) / (height - horizon), 0, 1)
    ground = np.stack([0.35 + 0.2 * ground_t, 0.55 + 0.15 * ground_t, 0.3 + 0.05 * ground_t], -1)
    checker = ((x // 24 + (y - horizon) // 12) % 2 == 0)[..., None] * 0.06
    image = np.where((y >= horizon)[..., None], ground + checker, sky)
    disparity = np.where(y >= horizon, 0.15 + 0.45 * ground_t, 0.0)
    for (cx, cy, r, d), color in sorted(zip(balls, palette), key=lambda b: b[0][3]):
        cx, cy, r = cx * width, cy * height, r * height
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


def right_view(image: np.ndarray, disparity: np.ndarray, divergence: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """The right eye by the pack's Stereo Pixel Shift, and its holes (H, W, bool)."""
    left = torch.from_numpy(image).permute(2, 0, 1)[None]
    shifted = stereo_pixel_shift(left, torch.from_numpy(disparity)[None], divergence=divergence, mode="subpixel")
    return shifted.image[0].permute(1, 2, 0).numpy(), ~shifted.filled[0].numpy()


def stereo_anaglyph(image: np.ndarray, disparity: np.ndarray, divergence: float = 4.0) -> np.ndarray:
    right, holes = right_view(image, disparity, divergence)
    right = np.where(holes[..., None], image, right)  # fill the few disocclusions from the left view
    return anaglyph(image, right)


GAP = 4
HALF_W = (WIDTH - GAP) // 2  # a picture beside another
HALF_H = (HEIGHT - 44 - GAP) // 2  # a picture above another, over the caption band


def _beside(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.full((HEIGHT, WIDTH, 3), 0.08, np.float32)
    out[:, :HALF_W], out[:, HALF_W + GAP: 2 * HALF_W + GAP] = a, b
    return out


def _above(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.full((HEIGHT, WIDTH, 3), 0.08, np.float32)
    out[:HALF_H], out[HALF_H + GAP: 2 * HALF_H + GAP] = a, b
    return out


NEAR_BALLS = [(0.5, 0.5, 0.3, 1.0), (0.15, 0.35, 0.06, 0.4), (0.85, 0.35, 0.06, 0.4)]


def view(kind: str, palette) -> np.ndarray:
    """The picture (H, W, 3) in [0, 1] of one kind of thumbnail."""
    if kind == "anaglyph":
        return stereo_anaglyph(*scene(palette))
    if kind == "anaglyph-near":  # one big ball close to the viewer: strong parallax
        return stereo_anaglyph(*scene(palette, NEAR_BALLS), 6.0)
    if kind == "photo":  # the photo in a white print border, then its anaglyph
        image, disparity = scene(palette, width=HALF_W)
        framed = np.ones_like(image)
        framed[10:-10, 10:-10] = image[10:-10, 10:-10]
        return _beside(framed, stereo_anaglyph(image, disparity))
    if kind == "photo-below":
        image, disparity = scene(palette, width=WIDTH, height=HALF_H)
        return _above(image, stereo_anaglyph(image, disparity))
    if kind == "depth":
        image, disparity = scene(palette, width=HALF_W)
        return _beside(np.repeat(disparity[..., None], 3, -1), stereo_anaglyph(image, disparity))
    if kind == "side-by-side":  # the two eyes of a pair with near balls
        image, disparity = scene(palette, [(0.3, 0.5, 0.2, 0.9), (0.75, 0.6, 0.13, 0.6), (0.55, 0.3, 0.05, 0.2)],
                                 width=HALF_W)
        right, holes = right_view(image, disparity, 6.0)
        return _beside(image, np.where(holes[..., None], image, right))
    if kind == "holes":  # the right eye of a full-resolution warp, its holes shown in magenta
        right, holes = right_view(*scene(palette), 8.0)
        return np.where(holes[..., None], np.array([0.95, 0.1, 0.8], np.float32), right)
    if kind == "frames":  # three frames of a ball rolling towards the viewer, each as an anaglyph
        out = np.full((HEIGHT, WIDTH, 3), 0.08, np.float32)
        w, h = (WIDTH - 2 * GAP) // 3, HEIGHT // 2
        for i, t in enumerate((0.0, 0.5, 1.0)):
            balls = [(0.2 + 0.6 * t, 0.6, 0.12 + 0.12 * t, 0.5 + 0.5 * t), *BALLS[1:]]
            out[HEIGHT // 4: HEIGHT // 4 + h, i * (w + GAP): i * (w + GAP) + w] = stereo_anaglyph(*scene(palette, balls, w, h))
        return out
    if kind == "frames-warped":  # three frames of a panning shot, each the warped right eye, its holes in magenta
        out = np.full((HEIGHT, WIDTH, 3), 0.08, np.float32)
        w, h = (WIDTH - 2 * GAP) // 3, HEIGHT // 2
        for i, t in enumerate((0.0, 0.5, 1.0)):
            balls = [(x + 0.15 * t, y, r, d) for x, y, r, d in BALLS]
            right, holes = right_view(*scene(palette, balls, w, h), 8.0)
            frame = np.where(holes[..., None], np.array([0.95, 0.1, 0.8], np.float32), right)
            out[HEIGHT // 4: HEIGHT // 4 + h, i * (w + GAP): i * (w + GAP) + w] = frame
        return out
    raise ValueError(f"unknown thumbnail view {kind!r}")


def thumbnail(caption: str, palette, kind: str = "anaglyph") -> Image.Image:
    out = Image.fromarray((np.clip(view(kind, palette), 0, 1) * 255).astype(np.uint8))
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
    for key, (caption, palette, kind) in THUMBNAILS.items():
        image = thumbnail(caption, palette, kind)
        for out_dir in builder.OUT_DIRS:
            path = out_dir / f"{builder.WORKFLOWS[key].title}.jpg"
            image.save(path, quality=85)
            print(path)


if __name__ == "__main__":
    main()
